//! Support for the integration tests: real cgroups, processes and network namespaces that a
//! test makes and that are removed when it ends, whatever the outcome.

pub mod runtimes;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use collector_core::{Container, Controller, Hierarchy, Roots, Snapshot};

pub mod fake_runtime;
pub mod grafana;
pub mod osmem;
pub mod servers;
pub mod vm;
pub mod webdriver;

/// The command that prepares a machine for the whole suite.
pub const SETUP: &str = "scripts/test.sh";

/// Exporter flags that turn every container runtime client off: the host's own runtimes (or
/// a socket a stopped daemon left) are not a test's business.
pub const NO_RUNTIMES: [&str; 6] = [
    "--runtime.docker-socket",
    "off",
    "--runtime.containerd-socket",
    "off",
    "--runtime.crio-socket",
    "off",
];

/// A name no other run of the suite uses at the same time.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Fails the test with a message naming the set-up command unless we are root.
pub fn require_root() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("this test needs root to make cgroups; run it through `{SETUP}` as root");
    }
}

/// One cgroup made in every v1 controller the collector reads and in the cgroup2 hierarchy.
pub struct TestCgroup {
    /// The cgroup id (`/ccol-live-...`).
    pub id: String,
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl TestCgroup {
    pub fn new(prefix: &str) -> TestCgroup {
        require_root();
        let h = Hierarchy::detect(&Roots::default()).expect("a cgroup hierarchy on this host");
        let id = format!("/{}", unique(prefix));
        let mut dirs = Vec::new();
        let mounts: Vec<_> = Controller::ALL
            .iter()
            .filter_map(|c| h.v1(*c))
            .chain(h.unified.iter())
            .collect();
        for m in mounts {
            let dir = m.dir_of(&id).expect("root mount");
            if dirs.contains(&dir) {
                continue;
            }
            make_dir(&dir);
            dirs.push(dir);
        }
        TestCgroup {
            id,
            dirs,
            children: Vec::new(),
        }
    }

    /// A cgroup `name` inside `parent`, in the same hierarchies (a runtime's layout such as
    /// `.../docker/<id>`). Drop it before its parent: declared after it, it is.
    pub fn under(parent: &TestCgroup, name: &str) -> TestCgroup {
        let dirs: Vec<PathBuf> = parent.dirs.iter().map(|d| d.join(name)).collect();
        for d in &dirs {
            make_dir(d);
        }
        TestCgroup {
            id: format!("{}/{name}", parent.id),
            dirs,
            children: Vec::new(),
        }
    }

    /// Removes the cgroup and makes it again under the same name, as a runtime restarting a
    /// container in place does.
    pub fn recreate(&mut self) {
        self.kill_all();
        self.remove_dirs();
        for d in &self.dirs {
            make_dir(d);
        }
    }

    /// Kills its processes and removes its directories; `recreate` makes them again.
    pub fn remove(&mut self) {
        self.kill_all();
        self.remove_dirs();
    }

    fn remove_dirs(&self) {
        // What the test's children started (a shell's own children) is still in the
        // cgroup, which holds nothing else: killed by the pids it lists.
        for d in &self.dirs {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: a plain syscall on a pid read from this test's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for d in self.dirs.iter().rev() {
            // A killed task may take a moment to leave the cgroup.
            for _ in 0..50 {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        }
    }

    /// The directories made, one per hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Writes `value` to control file `file` in whichever of the cgroup's directories has
    /// it; false where none has it (a controller not mounted, the other cgroup version).
    pub fn set_where_present(&self, file: &str, value: &str) -> bool {
        match self.dirs.iter().find(|d| d.join(file).exists()) {
            Some(d) => std::fs::write(d.join(file), value).is_ok(),
            None => false,
        }
    }

    pub fn dir_containing(&self, part: &str) -> &Path {
        self.dirs
            .iter()
            .find(|d| d.to_string_lossy().contains(part))
            .unwrap_or_else(|| panic!("no {part} dir among {:?}", self.dirs))
    }

    /// Writes a control file in the hierarchy whose mount path contains `part`.
    pub fn set(&self, part: &str, file: &str, value: &str) {
        let p = self.dir_containing(part).join(file);
        std::fs::write(&p, value).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// Starts `cmd` already inside the cgroup (it moves itself before exec), so everything it
    /// allocates is charged here.
    pub fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let procs: Vec<std::ffi::CString> = self
            .dirs
            .iter()
            .map(|d| {
                std::ffi::CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes())
                    .unwrap()
            })
            .collect();
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        // SAFETY: only open/write/close, which are async-signal-safe, run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // A program the test has just copied may be "busy" for a moment: a process forked
        // meanwhile by another test's thread holds the copy's descriptor until it execs.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r.expect("spawn test process"),
            }
        };
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Kills one child, by the pid `spawn` returned, and reaps it.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the children now (the cgroup stays).
    pub fn kill_all(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.kill_all();
        self.remove_dirs();
    }
}

fn make_dir(dir: &Path) {
    std::fs::create_dir(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    // A v1 cpuset starts empty and takes no task until it has CPUs and memory nodes.
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if let (Some(parent), true) = (dir.parent(), dir.join(f).exists()) {
            if let Ok(v) = std::fs::read_to_string(parent.join(f)) {
                let _ = std::fs::write(dir.join(f), v.trim());
            }
        }
    }
}

/// Two network namespaces joined by a veth pair, with addresses on the link between them.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
    pub a_if: String,
    pub a_addr: &'static str,
    pub b_addr: &'static str,
}

impl NetnsPair {
    pub fn create() -> NetnsPair {
        // Link-local addresses on a link that exists only between the two test namespaces.
        NetnsPair::with_addrs("169.254.77.1", "169.254.77.2")
    }

    /// The same with the test's own addresses (a /30 of them).
    pub fn with_addrs(a_addr: &'static str, b_addr: &'static str) -> NetnsPair {
        require_root();
        let tag = unique("ccol");
        let short = &tag[tag.len().saturating_sub(8)..];
        let pair = NetnsPair {
            a: format!("{tag}-a"),
            b: format!("{tag}-b"),
            a_if: format!("va{short}"),
            a_addr,
            b_addr,
        };
        let b_if = format!("vb{short}");
        run("ip", &["netns", "add", &pair.a]);
        run("ip", &["netns", "add", &pair.b]);
        run(
            "ip",
            &[
                "link", "add", &pair.a_if, "netns", &pair.a, "type", "veth", "peer", "name", &b_if,
                "netns", &pair.b,
            ],
        );
        for (ns, ifname, addr) in [
            (&pair.a, &pair.a_if, pair.a_addr),
            (&pair.b, &b_if, pair.b_addr),
        ] {
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/30"),
                    "dev",
                    ifname,
                ],
            );
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// A command that runs inside namespace `ns`.
    pub fn exec(ns: &str, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]).args(args);
        c
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and with it the peer.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs a set-up command and fails loudly, naming it, when it does not succeed.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}); install it with `{SETUP}`"));
    if !out.status.success() {
        let _ = std::io::stderr().write_all(&out.stderr);
        panic!("`{program} {}` failed: {}", args.join(" "), out.status);
    }
}

/// The exporter running as a child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Exporter {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    /// Its stderr after the "listening" line, collected by a thread.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Exporter {
    /// Starts `bin` listening on a free loopback port (port 0) and waits for its address.
    pub fn start(bin: &str, args: &[&str]) -> Exporter {
        let mut cmd = Command::new(bin);
        cmd.args(["--web.listen-address", "127.0.0.1:0"]).args(args);
        Exporter::start_command(cmd)
    }

    /// Starts the exporter as `cmd` runs it (which must give it a listen address, port 0
    /// for a free one), and waits for its address.
    pub fn start_command(mut cmd: Command) -> Exporter {
        use std::io::BufRead;
        let bin = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if !sent {
                    // Plain HTTP or TLS (`get` speaks plain HTTP only).
                    let found = line
                        .split("listening on http://")
                        .nth(1)
                        .or_else(|| line.split("listening on https://").nth(1));
                    if let Some(a) = found {
                        let _ = tx.send(a.trim().to_string());
                        sent = true;
                    }
                }
                if let Ok(mut l) = log2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let addr = match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "exporter did not start: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Exporter { child, addr, log }
    }

    /// GET `path`, waiting (up to 10 s) until the exporter has a first sweep.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = http_get(self.addr, path, headers);
            if r.status != 503 || std::time::Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 GET (Connection: close), enough to test our own server.
pub fn http_get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(addr, "GET", path, headers, &[])
}

/// A POST with a body of the given type.
pub fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> HttpResponse {
    http_request(addr, "POST", path, &[("Content-Type", content_type)], body)
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 request with `Connection: close`; panics on any I/O error.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// One HTTP/1.1 request with `Connection: close`; for probes that expect failures while a
/// server starts.
pub fn try_http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::{Error, ErrorKind, Read};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("no {what} in the answer"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if method == "HEAD" {
        body.clear();
    } else if chunked {
        body = dechunk(&body).ok_or_else(|| bad("last chunk (the body was cut short)"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The body of a chunked answer; `None` unless it ends with the zero-sized last chunk.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).ok()?;
        let start = eol + 2;
        if size == 0 {
            return Some(out);
        }
        if b.len() < start + size {
            return None;
        }
        out.extend_from_slice(&b[start..start + size]);
        b = b.get(start + size + 2..).unwrap_or(&[]);
    }
    None
}

/// Waits `secs`, then scrapes `/metrics` and asserts the exporter swept on its 500 ms interval
/// meanwhile (at least 80% of the sweeps due); returns the body and the sweeps counted.
pub fn swept_on_500ms_interval(exp: &Exporter, secs: u64) -> (String, f64) {
    let started = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let body = exp.get("/metrics").text();
    let elapsed = started.elapsed().as_secs_f64();
    let sweeps = samples(&body, "collector_sweeps_total")
        .first()
        .map_or(0.0, |(_, v)| *v);
    assert!(
        sweeps >= elapsed * 2.0 * 0.8,
        "{sweeps} sweeps in {elapsed:.1} s at 500 ms"
    );
    (body, sweeps)
}

/// Parses the Prometheus text format into (name, labels, value) for the lines of a family.
pub fn samples<'a>(body: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| {
            let (left, v) = l.rsplit_once(' ')?;
            Some((left, v.parse().ok()?))
        })
        .collect()
}

/// The container `id` of a snapshot; fails the test, with the sweep's errors, when it is not
/// there.
pub fn find<'a>(s: &'a Snapshot, id: &str) -> &'a Container {
    s.get(id)
        .unwrap_or_else(|| panic!("{id} not found; errors: {:?}", s.errors))
}

/// A process that only waits (`sleep 600`), to hold a cgroup busy without using CPU.
pub fn sleeper() -> Command {
    let mut c = Command::new("sleep");
    c.arg("600");
    c
}

/// The repository's root (the parent of `tests/`), for tests of the files it ships.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Waits up to 10 s until `path` exists (a test workload's ready file), naming `what` if not.
pub fn wait_for_file(path: &Path, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not get ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The `tcp_peer` test program (`bin`, the test's `CARGO_BIN_EXE_tcp_peer`) in cgroup `cg` and
/// network namespace `ns`, in `mode` (`serve`, `listen` or `connect`) on `addr`; returns its
/// pid once it is ready.
pub fn tcp_peer(bin: &str, cg: &mut TestCgroup, ns: &str, mode: &str, addr: &str) -> u32 {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ready = dir.path().join("ready");
    let ready_arg = ready.to_str().expect("a utf-8 temp path").to_owned();
    let mut cmd = NetnsPair::exec(ns, bin, &[mode, addr, &ready_arg]);
    cmd.stderr(std::process::Stdio::null());
    let pid = cg.spawn(&mut cmd);
    wait_for_file(&ready, "tcp_peer");
    pid
}

/// Runs `cmd` to its end; a program that is not installed fails the test naming the set-up
/// command that installs it.
pub fn run_tool(cmd: &mut Command) -> std::process::Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed (or not on PATH): run {SETUP} (it installs it)")
        }
        Err(e) => panic!("running {program}: {e}"),
    }
}

/// A finished program's stdout then stderr, as text.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Sweeps `rounds` times, 100 ms apart: the security findings of cgroup `id` made events in
/// those sweeps (each event's kind checked against its finding's), and the last snapshot.
pub fn findings_over(
    col: &mut collector_core::Collector,
    id: &str,
    rounds: usize,
) -> (
    Vec<collector_core::security::Finding>,
    collector_core::Snapshot,
) {
    let mut found = Vec::new();
    let mut last = None;
    for i in 0..rounds {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let snap = col.sweep();
        for e in snap.events.iter().filter(|e| e.id == id) {
            if let (collector_core::EventKind::Finding(kind), Some(f)) =
                (e.kind, e.finding.as_deref())
            {
                assert_eq!(kind, f.kind);
                found.push(f.clone());
            }
        }
        last = Some(snap);
    }
    (found, last.expect("at least one sweep"))
}

/// One sweep of a kernel capture in tests/fixtures (`cgroup-v2-kubepods`, ...): a snapshot
/// with every figure, read from files only.
pub fn fixture_snapshot(capture: &str) -> collector_core::Snapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(capture);
    let mut c = collector_core::Collector::new(collector_core::Config {
        roots: collector_core::Roots::under(&root),
        watch: false,
        load: false,
        ..collector_core::Config::default()
    })
    .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    c.sweep()
}

/// A tmpfs of `size` (`1m`) mounted on a temporary directory, unmounted when dropped (also
/// when the test panics), with a read-only bind mount over a directory in it on request.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    binds: Vec<PathBuf>,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        require_root();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let opts = format!("size={size}");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &opts,
                "tmpfs",
                &dir.path().to_string_lossy(),
            ],
        );
        Tmpfs {
            dir,
            binds: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes `sub` (a directory under the mount) read-only for every new open: a read-only
    /// bind mount over it. Files already open for writing stay writable, as the kernel
    /// refuses to remount a filesystem read-only while any are.
    pub fn make_read_only(&mut self, sub: &Path) {
        let p = sub.to_string_lossy().into_owned();
        run("mount", &["--bind", &p, &p]);
        self.binds.push(sub.to_path_buf());
        run("mount", &["-o", "remount,bind,ro", &p]);
    }

    /// Takes the read-only bind mounts away again.
    pub fn make_writable(&mut self) {
        for b in self.binds.drain(..).rev() {
            run("umount", &[&b.to_string_lossy()]);
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for b in self.binds.drain(..).rev() {
            let _ = Command::new("umount").arg("-l").arg(&b).status();
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
