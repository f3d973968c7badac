//! Runtime metadata against real daemons started by the tests (scripts/runtime-test-env.sh:
//! each daemon with its own state directory, pidfile and socket, no bridge network): Docker,
//! standalone containerd and Podman name their containers in `Container.meta`; Kubernetes
//! labels give pod, namespace and container; a container that stops leaves a `Stopped` event
//! with its name, and one that the OOM killer hits an `OomKill` event with its name.
//!
//! Needs root and docker.io, containerd, podman, busybox-static (`scripts/test.sh` installs
//! them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use collector_core::runtime::{self, ContainerdConfig, EngineConfig, Providers, Source};
use collector_core::{Collector, Config, EventKind, Snapshot};
use tests::runtimes::{cli, env, CgroupCleanup, Daemon, Sweeper};

/// A container started after the provider must be named within this.
const NAMED_WITHIN: Duration = Duration::from_secs(2);

fn providers(f: impl FnOnce(&mut runtime::Config)) -> Arc<Providers> {
    let mut c = runtime::Config::none();
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    f(&mut c);
    Providers::start(c)
}

fn collector(include: &str, containerd_namespaces: Vec<String>, p: Arc<Providers>) -> Sweeper {
    let mut c = Collector::new(Config {
        include: vec![include.to_string()],
        containerd_namespaces,
        network: false,
        load: false,
        ..Config::default()
    })
    .expect("a cgroup hierarchy");
    c.set_metadata_provider(p);
    let mut s = Sweeper::new(c);
    s.sweep();
    s
}

/// Waits until the provider knows `n` containers without being asked (no sweep, so no lookup
/// miss asks for them): what the event stream alone told it.
fn learnt_from_events(p: &Providers, n: usize) -> Duration {
    let start = Instant::now();
    loop {
        let known: usize = p.status().iter().map(|s| s.containers).sum();
        if known >= n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the event stream did not tell of a new container within 1 s ({known} known)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn known(p: &Providers) -> usize {
    p.status().iter().map(|s| s.containers).sum()
}

fn named<'a>(s: &'a Snapshot, id: &str, name: &str) -> Option<&'a collector_core::Container> {
    s.get(id).filter(|c| c.meta.name.as_deref() == Some(name))
}

fn label<'a>(c: &'a collector_core::Container, k: &str) -> Option<&'a str> {
    c.meta.labels.get(k).map(String::as_str)
}

const KUBE_LABELS: [(&str, &str); 4] = [
    ("io.kubernetes.pod.name", "payments-7c9d"),
    ("io.kubernetes.pod.namespace", "prod"),
    ("io.kubernetes.container.name", "api"),
    (
        "io.kubernetes.pod.uid",
        "0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
    ),
];

fn assert_kube(c: &collector_core::Container) {
    assert_eq!(c.meta.pod.as_deref(), Some("payments-7c9d"), "{c:?}");
    assert_eq!(c.meta.namespace.as_deref(), Some("prod"));
    assert_eq!(c.meta.container.as_deref(), Some("api"));
    assert_eq!(
        label(c, "io.kubernetes.pod.uid"),
        Some("0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")
    );
}

#[test]
fn docker_names_labels_kubernetes_stop_oom_and_reconnection() {
    let t0 = Instant::now();
    let d = Daemon::new("docker");
    // The provider starts first: Docker is absent, then appears (found through back-off).
    let p = providers(|c| {
        c.docker = Some(EngineConfig {
            socket: d.socket.clone(),
            relist_interval: Duration::from_secs(30),
        })
    });
    d.start();
    let image = env(&["docker-image", d.dir()]);
    let host = format!("unix://{}", d.socket.display());
    let docker = |args: &[&str]| {
        let mut a = vec!["-H", host.as_str()];
        a.extend_from_slice(args);
        cli("docker", &a)
    };
    let tag = tests::unique("t");
    let n1 = format!("{tag}-web");
    let id1 = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &n1,
        "--label",
        "app=x",
        "--label",
        "tier=web",
        &image,
        "sleep",
        "1000",
    ]);
    let mut s = collector("/docker", vec![], p.clone());
    let cg1 = format!("/docker/{id1}");
    let (c, _) = s.until(
        "the first container named",
        Duration::from_secs(15),
        |snap, _| named(snap, &cg1, &n1).cloned(),
    );
    assert_eq!(c.meta.image.as_deref(), Some(image.as_str()));
    assert_eq!(label(&c, "app"), Some("x"));
    assert_eq!(label(&c, "tier"), Some("web"));
    assert_eq!((c.meta.pod.clone(), c.meta.namespace.clone()), (None, None));
    assert!(p
        .status()
        .iter()
        .any(|st| st.source == Source::Docker && st.up));

    // Started after the collector and the provider: named within 2 s, Kubernetes identity.
    let n2 = format!("{tag}-kube");
    let mut args = vec!["run", "-d", "--network", "none", "--name", n2.as_str()];
    let kube: Vec<String> = KUBE_LABELS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for l in &kube {
        args.extend(["--label", l.as_str()]);
    }
    args.extend([image.as_str(), "sleep", "1000"]);
    let before = known(&p);
    let started = Instant::now();
    let id2 = docker(&args);
    let heard = learnt_from_events(&p, before + 1);
    eprintln!("docker: /events told of it {heard:?} after `docker run` returned");
    let cg2 = format!("/docker/{id2}");
    let (c, _) = s.until("a new container named", NAMED_WITHIN, |snap, _| {
        named(snap, &cg2, &n2).cloned()
    });
    let took = started.elapsed();
    assert_kube(&c);
    eprintln!("docker: a new container named {took:?} after `docker run` was called");

    // Stopped: gone from the snapshot, and a Stopped event that names it.
    docker(&["rm", "-f", &n1]);
    let (ev, _) = s.until("the stopped event", Duration::from_secs(10), |snap, evs| {
        if snap.get(&cg1).is_some() {
            return None;
        }
        evs.iter()
            .find(|e| e.kind == EventKind::Stopped && e.id == cg1)
            .cloned()
    });
    assert_eq!(ev.name.as_deref(), Some(n1.as_str()));
    assert_eq!(ev.image.as_deref(), Some(image.as_str()));
    assert_eq!(ev.container_id.as_deref(), Some(id1.as_str()));

    // OOM: 16 MiB and no swap; `dd` with a 64 MiB buffer inside it is killed, the container
    // (its `sleep`) lives on, and the v1 `memory.oom_control` counter says so.
    let n3 = format!("{tag}-oom");
    let id3 = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &n3,
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        &image,
        "sleep",
        "1000",
    ]);
    let cg3 = format!("/docker/{id3}");
    s.until(
        "the OOM container named, its counter read",
        NAMED_WITHIN,
        |snap, _| named(snap, &cg3, &n3).and_then(|c| c.stats.memory.events.oom_kill),
    );
    s.sweep();
    let out = std::process::Command::new("docker")
        .args([
            "-H",
            &host,
            "exec",
            &n3,
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ])
        .output()
        .expect("docker exec");
    assert!(!out.status.success(), "dd in 16 MiB was not killed");
    let (ev, _) = s.until("the OOM kill event", Duration::from_secs(5), |_, evs| {
        evs.iter()
            .find(|e| e.kind == EventKind::OomKill && e.id == cg3)
            .cloned()
    });
    assert_eq!(ev.name.as_deref(), Some(n3.as_str()));
    assert_eq!(ev.image.as_deref(), Some(image.as_str()));
    assert_eq!(ev.count, 1);
    assert_eq!(
        s.last
            .get(&cg3)
            .and_then(|c| c.stats.memory.events.oom_kill),
        Some(1)
    );

    // dockerd goes away: sweeps go on, the provider sees it down; it comes back: found again
    // through back-off, and a new container is named.
    d.stop();
    let down = Instant::now();
    while p.status().iter().any(|st| st.up) {
        assert!(
            down.elapsed() < Duration::from_secs(5),
            "docker still seen up"
        );
        s.sweep();
        std::thread::sleep(Duration::from_millis(50));
    }
    s.sweep();
    d.start();
    let n4 = format!("{tag}-back");
    let id4 = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &n4,
        &image,
        "sleep",
        "1000",
    ]);
    let cg4 = format!("/docker/{id4}");
    s.until(
        "a container named after dockerd came back",
        Duration::from_secs(5),
        |snap, _| named(snap, &cg4, &n4).map(|_| ()),
    );
    drop(d);
    eprintln!("docker test: {:?}", t0.elapsed());
}

#[test]
fn containerd_standalone_names_with_ctr() {
    let t0 = Instant::now();
    let ns = format!("ccol{}", std::process::id());
    let _cgroups = CgroupCleanup(format!("/{ns}"));
    let d = Daemon::new("containerd");
    d.start();
    let image = env(&["containerd-image", d.dir(), &ns]);
    let ctr = |args: &[&str]| {
        let mut a = vec!["ctr", d.dir(), "-n", ns.as_str()];
        a.extend_from_slice(args);
        cli(tests::runtimes::script().to_str().unwrap(), &a)
    };
    ctr(&[
        "run", "-d", "--label", "app=c", &image, "c1", "sleep", "1000",
    ]);
    let p = providers(|c| {
        c.containerd = Some(ContainerdConfig {
            socket: d.socket.clone(),
            ..ContainerdConfig::default()
        })
    });
    let mut s = collector(&format!("/{ns}"), vec![ns.clone()], p.clone());
    let cg1 = format!("/{ns}/c1");
    let (c, _) = s.until(
        "a containerd container named",
        Duration::from_secs(5),
        |snap, _| named(snap, &cg1, "c1").cloned(),
    );
    assert_eq!(c.meta.image.as_deref(), Some(image.as_str()));
    assert_eq!(label(&c, "app"), Some("c"));

    // Started later, with Kubernetes labels: named through the event stream within 2 s.
    let mut args = vec!["run", "-d"];
    let kube: Vec<String> = KUBE_LABELS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for l in &kube {
        args.extend(["--label", l.as_str()]);
    }
    args.extend([image.as_str(), "c2", "sleep", "1000"]);
    let before = known(&p);
    let started = Instant::now();
    ctr(&args);
    let heard = learnt_from_events(&p, before + 1);
    eprintln!("containerd: Events/Subscribe told of it {heard:?} after `ctr run` returned");
    let cg2 = format!("/{ns}/c2");
    let (c, _) = s.until(
        "a new containerd container named",
        NAMED_WITHIN,
        |snap, _| named(snap, &cg2, "c2").cloned(),
    );
    eprintln!(
        "containerd: a new container named {:?} after `ctr run` was called",
        started.elapsed()
    );
    assert_kube(&c);
    assert_eq!(c.meta.image.as_deref(), Some(image.as_str()));

    // Stopped (its task killed and deleted, which removes the cgroup): a Stopped event naming it.
    ctr(&["tasks", "rm", "-f", "c1"]);
    let (ev, _) = s.until("the stopped event", Duration::from_secs(10), |snap, evs| {
        if snap.get(&cg1).is_some() {
            return None;
        }
        evs.iter()
            .find(|e| e.kind == EventKind::Stopped && e.id == cg1)
            .cloned()
    });
    assert_eq!(ev.name.as_deref(), Some("c1"));
    drop(d);
    eprintln!("containerd test: {:?}", t0.elapsed());
}

#[test]
fn podman_names_through_its_docker_compatible_api() {
    let t0 = Instant::now();
    let d = Daemon::new("podman");
    d.start();
    let image = env(&["podman-image", d.dir()]);
    let podman = |args: &[&str]| {
        let mut a = vec!["podman", d.dir()];
        a.extend_from_slice(args);
        cli(tests::runtimes::script().to_str().unwrap(), &a)
    };
    let tag = tests::unique("p");
    let n1 = format!("{tag}-one");
    let id1 = podman(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &n1,
        "--label",
        "app=p",
        &image,
        "sleep",
        "1000",
    ]);
    let p = providers(|c| {
        c.podman = Some(EngineConfig {
            socket: d.socket.clone(),
            relist_interval: Duration::from_secs(30),
        })
    });
    let mut s = collector("/libpod_parent", vec![], p.clone());
    let cg1 = format!("/libpod_parent/libpod-{id1}");
    let (c, _) = s.until(
        "a podman container named",
        Duration::from_secs(5),
        |snap, _| named(snap, &cg1, &n1).cloned(),
    );
    assert_eq!(c.identity.runtime, Some(collector_core::Runtime::Podman));
    assert_eq!(c.meta.image.as_deref(), Some(image.as_str()));
    assert_eq!(label(&c, "app"), Some("p"));

    let n2 = format!("{tag}-two");
    let before = known(&p);
    let started = Instant::now();
    let id2 = podman(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &n2,
        &image,
        "sleep",
        "1000",
    ]);
    let heard = learnt_from_events(&p, before + 1);
    eprintln!("podman: /events told of it {heard:?} after `podman run` returned");
    let cg2 = format!("/libpod_parent/libpod-{id2}");
    s.until("a new podman container named", NAMED_WITHIN, |snap, _| {
        named(snap, &cg2, &n2).map(|_| ())
    });
    eprintln!(
        "podman: a new container named {:?} after `podman run` was called",
        started.elapsed()
    );
    drop(d);
    eprintln!("podman test: {:?}", t0.elapsed());
}
