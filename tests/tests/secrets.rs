//! Secrets never leave the process: the sinks' passwords, tokens and API keys, and the web
//! config's basic-auth password, appear in no answer of the exporter (`/metrics`, every
//! `/api/v1/*` path, the page), in no log line at debug level (where failed pushes to
//! unreachable sinks are reported with their URLs), and not in `check`'s output.

use std::process::Command;
use std::time::Duration;

use tests::{unique, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

#[test]
fn no_secret_appears_in_answers_logs_or_check() {
    let cg = TestCgroup::new("ccol-secrets");
    let secrets = [
        unique("influx-pass"),
        unique("rw-token"),
        unique("es-key"),
        unique("web-pass"),
    ];
    let dir = tempfile::tempdir().expect("a temp dir");
    let key_file = dir.path().join("es-key");
    std::fs::write(&key_file, &secrets[2]).expect("key file");
    // Port 9 (discard) on loopback: nothing listens, so every push fails and is logged.
    let config = dir.path().join("exporter.toml");
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\ntype = \"influxdb\"\nurl = \"http://127.0.0.1:9\"\ndatabase = \"d\"\n\
             username = \"u\"\npassword = \"{}\"\ninterval = \"1s\"\n\n\
             [[sinks]]\ntype = \"remote_write\"\nurl = \"http://127.0.0.1:9/api/v1/push\"\n\
             bearer_token = \"{}\"\ninterval = \"1s\"\n\n\
             [[sinks]]\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:9\"\n\
             api_key_file = \"{}\"\ninterval = \"1s\"\n",
            secrets[0],
            secrets[1],
            key_file.display()
        ),
    )
    .expect("config");
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash(&secrets[3], 4).expect("bcrypt");
    std::fs::write(&web, format!("basic_auth_users:\n  admin: {hash}\n")).expect("web config");

    let exp = Exporter::start(
        BIN,
        &[
            "--config.file",
            config.to_str().expect("utf-8"),
            "--web.config.file",
            web.to_str().expect("utf-8"),
            "--housekeeping.interval",
            "300ms",
            "--cgroups.include",
            &cg.id,
            "--log.level",
            "debug",
        ],
    );
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("admin:{}", secrets[3])
        )
    );
    // Pushes fail and are retried for a few seconds.
    std::thread::sleep(Duration::from_secs(3));
    let mut answers = String::new();
    for path in [
        "/metrics",
        "/healthz",
        "/",
        "/ui/events",
        "/api/v1/containers",
        "/api/v1/events",
        "/api/v1/connections",
        "/api/v1/machine",
        "/api/v1/overview",
        &format!("/api/v1/containers{}", cg.id),
        &format!("/api/v1/containers{}/history", cg.id),
    ] {
        let r = exp.get_with(path, &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        answers.push_str(&r.text());
        // A wrong password is refused, and the refusal does not echo what was sent.
        let bad = exp.get_with(path, &[("Authorization", "Basic YWRtaW46d3Jvbmc=")]);
        assert_eq!(bad.status, 401, "{path}");
        answers.push_str(&bad.text());
    }
    assert!(
        answers.contains("collector_sink_retries_total"),
        "the sinks were tried"
    );
    let check = Command::new(BIN)
        .args(["check", "--format", "json", "--config.file"])
        .arg(&config)
        .output()
        .expect("check");
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        check_text.contains("127.0.0.1:9"),
        "check named the sinks: {check_text}"
    );
    drop(exp.log.lock().map(|l| l.len()));
    let log = exp.log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        log.contains("127.0.0.1:9"),
        "the failed pushes were logged: {log}"
    );
    for s in &secrets {
        assert!(!answers.contains(s.as_str()), "{s} in an answer");
        assert!(!log.contains(s.as_str()), "{s} in the log");
        assert!(!check_text.contains(s.as_str()), "{s} in check's output");
    }
}
