//! Runs inside the cgroup v2 VM of `tests/vm/run.sh`: two sweeps of the collector over the real
//! `/proc` and `/sys`, `--sleep-ms N` apart, then new limits written to `test.slice/mem` and a
//! third sweep, printed as one JSON object on stdout:
//!
//! ```json
//! { "hierarchy": {...}, "first": {"timestamp_ms": .., "cpu_usage_ns": {"<id>": ..}},
//!   "second": <Snapshot>, "third": {"write_errors": [..], "mem_spec": <spec>, ..} }
//! ```
//!
//! Exit code 0 when the collector could be built, 2 on bad arguments, 1 when it could not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use collector_core::{Collector, Config, Roots};

fn parse_args() -> Result<u64, String> {
    let mut sleep_ms = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sleep-ms" => {
                let v = args.next().ok_or("--sleep-ms needs a value")?;
                sleep_ms = v.parse().map_err(|e| format!("--sleep-ms {v}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (usage: v2_probe [--sleep-ms N])"
                ))
            }
        }
    }
    Ok(sleep_ms)
}

/// The spec backstop of a watched collector: what the third sweep would wait for without the
/// watch.
fn collector_spec_interval_ms() -> u128 {
    Config::default().watched_spec_interval.as_millis()
}

fn main() -> ExitCode {
    let sleep_ms = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("v2_probe: {e}");
            return ExitCode::from(2);
        }
    };
    let config = Config {
        roots: Roots {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
        },
        ..Config::default()
    };
    let mut collector = match Collector::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("v2_probe: no collector: {e}");
            return ExitCode::from(1);
        }
    };
    let first = collector.sweep();
    std::thread::sleep(Duration::from_millis(sleep_ms));
    let second = collector.sweep();

    // Limits written after the second sweep must show at the third: the spec watch on the
    // cgroup2 directory, not the 5-minute backstop, brings them.
    let mem = "/sys/fs/cgroup/test.slice/mem";
    let writes: Vec<String> = [
        ("memory.max", "50331648"),
        ("pids.max", "77"),
        ("cpu.max", "30000 100000"),
    ]
    .iter()
    .filter_map(|(f, v)| {
        std::fs::write(format!("{mem}/{f}"), v)
            .err()
            .map(|e| format!("{mem}/{f}: {e}"))
    })
    .collect();
    std::thread::sleep(Duration::from_millis(200));
    let third = collector.sweep();
    let spec_after = third
        .containers
        .iter()
        .find(|c| c.id == "/test.slice/mem")
        .map(|c| &c.stats.spec);

    let first_usage: BTreeMap<&str, Option<u64>> = first
        .containers
        .iter()
        .map(|c| (c.id.as_str(), c.stats.cpu.usage_ns))
        .collect();
    for e in first
        .errors
        .iter()
        .chain(&second.errors)
        .chain(&third.errors)
    {
        eprintln!("v2_probe: sweep error: {e}");
    }
    let out = serde_json::json!({
        "hierarchy": collector.hierarchy(),
        "first": {
            "timestamp_ms": first.timestamp_ms,
            "duration_us": first.duration_us,
            "cpu_usage_ns": first_usage,
        },
        "second": second,
        "third": {
            "write_errors": writes,
            "mem_spec": spec_after,
            "spec_interval_ms": collector_spec_interval_ms(),
        },
    });
    match serde_json::to_string_pretty(&out) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("v2_probe: cannot encode the snapshot: {e}");
            ExitCode::from(1)
        }
    }
}
