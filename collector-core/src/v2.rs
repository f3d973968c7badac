//! cgroup v2 files (Documentation/admin-guide/cgroup-v2.rst). Also used for the `unified` twin
//! of a hybrid host, which has `cpu.stat` and the PSI files but no controllers.

use crate::parse;
use crate::read::{Dir, Reader};
use crate::stats::{ContainerStats, CpuStats, DeviceIo, MemoryStats, PressureStats};

/// The figures that move whenever the container does anything: `cpu.stat` (CPU time and
/// throttling), `memory.current` and `pids.current`.
pub fn read_probe(r: &mut Reader, dir: Dir<'_>, s: &mut ContainerStats) {
    read_cpu(r, dir, &mut s.cpu);
    s.memory.usage_bytes = r.u64(dir, "memory.current");
    s.pids.current = r.u64(dir, "pids.current");
}

/// Everything `read_probe` does not read but the spec: figures that change only when the
/// container does something.
pub fn read_rest(r: &mut Reader, dir: Dir<'_>, s: &mut ContainerStats) {
    read_memory(r, dir, s);
    read_io(r, dir, &mut s.blkio);
    read_pressure(r, dir, &mut s.pressure);
}

/// Limits and shares: they change only when the container is updated.
pub fn read_spec(r: &mut Reader, dir: Dir<'_>, s: &mut ContainerStats) {
    read_cpu_spec(r, dir, s);
    s.spec.memory_limit_bytes = r.limit(dir, "memory.max").flatten();
    s.spec.memory_high_bytes = r.limit(dir, "memory.high").flatten();
    // memory.low of 0 means no protection: report it as unset, like an absent reservation.
    s.spec.memory_reservation_bytes = r.limit(dir, "memory.low").flatten().filter(|&v| v > 0);
    s.spec.memory_swap_limit_bytes = r.limit(dir, "memory.swap.max").flatten();
    s.spec.pids_limit = r.limit(dir, "pids.max").flatten();
}

/// `cpu.stat`: usage, user and system in microseconds, CFS throttling.
pub fn read_cpu(r: &mut Reader, dir: Dir<'_>, cpu: &mut CpuStats) {
    r.flat_keyed(dir, "cpu.stat", |k, v| match k {
        "usage_usec" => cpu.usage_ns = Some(v.saturating_mul(1000)),
        "user_usec" => cpu.user_ns = Some(v.saturating_mul(1000)),
        "system_usec" => cpu.system_ns = Some(v.saturating_mul(1000)),
        "nr_periods" => cpu.nr_periods = Some(v),
        "nr_throttled" => cpu.nr_throttled = Some(v),
        "throttled_usec" => cpu.throttled_ns = Some(v.saturating_mul(1000)),
        _ => {}
    });
}

fn read_cpu_spec(r: &mut Reader, dir: Dir<'_>, s: &mut ContainerStats) {
    if let Some((quota, period)) = r.parsed(dir, "cpu.max", parse::cpu_max) {
        s.spec.cpu_quota_us = quota;
        s.spec.cpu_period_us = Some(period);
    }
    if let Some(w) = r.u64(dir, "cpu.weight") {
        s.spec.cpu_weight = Some(w);
        s.spec.cpu_shares = Some(weight_to_shares(w));
    }
    r.string_into(dir, "cpuset.cpus.effective", &mut s.spec.cpuset_cpus);
    r.string_into(dir, "cpuset.mems.effective", &mut s.spec.cpuset_mems);
}

/// The inverse of runc's shares -> weight conversion, as cAdvisor reports v2 shares.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.clamp(1, 10_000) - 1) * 262_142 / 9_999
}

fn read_memory(r: &mut Reader, dir: Dir<'_>, s: &mut ContainerStats) {
    // The usage came with `read_probe`.
    let m = &mut s.memory;
    m.max_usage_bytes = r.u64(dir, "memory.peak");
    read_memory_stat(r, dir, m);
    r.flat_keyed(dir, "memory.events", |k, v| match k {
        "low" => m.events.low = Some(v),
        "high" => m.events.high = Some(v),
        "max" => m.events.max = Some(v),
        "oom" => m.events.oom = Some(v),
        "oom_kill" => m.events.oom_kill = Some(v),
        _ => {}
    });
    m.swap_bytes = r.u64(dir, "memory.swap.current");
    m.working_set_bytes = crate::stats::working_set(m.usage_bytes, m.inactive_file_bytes);
}

fn read_memory_stat(r: &mut Reader, dir: Dir<'_>, m: &mut MemoryStats) {
    r.flat_keyed(dir, "memory.stat", |k, v| {
        let slot = match k {
            "anon" => &mut m.rss_bytes,
            "file" => &mut m.cache_bytes,
            "file_mapped" => &mut m.mapped_file_bytes,
            "shmem" => &mut m.shmem_bytes,
            "file_dirty" => &mut m.dirty_bytes,
            "file_writeback" => &mut m.writeback_bytes,
            "active_anon" => &mut m.active_anon_bytes,
            "inactive_anon" => &mut m.inactive_anon_bytes,
            "active_file" => &mut m.active_file_bytes,
            "inactive_file" => &mut m.inactive_file_bytes,
            "unevictable" => &mut m.unevictable_bytes,
            "kernel" => &mut m.kernel_bytes,
            "pgfault" => &mut m.pgfault,
            "pgmajfault" => &mut m.pgmajfault,
            _ => return,
        };
        *slot = Some(v);
    });
}

/// `io.stat`. A row without all four of rbytes, wbytes, rios and wios is one the kernel is
/// still setting up: it is skipped, not read as zeros.
pub fn read_io(r: &mut Reader, dir: Dir<'_>, out: &mut Vec<DeviceIo>) {
    out.clear();
    let Some(text) = r.read(dir, "io.stat") else {
        return;
    };
    let res = parse::nested_keyed(text, |major, minor, pairs| {
        let mut d = DeviceIo {
            major,
            minor,
            ..Default::default()
        };
        let mut seen = 0u8;
        for (k, v) in pairs {
            match k {
                "rbytes" => (d.read_bytes, seen) = (v, seen | 1),
                "wbytes" => (d.write_bytes, seen) = (v, seen | 2),
                "rios" => (d.reads, seen) = (v, seen | 4),
                "wios" => (d.writes, seen) = (v, seen | 8),
                "dbytes" => d.discard_bytes = Some(v),
                "dios" => d.discards = Some(v),
                _ => {}
            }
        }
        if seen == 15 {
            out.push(d);
        }
    });
    if let Err(reason) = res {
        r.parse_error(reason);
    }
}

/// The three PSI files, where present.
pub fn read_pressure(r: &mut Reader, dir: Dir<'_>, p: &mut PressureStats) {
    p.cpu = r.parsed(dir, "cpu.pressure", parse::psi);
    p.memory = r.parsed(dir, "memory.pressure", parse::psi);
    p.io = r.parsed(dir, "io.pressure", parse::psi);
}
