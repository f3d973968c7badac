//! Every figure in `ContainerStats` reaches every encoder, or is listed here as left out of
//! it on purpose, with the reason. A figure added to `stats.rs` and to no encoder fails this.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::collector::{Container, Snapshot};
use crate::elastic::doc::{Destination, Encoder};
use crate::identity;
use crate::metadata::Metadata;
use crate::prometheus::{self as prom, Format, Options};
use crate::stats::ContainerStats;
use crate::testutil::{enum_variants, every_field, every_field_filled};

/// (encoders, figures' paths (`*` matches any run of characters), why they are not written).
/// Elasticsearch's documents carry every figure.
const LEFT_OUT: &[(&[&str], &str, &str)] = &[
    (
        &[PROM, INFLUX],
        ".blkio[].m*or",
        "devices are told by name; major:minor stand in only when the name is unknown",
    ),
    (
        &[PROM, INFLUX],
        ".blkio[].discard*",
        "cAdvisor has no discard series; in the JSON API and Elasticsearch",
    ),
    (
        &[PROM],
        ".cpu.usage_ns",
        "with per-CPU figures present cAdvisor writes one series per CPU instead of cpu=\"total\"",
    ),
    (
        &[INFLUX],
        ".cpu.per_cpu_ns[]",
        "a field per CPU would make the field set vary with the node's cores",
    ),
    (
        &[PROM, INFLUX],
        ".fs.major|.fs.minor|.fs.upperdir|.fs.backoff|.fs.walk_duration_ms",
        "the walker's own state (backing device numbers, upper directory, back-off, walk time)",
    ),
    (&[PROM], ".fs.available_bytes", "cAdvisor writes the limit and usage"),
    (&[PROM, INFLUX], ".fs.measured_ms", "served as the walk's age instead"),
    (
        &[INFLUX],
        ".fs.age_ms",
        "not in the InfluxDB schema; served as container_fs_usage_age_seconds and in Elasticsearch",
    ),
    (
        &[PROM, INFLUX],
        ".load.load_d_average_10s",
        "cAdvisor's `_d_` name is rejected by promtool; in the JSON API and Elasticsearch",
    ),
    (&[PROM, INFLUX], ".load.source", "where the counts came from, not a figure"),
    (&[INFLUX], ".load.io_wait", "the kernel counts tasks in IO wait among the uninterruptible ones too"),
    (
        &[PROM, INFLUX],
        ".memory.*active_*",
        "the page lists behind the working set; cAdvisor writes the working set",
    ),
    (
        &[PROM, INFLUX],
        ".memory.dirty_bytes",
        "cAdvisor has no series; in the JSON API and Elasticsearch",
    ),
    (
        &[PROM, INFLUX],
        ".memory.writeback_bytes",
        "cAdvisor has no series; in the JSON API and Elasticsearch",
    ),
    (
        &[PROM, INFLUX],
        ".memory.shmem_bytes",
        "cAdvisor has no series; in the JSON API and Elasticsearch",
    ),
    (
        &[PROM, INFLUX],
        ".memory.unevictable_bytes",
        "cAdvisor has no series; in the JSON API and Elasticsearch",
    ),
    (
        &[PROM, INFLUX],
        ".memory.events.low|.memory.events.high|.memory.events.max|.memory.events.oom",
        "cAdvisor counts OOM kills only (`oom_kill`); the others are in the JSON API and Elasticsearch",
    ),
    (
        &[PROM],
        ".pressure.*.avg*",
        "cAdvisor writes the stall totals; averages are rates of them",
    ),
    (
        &[INFLUX],
        ".pressure.*.avg60|.pressure.*.avg300",
        "the 10 s average is written; longer ones are rates of the totals",
    ),
    (&[PROM, INFLUX], ".spec.cpu_weight", "written as the shares cAdvisor reports"),
    (&[PROM, INFLUX], ".spec.cpuset_*", "CPU and node lists are text, not values"),
    (
        &[PROM, INFLUX],
        ".spec.memory_high_bytes",
        "cAdvisor has no series; in the JSON API and Elasticsearch",
    ),
    (
        &[PROM, INFLUX],
        ".spec.pids_limit",
        "the same figure as `pids.limit`, written as the threads maximum",
    ),
];

const PROM: &str = "prometheus";
const INFLUX: &str = "influxdb";

/// Whether `path` matches `pattern`: alternatives split by `|`, in which `*` matches any run
/// of characters.
fn matches(pattern: &str, path: &str) -> bool {
    fn glob(p: &str, s: &str) -> bool {
        match p.split_once('*') {
            None => p == s,
            Some((head, rest)) => {
                s.starts_with(head)
                    && (head.len()..=s.len())
                        .filter(|&i| s.is_char_boundary(i))
                        .any(|i| glob(rest, &s[i..]))
            }
        }
    }
    pattern.split('|').any(|alt| glob(alt, path))
}

fn snapshot(stats: ContainerStats) -> Snapshot {
    let id = format!("/docker/{}", "c0ffee".repeat(10) + "abcd");
    Snapshot {
        timestamp_ms: 1_700_000_000_000,
        containers: vec![Container {
            identity: identity::classify(&id, &[]),
            id,
            first_seen_ms: 1_699_999_000_000,
            created_ms: Some(1_699_999_000_000),
            idle: false,
            meta: Metadata {
                name: Some("web".into()),
                image: Some("nginx:1.25".into()),
                ..Metadata::default()
            },
            stats,
        }],
        ..Snapshot::default()
    }
}

/// Each encoder's output for one snapshot.
fn encode(stats: ContainerStats) -> BTreeMap<&'static str, Vec<u8>> {
    let snap = snapshot(stats);
    let mut out = BTreeMap::new();
    let opts = Options::default();
    out.insert(
        PROM,
        prom::render(&snap, &opts, Format::PrometheusText).into_bytes(),
    );
    let mut lines = Vec::new();
    crate::influx::schema::encode(&snap, "node1", false, true, &mut lines);
    out.insert(INFLUX, lines.concat());
    let mut docs = Vec::new();
    Encoder::new("node1", Destination::DataStream("metrics-c-default".into()))
        .encode(&snap, true, &mut docs);
    out.insert("elasticsearch", docs.concat());
    out
}

/// The JSON value at `path` (`.a.b[].c`, lists one long).
fn leaf<'v>(v: &'v mut Value, path: &str) -> &'v mut Value {
    let mut v = v;
    for part in path.split('.').skip(1) {
        let (key, items) = match part.find("[]") {
            Some(i) => (&part[..i], part[i..].matches("[]").count()),
            None => (part, 0),
        };
        v = &mut v[key];
        for _ in 0..items {
            v = &mut v[0];
        }
    }
    v
}

#[test]
fn every_figure_reaches_every_encoder_or_is_listed_as_left_out() {
    let base_json = every_field_filled();
    let stats = |v: &Value| -> ContainerStats {
        serde_json::from_value(v.clone()).expect("the filled stats deserialize")
    };
    let base = encode(stats(&base_json));
    let enums: BTreeMap<String, Vec<String>> = enum_variants().into_iter().collect();
    let mut missing = Vec::new();
    for path in every_field() {
        let mut changed = base_json.clone();
        let v = leaf(&mut changed, &path);
        *v = match v {
            Value::Number(n) if n.is_u64() => Value::from(n.as_u64().unwrap_or(0) + 7_777_777),
            Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0) + 0.123),
            Value::String(s) => match enums.get(&path) {
                Some(vs) => Value::String(vs.iter().find(|x| *x != s).expect("two").clone()),
                None => Value::String(format!("{s}-changed")),
            },
            Value::Bool(b) => Value::Bool(!*b),
            other => panic!("{path}: not a leaf: {other}"),
        };
        let out = encode(stats(&changed));
        for (encoder, bytes) in &out {
            let listed = LEFT_OUT
                .iter()
                .any(|&(es, p, _)| es.contains(encoder) && matches(p, &path));
            let written = base.get(encoder) != Some(bytes);
            if written == listed {
                missing.push(format!(
                    "{encoder} {path}: {}",
                    if listed {
                        "written, yet listed as left out"
                    } else {
                        "not written"
                    }
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn patterns_match_as_documented() {
    let fs = ".fs.major|.fs.upperdir";
    assert!(matches(fs, ".fs.upperdir") && matches(fs, ".fs.major"));
    assert!(!matches(fs, ".fs.usage_bytes") && !matches(fs, ".fs.majors"));
    assert!(matches(".blkio[].m*or", ".blkio[].minor"));
    assert!(matches(".pressure.*.avg*", ".pressure.io.full.avg60"));
    assert!(!matches(".pressure.*.avg60", ".pressure.io.full.avg10"));
    assert!(matches("*", "") && matches("a*", "a") && !matches("a*b", "ba"));
}
