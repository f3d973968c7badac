//! The security findings through the exporter binary with a real (private) dockerd: a
//! container that drops a binary into its writable layer and runs a miner's command line is
//! counted and reported with its name, image and process; an ordinary one beside it fires
//! nothing; and a per-image policy reports a program outside it, not its own programs nor the
//! runtime's.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::runtimes::{env, Daemon, Docker};
use tests::{samples, Exporter};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

/// How long a finding, a count or a name may take to show.
const DEADLINE: Duration = Duration::from_secs(10);

const KINDS: [&str; 9] = [
    "miner_process",
    "miner_port_connection",
    "reverse_shell",
    "exec_from_writable_layer",
    "fileless_exec",
    "new_listener",
    "unexpected_process",
    "new_peer",
    "unauthorized_connection",
];

/// The exporter on the daemon's containers: security on (its default), short intervals, the
/// other runtimes off.
fn exporter(d: &Daemon, extra: &[&str]) -> Exporter {
    let flags = d.exporter_flags();
    let mut args = vec![
        "--housekeeping.interval",
        "250ms",
        "--containers.process-interval",
        "250ms",
        "--cgroups.include",
        "/docker",
    ];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let exp = Exporter::start(BIN, &args);
    assert_eq!(exp.get("/healthz").status, 200);
    exp
}

/// One container's view through the exporter: its finding counts by kind, processes started
/// and events.
struct View {
    findings: Vec<(String, f64)>,
    started: Option<f64>,
    events: Vec<Value>,
}

impl View {
    fn count(&self, kind: &str) -> Option<f64> {
        self.findings
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, v)| *v)
    }

    fn findings_of(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["kind"] == kind && e.get("finding").is_some())
            .collect()
    }
}

/// Reads `/metrics` and `/api/v1/events` for the container `id`, requiring its series to carry
/// its `name` and `image` labels.
fn view(exp: &Exporter, id: &str, name: &str, image: &str) -> View {
    let body = exp.get("/metrics").text();
    let sel = [
        format!("id=\"/docker/{id}\""),
        format!("name=\"{name}\""),
        format!("image=\"{image}\""),
    ];
    let mine = |l: &str| sel.iter().all(|s| l.contains(s.as_str()));
    let findings = samples(&body, "container_security_findings_total")
        .into_iter()
        .filter(|(l, _)| mine(l))
        .filter_map(|(l, v)| {
            let kind = l.split("kind=\"").nth(1)?.split('"').next()?;
            Some((kind.to_string(), v))
        })
        .collect();
    let started = samples(&body, "container_processes_started_total")
        .into_iter()
        .find(|(l, _)| mine(l))
        .map(|(_, v)| v);
    let all: Value =
        serde_json::from_slice(&exp.get("/api/v1/events").body).expect("/api/v1/events is JSON");
    let events = all
        .as_array()
        .expect("a list of events")
        .iter()
        .filter(|e| e["id"] == format!("/docker/{id}").as_str())
        .cloned()
        .collect();
    View {
        findings,
        started,
        events,
    }
}

/// Polls the container's view every 100 ms until `done` holds; fails with the view and the
/// exporter's log after [`DEADLINE`].
fn wait_for(
    exp: &Exporter,
    (id, name, image): (&str, &str, &str),
    what: &str,
    mut done: impl FnMut(&View) -> bool,
) -> View {
    let start = Instant::now();
    loop {
        let v = view(exp, id, name, image);
        if done(&v) {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{name}: {what} not seen within {DEADLINE:?}; findings {:?}, started {:?}, events {:#?}\nexporter log:\n{}",
            v.findings,
            v.started,
            v.events,
            exp.log.lock().map(|l| l.clone()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A compromised container (a binary copied into its writable layer and run from there, and a
/// `docker exec` with a pool on its command line) beside a quiet one (a shell looping over
/// `ls` and `sleep`, and a `docker exec` of an ordinary command), in one exporter.
#[test]
fn a_compromised_container_is_reported_and_a_quiet_one_is_not() {
    let d = Daemon::new("docker");
    d.start();
    let image = env(&["docker-image", d.dir()]);
    let mut docker = Docker::new(&d);
    let exp = exporter(&d, &[]);

    let bad = tests::unique("sec-bad");
    let bad_id = docker.start(
        &bad,
        &image,
        &[
            "sh",
            "-c",
            "cp /bin/busybox /tmp/sleep && exec /tmp/sleep 600",
        ],
    );
    let quiet = tests::unique("sec-quiet");
    let quiet_id = docker.start(
        &quiet,
        &image,
        &["sh", "-c", "while :; do ls / >/dev/null; sleep 0.2; done"],
    );
    let bad_c = (bad_id.as_str(), bad.as_str(), image.as_str());
    let quiet_c = (quiet_id.as_str(), quiet.as_str(), image.as_str());

    let v = wait_for(&exp, bad_c, "exec_from_writable_layer", |v| {
        v.count("exec_from_writable_layer") == Some(1.0)
    });
    let f = v.findings_of("exec_from_writable_layer");
    assert_eq!(f.len(), 1, "{:#?}", v.events);
    let e = f[0];
    assert_eq!(e["name"], bad.as_str(), "{e}");
    assert_eq!(e["image"], image.as_str(), "{e}");
    assert_eq!(e["container_id"], bad_id.as_str(), "{e}");
    assert_eq!(e["runtime"], "docker", "{e}");
    assert_eq!(e["finding"]["kind"], "exec_from_writable_layer", "{e}");
    let p = &e["finding"]["process"];
    assert_eq!(p["exe"], "/tmp/sleep", "{e}");
    assert_eq!(p["cmdline"], "/tmp/sleep 600", "{e}");
    assert_eq!(p["comm"], "sleep", "{e}");
    assert!(p["pid"].as_u64().is_some_and(|pid| pid > 1), "{e}");

    // The shell stays (a command follows `sleep`) with the pool on its command line. With
    // `exec sleep 600` instead, the shell would become `sleep 600` within a millisecond,
    // before anything could read its arguments from /proc.
    docker.run(&[
        "exec",
        "-d",
        &bad_id,
        "sh",
        "-c",
        "sleep 600; :",
        "x",
        "stratum+tcp://pool.invalid:3333",
    ]);
    let v = wait_for(&exp, bad_c, "miner_process", |v| {
        v.count("miner_process") == Some(1.0)
    });
    let f = v.findings_of("miner_process");
    assert_eq!(f.len(), 1, "{:#?}", v.events);
    let e = f[0];
    assert_eq!(e["name"], bad.as_str(), "{e}");
    assert_eq!(e["image"], image.as_str(), "{e}");
    let p = &e["finding"]["process"];
    assert_eq!(
        p["cmdline"], "sh -c sleep 600; : x stratum+tcp://pool.invalid:3333",
        "{e}"
    );
    assert_eq!(p["comm"], "sh", "{e}");
    assert_eq!(p["exe"], "/bin/busybox", "{e}");

    // An ordinary `docker exec` in the quiet one, counted among its processes.
    let before = view(&exp, &quiet_id, &quiet, &image).started.unwrap_or(0.0);
    docker.run(&["exec", &quiet_id, "ls", "/bin"]);
    let v = wait_for(&exp, quiet_c, "its processes counted", |v| {
        v.started.is_some_and(|n| n > before && n >= 10.0)
    });
    assert_eq!(v.findings.len(), KINDS.len(), "{:?}", v.findings);
    for k in KINDS {
        assert_eq!(v.count(k), Some(0.0), "{quiet}: {k}: {:?}", v.findings);
    }
    let found: Vec<_> = v
        .events
        .iter()
        .filter(|e| e.get("finding").is_some())
        .collect();
    assert!(found.is_empty(), "{quiet}: {found:#?}");

    // Only what it did: each count once, no other kind.
    let v = view(&exp, &bad_id, &bad, &image);
    for k in KINDS {
        let want = match k {
            "miner_process" | "exec_from_writable_layer" => 1.0,
            _ => 0.0,
        };
        assert_eq!(v.count(k), Some(want), "{bad}: {k}: {:?}", v.findings);
    }
    assert!(v.started.is_some_and(|n| n >= 3.0), "{:?}", v.started);
    let kinds: Vec<_> = v
        .events
        .iter()
        .filter(|e| e.get("finding").is_some())
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

/// A policy for the image allows `sh` and `sleep`: a `docker exec` of `ls` is an
/// `unexpected_process`; the container's shell and sleeps are not, nor runc's init, which
/// sits in the container's cgroup at each start and each `docker exec` until it execs the
/// program.
#[test]
fn a_program_outside_the_images_policy_is_reported() {
    let d = Daemon::new("docker");
    d.start();
    let image = env(&["docker-image", d.dir(), "ccol-bb-policy:1"]);
    let mut docker = Docker::new(&d);
    let dir = tempfile::tempdir().expect("a temp dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[image]]\nimage = \"ccol-bb-policy:*\"\nallowed_processes = [\"sh\", \"sleep\"]\n",
    )
    .expect("the policy file");
    let exp = exporter(
        &d,
        &[
            "--containers.policy-file",
            policy.to_str().expect("a utf-8 path"),
        ],
    );
    let name = tests::unique("sec-policy");
    // `/bin/sleep` by its path: busybox-static's shell runs a bare `sleep` by executing
    // /proc/self/exe, whose name is `exe` until busybox renames itself a moment later; the
    // exec watch looks at that moment and sees `exe` running /bin/busybox, which a policy
    // of names does not allow (a known limit of matching `comm` and the executable only).
    let id = docker.start(
        &name,
        &image,
        &["sh", "-c", "while :; do /bin/sleep 0.2; done"],
    );
    let c = (id.as_str(), name.as_str(), image.as_str());
    wait_for(&exp, c, "its processes counted", |v| {
        v.started.is_some_and(|n| n >= 3.0)
    });
    // Allowed programs through `docker exec`: each brings a runc init into the cgroup.
    for _ in 0..5 {
        docker.run(&["exec", &id, "/bin/sleep", "0.05"]);
    }
    // An `ls` that has exited before the exec watch reads it is counted as gone, not judged
    // (`ls /` lives for a millisecond, and on a busy machine the watch may come later): this
    // one walks /sys, some 100 ms, and after six sweeps without the finding another
    // `docker exec` gives it another chance.
    let start = Instant::now();
    let v = 'found: loop {
        docker.run(&["exec", "-d", &id, "ls", "-lR", "/sys"]);
        let tried = Instant::now();
        let mut v = view(&exp, &id, &name, &image);
        while tried.elapsed() < Duration::from_millis(1500) {
            if v.count("unexpected_process").is_some_and(|n| n >= 1.0) {
                break 'found v;
            }
            std::thread::sleep(Duration::from_millis(100));
            v = view(&exp, &id, &name, &image);
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no unexpected_process within {DEADLINE:?}: {:?} {:#?}\nexporter log:\n{}",
            v.findings,
            v.events,
            exp.log.lock().map(|l| l.clone()).unwrap_or_default()
        );
    };
    // A few more of its sleeps counted, for anything late to show.
    let seen = v.started.unwrap_or(0.0);
    let v = wait_for(&exp, c, "more of its processes counted", |v| {
        v.started.is_some_and(|n| n >= seen + 3.0)
    });
    for k in KINDS {
        let want = if k == "unexpected_process" { 1.0 } else { 0.0 };
        assert_eq!(
            v.count(k),
            Some(want),
            "{k}: {:?} {:#?}",
            v.findings,
            v.events
        );
    }
    let f = v.findings_of("unexpected_process");
    assert_eq!(f.len(), 1, "only ls: {f:#?}");
    let e = f[0];
    assert_eq!(e["name"], name.as_str(), "{e}");
    assert_eq!(e["image"], image.as_str(), "{e}");
    let p = &e["finding"]["process"];
    assert_eq!(p["comm"], "ls", "{e}");
    // Read as it exited, a process has no executable or command line left to read.
    assert!(p["exe"] == "/bin/busybox" || p["exe"] == "", "{e}");
    assert!(p["cmdline"] == "ls -lR /sys" || p["cmdline"] == "", "{e}");
}
