//! Encoding one snapshot for each output, beside the obvious alternative:
//!
//! - `prometheus/ours/N`: the exporter's /metrics body (its text writer, cAdvisor names), for
//!   N = 1,000 and 10,000 containers; `prometheus/prometheus-client/N`: the same families
//!   through `prometheus-client`'s encoder (`SnapshotCollector`); `ours-pieces` and
//!   `ours-pieces-gzip`: as the exporter serves a scrape, in 64 KiB pieces, plain or gzipped;
//!   `prometheus/format/N`: the same families written sample by sample with `format!` into a
//!   `String`, as a hand-rolled exporter would.
//! - `influx/ours/1000`: the InfluxDB sink's line protocol (escaping, sorted tags);
//!   `influx/format/1000`: the same measurements by `format!`, without escaping.
//! - `elastic/ours/1000`: the Elasticsearch sink's `_bulk` body (one action and one ECS
//!   document per container); `elastic/serde_json/1000`: one `serde_json::json!` value per
//!   container serialized in turn.
//! - `remote_write/ours-items/N`: the remote-write sink's `encode` (one item per sample,
//!   staleness bookkeeping included) for N = 1,000 and 10,000; `remote_write/ours/N`: that
//!   and the requests made of the items, 5,000 samples each, snappy-compressed, as the sink
//!   sends them; `remote_write/prost/N`: the same samples as prost `TimeSeries` structs (a
//!   `String` per label name and value, as a hand-rolled encoder builds them), encoded and
//!   compressed in the same batches.
//!
//! The containers are copies of the Docker container of the v1 hybrid kernel capture in
//! `tests/fixtures` (a real sweep of it, so every family the readers fill is present), each
//! under its own id. No root needed; nothing is written.

use std::hint::black_box;
use std::sync::Arc;

use collector_core::elastic::{ElasticConfig, ElasticSink};
use collector_core::influx::{Api, InfluxConfig, InfluxSink};
use collector_core::prometheus::{
    encode, render, write_chunked, Format, Options, SnapshotCollector,
};
use collector_core::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use collector_core::remote_write::{RemoteWriteConfig, RemoteWriteSink};
use collector_core::sink::Sink;
use collector_core::{Collector, Config, Roots, Snapshot};
use collector_exporter::server::{Pieces, PIECE};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A snapshot of `n` containers, each a copy of the fixture's Docker container.
fn snapshot(n: usize) -> Snapshot {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cgroup-v1-hybrid-docker"
    );
    let mut col = Collector::new(Config {
        roots: Roots::under(std::path::Path::new(root)),
        watch: false,
        load: false,
        ..Config::default()
    })
    .expect("the fixture tree");
    let one = col.sweep();
    let model = one
        .containers
        .iter()
        .find(|c| c.id.starts_with("/docker/"))
        .expect("the fixture's docker container")
        .clone();
    let mut s = Snapshot {
        timestamp_ms: one.timestamp_ms,
        setup: one.setup,
        machine: one.machine.clone(),
        ..Snapshot::default()
    };
    for i in 0..n {
        let mut c = model.clone();
        let cid = format!("{i:064x}");
        c.id = format!("/docker/{cid}");
        c.identity.container_id = Some(cid);
        c.meta.name = Some(format!("app-{i}"));
        c.meta.image = Some("registry.example/app:1.4.2".into());
        c.stats.cpu.usage_ns = c.stats.cpu.usage_ns.map(|v| v + i as u64);
        s.containers.push(c);
    }
    s
}

fn prometheus(c: &mut Criterion) {
    let mut g = c.benchmark_group("prometheus");
    for n in [1_000, 10_000] {
        let snap = Arc::new(snapshot(n));
        let opts = Arc::new(Options::default());
        let body = render(&snap, &opts, Format::PrometheusText);
        eprintln!(
            "prometheus, {n} containers: {} bytes, {} samples",
            body.len(),
            body.lines().filter(|l| !l.starts_with('#')).count()
        );
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("ours", n), &n, |b, _| {
            b.iter(|| render(&snap, &opts, Format::PrometheusText))
        });
        g.bench_with_input(BenchmarkId::new("ours-pieces", n), &n, |b, _| {
            b.iter(|| in_pieces(&snap, &opts, false))
        });
        g.bench_with_input(BenchmarkId::new("ours-pieces-gzip", n), &n, |b, _| {
            b.iter(|| in_pieces(&snap, &opts, true))
        });
        g.bench_with_input(BenchmarkId::new("prometheus-client", n), &n, |b, _| {
            b.iter(|| through_client(&snap, &opts))
        });
        g.bench_with_input(BenchmarkId::new("format", n), &n, |b, _| {
            b.iter(|| prometheus_by_format(black_box(&snap)))
        });
    }
    g.finish();
}

/// What the exporter does for a scrape, with its own code: the text in 64 KiB pieces, each
/// gzipped (level 1) when asked; the pieces are dropped as they come, as once sent. Returns
/// the bytes made.
fn in_pieces(snap: &Snapshot, opts: &Options, gzip: bool) -> usize {
    let mut made = 0;
    let mut out = Pieces::new(gzip, |b| {
        made += black_box(b.len());
        Ok(())
    });
    let mut text = String::with_capacity(PIECE + PIECE / 4);
    write_chunked(
        &mut text,
        snap,
        opts,
        Format::PrometheusText,
        PIECE,
        &mut |t| out.send(t),
    )
    .expect("no reader to leave");
    out.send(&mut text)
        .and_then(|()| out.finish())
        .expect("gzip into memory");
    made
}

/// The same families through `prometheus-client`'s own text encoder (what the exporter served
/// until the fifth round of PERFORMANCE.md, and what an embedder's registry gets).
fn through_client(snap: &Arc<Snapshot>, opts: &Arc<Options>) -> String {
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register_collector(Box::new(SnapshotCollector::new(snap.clone(), opts.clone())));
    let mut out = String::new();
    encode(&mut out, &reg, Format::PrometheusText).expect("encoding into a String");
    out
}

/// The main families, one `format!` per sample, labels `id`, `name`, `image`.
fn prometheus_by_format(s: &Snapshot) -> String {
    let mut out = String::new();
    for c in &s.containers {
        let name = c.meta.name.as_deref().unwrap_or("");
        let image = c.meta.image.as_deref().unwrap_or("");
        let l = format!("id=\"{}\",image=\"{image}\",name=\"{name}\"", c.id);
        let st = &c.stats;
        let secs = |ns: Option<u64>| ns.unwrap_or(0) as f64 / 1e9;
        let bytes = |b: Option<u64>| b.unwrap_or(0) as f64;
        for (family, v) in [
            ("container_cpu_usage_seconds_total", secs(st.cpu.usage_ns)),
            ("container_cpu_user_seconds_total", secs(st.cpu.user_ns)),
            ("container_cpu_system_seconds_total", secs(st.cpu.system_ns)),
            ("container_cpu_cfs_periods_total", bytes(st.cpu.nr_periods)),
            (
                "container_cpu_cfs_throttled_periods_total",
                bytes(st.cpu.nr_throttled),
            ),
            (
                "container_cpu_cfs_throttled_seconds_total",
                secs(st.cpu.throttled_ns),
            ),
            ("container_memory_usage_bytes", bytes(st.memory.usage_bytes)),
            (
                "container_memory_working_set_bytes",
                bytes(st.memory.working_set_bytes),
            ),
            ("container_memory_rss", bytes(st.memory.rss_bytes)),
            ("container_memory_cache", bytes(st.memory.cache_bytes)),
            ("container_memory_swap", bytes(st.memory.swap_bytes)),
            (
                "container_memory_mapped_file",
                bytes(st.memory.mapped_file_bytes),
            ),
            (
                "container_memory_max_usage_bytes",
                bytes(st.memory.max_usage_bytes),
            ),
            ("container_memory_failcnt", bytes(st.memory.failcnt)),
            ("container_threads", bytes(st.pids.current)),
            ("container_threads_max", bytes(st.pids.limit)),
            (
                "container_spec_memory_limit_bytes",
                bytes(st.spec.memory_limit_bytes),
            ),
            ("container_spec_cpu_shares", bytes(st.spec.cpu_shares)),
        ] {
            out.push_str(&format!("{family}{{{l}}} {v}\n"));
        }
        for i in &st.network.interfaces {
            for (family, v) in [
                ("container_network_receive_bytes_total", i.rx_bytes),
                ("container_network_transmit_bytes_total", i.tx_bytes),
                ("container_network_receive_packets_total", i.rx_packets),
                ("container_network_transmit_packets_total", i.tx_packets),
                ("container_network_receive_errors_total", i.rx_errors),
                ("container_network_transmit_errors_total", i.tx_errors),
                (
                    "container_network_receive_packets_dropped_total",
                    i.rx_dropped,
                ),
                (
                    "container_network_transmit_packets_dropped_total",
                    i.tx_dropped,
                ),
            ] {
                out.push_str(&format!("{family}{{{l},interface=\"{}\"}} {v}\n", i.name));
            }
        }
        for d in &st.blkio {
            let dev = d.device.as_deref().unwrap_or("");
            for (family, v) in [
                ("container_fs_reads_bytes_total", d.read_bytes),
                ("container_fs_writes_bytes_total", d.write_bytes),
                ("container_fs_reads_total", d.reads),
                ("container_fs_writes_total", d.writes),
            ] {
                out.push_str(&format!("{family}{{{l},device=\"{dev}\"}} {v}\n"));
            }
        }
    }
    out
}

fn influx(c: &mut Criterion) {
    let n = 1_000;
    let snap = snapshot(n);
    let mut cfg = InfluxConfig::new(
        "http://127.0.0.1:9",
        Api::V1 {
            database: "containers".into(),
            retention_policy: None,
            username: None,
            password: None,
        },
    );
    cfg.host = Some("bench-host".into());
    let sink = InfluxSink::new(cfg).expect("an InfluxDB sink");
    sink_beside(c, "influx", sink, &snap, "format", influx_by_format);
}

/// A sink's `encode` of one snapshot beside the same done by `baseline`.
/// The bytes a baseline made.
trait Made {
    fn bytes(&self) -> usize;
}

impl Made for Vec<String> {
    fn bytes(&self) -> usize {
        self.iter().map(String::len).sum()
    }
}

impl Made for Vec<u8> {
    fn bytes(&self) -> usize {
        self.len()
    }
}

fn sink_beside<S: Sink, T: Made>(
    c: &mut Criterion,
    group: &str,
    mut sink: S,
    snap: &Snapshot,
    baseline_name: &str,
    baseline: fn(&Snapshot) -> T,
) {
    let n = snap.containers.len();
    let mut items = Vec::new();
    sink.encode(snap, true, &mut items);
    eprintln!(
        "{group}, {n} containers: {} items, {} bytes",
        items.len(),
        items.iter().map(Vec::len).sum::<usize>()
    );
    // Per byte made: the baselines write fewer fields (and no escaping), so time alone
    // would flatter them.
    let ours_bytes: usize = items.iter().map(Vec::len).sum();
    let base_bytes = baseline(snap).bytes();
    eprintln!("{group} {baseline_name}, {n} containers: {base_bytes} bytes");
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(ours_bytes as u64));
    g.bench_with_input(BenchmarkId::new("ours", n), &n, |b, _| {
        b.iter(|| {
            items.clear();
            sink.encode(black_box(snap), true, &mut items);
            items.len()
        })
    });
    g.throughput(Throughput::Bytes(base_bytes as u64));
    g.bench_with_input(BenchmarkId::new(baseline_name, n), &n, |b, _| {
        b.iter(|| baseline(black_box(snap)))
    });
    g.finish();
}

/// The cpu and memory measurements and one per interface and device, one `format!` each.
fn influx_by_format(s: &Snapshot) -> Vec<String> {
    let ts = s.timestamp_ms as u128 * 1_000_000;
    let mut out = Vec::new();
    for c in &s.containers {
        let st = &c.stats;
        let tags = format!(
            "container_id={},host=bench-host,id={},image={},name={}",
            c.identity.container_id.as_deref().unwrap_or(""),
            c.id,
            c.meta.image.as_deref().unwrap_or(""),
            c.meta.name.as_deref().unwrap_or("")
        );
        out.push(format!(
            "container_cpu,{tags} usage_seconds={},user_seconds={},system_seconds={},periods={}i,throttled_periods={}i {ts}",
            st.cpu.usage_ns.unwrap_or(0) as f64 / 1e9,
            st.cpu.user_ns.unwrap_or(0) as f64 / 1e9,
            st.cpu.system_ns.unwrap_or(0) as f64 / 1e9,
            st.cpu.nr_periods.unwrap_or(0),
            st.cpu.nr_throttled.unwrap_or(0),
        ));
        let m = &st.memory;
        out.push(format!(
            "container_memory,{tags} usage_bytes={}i,working_set_bytes={}i,rss_bytes={}i,cache_bytes={}i,swap_bytes={}i,failcnt={}i {ts}",
            m.usage_bytes.unwrap_or(0),
            m.working_set_bytes.unwrap_or(0),
            m.rss_bytes.unwrap_or(0),
            m.cache_bytes.unwrap_or(0),
            m.swap_bytes.unwrap_or(0),
            m.failcnt.unwrap_or(0),
        ));
        for i in &st.network.interfaces {
            out.push(format!(
                "container_network,{tags},interface={} rx_bytes={}i,tx_bytes={}i,rx_packets={}i,tx_packets={}i {ts}",
                i.name, i.rx_bytes, i.tx_bytes, i.rx_packets, i.tx_packets
            ));
        }
        for d in &st.blkio {
            out.push(format!(
                "container_blkio,{tags},device={} read_bytes={}i,write_bytes={}i,reads={}i,writes={}i {ts}",
                d.device.as_deref().unwrap_or(""),
                d.read_bytes,
                d.write_bytes,
                d.reads,
                d.writes
            ));
        }
    }
    out
}

fn elastic(c: &mut Criterion) {
    let n = 1_000;
    let snap = snapshot(n);
    let mut cfg = ElasticConfig::new("http://127.0.0.1:9");
    cfg.host = Some("bench-host".into());
    cfg.machine_document = false;
    let sink = ElasticSink::new(cfg).expect("an Elasticsearch sink");
    sink_beside(c, "elastic", sink, &snap, "serde_json", elastic_by_json);
}

/// One action line and one document per container, each built as a `serde_json::Value`.
fn elastic_by_json(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    for c in &s.containers {
        let action = serde_json::json!({ "create": {} });
        let st = &c.stats;
        let doc = serde_json::json!({
            "@timestamp": s.timestamp_ms,
            "host": { "name": "bench-host" },
            "container": {
                "id": c.identity.container_id,
                "name": c.meta.name,
                "image": { "name": c.meta.image },
                "memory": { "usage": st.memory.usage_bytes },
                "cpu": { "usage_ns": st.cpu.usage_ns },
            },
            "collector": { "container": st },
        });
        serde_json::to_writer(&mut out, &action).unwrap();
        out.push(b'\n');
        serde_json::to_writer(&mut out, &doc).unwrap();
        out.push(b'\n');
    }
    out
}

/// Samples per request, as the runner batches them by default.
const RW_BATCH: usize = 5_000;

fn remote_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_write");
    g.sample_size(10);
    for n in [1_000, 10_000] {
        let snap = snapshot(n);
        let mut cfg = RemoteWriteConfig::new("http://127.0.0.1:9/api/v1/write");
        cfg.external_labels = vec![("instance".into(), "bench-node".into())];
        let mut sink = RemoteWriteSink::new(cfg).expect("a remote-write sink");
        let mut items = Vec::new();
        // Twice: the steady state, where the last push's series are known.
        sink.encode(&snap, true, &mut items);
        items.clear();
        sink.encode(&snap, true, &mut items);
        let (body, compressed) = requests(&items);
        eprintln!(
            "remote_write, {n} containers: {} samples, {} request bytes, {} compressed",
            items.len(),
            body,
            compressed
        );
        let flat = flatten(&items);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ours-items", n), &n, |b, _| {
            b.iter(|| {
                items.clear();
                sink.encode(black_box(&snap), true, &mut items);
                items.len()
            })
        });
        g.bench_with_input(BenchmarkId::new("ours", n), &n, |b, _| {
            b.iter(|| {
                items.clear();
                sink.encode(black_box(&snap), true, &mut items);
                requests(&items)
            })
        });
        g.bench_with_input(BenchmarkId::new("prost", n), &n, |b, _| {
            b.iter(|| by_prost(black_box(&flat)))
        });
    }
    g.finish();
}

/// The requests the sink makes of `items`: (bytes before, after snappy).
fn requests(items: &[Vec<u8>]) -> (usize, usize) {
    let mut body = Vec::new();
    let mut snappy = snap::raw::Encoder::new();
    let (mut raw, mut packed) = (0, 0);
    for batch in items.chunks(RW_BATCH) {
        RemoteWriteSink::write_request(batch, &mut body);
        raw += body.len();
        packed += snappy.compress_vec(&body).expect("snappy").len();
    }
    (raw, packed)
}

/// One sample's labels, value and time.
type Flat = (Vec<(String, String)>, f64, i64);

/// The items as plain data, for the prost baseline to start from.
fn flatten(items: &[Vec<u8>]) -> Vec<Flat> {
    use prost::Message;
    items
        .iter()
        .map(|i| {
            let t = TimeSeries::decode(&i[..]).expect("an item is a TimeSeries");
            let l = t.labels.into_iter().map(|l| (l.name, l.value)).collect();
            (l, t.samples[0].value, t.samples[0].timestamp)
        })
        .collect()
}

/// A `TimeSeries` per sample with its own label strings, encoded by prost and compressed,
/// 5,000 samples a request. Returns the compressed bytes.
fn by_prost(flat: &[Flat]) -> usize {
    use prost::Message;
    let mut snappy = snap::raw::Encoder::new();
    let mut made = 0;
    for batch in flat.chunks(RW_BATCH) {
        let req = WriteRequest {
            timeseries: batch
                .iter()
                .map(|(labels, value, timestamp)| TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.as_str().into(),
                            value: v.as_str().into(),
                        })
                        .collect(),
                    samples: vec![Sample {
                        value: *value,
                        timestamp: *timestamp,
                    }],
                })
                .collect(),
        };
        made += snappy
            .compress_vec(&req.encode_to_vec())
            .expect("snappy")
            .len();
    }
    made
}

criterion_group!(benches, prometheus, influx, elastic, remote_write);
criterion_main!(benches);
