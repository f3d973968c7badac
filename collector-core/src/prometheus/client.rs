//! The families as a `prometheus-client` collector, for an embedder with its own registry.

use std::fmt::Error as FmtError;
use std::sync::Arc;

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::{container_labels, families, Kind, Options, Out, Samples, Value};
use crate::collector::Snapshot;

/// Encodes a snapshot's series through a `prometheus-client` registry. Cheap to make: it
/// holds the snapshot by `Arc`. To follow a running collector, make one from the latest
/// snapshot at each scrape (`examples/serve_registry.rs` does it with [`crate::Driver::watch`]).
///
/// ```
/// use std::sync::Arc;
/// use collector_core::prometheus::{Options, SnapshotCollector};
/// use collector_core::{Collector, Config};
/// use prometheus_client::registry::Registry;
///
/// let snapshot = Arc::new(Collector::new(Config::default())?.sweep());
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(SnapshotCollector::new(
///     snapshot,
///     Arc::new(Options::default()),
/// )));
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry)?;
/// assert!(text.contains("container_cpu_usage_seconds_total{"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    options: Arc<Options>,
}

impl SnapshotCollector {
    /// A collector for this snapshot, encoded with these options.
    pub fn new(snapshot: Arc<Snapshot>, options: Arc<Options>) -> Self {
        SnapshotCollector { snapshot, options }
    }
}

impl PromCollector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), FmtError> {
        let snap = &*self.snapshot;
        let names = self.options.label_names();
        let labels: Vec<Vec<(&str, &str)>> = snap
            .containers
            .iter()
            .map(|c| {
                let mut l = Vec::new();
                container_labels(c, &self.options, &names, |k, v| l.push((k, v)));
                l
            })
            .collect();
        let mut out = ClientOut {
            enc: &mut enc,
            labels: &labels,
        };
        families::write(&mut out, snap)
    }
}

struct ClientOut<'a, 'e> {
    enc: &'a mut DescriptorEncoder<'e>,
    labels: &'a [Vec<(&'a str, &'a str)>],
}

impl Out for ClientOut<'_, '_> {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: &mut dyn FnMut(&mut dyn Samples) -> Result<(), FmtError>,
    ) -> Result<(), FmtError> {
        let t = match kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        };
        let me = self.enc.encode_descriptor(name, help, None, t)?;
        samples(&mut ClientSamples {
            me,
            kind,
            labels: self.labels,
        })
    }
}

struct ClientSamples<'s, 'a> {
    me: MetricEncoder<'s>,
    kind: Kind,
    labels: &'a [Vec<(&'a str, &'a str)>],
}

impl ClientSamples<'_, '_> {
    fn sample(
        &mut self,
        base: &[(&str, &str)],
        extra: &[(&str, &str)],
        v: Value,
    ) -> Result<(), FmtError> {
        let set = (base, extra);
        let fe = self.me.encode_family(&set)?;
        match (self.kind, v) {
            (Kind::Counter, Value::Int(n)) => ConstCounter::new(n).encode(fe),
            (Kind::Counter, Value::Float(f)) => ConstCounter::new(f).encode(fe),
            (Kind::Gauge, Value::Int(n)) => ConstGauge::new(n).encode(fe),
            (Kind::Gauge, Value::Float(f)) => ConstGauge::new(f).encode(fe),
        }
    }
}

impl Samples for ClientSamples<'_, '_> {
    fn container(&mut self, i: usize, extra: &[(&str, &str)], v: Value) -> Result<(), FmtError> {
        let labels = self.labels;
        self.sample(&labels[i], extra, v)
    }

    fn plain(&mut self, labels: &[(&str, &str)], v: Value) -> Result<(), FmtError> {
        self.sample(labels, &[], v)
    }
}
