//! The Prometheus exposition of a [`Snapshot`], with cAdvisor's metric names and labels.
//!
//! One list of families (`families.rs`) drives two writers:
//! - [`write()`] / [`render`]: text written straight into a `String` (`text.rs`), each
//!   container's label set escaped once per scrape. This is what the exporter serves: at
//!   10,000 containers it takes a third of the time `prometheus-client`'s encoder does.
//! - [`SnapshotCollector`]: a `prometheus-client` collector (`client.rs`), for an embedder
//!   that has its own registry. Same bytes (a test holds the two equal).
//! - The remote-write sink (`crate::remote_write`, feature `remote_write`) takes the same
//!   families through `visit`, so pushed series are named and labelled as scraped ones.
//!
//! Both stream from the snapshot: a container that is gone has no series at the next scrape,
//! and nothing is kept per series. Counters are named without `_total`; the writers add it
//! (to the samples in OpenMetrics, to every line in the 0.0.4 text format).

mod client;
mod families;
mod text;

pub use client::SnapshotCollector;
/// Every family of a snapshot, in order, written to an [`Out`]: the seam the remote-write
/// encoder shares with the text writer.
#[cfg(feature = "remote_write")]
pub(crate) use families::write as visit;

use std::fmt::Error as FmtError;

use prometheus_client::registry::Registry;

use crate::collector::{Container, Snapshot};

/// What to expose beyond the fixed label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Runtime label keys exposed as `container_label_<key>` (sanitized); none by default.
    pub label_allowlist: Vec<String>,
}

impl Options {
    /// The exposed name of each allowed runtime label key, in order.
    pub(crate) fn label_names(&self) -> Vec<String> {
        self.label_allowlist.iter().map(|k| label_name(k)).collect()
    }
}

/// Text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, what Prometheus-compatible tools read by default.
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics only when the scraper's `Accept` header names it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }
}

/// Appends the snapshot's families to `out`, without OpenMetrics' closing `# EOF` (so more
/// families, say a registry's, can follow; [`encode`] writes it).
pub fn write(out: &mut String, snapshot: &Snapshot, options: &Options, format: Format) {
    let mut w = text::TextOut::new(out, snapshot, options, format, None);
    // Writing into a String cannot fail; the Result is the writers' common signature.
    let _ = families::write(&mut w, snapshot);
}

/// As [`write()`], in pieces: whenever `out` holds `chunk` bytes or more (between samples),
/// `flush` takes the text and should leave `out` empty. An error from `flush` (the reader has
/// gone, say) stops the writing and is returned. What is left in `out` at the end is the
/// caller's to send. So a body of any size is served with `chunk`-sized buffers.
pub fn write_chunked(
    out: &mut String,
    snapshot: &Snapshot,
    options: &Options,
    format: Format,
    chunk: usize,
    flush: &mut dyn FnMut(&mut String) -> Result<(), FmtError>,
) -> Result<(), FmtError> {
    let mut w = text::TextOut::new(out, snapshot, options, format, Some((chunk, flush)));
    families::write(&mut w, snapshot)
}

/// One snapshot's series as a whole body (with `# EOF` in OpenMetrics).
pub fn render(snapshot: &Snapshot, options: &Options, format: Format) -> String {
    let mut out = String::new();
    write(&mut out, snapshot, options, format);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Encodes a registry into `out` in the chosen format (OpenMetrics ends with `# EOF`).
pub fn encode(out: &mut String, registry: &Registry, format: Format) -> Result<(), FmtError> {
    match format {
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(out, registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(out, registry),
    }
}

/// `container_label_<key>` with every character Prometheus does not allow made `_`.
pub fn label_name(key: &str) -> String {
    let mut s = String::with_capacity(16 + key.len());
    s.push_str("container_label_");
    s.extend(key.chars().map(|ch| {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            ch
        } else {
            '_'
        }
    }));
    s
}

/// A container's fixed labels, in order: `id` always; `name`, `image`, `namespace`, `pod`,
/// `container` and the allowed runtime labels (`names`: their exposed names) when known and
/// not empty.
pub(crate) fn container_labels<'c>(
    c: &'c Container,
    options: &Options,
    names: &'c [String],
    mut label: impl FnMut(&'c str, &'c str),
) {
    label("id", &c.id);
    let m = &c.meta;
    for (k, v) in [
        ("name", &m.name),
        ("image", &m.image),
        ("namespace", &m.namespace),
        ("pod", &m.pod),
        ("container", &m.container),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            label(k, v);
        }
    }
    for (key, name) in options.label_allowlist.iter().zip(names) {
        if let Some(v) = m.labels.get(key).filter(|v| !v.is_empty()) {
            label(name, v);
        }
    }
}

/// A sample's value: counts and bytes stay integers (exact past 2^53, and shorter), times
/// and ratios are floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

/// Whether a family is a counter or a gauge (all this exposition has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    /// What a sample's name adds to its family's: a counter's samples end in `_total`.
    pub(crate) fn sample_suffix(self) -> &'static str {
        match self {
            Kind::Counter => "_total",
            Kind::Gauge => "",
        }
    }
}

/// Where the families go: a writer begins each family, then takes its samples.
pub(crate) trait Out {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: &mut dyn FnMut(&mut dyn Samples) -> Result<(), FmtError>,
    ) -> Result<(), FmtError>;
}

/// The samples of the family being written.
pub(crate) trait Samples {
    /// A sample of container `i` of the snapshot: its label set, and the family's own labels.
    fn container(&mut self, i: usize, extra: &[(&str, &str)], v: Value) -> Result<(), FmtError>;

    /// A sample with just these labels (the machine's families).
    fn plain(&mut self, labels: &[(&str, &str)], v: Value) -> Result<(), FmtError>;
}

#[cfg(test)]
mod tests;
