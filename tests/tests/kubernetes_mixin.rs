//! kube-prometheus users point the kubernetes-mixin's cAdvisor selector at this exporter: its
//! per-container recording rules and its "Compute Resources / Pod" queries must work unchanged.
//!
//! Two pods are laid out as a kubelet with the cgroupfs driver lays them out, by a private
//! dockerd: each a sandbox (`POD`) and application containers sharing its network namespace,
//! under `/kubepods/burstable/pod<uid>`, with the labels kubelet gives them. A stand-in for
//! kube-state-metrics serves `kube_pod_info` for them. A real Prometheus loads the mixin's
//! recording rules (its expressions, with `cadvisorSelector` set to this exporter's job and
//! `clusterLabel` to `cluster`) and scrapes both. The recorded series come out per namespace,
//! pod and container with the node joined; the pod's own cgroup is told apart (`container=""`,
//! no image), so summing containers does not count the pod twice; and a pod's network is
//! reported once, on its sandbox, as kubelet's cAdvisor reports it. A CoreDNS container beside
//! them gets `container_critical`, which the shipped alerts watch; the others do not.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tests::runtimes::{env, Daemon, Docker};
use tests::servers::Prometheus;
use tests::Exporter;

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

/// The mixin's `k8s.rules.container_*` groups for per-container usage, rendered with
/// `cadvisorSelector: 'job="collector-exporter"'` and `clusterLabel: 'cluster'`.
const MIXIN_RULES: &str = r#"groups:
  - name: k8s.rules.container_cpu_usage_seconds_total
    rules:
      - record: node_namespace_pod_container:container_cpu_usage_seconds_total:sum_rate5m
        expr: |
          sum by (cluster, namespace, pod, container) (
            rate(container_cpu_usage_seconds_total{job="collector-exporter", image!=""}[5m])
          ) * on (cluster, namespace, pod) group_left(node) topk by (cluster, namespace, pod) (
            1, max by(cluster, namespace, pod, node) (kube_pod_info{node!=""})
          )
      - record: node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate
        expr: |
          sum by (cluster, namespace, pod, container) (
            irate(container_cpu_usage_seconds_total{job="collector-exporter", image!=""}[5m])
          ) * on (cluster, namespace, pod) group_left(node) topk by (cluster, namespace, pod) (
            1, max by(cluster, namespace, pod, node) (kube_pod_info{node!=""})
          )
  - name: k8s.rules.container_memory
    rules:
      - record: node_namespace_pod_container:container_memory_working_set_bytes
        expr: |
          container_memory_working_set_bytes{job="collector-exporter", image!=""}
          * on (cluster, namespace, pod) group_left(node) topk by(cluster, namespace, pod) (1,
            max by(cluster, namespace, pod, node) (kube_pod_info{node!=""})
          )
      - record: node_namespace_pod_container:container_memory_rss
        expr: |
          container_memory_rss{job="collector-exporter", image!=""}
          * on (cluster, namespace, pod) group_left(node) topk by(cluster, namespace, pod) (1,
            max by(cluster, namespace, pod, node) (kube_pod_info{node!=""})
          )
      - record: node_namespace_pod_container:container_memory_cache
        expr: |
          container_memory_cache{job="collector-exporter", image!=""}
          * on (cluster, namespace, pod) group_left(node) topk by(cluster, namespace, pod) (1,
            max by(cluster, namespace, pod, node) (kube_pod_info{node!=""})
          )
      - record: node_namespace_pod_container:container_memory_swap
        expr: |
          container_memory_swap{job="collector-exporter", image!=""}
          * on (cluster, namespace, pod) group_left(node) topk by(cluster, namespace, pod) (1,
            max by(cluster, namespace, pod, node) (kube_pod_info{node!=""})
          )
"#;

/// A pod uid in kubelet's form (a UUID), unique to this run.
fn pod_uid(n: u32) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = format!(
        "{:032x}",
        t ^ (u128::from(std::process::id()) << 64) ^ u128::from(n)
    );
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A pod's containers, as kubelet makes them through a runtime.
struct Pod {
    name: String,
    uid: String,
    sandbox: String,
}

impl Pod {
    /// The sandbox: `POD`, holding the pod's network namespace.
    fn start(docker: &mut Docker, image: &str, ns: &str, name: &str, n: u32) -> Pod {
        let uid = pod_uid(n);
        let args = kube_args(ns, name, &uid, "POD", None, image, &["sleep", "600"]);
        let sandbox = docker.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        docker.ids.push(sandbox.clone());
        Pod {
            name: name.to_string(),
            uid,
            sandbox,
        }
    }

    /// An application container in the sandbox's network namespace.
    fn add(&self, docker: &mut Docker, image: &str, ns: &str, container: &str, cmd: &[&str]) {
        let net = format!("container:{}", self.sandbox);
        let args = kube_args(ns, &self.name, &self.uid, container, Some(&net), image, cmd);
        let id = docker.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        docker.ids.push(id);
    }
}

/// `docker run` arguments for a container of pod `pod` under kubelet's cgroup layout.
fn kube_args<'a>(
    ns: &'a str,
    pod: &'a str,
    uid: &'a str,
    container: &'a str,
    network: Option<&'a str>,
    image: &'a str,
    cmd: &[&'a str],
) -> Vec<String> {
    let mut a: Vec<String> = ["run", "-d", "--network", network.unwrap_or("none")]
        .map(String::from)
        .to_vec();
    a.push("--cgroup-parent".into());
    a.push(format!("/kubepods/burstable/pod{uid}"));
    for (k, v) in [
        ("io.kubernetes.pod.namespace", ns),
        ("io.kubernetes.pod.name", pod),
        ("io.kubernetes.pod.uid", uid),
        ("io.kubernetes.container.name", container),
    ] {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    }
    a.push(image.into());
    a.extend(cmd.iter().map(|s| s.to_string()));
    a
}

/// A stand-in for kube-state-metrics: `kube_pod_info` for the given (namespace, pod) pairs,
/// on node `node-1`, served to any scrape until the test ends.
fn kube_state_metrics(pods: Vec<(String, String)>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut body = String::from("# TYPE kube_pod_info gauge\n");
    for (ns, pod) in &pods {
        body.push_str(&format!(
            "kube_pod_info{{namespace=\"{ns}\",pod=\"{pod}\",node=\"node-1\",host_ip=\"10.0.0.1\",created_by_kind=\"ReplicaSet\"}} 1\n"
        ));
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A veth pair whose inner end, `eth0`, is in the network namespace of `pid`; removed (with
/// its peer) when dropped.
struct Veth(String);

impl Veth {
    fn into_pid(pid: &str, n: u8) -> Veth {
        let host = format!("ccm{}{n}", std::process::id() % 100_000);
        let run = |args: &[&str]| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect(args[0]);
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", pid,
        ]);
        let (outer, inner) = (
            format!("169.254.91.{}/30", 4 * n + 1),
            format!("169.254.91.{}/30", 4 * n + 2),
        );
        run(&["ip", "addr", "add", &outer, "dev", &host]);
        run(&["ip", "link", "set", &host, "up"]);
        run(&[
            "nsenter", "-t", pid, "-n", "ip", "addr", "add", &inner, "dev", "eth0",
        ]);
        run(&[
            "nsenter", "-t", pid, "-n", "ip", "link", "set", "eth0", "up",
        ]);
        Veth(host)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// Waits until `q` returns at least `n` series; those it returned.
fn until(prom: &Prometheus, q: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let r = prom.instant(q);
        if r.len() >= n {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: {} series, wanted {n}: {r:?}",
            r.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn label<'a>(s: &'a Value, k: &str) -> &'a str {
    s["metric"][k].as_str().unwrap_or("")
}

#[test]
fn the_mixins_rules_and_pod_queries_work_unchanged() {
    let d = Daemon::new("docker");
    d.start();
    let image = env(&["docker-image", d.dir()]);
    let mut docker = Docker::new(&d);
    let ns = tests::unique("ccol-mixin");
    let web = Pod::start(&mut docker, &image, &ns, "web-1", 1);
    web.add(
        &mut docker,
        &image,
        &ns,
        "app",
        &["sh", "-c", "while :; do :; done"],
    );
    web.add(&mut docker, &image, &ns, "log", &["sleep", "600"]);
    let db = Pod::start(&mut docker, &image, &ns, "db-1", 2);
    db.add(&mut docker, &image, &ns, "db", &["sleep", "600"]);
    // A component critical to the cluster, by its Kubernetes container name in kube-system;
    // an application's container of the same name in the test's namespace is not one.
    let dns_pod = format!("coredns-{ns}");
    let dns = Pod::start(&mut docker, &image, "kube-system", &dns_pod, 3);
    dns.add(
        &mut docker,
        &image,
        "kube-system",
        "coredns",
        &["sleep", "600"],
    );
    web.add(&mut docker, &image, &ns, "coredns", &["sleep", "600"]);

    // Traffic into web-1's network namespace, from the host over a veth of the test's.
    let pid = docker.run(&["inspect", "-f", "{{.State.Pid}}", &web.sandbox]);
    let _veth = Veth::into_pid(&pid, 1);
    let ping = Command::new("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", "169.254.91.6"])
        .output()
        .expect("ping");
    assert!(ping.status.success(), "ping into the pod: {ping:?}");

    let flags = d.exporter_flags();
    let mut args = vec![
        "--housekeeping.interval",
        "1s",
        "--cgroups.include",
        "/kubepods",
    ];
    args.extend(flags.iter().map(String::as_str));
    let exp = Exporter::start(BIN, &args);
    let ksm = kube_state_metrics(vec![
        (ns.clone(), "web-1".into()),
        (ns.clone(), "db-1".into()),
    ]);
    let prom = Prometheus::with_config(|dir| {
        let rules = dir.join("mixin.yml");
        std::fs::write(&rules, MIXIN_RULES).expect("rules");
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: collector-exporter\n    static_configs:\n      - targets: ['{}']\n  - job_name: kube-state-metrics\n    static_configs:\n      - targets: ['{ksm}']\n",
            rules.display(),
            exp.addr
        )
    });

    // Per container, with the node joined; never the pod's own cgroup (container="").
    let sel = format!("{{namespace=\"{ns}\"}}");
    let expected = [
        ("web-1", "app"),
        ("web-1", "log"),
        ("web-1", "POD"),
        ("db-1", "db"),
        ("db-1", "POD"),
    ];
    for rule in [
        "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_rate5m",
        "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate",
        "node_namespace_pod_container:container_memory_working_set_bytes",
        "node_namespace_pod_container:container_memory_rss",
        "node_namespace_pod_container:container_memory_cache",
    ] {
        let got = until(&prom, &format!("{rule}{sel}"), expected.len());
        for (pod, container) in expected {
            assert!(
                got.iter().any(|s| label(s, "pod") == pod
                    && label(s, "container") == container
                    && label(s, "node") == "node-1"),
                "{rule}: no {pod}/{container} on node-1: {got:?}"
            );
        }
        assert!(
            got.iter().all(|s| !label(s, "container").is_empty()),
            "{rule}: a pod's own cgroup among its containers: {got:?}"
        );
    }
    // The busy container is what uses web-1's CPU.
    let cpu = until(
        &prom,
        &format!("node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate{{namespace=\"{ns}\",pod=\"web-1\",container=\"app\"}} > 0.2"),
        1,
    );
    assert_eq!(cpu.len(), 1, "{cpu:?}");

    // The pod's own cgroup: namespace and pod, container and image empty.
    let pod_level = until(
        &prom,
        &format!("container_memory_working_set_bytes{{job=\"collector-exporter\",namespace=\"{ns}\",container=\"\"}}"),
        2,
    );
    for s in &pod_level {
        assert!(label(s, "id").contains("/kubepods/burstable/pod"), "{s}");
        assert!(label(s, "image").is_empty(), "{s}");
    }

    // container_critical for the kube-system CoreDNS alone, with the labels the alerts keep.
    let critical = until(
        &prom,
        &format!("container_critical{{job=\"collector-exporter\",pod=~\"web-1|{dns_pod}\"}}"),
        1,
    );
    assert_eq!(critical.len(), 1, "{critical:?}");
    for (k, v) in [
        ("component", "coredns"),
        ("container", "coredns"),
        ("namespace", "kube-system"),
        ("pod", dns_pod.as_str()),
    ] {
        assert_eq!(label(&critical[0], k), v, "{critical:?}");
    }

    // "Compute Resources / Pod": memory by container, and the pod's network once.
    let by_container = until(
        &prom,
        &format!("sum(container_memory_working_set_bytes{{job=\"collector-exporter\", namespace=\"{ns}\", pod=\"web-1\", container!=\"\", image!=\"\"}}) by (container)"),
        4,
    );
    assert_eq!(
        by_container.len(),
        4,
        "app, log, coredns, POD: {by_container:?}"
    );
    let rx = until(
        &prom,
        &format!("container_network_receive_packets_total{{job=\"collector-exporter\", namespace=\"{ns}\", pod=\"web-1\"}}"),
        1,
    );
    assert_eq!(rx.len(), 1, "web-1's network on its sandbox only: {rx:?}");
    assert_eq!(label(&rx[0], "container"), "POD", "{rx:?}");
    assert_eq!(label(&rx[0], "interface"), "eth0", "{rx:?}");
    let packets: f64 = rx[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(packets >= 3.0, "the pings: {rx:?}");
}
