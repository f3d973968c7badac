//! The composable index template (`PUT _index_template/<name>`): explicit mappings for every
//! field the documents carry, so the first document of a new index cannot fix a wrong type
//! (a gauge that happened to be `0` mapped as `long` for ever, an id analysed as text).
//!
//! Figures under `collector.*` that a later version adds (the serialized `ContainerStats`)
//! are covered by dynamic templates typed by their JSON kind: integers `long`, fractions
//! `double`, strings `keyword`. Date and numeric detection are off.

use serde_json::{json, Map, Value};

/// Bumped whenever the mappings change; stored as the template's `version`.
pub const SCHEMA_VERSION: u64 = 2;

/// Who installed a template, in its `_meta`.
pub const MANAGED_BY: &str = "container-collector";

const KEYWORD: &str = "keyword";
const LONG: &str = "long";
const DOUBLE: &str = "double";
const IP: &str = "ip";
/// ECS fractions (`container.cpu.usage`, `container.memory.usage`): three decimals.
const FRACTION: &str = "scaled_float";

/// Every explicitly mapped field (dotted path, type).
pub fn fields() -> Vec<(String, &'static str)> {
    let mut f: Vec<(String, &'static str)> = Vec::new();
    let mut add = |prefix: &str, names: &[&str], ty: &'static str| {
        for n in names {
            f.push((format!("{prefix}{n}"), ty));
        }
    };
    // ECS.
    add(
        "",
        &[
            "event.kind",
            "event.category",
            "event.action",
            "event.dataset",
            "host.name",
            "process.name",
            "process.executable",
            "process.command_line",
            "user.id",
            "rule.name",
        ],
        KEYWORD,
    );
    add(
        "",
        &[
            "process.pid",
            "process.parent.pid",
            "source.port",
            "destination.port",
        ],
        LONG,
    );
    add("", &["source.ip", "destination.ip"], IP);
    add(
        "container.",
        &["id", "name", "runtime", "image.name"],
        KEYWORD,
    );
    add("container.", &["cpu.usage", "memory.usage"], FRACTION);
    add(
        "container.",
        &[
            "network.ingress.bytes",
            "network.egress.bytes",
            "disk.read.bytes",
            "disk.write.bytes",
        ],
        LONG,
    );
    add(
        "orchestrator.",
        &["type", "namespace", "resource.name", "resource.type"],
        KEYWORD,
    );
    // The collector's own figures: `ContainerStats` as serialized, and a few more.
    let c = "collector.";
    add(
        c,
        &["cgroup", "kind", "pod_uid", "qos_class", "container_name"],
        KEYWORD,
    );
    add(c, &["period_ms", "event_count", "peer.port"], LONG);
    add(
        "collector.peer.",
        &["direction", "scope", "container_id", "container_name"],
        KEYWORD,
    );
    add(c, &["cpu_usage_normalized"], FRACTION);
    add(
        "collector.cpu.",
        &[
            "usage_ns",
            "user_ns",
            "system_ns",
            "per_cpu_ns",
            "nr_periods",
            "nr_throttled",
            "throttled_ns",
        ],
        LONG,
    );
    add(
        "collector.memory.",
        &[
            "usage_bytes",
            "max_usage_bytes",
            "working_set_bytes",
            "rss_bytes",
            "cache_bytes",
            "mapped_file_bytes",
            "shmem_bytes",
            "dirty_bytes",
            "writeback_bytes",
            "active_anon_bytes",
            "inactive_anon_bytes",
            "active_file_bytes",
            "inactive_file_bytes",
            "unevictable_bytes",
            "kernel_bytes",
            "swap_bytes",
            "pgfault",
            "pgmajfault",
            "failcnt",
            "events.low",
            "events.high",
            "events.max",
            "events.oom",
            "events.oom_kill",
        ],
        LONG,
    );
    add(
        "collector.blkio.",
        &[
            "major",
            "minor",
            "read_bytes",
            "write_bytes",
            "reads",
            "writes",
            "discard_bytes",
            "discards",
        ],
        LONG,
    );
    add("collector.blkio.", &["device"], KEYWORD);
    add("collector.pids.", &["current", "limit"], LONG);
    for proto in ["tcp", "tcp6"] {
        add(
            &format!("collector.sockets.{proto}."),
            &[
                "established",
                "syn_sent",
                "syn_recv",
                "fin_wait1",
                "fin_wait2",
                "time_wait",
                "close",
                "close_wait",
                "last_ack",
                "listen",
                "closing",
            ],
            LONG,
        );
    }
    for proto in ["udp", "udp6"] {
        add(
            &format!("collector.sockets.{proto}."),
            &["listen", "dropped", "rx_queued", "tx_queued"],
            LONG,
        );
    }
    add(
        "collector.processes.",
        &["count", "fds", "sockets", "max_open_files"],
        LONG,
    );
    add("collector.security.", &["processes_started"], LONG);
    add(
        "collector.security.findings.",
        &crate::security::FindingKind::ALL.map(|k| k.name()),
        LONG,
    );
    let scopes = crate::stats::Scope::ALL.map(|s| s.name());
    for d in crate::stats::Direction::ALL {
        add(
            &format!("collector.peers.current.{}.", d.name()),
            &scopes,
            LONG,
        );
    }
    add("collector.peers.new_total.", &scopes, LONG);
    for res in ["cpu", "memory", "io"] {
        for line in ["some", "full"] {
            let p = format!("collector.pressure.{res}.{line}.");
            add(&p, &["avg10", "avg60", "avg300"], DOUBLE);
            add(&p, &["total_us"], LONG);
        }
    }
    add(
        "collector.network.",
        &["status", "interfaces.name"],
        KEYWORD,
    );
    add(
        "collector.network.interfaces.",
        &[
            "rx_bytes",
            "rx_packets",
            "rx_errors",
            "rx_dropped",
            "tx_bytes",
            "tx_packets",
            "tx_errors",
            "tx_dropped",
        ],
        LONG,
    );
    add(
        "collector.load.",
        &[
            "running",
            "sleeping",
            "stopped",
            "uninterruptible",
            "io_wait",
        ],
        LONG,
    );
    add(
        "collector.load.",
        &["load_average_10s", "load_d_average_10s"],
        DOUBLE,
    );
    add("collector.load.", &["source"], KEYWORD);
    add(
        "collector.spec.",
        &[
            "cpu_shares",
            "cpu_weight",
            "cpu_quota_us",
            "cpu_period_us",
            "memory_limit_bytes",
            "memory_reservation_bytes",
            "memory_high_bytes",
            "memory_swap_limit_bytes",
            "pids_limit",
        ],
        LONG,
    );
    add("collector.spec.", &["cpuset_cpus", "cpuset_mems"], KEYWORD);
    add(
        "collector.fs.",
        &[
            "major",
            "minor",
            "usage_bytes",
            "inodes_used",
            "limit_bytes",
            "available_bytes",
            "inodes_total",
            "inodes_free",
            "measured_ms",
            "age_ms",
            "walk_duration_ms",
            "backoff",
        ],
        LONG,
    );
    add("collector.fs.", &["device", "upperdir"], KEYWORD);
    f
}

fn leaf(ty: &str) -> Value {
    match ty {
        FRACTION => json!({ "type": FRACTION, "scaling_factor": 1000 }),
        KEYWORD => json!({ "type": KEYWORD, "ignore_above": 1024 }),
        t => json!({ "type": t }),
    }
}

/// The `mappings` object.
pub fn mappings() -> Value {
    let mut props = Map::new();
    props.insert("@timestamp".into(), json!({ "type": "date" }));
    // `text`, not `match_only_text`: the latter is Elasticsearch 7.14+ only (OpenSearch lacks it).
    props.insert("message".into(), json!({ "type": "text" }));
    props.insert(
        "container".into(),
        json!({ "properties": { "labels": { "type": "object" } } }),
    );
    for (path, ty) in fields() {
        let mut node = &mut props;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                node.insert((*p).into(), leaf(ty));
            } else {
                let child = node
                    .entry(*p)
                    .or_insert_with(|| json!({ "properties": {} }));
                node = child
                    .get_mut("properties")
                    .and_then(Value::as_object_mut)
                    .expect("an object node");
            }
        }
    }
    json!({
        "dynamic": true,
        "date_detection": false,
        "numeric_detection": false,
        "dynamic_templates": [
            { "container_labels": {
                "path_match": "container.labels.*",
                "match_mapping_type": "string",
                "mapping": { "type": KEYWORD, "ignore_above": 1024 } } },
            { "collector_integers": {
                "path_match": "collector.*",
                "match_mapping_type": "long",
                "mapping": { "type": LONG } } },
            { "collector_fractions": {
                "path_match": "collector.*",
                "match_mapping_type": "double",
                "mapping": { "type": DOUBLE } } },
            { "collector_strings": {
                "path_match": "collector.*",
                "match_mapping_type": "string",
                "mapping": { "type": KEYWORD, "ignore_above": 1024 } } },
        ],
        "properties": props,
    })
}

/// The whole template body. `data_stream` makes matching names data streams (Elasticsearch
/// 7.9 and later).
pub fn body(index_patterns: &[String], data_stream: bool, priority: u32) -> Value {
    let mut t = json!({
        "index_patterns": index_patterns,
        "priority": priority,
        "version": SCHEMA_VERSION,
        "template": { "mappings": mappings() },
        "_meta": {
            "managed_by": MANAGED_BY,
            "description": "container resource figures (ECS field names); see docs/METRICS.md",
        },
    });
    if data_stream {
        t["data_stream"] = json!({});
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elastic::doc::{Destination, Encoder};

    /// Every leaf of a document, as (dotted path, JSON value).
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&p, v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| leaves(prefix, v, out)),
            v => out.push((prefix.to_string(), v.clone())),
        }
    }

    fn mapped_type(mappings: &Value, path: &str) -> Option<String> {
        let mut node = &mappings["properties"];
        let parts: Vec<&str> = path.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let f = node.get(p)?;
            if i + 1 == parts.len() {
                return f["type"].as_str().map(str::to_string);
            }
            node = &f["properties"];
        }
        None
    }

    /// A document of a container with every figure present, from a fully filled
    /// `ContainerStats` (built from JSON so every field is set).
    fn full_container() -> crate::collector::Container {
        let stats: crate::stats::ContainerStats = serde_json::from_value(json!({
            "cpu": { "usage_ns": 1, "user_ns": 1, "system_ns": 1, "per_cpu_ns": [1, 2],
                     "nr_periods": 1, "nr_throttled": 1, "throttled_ns": 1 },
            "memory": { "usage_bytes": 1, "max_usage_bytes": 1, "working_set_bytes": 1,
                "rss_bytes": 1, "cache_bytes": 1, "mapped_file_bytes": 1, "shmem_bytes": 1,
                "dirty_bytes": 1, "writeback_bytes": 1, "active_anon_bytes": 1,
                "inactive_anon_bytes": 1, "active_file_bytes": 1, "inactive_file_bytes": 1,
                "unevictable_bytes": 1, "kernel_bytes": 1, "swap_bytes": 1, "pgfault": 1,
                "pgmajfault": 1, "failcnt": 1,
                "events": { "low": 1, "high": 1, "max": 1, "oom": 1, "oom_kill": 1 } },
            "blkio": [{ "major": 8, "minor": 0, "device": "sda", "read_bytes": 1, "write_bytes": 1,
                        "reads": 1, "writes": 1, "discard_bytes": 1, "discards": 1 }],
            "pids": { "current": 1, "limit": 2 },
            "pressure": {
                "cpu": { "some": { "avg10": 0.5, "avg60": 0.5, "avg300": 0.5, "total_us": 1 },
                         "full": { "avg10": 0.5, "avg60": 0.5, "avg300": 0.5, "total_us": 1 } },
                "memory": { "some": { "avg10": 0.5, "avg60": 0.5, "avg300": 0.5, "total_us": 1 },
                            "full": { "avg10": 0.5, "avg60": 0.5, "avg300": 0.5, "total_us": 1 } },
                "io": { "some": { "avg10": 0.5, "avg60": 0.5, "avg300": 0.5, "total_us": 1 },
                        "full": { "avg10": 0.5, "avg60": 0.5, "avg300": 0.5, "total_us": 1 } } },
            "network": { "status": "own", "interfaces": [{ "name": "eth0", "rx_bytes": 1,
                "rx_packets": 1, "rx_errors": 1, "rx_dropped": 1, "tx_bytes": 1, "tx_packets": 1,
                "tx_errors": 1, "tx_dropped": 1 }] },
            "load": { "running": 1, "sleeping": 1, "stopped": 1, "uninterruptible": 1,
                      "io_wait": 1, "load_average_10s": 0.5, "load_d_average_10s": 0.5,
                      "source": "procfs" },
            "spec": { "cpu_shares": 1, "cpu_weight": 1, "cpu_quota_us": 1, "cpu_period_us": 1,
                      "cpuset_cpus": "0-1", "cpuset_mems": "0", "memory_limit_bytes": 1,
                      "memory_reservation_bytes": 1, "memory_high_bytes": 1,
                      "memory_swap_limit_bytes": 1, "pids_limit": 1 },
            "fs": { "major": 8, "minor": 1, "device": "sda1", "upperdir": "/x", "usage_bytes": 1,
                    "inodes_used": 1, "limit_bytes": 1, "available_bytes": 1, "inodes_total": 1,
                    "inodes_free": 1, "measured_ms": 1, "age_ms": 1, "walk_duration_ms": 1,
                    "backoff": 1 },
        }))
        .expect("ContainerStats from JSON");
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("app.kubernetes.io/name".into(), "x".into());
        crate::collector::Container {
            id: "/kubepods/pod1/abc".into(),
            identity: crate::identity::Identity {
                kind: crate::identity::Kind::Container,
                runtime: Some(crate::identity::Runtime::Docker),
                container_id: Some("abc".into()),
                pod_uid: Some("u".into()),
                qos_class: Some("burstable".into()),
            },
            first_seen_ms: 0,
            created_ms: None,
            idle: false,
            meta: crate::collector::Metadata {
                name: Some("n".into()),
                image: Some("i".into()),
                namespace: Some("ns".into()),
                pod: Some("p".into()),
                container: Some("c".into()),
                labels,
            },
            stats,
        }
    }

    /// Every field a document can carry is mapped explicitly, with a type that fits its
    /// JSON value: nothing is left to dynamic mapping today.
    #[test]
    fn every_document_field_is_mapped() {
        let m = mappings();
        let mut e = Encoder::new(
            "h",
            Destination::DataStream("metrics-container-default".into()),
        );
        let mut snap = crate::collector::Snapshot {
            timestamp_ms: 1_000,
            containers: vec![full_container()],
            ..Default::default()
        };
        snap.machine.memory_bytes = Some(1 << 30);
        snap.machine.cpu_cores = Some(2);
        let mut items = Vec::new();
        e.encode(&snap, true, &mut items);
        snap.timestamp_ms = 2_000;
        snap.events.push(crate::events::Event {
            time_ms: 2_000,
            kind: crate::events::EventKind::OomKill,
            id: "/kubepods/pod1/abc".into(),
            container_id: Some("abc".into()),
            runtime: None,
            name: None,
            image: None,
            count: 1,
            namespace: None,
            pod: None,
            finding: None,
        });
        e.encode(&snap, true, &mut items);
        let mut seen = std::collections::BTreeSet::new();
        for item in &items {
            let doc: Value =
                serde_json::from_slice(item.split(|&b| b == b'\n').nth(1).unwrap()).unwrap();
            let mut ls = Vec::new();
            leaves("", &doc, &mut ls);
            for (path, v) in ls {
                seen.insert(path.clone());
                if path.starts_with("container.labels.") {
                    continue; // dynamic template: keyword
                }
                if path.starts_with("collector.machine.") {
                    continue; // the machine document: the collector_* dynamic templates type it
                }
                let ty = mapped_type(&m, &path).unwrap_or_else(|| panic!("{path} is not mapped"));
                let fits = match &v {
                    Value::String(_) => {
                        ["keyword", "date", "text", "match_only_text"].contains(&ty.as_str())
                    }
                    Value::Number(n) if n.is_f64() => {
                        ["double", "scaled_float"].contains(&ty.as_str())
                    }
                    Value::Number(_) => ["long", "double", "scaled_float"].contains(&ty.as_str()),
                    _ => false,
                };
                assert!(fits, "{path} = {v} is mapped as {ty}");
            }
        }
        for want in [
            "container.cpu.usage",
            "container.memory.usage",
            "container.network.ingress.bytes",
            "container.disk.write.bytes",
            "collector.fs.upperdir",
            "collector.pressure.io.full.avg300",
            "container.labels.app_kubernetes_io/name",
            "event.action",
            "message",
        ] {
            assert!(seen.contains(want), "no {want} in {seen:?}");
        }
    }

    #[test]
    fn template_body() {
        let b = body(&["metrics-container-default".into()], true, 200);
        assert_eq!(b["data_stream"], json!({}));
        assert_eq!(b["priority"], 200);
        assert_eq!(
            b["template"]["mappings"]["properties"]["@timestamp"]["type"],
            "date"
        );
        assert_eq!(
            b["template"]["mappings"]["properties"]["container"]["properties"]["id"]["type"],
            "keyword"
        );
        assert_eq!(
            b["template"]["mappings"]["properties"]["container"]["properties"]["cpu"]["properties"]
                ["usage"]["scaling_factor"],
            1000
        );
        assert!(body(&["x-*".into()], false, 200)
            .get("data_stream")
            .is_none());
    }
}
