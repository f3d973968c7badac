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
    interrupt(&mut child, "push_influx");
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

/// Sends SIGINT (Ctrl-C) and waits for the example to exit, successfully.
fn interrupt(child: &mut std::process::Child, name: &str) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not exit on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{name}: {status:?}");
}

/// Waits up to `secs` for `f` to give a value.
fn within<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// serve_registry serves the embedder's own metric and the containers' series from one
/// prometheus-client registry.
#[test]
fn serve_registry_serves_its_own_metrics_beside_the_containers() {
    tests::require_root();
    let mut cg = TestCgroup::new("ccol-example-serve");
    cg.spawn(&mut sleeper());
    let port = tests::servers::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let mut child = Command::new(example("serve_registry"))
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("the serve_registry example");
    let needle = format!("id=\"{}\"", cg.id);
    let body = within(20, "no series of the test's cgroup served", || {
        let r = tests::try_http_request(addr, "GET", "/metrics", &[], b"").ok()?;
        let text = r.text();
        (r.status == 200 && text.contains(&needle)).then_some(text)
    });
    interrupt(&mut child, "serve_registry");
    assert!(
        body.contains("# TYPE myapp_scrapes counter") && body.contains("myapp_scrapes_total "),
        "the embedder's own metric: {body}"
    );
    let cpu = body
        .lines()
        .find(|l| l.starts_with("container_cpu_usage_seconds_total{") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no CPU series of {}: {body}", cg.id));
    let value: f64 = cpu
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    assert!(value >= 0.0, "{cpu}");
    let tasks = body
        .lines()
        .find(|l| l.starts_with("container_tasks_state{") && l.contains(&needle))
        .is_some();
    assert!(tasks, "the task series: {body}");
    assert!(
        body.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}

/// custom_sink writes each sweep's containers, and the events, through a `Sink` the example
/// defines, as JSON lines.
#[test]
fn custom_sink_writes_containers_and_events_as_json_lines() {
    tests::require_root();
    let mut cg = TestCgroup::new("ccol-example-sink");
    cg.spawn(&mut sleeper());
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("containers.jsonl");
    let mut child = Command::new(example("custom_sink"))
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .expect("the custom_sink example");
    let lines = |out: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    within(20, "no line for the test's cgroup", || {
        lines(&out)
            .iter()
            .any(|v| v["id"] == cg.id.as_str())
            .then_some(())
    });
    // Found after the first sweep: a `started` event.
    let mut later = TestCgroup::new("ccol-example-sink-later");
    later.spawn(&mut sleeper());
    within(20, "no started event for the later cgroup", || {
        lines(&out)
            .iter()
            .any(|v| v["kind"] == "started" && v["id"] == later.id.as_str())
            .then_some(())
    });
    interrupt(&mut child, "custom_sink");
    let all = lines(&out);
    let mine = all
        .iter()
        .rev()
        .find(|v| v["id"] == cg.id.as_str() && v.get("cpu_usage_ns").is_some())
        .expect("a container line");
    assert!(mine["cpu_usage_ns"].is_u64(), "{mine}");
    assert!(mine["memory_working_set_bytes"].is_u64(), "{mine}");
    assert_eq!(mine["tasks"], 1, "{mine}");
}

/// watch_events prints a container that starts, an OOM kill in it, a miner found in it and
/// its stop, each as the sweeps notice them.
#[test]
fn watch_events_prints_starts_oom_kills_findings_and_stops() {
    tests::require_root();
    let mut child = Command::new(example("watch_events"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the watch_events example");
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let printed = printed.clone();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                printed.lock().unwrap().push(line);
            }
        })
    };
    let seen = |pred: &dyn Fn(&str) -> bool| printed.lock().unwrap().iter().any(|l| pred(l));
    within(20, "the first sweep", || {
        seen(&|l| l.starts_with("watching ")).then_some(())
    });

    let mut cg = TestCgroup::new("ccol-example-events");
    cg.spawn(&mut sleeper());
    let id = cg.id.clone();
    within(20, "no started line", || {
        seen(&|l| l.starts_with("started ") && l.ends_with(&id)).then_some(())
    });

    // An OOM kill: 32 MiB and a reader of an endless line.
    cg.set("memory", "memory.limit_in_bytes", "33554432");
    cg.set_where_present("memory.memsw.limit_in_bytes", "33554432");
    cg.spawn(Command::new("tail").arg("/dev/zero"));
    within(30, "no oom_kill line", || {
        seen(&|l| l.starts_with("oom_kill ") && l.contains(&id)).then_some(())
    });

    // A miner, by its name.
    let dir = tempfile::tempdir().expect("a temp dir");
    let xmrig = dir.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).expect("copy sleep");
    cg.spawn(Command::new(&xmrig).arg("600"));
    within(20, "no miner_process line", || {
        seen(&|l| l.starts_with("miner_process ") && l.contains(&id) && l.contains("xmrig"))
            .then_some(())
    });

    drop(cg);
    within(20, "no stopped line", || {
        seen(&|l| l.starts_with("stopped ") && l.ends_with(&id)).then_some(())
    });
    interrupt(&mut child, "watch_events");
    reader.join().expect("the reader");
}
