//! A snapshot's series as remote-write items, through the same families the text exposition
//! writes (`prometheus::visit`): the same names (counters with `_total`) and labels, plus
//! the external labels, each series' labels sorted by name; and an embedder's own series,
//! given as text. Series pushed last time and
//! missing now get a staleness marker, so a query stops returning them at once instead of
//! five minutes later.
//!
//! To find the missing ones each push keeps its series compactly: every label set once (a
//! container's, with the external labels) and per series a hash, its name, its set and its
//! family's own labels, in arenas reused from push to push.

use std::fmt::Error as FmtError;

use super::proto::{put_label, put_sample, STALE_NAN};
use crate::collector::Snapshot;
use crate::prometheus::{container_labels, visit, Kind, Options, Out, Samples, Value};

/// A range in one of [`Pushed`]'s arenas.
type Span = (u32, u32);

/// The series of one push.
#[derive(Debug, Default)]
struct Pushed {
    /// Label names and values, family names and extra labels, back to back.
    text: String,
    /// Each label: its name and value in `text`.
    labels: Vec<(Span, Span)>,
    /// Each label set, sorted by name: its labels in `labels`, and a hash of them. The
    /// snapshot's containers first, in order; then the machine's series' sets.
    sets: Vec<(Span, u64)>,
    series: Vec<Series>,
}

#[derive(Debug, Clone, Copy)]
struct Series {
    hash: u64,
    name: Span,
    set: u32,
    /// The family's own labels (`cpu`, `interface`, ...): a range of `labels`, sorted by name.
    extra: Span,
}

/// The most labels of its own a family's sample has, beside the container's.
const MAX_EXTRA: usize = 7;

impl Pushed {
    fn clear(&mut self) {
        self.text.clear();
        self.labels.clear();
        self.sets.clear();
        self.series.clear();
    }

    fn put(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, self.text.len() as u32)
    }

    fn str(&self, (a, b): Span) -> &str {
        &self.text[a as usize..b as usize]
    }

    fn label(&self, i: u32) -> (&str, &str) {
        let (n, v) = self.labels[i as usize];
        (self.str(n), self.str(v))
    }

    /// Adds a label set: `own` labels and the external ones they do not name, sorted.
    /// Empty values are left out (Prometheus reads them as no label).
    fn add_set<'x>(&mut self, own: &mut Vec<(&'x str, &'x str)>, external: &'x [(String, String)]) {
        for (k, v) in external {
            if !own.iter().any(|(n, _)| n == k) {
                own.push((k, v));
            }
        }
        own.retain(|(_, v)| !v.is_empty());
        own.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let start = self.labels.len() as u32;
        let mut hash = Hasher::default();
        for (k, v) in own.iter() {
            hash.str(k);
            hash.str(v);
            let k = self.put(k);
            let v = self.put(v);
            self.labels.push((k, v));
        }
        self.sets
            .push(((start, self.labels.len() as u32), hash.finish()));
    }

    /// Writes series `s`'s label fields: `__name__`, its set's labels and its extra label,
    /// all in name order (a set label of the extra's name, an external one, gives way).
    fn put_labels(&self, s: &Series, out: &mut Vec<u8>) {
        let ((a, b), _) = self.sets[s.set as usize];
        // The labels not in the set (`__name__` and the family's own, sorted), each written
        // before the first set label that sorts after it; a set label of an own label's name
        // gives way.
        let mut pending = [("", ""); MAX_EXTRA + 1];
        pending[0] = ("__name__", self.str(s.name));
        let mut n = 1;
        for i in s.extra.0..s.extra.1 {
            pending[n] = self.label(i);
            n += 1;
        }
        let pending = &mut pending[..n];
        pending.sort_unstable_by(|x, y| x.0.cmp(y.0));
        let mut next = 0;
        for i in a..b {
            let (k, v) = self.label(i);
            if pending.iter().any(|(e, _)| *e == k) {
                continue;
            }
            while next < pending.len() && pending[next].0 < k {
                put_label(out, pending[next].0, pending[next].1);
                next += 1;
            }
            put_label(out, k, v);
        }
        for &(k, v) in &pending[next..] {
            put_label(out, k, v);
        }
    }
}

/// Turns snapshots into items (see `proto`), remembering the last push's series.
#[derive(Debug)]
pub struct SeriesEncoder {
    options: Options,
    label_names: Vec<String>,
    /// Sorted by name.
    external: Vec<(String, String)>,
    last: Pushed,
    now: Pushed,
}

impl SeriesEncoder {
    /// `options` as /metrics has them; `external` added to every series that has no label of
    /// that name.
    pub fn new(options: Options, mut external: Vec<(String, String)>) -> Self {
        external.sort();
        SeriesEncoder {
            label_names: options.label_names(),
            options,
            external,
            last: Pushed::default(),
            now: Pushed::default(),
        }
    }

    /// Appends one item per sample of the snapshot, then a staleness marker for each series
    /// of the previous call that the snapshot no longer has.
    pub fn encode(&mut self, snap: &Snapshot, out: &mut Vec<Vec<u8>>) {
        self.encode_with(snap, "", out);
    }

    /// As [`encode`](Self::encode), with the samples of `extra` (Prometheus text, 0.0.4)
    /// pushed beside the snapshot's, at its time: an embedder's own series.
    pub fn encode_with(&mut self, snap: &Snapshot, extra: &str, out: &mut Vec<Vec<u8>>) {
        let ts = snap.timestamp_ms as i64;
        self.now.clear();
        let mut own = Vec::new();
        for c in &snap.containers {
            own.clear();
            container_labels(c, &self.options, &self.label_names, |k, v| own.push((k, v)));
            self.now.add_set(&mut own, &self.external);
        }
        let mut w = Writer {
            now: &mut self.now,
            external: &self.external,
            ts,
            out,
            last_len: 64,
        };
        // Writing into memory cannot fail; the Result is the writers' common signature.
        let _ = visit(&mut w, snap);
        for line in super::text::samples(extra) {
            match line {
                Ok(l) => {
                    let (name, name_hash) = w.name(l.name, "");
                    let mut own: Vec<(&str, &str)> =
                        l.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    w.now.add_set(&mut own, w.external);
                    let set = w.now.sets.len() as u32 - 1;
                    w.sample(name, name_hash, set, &[], l.value);
                }
                Err(e) => tracing::debug!("remote write, extra series: {e}"),
            }
        }
        self.now.series.sort_unstable_by_key(|s| s.hash);
        self.mark_gone(ts, out);
        std::mem::swap(&mut self.last, &mut self.now);
    }

    /// Staleness markers for the series of `last` that `now` has not.
    fn mark_gone(&self, ts: i64, out: &mut Vec<Vec<u8>>) {
        let now = &self.now.series;
        let mut j = 0;
        for s in &self.last.series {
            while j < now.len() && now[j].hash < s.hash {
                j += 1;
            }
            if j < now.len() && now[j].hash == s.hash {
                continue;
            }
            let mut item = Vec::with_capacity(256);
            put_sample(&mut item, f64::from_bits(STALE_NAN), ts);
            self.last.put_labels(s, &mut item);
            out.push(item);
        }
    }
}

struct Writer<'a> {
    now: &'a mut Pushed,
    external: &'a [(String, String)],
    ts: i64,
    out: &'a mut Vec<Vec<u8>>,
    /// The size of the last item, to size the next one.
    last_len: usize,
}

impl Writer<'_> {
    /// A series name (family name and suffix) in the arena, and its hash.
    fn name(&mut self, family: &str, suffix: &str) -> (Span, u64) {
        let start = self.now.text.len() as u32;
        self.now.text.push_str(family);
        self.now.text.push_str(suffix);
        let span = (start, self.now.text.len() as u32);
        let mut h = Hasher::default();
        h.str(self.now.str(span));
        (span, h.finish())
    }

    /// One sample of series `name` with label set `set` and one more label if any.
    fn sample(&mut self, name: Span, name_hash: u64, set: u32, extra: &[(&str, &str)], value: f64) {
        let now = &mut *self.now;
        let mut hash = Hasher::default();
        hash.u64(name_hash);
        hash.u64(now.sets[set as usize].1);
        let start = now.labels.len() as u32;
        // An empty value is no label, as in the text exposition.
        for &(k, v) in extra.iter().filter(|(_, v)| !v.is_empty()).take(MAX_EXTRA) {
            hash.str(k);
            hash.str(v);
            let k = now.put(k);
            let v = now.put(v);
            now.labels.push((k, v));
        }
        let extra = (start, now.labels.len() as u32);
        let s = Series {
            hash: hash.finish(),
            name,
            set,
            extra,
        };
        now.series.push(s);
        let mut item = Vec::with_capacity(self.last_len + 32);
        put_sample(&mut item, value, self.ts);
        now.put_labels(&s, &mut item);
        self.last_len = item.len();
        self.out.push(item);
    }
}

impl Out for Writer<'_> {
    fn family(
        &mut self,
        name: &str,
        _help: &str,
        kind: Kind,
        samples: &mut dyn FnMut(&mut dyn Samples) -> Result<(), FmtError>,
    ) -> Result<(), FmtError> {
        let (name, name_hash) = self.name(name, kind.sample_suffix());
        samples(&mut FamilySamples {
            w: self,
            name,
            name_hash,
        })
    }
}

struct FamilySamples<'w, 'a> {
    w: &'w mut Writer<'a>,
    name: Span,
    name_hash: u64,
}

fn value(v: Value) -> f64 {
    match v {
        Value::Int(n) => n as f64,
        Value::Float(f) => f,
    }
}

impl Samples for FamilySamples<'_, '_> {
    fn container(&mut self, i: usize, extra: &[(&str, &str)], v: Value) -> Result<(), FmtError> {
        self.w
            .sample(self.name, self.name_hash, i as u32, extra, value(v));
        Ok(())
    }

    fn plain(&mut self, labels: &[(&str, &str)], v: Value) -> Result<(), FmtError> {
        let mut own = labels.to_vec();
        self.w.now.add_set(&mut own, self.w.external);
        let set = self.w.now.sets.len() as u32 - 1;
        self.w.sample(self.name, self.name_hash, set, &[], value(v));
        Ok(())
    }
}

/// FxHash's word-at-a-time mix: fast, and ample to tell a push's series apart (a collision
/// would only cost one staleness marker).
#[derive(Default)]
struct Hasher(u64);

impl Hasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    fn str(&mut self, s: &str) {
        let mut chunks = s.as_bytes().chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.u64(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.u64(u64::from_le_bytes(w));
        // The length ends the string, so ("ab", "c") and ("a", "bc") differ.
        self.u64(s.len() as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
