//! Whom a container talks to, on real processes in real cgroups and network namespaces made
//! by the test: two "pods" joined by a veth pair, with addresses the test chooses, each
//! resolved as the other's peer with the right direction; an address of the cluster's ranges
//! with no container on the node; the learning window and its `new_peer` finding; and an
//! ordinary workload that talks only to its learned peer and fires nothing; and a connection
//! outside the image's `allowed_peers`. Traffic stays inside the test's namespaces.

use std::time::{Duration, Instant};

use collector_core::prometheus::{render, Format, Options};
use collector_core::security::{Finding, FindingKind, ImagePolicy, PeerRule, ProcessPolicy};
use collector_core::stats::{Direction, Peer, PeerCounts, Scope, ScopeCounts};
use collector_core::{
    Collector, Config, FindingCounts, Identity, Metadata, MetadataProvider, SecurityConfig,
    Snapshot,
};
use tests::{find, require_root, samples, NetnsPair, TestCgroup};

// A /30 of the test's own (no other test uses 10.213.77.0/30).
const A: &str = "10.213.77.1";
const B: &str = "10.213.77.2";

fn config(ids: &[&str], learning: Duration, cluster: &[&str]) -> Config {
    Config {
        include: ids.iter().map(|s| s.to_string()).collect(),
        process_interval: Duration::ZERO,
        security: SecurityConfig {
            peer_learning: learning,
            cluster_cidrs: cluster
                .iter()
                .map(|c| c.parse().expect("a range"))
                .collect(),
            ..SecurityConfig::default()
        },
        ..Config::default()
    }
}

/// `tcp_peer` in namespace `ns` (`serve`, `listen` or `connect` on `addr`); waits until it is
/// ready.
fn tcp_peer(cg: &mut TestCgroup, ns: &str, mode: &str, addr: &str) -> u32 {
    tests::tcp_peer(env!("CARGO_BIN_EXE_tcp_peer"), cg, ns, mode, addr)
}

/// Sweeps `rounds` times, 100 ms apart: the findings of `id` and the last snapshot.
fn sweeps(col: &mut Collector, id: &str, rounds: usize) -> (Vec<Finding>, Snapshot) {
    tests::findings_over(col, id, rounds)
}

fn peers<'s>(snap: &'s Snapshot, id: &str) -> &'s [Peer] {
    &find(snap, id).stats.peers.list
}

fn counts(snap: &Snapshot, id: &str) -> PeerCounts {
    find(snap, id)
        .stats
        .peers
        .current
        .clone()
        .expect("peers counted")
}

#[test]
fn two_pods_are_each_others_peers() {
    require_root();
    let ns = NetnsPair::with_addrs(A, B);
    let mut server = TestCgroup::new("ccol-peers-srv");
    let mut client = TestCgroup::new("ccol-peers-cli");
    tcp_peer(&mut server, &ns.b, "serve", &format!("{B}:8080"));
    tcp_peer(&mut client, &ns.a, "connect", &format!("{B}:8080"));
    let mut col = Collector::new(config(
        &[&server.id, &client.id],
        Duration::from_secs(600),
        &[],
    ))
    .expect("cgroup hierarchy");
    let started = Instant::now();
    let (found, snap) = sweeps(&mut col, &client.id, 2);
    eprintln!("two sweeps: {:?}", started.elapsed());
    assert!(found.is_empty(), "within the learning window: {found:?}");
    // The kernel's own address files parse whole.
    let bad: Vec<String> = snap
        .errors
        .iter()
        .map(|e| e.to_string())
        .filter(|e| e.contains("fib_trie") || e.contains("if_inet6") || e.contains("net/tcp"))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");

    let out = peers(&snap, &client.id);
    assert_eq!(out.len(), 1, "{out:?}");
    let p = &out[0];
    assert_eq!(
        (p.direction, p.scope),
        (Direction::Outbound, Scope::Container)
    );
    assert_eq!((p.addr.to_string(), p.port), (B.to_string(), 8080));
    assert_eq!(p.container_id.as_deref(), Some(server.id.as_str()));

    let back = peers(&snap, &server.id);
    assert_eq!(back.len(), 1, "{back:?}");
    let p = &back[0];
    assert_eq!(
        (p.direction, p.scope),
        (Direction::Inbound, Scope::Container)
    );
    // Coming in, the port is its own listening one, not the client's ephemeral port.
    assert_eq!((p.addr.to_string(), p.port), (A.to_string(), 8080));
    assert_eq!(p.container_id.as_deref(), Some(client.id.as_str()));

    assert_eq!(counts(&snap, &client.id).outbound.container, 1);
    assert_eq!(counts(&snap, &server.id).inbound.container, 1);
    let body = render(&snap, &Options::default(), Format::PrometheusText);
    let series = samples(&body, "container_network_peers");
    let line = |id: &str, dir: &str, scope: &str| {
        series
            .iter()
            .find(|(l, _)| {
                l.contains(&format!("id=\"{id}\""))
                    && l.contains(&format!("direction=\"{dir}\""))
                    && l.contains(&format!("scope=\"{scope}\""))
            })
            .map(|(_, v)| *v)
    };
    assert_eq!(line(&client.id, "outbound", "container"), Some(1.0));
    assert_eq!(line(&client.id, "outbound", "external"), Some(0.0));
    assert_eq!(line(&server.id, "inbound", "container"), Some(1.0));
}

/// Followed alone, the client's server is no container the collector reads: an address in
/// the cluster's ranges is `cluster`, else `external`. Loopback and its own address are no
/// peers.
#[test]
fn an_address_outside_the_node_is_cluster_or_external() {
    require_root();
    let ns = NetnsPair::with_addrs(A, B);
    let mut server = TestCgroup::new("ccol-peers-far");
    let mut client = TestCgroup::new("ccol-peers-near");
    tcp_peer(&mut server, &ns.b, "serve", &format!("{B}:5432"));
    tcp_peer(&mut client, &ns.a, "serve", "127.0.0.1:9000");
    tcp_peer(&mut client, &ns.a, "serve", &format!("{A}:9001"));
    tcp_peer(&mut client, &ns.a, "connect", "127.0.0.1:9000");
    tcp_peer(&mut client, &ns.a, "connect", &format!("{A}:9001"));
    tcp_peer(&mut client, &ns.a, "connect", &format!("{B}:5432"));
    for (cluster, scope) in [
        (&["10.213.0.0/16"][..], Scope::Cluster),
        (&[][..], Scope::External),
    ] {
        let cfg = config(&[&client.id], Duration::from_secs(600), cluster);
        let mut col = Collector::new(cfg).expect("cgroup hierarchy");
        let (_, snap) = sweeps(&mut col, &client.id, 2);
        let out = peers(&snap, &client.id);
        assert_eq!(out.len(), 1, "{cluster:?}: {out:?}");
        assert_eq!((out[0].scope, out[0].port), (scope, 5432), "{cluster:?}");
        assert_eq!(out[0].container_id, None);
        let mut want = PeerCounts::default();
        want.add(Direction::Outbound, scope);
        assert_eq!(counts(&snap, &client.id), want);
    }
}

/// A connection made within the (shortened) learning window is its own; one to a new port
/// after it is exactly one `new_peer` finding on each side, counted by the series.
#[test]
fn a_peer_met_after_the_learning_window_is_one_finding() {
    require_root();
    let ns = NetnsPair::with_addrs(A, B);
    let mut server = TestCgroup::new("ccol-peers-lsrv");
    let mut client = TestCgroup::new("ccol-peers-lcli");
    tcp_peer(&mut server, &ns.b, "serve", &format!("{B}:8080"));
    tcp_peer(&mut server, &ns.b, "serve", &format!("{B}:8081"));
    let learning = Duration::from_millis(1500);
    let mut col =
        Collector::new(config(&[&server.id, &client.id], learning, &[])).expect("cgroup hierarchy");
    // The window starts at the first sweep that sees the container.
    col.sweep();
    let window = Instant::now() + learning;
    tcp_peer(&mut client, &ns.a, "connect", &format!("{B}:8080"));
    let (found, _) = sweeps(&mut col, &client.id, 2);
    assert!(found.is_empty(), "within the window: {found:?}");
    std::thread::sleep(
        window.saturating_duration_since(Instant::now()) + Duration::from_millis(200),
    );
    let (found, _) = sweeps(&mut col, &client.id, 3);
    assert!(found.is_empty(), "its learned peer only: {found:?}");

    tcp_peer(&mut client, &ns.a, "connect", &format!("{B}:8081"));
    let mut out = Vec::new();
    let mut srv_found = Vec::new();
    let mut snap = None;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(100));
        let s = col.sweep();
        for e in &s.events {
            let Some(f) = e.finding.as_deref() else {
                continue;
            };
            if e.id == client.id {
                out.push(f.clone());
            } else if e.id == server.id {
                srv_found.push(f.clone());
            }
        }
        snap = Some(s);
    }
    let snap = snap.expect("a sweep");
    assert_eq!(out.len(), 1, "{out:?}");
    let f = &out[0];
    assert_eq!(f.kind, FindingKind::NewPeer);
    assert_eq!(f.remote.map(|r| r.to_string()), Some(format!("{B}:8081")));
    let p = f.peer.as_ref().expect("the peer");
    assert_eq!(
        (p.direction, p.scope, p.port),
        (Direction::Outbound, Scope::Container, 8081)
    );
    assert_eq!(p.container_id.as_deref(), Some(server.id.as_str()));
    let stats = &find(&snap, &client.id).stats;
    assert_eq!(
        stats.peers.new_total,
        Some(ScopeCounts {
            container: 1,
            ..ScopeCounts::default()
        })
    );
    assert_eq!(
        stats.security.findings.as_ref().map(|c| c.new_peer),
        Some(1)
    );

    // The server met the client on a port of its own it had not served it on.
    assert_eq!(srv_found.len(), 1, "{srv_found:?}");
    let p = srv_found[0].peer.as_ref().expect("the peer");
    assert_eq!((p.direction, p.port), (Direction::Inbound, 8081));
    assert_eq!(p.container_id.as_deref(), Some(client.id.as_str()));

    let body = render(&snap, &Options::default(), Format::PrometheusText);
    let new = samples(&body, "container_network_new_peers_total");
    let of_client = |scope: &str| {
        new.iter()
            .find(|(l, _)| {
                l.contains(&format!("id=\"{}\"", client.id))
                    && l.contains(&format!("scope=\"{scope}\""))
            })
            .map(|(_, v)| *v)
    };
    assert_eq!(of_client("container"), Some(1.0));
    assert_eq!(of_client("external"), Some(0.0));
    let findings = samples(&body, "container_security_findings_total");
    assert!(
        findings
            .iter()
            .any(|(l, v)| l.contains(&format!("id=\"{}\"", client.id))
                && l.contains("kind=\"new_peer\"")
                && *v == 1.0),
        "{findings:?}"
    );
}

/// An ordinary workload: a client that keeps opening short connections to its learned peer,
/// and holds one, long after the window. No finding on either side.
#[test]
fn an_ordinary_workload_fires_nothing() {
    require_root();
    let ns = NetnsPair::with_addrs(A, B);
    let mut server = TestCgroup::new("ccol-peers-qsrv");
    let mut client = TestCgroup::new("ccol-peers-qcli");
    tcp_peer(&mut server, &ns.b, "serve", &format!("{B}:8080"));
    let learning = Duration::from_millis(1000);
    let mut col =
        Collector::new(config(&[&server.id, &client.id], learning, &[])).expect("cgroup hierarchy");
    tcp_peer(&mut client, &ns.a, "connect", &format!("{B}:8080"));
    let script = format!("while :; do exec 3<>/dev/tcp/{B}/8080; sleep 0.2; exec 3>&-; done");
    client.spawn(&mut NetnsPair::exec(&ns.a, "/bin/bash", &["-c", &script]));
    let mut found = Vec::new();
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < learning * 3 {
        let s = col.sweep();
        found.extend(
            s.events
                .iter()
                .filter(|e| e.id == client.id || e.id == server.id)
                .filter_map(|e| e.finding.as_deref().cloned()),
        );
        last = Some(s);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(found.is_empty(), "{found:?}");
    let snap = last.expect("a sweep");
    for id in [&client.id, &server.id] {
        let s = &find(&snap, id).stats;
        assert_eq!(s.security.findings, Some(FindingCounts::default()), "{id}");
        assert_eq!(s.peers.new_total, Some(ScopeCounts::default()), "{id}");
    }
    assert_eq!(counts(&snap, &client.id).outbound.container, 1);
}

/// The exporter serves the peer graph at `/api/v1/connections` and the series at `/metrics`,
/// with `--security.cluster-cidrs` and `--security.peer-learning` taken from its flags.
#[test]
fn the_exporter_serves_the_peer_graph() {
    require_root();
    let ns = NetnsPair::with_addrs(A, B);
    let mut server = TestCgroup::new("ccol-peers-esrv");
    let mut client = TestCgroup::new("ccol-peers-ecli");
    tcp_peer(&mut server, &ns.b, "serve", &format!("{B}:8080"));
    tcp_peer(&mut client, &ns.a, "connect", &format!("{B}:8080"));
    let mut args = vec![
        "--cgroups.include",
        &server.id,
        "--cgroups.include",
        &client.id,
        "--housekeeping.interval",
        "250ms",
        "--containers.process-interval",
        "250ms",
        "--security.peer-learning",
        "1h",
        "--security.cluster-cidrs",
        "10.213.0.0/16",
    ];
    args.extend(tests::NO_RUNTIMES);
    let exp = tests::Exporter::start(env!("CARGO_BIN_EXE_exporter"), &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    let graph = loop {
        let r = exp.get("/api/v1/connections");
        if r.status == 200 {
            let v: serde_json::Value = serde_json::from_str(&r.text()).expect("JSON");
            let of = |id: &str| {
                v["containers"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["id"] == id))
                    .map(|c| c["peers"].clone())
            };
            if of(&client.id).is_some_and(|p| p.as_array().is_some_and(|a| !a.is_empty())) {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "no peers served: {}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    let peers_of = |id: &str| {
        graph["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id))
            .map(|c| c["peers"].clone())
            .unwrap_or_else(|| panic!("{id} not in {graph}"))
    };
    assert_eq!(
        peers_of(&client.id),
        serde_json::json!([{
            "direction": "outbound", "scope": "container", "addr": B, "port": 8080,
            "container_id": server.id,
        }])
    );
    assert_eq!(
        peers_of(&server.id),
        serde_json::json!([{
            "direction": "inbound", "scope": "container", "addr": A, "port": 8080,
            "container_id": client.id,
        }])
    );
    let body = exp.get("/metrics").text();
    let peers = samples(&body, "container_network_peers");
    assert!(
        peers
            .iter()
            .any(|(l, v)| l.contains(&format!("id=\"{}\"", client.id))
                && l.contains("direction=\"outbound\",scope=\"container\"")
                && *v == 1.0),
        "{peers:?}"
    );
    assert_eq!(
        samples(&body, "container_network_new_peers_total")
            .iter()
            .filter(|(l, _)| l.contains(&format!("id=\"{}\"", client.id)))
            .count(),
        3
    );
}

/// Names test cgroups as runtime containers: (cgroup id, name, image).
#[derive(Debug)]
struct Names(Vec<(String, &'static str, &'static str)>);

impl MetadataProvider for Names {
    fn lookup(&self, _identity: &Identity, cgroup_id: &str) -> Option<Metadata> {
        let (_, name, image) = self.0.iter().find(|(id, _, _)| id == cgroup_id)?;
        Some(Metadata {
            name: Some(name.to_string()),
            image: Some(image.to_string()),
            ..Metadata::default()
        })
    }

    fn generation(&self) -> u64 {
        1
    }
}

/// With a policy whose entry for the client's image allows only a database container's 5432,
/// a connection there fires nothing, and one to its 5433 is exactly one
/// `unauthorized_connection` finding, from the first read on (no learning window).
#[test]
fn a_connection_outside_the_images_allowed_peers() {
    require_root();
    let ns = NetnsPair::with_addrs(A, B);
    let mut db = TestCgroup::new("ccol-peers-pdb");
    let mut api = TestCgroup::new("ccol-peers-papi");
    tcp_peer(&mut db, &ns.b, "serve", &format!("{B}:5432"));
    tcp_peer(&mut db, &ns.b, "serve", &format!("{B}:5433"));
    let mut cfg = config(&[&db.id, &api.id], Duration::from_secs(3600), &[]);
    cfg.security.policy = ProcessPolicy {
        images: vec![ImagePolicy {
            image: "registry.test/api:*".into(),
            allowed_peers: vec![PeerRule {
                image: Some("postgres:*".into()),
                ports: vec![5432],
                ..PeerRule::default()
            }],
            ..ImagePolicy::default()
        }],
    };
    let mut col = Collector::new(cfg).expect("cgroup hierarchy");
    col.set_metadata_provider(std::sync::Arc::new(Names(vec![
        (db.id.clone(), "db", "postgres:16"),
        (api.id.clone(), "api", "registry.test/api:1.0"),
    ])));
    tcp_peer(&mut api, &ns.a, "connect", &format!("{B}:5432"));
    let (found, _) = sweeps(&mut col, &api.id, 4);
    assert!(found.is_empty(), "an allowed peer: {found:?}");

    tcp_peer(&mut api, &ns.a, "connect", &format!("{B}:5433"));
    let (found, snap) = sweeps(&mut col, &api.id, 4);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.kind, FindingKind::UnauthorizedConnection);
    assert_eq!(f.remote.map(|r| r.to_string()), Some(format!("{B}:5433")));
    let p = f.peer.as_ref().expect("the peer");
    assert_eq!(p.container_id.as_deref(), Some(db.id.as_str()));
    assert_eq!(p.container_name.as_deref(), Some("db"));
    let c = find(&snap, &api.id).stats.security.findings.clone();
    let c = c.expect("findings counted");
    assert_eq!((c.unauthorized_connection, c.new_peer), (1, 0));
    // The database is not judged: it has no entry, and inbound peers never are.
    let db_counts = find(&snap, &db.id).stats.security.findings.clone();
    assert_eq!(db_counts, Some(FindingCounts::default()));
}
