//! The churn soak, short: `benches/soak/churn.py` with a few dozen containers staying while
//! ten a second come and go for half a minute, against this build's exporter and a real
//! InfluxDB. Every start and stop is seen once, no sweep fails, and what the exporter holds
//! (descriptors, inotify watches, threads) is back to where it was once the churn stops. The
//! ten-minute run with a thousand containers, and its figures, are in docs/RELIABILITY.md.

use std::process::Command;

use tests::{output_text, repo_root, SETUP};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

#[test]
fn every_start_and_stop_is_seen_and_nothing_is_left_held() {
    tests::require_root();
    let out = Command::new("python3")
        .arg(repo_root().join("benches/soak/churn.py"))
        .envs([
            ("EXPORTER", BIN),
            ("STABLE", "30"),
            ("RATE", "600"),
            ("DURATION", "25"),
            ("WARMUP", "5"),
            ("SETTLE", "6"),
            ("INTERVAL", "500ms"),
            ("MIN_LIFE", "2"),
            ("MAX_LIFE", "8"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("python3 benches/soak/churn.py: {e}; set up with `{SETUP}`"));
    let text = output_text(&out);
    assert!(out.status.success(), "churn.py failed: {text}");
    let line = String::from_utf8_lossy(&out.stdout);
    let f: serde_json::Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("{e}: churn.py printed {text}"));

    // Numbers as figures: Python prints some as integers, some as floats.
    let n = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("no figure: {f}"));
    let created = n(&f["created"]);
    assert!(created >= 200.0, "too little churn: {f}");
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
    assert_eq!(n(&f["sweep_errors"]), 0.0, "{f}");
    assert_eq!(n(&f["scrapes_failed"]), 0.0, "{f}");
    let (c0, c1) = (
        n(&f["containers"]["before"]),
        n(&f["containers"]["settled"]),
    );
    assert_eq!(c1, c0, "{f}");
    for what in ["held_descriptors", "inotify_watches"] {
        assert_eq!(
            n(&f[what]["settled"]),
            n(&f[what]["before"]),
            "{what} not back: {f}"
        );
    }
    let (fds0, fds1) = (f["fds"]["before"].as_i64(), f["fds"]["settled"].as_i64());
    // A scrape's connection may be open at either reading.
    assert!(
        fds1.zip(fds0).is_some_and(|(a, b)| a <= b + 1),
        "descriptors not back: {f}"
    );
    // Up to two /metrics writer threads may still be in tokio's blocking pool (kept 10 s).
    let (t0, t1) = (
        f["threads"]["before"].as_i64(),
        f["threads"]["settled"].as_i64(),
    );
    assert!(
        t1.zip(t0).is_some_and(|(a, b)| a <= b + 2),
        "threads not back: {f}"
    );
    assert_eq!(n(&f["sink"]["dropped"]), 0.0, "{f}");
    assert!(n(&f["sink"]["sent"]) > 0.0, "{f}");
}
