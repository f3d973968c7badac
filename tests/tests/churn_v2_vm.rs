//! The churn soak on a real cgroup v2 kernel, short: `tests/vm/run.sh` boots Debian's 6.1
//! kernel under qemu (TCG) with this build's exporter in `/extra` and runs the `vm_churn`
//! probe, which keeps 50 containers while 5 a second come and go for 45 s (each a cgroup
//! with a `sleep` in a network namespace of its own, living 4 to 15 s: several sweeps at 1 s)
//! and prints churn.py's figures. Every start and stop is seen once, no sweep fails, and what
//! the exporter holds is back where it was once the churn stops. About two minutes of VM; the
//! longer run (`benches/soak/churn-v2.sh`) and its figures are in docs/RELIABILITY.md.

use serde_json::Value;

#[test]
fn every_start_and_stop_is_seen_on_cgroup_v2() {
    let out = tests::vm::run_probe(
        env!("CARGO_BIN_EXE_vm_churn"),
        &[
            "--stable",
            "50",
            "--rate",
            "300",
            "--duration",
            "45",
            "--warmup",
            "20",
            "--settle",
            "8",
            "--min-life",
            "4",
            "--max-life",
            "15",
        ],
        &[
            ("VM_EXTRA", env!("CARGO_BIN_EXE_exporter")),
            ("VM_MEM", "1024"),
            ("VM_CPUS", "2"),
            ("VM_TIMEOUT", "300"),
        ],
    );
    let text = String::from_utf8_lossy(&out);
    let f: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("vm_churn printed no JSON ({e}): {text}"));
    eprintln!("vm_churn figures: {f}");
    let n = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("no figure: {f}"));

    assert_eq!(
        f["kernel"].as_str().map(|k| k.starts_with("6.1.")),
        Some(true),
        "{f}"
    );
    let created = n(&f["created"]);
    assert!(created >= 150.0, "too little churn: {f}");
    assert_eq!(n(&f["sweep_errors"]), 0.0, "{f}");
    assert_eq!(
        n(&f["started_events"]),
        created,
        "a start missed or invented: {f}"
    );
    assert_eq!(
        n(&f["stopped_events"]),
        n(&f["destroyed"]),
        "a stop missed or invented: {f}"
    );
    assert_eq!(n(&f["destroyed"]), created, "{f}");
    for list in [
        "missed_starts",
        "missed_stops",
        "invented_starts",
        "invented_stops",
    ] {
        assert_eq!(f[list].as_array().map(Vec::len), Some(0), "{list}: {f}");
    }
    assert_eq!(n(&f["scrapes_failed"]), 0.0, "{f}");

    for what in ["containers", "held_descriptors", "inotify_watches"] {
        assert_eq!(
            n(&f[what]["settled"]),
            n(&f[what]["before"]),
            "{what} not back: {f}"
        );
    }
    // A scrape's connection may be open at either reading.
    assert!(
        n(&f["fds"]["settled"]) <= n(&f["fds"]["before"]) + 1.0,
        "descriptors not back: {f}"
    );
    // Up to two /metrics writer threads may still be in tokio's blocking pool (kept 10 s).
    assert!(
        n(&f["threads"]["settled"]) <= n(&f["threads"]["before"]) + 2.0,
        "threads not back: {f}"
    );

    // Flat after the warm-up: the median of the churn's second half within 10% of the first
    // half's, and 2 MB for the allocator's granularity at this small size. (One reading can
    // meet a sweep's passing buffers: the medians are of a reading a second.)
    let early = n(&f["rss_mb"]["early_median"]);
    let late = n(&f["rss_mb"]["late_median"]);
    assert!(late <= early * 1.1 + 2.0, "RSS grew after the warm-up: {f}");
}
