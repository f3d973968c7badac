//! The exporter with a real dockerd: series carry name, image, Kubernetes identity and only
//! the allowlisted runtime labels; a container started after the exporter is named within 2 s.

use std::time::{Duration, Instant};

use tests::runtimes::{cli, env, Daemon};
use tests::{samples, Exporter};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

#[test]
fn docker_containers_are_named_and_labelled_in_metrics() {
    let d = Daemon::new("docker");
    d.start();
    let image = env(&["docker-image", d.dir()]);
    let sock = d.socket.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "allowed_images = [\"registry.example.com/*\"]\n").unwrap();
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval",
            "250ms",
            "--cgroups.include",
            "/docker",
            "--runtime.docker-socket",
            &sock,
            "--runtime.containerd-socket",
            "off",
            "--runtime.crio-socket",
            "off",
            "--containers.label-allowlist",
            "app",
            "--containers.policy-file",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(exp.get("/healthz").status, 200);
    let host = format!("unix://{sock}");
    let docker = |args: &[&str]| {
        let mut a = vec!["-H", host.as_str()];
        a.extend_from_slice(args);
        cli("docker", &a)
    };
    let name = tests::unique("web");
    let started = Instant::now();
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--label",
        "app=shop",
        "--label",
        "secret=hidden",
        "--label",
        "io.kubernetes.pod.name=shop-7c9d8",
        "--label",
        "io.kubernetes.pod.namespace=prod",
        "--label",
        "io.kubernetes.container.name=shop",
        &image,
        "sleep",
        "1000",
    ]);
    let sel = format!("id=\"/docker/{id}\"");
    let line = loop {
        let body = exp.get("/metrics").text();
        let hit = samples(&body, "container_memory_usage_bytes")
            .into_iter()
            .find(|(l, _)| l.contains(&sel) && l.contains(&format!("name=\"{name}\"")))
            .map(|(l, _)| l.to_string());
        if let Some(l) = hit {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not named in 10 s:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let named_after = started.elapsed();
    // `docker run` itself takes part of that; the bound is 2 s.
    assert!(
        named_after < Duration::from_secs(2) + Duration::from_millis(1500),
        "named after {named_after:?}"
    );
    assert!(line.contains(&format!("image=\"{image}\"")), "{line}");
    assert!(line.contains("container_label_app=\"shop\""), "{line}");
    assert!(
        !line.contains("secret"),
        "a label off the allowlist leaked: {line}"
    );
    assert!(line.contains("namespace=\"prod\""), "{line}");
    assert!(line.contains("pod=\"shop-7c9d8\""), "{line}");
    assert!(line.contains("container=\"shop\""), "{line}");
    let body = exp.get("/metrics").text();
    let up = samples(&body, "collector_runtime_up");
    assert!(
        up.iter().any(|(l, v)| l.contains("docker") && *v == 1.0),
        "{up:?}"
    );
    // The image is outside the policy: a violation series and one event.
    let v = samples(&body, "container_policy_violation");
    assert!(
        v.iter()
            .any(|(l, x)| l.contains(&name) && l.contains(&image) && *x == 1.0),
        "{v:?}"
    );
    let events: serde_json::Value =
        serde_json::from_slice(&exp.get("/api/v1/events").body).unwrap();
    let raised: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "policy_violation" && e["name"] == name.as_str())
        .collect();
    assert_eq!(raised.len(), 1, "{events}");
    docker(&["rm", "-f", &id]);
}
