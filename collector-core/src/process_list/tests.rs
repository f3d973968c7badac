use super::*;
use crate::hierarchy::Controller;
use crate::mountinfo;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A fixture host: `proc/`, `sys/` with the memory hierarchy and its cgroup2 twin, and
/// `host/etc/passwd`.
struct Fixture {
    _dir: tempfile::TempDir,
    roots: Roots,
    hierarchy: Hierarchy,
    host_root: PathBuf,
}

const MOUNTS: &str = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
    41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

/// Field 3 onwards of a stat line: state S, ppid 1, utime 250, stime 50, 3 threads, started
/// 500 ticks after boot, 10 resident pages.
const STAT_TAIL: &str = "S 1 100 100 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 500 8192 10 0\n";

fn write(path: &Path, text: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("a fixture dir");
    }
    std::fs::write(path, text).expect("a fixture file");
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temp dir");
        let roots = Roots::under(dir.path());
        let (mounts, _) = mountinfo::parse(MOUNTS);
        let hierarchy = Hierarchy::from_mounts(&mounts, &roots).expect("a hierarchy");
        let host_root = dir.path().join("host");
        write(
            &roots.proc_root.join("stat"),
            b"cpu  1 2 3\nbtime 1700000000\n",
        );
        write(
            &host_root.join("etc/passwd"),
            b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n\
              shadow:x:1000:1000::/:/bin/false\n",
        );
        Fixture {
            _dir: dir,
            roots,
            hierarchy,
            host_root,
        }
    }

    /// `<proc>/<pid>` with a stat of `comm` and an effective uid; no fd, exe or cmdline yet.
    fn process(&self, pid: u32, comm: &str, euid: u32) -> PathBuf {
        let d = self.roots.proc_root.join(pid.to_string());
        write(
            &d.join("stat"),
            format!("{pid} ({comm}) {STAT_TAIL}").as_bytes(),
        );
        write(
            &d.join("status"),
            format!("Name:\t{comm}\nUid:\t5\t{euid}\t{euid}\t{euid}\n").as_bytes(),
        );
        d
    }

    /// The cgroup's directory in the hierarchy `mount` (`memory` or `unified`), listing `pids`.
    fn cgroup(&self, mount: &str, id: &str, pids: &str) {
        let d = self.roots.sys_root.join("fs/cgroup").join(mount);
        write(
            &d.join(id.trim_start_matches('/')).join("cgroup.procs"),
            pids.as_bytes(),
        );
    }

    fn list(&self, id: &str) -> Result<ProcessList> {
        list_processes(&self.roots, &self.hierarchy, id, &self.host_root)
    }
}

fn sysconf(v: nix::unistd::SysconfVar) -> u64 {
    nix::unistd::sysconf(v)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .expect("sysconf")
}

/// Two processes and one that is gone: an odd comm, an argv, descriptors of which one is a
/// socket; then one whose `fd` cannot be listed, with no exe or command line.
#[test]
fn lists_a_fixture_container() {
    let f = Fixture::new();
    // The hybrid twin holds none of its processes: the v1 hierarchy is read.
    f.cgroup("memory", "/docker/abc", "200\n100\n300\n100\n");
    f.cgroup("unified", "/docker/abc", "");
    let d = f.process(100, "x) (y", 1000);
    std::fs::create_dir(d.join("fd")).expect("fd dir");
    for (fd, target) in [
        ("0", "/dev/null"),
        ("1", "socket:[4242]"),
        ("2", "pipe:[7]"),
    ] {
        symlink(target, d.join("fd").join(fd)).expect("fd link");
    }
    symlink("/usr/bin/x", d.join("exe")).expect("exe link");
    write(&d.join("cmdline"), b"x\0--flag\0a b\0");
    // Not a directory: its descriptors cannot be listed.
    let d = f.process(200, "k", 4321);
    write(&d.join("fd"), b"");

    let list = f.list("/docker/abc").expect("a list");
    assert!(!list.truncated);
    let (tck, page) = (
        sysconf(nix::unistd::SysconfVar::CLK_TCK),
        sysconf(nix::unistd::SysconfVar::PAGE_SIZE),
    );
    let first = ProcessInfo {
        pid: 100,
        ppid: 1,
        user: Some("alice".into()),
        uid: 1000,
        comm: "x) (y".into(),
        exe: "/usr/bin/x".into(),
        cmdline: "x --flag a b".into(),
        start_time_ms: 1_700_000_000_000 + 500 * 1000 / tck,
        cpu_seconds: 300.0 / tck as f64,
        rss_bytes: 10 * page,
        threads: 3,
        fds: Some(3),
        sockets: Some(1),
        state: 'S',
    };
    let second = ProcessInfo {
        pid: 200,
        user: None,
        uid: 4321,
        comm: "k".into(),
        exe: String::new(),
        cmdline: String::new(),
        fds: None,
        sockets: None,
        ..first.clone()
    };
    assert_eq!(list.processes, vec![first, second]);
    let json = serde_json::to_value(&list).expect("json");
    assert_eq!(json["processes"][0]["state"], "S");
    assert_eq!(json["processes"][1]["fds"], serde_json::Value::Null);
}

/// A cgroup only in cgroup2 is read there; one in no hierarchy reads as vanished.
#[test]
fn falls_back_to_cgroup2_and_a_missing_cgroup_is_vanished() {
    let f = Fixture::new();
    f.process(7, "sh", 0);
    std::fs::create_dir(f.roots.proc_root.join("7/fd")).expect("fd dir");
    f.cgroup("unified", "/user.slice", "7\n");
    let list = f.list("/user.slice").expect("a list");
    assert_eq!(list.processes.len(), 1);
    assert_eq!(list.processes[0].user.as_deref(), Some("root"));
    match f.list("/docker/nope") {
        Err(Error::Read { path, source }) => {
            assert!(is_vanished(&source), "{source}");
            assert!(
                path.ends_with("unified/docker/nope/cgroup.procs"),
                "{path:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ids_must_be_absolute_and_not_climb() {
    let f = Fixture::new();
    for id in ["docker/abc", "", "/docker/../..", "/..", "/a/\0"] {
        match f.list(id) {
            Err(Error::Invalid { what, .. }) => assert_eq!(what, "container id"),
            other => panic!("{id:?}: {other:?}"),
        }
    }
    // `..` inside a name is no parent directory: not found, not refused.
    assert!(matches!(f.list("/a..b"), Err(Error::Read { .. })));
}

/// A stat that does not parse is an error naming the file, not a process left out quietly.
#[test]
fn a_bad_stat_names_its_path() {
    let f = Fixture::new();
    f.cgroup("memory", "/c", "9\n");
    write(&f.roots.proc_root.join("9/stat"), b"9 (sh) S 1\n");
    match f.list("/c") {
        Err(e @ Error::Parse { .. }) => {
            assert!(e.to_string().contains("9/stat"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// More than the bound: the lowest pids are listed and the list says it was cut.
#[test]
fn the_list_is_bounded() {
    let f = Fixture::new();
    let pids: String = (1..=MAX_PROCESSES as u32 + 2)
        .map(|p| format!("{p}\n"))
        .collect();
    f.cgroup("memory", "/big", &pids);
    // None of them exists: all gone, which is no error.
    let list = f.list("/big").expect("a list");
    assert!(list.truncated);
    assert!(list.processes.is_empty());
}

#[test]
fn command_lines_are_cut_on_a_character() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let p = dir.path().join("cmdline");
    let mut long = vec![b'a'; CMDLINE_MAX - 1];
    long.extend_from_slice("é\0tail\0".as_bytes());
    std::fs::write(&p, &long).expect("cmdline");
    // The limit falls inside `é`: the half of it is dropped, not turned into U+FFFD.
    assert_eq!(cmdline(&p), "a".repeat(CMDLINE_MAX - 1));
    assert_eq!(cmdline(&dir.path().join("none")), "");
}

/// The real `/proc`: this test process, found in its own cgroup.
#[test]
fn lists_this_test_process() {
    let roots = Roots::default();
    let h = Hierarchy::detect(&roots).expect("a cgroup hierarchy");
    let id = own_cgroup(&h);
    let list = list_processes(&roots, &h, &id, Path::new("/")).expect("a list");
    let me = std::process::id();
    let p = list
        .processes
        .iter()
        .find(|p| p.pid == me)
        .unwrap_or_else(|| panic!("{me} not in {id}: {list:?}"));
    let comm = std::fs::read_to_string("/proc/self/comm").expect("comm");
    assert_eq!(p.comm, comm.trim_end_matches('\n'));
    let exe = std::env::current_exe().expect("exe");
    assert_eq!(p.exe, exe.to_string_lossy());
    let arg0 = std::env::args().next().expect("argv[0]");
    assert!(p.cmdline.starts_with(&arg0), "{:?}", p.cmdline);
    assert_eq!(p.ppid, nix::unistd::getppid().as_raw() as u32);
    assert_eq!(p.uid, nix::unistd::geteuid().as_raw());
    assert!(p.fds.is_some_and(|n| n >= 1) && p.sockets.is_some());
    assert!(p.threads >= 1 && p.rss_bytes > 0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64;
    // btime is rounded to the second and ticks to 10 ms.
    assert!(
        p.start_time_ms <= now_ms + 2000 && p.start_time_ms + 3_600_000 > now_ms,
        "started {} now {now_ms}",
        p.start_time_ms
    );
}

/// This process's cgroup in the hierarchy `list_processes` reads first.
fn own_cgroup(h: &Hierarchy) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let want: Option<Controller> = if h.setup == Setup::Unified {
        None
    } else {
        PREFERENCE.into_iter().find(|&c| h.v1(c).is_some())
    };
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, names, path) = (f.next()?, f.next()?, f.next()?);
            let hit = match want {
                None => names.is_empty(),
                Some(c) => names.split(',').any(|n| n == c.name()),
            };
            hit.then(|| path.to_string())
        })
        .expect("this process's cgroup")
}
