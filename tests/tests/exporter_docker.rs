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
    let exp = Exporter::start(
        BIN,
        &[
            "--housekeeping.interval", "250ms",
            "--cgroups.include", "/docker",
            "--runtime.docker-socket", &sock,
            "--runtime.containerd-socket", "off",
            "--runtime.crio-socket", "off",
            "--containers.label-allowlist", "app",
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
        "run", "-d", "--network", "none", "--name", &name,
        "--label", "app=shop", "--label", "secret=hidden",
        "--label", "io.kubernetes.pod.name=shop-7c9d8",
        "--label", "io.kubernetes.pod.namespace=prod",
        "--label", "io.kubernetes.container.name=shop",
        &image, "sleep", "1000",
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
        assert!(started.elapsed() < Duration::from_secs(10), "not named in 10 s:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let named_after = started.elapsed();
    // `docker run` itself takes part of that; the bound is 2 s.
    assert!(named_after < Duration::from_secs(2) + Duration::from_millis(1500), "named after {named_after:?}");
    assert!(line.contains(&format!("image=\"{image}\"")), "{line}");
    assert!(line.contains("container_label_app=\"shop\""), "{line}");
    assert!(!line.contains("secret"), "a label off the allowlist leaked: {line}");
    assert!(line.contains("namespace=\"prod\""), "{line}");
    assert!(line.contains("pod=\"shop-7c9d8\""), "{line}");
    assert!(line.contains("container=\"shop\""), "{line}");
    let body = exp.get("/metrics").text();
    let up = samples(&body, "collector_runtime_up");
    assert!(up.iter().any(|(l, v)| l.contains("docker") && *v == 1.0), "{up:?}");
    docker(&["rm", "-f", &id]);
}
