//! Figures about the machine itself, read each sweep: CPUs and their topology, memory, CPU
//! time by mode (`/proc/stat`), disk IO (`/proc/diskstats`), pressure (`/proc/pressure/*`) and
//! the real filesystems' space and inodes. All under the injectable roots.
//!
//! The parsers are pure functions over `&str` that never panic; a bad line is reported by its
//! number and the good ones are kept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::devices::DeviceNames;
use crate::error::{is_vanished, Error};
use crate::fs::statfs::{self, StatOutcome, TimedStatfs};
use crate::fs::{FsConfig, HostMounts};
use crate::hierarchy::Roots;
use crate::parse::{self, Reason};
use crate::read::Reader;
use crate::stats::PressureStats;

/// Figures about the machine itself, read once per sweep (cAdvisor's `machine_*` series).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineStats {
    /// Online logical CPUs (`<sys_root>/devices/system/cpu/online`, else `processor` rows of
    /// `/proc/cpuinfo`).
    pub cpu_cores: Option<u64>,
    /// Distinct (package, core) pairs of the online CPUs (sysfs topology, else cpuinfo's
    /// `physical id` and `core id`).
    #[serde(default)]
    pub cpu_physical_cores: Option<u64>,
    /// Distinct packages (sockets) of the online CPUs.
    #[serde(default)]
    pub cpu_sockets: Option<u64>,
    /// `MemTotal` of `<proc_root>/meminfo`, in bytes.
    pub memory_bytes: Option<u64>,
    /// `SwapTotal`, in bytes.
    pub swap_bytes: Option<u64>,
    /// Time all CPUs spent in each mode since boot (`cpu` row of `/proc/stat`).
    #[serde(default)]
    pub cpu_time: Option<CpuTime>,
    /// Real filesystems (pseudo filesystems skipped), one per device.
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    /// Block devices from `/proc/diskstats` that have done any IO since boot.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// Host-wide pressure stall information (`/proc/pressure/{cpu,memory,io}`).
    #[serde(default)]
    pub pressure: PressureStats,
    /// Which machine, and which boot of it, as cAdvisor labels its machine series.
    #[serde(default)]
    pub identity: MachineIdentity,
}

/// What tells machines (and boots) apart in a fleet; `None` where the host does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineIdentity {
    /// `<proc_root>/sys/kernel/random/boot_id`: new at every boot, so a change marks a reboot.
    pub boot_id: Option<String>,
    /// `/etc/machine-id` (else `/var/lib/dbus/machine-id`) under the host's root.
    pub machine_id: Option<String>,
    /// The firmware's product UUID (`<sys_root>/class/dmi/id/product_uuid`, readable by root),
    /// else, as cAdvisor takes it, the device tree's system id (POWER) or the machine id.
    pub system_uuid: Option<String>,
}

impl MachineIdentity {
    /// Reads what is not known yet: these do not change while the machine runs, and a file
    /// that is absent (no DMI in a VM, no machine-id in a minimal image) is asked again at the
    /// next sweep, one failed open each.
    fn fill(&mut self, roots: &Roots, rootfs: &Path) {
        let first = |paths: &[PathBuf]| {
            paths.iter().find_map(|p| {
                let v = std::fs::read_to_string(p).ok()?;
                // Device-tree properties end in a NUL.
                let v = v.trim_matches(|c: char| c.is_whitespace() || c == '\0');
                (!v.is_empty()).then(|| v.to_string())
            })
        };
        if self.boot_id.is_none() {
            self.boot_id = first(&[roots.proc_root.join("sys/kernel/random/boot_id")]);
        }
        if self.machine_id.is_none() {
            self.machine_id = first(&[
                rootfs.join("etc/machine-id"),
                rootfs.join("var/lib/dbus/machine-id"),
            ]);
        }
        if self.system_uuid.is_none() {
            self.system_uuid = first(&[
                roots.sys_root.join("class/dmi/id/product_uuid"),
                roots.proc_root.join("device-tree/system-id"),
                roots.proc_root.join("device-tree/vm,uuid"),
                rootfs.join("etc/machine-id"),
            ]);
        }
    }

    /// (label, value) of those known, in cAdvisor's label names.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("boot_id", &self.boot_id),
            ("machine_id", &self.machine_id),
            ("system_uuid", &self.system_uuid),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

/// CPU time by mode, in nanoseconds (USER_HZ ticks converted). Modes a kernel does not report
/// (older kernels lack steal) are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTime {
    /// Time in user mode, guest time included (`/proc/stat` `cpu` row).
    pub user_ns: u64,
    /// Time in user mode at lowered priority, guest nice time included.
    pub nice_ns: u64,
    /// Time in kernel mode.
    pub system_ns: u64,
    /// Time idle.
    pub idle_ns: u64,
    /// Time idle while IO was outstanding; `None` where the kernel does not report it.
    pub iowait_ns: Option<u64>,
    /// Time serving hardware interrupts; `None` where the kernel does not report it.
    pub irq_ns: Option<u64>,
    /// Time serving softirqs; `None` where the kernel does not report it.
    pub softirq_ns: Option<u64>,
    /// Time stolen by the hypervisor; `None` on older kernels.
    pub steal_ns: Option<u64>,
}

impl CpuTime {
    /// (mode, ns) for every mode the kernel reported, in `/proc/stat` order.
    pub fn modes(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("user", Some(self.user_ns)),
            ("nice", Some(self.nice_ns)),
            ("system", Some(self.system_ns)),
            ("idle", Some(self.idle_ns)),
            ("iowait", self.iowait_ns),
            ("irq", self.irq_ns),
            ("softirq", self.softirq_ns),
            ("steal", self.steal_ns),
        ]
        .into_iter()
        .filter_map(|(m, v)| Some((m, v?)))
    }
}

/// One mounted filesystem's space and inodes (`statvfs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Major number of its device (mountinfo `major:minor`).
    pub major: u32,
    /// Minor number of its device.
    pub minor: u32,
    /// Kernel name of the block device (`vda`, `loop3`, `dm-0`); `None` for filesystems not
    /// on a block device of their own (network filesystems, btrfs subvolume numbers).
    pub device: Option<String>,
    /// The mount source (`/dev/vda`, `server:/export`).
    pub source: String,
    /// The host path it is mounted at.
    pub mountpoint: String,
    /// Filesystem type from mountinfo (`ext4`, `xfs`, `nfs4`).
    pub fstype: String,
    /// Total size in bytes (`statvfs` blocks times `f_frsize`).
    pub size_bytes: u64,
    /// Free blocks, the root-reserved ones included.
    pub free_bytes: u64,
    /// Free blocks an unprivileged user can take.
    pub avail_bytes: u64,
    /// Inodes; absent where the filesystem has no fixed count (btrfs).
    pub files: Option<u64>,
    /// Free inodes; absent where the filesystem has no fixed count.
    pub files_free: Option<u64>,
    /// Mounted read-only (`statvfs` `ST_RDONLY`).
    pub readonly: bool,
}

impl Filesystem {
    /// The `device` label: `/dev/<kernel name>` as for block IO, else the mount source.
    pub fn label(&self) -> String {
        match &self.device {
            Some(n) => format!("/dev/{n}"),
            None => self.source.clone(),
        }
    }
}

/// One block device's counters from `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Device major number (`/proc/diskstats` column 1).
    pub major: u32,
    /// Device minor number (column 2).
    pub minor: u32,
    /// Kernel name (`vda`, `sda1`, `loop0`).
    pub name: String,
    /// Reads completed (field 1).
    pub reads_completed: u64,
    /// Adjacent reads merged into one (field 2).
    pub reads_merged: u64,
    /// Sectors read * 512 (the kernel counts 512-byte sectors whatever the device's block size).
    pub read_bytes: u64,
    /// Milliseconds spent reading (field 4).
    pub read_time_ms: u64,
    /// Writes completed (field 5).
    pub writes_completed: u64,
    /// Adjacent writes merged into one (field 6).
    pub writes_merged: u64,
    /// Sectors written * 512 (field 7).
    pub written_bytes: u64,
    /// Milliseconds spent writing (field 8).
    pub write_time_ms: u64,
    /// IOs in flight now.
    pub io_in_progress: u64,
    /// Time the device had IO in flight.
    pub io_time_ms: u64,
    /// Milliseconds of IO in flight weighted by the number in flight (field 11).
    pub weighted_io_time_ms: u64,
    /// Linux 4.18+.
    pub discards_completed: Option<u64>,
    /// Sectors discarded * 512 (field 14); `None` before Linux 4.18.
    pub discarded_bytes: Option<u64>,
    /// Linux 5.5+.
    pub flushes_completed: Option<u64>,
}

impl Disk {
    fn idle(&self) -> bool {
        self.reads_completed == 0
            && self.writes_completed == 0
            && self.io_in_progress == 0
            && self.discards_completed.unwrap_or(0) == 0
            && self.flushes_completed.unwrap_or(0) == 0
    }
}

fn meminfo(text: &str, out: &mut MachineStats) {
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(key), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let kib = v.parse::<u64>().ok();
        match key {
            "MemTotal:" => out.memory_bytes = kib.map(|k| k.saturating_mul(1024)),
            "SwapTotal:" => out.swap_bytes = kib.map(|k| k.saturating_mul(1024)),
            _ => {}
        }
    }
}

/// Reads the machine figures each sweep, keeping what rarely changes (CPU topology, the mount
/// table) until the kernel says it changed.
#[derive(Debug)]
pub(crate) struct MachineReader {
    user_hz: u64,
    /// Files are read through it: absent ones (an older kernel, PSI off) quietly, the rest
    /// with errors naming their paths.
    r: Reader,
    /// The online CPU list the topology below was worked out for.
    topology: Option<(Option<String>, Topology)>,
    mounts: HostMounts,
    statfs: TimedStatfs,
    paths: Vec<PathBuf>,
    identity: MachineIdentity,
}

/// CPU counts from the topology.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Topology {
    pub logical: Option<u64>,
    pub physical_cores: Option<u64>,
    pub sockets: Option<u64>,
}

impl MachineReader {
    pub fn new(user_hz: u64) -> Self {
        MachineReader {
            user_hz: user_hz.max(1),
            r: Reader::new(),
            topology: None,
            mounts: HostMounts::new(),
            statfs: TimedStatfs::new(),
            paths: Vec::new(),
            identity: MachineIdentity::default(),
        }
    }

    /// Reads everything into `out`. Files the kernel does not offer leave their figures
    /// `None`/empty; anything unreadable or malformed is added to `errors` with its path.
    pub fn read(
        &mut self,
        roots: &Roots,
        fs: &FsConfig,
        devices: &mut DeviceNames,
        errors: &mut Vec<Error>,
        out: &mut MachineStats,
    ) {
        let proc_root = &roots.proc_root;
        let ident = &mut self.identity;
        if ident.boot_id.is_none() || ident.machine_id.is_none() || ident.system_uuid.is_none() {
            ident.fill(roots, &fs.rootfs);
        }
        out.identity.clone_from(&self.identity);
        // CPUs and memory.
        let online = self
            .r
            .read(roots.sys_root.as_path(), "devices/system/cpu/online")
            .map(str::to_string);
        let stale = self.topology.as_ref().is_none_or(|(k, _)| *k != online);
        if stale {
            let topo = self.topology(roots, online.as_deref(), errors);
            self.topology = Some((online, topo));
        }
        let topo = self.topology.as_ref().map(|t| t.1).unwrap_or_default();
        out.cpu_cores = topo.logical;
        out.cpu_physical_cores = topo.physical_cores;
        out.cpu_sockets = topo.sockets;
        out.memory_bytes = None;
        out.swap_bytes = None;
        if let Some(text) = self.r.read(proc_root.as_path(), "meminfo") {
            meminfo(text, out);
        }

        // CPU time by mode.
        let hz = self.user_hz;
        out.cpu_time = self
            .r
            .parsed(proc_root.as_path(), "stat", proc_stat_cpu)
            .map(|t| t.to_ns(hz));

        // Disks.
        let mut disks = std::mem::take(&mut out.disks);
        if let Some(text) = self.r.read(proc_root.as_path(), "diskstats") {
            if let Err(reason) = diskstats(text, &mut disks) {
                self.r.parse_error(reason);
            }
            disks.retain(|d| !d.idle());
        } else {
            disks.clear();
        }
        out.disks = disks;

        // Pressure.
        let p = proc_root.as_path();
        out.pressure.cpu = self.r.parsed(p, "pressure/cpu", parse::psi);
        out.pressure.memory = self.r.parsed(p, "pressure/memory", parse::psi);
        out.pressure.io = self.r.parsed(p, "pressure/io", parse::psi);
        self.r.take_errors(errors);

        // Filesystems.
        out.filesystems.clear();
        if fs.machine_filesystems {
            self.filesystems(roots, fs, devices, errors, &mut out.filesystems);
        }
    }

    fn filesystems(
        &mut self,
        roots: &Roots,
        fs: &FsConfig,
        devices: &mut DeviceNames,
        errors: &mut Vec<Error>,
        out: &mut Vec<Filesystem>,
    ) {
        let mounts = self.mounts.get(&roots.proc_root, errors);
        let chosen = statfs::select(mounts, &fs.select());
        self.paths.clear();
        self.paths.extend(
            chosen
                .iter()
                .map(|m| statfs::host_path(&fs.rootfs, &m.mount_point)),
        );
        let outcomes = self.statfs.stat_all(&self.paths, fs.statfs_timeout);
        for ((m, path), o) in chosen.iter().zip(&self.paths).zip(outcomes) {
            let v = match o {
                StatOutcome::Ok(v) => v,
                // Unmounted between the table read and the call.
                StatOutcome::Err(e) if is_vanished(&e) => continue,
                StatOutcome::Err(e) => {
                    errors.push(Error::read(path, e));
                    continue;
                }
                StatOutcome::Stuck => continue,
            };
            out.push(Filesystem {
                major: m.major,
                minor: m.minor,
                device: devices.name(m.major, m.minor).map(str::to_string),
                source: m.source.clone(),
                mountpoint: m.mount_point.clone(),
                fstype: m.fs_type.clone(),
                size_bytes: v.size_bytes.unwrap_or(0),
                free_bytes: v.free_bytes.unwrap_or(0),
                avail_bytes: v.avail_bytes.unwrap_or(0),
                files: v.files,
                files_free: v.files_free,
                readonly: v.readonly,
            });
        }
    }

    fn topology(
        &mut self,
        roots: &Roots,
        online: Option<&str>,
        errors: &mut Vec<Error>,
    ) -> Topology {
        let cpus = online.map(cpu_list);
        if let Some(Ok(cpus)) = &cpus {
            let cpu_dir = roots.sys_root.join("devices/system/cpu");
            let mut cores = BTreeSet::new();
            let mut sockets = BTreeSet::new();
            let mut complete = true;
            for n in cpus {
                let topo = cpu_dir.join(format!("cpu{n}/topology"));
                let pkg = self.quiet_i64(&topo.join("physical_package_id"));
                let core = self.quiet_i64(&topo.join("core_id"));
                match (pkg, core) {
                    (Some(p), Some(c)) => {
                        cores.insert((p, c));
                        sockets.insert(p);
                    }
                    _ => complete = false,
                }
            }
            let logical = Some(cpus.len() as u64);
            if complete && !cpus.is_empty() {
                return Topology {
                    logical,
                    physical_cores: Some(cores.len() as u64),
                    sockets: Some(sockets.len() as u64),
                };
            }
            // Counts from cpuinfo where sysfs has no topology (some containers, old kernels).
            let from_info = self.cpuinfo(roots);
            return Topology {
                logical,
                ..from_info
            };
        }
        if let Some(Err(reason)) = cpus {
            errors.push(Error::parse(
                &roots.sys_root.join("devices/system/cpu/online"),
                reason,
            ));
        }
        self.cpuinfo(roots)
    }

    fn cpuinfo(&mut self, roots: &Roots) -> Topology {
        self.r
            .read(roots.proc_root.as_path(), "cpuinfo")
            .map(cpuinfo_topology)
            .unwrap_or_default()
    }

    fn quiet_i64(&mut self, path: &Path) -> Option<i64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

/// The number of CPUs in a kernel CPU list such as `0-3,8,10-11`.
pub(crate) fn cpu_list_len(text: &str) -> Result<u64, String> {
    let mut n = 0u64;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            return Err(format!("not a CPU list: {part:?}"));
        };
        if b < a {
            return Err(format!("descending CPU range: {part:?}"));
        }
        n = n.saturating_add((b - a).saturating_add(1));
    }
    Ok(n)
}

/// The CPUs of a kernel CPU list. Lists naming more than 65,536 CPUs are refused.
pub(crate) fn cpu_list(text: &str) -> Result<Vec<u32>, Reason> {
    const MAX: u64 = 1 << 16;
    let n = cpu_list_len(text)?;
    if n > MAX {
        return Err(format!("CPU list names {n} CPUs"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            return Err(format!("not a CPU list: {part:?}"));
        };
        out.extend(a..=b);
    }
    Ok(out)
}

/// Logical CPUs, physical cores and sockets from `/proc/cpuinfo`. Without `physical id` rows
/// (some architectures and hypervisors) only the logical count is known.
pub(crate) fn cpuinfo_topology(text: &str) -> Topology {
    let mut logical = 0u64;
    let mut cores = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let (mut pkg, mut core): (Option<&str>, Option<&str>) = (None, None);
    let mut flush = |pkg: &mut Option<&str>, core: &mut Option<&str>| {
        if let Some(p) = pkg.take() {
            sockets.insert(p.to_string());
            cores.insert((p.to_string(), core.take().unwrap_or("").to_string()));
        }
        *core = None;
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                flush(&mut pkg, &mut core);
            }
            continue;
        };
        match k.trim() {
            "processor" => {
                flush(&mut pkg, &mut core);
                logical += 1;
            }
            "physical id" => pkg = Some(v.trim()),
            "core id" => core = Some(v.trim()),
            _ => {}
        }
    }
    flush(&mut pkg, &mut core);
    let known = !sockets.is_empty();
    Topology {
        logical: (logical > 0).then_some(logical),
        physical_cores: known.then_some(cores.len() as u64),
        sockets: known.then_some(sockets.len() as u64),
    }
}

/// The `cpu` row of `/proc/stat`, in USER_HZ ticks: user nice system idle, then iowait irq
/// softirq steal where the kernel has them (guest time is already inside user and nice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: Option<u64>,
    pub irq: Option<u64>,
    pub softirq: Option<u64>,
    pub steal: Option<u64>,
}

impl CpuTicks {
    pub fn to_ns(self, user_hz: u64) -> CpuTime {
        let ns = |t: u64| {
            let v = u128::from(t) * 1_000_000_000 / u128::from(user_hz.max(1));
            u64::try_from(v).unwrap_or(u64::MAX)
        };
        CpuTime {
            user_ns: ns(self.user),
            nice_ns: ns(self.nice),
            system_ns: ns(self.system),
            idle_ns: ns(self.idle),
            iowait_ns: self.iowait.map(ns),
            irq_ns: self.irq.map(ns),
            softirq_ns: self.softirq.map(ns),
            steal_ns: self.steal.map(ns),
        }
    }
}

/// Finds the aggregate `cpu ` row of `/proc/stat`.
pub(crate) fn proc_stat_cpu(text: &str) -> Result<CpuTicks, Reason> {
    for (n, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        if it.next() != Some("cpu") {
            continue;
        }
        let mut v = [None::<u64>; 8];
        for (slot, w) in v.iter_mut().zip(it) {
            match w.parse::<u64>() {
                Ok(x) => *slot = Some(x),
                Err(_) => {
                    return Err(format!(
                        "line {}: not an unsigned integer: {:?}",
                        n + 1,
                        w.chars().take(40).collect::<String>()
                    ))
                }
            }
        }
        let (Some(user), Some(nice), Some(system), Some(idle)) = (v[0], v[1], v[2], v[3]) else {
            return Err(format!(
                "line {}: fewer than 4 counters in the cpu row",
                n + 1
            ));
        };
        return Ok(CpuTicks {
            user,
            nice,
            system,
            idle,
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v[7],
        });
    }
    Err("no `cpu` row".to_string())
}

/// `/proc/diskstats` (Documentation/admin-guide/iostats.rst): `major minor name` and 11
/// counters, 15 since 4.18 (discards), 17 since 5.5 (flushes). Fills `out` (reusing the name
/// buffers); a row with fewer than 11 counters or a non-number is skipped and reported.
pub(crate) fn diskstats(text: &str, out: &mut Vec<Disk>) -> Result<(), Reason> {
    let mut used = 0;
    let mut first_err = None;
    for (n, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(major) = it.next() else { continue };
        let (Ok(major), Some(Ok(minor)), Some(name)) = (
            major.parse::<u32>(),
            it.next().map(str::parse::<u32>),
            it.next(),
        ) else {
            first_err.get_or_insert_with(|| format!("line {}: expected `major minor name`", n + 1));
            continue;
        };
        let mut c = [0u64; 17];
        let mut count = 0;
        let mut bad = false;
        for w in it {
            if count == c.len() {
                break;
            }
            match w.parse::<u64>() {
                Ok(v) => c[count] = v,
                Err(_) => {
                    bad = true;
                    break;
                }
            }
            count += 1;
        }
        if bad || count < 11 {
            first_err
                .get_or_insert_with(|| format!("line {}: expected at least 11 counters", n + 1));
            continue;
        }
        if used == out.len() {
            out.push(Disk::default());
        }
        let d = &mut out[used];
        used += 1;
        d.major = major;
        d.minor = minor;
        d.name.clear();
        d.name.push_str(name);
        d.reads_completed = c[0];
        d.reads_merged = c[1];
        d.read_bytes = c[2].saturating_mul(512);
        d.read_time_ms = c[3];
        d.writes_completed = c[4];
        d.writes_merged = c[5];
        d.written_bytes = c[6].saturating_mul(512);
        d.write_time_ms = c[7];
        d.io_in_progress = c[8];
        d.io_time_ms = c[9];
        d.weighted_io_time_ms = c[10];
        let has = |k: usize| (count > k).then_some(());
        d.discards_completed = has(14).map(|_| c[11]);
        d.discarded_bytes = has(14).map(|_| c[13].saturating_mul(512));
        d.flushes_completed = has(16).map(|_| c[15]);
    }
    out.truncate(used);
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list_len("0-1\n"), Ok(2));
        assert_eq!(cpu_list_len("0-3,8,10-11"), Ok(7));
        assert_eq!(cpu_list_len("5"), Ok(1));
        assert!(cpu_list_len("3-1").is_err());
        assert!(cpu_list_len("a").is_err());
        assert_eq!(cpu_list("0-2,5\n"), Ok(vec![0, 1, 2, 5]));
        assert!(cpu_list("0-4294967295").is_err());
        assert!(cpu_list("0-18446744073709551615,0-18446744073709551615").is_err());
    }

    #[test]
    fn proc_stat_rows() {
        // Captured on this project's v1 host (kernel 6.18, 2 CPUs).
        let t = proc_stat_cpu("cpu  256041 0 77406 198468 1586 0 656 2257 6 0\ncpu0 130999 0 38110 97518 496 0 136 1074 2 0\n").unwrap();
        assert_eq!(
            (t.user, t.nice, t.system, t.idle),
            (256041, 0, 77406, 198468)
        );
        assert_eq!(
            (t.iowait, t.irq, t.softirq, t.steal),
            (Some(1586), Some(0), Some(656), Some(2257))
        );
        let ns = t.to_ns(100);
        assert_eq!(ns.user_ns, 2_560_410_000_000);
        assert_eq!(ns.iowait_ns, Some(15_860_000_000));
        assert_eq!(ns.modes().count(), 8);
        // 2.6-era kernels: four counters only.
        let old = proc_stat_cpu("cpu 1 2 3 4\n").unwrap();
        assert_eq!(old.iowait, None);
        assert_eq!(old.to_ns(100).modes().count(), 4);
        assert!(proc_stat_cpu("cpu 1 2 3\n").is_err());
        assert!(proc_stat_cpu("cpu 1 2 x 4\n").is_err());
        assert!(proc_stat_cpu("cpu0 1 2 3 4\nintr 5\n").is_err());
        assert!(proc_stat_cpu("").is_err());
    }

    #[test]
    fn diskstats_rows() {
        let text = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
             254       0 vda 187013 27229 8559026 138258 52806 74211 18612688 231899 0 46324 386905 22793 109 3973096 9147 6514 7600\n\
               8       1 sda1 1 2 3 4 5 6 7 8 9 10 11\n\
               8       2 sda2 1 2 3\n\
             garbage\n";
        let mut out = Vec::new();
        let err = diskstats(text, &mut out).unwrap_err();
        assert!(err.starts_with("line 4:"), "{err}");
        assert_eq!(out.len(), 3);
        let vda = &out[1];
        assert_eq!((vda.major, vda.minor, vda.name.as_str()), (254, 0, "vda"));
        assert_eq!(vda.reads_completed, 187_013);
        assert_eq!(vda.read_bytes, 8_559_026 * 512);
        assert_eq!(vda.writes_completed, 52_806);
        assert_eq!(vda.written_bytes, 18_612_688 * 512);
        assert_eq!((vda.io_in_progress, vda.io_time_ms), (0, 46_324));
        assert_eq!(vda.discards_completed, Some(22_793));
        assert_eq!(vda.discarded_bytes, Some(3_973_096 * 512));
        assert_eq!(vda.flushes_completed, Some(6514));
        assert!(out[0].idle());
        // 4.18-: 11 counters, no discards.
        assert_eq!(out[2].discards_completed, None);
        assert_eq!(out[2].weighted_io_time_ms, 11);
        // Buffers are reused.
        let cap = out[1].name.capacity();
        diskstats(text, &mut out).unwrap_err();
        assert_eq!(out[1].name.capacity(), cap);
    }

    #[test]
    fn cpuinfo_counts() {
        let two = "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\n";
        assert_eq!(
            cpuinfo_topology(two),
            Topology {
                logical: Some(2),
                physical_cores: Some(2),
                sockets: Some(1)
            }
        );
        // Hyperthreads: 4 logical on 2 cores of 1 socket; and 2 sockets with core ids reused.
        let ht = "processor : 0\nphysical id : 0\ncore id : 0\n\nprocessor : 1\nphysical id : 0\ncore id : 1\n\nprocessor : 2\nphysical id : 0\ncore id : 0\n\nprocessor : 3\nphysical id : 0\ncore id : 1\n";
        assert_eq!(cpuinfo_topology(ht).physical_cores, Some(2));
        let two_sockets = "processor : 0\nphysical id : 0\ncore id : 0\n\nprocessor : 1\nphysical id : 1\ncore id : 0\n";
        let t = cpuinfo_topology(two_sockets);
        assert_eq!((t.physical_cores, t.sockets), (Some(2), Some(2)));
        // No topology rows (arm64): only the logical count.
        let arm = "processor : 0\nBogoMIPS : 50\n\nprocessor : 1\nBogoMIPS : 50\n";
        assert_eq!(
            cpuinfo_topology(arm),
            Topology {
                logical: Some(2),
                physical_cores: None,
                sockets: None
            }
        );
        assert_eq!(cpuinfo_topology(""), Topology::default());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = proc_stat_cpu(&s);
            let _ = diskstats(&s, &mut Vec::new());
            let _ = cpuinfo_topology(&s);
            let _ = cpu_list(&s);
            let _ = cpu_list_len(&s);
        }

        #[test]
        fn parsers_never_panic_on_plausible_rows(lines in prop::collection::vec(
            prop::collection::vec(prop_oneof![
                Just("cpu".to_string()), Just("cpu0".to_string()), Just("processor".to_string()),
                Just(":".to_string()), Just("physical id".to_string()), Just("core id".to_string()),
                Just("-".to_string()), Just(",".to_string()), "[0-9]{1,22}", "[a-z]{0,5}",
            ], 0..22), 0..6)) {
            let s: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
            let _ = proc_stat_cpu(&s);
            let _ = diskstats(&s, &mut Vec::new());
            let _ = cpuinfo_topology(&s);
            let _ = cpu_list(&s.replace(' ', ""));
        }

        #[test]
        fn diskstats_round_trip(rows in prop::collection::vec(
            (any::<u32>(), any::<u32>(), "[a-z]{1,8}[0-9]{0,2}", prop::collection::vec(0u64..1 << 50, 17)),
            0..8)) {
            let text: String = rows.iter().map(|(ma, mi, name, c)| {
                let cs: Vec<String> = c.iter().map(u64::to_string).collect();
                format!("{ma:>4} {mi:>7} {name} {}\n", cs.join(" "))
            }).collect();
            let mut out = Vec::new();
            diskstats(&text, &mut out).unwrap();
            prop_assert_eq!(out.len(), rows.len());
            for (d, (ma, mi, name, c)) in out.iter().zip(&rows) {
                prop_assert_eq!((d.major, d.minor, d.name.as_str()), (*ma, *mi, name.as_str()));
                prop_assert_eq!(d.read_bytes, c[2] * 512);
                prop_assert_eq!(d.written_bytes, c[6] * 512);
                prop_assert_eq!(d.io_time_ms, c[9]);
                prop_assert_eq!(d.flushes_completed, Some(c[15]));
            }
        }
    }
}
