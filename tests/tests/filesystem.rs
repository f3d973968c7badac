//! Filesystem figures (issue 4): the machine's CPU modes, disks and pressure on real kernel
//! captures; overlay layers found through mountinfo with escaped paths; a loop device with an
//! ext4 filesystem this test makes, mounts and fills; direct-IO reads in `/proc/diskstats`; and
//! a real Docker container writing into its own writable layer, walked in the background.
//!
//! Tools (mkfs.ext4, losetup, dockerd, busybox-static) come from `scripts/test.sh`; a missing
//! one fails the test with that name, never a silent pass. Everything made is removed at the
//! end whatever the outcome: mounts, loop devices, containers, dockerd (by its pid), dirs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector_core::fs::FsConfig;
use collector_core::prometheus::{render, Format, Options};
use collector_core::{Collector, Config, Roots, Snapshot};
use tests::{require_root, unique, SETUP};

const DOCKER_ID: &str = "c1a97e2c6fcca05af093095dbb1a37ca2261b81d742d9f55447de73add9c5344";
const MIB: u64 = 1 << 20;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture(name).display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn fixture_config(root: &Path) -> Config {
    Config {
        roots: Roots::under(root),
        watch: false,
        load: false,
        fs: FsConfig {
            // Host paths (mount points, upper directories) resolve inside the tree.
            rootfs: root.to_path_buf(),
            ..FsConfig::default()
        },
        ..Config::default()
    }
}

/// A live-host collector that follows no cgroup but `include` (or none at all).
fn host_config(include: &str) -> Config {
    Config {
        include: vec![include.to_string()],
        watch: false,
        load: false,
        network: false,
        ..Config::default()
    }
}

fn exposition(s: Snapshot) -> String {
    render(&s, &Options::default(), Format::PrometheusText)
}

/// The value of the one sample of `name` whose label set contains every `labels` pair.
fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    tests::samples(body, name)
        .into_iter()
        .find(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Fails naming the set-up script when a tool is not installed.
fn need(tool: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
        .unwrap_or_else(|| panic!("`{tool}` not found; install what the tests need with `{SETUP}`"))
}

fn run_out(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}); install it with `{SETUP}`"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Fixtures: /proc/stat, /proc/diskstats, /proc/pressure, mountinfo.

#[test]
fn machine_figures_from_a_v1_host_capture() {
    let root = fixture("cgroup-v1-hybrid-docker");
    let s = Collector::new(fixture_config(&root)).unwrap().sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let m = &s.machine;
    let t = m.cpu_time.expect("cpu row of proc/stat");
    // cpu  256041 0 77406 198468 1586 0 656 2257 6 0, USER_HZ 100.
    assert_eq!(t.user_ns, 2_560_410_000_000);
    assert_eq!(t.system_ns, 774_060_000_000);
    assert_eq!(t.idle_ns, 1_984_680_000_000);
    assert_eq!(t.iowait_ns, Some(15_860_000_000));
    assert_eq!(t.softirq_ns, Some(6_560_000_000));
    assert_eq!(t.steal_ns, Some(22_570_000_000));
    // loop0-7 and zram0 never did IO: left out. vda is the row of the capture.
    let names: Vec<&str> = m.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["vda"]);
    let vda = &m.disks[0];
    assert_eq!((vda.major, vda.minor), (254, 0));
    assert_eq!(vda.reads_completed, 187_013);
    assert_eq!(vda.read_bytes, 8_559_026 * 512);
    assert_eq!(vda.writes_completed, 52_806);
    assert_eq!(vda.written_bytes, 18_612_688 * 512);
    assert_eq!(vda.io_time_ms, 46_324);
    assert_eq!(vda.io_in_progress, 0);
    let p = &m.pressure;
    assert_eq!(p.cpu.unwrap().some.total_us, 558_195_018);
    assert_eq!(p.io.unwrap().some.total_us, 30_033_380);
    assert_eq!(p.io.unwrap().full.unwrap().total_us, 9_957_415);
    assert_eq!(p.memory.unwrap().some.total_us, 0);
    // The capture's mount table: / (ext4 on 254:0) once, though /run/netns and
    // /var/lib/docker are bind mounts of it; cgroup, proc, tmpfs, overlay, nsfs skipped.
    let fs: Vec<(&str, &str, Option<&str>)> = m
        .filesystems
        .iter()
        .map(|f| {
            (
                f.mountpoint.as_str(),
                f.fstype.as_str(),
                f.device.as_deref(),
            )
        })
        .collect();
    assert_eq!(fs, [("/", "ext4", Some("vda"))]);

    let body = exposition(s);
    assert_eq!(
        value(&body, "machine_cpu_seconds_total", &[("mode", "iowait")]),
        Some(15.86)
    );
    assert_eq!(
        value(&body, "machine_cpu_seconds_total", &[("mode", "user")]),
        Some(2560.41)
    );
    assert_eq!(
        value(
            &body,
            "machine_disk_read_bytes_total",
            &[("device", "/dev/vda")]
        ),
        Some((8_559_026u64 * 512) as f64)
    );
    assert_eq!(
        value(
            &body,
            "machine_disk_io_time_seconds_total",
            &[("device", "/dev/vda")]
        ),
        Some(46.324)
    );
    assert_eq!(
        value(&body, "machine_disk_io_now", &[("device", "/dev/vda")]),
        Some(0.0)
    );
    assert_eq!(
        value(&body, "machine_pressure_io_stalled_seconds_total", &[]),
        Some(9.957415)
    );
    assert_eq!(
        value(&body, "machine_pressure_cpu_waiting_seconds_total", &[]),
        Some(558.195018)
    );
    assert!(value(
        &body,
        "machine_filesystem_size_bytes",
        &[
            ("device", "/dev/vda"),
            ("mountpoint", "/"),
            ("fstype", "ext4")
        ]
    )
    .is_some());
}

#[test]
fn machine_figures_from_a_v2_vm_capture() {
    let root = fixture("cgroup-v2-kubepods");
    let s = Collector::new(fixture_config(&root)).unwrap().sweep();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let m = &s.machine;
    // No sysfs CPU directory in the capture: counts from its cpuinfo (1 CPU, QEMU TCG).
    assert_eq!(
        (m.cpu_cores, m.cpu_physical_cores, m.cpu_sockets),
        (Some(1), Some(1), Some(1))
    );
    let t = m.cpu_time.unwrap();
    assert_eq!(t.user_ns, 15_760_000_000);
    assert_eq!(t.system_ns, 14_140_000_000);
    assert_eq!(m.disks.len(), 1);
    assert_eq!(m.disks[0].name, "nullb0");
    assert_eq!(m.disks[0].read_bytes, 51_480 * 512);
    assert_eq!(m.disks[0].written_bytes, 20_480 * 512);
    assert_eq!(m.pressure.io.unwrap().some.total_us, 11_103);
    assert_eq!(m.pressure.memory.unwrap().full.unwrap().total_us, 12_022);
    // The VM's root is an initramfs (rootfs) and /tmp a tmpfs: no real filesystem.
    assert!(m.filesystems.is_empty(), "{:?}", m.filesystems);
    let body = exposition(s);
    assert_eq!(value(&body, "machine_cpu_physical_cores", &[]), Some(1.0));
    assert_eq!(value(&body, "machine_cpu_sockets", &[]), Some(1.0));
}

#[test]
fn broken_machine_files_are_errors_with_paths() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let root = dir.path();
    std::fs::write(root.join("proc/stat"), "cpu 1 2\n").unwrap();
    std::fs::write(
        root.join("proc/diskstats"),
        " 254 0 vda 1 2 3\n 8 0 sda 1 0 8 0 1 0 8 0 0 1 1\n",
    )
    .unwrap();
    std::fs::write(root.join("proc/pressure/io"), "some avg10=x\n").unwrap();
    let s = Collector::new(fixture_config(root)).unwrap().sweep();
    let msgs: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
    for f in ["proc/stat", "proc/diskstats", "pressure/io"] {
        assert!(
            msgs.iter().any(|m| m.contains(f)),
            "no error for {f}: {msgs:?}"
        );
    }
    assert_eq!(s.machine.cpu_time, None);
    assert_eq!(s.machine.pressure.io, None);
    assert!(s.machine.pressure.cpu.is_some());
    // The good row is kept.
    assert_eq!(s.machine.disks.len(), 1);
    assert_eq!(s.machine.disks[0].name, "sda");
    // The containers are still read.
    assert!(s.get(&format!("/docker/{DOCKER_ID}")).is_some());
}

/// Waits (sweeping) until the container has layer figures that satisfy `ok`.
fn sweep_until(
    col: &mut Collector,
    id: &str,
    within: Duration,
    ok: impl Fn(&collector_core::FsStats) -> bool,
) -> (Snapshot, Duration) {
    let started = Instant::now();
    loop {
        let s = col.sweep();
        let good = s.get(id).and_then(|c| c.stats.fs.as_ref()).is_some_and(&ok);
        if good {
            return (s, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{id}: no layer figures as expected within {within:?}; last: {:?}; errors: {:?}",
            s.get(id).map(|c| &c.stats.fs),
            s.errors
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// du's view of a tree: (bytes in blocks, inodes), hard links once.
fn du(dir: &Path) -> (u64, u64) {
    let d = dir.to_str().unwrap();
    let first = |s: String| s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
    (
        first(run_out("du", &["-s", "-B1", d])),
        first(run_out("du", &["-s", "--inodes", d])),
    )
}

#[test]
fn overlay_layer_with_escaped_space_and_comma_is_walked() {
    let dir = copy_of("cgroup-v1-hybrid-docker");
    let root = dir.path();
    // The container's process gets the captured 6.18 mount table: its upperdir is
    // "/tmp/ccol ovl/up per,dir", shown as `up\040per\134\054dir`.
    std::fs::copy(
        fixture("overlay-escaped/root-mountinfo"),
        root.join("proc/25168/mountinfo"),
    )
    .unwrap();
    let upper = root.join("tmp/ccol ovl/up per,dir");
    std::fs::create_dir_all(upper.join("etc/a b")).unwrap();
    std::fs::write(upper.join("etc/a b/f,1"), vec![1u8; 300_000]).unwrap();
    std::fs::write(upper.join("small"), b"x").unwrap();
    std::fs::hard_link(upper.join("small"), upper.join("etc/small-link")).unwrap();
    let mut cfg = fixture_config(root);
    cfg.fs.interval = Duration::from_millis(200);
    let mut col = Collector::new(cfg).unwrap();
    let id = format!("/docker/{DOCKER_ID}");
    // The first sweep finds the layer; the walk happens in the background. A one-shot user
    // (printing one snapshot) waits for it, then sweeps again.
    col.sweep();
    assert!(col.settle_fs(Duration::from_secs(20)));
    let s = col.sweep();
    let fs = s
        .get(&id)
        .unwrap()
        .stats
        .fs
        .clone()
        .expect("layer figures after settle_fs");
    assert_eq!(fs.upperdir, upper.to_str().unwrap());
    let (bytes, inodes) = du(&upper);
    assert_eq!((fs.usage_bytes, fs.inodes_used), (bytes, inodes));
    assert_eq!(fs.inodes_used, 5); // upper, etc, etc/a b, f,1, small (two links)
    let md = std::fs::metadata(&upper).unwrap();
    assert_eq!(
        (fs.major, fs.minor),
        (libc::major(md.dev()), libc::minor(md.dev()))
    );
    assert!(fs.limit_bytes.unwrap() > 0);
    assert!(fs.age_ms < 20_000);

    // Grows at the next walk.
    std::fs::write(upper.join("more"), vec![2u8; 4 * MIB as usize]).unwrap();
    let (s, _) = sweep_until(&mut col, &id, Duration::from_secs(20), |f| {
        f.inodes_used == 6
    });
    let grown = s.get(&id).unwrap().stats.fs.clone().unwrap();
    assert_eq!(grown.usage_bytes, du(&upper).0);
    assert!(grown.usage_bytes >= fs.usage_bytes + 4 * MIB);
    let body = exposition(s);
    let usage = tests::samples(&body, "container_fs_usage_bytes");
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert!(usage[0].0.contains(&id));
    assert!(usage[0].0.contains("device=\""), "{}", usage[0].0);
    assert_eq!(usage[0].1, grown.usage_bytes as f64);
    assert_eq!(
        value(&body, "container_fs_inodes_used", &[("id", id.as_str())]),
        Some(6.0)
    );
    assert!(value(&body, "container_fs_limit_bytes", &[("id", id.as_str())]).is_some());
    assert!(value(
        &body,
        "container_fs_usage_age_seconds",
        &[("id", id.as_str())]
    )
    .is_some());

    // A container whose root is not an overlay, and the layers switched off: no figures.
    let mut cfg = fixture_config(root);
    cfg.fs.container_layers = false;
    let s = Collector::new(cfg).unwrap().sweep();
    assert_eq!(s.get(&id).unwrap().stats.fs, None);
    std::fs::write(
        root.join("proc/25168/mountinfo"),
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n",
    )
    .unwrap();
    let mut col = Collector::new(fixture_config(root)).unwrap();
    for _ in 0..3 {
        let s = col.sweep();
        assert_eq!(s.get(&id).unwrap().stats.fs, None);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }
}

#[test]
fn overlay_upperdir_of_the_v1_capture_and_older_kernels() {
    use collector_core::fs::overlay::root_upperdir;
    let text =
        std::fs::read_to_string(fixture("cgroup-v1-hybrid-docker/proc/25168/mountinfo")).unwrap();
    assert_eq!(
        root_upperdir(&text).unwrap().path,
        "/var/lib/docker/overlay2/35ca6fd1cc8ac772a967cfa640e13c80120d317bd2df0435f7694f998c1ea24f/diff"
    );
    let text = std::fs::read_to_string(fixture("overlay-escaped/root-mountinfo")).unwrap();
    assert_eq!(
        root_upperdir(&text).unwrap().path,
        "/tmp/ccol ovl/up per,dir"
    );
    // The host's view of such a mount: its mount point is unescaped too, and it is not a
    // root mount.
    let row = std::fs::read_to_string(fixture("overlay-escaped/host-mountinfo-row")).unwrap();
    let (m, err) = collector_core::mountinfo::parse(&row);
    assert_eq!(err, None);
    assert_eq!(m[0].mount_point, "/tmp/ovl.kc4G/mer ged");
    assert_eq!(root_upperdir(&row), None);
}

// ---------------------------------------------------------------------------------------------
// A loop device with a small ext4 filesystem.

/// An image file on a loop device with ext4 on it, mounted in a temp dir; all undone on drop.
struct LoopFs {
    /// Holds the image file and mount point; removed last.
    _dir: tempfile::TempDir,
    dev: String,
    mnt: PathBuf,
    mounted: bool,
}

impl LoopFs {
    fn new(size_mib: u64) -> LoopFs {
        require_root();
        for t in [
            "losetup",
            "mkfs.ext4",
            "mount",
            "umount",
            "dd",
            "stat",
            "du",
        ] {
            need(t);
        }
        let dir = tempfile::Builder::new()
            .prefix("ccol-loop")
            .tempdir()
            .unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(size_mib * MIB)
            .unwrap();
        let dev = run_out("losetup", &["--find", "--show", img.to_str().unwrap()])
            .trim()
            .to_string();
        let l = LoopFs {
            mnt: dir.path().join("mnt"),
            _dir: dir,
            dev,
            mounted: false,
        };
        // 4 KiB blocks, the default 5 % reserved for root (so free and avail differ).
        run_out(
            "mkfs.ext4",
            &["-q", "-F", "-b", "4096", "-N", "4096", "-m", "5", &l.dev],
        );
        std::fs::create_dir(&l.mnt).unwrap();
        l
    }

    fn mount(&mut self) {
        run_out(
            "mount",
            &["-t", "ext4", &self.dev, self.mnt.to_str().unwrap()],
        );
        self.mounted = true;
    }

    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }

    fn mountpoint(&self) -> &str {
        self.mnt.to_str().unwrap()
    }

    /// `stat -f` of the mount: (block size, blocks, free, avail, inodes, free inodes).
    fn statfs(&self) -> [u64; 6] {
        let out = run_out(
            "stat",
            &["-f", "-c", "%S %b %f %a %c %d", self.mountpoint()],
        );
        let v: Vec<u64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3], v[4], v[5]]
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg(&self.mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        // The image and the mount point go with `dir`.
    }
}

fn filesystem<'a>(s: &'a Snapshot, mountpoint: &str) -> &'a collector_core::machine::Filesystem {
    s.machine
        .filesystems
        .iter()
        .find(|f| f.mountpoint == mountpoint)
        .unwrap_or_else(|| {
            panic!(
                "{mountpoint} not among {:?}; errors {:?}",
                s.machine.filesystems, s.errors
            )
        })
}

#[test]
fn loop_device_ext4_space_and_inodes_within_one_block() {
    let mut lfs = LoopFs::new(64);
    let mut col = Collector::new(host_config("/ccol-no-such-cgroup")).unwrap();
    // Swept before the mount exists: the mount table is read again when the kernel says it
    // changed.
    let before = col.sweep();
    assert!(before
        .machine
        .filesystems
        .iter()
        .all(|f| f.mountpoint != lfs.mountpoint()));
    lfs.mount();
    let mp = lfs.mountpoint().to_string();
    let dev = format!("/dev/{}", lfs.name());

    let check = |s: &Snapshot, st: [u64; 6]| {
        let f = filesystem(s, &mp);
        let bs = st[0];
        let within = |ours: u64, theirs: u64, what: &str| {
            assert!(
                ours.abs_diff(theirs) <= bs,
                "{what}: ours {ours}, stat -f {theirs} (block {bs})"
            );
        };
        within(f.size_bytes, st[1] * bs, "size");
        within(f.free_bytes, st[2] * bs, "free");
        within(f.avail_bytes, st[3] * bs, "avail");
        assert_eq!(f.files, Some(st[4]));
        assert_eq!(f.files_free, Some(st[5]));
        assert_eq!(f.fstype, "ext4");
        assert_eq!(f.device.as_deref(), Some(lfs.name()));
        f.clone()
    };

    let empty_st = lfs.statfs();
    let empty = check(&col.sweep(), empty_st);
    assert!(empty.size_bytes > 50 * MIB && empty.size_bytes <= 64 * MIB);
    // 5 % reserved for root.
    assert!(empty.free_bytes > empty.avail_bytes + 2 * MIB);

    // 20 MiB written: used grows by 20 MiB, within one block.
    run_out(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={mp}/twenty"),
            "bs=1M",
            "count=20",
            "conv=fsync",
            "status=none",
        ],
    );
    let s = col.sweep();
    let after = check(&s, lfs.statfs());
    let used = |f: &collector_core::machine::Filesystem| f.size_bytes - f.free_bytes;
    let grew = used(&after) - used(&empty);
    assert!(
        grew.abs_diff(20 * MIB) <= 4096,
        "used grew by {grew}, not 20 MiB within one block"
    );
    assert_eq!(after.files_free, empty.files_free.map(|n| n - 1));
    let body = exposition(s);
    let l = [
        ("device", dev.as_str()),
        ("mountpoint", mp.as_str()),
        ("fstype", "ext4"),
    ];
    assert_eq!(
        value(&body, "machine_filesystem_size_bytes", &l),
        Some(after.size_bytes as f64)
    );
    assert_eq!(
        value(&body, "machine_filesystem_free_bytes", &l),
        Some(after.free_bytes as f64)
    );
    assert_eq!(
        value(&body, "machine_filesystem_avail_bytes", &l),
        Some(after.avail_bytes as f64)
    );
    assert_eq!(
        value(&body, "machine_filesystem_files", &l),
        Some(after.files.unwrap() as f64)
    );
    assert_eq!(
        value(&body, "machine_filesystem_files_free", &l),
        Some(after.files_free.unwrap() as f64)
    );

    // Filled up (as root, into the reserve too): nothing available; what is still free is
    // ext4's own reserve for metadata (2 % of the blocks at most), which nobody can take.
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={mp}/fill"),
            "bs=1M",
            "conv=fsync",
            "status=none",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    let full = check(&col.sweep(), lfs.statfs());
    assert_eq!(full.avail_bytes, 0);
    assert!(full.free_bytes < full.size_bytes / 25, "{full:?}");

    // Unmounted: gone from the next sweep.
    run_out("umount", &[&mp]);
    lfs.mounted = false;
    let s = col.sweep();
    assert!(s.machine.filesystems.iter().all(|f| f.mountpoint != mp));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn direct_io_reads_show_in_the_loop_devices_diskstats() {
    let mut lfs = LoopFs::new(32);
    lfs.mount();
    let mp = lfs.mountpoint().to_string();
    run_out(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={mp}/data"),
            "bs=1M",
            "count=8",
            "conv=fsync",
            "status=none",
        ],
    );
    let mut col = Collector::new(host_config("/ccol-no-such-cgroup")).unwrap();
    let read_bytes = |s: &Snapshot| {
        s.machine
            .disks
            .iter()
            .find(|d| d.name == lfs.name())
            .map_or(0, |d| d.read_bytes)
    };
    let before = read_bytes(&col.sweep());
    run_out(
        "dd",
        &[
            &format!("if={mp}/data"),
            "of=/dev/null",
            "bs=1M",
            "iflag=direct",
            "status=none",
        ],
    );
    let s = col.sweep();
    let after = read_bytes(&s);
    assert!(
        after >= before + 8 * MIB,
        "{}: read bytes {before} -> {after}, expected at least 8 MiB more",
        lfs.name()
    );
    let body = exposition(s);
    let dev = format!("/dev/{}", lfs.name());
    assert_eq!(
        value(&body, "machine_disk_read_bytes_total", &[("device", &dev)]),
        Some(after as f64)
    );
    assert!(
        value(
            &body,
            "machine_disk_reads_completed_total",
            &[("device", &dev)]
        )
        .unwrap()
            >= 8.0
    );
    assert!(
        value(
            &body,
            "machine_disk_written_bytes_total",
            &[("device", &dev)]
        )
        .unwrap()
            > 0.0
    );
}

// ---------------------------------------------------------------------------------------------
// A real Docker container.

/// A private dockerd (scripts/docker-test-env.sh) in its own directory; stopped by its pid
/// and removed, with its containers, on drop.
struct Dockerd {
    dir: PathBuf,
    sock: String,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/docker-test-env.sh");

impl Dockerd {
    fn start() -> Dockerd {
        Self::start_with(None)
    }

    /// With the data root on a tmpfs of `tmpfs` size (see the script).
    fn start_with(tmpfs: Option<&str>) -> Dockerd {
        require_root();
        for t in ["dockerd", "docker", "busybox"] {
            need(t);
        }
        // Short: the socket path must fit in 107 bytes.
        let dir = PathBuf::from("/tmp").join(unique("ccol-fs"));
        // Made before starting, so that a failed start is still cleaned up.
        let mut d = Dockerd {
            sock: String::new(),
            dir,
        };
        let mut cmd = Command::new(SCRIPT);
        cmd.args(["start", d.dir.to_str().unwrap()]);
        if let Some(size) = tmpfs {
            cmd.env("DOCKER_TEST_TMPFS", size);
        }
        let out = cmd.output().expect("scripts/docker-test-env.sh");
        assert!(
            out.status.success(),
            "docker-test-env.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        d.sock = String::from_utf8_lossy(&out.stdout).trim().to_string();
        d
    }

    fn image(&self) -> String {
        run_out(SCRIPT, &["image", self.dir.to_str().unwrap()])
            .trim()
            .to_string()
    }

    fn docker(&self, args: &[&str]) -> String {
        let mut all = vec!["-H", self.sock.as_str()];
        all.extend_from_slice(args);
        run_out("docker", &all).trim().to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn docker_config(id: &str, interval: Duration) -> Config {
    Config {
        include: vec![format!("/docker/{id}")],
        watch: false,
        rescan_interval: Duration::from_secs(1),
        load: false,
        fs: FsConfig {
            interval,
            ..FsConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn docker_container_writes_20_mb_into_its_layer() {
    let d = Dockerd::start();
    let image = d.image();
    let id = d.docker(&["run", "-d", "--network", "none", &image, "sleep", "1000"]);
    let cg = format!("/docker/{id}");
    let interval = Duration::from_secs(2);
    let mut col = Collector::new(docker_config(&id, interval)).unwrap();
    let (s, _) = sweep_until(&mut col, &cg, Duration::from_secs(20), |_| true);
    let base = s.get(&cg).unwrap().stats.fs.clone().unwrap();
    assert!(
        base.upperdir.starts_with(d.dir.to_str().unwrap()) && base.upperdir.ends_with("/diff"),
        "{}",
        base.upperdir
    );

    d.docker(&[
        "exec",
        &id,
        "dd",
        "if=/dev/zero",
        "of=/twenty",
        "bs=1048576",
        "count=20",
    ]);
    let written_ms = unix_ms();
    let (s, took) = sweep_until(&mut col, &cg, interval * 3, |f| {
        f.measured_ms > written_ms && f.usage_bytes >= base.usage_bytes + 20 * MIB
    });
    eprintln!(
        "container fs usage {} -> {} bytes, seen {took:?} after the write (interval {interval:?})",
        base.usage_bytes,
        s.get(&cg).unwrap().stats.fs.as_ref().unwrap().usage_bytes
    );
    // Within one filesystem interval (plus the few milliseconds of the walk and a sweep).
    assert!(took <= interval + Duration::from_secs(1), "took {took:?}");
    let fs = s.get(&cg).unwrap().stats.fs.clone().unwrap();
    assert!(fs.usage_bytes - base.usage_bytes >= 20 * MIB);
    let dev = fs.device.clone().expect("backing device name");
    let body = exposition(s);
    let usage = value(
        &body,
        "container_fs_usage_bytes",
        &[("id", cg.as_str()), ("device", &format!("/dev/{dev}"))],
    )
    .expect("container_fs_usage_bytes");
    assert!(usage >= (base.usage_bytes + 20 * MIB) as f64);
    let limit = value(&body, "container_fs_limit_bytes", &[("id", cg.as_str())]).unwrap();
    assert!(limit > usage);
    assert!(value(&body, "container_fs_inodes_total", &[("id", cg.as_str())]).unwrap() > 0.0);
    assert!(value(&body, "container_fs_inodes_free", &[("id", cg.as_str())]).unwrap() > 0.0);
    promtool_accepts(&body);

    d.docker(&["rm", "-f", &id]);
    // Gone with its container.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        col.rescan_soon();
        if col.sweep().get(&cg).is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "{cg} still reported");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `promtool check metrics` finds nothing to lint in the exposition (new families included).
fn promtool_accepts(body: &str) {
    use std::io::Write;
    let mut child = Command::new(need("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Percentile of sorted durations in microseconds.
fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn sweep_durations(col: &mut Collector, n: usize) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            let s = col.sweep();
            std::thread::sleep(Duration::from_millis(20));
            s.duration_us
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn a_million_files_in_a_layer_do_not_delay_sweeps() {
    // The layers on a tmpfs: a million inodes are made and dropped in seconds, and the shared
    // disk is spared. What is measured is the same: sweeps while a walker works through them.
    let d = Dockerd::start_with(Some("3g"));
    let image = d.image();
    let id = d.docker(&["run", "-d", "--network", "none", &image, "sleep", "1000"]);
    let cg = format!("/docker/{id}");
    // Every container under /docker is swept, as an exporter would.
    let mut cfg = docker_config(&id, Duration::from_secs(2));
    cfg.include = vec!["/docker".into()];
    // A budget well under the walk (about a second on tmpfs here), so the walk overruns it
    // however fast the machine is (at the default 1 s a quick run finished inside it).
    cfg.fs.walk_budget = Duration::from_millis(250);
    let mut col = Collector::new(cfg).unwrap();
    let (s, _) = sweep_until(&mut col, &cg, Duration::from_secs(20), |_| true);
    let upper = PathBuf::from(&s.get(&cg).unwrap().stats.fs.as_ref().unwrap().upperdir);
    let without = sweep_durations(&mut col, 100);

    // 1,000,000 empty files in 1,000 directories, made next to the layer (two threads) and
    // then moved into it in one rename, so the next walk meets the whole tree.
    let staging = upper.parent().unwrap().join("ccol-staging");
    let made = Instant::now();
    std::thread::scope(|sc| {
        for half in 0..2 {
            let staging = &staging;
            sc.spawn(move || {
                for i in (half..1000).step_by(2) {
                    let sub = staging.join(i.to_string());
                    std::fs::create_dir_all(&sub).unwrap();
                    for j in 0..1000 {
                        std::fs::File::create(sub.join(j.to_string())).unwrap();
                    }
                }
            });
        }
    });
    std::fs::rename(&staging, upper.join("many")).unwrap();
    eprintln!("made 1,000,000 files in {:?}", made.elapsed());
    // Sweeps while the walkers work through them, until the walk's result is in.
    let walk_started = Instant::now();
    let mut with = Vec::new();
    let mut done = None;
    while walk_started.elapsed() < Duration::from_secs(120) {
        let s = col.sweep();
        with.push(s.duration_us);
        let fs = s.get(&cg).and_then(|c| c.stats.fs.clone());
        if let Some(f) = fs.filter(|f| f.inodes_used > 1_000_000) {
            done = Some(f);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let fs = done.expect("the million-file layer measured within 120 s");
    with.sort_unstable();
    eprintln!(
        "sweep duration without the tree: p50 {} us, p95 {} us, max {} us ({} sweeps)",
        pct(&without, 0.5),
        pct(&without, 0.95),
        pct(&without, 1.0),
        without.len()
    );
    eprintln!(
        "sweep duration while walking it: p50 {} us, p95 {} us, max {} us ({} sweeps); \
         walk took {} ms, {} inodes, {} bytes, back-off x{}",
        pct(&with, 0.5),
        pct(&with, 0.95),
        pct(&with, 1.0),
        with.len(),
        fs.walk_duration_ms,
        fs.inodes_used,
        fs.usage_bytes,
        fs.backoff
    );
    assert!(fs.inodes_used >= 1_001_001, "{fs:?}");
    assert!(
        with.len() >= 20,
        "only {} sweeps during the walk",
        with.len()
    );
    // The sweep never waits for the walk: the walk takes seconds, a sweep milliseconds, and
    // the typical sweep is as fast as without the tree. (The maximum is printed, not checked:
    // on a shared 2-core machine any sweep can lose the CPU for a while.)
    assert!(
        pct(&with, 0.5) <= 2 * pct(&without, 0.5) + 2_000,
        "median sweep {} us with the tree vs {} us without",
        pct(&with, 0.5),
        pct(&without, 0.5)
    );
    assert!(
        pct(&with, 0.95) * 5 < fs.walk_duration_ms * 1000,
        "p95 sweep {} us vs walk {} ms",
        pct(&with, 0.95),
        fs.walk_duration_ms
    );
    // The walk ran over its budget: the layer is now walked less often.
    assert!(fs.backoff >= 2, "{fs:?}");
}
