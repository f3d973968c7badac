//! The exporter's own series: `process_*` (as every Prometheus exporter has) and the sweep
//! loop's health.

use std::sync::atomic::{AtomicU64, Ordering};

use collector_core::sink::SinkStats;
use nix::unistd::SysconfVar;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Counters the sweep loop updates; read at each scrape.
#[derive(Debug, Default)]
pub struct SweepStats {
    pub sweeps: AtomicU64,
    pub errors: AtomicU64,
    pub last_duration_us: AtomicU64,
    pub containers: AtomicU64,
    pub idle_containers: AtomicU64,
    pub watch_saturated: AtomicU64,
    /// Where new processes are learnt from and the security signals' own counters, as of
    /// the last sweep.
    pub security:
        std::sync::Mutex<Option<(collector_core::ExecSource, collector_core::SecurityCounters)>>,
    /// Why the last sweep could read nothing (`Collector::hierarchy_problem`).
    problem: std::sync::Mutex<Option<String>>,
    /// What the collector held after the last sweep.
    resources: std::sync::Mutex<Option<collector_core::Resources>>,
}

impl SweepStats {
    pub fn set_resources(&self, r: collector_core::Resources) {
        *self
            .resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
    }

    fn resources(&self) -> Option<collector_core::Resources> {
        *self
            .resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_problem(&self, p: Option<String>) {
        let mut g = self
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *g != p {
            match &p {
                Some(p) => tracing::error!("{p}"),
                None if g.is_some() => tracing::info!("the cgroup hierarchy is back"),
                None => {}
            }
            *g = p;
        }
    }

    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug)]
pub struct SelfCollector {
    pub stats: std::sync::Arc<SweepStats>,
    /// (name, type, counters) of each push sink.
    pub sinks: Vec<(String, &'static str, std::sync::Arc<SinkStats>)>,
    pub runtimes: Option<std::sync::Arc<collector_core::runtime::Providers>>,
    pub events: std::sync::Arc<crate::state::EventLog>,
    pub violations: std::sync::Arc<crate::state::Violations>,
    pub criticals: std::sync::Arc<crate::state::Criticals>,
    pub setup: Option<std::sync::Arc<crate::setup::SetupInfo>>,
    pub connections: Option<std::sync::Arc<crate::connections::Connections>>,
}

impl Collector for SelfCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let counter = |enc: &mut DescriptorEncoder,
                       name: &str,
                       help: &str,
                       v: f64|
         -> Result<(), std::fmt::Error> {
            let me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(me)
        };
        let gauge = |enc: &mut DescriptorEncoder,
                     name: &str,
                     help: &str,
                     v: f64|
         -> Result<(), std::fmt::Error> {
            let me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(me)
        };
        counter(
            &mut enc,
            "collector_sweeps",
            "Sweeps over every container since start.",
            s.sweeps.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            &mut enc,
            "collector_sweep_errors",
            "Files that could not be read or parsed, over all sweeps.",
            s.errors.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "collector_sweep_duration_seconds",
            "Duration of the last sweep.",
            s.last_duration_us.load(Ordering::Relaxed) as f64 / 1e6,
        )?;
        gauge(
            &mut enc,
            "collector_containers",
            "Containers (cgroups) in the last sweep.",
            s.containers.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "collector_containers_idle",
            "Containers read as idle in the last sweep: no activity since their last full read, so only CPU, memory usage, tasks and network were read.",
            s.idle_containers.load(Ordering::Relaxed) as f64,
        )?;
        if let Some(r) = s.resources() {
            gauge(
                &mut enc,
                "collector_held_descriptors",
                "Descriptors held open on cgroup directories, processes, their net/dev and (with hold-files) cgroup files.",
                r.held_descriptors as f64,
            )?;
            gauge(
                &mut enc,
                "collector_descriptor_budget",
                "The most descriptors the collector holds open across sweeps; beyond it files are opened by path.",
                r.descriptor_budget as f64,
            )?;
            gauge(
                &mut enc,
                "collector_inotify_watches",
                "inotify watches held for new and removed cgroups and spec writes.",
                r.inotify_watches as f64,
            )?;
            gauge(
                &mut enc,
                "collector_layer_walker_threads",
                "Threads walking containers' writable layers.",
                r.walker_threads as f64,
            )?;
        }
        gauge(&mut enc, "collector_inotify_watch_limit_reached", "1 when the inotify watch limit was hit: new cgroups are then found by the periodic rescan.", s.watch_saturated.load(Ordering::Relaxed) as f64)?;
        if let Some(c) = &self.connections {
            gauge(
                &mut enc,
                "collector_http_connections",
                "HTTP connections open now.",
                c.open() as f64,
            )?;
            gauge(
                &mut enc,
                "collector_http_connections_limit",
                "The most HTTP connections served at once (--web.max-connections).",
                c.limit() as f64,
            )?;
            let mut me = enc.encode_descriptor(
                "collector_http_connections_closed",
                "HTTP connections closed by the exporter: evicted (idle, to make room), refused (all busy), stalled (the client took no byte of its answer for --web.write-timeout).",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in [
                ("evicted", &c.evicted),
                ("refused", &c.refused),
                ("stalled", &c.stalled),
            ] {
                let labels = [("reason", reason)];
                ConstCounter::new(n.load(Ordering::Relaxed) as f64)
                    .encode(me.encode_family(&labels)?)?;
            }
        }
        self.encode_setup(&mut enc)?;
        self.encode_sinks(&mut enc)?;
        self.encode_security(&mut enc)?;
        self.encode_events_and_runtimes(&mut enc)?;
        if let Some(p) = process() {
            counter(
                &mut enc,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                p.cpu_seconds,
            )?;
            gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            )?;
            gauge(
                &mut enc,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            )?;
            gauge(
                &mut enc,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time,
            )?;
            gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            )?;
            if let Some(m) = p.max_fds {
                gauge(
                    &mut enc,
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    m,
                )?;
            }
        }
        Ok(())
    }
}

struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    open_fds: f64,
    max_fds: Option<f64>,
}

/// This process's figures from its own /proc entry (always the real /proc: it is about us).
fn process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let ticks = sysconf(SysconfVar::CLK_TCK)?;
    let page = sysconf(SysconfVar::PAGE_SIZE)?;
    // Indices relative to field 3: utime 14, stime 15, starttime 22, vsize 23, rss 24.
    let cpu_seconds = (num(11)? + num(12)?) / ticks;
    let start_time = boot_time()? + num(19)? / ticks;
    let open_fds = open_fds()?;
    // The soft limit, as /proc/self/limits shows it, without reading that file every scrape.
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft as f64);
    Some(Process {
        cpu_seconds,
        resident_bytes: num(21)? * page,
        virtual_bytes: num(20)?,
        start_time,
        open_fds,
        max_fds,
    })
}

/// Open descriptors. Since Linux 6.2 the size of `/proc/self/fd` is their number, which
/// saves listing thousands of held ones at every scrape; before, it is 0 and they are counted.
fn open_fds() -> Option<f64> {
    use std::os::unix::fs::MetadataExt;
    let n = std::fs::metadata("/proc/self/fd").ok()?.size();
    if n > 0 {
        return Some(n as f64);
    }
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn sysconf(var: SysconfVar) -> Option<f64> {
    let v = nix::unistd::sysconf(var).ok()??;
    (v > 0).then_some(v as f64)
}

/// The boot time never changes: read once, not on every scrape (`/proc/stat` is long on
/// hosts with many CPUs).
fn boot_time() -> Option<f64> {
    static BTIME: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *BTIME.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    })
}

impl SelfCollector {
    /// One family per counter, one series per sink (`sink` = its name, `type`).
    fn encode_sinks(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.sinks.is_empty() {
            return Ok(());
        }
        type Pick = fn(&SinkStats) -> f64;
        let families: [(&str, &str, MetricType, Pick); 8] = [
            (
                "collector_sink_sent",
                "Items (points or documents) delivered.",
                MetricType::Counter,
                |s| s.sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_failed",
                "Items the server refused for good.",
                MetricType::Counter,
                |s| s.failed.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_dropped",
                "Items dropped because the queue, spool or its disk was full (oldest first), or lost with the spool.",
                MetricType::Counter,
                |s| s.dropped.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_retries",
                "Delivery attempts that failed and were retried.",
                MetricType::Counter,
                |s| s.retries.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_queue_items",
                "Items waiting for delivery.",
                MetricType::Gauge,
                |s| s.queued.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_spool_bytes",
                "Bytes in the on-disk spool.",
                MetricType::Gauge,
                |s| s.spool_bytes.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_spool_in_memory",
                "1 while the spool's directory cannot be used and items wait in memory.",
                MetricType::Gauge,
                |s| s.spool_in_memory.load(Ordering::Relaxed) as f64,
            ),
            (
                "collector_sink_last_success_timestamp_seconds",
                "When the last delivery succeeded (0 before the first).",
                MetricType::Gauge,
                |s| s.last_success_ms.load(Ordering::Relaxed) as f64 / 1e3,
            ),
        ];
        for (name, help, t, pick) in families {
            let mut me = enc.encode_descriptor(name, help, None, t)?;
            for (sink, kind, stats) in &self.sinks {
                let labels = [("sink", sink.as_str()), ("type", *kind)];
                let fe = me.encode_family(&labels)?;
                match t {
                    MetricType::Counter => ConstCounter::new(pick(stats)).encode(fe)?,
                    _ => ConstGauge::new(pick(stats)).encode(fe)?,
                }
            }
        }
        Ok(())
    }
}

impl SelfCollector {
    /// `collector_build_info` and `collector_setup_info`: constant 1, the facts in labels.
    fn encode_setup(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut me = enc.encode_descriptor(
            "collector_build_info",
            "1, labelled with the exporter's version.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1.0)
            .encode(me.encode_family(&[("version", env!("CARGO_PKG_VERSION"))].as_slice())?)?;
        let Some(i) = &self.setup else {
            return Ok(());
        };
        use crate::setup::SetupInfo;
        let setup = format!("{:?}", i.setup).to_ascii_lowercase();
        let labels = [
            ("setup", setup.as_str()),
            ("procfs_ok", SetupInfo::ok_label(&i.procfs)),
            ("sysfs_ok", SetupInfo::ok_label(&i.sysfs)),
            ("rootfs_ok", SetupInfo::ok_label(&i.rootfs)),
            ("exec_events", i.exec_events),
        ];
        let mut me = enc.encode_descriptor(
            "collector_setup_info",
            "1, labelled with what the agent can see: the cgroup setup, whether the host paths hold what they should (true, false when partly or not, unknown when not checked) and where new processes are learnt from.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1.0).encode(me.encode_family(&labels.as_slice())?)
    }

    fn encode_security(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((source, c)) = *self
            .stats
            .security
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        else {
            return Ok(());
        };
        let me = enc.encode_descriptor(
            "collector_security_exec_source",
            "1 for where new processes are learnt from: process_events (every exec, as it happens), polling (the walks on the process interval, which miss shorter processes) or off.",
            None,
            MetricType::Gauge,
        )?;
        let mut me = me;
        ConstGauge::new(1.0).encode(me.encode_family(&[("source", source.name())].as_slice())?)?;
        for (name, help, v) in [
            ("collector_security_execs", "Exec events received from the kernel.", c.execs),
            ("collector_security_execs_examined", "Execs whose process was looked at and judged.", c.examined),
            ("collector_security_execs_rate_limited", "Execs not looked at: over their container's rate (counted as started only).", c.rate_limited),
            ("collector_security_execs_gone", "Execs whose process had exited before it could be looked at.", c.gone),
            ("collector_security_execs_dropped", "Exec records dropped: the queue to the sweeps was full, or their cgroup was never followed.", c.dropped),
            ("collector_security_event_overruns", "Times the kernel's process event queue overflowed and events were lost.", c.overruns),
            ("collector_security_findings_unreported", "Findings counted but not made events (over the per-container limit of a sweep).", c.unreported),
        ] {
            let me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v as f64).encode(me)?;
        }
        Ok(())
    }

    fn encode_events_and_runtimes(
        &self,
        enc: &mut DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let counts = self.events.counts();
        if !counts.is_empty() {
            let mut me = enc.encode_descriptor(
                "container_events",
                "Events seen: started, stopped, oom_kill, policy_violation and each security finding kind (by runtime and image).",
                None,
                MetricType::Counter,
            )?;
            for ((event, runtime, image), n) in &counts {
                let mut labels: Vec<(&str, &str)> = vec![("event", event.as_str())];
                if !runtime.is_empty() {
                    labels.push(("runtime", runtime.as_str()));
                }
                if !image.is_empty() {
                    labels.push(("image", image.as_str()));
                }
                ConstCounter::new(*n as f64).encode(me.encode_family(&labels.as_slice())?)?;
            }
        }
        let violations = self.violations.get();
        if !violations.is_empty() {
            let mut me = enc.encode_descriptor(
                "container_policy_violation",
                "1 for each running container outside the policy file (allowed images and names).",
                None,
                MetricType::Gauge,
            )?;
            for v in &violations {
                let labels = [
                    ("id", v.id.as_str()),
                    ("name", v.name.as_str()),
                    ("image", v.image.as_str()),
                    ("reason", v.reason.as_str()),
                ];
                let labels: Vec<(&str, &str)> =
                    labels.into_iter().filter(|(_, x)| !x.is_empty()).collect();
                ConstGauge::new(1.0).encode(me.encode_family(&labels.as_slice())?)?;
            }
        }
        let criticals = self.criticals.get();
        if !criticals.is_empty() {
            let mut me = enc.encode_descriptor(
                "container_critical",
                "1 for each container running a component critical to the cluster (--containers.critical), labelled with the component.",
                None,
                MetricType::Gauge,
            )?;
            for c in &criticals {
                let labels = [
                    ("component", c.component.as_str()),
                    ("id", c.id.as_str()),
                    ("name", c.name.as_str()),
                    ("image", c.image.as_str()),
                    ("namespace", c.namespace.as_str()),
                    ("pod", c.pod.as_str()),
                    ("container", c.container.as_str()),
                ];
                let labels: Vec<(&str, &str)> =
                    labels.into_iter().filter(|(_, x)| !x.is_empty()).collect();
                ConstGauge::new(1.0).encode(me.encode_family(&labels.as_slice())?)?;
            }
        }
        if let Some(p) = &self.runtimes {
            let status = p.status();
            if !status.is_empty() {
                let mut me = enc.encode_descriptor(
                    "collector_runtime_up",
                    "1 while the container runtime's API answers.",
                    None,
                    MetricType::Gauge,
                )?;
                for st in &status {
                    let name = format!("{:?}", st.source).to_lowercase();
                    let labels = [("runtime", name.as_str())];
                    ConstGauge::new(if st.up { 1.0 } else { 0.0 })
                        .encode(me.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
