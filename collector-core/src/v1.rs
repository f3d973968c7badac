//! cgroup v1 files (Documentation/admin-guide/cgroup-v1/). Each controller has its own
//! directory for the same cgroup; a controller that is not mounted is simply not read.

use crate::dirs::CgDirs;
use crate::hierarchy::Controller;
use crate::parse;
use crate::read::{Dir, Reader};
use crate::stats::{ContainerStats, CpuStats, DeviceIo, MemoryStats};

/// Which of the optional files a read takes in. Every file costs an open and a read, so the
/// rarely changing and the rarely wanted ones are left out when they can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// `cpuacct.usage_percpu`.
    pub per_cpu: bool,
    /// `cpuacct.usage`: not needed when the hybrid twin's `cpu.stat` gives the usage.
    pub cpu_usage: bool,
    /// `cpuacct.stat`: not needed when the hybrid twin's `cpu.stat` gives exact user/system.
    pub cpu_times: bool,
}

/// The figures that move whenever the container does anything: CPU time, memory usage and
/// the number of tasks.
pub fn read_probe(r: &mut Reader, d: &CgDirs, user_hz: u64, want: Want, s: &mut ContainerStats) {
    if let Some(dir) = d.v1(Controller::Cpuacct) {
        let dir: Dir = dir.into();
        if want.cpu_usage {
            s.cpu.usage_ns = r.u64(dir, "cpuacct.usage");
        }
        if want.cpu_times {
            let ns_per_tick = 1_000_000_000 / user_hz.max(1);
            let cpu = &mut s.cpu;
            r.flat_keyed(dir, "cpuacct.stat", |k, v| match k {
                "user" => cpu.user_ns = Some(v.saturating_mul(ns_per_tick)),
                "system" => cpu.system_ns = Some(v.saturating_mul(ns_per_tick)),
                _ => {}
            });
        }
    }
    if let Some(dir) = d.v1(Controller::Memory) {
        s.memory.usage_bytes = r.u64(dir, "memory.usage_in_bytes");
    }
    if let Some(dir) = d.v1(Controller::Pids) {
        s.pids.current = r.u64(dir, "pids.current");
    }
}

/// Everything `read_probe` does not read but the spec: figures that change only when the
/// container does something.
pub fn read_rest(r: &mut Reader, d: &CgDirs, want: Want, s: &mut ContainerStats) {
    if let (Some(dir), true) = (d.v1(Controller::Cpuacct), want.per_cpu) {
        read_per_cpu(r, dir.into(), &mut s.cpu);
    }
    if let Some(dir) = d.v1(Controller::Cpu) {
        r.flat_keyed(dir, "cpu.stat", |k, v| match k {
            "nr_periods" => s.cpu.nr_periods = Some(v),
            "nr_throttled" => s.cpu.nr_throttled = Some(v),
            "throttled_time" => s.cpu.throttled_ns = Some(v),
            _ => {}
        });
    }
    if let Some(dir) = d.v1(Controller::Memory) {
        read_memory(r, dir.into(), s);
    }
    if let Some(dir) = d.v1(Controller::Blkio) {
        read_blkio(r, dir.into(), &mut s.blkio);
    }
}

/// Limits and shares: they change only when the container is updated.
pub fn read_spec(r: &mut Reader, d: &CgDirs, s: &mut ContainerStats) {
    if let Some(dir) = d.v1(Controller::Cpu) {
        let dir: Dir = dir.into();
        s.spec.cpu_shares = r.u64(dir, "cpu.shares");
        s.spec.cpu_quota_us = r.limit(dir, "cpu.cfs_quota_us").flatten();
        s.spec.cpu_period_us = r.u64(dir, "cpu.cfs_period_us");
    }
    if let Some(dir) = d.v1(Controller::Cpuset) {
        r.string_into(dir, "cpuset.cpus", &mut s.spec.cpuset_cpus);
        r.string_into(dir, "cpuset.mems", &mut s.spec.cpuset_mems);
    }
    if let Some(dir) = d.v1(Controller::Memory) {
        let dir: Dir = dir.into();
        s.spec.memory_limit_bytes = r.limit(dir, "memory.limit_in_bytes").flatten();
        s.spec.memory_reservation_bytes = r.limit(dir, "memory.soft_limit_in_bytes").flatten();
        s.spec.memory_swap_limit_bytes = r.limit(dir, "memory.memsw.limit_in_bytes").flatten();
    }
    if let Some(dir) = d.v1(Controller::Pids) {
        s.spec.pids_limit = r.limit(dir, "pids.max").flatten();
    }
}

fn read_per_cpu(r: &mut Reader, dir: Dir<'_>, cpu: &mut CpuStats) {
    let mut per_cpu = std::mem::take(&mut cpu.per_cpu_ns);
    per_cpu.clear();
    if r.parsed(dir, "cpuacct.usage_percpu", |t| {
        parse::u64_list(t, &mut per_cpu)
    })
    .is_none()
    {
        per_cpu.clear();
    }
    cpu.per_cpu_ns = per_cpu;
}

fn read_memory(r: &mut Reader, dir: Dir<'_>, s: &mut ContainerStats) {
    // The usage came with `read_probe`.
    let m = &mut s.memory;
    m.max_usage_bytes = r.u64(dir, "memory.max_usage_in_bytes");
    m.failcnt = r.u64(dir, "memory.failcnt");
    m.kernel_bytes = r.u64(dir, "memory.kmem.usage_in_bytes");
    read_memory_stat(r, dir, m);
    r.flat_keyed(dir, "memory.oom_control", |k, v| {
        if k == "oom_kill" {
            m.events.oom_kill = Some(v)
        }
    });
    m.working_set_bytes = crate::stats::working_set(m.usage_bytes, m.inactive_file_bytes);
}

/// The hierarchical (`total_*`) keys, which include descendants as v2's figures do.
fn read_memory_stat(r: &mut Reader, dir: Dir<'_>, m: &mut MemoryStats) {
    r.flat_keyed(dir, "memory.stat", |k, v| {
        let Some(k) = k.strip_prefix("total_") else {
            return;
        };
        let slot = match k {
            "rss" => &mut m.rss_bytes,
            "cache" => &mut m.cache_bytes,
            "mapped_file" => &mut m.mapped_file_bytes,
            "shmem" => &mut m.shmem_bytes,
            "dirty" => &mut m.dirty_bytes,
            "writeback" => &mut m.writeback_bytes,
            "active_anon" => &mut m.active_anon_bytes,
            "inactive_anon" => &mut m.inactive_anon_bytes,
            "active_file" => &mut m.active_file_bytes,
            "inactive_file" => &mut m.inactive_file_bytes,
            "unevictable" => &mut m.unevictable_bytes,
            // Present with swap accounting, as the memsw files are: what memsw.usage less
            // usage would give, without reading another file.
            "swap" => &mut m.swap_bytes,
            "pgfault" => &mut m.pgfault,
            "pgmajfault" => &mut m.pgmajfault,
            _ => return,
        };
        *slot = Some(v);
    });
}

/// `blkio.throttle.io_service_bytes_recursive` and `io_serviced_recursive`: the only blkio files
/// that count IO under every IO scheduler (the CFQ ones are gone from current kernels).
fn read_blkio(r: &mut Reader, dir: Dir<'_>, out: &mut Vec<DeviceIo>) {
    out.clear();
    for (file, bytes) in [
        ("blkio.throttle.io_service_bytes_recursive", true),
        ("blkio.throttle.io_serviced_recursive", false),
    ] {
        let Some(text) = r.read(dir, file) else {
            continue;
        };
        let res = parse::blkio_v1(text, |major, minor, op, v| {
            let i = match out
                .iter()
                .position(|d| d.major == major && d.minor == minor)
            {
                Some(i) => i,
                None => {
                    out.push(DeviceIo {
                        major,
                        minor,
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let d = &mut out[i];
            match (op, bytes) {
                ("Read", true) => d.read_bytes = v,
                ("Write", true) => d.write_bytes = v,
                ("Discard", true) => d.discard_bytes = Some(v),
                ("Read", false) => d.reads = v,
                ("Write", false) => d.writes = v,
                ("Discard", false) => d.discards = Some(v),
                _ => {}
            }
        });
        if let Err(reason) = res {
            r.parse_error(reason);
        }
    }
}
