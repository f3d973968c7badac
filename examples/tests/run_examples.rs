//! The examples run, briefly, against real cgroups (and a real InfluxDB), and print or push
//! what their docs say. `cargo test` builds them beside this test (target/.../examples/).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::servers::Influxd;
use tests::{sleeper, TestCgroup, SETUP};

/// An example's binary, as `cargo test` builds it: `examples/<name>`, else the newest
/// `examples/<name>-<hash>`, beside the directory of this test's binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples"))
        .expect("the target directory");
    let plain = dir.join(name);
    if plain.is_file() {
        return plain;
    }
    let prefix = format!("{name}-");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; build the examples with `{SETUP}`", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.contains('.'))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!(
                "no {name} example in {}; build it with `{SETUP}`",
                dir.display()
            )
        })
}

#[test]
fn snapshot_prints_this_machines_containers_as_json() {
    tests::require_root();
    let mut cg = TestCgroup::new("ccol-example");
    cg.spawn(&mut sleeper());
    let out = Command::new(example("snapshot"))
        .output()
        .expect("the snapshot example");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let c = v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["id"] == cg.id.as_str())
        .unwrap_or_else(|| panic!("no {} in the printed snapshot", cg.id));
    assert!(c["stats"]["cpu"]["usage_ns"].is_u64(), "{c}");
    assert_eq!(c["stats"]["pids"]["current"], 1, "{c}");
}

/// push_influx pushes its first sweep and, on Ctrl-C, delivers it before it exits.
#[test]
fn push_influx_pushes_until_ctrl_c_and_delivers_the_last_sweep() {
    tests::require_root();
    let mut cg = TestCgroup::new("ccol-example-push");
    cg.spawn(&mut sleeper());
    let db = Influxd::start();
    db.query("", "CREATE DATABASE ccol_example");
    let mut child = Command::new(example("push_influx"))
        .args([db.url().as_str(), "ccol_example"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the push_influx example");
    std::thread::sleep(Duration::from_secs(2));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "push_influx did not exit on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let q = format!(
        "SELECT count(\"usage_seconds\") FROM \"container_cpu\" WHERE \"id\" = '{}'",
        cg.id
    );
    let v = db.query("ccol_example", &q);
    let n = v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0);
    assert!(n >= 1, "no point of {} in InfluxDB: {v}", cg.id);
}
