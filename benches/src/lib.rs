//! Support for the benches: a set of real cgroups (a parent and N children, in every v1
//! controller the collector reads and in the cgroup2 hierarchy), some with a sleeping process
//! in its own network namespace, all removed when the set is dropped, when a bench panics,
//! and on Ctrl-C / SIGTERM / SIGHUP.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::Cgroup;
use collector_core::{Collector, Config, Controller, Hierarchy, Roots, Setup, Snapshot};

/// Why the benches cannot run here, if they cannot: they need root and a v1 or hybrid host.
pub fn preflight() -> Result<Hierarchy, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("the benches make real cgroups and need root".into());
    }
    let h = Hierarchy::detect(&Roots::default()).map_err(|e| e.to_string())?;
    if h.setup == Setup::Unified {
        return Err("the benches compare v1 readers and need a v1 or hybrid host".into());
    }
    Ok(h)
}

/// Processes and directories to remove; shared with the signal thread.
#[derive(Default)]
struct Cleanup {
    children: Vec<Child>,
    /// In creation order (parents first); removed in reverse.
    dirs: Vec<PathBuf>,
}

impl Cleanup {
    fn run(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for mut c in self.children.drain(..) {
            let _ = c.wait();
        }
        for d in self.dirs.drain(..).rev() {
            // A killed task can take a moment to leave its cgroup.
            for _ in 0..100 {
                match std::fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

/// Every set not yet dropped, for the signal thread.
static LIVE: Mutex<Vec<Weak<Mutex<Cleanup>>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes every live set when a panic starts, and on SIGINT, SIGTERM or SIGHUP (then exits).
/// Call it first in `main` (or the bench function), before other threads start: it blocks those
/// signals in the calling thread, which threads started afterwards inherit, and waits for them
/// in a thread of its own.
pub fn cleanup_on_signals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        // A panic in a bench may turn into an abort (criterion prints from a Drop while the
        // stack unwinds), which runs no destructor: clean up as soon as a panic starts.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let live: Vec<_> = LIVE
                .try_lock()
                .map(|l| l.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default();
            for c in live {
                if let Ok(mut c) = c.try_lock() {
                    c.run();
                }
            }
        }));
        if set.thread_block().is_err() {
            return;
        }
        std::thread::spawn(move || {
            let Ok(sig) = set.wait() else { return };
            eprintln!("\n{sig}: removing the bench cgroups");
            let live: Vec<_> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
            for c in live {
                lock(&c).run();
            }
            std::process::exit(128 + sig as i32);
        });
    });
}

/// Each mount the sets are made in, once (a co-mounted `cpu,cpuacct` would appear twice).
fn mounts(h: &Hierarchy) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for m in Controller::ALL
        .iter()
        .filter_map(|c| h.v1(*c))
        .chain(h.unified.iter())
    {
        if !out.contains(&m.path) {
            out.push(m.path.clone());
        }
    }
    out
}

const PREFIX: &str = "ccol-bench-";

/// Removes the sets of bench runs that died without cleaning up (SIGKILL, abort): their
/// sleeping processes are killed by the pids listed in the sets' `cgroup.procs`, then the
/// directories go. A set whose bench process is still alive is left alone.
pub fn remove_stale(h: &Hierarchy) {
    let mut stale = Cleanup::default();
    for mount in mounts(h) {
        let Ok(entries) = std::fs::read_dir(&mount) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(owner) = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if owner == std::process::id() || PathBuf::from(format!("/proc/{owner}")).exists() {
                continue;
            }
            let parent = e.path();
            stale.dirs.push(parent.clone());
            for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                if !child.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let procs = std::fs::read_to_string(child.path().join("cgroup.procs"));
                for pid in procs.iter().flat_map(|t| t.lines()) {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                stale.dirs.push(child.path());
            }
        }
    }
    if !stale.dirs.is_empty() {
        eprintln!(
            "removing {} directories left by an earlier bench run",
            stale.dirs.len()
        );
        stale.run();
    }
}

/// A parent cgroup with `n` children, made in every v1 controller the collector reads and in
/// the cgroup2 hierarchy.
pub struct CgroupSet {
    /// The parent's cgroup id (`/ccol-bench-<pid>-<n>`).
    pub parent: String,
    /// The parent first, then the children (`<parent>/c0000` ...): everything a sweep that
    /// includes `parent` reads.
    pub ids: Vec<String>,
    /// How many of the children hold a sleeping process.
    pub with_process: usize,
    hierarchy: Hierarchy,
    cleanup: Arc<Mutex<Cleanup>>,
}

impl CgroupSet {
    /// Makes the parent and `n` children; every `proc_every`-th child (0: none) gets a
    /// `sleep 3600` in its own network namespace, so `cgroup.procs`, `/proc/<pid>/net/dev`
    /// and the load reader have work.
    pub fn create(h: &Hierarchy, n: usize, proc_every: usize) -> io::Result<CgroupSet> {
        let cleanup = Arc::new(Mutex::new(Cleanup::default()));
        lock(&LIVE).push(Arc::downgrade(&cleanup));
        let parent = format!("/{PREFIX}{}-{n}", std::process::id());
        let mut set = CgroupSet {
            ids: vec![parent.clone()],
            parent,
            with_process: 0,
            hierarchy: h.clone(),
            cleanup,
        };
        set.ids
            .extend((0..n).map(|i| format!("{}/c{i:04}", set.parent)));

        let mounts = mounts(h);
        for mount in &mounts {
            // A new v1 cpuset has no CPUs or memory nodes and takes no task until given some.
            let cpuset: Option<[(String, String); 2]> = mount
                .join("cpuset.cpus")
                .exists()
                .then(|| {
                    ["cpuset.cpus", "cpuset.mems"].map(|f| {
                        let v = std::fs::read_to_string(mount.join(f)).unwrap_or_default();
                        (f.to_string(), v.trim().to_string())
                    })
                })
                .filter(|v| !v[0].1.is_empty());
            for id in &set.ids {
                let dir = mount.join(id.trim_start_matches('/'));
                std::fs::create_dir(&dir).map_err(|e| {
                    io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display()))
                })?;
                lock(&set.cleanup).dirs.push(dir.clone());
                for (file, value) in cpuset.iter().flatten() {
                    std::fs::write(dir.join(file), value)?;
                }
            }
        }

        if proc_every > 0 {
            for id in set.ids.iter().skip(1).step_by(proc_every) {
                let procs: Vec<CString> = mounts
                    .iter()
                    .map(|m| {
                        let p = m.join(id.trim_start_matches('/')).join("cgroup.procs");
                        CString::new(p.into_os_string().into_encoded_bytes())
                            .expect("no NUL in a cgroup path")
                    })
                    .collect();
                let child = spawn_sleeper(procs)?;
                lock(&set.cleanup).children.push(child);
                set.with_process += 1;
            }
        }
        Ok(set)
    }

    /// The directory of cgroup `id` in the mount of `c`.
    pub fn dir(&self, c: Controller, id: &str) -> Option<PathBuf> {
        self.hierarchy.v1(c)?.dir_of(id)
    }

    /// Pids of the sleeping processes.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.cleanup).children.iter().map(Child::id).collect()
    }
}

impl Drop for CgroupSet {
    fn drop(&mut self) {
        lock(&self.cleanup).run();
    }
}

/// `sleep 3600`, moved into the cgroups (each `cgroup.procs` in `procs`) and into a new network
/// namespace before it execs, so nothing it does is charged elsewhere.
fn spawn_sleeper(procs: Vec<CString>) -> io::Result<Child> {
    let mut cmd = Command::new("sleep");
    cmd.arg("3600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only sigprocmask, open, write, close and unshare run; all
    // are async-signal-safe and touch only memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // The bench blocks SIGINT/SIGTERM for its signal thread; the child must not inherit that.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if n != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The id relative to a hierarchy's root (`ccol-bench-1-100/c0000`), as cgroups-rs takes it.
pub fn relative(id: &str) -> &str {
    id.trim_start_matches('/')
}

/// How many children get a process: every `CCOL_BENCH_PROC_EVERY`-th (default 10; 0 for none).
pub fn proc_every() -> usize {
    std::env::var("CCOL_BENCH_PROC_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// The set sizes: `CCOL_BENCH_SIZES=100,1000` (the default).
pub fn sizes() -> Vec<usize> {
    std::env::var("CCOL_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![100, 1000])
}

/// A collector over the set, after three sweeps (steady state), with its last snapshot.
/// `idle`: the default idle reads (the bench's cgroups then read as idle from the second
/// sweep on, their processes asleep); without, every file of every cgroup on every sweep.
pub fn steady_collector(
    set: &CgroupSet,
    network: bool,
    load: bool,
    idle: bool,
) -> (Collector, Snapshot) {
    let config = Config {
        include: vec![set.parent.clone()],
        // Steady state: no rescans inside the measurement (another process making cgroups at the
        // root would otherwise wake inotify and make some sweeps walk the tree). The rescan
        // variant measures the walk on purpose.
        watch: false,
        rescan_interval: Duration::from_secs(24 * 3600),
        network,
        load,
        idle_interval: if idle {
            Config::default().idle_interval
        } else {
            Duration::ZERO
        },
        ..Config::default()
    };
    let mut col = Collector::new(config).expect("collector");
    let mut snap = Snapshot::default();
    for _ in 0..3 {
        col.sweep_into(&mut snap);
    }
    if idle {
        // A full read is a baseline for idle reads once the probe has stood still for 2 s.
        std::thread::sleep(Duration::from_millis(2100));
        col.sweep_into(&mut snap);
        col.sweep_into(&mut snap);
        let n = snap.containers.iter().filter(|c| c.idle).count();
        eprintln!(
            "idle reads: {n} of {} cgroups read as idle",
            snap.containers.len()
        );
    }
    assert_eq!(
        snap.containers.len(),
        set.ids.len(),
        "the sweep should see every cgroup of the set"
    );
    if !snap.errors.is_empty() {
        eprintln!(
            "collector-core: {} errors in a sweep, e.g.:",
            snap.errors.len()
        );
        for e in snap.errors.iter().take(3) {
            eprintln!("  {e}");
        }
    }
    (col, snap)
}

/// What a cgroups-rs user reads for the same figures; returns something so nothing is elided.
pub fn cgroups_rs_read(hier: Box<dyn cgroups_rs::fs::Hierarchy>, rel: &str) -> u64 {
    let cg = Cgroup::load(hier, rel);
    let mut acc = 0u64;
    if let Some(c) = cg.controller_of::<CpuAcctController>() {
        // cpuacct.{stat,usage,usage_all,usage_percpu,usage_percpu_sys,usage_percpu_user,usage_sys,usage_user}
        let a = c.cpuacct();
        acc = acc.wrapping_add(a.usage);
        std::hint::black_box(a);
    }
    if let Some(c) = cg.controller_of::<CpuController>() {
        // cpu.stat
        std::hint::black_box(c.cpu());
    }
    if let Some(m) = cg.controller_of::<MemController>() {
        // memory.{failcnt,limit_in_bytes,usage_in_bytes,max_usage_in_bytes,
        // move_charge_at_immigrate,numa_stat,oom_control,soft_limit_in_bytes,stat,swappiness,
        // use_hierarchy}
        let m = m.memory_stat();
        acc = acc.wrapping_add(m.usage_in_bytes);
        std::hint::black_box(m);
    }
    if let Some(p) = cg.controller_of::<PidController>() {
        // pids.current, pids.max
        acc = acc.wrapping_add(p.get_pid_current().unwrap_or(0));
        let _ = std::hint::black_box(p.get_pid_max());
    }
    if let Some(b) = cg.controller_of::<BlkIoController>() {
        // 44 opens of 28 blkio.* names; the 20 CFQ-era ones (32 opens) fail with ENOENT on
        // current kernels, the 8 blkio.throttle.* ones are read.
        std::hint::black_box(b.blkio());
    }
    acc
}

/// The kernel's floor: two files of every cgroup of a set (`cpuacct.usage` and `memory.stat`,
/// a cgroup's CPU and memory at their barest), read four ways into reused buffers.
pub struct Floor {
    paths: Vec<PathBuf>,
    cpaths: Vec<CString>,
    held: Vec<std::fs::File>,
    /// Each file's directory, held open, with the file's name.
    dirs: Vec<(std::os::fd::OwnedFd, &'static std::ffi::CStr)>,
    buf: Vec<u8>,
    text: String,
}

impl Floor {
    pub fn new(set: &CgroupSet) -> io::Result<Floor> {
        let mut paths = Vec::new();
        let mut dirs = Vec::new();
        for id in &set.ids {
            for (c, file) in [
                (Controller::Cpuacct, c"cpuacct.usage"),
                (Controller::Memory, c"memory.stat"),
            ] {
                let dir = set.dir(c, id).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{} not mounted", c.name()))
                })?;
                paths.push(dir.join(file.to_str().expect("ASCII name")));
                let d = std::fs::File::open(&dir)?;
                dirs.push((std::os::fd::OwnedFd::from(d), file));
            }
        }
        let cpaths = paths
            .iter()
            .map(|p| CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in a path"))
            .collect();
        let held = paths
            .iter()
            .map(std::fs::File::open)
            .collect::<io::Result<Vec<_>>>()?;
        let mut floor = Floor {
            paths,
            cpaths,
            held,
            dirs,
            buf: vec![0u8; 64 * 1024],
            text: String::with_capacity(64 * 1024),
        };
        // One pread must return a whole file, or the floor would not be reading it all.
        for f in &floor.held {
            use std::os::unix::fs::FileExt;
            let got = f.read_at(&mut floor.buf, 0)?;
            assert!(
                got > 0 && got < floor.buf.len(),
                "a floor file fits the buffer"
            );
            assert_eq!(
                f.read_at(&mut floor.buf, got as u64)?,
                0,
                "one pread reads it all"
            );
        }
        Ok(floor)
    }

    /// `pread(fd, buf, 0)` on fds held open since `new`: one syscall per file.
    pub fn pread_held(&mut self) -> usize {
        use std::os::unix::fs::FileExt;
        let mut total = 0;
        for f in &self.held {
            total += f.read_at(&mut self.buf, 0).unwrap_or(0);
        }
        total
    }

    /// `open`, one `read`, `close` with prepared C paths: three syscalls per file.
    pub fn open_read_close(&mut self) -> usize {
        let mut total = 0;
        for p in &self.cpaths {
            // SAFETY: a valid C string, and a buffer of the length given.
            unsafe {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    total += libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()).max(0)
                        as usize;
                    libc::close(fd);
                }
            }
        }
        total
    }

    /// `openat` relative to the file's directory, held open (no walk of the whole path), one
    /// `read`, `close`: three syscalls per file, as `open_read_close`.
    pub fn openat_held_dir(&mut self) -> usize {
        use std::os::fd::AsRawFd;
        let mut total = 0;
        for (dir, name) in &self.dirs {
            // SAFETY: an open directory fd, a valid C string, and a buffer of the length given.
            unsafe {
                let fd = libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    total += libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()).max(0)
                        as usize;
                    libc::close(fd);
                }
            }
        }
        total
    }

    /// `File::open` + `read_to_string` into a reused `String`, as `collector_core::read::Reader`
    /// reads each file (std adds a `statx` and an `lseek` for its size hint, and a last `read`
    /// to see EOF).
    pub fn std_read_to_string(&mut self) -> usize {
        use std::io::Read;
        let mut total = 0;
        for p in &self.paths {
            self.text.clear();
            if let Ok(mut f) = std::fs::File::open(p) {
                total += f.read_to_string(&mut self.text).unwrap_or(0);
            }
        }
        total
    }
}
