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

/// What the exporter serves for the container `cg` with `caps` (`None`: as root, every
/// capability): the families above that have a series for it, "exec events" when an exec in
/// it was seen as it happened, and "process executables" when its process list names them.
fn served(caps: Option<&[&str]>, cg: &mut TestCgroup) -> (BTreeSet<String>, String) {
    let id = cg.id.clone();
    let args = [
        "--web.listen-address",
        "127.0.0.1:0",
        "--housekeeping.interval",
        "300ms",
        "--cgroups.include",
        &id,
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
    // A few sweeps, a process walk after the first, and execs in the container.
    std::thread::sleep(Duration::from_millis(1000));
    for _ in 0..3 {
        cg.spawn(Command::new("true").stdout(std::process::Stdio::null()));
    }
    std::thread::sleep(Duration::from_millis(1500));
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
    let execs = tests::samples(&body, "collector_security_execs_total")
        .first()
        .map_or(0.0, |(_, v)| *v);
    if execs > 0.0 {
        got.insert("exec events".into());
    }
    let procs: serde_json::Value =
        serde_json::from_slice(&exp.get(&format!("/api/v1/containers{id}/processes")).body)
            .expect("the process list as JSON");
    let exes = procs["processes"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["exe"].as_str().is_some_and(|e| e.ends_with("/tcp_peer")))
    });
    if exes {
        got.insert("process executables".into());
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

    let (root, _) = served(None, &mut cg);
    let all: BTreeSet<String> = FAMILIES
        .iter()
        .map(|f| f.to_string())
        .chain(["exec events".into(), "process executables".into()])
        .collect();
    assert_eq!(root, all, "as root");

    let (named, log) = served(Some(&NAMED), &mut cg);
    assert_eq!(named, root, "nobody with {NAMED:?}; its log: {log}");

    let mut costs = Vec::new();
    for leave_out in NAMED {
        let caps: Vec<&str> = NAMED.iter().copied().filter(|c| *c != leave_out).collect();
        let (got, _) = served(Some(&caps), &mut cg);
        let lost: Vec<String> = root.difference(&got).cloned().collect();
        costs.push((leave_out, lost));
    }
    let (none, _) = served(Some(&[]), &mut cg);
    let lost_all: Vec<String> = root.difference(&none).cloned().collect();
    eprintln!("costs: {costs:?}; with none: {lost_all:?}");
    let expect = |cap: &str, lost: &[&str]| {
        let got = &costs.iter().find(|(c, _)| *c == cap).expect("measured").1;
        let want: Vec<String> = lost.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, &want, "without CAP_{}", cap.to_uppercase());
    };
    expect("dac_read_search", COST_DAC_READ_SEARCH);
    expect("sys_ptrace", COST_SYS_PTRACE);
    // Since Linux 6.6 the process events connector takes listeners without CAP_NET_ADMIN.
    expect(
        "net_admin",
        if kernel_at_least(6, 6) {
            &[]
        } else {
            &["exec events"]
        },
    );
}

/// What each capability left out costs (the README's table says the same).
const COST_DAC_READ_SEARCH: &[&str] = &["container_file_descriptors", "container_sockets"];
const COST_SYS_PTRACE: &[&str] = &["process executables"];

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}
