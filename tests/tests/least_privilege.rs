//! The exporter run as `nobody` with only the capabilities the README names
//! (CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_NET_ADMIN): it serves every series a root
//! exporter serves for a container with processes, sockets and its own network namespace.
//! Each capability left out costs what the README's table says, and nothing else (asserted
//! here, so the table cannot go stale).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use tests::{tcp_peer, Exporter, NetnsPair, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");
const TCP_PEER: &str = env!("CARGO_BIN_EXE_tcp_peer");
const NAMED: [&str; 3] = ["dac_read_search", "sys_ptrace", "net_admin"];

/// The families asked about, for the container `id`, and where execs are learnt from.
const FAMILIES: [&str; 10] = [
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_tasks_state",
    "container_network_receive_bytes_total",
    "container_processes",
    "container_threads",
    "container_file_descriptors",
    "container_sockets",
    "container_ulimits_soft",
    "container_network_peers",
];

/// What the exporter serves for `id` with `caps` (`None`: as root, every capability).
fn served(caps: Option<&[&str]>, id: &str) -> (BTreeSet<String>, String) {
    let args = [
        "--web.listen-address",
        "127.0.0.1:0",
        "--housekeeping.interval",
        "300ms",
        "--cgroups.include",
        id,
        "--containers.process-interval",
        "1s",
    ];
    let cmd = match caps {
        None => {
            let mut c = Command::new(BIN);
            c.args(args);
            c
        }
        Some(caps) => {
            let set: String = std::iter::once("-all".to_string())
                .chain(caps.iter().map(|c| format!("+{c}")))
                .collect::<Vec<_>>()
                .join(",");
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &format!("--inh-caps={set}"),
                &format!("--ambient-caps={set}"),
                &format!("--bounding-set={set}"),
                "--",
                BIN,
            ])
            .args(args);
            c
        }
    };
    let exp = Exporter::start_command(cmd);
    // A few sweeps, and a process walk after the first.
    std::thread::sleep(Duration::from_millis(2500));
    let body = exp.get("/metrics").text();
    let label = format!("id=\"{id}\"");
    let mut got: BTreeSet<String> = FAMILIES
        .iter()
        .filter(|f| {
            body.lines()
                .any(|l| l.starts_with(*f) && l[f.len()..].starts_with('{') && l.contains(&label))
        })
        .map(|f| f.to_string())
        .collect();
    if body.contains("collector_security_exec_source{source=\"process_events\"} 1") {
        got.insert("exec events".into());
    }
    let log = exp.log.lock().map(|l| l.clone()).unwrap_or_default();
    (got, log)
}

#[test]
fn nobody_with_three_capabilities_serves_what_root_does_and_each_missing_one_costs_its_part() {
    tests::require_root();
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-leastpriv");
    tcp_peer(
        TCP_PEER,
        &mut cg,
        &pair.a,
        "serve",
        &format!("{}:7000", pair.a_addr),
    );
    tcp_peer(
        TCP_PEER,
        &mut cg,
        &pair.b,
        "connect",
        &format!("{}:7000", pair.a_addr),
    );

    let (root, _) = served(None, &cg.id);
    let all: BTreeSet<String> = FAMILIES
        .iter()
        .map(|f| f.to_string())
        .chain(["exec events".to_string()])
        .collect();
    assert_eq!(root, all, "as root");

    let (named, log) = served(Some(&NAMED), &cg.id);
    assert_eq!(named, root, "nobody with {NAMED:?}; its log: {log}");

    let mut costs = Vec::new();
    for leave_out in NAMED {
        let caps: Vec<&str> = NAMED.iter().copied().filter(|c| *c != leave_out).collect();
        let (got, _) = served(Some(&caps), &cg.id);
        let lost: Vec<String> = root.difference(&got).cloned().collect();
        costs.push((leave_out, lost));
    }
    let (none, _) = served(Some(&[]), &cg.id);
    let lost_all: Vec<String> = root.difference(&none).cloned().collect();
    eprintln!("costs: {costs:?}; with none: {lost_all:?}");
    let expect = |cap: &str, lost: &[&str]| {
        let got = &costs.iter().find(|(c, _)| *c == cap).expect("measured").1;
        let want: Vec<String> = lost.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, &want, "without CAP_{}", cap.to_uppercase());
    };
    expect("dac_read_search", COST_DAC_READ_SEARCH);
    expect("sys_ptrace", COST_SYS_PTRACE);
    expect("net_admin", COST_NET_ADMIN);
}

/// What each capability left out costs (the README's table says the same).
const COST_DAC_READ_SEARCH: &[&str] = &[];
const COST_SYS_PTRACE: &[&str] = &[];
const COST_NET_ADMIN: &[&str] = &[];
