//! Every family of the exposition, in order, written to an [`Out`]: one list for both writers.

use std::fmt::Error as FmtError;

use super::{Kind, Out, Value, Value::Float, Value::Int};
use crate::collector::{Container, Snapshot};
use crate::machine::MachineStats;
use crate::stats::{DeviceIo, Direction, FsStats, InterfaceStats, NetworkStatus, Psi};

const NS_PER_S: f64 = 1e9;

/// One value of a container with an extra label (if any).
type Sample = (Option<(&'static str, &'static str)>, Value);

type Result = std::result::Result<(), FmtError>;

/// Writes the snapshot's families.
pub(crate) fn write(out: &mut dyn Out, snap: &Snapshot) -> Result {
    let mut fam = Families { out, snap };
    use Kind::{Counter as C, Gauge as G};

    let ns = |v: Option<u64>| v.map(|v| Float(v as f64 / NS_PER_S));
    let f = |v: Option<u64>| v.map(Int);

    fam.cpu_usage()?;
    fam.simple(
        "container_cpu_user_seconds",
        "Cumulative user CPU time consumed, in seconds.",
        C,
        |c| ns(c.stats.cpu.user_ns),
    )?;
    fam.simple(
        "container_cpu_system_seconds",
        "Cumulative system CPU time consumed, in seconds.",
        C,
        |c| ns(c.stats.cpu.system_ns),
    )?;
    fam.simple(
        "container_cpu_cfs_periods",
        "Number of elapsed enforcement period intervals.",
        C,
        |c| f(c.stats.cpu.nr_periods).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
    )?;
    fam.simple(
        "container_cpu_cfs_throttled_periods",
        "Number of throttled period intervals.",
        C,
        |c| f(c.stats.cpu.nr_throttled).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
    )?;
    fam.simple(
        "container_cpu_cfs_throttled_seconds",
        "Total time duration the container has been throttled, in seconds.",
        C,
        |c| ns(c.stats.cpu.throttled_ns).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
    )?;
    fam.simple(
        "container_cpu_load_average_10s",
        "Value of container cpu load average over the last 10 seconds (runnable tasks).",
        G,
        |c| c.stats.load.map(|l| Float(l.load_average_10s)),
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
                    out.push((Some(("state", s)), Int(v)));
                }
            }
        },
    )?;

    fam.simple(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        G,
        |c| f(c.stats.memory.usage_bytes),
    )?;
    fam.simple(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        G,
        |c| f(c.stats.memory.working_set_bytes),
    )?;
    fam.simple("container_memory_rss", "Size of RSS in bytes.", G, |c| {
        f(c.stats.memory.rss_bytes)
    })?;
    fam.simple(
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        G,
        |c| f(c.stats.memory.cache_bytes),
    )?;
    fam.simple(
        "container_memory_swap",
        "Container swap usage in bytes.",
        G,
        |c| f(c.stats.memory.swap_bytes),
    )?;
    fam.simple(
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        G,
        |c| f(c.stats.memory.mapped_file_bytes),
    )?;
    fam.simple(
        "container_memory_kernel_usage",
        "Size of kernel memory allocated in bytes.",
        G,
        |c| f(c.stats.memory.kernel_bytes),
    )?;
    fam.simple(
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes.",
        G,
        |c| f(c.stats.memory.max_usage_bytes),
    )?;
    // Typed gauge so the sample keeps cAdvisor's exact name: as a counter the encoders
    // would add `_total`, and dashboards query `container_memory_failcnt`.
    fam.simple(
        "container_memory_failcnt",
        "Number of memory usage hits limits.",
        G,
        |c| f(c.stats.memory.failcnt),
    )?;
    fam.multi(
        "container_memory_failures",
        "Cumulative count of memory allocation failures.",
        C,
        |c, out| {
            // memory.stat's hierarchical figures (v1 total_*, and all of v2's).
            if let Some(v) = c.stats.memory.pgfault {
                out.push((Some(("failure_type", "pgfault")), Int(v)));
            }
            if let Some(v) = c.stats.memory.pgmajfault {
                out.push((Some(("failure_type", "pgmajfault")), Int(v)));
            }
        },
    )?;
    fam.simple(
        "container_oom_events",
        "Count of out of memory events observed for the container.",
        C,
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
        |c| f(c.stats.pids.current),
    )?;
    fam.simple(
        "container_threads_max",
        "Maximum number of threads allowed inside the container (absent when unlimited).",
        G,
        |c| f(c.stats.pids.limit),
    )?;
    // One series per state, labelled `tcp_state` or `udp_state`.
    fn states<I>(label: &'static str, counts: Option<I>, out: &mut Vec<Sample>)
    where
        I: IntoIterator<Item = (&'static str, u64)>,
    {
        for (state, v) in counts.into_iter().flatten() {
            out.push((Some((label, state)), Int(v)));
        }
    }
    fn so(c: &Container) -> &crate::stats::SocketStats {
        &c.stats.sockets
    }
    fam.multi(
        "container_network_tcp_usage_total",
        "TCP sockets of the container's network namespace, by state.",
        G,
        |c, out| states("tcp_state", so(c).tcp.as_ref().map(|t| t.labeled()), out),
    )?;
    fam.multi(
        "container_network_tcp6_usage_total",
        "TCP over IPv6 sockets of the container's network namespace, by state.",
        G,
        |c, out| states("tcp_state", so(c).tcp6.as_ref().map(|t| t.labeled()), out),
    )?;
    fam.multi(
        "container_network_udp_usage_total",
        "UDP sockets of the container's network namespace (listen), their drops and queued bytes.",
        G,
        |c, out| states("udp_state", so(c).udp.as_ref().map(|u| u.labeled()), out),
    )?;
    fam.multi(
        "container_network_udp6_usage_total",
        "UDP over IPv6 sockets of the container's network namespace, their drops and queued bytes.",
        G,
        |c, out| states("udp_state", so(c).udp6.as_ref().map(|u| u.labeled()), out),
    )?;
    fam.simple(
        "container_processes",
        "Number of processes running inside the container.",
        G,
        |c| f(c.stats.processes.count),
    )?;
    fam.simple(
        "container_file_descriptors",
        "Number of open file descriptors for the container.",
        G,
        |c| f(c.stats.processes.fds),
    )?;
    fam.simple(
        "container_sockets",
        "Number of open sockets for the container.",
        G,
        |c| f(c.stats.processes.sockets),
    )?;
    fam.multi(
        "container_ulimits_soft",
        "Soft ulimit values for the container's first process (absent when unlimited).",
        G,
        |c, out| {
            if let Some(v) = c.stats.processes.max_open_files {
                out.push((Some(("ulimit", "max_open_files")), Int(v)));
            }
        },
    )?;
    fam.simple(
        "container_processes_started",
        "Programs started in the container since the collector began following it (execs, and processes found new).",
        C,
        |c| f(c.stats.security.processes_started),
    )?;
    fam.multi(
        "container_security_findings",
        "Security findings in the container since the collector began following it, by kind.",
        C,
        |c, out| {
            states(
                "kind",
                c.stats.security.findings.as_ref().map(|x| x.labeled()),
                out,
            )
        },
    )?;

    fam.peers()?;
    fam.multi(
        "container_network_new_peers",
        "Peers (address, port and direction) first met after the container's learning window, by scope.",
        C,
        |c, out| {
            states(
                "scope",
                c.stats.peers.new_total.as_ref().map(|x| x.labeled()),
                out,
            )
        },
    )?;

    let some = |x: Option<Psi>| x.map(|x| Float(x.some.total_us as f64 / 1e6));
    let full = |x: Option<Psi>| {
        x.and_then(|x| x.full)
            .map(|x| Float(x.total_us as f64 / 1e6))
    };
    fam.simple(
        "container_pressure_cpu_waiting_seconds",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        C,
        |c| some(c.stats.pressure.cpu),
    )?;
    fam.simple(
        "container_pressure_cpu_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        C,
        |c| full(c.stats.pressure.cpu),
    )?;
    fam.simple(
        "container_pressure_memory_waiting_seconds",
        "Total time duration tasks in the container have waited due to memory congestion.",
        C,
        |c| some(c.stats.pressure.memory),
    )?;
    fam.simple("container_pressure_memory_stalled_seconds", "Total time duration no tasks in the container could make progress due to memory congestion.", C, |c| full(c.stats.pressure.memory))?;
    fam.simple(
        "container_pressure_io_waiting_seconds",
        "Total time duration tasks in the container have waited due to IO congestion.",
        C,
        |c| some(c.stats.pressure.io),
    )?;
    fam.simple(
        "container_pressure_io_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        C,
        |c| full(c.stats.pressure.io),
    )?;

    fam.simple(
        "container_spec_cpu_shares",
        "CPU share of the container.",
        G,
        |c| f(c.stats.spec.cpu_shares),
    )?;
    fam.simple(
        "container_spec_cpu_quota",
        "CPU quota of the container (absent when unlimited).",
        G,
        |c| f(c.stats.spec.cpu_quota_us),
    )?;
    fam.simple(
        "container_spec_cpu_period",
        "CPU period of the container.",
        G,
        |c| f(c.stats.spec.cpu_period_us).filter(|_| c.stats.spec.cpu_quota_us.is_some()),
    )?;
    fam.simple(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container (absent when unlimited).",
        G,
        |c| f(c.stats.spec.memory_limit_bytes),
    )?;
    fam.simple(
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container (absent when unset).",
        G,
        |c| f(c.stats.spec.memory_reservation_bytes),
    )?;
    fam.simple(
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container (absent when unlimited).",
        G,
        |c| f(c.stats.spec.memory_swap_limit_bytes),
    )?;

    let seen = Float(snap.timestamp_ms as f64 / 1e3);
    fam.simple(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        G,
        |c| c.created_ms.map(|ms| Float(ms as f64 / 1e3)),
    )?;
    fam.simple(
        "container_last_seen",
        "Last time a container was seen by the exporter.",
        G,
        |_| Some(seen),
    )?;

    // The writable layer, measured in the background: the last good value and its age.
    fam.layer(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        G,
        |l| Some(Int(l.usage_bytes)),
    )?;
    fam.layer(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        G,
        |l| l.limit_bytes.map(Int),
    )?;
    // cAdvisor's container_fs_inodes_total is a gauge, which promtool rejects for its
    // `_total`. Typed as a counter here, the sample keeps cAdvisor's name (the encoder
    // adds `_total`); the value only changes when the filesystem is resized.
    fam.layer(
        "container_fs_inodes",
        "Number of Inodes (the backing filesystem's).",
        C,
        |l| l.inodes_total.map(Int),
    )?;
    fam.layer(
        "container_fs_inodes_free",
        "Number of available Inodes.",
        G,
        |l| l.inodes_free.map(Int),
    )?;
    fam.layer(
        "container_fs_inodes_used",
        "Number of inodes in the container's writable layer.",
        G,
        |l| Some(Int(l.inodes_used)),
    )?;
    fam.layer(
        "container_fs_usage_age_seconds",
        "Age of the writable layer measurement that container_fs_usage_bytes reports.",
        G,
        |l| Some(Float(l.age_ms as f64 / 1e3)),
    )?;

    write_machine(fam.out, &snap.machine)
}

/// The machine's size, topology, CPU modes, filesystems, disks and pressure (labels as node
/// exporter's where cAdvisor has no such series; `device` as for block IO).
fn write_machine(out: &mut dyn Out, mach: &MachineStats) -> Result {
    // Every machine series names the machine and its boot, as cAdvisor's do.
    let ids: Vec<(&str, &str)> = mach.identity.labels().collect();
    use Kind::{Counter as C, Gauge as G};
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
            out.family(name, help, G, &mut |s| s.plain(&with(&ids, &[]), Int(v)))?;
        }
    }
    if let Some(t) = &mach.cpu_time {
        out.family(
            "machine_cpu_seconds",
            "Seconds all CPUs spent in each mode since boot (/proc/stat).",
            C,
            &mut |s| {
                for (mode, ns) in t.modes() {
                    s.plain(&with(&ids, &[("mode", mode)]), Float(ns as f64 / NS_PER_S))?;
                }
                Ok(())
            },
        )?;
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
            out.family(name, help, G, &mut |s| {
                for (f, dev) in fs.iter().zip(&labels) {
                    if let Some(v) = value(f) {
                        let l = [
                            ("device", dev.as_str()),
                            ("mountpoint", f.mountpoint.as_str()),
                            ("fstype", f.fstype.as_str()),
                        ];
                        s.plain(&with(&ids, &l), Int(v))?;
                    }
                }
                Ok(())
            })?;
        }
    }

    let disks = &mach.disks;
    if !disks.is_empty() {
        let labels: Vec<String> = disks.iter().map(|d| format!("/dev/{}", d.name)).collect();
        type DiskValue = fn(&crate::machine::Disk) -> Value;
        let families: [(&str, &str, Kind, DiskValue); 6] = [
            (
                "machine_disk_reads_completed",
                "Reads completed successfully.",
                C,
                |d| Int(d.reads_completed),
            ),
            (
                "machine_disk_writes_completed",
                "Writes completed successfully.",
                C,
                |d| Int(d.writes_completed),
            ),
            (
                "machine_disk_read_bytes",
                "Bytes read successfully.",
                C,
                |d| Int(d.read_bytes),
            ),
            (
                "machine_disk_written_bytes",
                "Bytes written successfully.",
                C,
                |d| Int(d.written_bytes),
            ),
            (
                "machine_disk_io_time_seconds",
                "Seconds the device had IO in flight.",
                C,
                |d| Float(d.io_time_ms as f64 / 1e3),
            ),
            ("machine_disk_io_now", "IOs in flight now.", G, |d| {
                Int(d.io_in_progress)
            }),
        ];
        for (name, help, kind, value) in families {
            out.family(name, help, kind, &mut |s| {
                for (d, dev) in disks.iter().zip(&labels) {
                    s.plain(&with(&ids, &[("device", dev.as_str())]), value(d))?;
                }
                Ok(())
            })?;
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
            out.family(&name, &help, C, &mut |s| {
                s.plain(&with(&ids, &[]), Float(line.total_us as f64 / 1e6))
            })?;
        }
    }
    Ok(())
}

/// The machine's identity labels, then a series' own.
fn with<'a>(ids: &[(&'a str, &'a str)], own: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    ids.iter().chain(own).copied().collect()
}

/// The interfaces of a container that has its own network namespace.
fn c_net(c: &Container) -> &[InterfaceStats] {
    if c.stats.network.status == NetworkStatus::Own {
        &c.stats.network.interfaces
    } else {
        &[]
    }
}

/// `/dev/<name>`, or `major:minor` when the name is unknown (as cAdvisor labels devices).
fn device_label(dev: &mut String, name: Option<&str>, major: u32, minor: u32) {
    use std::fmt::Write;
    dev.clear();
    match name {
        Some(n) => {
            dev.push_str("/dev/");
            dev.push_str(n);
        }
        None => {
            let _ = write!(dev, "{major}:{minor}");
        }
    }
}

struct Families<'a> {
    out: &'a mut dyn Out,
    snap: &'a Snapshot,
}

impl Families<'_> {
    /// `container_cpu_usage_seconds_total`, as cAdvisor serves it: where per-CPU usage was
    /// read, one series per CPU that has run the container (`cpu="cpu00"`, ...) and no total;
    /// else `cpu="total"`. So a sum over the family never counts a CPU twice.
    fn cpu_usage(&mut self) -> Result {
        let cs = &self.snap.containers;
        if !cs.iter().any(|c| c.stats.cpu.usage_ns.is_some()) {
            return Ok(());
        }
        let cpus = cs
            .iter()
            .map(|c| c.stats.cpu.per_cpu_ns.len())
            .max()
            .unwrap_or(0);
        let names: Vec<String> = (0..cpus).map(|i| format!("cpu{i:02}")).collect();
        self.out.family(
            "container_cpu_usage_seconds",
            "Cumulative CPU time consumed, in seconds.",
            Kind::Counter,
            &mut |s| {
                for (i, c) in cs.iter().enumerate() {
                    let cpu = &c.stats.cpu;
                    if cpu.per_cpu_ns.is_empty() {
                        if let Some(v) = cpu.usage_ns {
                            s.container(i, &[("cpu", "total")], Float(v as f64 / NS_PER_S))?;
                        }
                        continue;
                    }
                    for (v, name) in cpu.per_cpu_ns.iter().zip(&names) {
                        if *v > 0 {
                            s.container(i, &[("cpu", name)], Float(*v as f64 / NS_PER_S))?;
                        }
                    }
                }
                Ok(())
            },
        )
    }

    /// `container_network_peers{direction,scope}`: distinct peers now.
    fn peers(&mut self) -> Result {
        let cs = &self.snap.containers;
        if !cs.iter().any(|c| c.stats.peers.current.is_some()) {
            return Ok(());
        }
        let help = "Distinct peers (address, port and direction) of the container's TCP connections now, by scope.";
        self.out
            .family("container_network_peers", help, Kind::Gauge, &mut |s| {
                for (i, c) in cs.iter().enumerate() {
                    let Some(p) = &c.stats.peers.current else {
                        continue;
                    };
                    for d in Direction::ALL {
                        for (scope, v) in p.of(d).labeled() {
                            s.container(i, &[("direction", d.name()), ("scope", scope)], Int(v))?;
                        }
                    }
                }
                Ok(())
            })
    }

    /// One value per container.
    fn simple(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        value: impl Fn(&Container) -> Option<Value>,
    ) -> Result {
        let cs = &self.snap.containers;
        if !cs.iter().any(|c| value(c).is_some()) {
            return Ok(());
        }
        self.out.family(name, help, kind, &mut |s| {
            for (i, c) in cs.iter().enumerate() {
                if let Some(v) = value(c) {
                    s.container(i, &[], v)?;
                }
            }
            Ok(())
        })
    }

    /// Several values per container, each with its own extra label.
    fn multi(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        values: impl Fn(&Container, &mut Vec<Sample>),
    ) -> Result {
        let cs = &self.snap.containers;
        let mut buf = Vec::new();
        let any = cs.iter().any(|c| {
            buf.clear();
            values(c, &mut buf);
            !buf.is_empty()
        });
        if !any {
            return Ok(());
        }
        self.out.family(name, help, kind, &mut |s| {
            for (i, c) in cs.iter().enumerate() {
                buf.clear();
                values(c, &mut buf);
                for (extra, v) in &buf {
                    s.container(i, extra.as_slice(), *v)?;
                }
            }
            Ok(())
        })
    }

    /// A network counter per interface.
    fn multi_str(
        &mut self,
        name: &str,
        help: &str,
        value: impl Fn(&InterfaceStats) -> u64,
        ifaces: fn(&Container) -> &[InterfaceStats],
    ) -> Result {
        let cs = &self.snap.containers;
        if !cs.iter().any(|c| !ifaces(c).is_empty()) {
            return Ok(());
        }
        self.out.family(name, help, Kind::Counter, &mut |s| {
            for (i, c) in cs.iter().enumerate() {
                for f in ifaces(c) {
                    s.container(i, &[("interface", &f.name)], Int(value(f)))?;
                }
            }
            Ok(())
        })
    }

    /// A block IO counter per device, labelled `device="/dev/<name>"` as cAdvisor does
    /// (`major:minor` when the name is unknown).
    fn blkio(&mut self, name: &str, help: &str, value: impl Fn(&DeviceIo) -> u64) -> Result {
        let cs = &self.snap.containers;
        if !cs.iter().any(|c| !c.stats.blkio.is_empty()) {
            return Ok(());
        }
        let mut dev = String::new();
        self.out.family(name, help, Kind::Counter, &mut |s| {
            for (i, c) in cs.iter().enumerate() {
                for d in &c.stats.blkio {
                    device_label(&mut dev, d.device.as_deref(), d.major, d.minor);
                    s.container(i, &[("device", &dev)], Int(value(d)))?;
                }
            }
            Ok(())
        })
    }

    /// A writable-layer figure per container, labelled with its backing device like block IO.
    fn layer(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        value: impl Fn(&FsStats) -> Option<Value>,
    ) -> Result {
        let cs = &self.snap.containers;
        let has = |c: &Container| c.stats.fs.as_ref().and_then(&value);
        if !cs.iter().any(|c| has(c).is_some()) {
            return Ok(());
        }
        let mut dev = String::new();
        self.out.family(name, help, kind, &mut |s| {
            for (i, c) in cs.iter().enumerate() {
                let (Some(fs), Some(v)) = (c.stats.fs.as_ref(), has(c)) else {
                    continue;
                };
                device_label(&mut dev, fs.device.as_deref(), fs.major, fs.minor);
                s.container(i, &[("device", &dev)], v)?;
            }
            Ok(())
        })
    }
}
