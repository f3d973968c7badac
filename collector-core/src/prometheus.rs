//! The Prometheus exposition of a [`Snapshot`], with cAdvisor's metric names and labels, as a
//! `prometheus-client` collector: each scrape streams straight from the snapshot, so a
//! container that is gone has no series at the next scrape and nothing is kept per series.
//!
//! Counters are named without `_total`; the encoders add it (both the OpenMetrics and the
//! Prometheus 0.0.4 text encoders of `prometheus-client`).

use std::fmt::Error as FmtError;
use std::sync::Arc;

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::collector::{Container, Snapshot};
use crate::stats::{NetworkStatus, Psi};

/// What to expose beyond the fixed label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Runtime label keys exposed as `container_label_<key>` (sanitized); none by default.
    pub label_allowlist: Vec<String>,
}

/// Encodes a snapshot's series. Cheap to make: it holds the snapshot by `Arc`.
#[derive(Debug)]
pub struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    options: Arc<Options>,
}

impl SnapshotCollector {
    pub fn new(snapshot: Arc<Snapshot>, options: Arc<Options>) -> Self {
        SnapshotCollector { snapshot, options }
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

/// Encodes a registry into `out` in the chosen format.
pub fn encode(out: &mut String, registry: &Registry, format: Format) -> Result<(), FmtError> {
    match format {
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(out, registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(out, registry),
    }
}

/// One snapshot's series as text: a registry holding just this snapshot, encoded.
pub fn render(
    snapshot: Arc<Snapshot>,
    options: Arc<Options>,
    format: Format,
) -> Result<String, FmtError> {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(SnapshotCollector::new(snapshot, options)));
    let mut out = String::new();
    encode(&mut out, &reg, format)?;
    Ok(out)
}

/// Fixed labels of a container: `id` always; the others only when known (never empty).
#[derive(Clone, Copy)]
struct Labels<'a> {
    buf: [(&'a str, &'a str); 24],
    len: usize,
}

impl<'a> Labels<'a> {
    fn of(c: &'a Container, opts: &'a Options, names: &'a [String]) -> Self {
        let mut l = Labels {
            buf: [("", ""); 24],
            len: 0,
        };
        l.push("id", &c.id);
        let m = &c.meta;
        for (k, v) in [
            ("name", &m.name),
            ("image", &m.image),
            ("namespace", &m.namespace),
            ("pod", &m.pod),
            ("container", &m.container),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                l.push(k, v);
            }
        }
        for (key, name) in opts.label_allowlist.iter().zip(names) {
            if let Some(v) = m.labels.get(key).filter(|v| !v.is_empty()) {
                l.push(name, v);
            }
        }
        l
    }

    fn push(&mut self, k: &'a str, v: &'a str) {
        if self.len < self.buf.len() {
            self.buf[self.len] = (k, v);
            self.len += 1;
        }
    }

    fn with(&self, k: &'a str, v: &'a str) -> Labels<'a> {
        let mut l = *self;
        l.push(k, v);
        l
    }

    fn slice(&self) -> &[(&'a str, &'a str)] {
        &self.buf[..self.len]
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

const NS_PER_S: f64 = 1e9;

/// One sample: its extra label (if any) and value.
type Sample<'a> = (Option<(&'static str, &'a str)>, f64);

impl PromCollector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), FmtError> {
        let snap = &*self.snapshot;
        let names: Vec<String> = self
            .options
            .label_allowlist
            .iter()
            .map(|k| label_name(k))
            .collect();
        let labels: Vec<Labels> = snap
            .containers
            .iter()
            .map(|c| Labels::of(c, &self.options, &names))
            .collect();
        let mut fam = Families {
            enc: &mut enc,
            snap,
            labels: &labels,
        };
        use MetricType::{Counter as C, Gauge as G};

        let ns = |v: Option<u64>| v.map(|v| v as f64 / NS_PER_S);
        let f = |v: Option<u64>| v.map(|v| v as f64);

        fam.cpu_usage()?;
        fam.simple(
            "container_cpu_user_seconds",
            "Cumulative user CPU time consumed, in seconds.",
            C,
            None,
            |c| ns(c.stats.cpu.user_ns),
        )?;
        fam.simple(
            "container_cpu_system_seconds",
            "Cumulative system CPU time consumed, in seconds.",
            C,
            None,
            |c| ns(c.stats.cpu.system_ns),
        )?;
        fam.simple(
            "container_cpu_cfs_periods",
            "Number of elapsed enforcement period intervals.",
            C,
            None,
            |c| f(c.stats.cpu.nr_periods).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
        )?;
        fam.simple(
            "container_cpu_cfs_throttled_periods",
            "Number of throttled period intervals.",
            C,
            None,
            |c| f(c.stats.cpu.nr_throttled).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
        )?;
        fam.simple(
            "container_cpu_cfs_throttled_seconds",
            "Total time duration the container has been throttled, in seconds.",
            C,
            None,
            |c| ns(c.stats.cpu.throttled_ns).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
        )?;
        fam.simple(
            "container_cpu_load_average_10s",
            "Value of container cpu load average over the last 10 seconds (runnable tasks).",
            G,
            None,
            |c| c.stats.load.map(|l| l.load_average_10s),
        )?;
        // cAdvisor's container_cpu_load_d_average_10s is left out: promtool rejects `_d_` as an
        // abbreviated unit. The figure is in the JSON API, and the instant count is
        // container_tasks_state{state="uninterruptible"}.
        fam.multi(
            "container_tasks_state",
            "Number of tasks in given state.",
            G,
            |c, out| {
                if let Some(l) = c.stats.load {
                    for (s, v) in [
                        ("sleeping", l.sleeping),
                        ("running", l.running),
                        ("stopped", l.stopped),
                        ("uninterruptible", l.uninterruptible),
                        ("iowaiting", l.io_wait),
                    ] {
                        out.push((Some(("state", s)), v as f64));
                    }
                }
            },
        )?;

        fam.simple("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", G, None, |c| f(c.stats.memory.usage_bytes))?;
        fam.simple(
            "container_memory_working_set_bytes",
            "Current working set in bytes.",
            G,
            None,
            |c| f(c.stats.memory.working_set_bytes),
        )?;
        fam.simple(
            "container_memory_rss",
            "Size of RSS in bytes.",
            G,
            None,
            |c| f(c.stats.memory.rss_bytes),
        )?;
        fam.simple(
            "container_memory_cache",
            "Number of bytes of page cache memory.",
            G,
            None,
            |c| f(c.stats.memory.cache_bytes),
        )?;
        fam.simple(
            "container_memory_swap",
            "Container swap usage in bytes.",
            G,
            None,
            |c| f(c.stats.memory.swap_bytes),
        )?;
        fam.simple(
            "container_memory_mapped_file",
            "Size of memory mapped files in bytes.",
            G,
            None,
            |c| f(c.stats.memory.mapped_file_bytes),
        )?;
        fam.simple(
            "container_memory_kernel_usage",
            "Size of kernel memory allocated in bytes.",
            G,
            None,
            |c| f(c.stats.memory.kernel_bytes),
        )?;
        fam.simple(
            "container_memory_max_usage_bytes",
            "Maximum memory usage recorded in bytes.",
            G,
            None,
            |c| f(c.stats.memory.max_usage_bytes),
        )?;
        // Typed gauge so the sample keeps cAdvisor's exact name: as a counter the encoders
        // would add `_total`, and dashboards query `container_memory_failcnt`.
        fam.simple(
            "container_memory_failcnt",
            "Number of memory usage hits limits.",
            G,
            None,
            |c| f(c.stats.memory.failcnt),
        )?;
        fam.multi(
            "container_memory_failures",
            "Cumulative count of memory allocation failures.",
            C,
            |c, out| {
                // memory.stat's hierarchical figures (v1 total_*, and all of v2's).
                if let Some(v) = c.stats.memory.pgfault {
                    out.push((Some(("failure_type", "pgfault")), v as f64));
                }
                if let Some(v) = c.stats.memory.pgmajfault {
                    out.push((Some(("failure_type", "pgmajfault")), v as f64));
                }
            },
        )?;
        fam.simple(
            "container_oom_events",
            "Count of out of memory events observed for the container.",
            C,
            None,
            |c| f(c.stats.memory.events.oom_kill),
        )?;

        fam.multi_str(
            "container_network_receive_bytes",
            "Cumulative count of bytes received.",
            |i| i.rx_bytes,
            c_net,
        )?;
        fam.multi_str(
            "container_network_receive_packets",
            "Cumulative count of packets received.",
            |i| i.rx_packets,
            c_net,
        )?;
        fam.multi_str(
            "container_network_receive_packets_dropped",
            "Cumulative count of packets dropped while receiving.",
            |i| i.rx_dropped,
            c_net,
        )?;
        fam.multi_str(
            "container_network_receive_errors",
            "Cumulative count of errors encountered while receiving.",
            |i| i.rx_errors,
            c_net,
        )?;
        fam.multi_str(
            "container_network_transmit_bytes",
            "Cumulative count of bytes transmitted.",
            |i| i.tx_bytes,
            c_net,
        )?;
        fam.multi_str(
            "container_network_transmit_packets",
            "Cumulative count of packets transmitted.",
            |i| i.tx_packets,
            c_net,
        )?;
        fam.multi_str(
            "container_network_transmit_packets_dropped",
            "Cumulative count of packets dropped while transmitting.",
            |i| i.tx_dropped,
            c_net,
        )?;
        fam.multi_str(
            "container_network_transmit_errors",
            "Cumulative count of errors encountered while transmitting.",
            |i| i.tx_errors,
            c_net,
        )?;

        fam.blkio(
            "container_fs_reads_bytes",
            "Cumulative count of bytes read.",
            |d| d.read_bytes,
        )?;
        fam.blkio(
            "container_fs_writes_bytes",
            "Cumulative count of bytes written.",
            |d| d.write_bytes,
        )?;
        fam.blkio(
            "container_fs_reads",
            "Cumulative count of reads completed.",
            |d| d.reads,
        )?;
        fam.blkio(
            "container_fs_writes",
            "Cumulative count of writes completed.",
            |d| d.writes,
        )?;

        fam.simple(
            "container_threads",
            "Number of threads running inside the container.",
            G,
            None,
            |c| f(c.stats.pids.current),
        )?;
        fam.simple(
            "container_threads_max",
            "Maximum number of threads allowed inside the container (absent when unlimited).",
            G,
            None,
            |c| f(c.stats.pids.limit),
        )?;

        let some = |x: Option<Psi>| x.map(|x| x.some.total_us as f64 / 1e6);
        let full = |x: Option<Psi>| x.and_then(|x| x.full).map(|x| x.total_us as f64 / 1e6);
        fam.simple(
            "container_pressure_cpu_waiting_seconds",
            "Total time duration tasks in the container have waited due to CPU congestion.",
            C,
            None,
            |c| some(c.stats.pressure.cpu),
        )?;
        fam.simple("container_pressure_cpu_stalled_seconds", "Total time duration no tasks in the container could make progress due to CPU congestion.", C, None, |c| full(c.stats.pressure.cpu))?;
        fam.simple(
            "container_pressure_memory_waiting_seconds",
            "Total time duration tasks in the container have waited due to memory congestion.",
            C,
            None,
            |c| some(c.stats.pressure.memory),
        )?;
        fam.simple("container_pressure_memory_stalled_seconds", "Total time duration no tasks in the container could make progress due to memory congestion.", C, None, |c| full(c.stats.pressure.memory))?;
        fam.simple(
            "container_pressure_io_waiting_seconds",
            "Total time duration tasks in the container have waited due to IO congestion.",
            C,
            None,
            |c| some(c.stats.pressure.io),
        )?;
        fam.simple("container_pressure_io_stalled_seconds", "Total time duration no tasks in the container could make progress due to IO congestion.", C, None, |c| full(c.stats.pressure.io))?;

        fam.simple(
            "container_spec_cpu_shares",
            "CPU share of the container.",
            G,
            None,
            |c| f(c.stats.spec.cpu_shares),
        )?;
        fam.simple(
            "container_spec_cpu_quota",
            "CPU quota of the container (absent when unlimited).",
            G,
            None,
            |c| f(c.stats.spec.cpu_quota_us),
        )?;
        fam.simple(
            "container_spec_cpu_period",
            "CPU period of the container.",
            G,
            None,
            |c| f(c.stats.spec.cpu_period_us).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
        )?;
        fam.simple(
            "container_spec_memory_limit_bytes",
            "Memory limit for the container (absent when unlimited).",
            G,
            None,
            |c| f(c.stats.spec.memory_limit_bytes),
        )?;
        fam.simple(
            "container_spec_memory_reservation_limit_bytes",
            "Memory reservation limit for the container (absent when unset).",
            G,
            None,
            |c| f(c.stats.spec.memory_reservation_bytes),
        )?;
        fam.simple(
            "container_spec_memory_swap_limit_bytes",
            "Memory swap limit for the container (absent when unlimited).",
            G,
            None,
            |c| f(c.stats.spec.memory_swap_limit_bytes),
        )?;

        let seen = snap.timestamp_ms as f64 / 1e3;
        fam.simple(
            "container_start_time_seconds",
            "Start time of the container since unix epoch in seconds.",
            G,
            None,
            |c| c.created_ms.map(|ms| ms as f64 / 1e3),
        )?;
        fam.simple(
            "container_last_seen",
            "Last time a container was seen by the exporter.",
            G,
            None,
            |_| Some(seen),
        )?;

        // The writable layer, measured in the background: the last good value and its age.
        fam.layer(
            "container_fs_usage_bytes",
            "Number of bytes that are consumed by the container on this filesystem.",
            G,
            |l| Some(l.usage_bytes as f64),
        )?;
        fam.layer(
            "container_fs_limit_bytes",
            "Number of bytes that can be consumed by the container on this filesystem.",
            G,
            |l| l.limit_bytes.map(|v| v as f64),
        )?;
        // cAdvisor's container_fs_inodes_total is a gauge, which promtool rejects for its
        // `_total`. Typed as a counter here, the sample keeps cAdvisor's name (the encoder
        // adds `_total`); the value only changes when the filesystem is resized.
        fam.layer(
            "container_fs_inodes",
            "Number of Inodes (the backing filesystem's).",
            C,
            |l| l.inodes_total.map(|v| v as f64),
        )?;
        fam.layer(
            "container_fs_inodes_free",
            "Number of available Inodes.",
            G,
            |l| l.inodes_free.map(|v| v as f64),
        )?;
        fam.layer(
            "container_fs_inodes_used",
            "Number of inodes in the container's writable layer.",
            G,
            |l| Some(l.inodes_used as f64),
        )?;
        fam.layer(
            "container_fs_usage_age_seconds",
            "Age of the writable layer measurement that container_fs_usage_bytes reports.",
            G,
            |l| Some(l.age_ms as f64 / 1e3),
        )?;

        let mach = &snap.machine;
        for (name, help, v) in [
            (
                "machine_cpu_cores",
                "Number of logical CPU cores.",
                mach.cpu_cores,
            ),
            (
                "machine_memory_bytes",
                "Amount of memory installed on the machine.",
                mach.memory_bytes,
            ),
            (
                "machine_swap_bytes",
                "Amount of swap memory available on the machine.",
                mach.swap_bytes,
            ),
        ] {
            if let Some(v) = v {
                let me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v as f64).encode(me)?;
            }
        }
        encode_machine(&mut enc, mach)?;
        Ok(())
    }
}

/// The machine's topology, CPU modes, filesystems, disks and pressure (labels as node
/// exporter's where cAdvisor has no such series; `device` as for block IO).
fn encode_machine(
    enc: &mut DescriptorEncoder,
    mach: &crate::machine::MachineStats,
) -> Result<(), FmtError> {
    use MetricType::{Counter as C, Gauge as G};
    for (name, help, v) in [
        (
            "machine_cpu_physical_cores",
            "Number of physical CPU cores.",
            mach.cpu_physical_cores,
        ),
        (
            "machine_cpu_sockets",
            "Number of CPU sockets.",
            mach.cpu_sockets,
        ),
    ] {
        if let Some(v) = v {
            let me = enc.encode_descriptor(name, help, None, G)?;
            ConstGauge::new(v as f64).encode(me)?;
        }
    }
    if let Some(t) = &mach.cpu_time {
        let mut me = enc.encode_descriptor(
            "machine_cpu_seconds",
            "Seconds all CPUs spent in each mode since boot (/proc/stat).",
            None,
            C,
        )?;
        for (mode, ns) in t.modes() {
            sample(&mut me, C, &[("mode", mode)], ns as f64 / NS_PER_S)?;
        }
    }

    let fs = &mach.filesystems;
    if !fs.is_empty() {
        let labels: Vec<String> = fs.iter().map(|f| f.label()).collect();
        type FsValue = fn(&crate::machine::Filesystem) -> Option<u64>;
        let families: [(&str, &str, FsValue); 5] = [
            (
                "machine_filesystem_size_bytes",
                "Filesystem size in bytes.",
                |f| Some(f.size_bytes),
            ),
            (
                "machine_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                |f| Some(f.avail_bytes),
            ),
            (
                "machine_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                |f| Some(f.free_bytes),
            ),
            (
                "machine_filesystem_files",
                "Filesystem total file nodes.",
                |f| f.files,
            ),
            (
                "machine_filesystem_files_free",
                "Filesystem total free file nodes.",
                |f| f.files_free,
            ),
        ];
        for (name, help, value) in families {
            if !fs.iter().any(|f| value(f).is_some()) {
                continue;
            }
            let mut me = enc.encode_descriptor(name, help, None, G)?;
            for (f, dev) in fs.iter().zip(&labels) {
                if let Some(v) = value(f) {
                    let l = [
                        ("device", dev.as_str()),
                        ("mountpoint", f.mountpoint.as_str()),
                        ("fstype", f.fstype.as_str()),
                    ];
                    sample(&mut me, G, &l, v as f64)?;
                }
            }
        }
    }

    let disks = &mach.disks;
    if !disks.is_empty() {
        let labels: Vec<String> = disks.iter().map(|d| format!("/dev/{}", d.name)).collect();
        type DiskValue = fn(&crate::machine::Disk) -> f64;
        let families: [(&str, &str, MetricType, DiskValue); 6] = [
            (
                "machine_disk_reads_completed",
                "Reads completed successfully.",
                C,
                |d| d.reads_completed as f64,
            ),
            (
                "machine_disk_writes_completed",
                "Writes completed successfully.",
                C,
                |d| d.writes_completed as f64,
            ),
            (
                "machine_disk_read_bytes",
                "Bytes read successfully.",
                C,
                |d| d.read_bytes as f64,
            ),
            (
                "machine_disk_written_bytes",
                "Bytes written successfully.",
                C,
                |d| d.written_bytes as f64,
            ),
            (
                "machine_disk_io_time_seconds",
                "Seconds the device had IO in flight.",
                C,
                |d| d.io_time_ms as f64 / 1e3,
            ),
            ("machine_disk_io_now", "IOs in flight now.", G, |d| {
                d.io_in_progress as f64
            }),
        ];
        for (name, help, t, value) in families {
            let mut me = enc.encode_descriptor(name, help, None, t)?;
            for (d, dev) in disks.iter().zip(&labels) {
                sample(&mut me, t, &[("device", dev.as_str())], value(d))?;
            }
        }
    }

    let p = &mach.pressure;
    for (res, psi) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
        let Some(psi) = psi else { continue };
        for (kind, what, line) in [
            ("waiting", "tasks have waited", Some(psi.some)),
            ("stalled", "no task could make progress", psi.full),
        ] {
            let Some(line) = line else { continue };
            let name = format!("machine_pressure_{res}_{kind}_seconds");
            let help =
                format!("Total time in seconds {what} on the machine due to {res} congestion.");
            let me = enc.encode_descriptor(&name, &help, None, C)?;
            ConstCounter::new(line.total_us as f64 / 1e6).encode(me)?;
        }
    }
    Ok(())
}

/// The interfaces of a container that has its own network namespace.
fn c_net(c: &Container) -> &[crate::stats::InterfaceStats] {
    if c.stats.network.status == NetworkStatus::Own {
        &c.stats.network.interfaces
    } else {
        &[]
    }
}

struct Families<'a, 'e> {
    enc: &'a mut DescriptorEncoder<'e>,
    snap: &'a Snapshot,
    labels: &'a [Labels<'a>],
}

impl Families<'_, '_> {
    fn begin<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        t: MetricType,
    ) -> Result<prometheus_client::encoding::MetricEncoder<'s>, FmtError> {
        self.enc.encode_descriptor(name, help, None, t)
    }

    /// `container_cpu_usage_seconds_total`, as cAdvisor serves it: where per-CPU usage was
    /// read, one series per CPU that has run the container (`cpu="cpu00"`, ...) and no total;
    /// else `cpu="total"`. So a sum over the family never counts a CPU twice.
    fn cpu_usage(&mut self) -> Result<(), FmtError> {
        let (snap, labels) = (self.snap, self.labels);
        if !snap
            .containers
            .iter()
            .any(|c| c.stats.cpu.usage_ns.is_some())
        {
            return Ok(());
        }
        let cpus = snap
            .containers
            .iter()
            .map(|c| c.stats.cpu.per_cpu_ns.len())
            .max()
            .unwrap_or(0);
        let names: Vec<String> = (0..cpus).map(|i| format!("cpu{i:02}")).collect();
        let mut me = self.begin(
            "container_cpu_usage_seconds",
            "Cumulative CPU time consumed, in seconds.",
            MetricType::Counter,
        )?;
        let c_t = MetricType::Counter;
        for (c, l) in snap.containers.iter().zip(labels) {
            let cpu = &c.stats.cpu;
            if cpu.per_cpu_ns.is_empty() {
                if let Some(v) = cpu.usage_ns {
                    let l = l.with("cpu", "total");
                    sample(&mut me, c_t, l.slice(), v as f64 / NS_PER_S)?;
                }
                continue;
            }
            for (v, name) in cpu.per_cpu_ns.iter().zip(&names) {
                if *v > 0 {
                    let l = l.with("cpu", name);
                    sample(&mut me, c_t, l.slice(), *v as f64 / NS_PER_S)?;
                }
            }
        }
        Ok(())
    }

    /// One value per container (and a fixed extra label, like `cpu="total"`).
    fn simple(
        &mut self,
        name: &str,
        help: &str,
        t: MetricType,
        extra: Option<(&'static str, &'static str)>,
        value: impl Fn(&Container) -> Option<f64>,
    ) -> Result<(), FmtError> {
        if !self.snap.containers.iter().any(|c| value(c).is_some()) {
            return Ok(());
        }
        let (snap, labels) = (self.snap, self.labels);
        let mut me = self.begin(name, help, t)?;
        for (c, l) in snap.containers.iter().zip(labels) {
            if let Some(v) = value(c) {
                let l = match extra {
                    Some((k, x)) => l.with(k, x),
                    None => *l,
                };
                sample(&mut me, t, l.slice(), v)?;
            }
        }
        Ok(())
    }

    /// Several values per container, each with its own extra label.
    fn multi(
        &mut self,
        name: &str,
        help: &str,
        t: MetricType,
        values: impl Fn(&Container, &mut Vec<Sample<'static>>),
    ) -> Result<(), FmtError> {
        let mut buf = Vec::new();
        let any = self.snap.containers.iter().any(|c| {
            buf.clear();
            values(c, &mut buf);
            !buf.is_empty()
        });
        if !any {
            return Ok(());
        }
        let (snap, labels) = (self.snap, self.labels);
        let mut me = self.begin(name, help, t)?;
        for (c, l) in snap.containers.iter().zip(labels) {
            buf.clear();
            values(c, &mut buf);
            for (extra, v) in &buf {
                let l = match extra {
                    Some((k, x)) => l.with(k, x),
                    None => *l,
                };
                sample(&mut me, t, l.slice(), *v)?;
            }
        }
        Ok(())
    }

    /// A network counter per interface.
    fn multi_str(
        &mut self,
        name: &str,
        help: &str,
        value: impl Fn(&crate::stats::InterfaceStats) -> u64,
        ifaces: fn(&Container) -> &[crate::stats::InterfaceStats],
    ) -> Result<(), FmtError> {
        if !self.snap.containers.iter().any(|c| !ifaces(c).is_empty()) {
            return Ok(());
        }
        let (snap, labels) = (self.snap, self.labels);
        let mut me = self.begin(name, help, MetricType::Counter)?;
        for (c, l) in snap.containers.iter().zip(labels) {
            for i in ifaces(c) {
                let l = l.with("interface", &i.name);
                sample(&mut me, MetricType::Counter, l.slice(), value(i) as f64)?;
            }
        }
        Ok(())
    }

    /// A block IO counter per device, labelled `device="/dev/<name>"` as cAdvisor does
    /// (`major:minor` when the name is unknown).
    fn blkio(
        &mut self,
        name: &str,
        help: &str,
        value: impl Fn(&crate::stats::DeviceIo) -> u64,
    ) -> Result<(), FmtError> {
        if !self
            .snap
            .containers
            .iter()
            .any(|c| !c.stats.blkio.is_empty())
        {
            return Ok(());
        }
        let (snap, labels) = (self.snap, self.labels);
        let mut me = self.begin(name, help, MetricType::Counter)?;
        let mut dev = String::new();
        for (c, l) in snap.containers.iter().zip(labels) {
            for d in &c.stats.blkio {
                dev.clear();
                match &d.device {
                    Some(n) => {
                        dev.push_str("/dev/");
                        dev.push_str(n);
                    }
                    None => {
                        use std::fmt::Write;
                        write!(dev, "{}:{}", d.major, d.minor)?;
                    }
                }
                let l = l.with("device", &dev);
                sample(&mut me, MetricType::Counter, l.slice(), value(d) as f64)?;
            }
        }
        Ok(())
    }
}

impl Families<'_, '_> {
    /// A writable-layer figure per container, labelled with its backing device like block IO.
    fn layer(
        &mut self,
        name: &str,
        help: &str,
        t: MetricType,
        value: impl Fn(&crate::stats::FsStats) -> Option<f64>,
    ) -> Result<(), FmtError> {
        let has = |c: &Container| c.stats.fs.as_ref().and_then(&value);
        if !self.snap.containers.iter().any(|c| has(c).is_some()) {
            return Ok(());
        }
        let (snap, labels) = (self.snap, self.labels);

        let mut me = self.begin(name, help, t)?;
        let mut dev = String::new();
        for (c, l) in snap.containers.iter().zip(labels) {
            let (Some(fs), Some(v)) = (c.stats.fs.as_ref(), has(c)) else {
                continue;
            };
            dev.clear();
            match &fs.device {
                Some(n) => {
                    dev.push_str("/dev/");
                    dev.push_str(n);
                }
                None => {
                    use std::fmt::Write;
                    write!(dev, "{}:{}", fs.major, fs.minor)?;
                }
            }
            let l = l.with("device", &dev);
            sample(&mut me, t, l.slice(), v)?;
        }
        Ok(())
    }
}

fn sample(
    me: &mut prometheus_client::encoding::MetricEncoder<'_>,
    t: MetricType,
    labels: &[(&str, &str)],
    v: f64,
) -> Result<(), FmtError> {
    let fe = me.encode_family(&labels)?;
    match t {
        MetricType::Counter => ConstCounter::new(v).encode(fe),
        _ => ConstGauge::new(v).encode(fe),
    }
}
