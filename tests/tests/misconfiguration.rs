//! The mistakes of a first deployment are loud: a host path that is not what it should be stops
//! the exporter with one line naming the flag (exit 2), or is one warning line and a label of
//! `collector_setup_info` when it works in part; a hierarchy that goes away makes `/healthz`
//! answer 503 with the reason, and the root cgroup never "stops"; `/healthz` can be left out of
//! basic auth for probes; `collector-exporter check` names what cannot work and exits non-zero.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{require_root, Exporter, NO_RUNTIMES, SETUP};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

/// Runs the exporter with `args` on a free port, expecting it to refuse to start.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{BIN}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_sysfs_without_the_cgroup_mounts_stops_the_exporter() {
    require_root();
    let empty = tempfile::tempdir().expect("a temp dir");
    let path = empty.path().to_str().expect("utf-8");
    let (code, err) = refused(&["--path.sysfs", path]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&format!("--path.sysfs={path}")), "{err}");
    assert!(err.contains("cgroup mounts"), "what was not found: {err}");
    assert!(err.contains("expected the host's /sys"), "{err}");
}

#[test]
fn a_procfs_that_is_no_proc_filesystem_stops_the_exporter() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_str().expect("utf-8");
    let (code, err) = refused(&["--path.procfs", path]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&format!("--path.procfs={path}")), "{err}");
    assert!(err.contains("not a proc filesystem"), "{err}");
    assert!(err.contains("expected the host's /proc"), "{err}");
    // /sys is a real filesystem too, only the wrong one.
    let (code, err) = refused(&["--path.procfs", "/sys"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sysfs"), "what was found: {err}");
}

/// The series `name` with every label, from the exposition.
fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .collect()
}

#[test]
fn a_rootfs_that_is_not_the_hosts_is_one_warning_and_a_label() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_str().expect("utf-8");
    let exp = Exporter::start(
        BIN,
        &["--housekeeping.interval", "1s", "--path.rootfs", path],
    );
    let warning = format!("--path.rootfs={path}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !exp.log.lock().unwrap().contains(&warning) {
        assert!(
            Instant::now() < deadline,
            "no warning naming {warning}: {}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = exp.log.lock().unwrap().clone();
    assert_eq!(
        log.lines().filter(|l| l.contains(&warning)).count(),
        1,
        "{log}"
    );
    assert!(log.contains("writable layers will not be found"), "{log}");
    let metrics = exp.get("/metrics").text();
    let info = series(&metrics, "collector_setup_info");
    assert_eq!(info.len(), 1, "{info:?}");
    for label in [
        "rootfs_ok=\"false\"",
        "procfs_ok=\"true\"",
        "sysfs_ok=\"true\"",
        "exec_events=\"",
        "setup=\"",
    ] {
        assert!(info[0].contains(label), "{label} in {}", info[0]);
    }
    assert_eq!(series(&metrics, "collector_build_info").len(), 1);
    assert_eq!(exp.get("/healthz").status, 200);
}

/// A cgroup2 hierarchy mounted under a directory of the test's, standing for a host's /sys
/// whose other cgroup mounts are missing; unmounted (lazily) when dropped.
struct FakeSys {
    dir: tempfile::TempDir,
    mounted: Option<PathBuf>,
}

impl FakeSys {
    fn new() -> FakeSys {
        require_root();
        let dir = tempfile::tempdir().expect("a temp dir");
        // Where the host's mount table puts cgroup2 (`/sys/fs/cgroup/unified` on a hybrid
        // host, `/sys/fs/cgroup` on a unified one), under the fake /sys.
        let table = std::fs::read_to_string("/proc/1/mountinfo").expect("/proc/1/mountinfo");
        let point = table
            .lines()
            .find(|l| l.contains(" - cgroup2 "))
            .and_then(|l| l.split(' ').nth(4))
            .and_then(|p| p.strip_prefix("/sys/"))
            .unwrap_or_else(|| panic!("no cgroup2 mount under /sys in the mount table"));
        let at = dir.path().join(point);
        std::fs::create_dir_all(&at).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "cgroup2", "none"])
            .arg(&at)
            .output()
            .unwrap_or_else(|e| panic!("mount not runnable ({e}); `{SETUP}`"));
        assert!(out.status.success(), "mount cgroup2: {out:?}");
        FakeSys {
            dir,
            mounted: Some(at),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn unmount(&mut self) {
        if let Some(at) = self.mounted.take() {
            let out = Command::new("umount").arg("-l").arg(&at).output();
            assert!(
                out.as_ref().is_ok_and(|o| o.status.success()),
                "umount {}: {out:?}",
                at.display()
            );
        }
    }
}

impl Drop for FakeSys {
    fn drop(&mut self) {
        if let Some(at) = self.mounted.take() {
            let _ = Command::new("umount").arg("-l").arg(&at).status();
        }
    }
}

#[test]
fn a_hierarchy_that_goes_away_makes_healthz_say_why() {
    let mut sys = FakeSys::new();
    let path = sys.path().to_str().expect("utf-8").to_string();
    let exp = Exporter::start(
        BIN,
        &["--housekeeping.interval", "300ms", "--path.sysfs", &path],
    );
    let h = exp.get("/healthz");
    assert_eq!(h.status, 200, "{}", h.text());
    // The cgroup mounts other than cgroup2's are missing: one warning, a label.
    let setup = exp.get("/metrics").text();
    let info = series(&setup, "collector_setup_info");
    assert!(info[0].contains("sysfs_ok=\"false\""), "{info:?}");
    assert!(
        exp.log.lock().unwrap().contains("cgroup mounts missing"),
        "{}",
        exp.log.lock().unwrap()
    );

    sys.unmount();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let h = exp.get("/healthz");
        if h.status == 503 {
            break h.text();
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the hierarchy went",
            h.status
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.contains("not mounted"), "{answer}");
    assert!(answer.contains(&path), "names where it looked: {answer}");
    // A few sweeps later: the machine's root never stopped.
    std::thread::sleep(Duration::from_secs(1));
    let events = exp.get("/api/v1/events").text();
    let v: serde_json::Value = serde_json::from_str(&events).expect("events JSON");
    let stopped_root = v
        .as_array()
        .expect("events: an array")
        .iter()
        .any(|e| e["kind"] == "stopped" && e["id"] == "/");
    assert!(!stopped_root, "a stopped event for /: {events}");
}

/// A web config with basic auth for one user.
fn auth_config(dir: &Path) -> String {
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let p = dir.join("web.yml");
    std::fs::write(&p, format!("basic_auth_users:\n  alice: '{hash}'\n")).expect("web.yml");
    p.to_str().expect("utf-8").to_string()
}

#[test]
fn healthz_can_be_left_out_of_basic_auth_for_probes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let web = auth_config(dir.path());
    let guarded = Exporter::start(BIN, &["--web.config.file", &web]);
    assert_eq!(guarded.get("/healthz").status, 401);
    let open = Exporter::start(
        BIN,
        &["--web.config.file", &web, "--web.healthz-without-auth"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.get("/healthz").status != 200 {
        assert!(Instant::now() < deadline, "/healthz not 200 without auth");
        std::thread::sleep(Duration::from_millis(100));
    }
    for path in ["/metrics", "/api/v1/containers", "/api/v1/events", "/"] {
        assert_eq!(open.get(path).status, 401, "{path} without credentials");
    }
}

#[test]
fn check_names_an_unreachable_sink_and_fails() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // A port nothing listens on.
    let port = tests::servers::free_port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[sinks]]\ntype = \"influxdb\"\nname = \"central\"\nurl = \"http://127.0.0.1:{port}\"\ndatabase = \"ccol\"\ntimeout = \"2s\"\n"
        ),
    )
    .expect("config");
    let cfg = cfg.to_str().expect("utf-8");
    let out = Command::new(BIN)
        .args(["check", "--format", "json", "--config.file", cfg])
        .args(NO_RUNTIMES)
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("check's JSON");
    assert_eq!(v["ok"], false, "{v}");
    let rows = v["checks"].as_array().expect("checks");
    let sink = rows
        .iter()
        .find(|r| r["check"] == "sink central (influxdb)")
        .unwrap_or_else(|| panic!("no row for the sink: {v:#}"));
    assert_eq!(sink["state"], "fail", "{sink}");
    assert!(
        sink["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("127.0.0.1:{port}"))),
        "{sink}"
    );
    // Everything else on this host works.
    for r in rows
        .iter()
        .filter(|r| r["check"] != "sink central (influxdb)")
    {
        assert_ne!(r["state"], "fail", "{r}");
    }
    for name in ["path.procfs", "path.sysfs", "containers", "exec events"] {
        assert!(rows.iter().any(|r| r["check"] == name), "no {name} row");
    }

    // The table, for people; reachable sinks (a real InfluxDB with the database, a real
    // VictoriaMetrics taking remote write) pass, each through a write of nothing.
    let db = tests::servers::Influxd::start();
    db.query("", "CREATE DATABASE ccol");
    let vm = tests::servers::Victoria::start();
    let ok_cfg = dir.path().join("ok.toml");
    std::fs::write(
        &ok_cfg,
        format!(
            "[[sinks]]\ntype = \"influxdb\"\nname = \"central\"\nurl = \"{}\"\ndatabase = \"ccol\"\n\n[[sinks]]\ntype = \"remote_write\"\nname = \"vm\"\nurl = \"{}/api/v1/write\"\n",
            db.url(),
            vm.url()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["check", "--config.file", ok_cfg.to_str().expect("utf-8")])
        .args(NO_RUNTIMES)
        .output()
        .expect("check");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("sink central (influxdb)"))
        .unwrap_or_else(|| panic!("no sink row: {table}"));
    assert!(line.contains(" ok "), "{line}");
    assert!(line.contains("HTTP 204"), "a dry write, answered: {line}");
    let line = table
        .lines()
        .find(|l| l.starts_with("sink vm (remote_write)"))
        .unwrap_or_else(|| panic!("no remote_write row: {table}"));
    assert!(line.contains(" ok "), "{line}");
    assert!(
        line.contains("HTTP 204"),
        "an empty write request, answered: {line}"
    );
}
