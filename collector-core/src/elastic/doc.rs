//! Snapshot -> `_bulk` items: one action line and one document (Elastic Common Schema field
//! names) per container and per lifecycle event. See docs/METRICS.md, "Elasticsearch documents".
//!
//! Every item is `<action>\n<document>` without a final newline; the sink joins them.
//! Document ids are derived from (cgroup, time, kind), so a batch sent twice (an answer lost
//! after the server took it) lands once: `create` answers 409 for the copy, `index` overwrites
//! the same document.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::collector::{Container, Snapshot};
use crate::events::{Event, EventKind};
use crate::identity::Kind;
use crate::machine::MachineStats;
use crate::stats::{ContainerStats, NetworkStatus};

mod strip;

/// Where documents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A data stream: `create` actions.
    DataStream(String),
    /// Indices named from the document's time: `index` actions.
    Indices(IndexPattern),
}

impl Destination {
    fn index_for(&self, ms: u64) -> Cow<'_, str> {
        match self {
            Destination::DataStream(n) => Cow::Borrowed(n),
            Destination::Indices(p) => Cow::Owned(p.render(ms)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Year,
    Month,
    Day,
    Hour,
}

/// An index name with date fields: `%Y` (4-digit year), `%m`, `%d`, `%H` (2 digits, UTC) and
/// `%%` for a percent sign. Everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPattern {
    pieces: Vec<Piece>,
}

impl IndexPattern {
    /// Parses and checks a pattern; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<IndexPattern, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let p = match chars.next() {
                Some('%') => {
                    lit.push('%');
                    continue;
                }
                Some('Y') => Piece::Year,
                Some('m') => Piece::Month,
                Some('d') => Piece::Day,
                Some('H') => Piece::Hour,
                Some(o) => return Err(format!("unknown date field %{o} (known: %Y %m %d %H %%)")),
                None => return Err("ends with a lone %".into()),
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(p);
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        let pat = IndexPattern { pieces };
        // A rendered name must be a valid index name; the date fields give only digits.
        check_index_name(&pat.render(0))?;
        Ok(pat)
    }

    /// The index name for a time (Unix milliseconds, UTC).
    pub fn render(&self, ms: u64) -> String {
        // The fields are fixed columns of the RFC 3339 form (four-digit years).
        let t = rfc3339(ms);
        let mut out = String::new();
        for p in &self.pieces {
            out.push_str(match p {
                Piece::Lit(s) => s,
                Piece::Year => &t[0..4],
                Piece::Month => &t[5..7],
                Piece::Day => &t[8..10],
                Piece::Hour => &t[11..13],
            });
        }
        out
    }

    /// The index pattern that matches every name this renders (date fields as `*`).
    pub fn wildcard(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                _ if out.ends_with('*') => {}
                _ => out.push('*'),
            }
        }
        out
    }

    /// The literal text before the first date field.
    pub fn prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Lit(s)) => s,
            _ => "",
        }
    }
}

/// Elasticsearch's rules for index, data stream and template names.
pub fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes".into());
    }
    if name == "." || name == ".." {
        return Err("cannot be . or ..".into());
    }
    if name.starts_with(['-', '_', '+']) {
        return Err(format!("{name:?} starts with -, _ or +"));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        ) || c.is_uppercase()
    }) {
        return Err(format!(
            "{name:?} holds {c:?} (lowercase, no \\ / * ? \" < > | , # : or spaces)"
        ));
    }
    Ok(())
}

/// `2024-02-29T23:59:59.123Z` for Unix milliseconds (UTC). A time past year 9999 (only a
/// clock set millennia ahead gives one) is written as that year's last millisecond, since
/// RFC 3339 has four-digit years and humantime refuses more.
fn rfc3339(ms: u64) -> String {
    const LAST_MS: u64 = 253_402_300_800_000 - 1;
    let t = UNIX_EPOCH + Duration::from_millis(ms.min(LAST_MS));
    humantime::format_rfc3339_millis(t).to_string()
}

/// 128-bit FNV-1a, as 32 hex digits: a stable document id, not a secret.
fn doc_id(parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for p in parts {
        for &b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

/// What a finding concerns, for its event's document id: its process (pid, executable,
/// name) and its connection's ends.
fn finding_key(f: &crate::security::Finding) -> String {
    use std::fmt::Write;
    let mut k = String::new();
    if let Some(p) = &f.process {
        let _ = write!(k, "{}\0{}\0{}", p.pid, p.exe, p.comm);
    }
    for a in [f.local, f.remote] {
        k.push('\0');
        if let Some(a) = a {
            let _ = write!(k, "{a}");
        }
    }
    k
}

/// What is remembered of a container between metric documents, for the figures that ECS
/// defines over the interval since the last collection.
#[derive(Debug, Default)]
struct Prev {
    generation: u64,
    ts_ms: u64,
    cpu_ns: Option<u64>,
    /// (interface, rx, tx) when the container had its own network namespace.
    net: Option<Vec<(String, u64, u64)>>,
    /// (major, minor, read, write).
    disk: Vec<(u32, u32, u64, u64)>,
    /// For the `stopped` event, which comes when the container is gone from the snapshot.
    namespace: Option<String>,
    pod: Option<String>,
}

/// Turns snapshots into `_bulk` items. Keeps each container's previous figures.
#[derive(Debug)]
pub struct Encoder {
    host: String,
    dest: Destination,
    prev: HashMap<String, Prev>,
    generation: u64,
    /// Also write one document of the machine's own figures per push.
    pub machine: bool,
}

impl Encoder {
    /// Starts with no previous figures, writing the machine document (`machine` on).
    pub fn new(host: impl Into<String>, dest: Destination) -> Encoder {
        Encoder {
            host: host.into(),
            dest,
            prev: HashMap::new(),
            generation: 0,
            machine: true,
        }
    }

    /// Where the items go: a data stream or dated indices.
    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    /// Appends the items of one snapshot: its lifecycle events always, and one metric
    /// document per container when `metrics` is set.
    pub fn encode(&mut self, snap: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
        for e in &snap.events {
            // Findings of one kind in one container and sweep (two programs, two
            // connections) are told apart by what they concern, or all but one would be lost.
            let what = e.finding.as_deref().map(finding_key);
            let time = e.time_ms.to_le_bytes();
            let mut parts: [&[u8]; 5] = [
                b"event",
                e.kind.name().as_bytes(),
                e.id.as_bytes(),
                &time,
                b"",
            ];
            let parts = match &what {
                Some(w) => {
                    parts[4] = w.as_bytes();
                    &parts[..]
                }
                None => &parts[..4],
            };
            let id = doc_id(parts);
            let time = rfc3339(e.time_ms);
            let doc = self.event_doc(e, snap, &time);
            self.push(out, &self.dest.index_for(e.time_ms), &id, &doc);
        }
        if !metrics {
            return;
        }
        self.generation += 1;
        // One time, hence one index, for all the snapshot's documents.
        let ts = snap.timestamp_ms;
        let time = rfc3339(ts);
        let index = self.dest.index_for(ts).into_owned();
        for c in &snap.containers {
            let interval = self.interval(c, ts);
            let doc = self.metric_doc(c, snap, &time, &interval);
            let id = doc_id(&[b"metric", c.id.as_bytes(), &ts.to_le_bytes()]);
            self.push(out, &index, &id, &doc);
        }
        let g = self.generation;
        self.prev.retain(|_, p| p.generation == g);
        if !self.machine {
            return;
        }
        // The machine's own figures (CPU modes, filesystems, disks, pressure), one document.
        let doc = Doc {
            timestamp: &time,
            message: None,
            event: EcsEvent {
                kind: "metric",
                category: None,
                action: None,
                dataset: "machine.metrics",
            },
            host: Host { name: &self.host },
            container: None,
            orchestrator: None,
            process: None,
            user: None,
            source: None,
            destination: None,
            rule: None,
            collector: MachineFigures {
                machine: &snap.machine,
            },
        };
        let id = doc_id(&[b"machine", self.host.as_bytes(), &ts.to_le_bytes()]);
        self.push(out, &index, &id, &doc);
    }

    fn push(&self, out: &mut Vec<Vec<u8>>, index: &str, id: &str, doc: &impl Serialize) {
        let target = Target { index, id };
        let action = match self.dest {
            Destination::DataStream(_) => Action::Create(target),
            Destination::Indices(_) => Action::Index(target),
        };
        let mut item = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut item, &action).is_err() {
            return;
        }
        item.push(b'\n');
        if strip::write(&mut item, doc).is_err() {
            return;
        }
        out.push(item);
    }

    /// The interval figures since the container's last document; remembers this one's.
    fn interval(&mut self, c: &Container, ts: u64) -> Interval {
        let s = &c.stats;
        let net_now: Option<Vec<(String, u64, u64)>> = (s.network.status == NetworkStatus::Own)
            .then(|| {
                s.network
                    .interfaces
                    .iter()
                    .map(|i| (i.name.clone(), i.rx_bytes, i.tx_bytes))
                    .collect()
            });
        let disk_now: Vec<(u32, u32, u64, u64)> = s
            .blkio
            .iter()
            .map(|d| (d.major, d.minor, d.read_bytes, d.write_bytes))
            .collect();

        let mut iv = Interval::default();
        if let Some(p) = self.prev.get(&c.id).filter(|p| ts > p.ts_ms) {
            let dt_ms = ts - p.ts_ms;
            iv.period_ms = Some(dt_ms);
            if let (Some(now), Some(before)) = (s.cpu.usage_ns, p.cpu_ns) {
                if now >= before {
                    iv.cpu_usage = Some((now - before) as f64 / (dt_ms as f64 * 1e6));
                }
            }
            if let (Some(now), Some(before)) = (&net_now, &p.net) {
                let d = |f: fn(&(String, u64, u64)) -> u64| {
                    deltas(now.iter().map(|i| (&i.0, f(i))), |name| {
                        before.iter().find(|b| &b.0 == *name).map(f)
                    })
                };
                iv.ingress = d(|i| i.1);
                iv.egress = d(|i| i.2);
            }
            // A device first listed since the last document has done all its IO since then.
            if !disk_now.is_empty() {
                let key = |d: &(u32, u32, u64, u64)| (d.0, d.1);
                iv.read = deltas(disk_now.iter().map(|d| (key(d), d.2)), |k| {
                    p.disk.iter().find(|b| key(b) == *k).map(|b| b.2)
                });
                iv.write = deltas(disk_now.iter().map(|d| (key(d), d.3)), |k| {
                    p.disk.iter().find(|b| key(b) == *k).map(|b| b.3)
                });
            }
        }
        let prev = self.prev.entry(c.id.clone()).or_default();
        prev.generation = self.generation;
        prev.ts_ms = ts;
        prev.cpu_ns = s.cpu.usage_ns;
        prev.net = net_now;
        prev.disk = disk_now;
        if prev.namespace != c.meta.namespace {
            prev.namespace = c.meta.namespace.clone();
        }
        if prev.pod != c.meta.pod {
            prev.pod = c.meta.pod.clone();
        }
        iv
    }

    fn metric_doc<'a>(
        &'a self,
        c: &'a Container,
        snap: &Snapshot,
        time: &'a str,
        iv: &Interval,
    ) -> Doc<'a, Figures<'a>> {
        let s = &c.stats;
        // ECS: memory usage as a fraction of the limit, or of the machine when unlimited.
        let memory_usage = s.memory.usage_bytes.and_then(|u| {
            let denom = match (s.spec.memory_limit_bytes, snap.machine.memory_bytes) {
                (Some(l), Some(m)) => l.min(m),
                (Some(l), None) => l,
                (None, Some(m)) => m,
                (None, None) => 0,
            };
            (denom > 0).then(|| u as f64 / denom as f64)
        });
        let cores = snap.machine.cpu_cores.filter(|&n| n > 0);
        let (mut container, orchestrator) = identity(Who {
            cgroup: &c.id,
            container_id: c.identity.container_id.as_deref(),
            name: c.meta.name.as_deref().or(c.meta.container.as_deref()),
            image: c.meta.image.as_deref(),
            runtime: c.identity.runtime.map(|r| r.name()),
            labels: Some(&c.meta.labels),
            namespace: c.meta.namespace.as_deref(),
            pod: c.meta.pod.as_deref(),
        });
        container.cpu.usage = iv.cpu_usage;
        container.memory.usage = memory_usage;
        container.network.ingress.bytes = iv.ingress;
        container.network.egress.bytes = iv.egress;
        container.disk.read.bytes = iv.read;
        container.disk.write.bytes = iv.write;
        Doc {
            timestamp: time,
            message: None,
            event: EcsEvent {
                kind: "metric",
                category: None,
                action: None,
                dataset: "container.metrics",
            },
            host: Host { name: &self.host },
            container: Some(container),
            orchestrator,
            process: None,
            user: None,
            source: None,
            destination: None,
            rule: None,
            collector: Figures {
                stats: s,
                cgroup: &c.id,
                kind: c.identity.kind,
                pod_uid: c.identity.pod_uid.as_deref(),
                qos_class: c.identity.qos_class.as_deref(),
                container_name: c.meta.container.as_deref(),
                period_ms: iv.period_ms,
                cpu_usage_normalized: iv.cpu_usage.zip(cores).map(|(u, n)| u / n as f64),
            },
        }
    }

    fn event_doc<'a>(
        &'a self,
        e: &'a Event,
        snap: &'a Snapshot,
        time: &'a str,
    ) -> Doc<'a, EventFigures<'a>> {
        let current = snap.get(&e.id);
        let cached = self.prev.get(&e.id);
        let namespace = e
            .namespace
            .as_deref()
            .or(current.and_then(|c| c.meta.namespace.as_deref()))
            .or(cached.and_then(|p| p.namespace.as_deref()));
        let pod = e
            .pod
            .as_deref()
            .or(current.and_then(|c| c.meta.pod.as_deref()))
            .or(cached.and_then(|p| p.pod.as_deref()));
        let name = e
            .name
            .as_deref()
            .or(current.and_then(|c| c.meta.container.as_deref()));
        let message = match e.kind {
            EventKind::Started => format!("container {} started", name.unwrap_or(&e.id)),
            EventKind::Stopped => format!("container {} stopped", name.unwrap_or(&e.id)),
            EventKind::OomKill => format!(
                "container {}: {} process(es) killed by the OOM killer",
                name.unwrap_or(&e.id),
                e.count
            ),
            EventKind::Finding(kind) => {
                let f = e.finding.as_deref();
                let what = f
                    .and_then(|f| f.process.as_ref())
                    .map(|p| {
                        format!(
                            " (pid {} {})",
                            p.pid,
                            if p.exe.is_empty() { &p.comm } else { &p.exe }
                        )
                    })
                    .or_else(|| {
                        f.and_then(|f| f.remote.or(f.local))
                            .map(|a| format!(" ({a})"))
                    })
                    .unwrap_or_default();
                format!(
                    "container {}: security finding {}{what}",
                    name.unwrap_or(&e.id),
                    kind.name()
                )
            }
            // Kinds added later read as their name.
            other => format!(
                "container {}: {}",
                name.unwrap_or(&e.id),
                other.name().replace('_', " ")
            ),
        };
        let (container, orchestrator) = identity(Who {
            cgroup: &e.id,
            container_id: e.container_id.as_deref(),
            name,
            image: e.image.as_deref(),
            runtime: e.runtime.map(|r| r.name()),
            labels: current.map(|c| &c.meta.labels),
            namespace,
            pod,
        });
        let finding = e.finding.as_deref();
        let process = finding.and_then(|f| f.process.as_ref());
        Doc {
            timestamp: time,
            message: Some(message),
            event: EcsEvent {
                kind: if e.kind.is_finding() {
                    "alert"
                } else {
                    "event"
                },
                category: finding.map(|f| {
                    if f.process.is_some() {
                        "process"
                    } else {
                        "network"
                    }
                }),
                action: Some(e.kind.name()),
                dataset: "container.events",
            },
            host: Host { name: &self.host },
            container: Some(container),
            orchestrator,
            process: process.map(|p| EcsProcess {
                pid: p.pid,
                parent: Parent { pid: p.ppid },
                name: &p.comm,
                executable: (!p.exe.is_empty()).then_some(p.exe.as_str()),
                command_line: (!p.cmdline.is_empty()).then_some(p.cmdline.as_str()),
            }),
            user: process.map(|p| EcsUser {
                id: p.uid.to_string(),
            }),
            source: finding.and_then(|f| Endpoint::of(f.local)),
            destination: finding.and_then(|f| Endpoint::of(f.remote)),
            rule: finding.map(|f| Rule {
                name: f.kind.name(),
            }),
            collector: EventFigures {
                cgroup: &e.id,
                event_count: e.count,
                peer: finding.and_then(|f| f.peer.as_ref()).map(|p| PeerFigures {
                    direction: p.direction.name(),
                    scope: p.scope.name(),
                    port: p.port,
                    container_id: p.container_id.as_deref(),
                    container_name: p.container_name.as_deref(),
                }),
            },
        }
    }
}

/// Sum over the current counters of (now - before); a key not seen before counts from 0.
/// `None` when a counter went backwards (a reset: the interval's figure is unknown).
fn deltas<K>(
    now: impl Iterator<Item = (K, u64)>,
    before: impl Fn(&K) -> Option<u64>,
) -> Option<u64> {
    let mut sum = 0u64;
    for (k, v) in now {
        let b = before(&k).unwrap_or(0);
        sum = sum.saturating_add(v.checked_sub(b)?);
    }
    Some(sum)
}

/// The figures ECS defines over the interval since a container's last document.
#[derive(Default)]
struct Interval {
    period_ms: Option<u64>,
    cpu_usage: Option<f64>,
    ingress: Option<u64>,
    egress: Option<u64>,
    read: Option<u64>,
    write: Option<u64>,
}

/// `{"create":{...}}` or `{"index":{...}}`.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Action<'a> {
    Create(Target<'a>),
    Index(Target<'a>),
}

#[derive(Serialize)]
struct Target<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
}

// The documents, written as they are built (no `Value` tree): `None` and the objects it
// leaves empty are left out by `strip::write`.

#[derive(Serialize)]
struct Doc<'a, F> {
    #[serde(rename = "@timestamp")]
    timestamp: &'a str,
    message: Option<String>,
    event: EcsEvent,
    host: Host<'a>,
    container: Option<EcsContainer<'a>>,
    orchestrator: Option<Orchestrator<'a>>,
    /// A finding's process, its user and its connection's ends.
    process: Option<EcsProcess<'a>>,
    user: Option<EcsUser>,
    source: Option<Endpoint>,
    destination: Option<Endpoint>,
    rule: Option<Rule>,
    collector: F,
}

#[derive(Serialize)]
struct EcsProcess<'a> {
    pid: u32,
    parent: Parent,
    name: &'a str,
    executable: Option<&'a str>,
    command_line: Option<&'a str>,
}

#[derive(Serialize)]
struct Parent {
    pid: u32,
}

#[derive(Serialize)]
struct EcsUser {
    id: String,
}

#[derive(Serialize)]
struct Endpoint {
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct Rule {
    name: &'static str,
}

impl Endpoint {
    fn of(a: Option<std::net::SocketAddr>) -> Option<Endpoint> {
        a.map(|a| Endpoint {
            ip: a.ip().to_string(),
            port: a.port(),
        })
    }
}

#[derive(Serialize)]
struct EcsEvent {
    kind: &'static str,
    /// For a finding: `process` or `network`.
    category: Option<&'static str>,
    action: Option<&'static str>,
    dataset: &'static str,
}

#[derive(Serialize)]
struct Host<'a> {
    name: &'a str,
}

/// `container.*`: who it is and, in metric documents, its figures in ECS terms.
#[derive(Serialize, Default)]
struct EcsContainer<'a> {
    id: &'a str,
    name: Option<&'a str>,
    runtime: Option<&'static str>,
    image: Image<'a>,
    labels: Option<Labels<'a>>,
    cpu: Usage,
    memory: Usage,
    network: Traffic,
    disk: DiskIo,
}

#[derive(Serialize, Default)]
struct Image<'a> {
    name: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Usage {
    usage: Option<f64>,
}

#[derive(Serialize, Default)]
struct Bytes {
    bytes: Option<u64>,
}

#[derive(Serialize, Default)]
struct Traffic {
    ingress: Bytes,
    egress: Bytes,
}

#[derive(Serialize, Default)]
struct DiskIo {
    read: Bytes,
    write: Bytes,
}

#[derive(Serialize)]
struct Orchestrator<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    namespace: Option<&'a str>,
    resource: Option<Resource<'a>>,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

/// `collector.*` of a metric document: every figure read (`ContainerStats` as the JSON API
/// has it, less what is absent) and where it comes from.
#[derive(Serialize)]
struct Figures<'a> {
    #[serde(flatten)]
    stats: &'a ContainerStats,
    cgroup: &'a str,
    kind: Kind,
    pod_uid: Option<&'a str>,
    qos_class: Option<&'a str>,
    container_name: Option<&'a str>,
    period_ms: Option<u64>,
    cpu_usage_normalized: Option<f64>,
}

#[derive(Serialize)]
struct EventFigures<'a> {
    cgroup: &'a str,
    event_count: u64,
    /// A `new_peer` finding's peer: its scope, port and the container at its address.
    peer: Option<PeerFigures<'a>>,
}

#[derive(Serialize)]
struct PeerFigures<'a> {
    direction: &'static str,
    scope: &'static str,
    port: u16,
    container_id: Option<&'a str>,
    container_name: Option<&'a str>,
}

#[derive(Serialize)]
struct MachineFigures<'a> {
    machine: &'a MachineStats,
}

struct Who<'a> {
    cgroup: &'a str,
    container_id: Option<&'a str>,
    name: Option<&'a str>,
    image: Option<&'a str>,
    runtime: Option<&'static str>,
    labels: Option<&'a BTreeMap<String, String>>,
    namespace: Option<&'a str>,
    pod: Option<&'a str>,
}

/// `container.{id,name,image.name,runtime,labels}` and `orchestrator.*`.
fn identity(w: Who<'_>) -> (EcsContainer<'_>, Option<Orchestrator<'_>>) {
    let container = EcsContainer {
        id: w.container_id.unwrap_or(w.cgroup),
        name: w.name,
        runtime: w.runtime,
        image: Image { name: w.image },
        labels: w.labels.map(Labels),
        ..EcsContainer::default()
    };
    let orchestrator = (w.namespace.is_some() || w.pod.is_some()).then(|| Orchestrator {
        kind: "kubernetes",
        namespace: w.namespace,
        resource: w.pod.map(|name| Resource { kind: "pod", name }),
    });
    (container, orchestrator)
}

/// `container.labels`: keys dedotted, the empty one left out. Of keys that are one once
/// dedotted (`a.b`, `a_b`) the last in key order wins, as when a map was built from them.
/// Labels are few: a scan for such a key costs less than a map of the dedotted ones.
struct Labels<'a>(&'a BTreeMap<String, String>);

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            let later = || self.0.keys().skip(i + 1).any(|l| same_dedotted(k, l));
            if !k.is_empty() && !later() {
                m.serialize_entry(&Dedotted(k), v)?;
            }
        }
        m.end()
    }
}

fn same_dedotted(a: &str, b: &str) -> bool {
    let undot = |c: u8| if c == b'.' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| undot(x) == undot(y))
}

/// A label key with its dots made underscores, as Beats do: dots would become nested objects
/// in Elasticsearch (and `a` next to `a.b` would clash). Written piece by piece, without a
/// new string.
struct Dedotted<'a>(&'a str);

impl fmt::Display for Dedotted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, piece) in self.0.split('.').enumerate() {
            if i > 0 {
                f.write_str("_")?;
            }
            f.write_str(piece)?;
        }
        Ok(())
    }
}

impl Serialize for Dedotted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::collector::Metadata;
    use crate::identity::{Identity, Kind, Runtime};
    use crate::stats::{ContainerStats, DeviceIo, InterfaceStats};

    #[test]
    fn calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.123Z: a leap day.
        assert_eq!(rfc3339(1_709_251_199_123), "2024-02-29T23:59:59.123Z");
        assert_eq!(rfc3339(1_709_251_200_000), "2024-03-01T00:00:00.000Z");
        // 2000-12-31 (a leap year divisible by 400) and 2100-03-01 (not a leap year).
        assert_eq!(rfc3339(978_220_800_000), "2000-12-31T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
        // Every day of 1970..2100 against a naive day count.
        let mut days = 0u64;
        for y in 1970..2100i64 {
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    let t = rfc3339(days * 86_400_000 + 3_600_000 * 13);
                    assert_eq!(t[..13], format!("{y:04}-{:02}-{d:02}T13", m + 1));
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn index_patterns() {
        let p = IndexPattern::parse("container-metrics-%Y.%m.%d").unwrap();
        assert_eq!(p.render(1_709_251_199_123), "container-metrics-2024.02.29");
        assert_eq!(p.wildcard(), "container-metrics-*.*.*");
        assert_eq!(p.prefix(), "container-metrics-");
        let p = IndexPattern::parse("m-%Y%m%d%H-100%%").unwrap();
        assert_eq!(p.render(1_709_251_199_123), "m-2024022923-100%");
        assert_eq!(p.render(u64::MAX), "m-9999123123-100%");
        assert_eq!(p.wildcard(), "m-*-100%");
        assert_eq!(IndexPattern::parse("static").unwrap().wildcard(), "static");
        assert!(IndexPattern::parse("x-%j").is_err());
        assert!(IndexPattern::parse("x-%").is_err());
        assert!(IndexPattern::parse("Metrics-%Y").is_err());
        assert!(IndexPattern::parse("_x").is_err());
        assert!(IndexPattern::parse("a b").is_err());
        assert!(check_index_name("metrics-container-default").is_ok());
    }

    pub(super) fn container(id: &str, cpu_ns: u64, rx: u64, read: u64) -> Container {
        let mut stats = ContainerStats::default();
        stats.cpu.usage_ns = Some(cpu_ns);
        stats.memory.usage_bytes = Some(100 << 20);
        stats.spec.memory_limit_bytes = Some(400 << 20);
        stats.network.status = NetworkStatus::Own;
        stats.network.interfaces = vec![
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: rx,
                tx_bytes: 10,
                ..Default::default()
            },
            InterfaceStats {
                name: "eth1".into(),
                rx_bytes: rx,
                tx_bytes: 5,
                ..Default::default()
            },
        ];
        stats.blkio = vec![DeviceIo {
            major: 254,
            minor: 0,
            device: Some("vda".into()),
            read_bytes: read,
            write_bytes: 7,
            ..Default::default()
        }];
        let mut labels = BTreeMap::new();
        labels.insert("io.kubernetes.pod.name".into(), "web-0".into());
        labels.insert("app".into(), "web".into());
        Container {
            id: id.into(),
            identity: Identity {
                kind: Kind::Container,
                runtime: Some(Runtime::Containerd),
                container_id: Some("c0ffee".into()),
                pod_uid: Some("1234-5678".into()),
                qos_class: Some("burstable".into()),
            },
            first_seen_ms: 0,
            created_ms: None,
            idle: false,
            meta: Metadata {
                name: Some("web".into()),
                image: Some("nginx:1.25".into()),
                namespace: Some("prod".into()),
                pod: Some("web-0".into()),
                container: Some("nginx".into()),
                labels,
            },
            stats,
        }
    }

    pub(super) fn snap(ts: u64, containers: Vec<Container>, events: Vec<Event>) -> Snapshot {
        let mut s = Snapshot {
            timestamp_ms: ts,
            containers,
            events,
            ..Default::default()
        };
        s.machine.memory_bytes = Some(1 << 30);
        s.machine.cpu_cores = Some(4);
        s
    }

    fn docs(items: &[Vec<u8>]) -> Vec<(Value, Value)> {
        items
            .iter()
            .map(|i| {
                let t = std::str::from_utf8(i).unwrap();
                let (a, d) = t.split_once('\n').unwrap();
                assert!(!d.contains('\n'), "one line per document");
                (
                    serde_json::from_str(a).unwrap(),
                    serde_json::from_str(d).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn metric_documents_in_ecs_terms() {
        let mut e = Encoder::new(
            "node1",
            Destination::DataStream("metrics-container-default".into()),
        );
        let mut out = Vec::new();
        e.encode(
            &snap(
                1_700_000_000_000,
                vec![container("/kubepods/pod1/c0ffee", 1_000_000_000, 100, 4096)],
                vec![],
            ),
            true,
            &mut out,
        );
        let d = docs(&out);
        let (action, doc) = &d[0];
        assert_eq!(action["create"]["_index"], "metrics-container-default");
        assert_eq!(action["create"]["_id"].as_str().unwrap().len(), 32);
        assert_eq!(doc["@timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(doc["event"]["kind"], "metric");
        assert_eq!(doc["host"]["name"], "node1");
        assert_eq!(doc["container"]["id"], "c0ffee");
        assert_eq!(doc["container"]["name"], "web");
        assert_eq!(doc["container"]["image"]["name"], "nginx:1.25");
        assert_eq!(doc["container"]["runtime"], "containerd");
        assert_eq!(
            doc["container"]["labels"]["io_kubernetes_pod_name"],
            "web-0"
        );
        assert_eq!(doc["container"]["labels"]["app"], "web");
        assert_eq!(doc["orchestrator"]["namespace"], "prod");
        assert_eq!(doc["orchestrator"]["resource"]["name"], "web-0");
        assert_eq!(doc["orchestrator"]["resource"]["type"], "pod");
        assert_eq!(doc["container"]["memory"]["usage"], 0.25);
        // Interval figures need a previous document.
        assert!(doc["container"].get("cpu").is_none(), "{doc}");
        assert!(doc["container"].get("network").is_none());
        assert!(doc["container"].get("disk").is_none());
        assert_eq!(doc["collector"]["cgroup"], "/kubepods/pod1/c0ffee");
        assert_eq!(doc["collector"]["cpu"]["usage_ns"], 1_000_000_000u64);
        assert_eq!(doc["collector"]["memory"]["usage_bytes"], 100u64 << 20);
        assert_eq!(doc["collector"]["pod_uid"], "1234-5678");
        // Absent figures are absent, not null.
        assert!(doc["collector"]["memory"].get("rss_bytes").is_none());
        assert!(!serde_json::to_string(doc).unwrap().contains("null"));

        // 10 s later: 5 s of CPU (half a CPU), 2 x 1000 bytes in, 4096 bytes read.
        out.clear();
        e.encode(
            &snap(
                1_700_000_010_000,
                vec![container(
                    "/kubepods/pod1/c0ffee",
                    6_000_000_000,
                    1100,
                    8192,
                )],
                vec![],
            ),
            true,
            &mut out,
        );
        let d = docs(&out);
        let doc = &d[0].1;
        assert_eq!(doc["container"]["cpu"]["usage"], 0.5);
        assert_eq!(doc["collector"]["cpu_usage_normalized"], 0.125);
        assert_eq!(doc["container"]["network"]["ingress"]["bytes"], 2000);
        assert_eq!(doc["container"]["network"]["egress"]["bytes"], 0);
        assert_eq!(doc["container"]["disk"]["read"]["bytes"], 4096);
        assert_eq!(doc["container"]["disk"]["write"]["bytes"], 0);
        assert_eq!(doc["collector"]["period_ms"], 10_000);

        // A counter that went backwards: the interval's figure is unknown, not negative.
        out.clear();
        e.encode(
            &snap(
                1_700_000_020_000,
                vec![container("/kubepods/pod1/c0ffee", 1_000, 1100, 8192)],
                vec![],
            ),
            true,
            &mut out,
        );
        let doc = &docs(&out)[0].1;
        assert!(doc["container"].get("cpu").is_none());
        assert_eq!(doc["container"]["disk"]["read"]["bytes"], 0);
    }

    #[test]
    fn unlimited_memory_is_a_fraction_of_the_machine_and_state_is_pruned() {
        let mut e = Encoder::new(
            "h",
            Destination::Indices(IndexPattern::parse("container-metrics-%Y.%m.%d").unwrap()),
        );
        let mut c = container("/a", 0, 0, 0);
        c.stats.spec.memory_limit_bytes = None;
        c.meta = Metadata::default();
        c.identity.container_id = None;
        let mut out = Vec::new();
        e.encode(
            &snap(1_700_000_000_000, vec![c, container("/b", 0, 0, 0)], vec![]),
            true,
            &mut out,
        );
        let d = docs(&out);
        assert_eq!(d[0].0["index"]["_index"], "container-metrics-2023.11.14");
        assert_eq!(d[0].1["container"]["memory"]["usage"], 100.0 / 1024.0);
        assert_eq!(
            d[0].1["container"]["id"], "/a",
            "the cgroup path without a runtime id"
        );
        assert!(d[0].1.get("orchestrator").is_none());
        assert_eq!(e.prev.len(), 2);
        // Snapshots without metrics keep the state; the next metric one prunes /b.
        e.encode(
            &snap(1_700_000_001_000, vec![container("/a", 0, 0, 0)], vec![]),
            false,
            &mut out,
        );
        assert_eq!(e.prev.len(), 2);
        e.encode(
            &snap(1_700_000_002_000, vec![container("/a", 0, 0, 0)], vec![]),
            true,
            &mut out,
        );
        assert_eq!(e.prev.len(), 1);
    }

    #[test]
    fn events_are_their_own_documents_with_stable_ids() {
        let mut e = Encoder::new(
            "h",
            Destination::DataStream("metrics-container-default".into()),
        );
        let mut out = Vec::new();
        e.encode(
            &snap(1_000, vec![container("/k/c", 0, 0, 0)], vec![]),
            true,
            &mut out,
        );
        let ev = |kind, count| Event {
            time_ms: 2_000,
            kind,
            id: "/k/c".into(),
            container_id: Some("c0ffee".into()),
            runtime: Some(Runtime::Containerd),
            name: Some("web".into()),
            image: Some("nginx:1.25".into()),
            count,
            namespace: None,
            pod: None,
            finding: None,
        };
        out.clear();
        // Stopped: gone from the snapshot, the namespace and pod come from what was seen.
        e.encode(
            &snap(
                2_000,
                vec![],
                vec![ev(EventKind::OomKill, 2), ev(EventKind::Stopped, 1)],
            ),
            false,
            &mut out,
        );
        let d = docs(&out);
        assert_eq!(d.len(), 2, "events only, metrics not due");
        let (a, oom) = &d[0];
        assert_eq!(oom["event"]["kind"], "event");
        assert_eq!(oom["event"]["action"], "oom_kill");
        assert_eq!(oom["collector"]["event_count"], 2);
        assert_eq!(oom["container"]["id"], "c0ffee");
        assert_eq!(oom["@timestamp"], "1970-01-01T00:00:02.000Z");
        assert_eq!(d[1].1["event"]["action"], "stopped");
        assert_eq!(d[1].1["orchestrator"]["resource"]["name"], "web-0");
        assert_ne!(a["create"]["_id"], d[1].0["create"]["_id"]);
        // The same event encoded again gets the same id (a resend lands once).
        let mut again = Vec::new();
        e.encode(
            &snap(2_000, vec![], vec![ev(EventKind::OomKill, 2)]),
            false,
            &mut again,
        );
        assert_eq!(docs(&again)[0].0["create"]["_id"], a["create"]["_id"]);
    }

    /// Two findings of one kind in one container and sweep are two alerts: ids told apart by
    /// the process, stable for a resend.
    #[test]
    fn findings_are_alerts_with_their_process_and_ids_of_their_own() {
        use crate::security::{Finding, FindingKind, ProcessRef};
        let finding = |pid: u32, exe: &str| Event {
            time_ms: 2_000,
            kind: EventKind::Finding(FindingKind::MinerProcess),
            id: "/k/c".into(),
            container_id: Some("c0ffee".into()),
            runtime: Some(Runtime::Docker),
            name: Some("web".into()),
            image: Some("busybox:1".into()),
            count: 1,
            namespace: None,
            pod: None,
            finding: Some(Box::new(Finding {
                time_ms: 0,
                kind: FindingKind::MinerProcess,
                source: "exec",
                process: Some(ProcessRef {
                    pid,
                    ppid: 1,
                    uid: 1000,
                    comm: "xmrig".into(),
                    exe: exe.into(),
                    cmdline: format!("{exe} -o stratum+tcp://pool.invalid:3333"),
                }),
                local: None,
                remote: None,
                peer: None,
            })),
        };
        let net = Event {
            kind: EventKind::Finding(FindingKind::MinerPortConnection),
            namespace: None,
            pod: None,
            finding: Some(Box::new(Finding {
                time_ms: 0,
                kind: FindingKind::MinerPortConnection,
                source: "socket_table",
                process: None,
                local: Some("10.0.0.2:40000".parse().unwrap()),
                remote: Some("203.0.113.9:3333".parse().unwrap()),
                peer: None,
            })),
            ..finding(0, "")
        };
        let events = vec![finding(41, "/tmp/xmrig"), finding(42, "/opt/xmrig"), net];
        let mut e = Encoder::new("h", Destination::DataStream("m".into()));
        let mut out = Vec::new();
        e.encode(&snap(2_000, vec![], events.clone()), false, &mut out);
        let d = docs(&out);
        assert_eq!(d.len(), 3);
        assert_ne!(d[0].0["create"]["_id"], d[1].0["create"]["_id"]);
        assert_ne!(d[0].0["create"]["_id"], d[2].0["create"]["_id"]);
        let a = &d[0].1;
        assert_eq!(a["event"]["kind"], "alert");
        assert_eq!(a["event"]["category"], "process");
        assert_eq!(a["event"]["action"], "miner_process");
        assert_eq!(a["rule"]["name"], "miner_process");
        assert_eq!(a["process"]["pid"], 41);
        assert_eq!(a["process"]["parent"]["pid"], 1);
        assert_eq!(a["process"]["name"], "xmrig");
        assert_eq!(a["process"]["executable"], "/tmp/xmrig");
        assert_eq!(
            a["process"]["command_line"],
            "/tmp/xmrig -o stratum+tcp://pool.invalid:3333"
        );
        assert_eq!(a["user"]["id"], "1000");
        let n = &d[2].1;
        assert_eq!(n["event"]["category"], "network");
        assert_eq!(n["destination"]["ip"], "203.0.113.9");
        assert_eq!(n["destination"]["port"], 3333);
        assert_eq!(n["source"]["port"], 40000);
        assert!(n.get("process").is_none(), "{n}");
        // The same findings again: the same ids.
        let mut again = Vec::new();
        e.encode(&snap(2_000, vec![], events), false, &mut again);
        let ids = |d: &[(Value, Value)]| -> Vec<Value> {
            d.iter().map(|(a, _)| a["create"]["_id"].clone()).collect()
        };
        assert_eq!(ids(&docs(&again)), ids(&d));
    }
}
