//! Judging a process and a connection against simple rules. Pure: the caller reads `/proc`
//! and the socket tables, and passes what it found.
//!
//! These are leads for an operator, not verdicts: names and ports are easy to change, and
//! each rule says below which ordinary setups can trip it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::sockets::{SocketRow, TcpState};

/// What was found. Serialized as [`FindingKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A process named like a cryptocurrency miner, or whose command line points at a pool.
    MinerProcess,
    /// A TCP connection going out to a port mining pools commonly use.
    MinerPortConnection,
    /// A shell whose stdin and stdout are an outgoing TCP connection.
    ReverseShell,
    /// The executable is in the container's writable layer, not in its image.
    ExecFromWritableLayer,
    /// The executable has no file: a memfd, or a file deleted since it was started.
    FilelessExec,
    /// A listening socket not seen in earlier sweeps. Decided by the caller.
    NewListener,
    /// A process outside the container's expected set. Decided by the caller's policy.
    UnexpectedProcess,
    /// A peer (address, port and direction) first met after the container's learning
    /// window. Decided by the caller.
    NewPeer,
    /// A connection it opened to a peer its image's `allowed_peers` does not allow. Decided
    /// by the caller's policy.
    UnauthorizedConnection,
}

impl FindingKind {
    /// Every kind, in the order counters and metrics list them.
    pub const ALL: [FindingKind; 9] = [
        FindingKind::MinerProcess,
        FindingKind::MinerPortConnection,
        FindingKind::ReverseShell,
        FindingKind::ExecFromWritableLayer,
        FindingKind::FilelessExec,
        FindingKind::NewListener,
        FindingKind::UnexpectedProcess,
        FindingKind::NewPeer,
        FindingKind::UnauthorizedConnection,
    ];

    /// The kind's name in metric labels and events (`miner_process`, `new_peer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::MinerProcess => "miner_process",
            FindingKind::MinerPortConnection => "miner_port_connection",
            FindingKind::ReverseShell => "reverse_shell",
            FindingKind::ExecFromWritableLayer => "exec_from_writable_layer",
            FindingKind::FilelessExec => "fileless_exec",
            FindingKind::NewListener => "new_listener",
            FindingKind::UnexpectedProcess => "unexpected_process",
            FindingKind::NewPeer => "new_peer",
            FindingKind::UnauthorizedConnection => "unauthorized_connection",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The lists the rules match against. Names and patterns match ASCII case-insensitively;
/// empty entries are ignored (an empty pattern would match everything).
///
/// Fields given when deserializing replace the built-in list; [`Rules::extend`] adds to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rules {
    /// Executable names (`comm` or the basename of `exe`).
    pub miner_names: Vec<String>,
    /// Substrings of the command line; its NUL separators match a space.
    pub cmdline_patterns: Vec<String>,
    /// Remote TCP ports of mining pools.
    pub pool_ports: Vec<u16>,
    /// Executable names of shells.
    pub shells: Vec<String>,
}

// The built-in lists are the publicly documented names of common miner programs and of
// malware known to drop miners into containers, and the URL schemes, options, pool domains
// and ports that public pools and miner configurations use.
const MINER_NAMES: &[&str] = &[
    "xmrig",
    "xmrig-notls",
    "xmrig-proxy",
    "xmr-stak",
    "xmr-stak-cpu",
    "xmr-stak-rx",
    "minerd",
    "cpuminer",
    "cpuminer-multi",
    "ccminer",
    "cgminer",
    "bfgminer",
    "sgminer",
    "ethminer",
    "t-rex",
    "nbminer",
    "lolminer",
    "phoenixminer",
    "nanominer",
    "teamredminer",
    "srbminer-multi",
    "wildrig-multi",
    "kdevtmpfsi",
    "kinsing",
];

// No `-o pool.`: it also matches `cc -o pool.o`. Pool URLs are caught by their scheme or
// domain instead.
const CMDLINE_PATTERNS: &[&str] = &[
    "stratum+tcp://",
    "stratum+ssl://",
    "stratum+tls://",
    "stratum1+tcp://",
    "stratum2+tcp://",
    "stratum2+ssl://",
    "--donate-level",
    "cryptonight",
    "randomx",
    "supportxmr.com",
    "minexmr.com",
    "moneroocean.stream",
    "nanopool.org",
    "c3pool.com",
    "hashvault.pro",
    "herominers.com",
    "2miners.com",
    "f2pool.com",
    "nicehash.com",
    "unmineable.com",
];

// Ports that also serve ordinary services (3333, 4444, 5555, 7777) are kept: the rule only
// looks at outgoing connections, and a hit is a lead to check, not proof.
const POOL_PORTS: &[u16] = &[3333, 4444, 5555, 7777, 10128, 13333, 14433, 14444, 45700];

// `busybox sh` runs with `comm` `sh`, so busybox itself is not listed (it is also `nc`,
// `httpd`, ...).
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
];

impl Default for Rules {
    fn default() -> Self {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rules {
            miner_names: owned(MINER_NAMES),
            cmdline_patterns: owned(CMDLINE_PATTERNS),
            pool_ports: POOL_PORTS.to_vec(),
            shells: owned(SHELLS),
        }
    }
}

impl Rules {
    /// Rules that match nothing, to build from.
    pub fn empty() -> Self {
        Rules {
            miner_names: Vec::new(),
            cmdline_patterns: Vec::new(),
            pool_ports: Vec::new(),
            shells: Vec::new(),
        }
    }

    /// Adds the entries of `other` not already present.
    pub fn extend(&mut self, other: Rules) {
        fn add(to: &mut Vec<String>, from: Vec<String>) {
            for s in from {
                if !to.iter().any(|t| t.eq_ignore_ascii_case(&s)) {
                    to.push(s);
                }
            }
        }
        add(&mut self.miner_names, other.miner_names);
        add(&mut self.cmdline_patterns, other.cmdline_patterns);
        add(&mut self.shells, other.shells);
        for p in other.pool_ports {
            if !self.pool_ports.contains(&p) {
                self.pool_ports.push(p);
            }
        }
    }
}

/// What an open file descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fd {
    /// A tty, pipe, file, ...
    Other,
    /// A socket.
    Socket {
        /// The socket's inode, as in `socket:[<inode>]`; the socket tables' `inode` column.
        inode: u64,
    },
    /// The fd could not be read (closed, or no rights).
    Unknown,
}

impl Fd {
    /// From the target of `/proc/<pid>/fd/<n>`, e.g. `socket:[12345]` or `/dev/pts/0`.
    pub fn from_link(target: &str) -> Fd {
        match target.strip_prefix("socket:[") {
            Some(rest) => rest
                .strip_suffix(']')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map_or(Fd::Unknown, |inode| Fd::Socket { inode }),
            None => Fd::Other,
        }
    }
}

/// A process as read from `/proc/<pid>`.
#[derive(Debug, Clone, Copy)]
pub struct Process<'a> {
    /// `/proc/<pid>/comm`: at most 15 bytes, and settable by the process itself.
    pub comm: &'a str,
    /// The target of `/proc/<pid>/exe`; may start with `/memfd:` or end in ` (deleted)`;
    /// empty when it could not be read.
    pub exe: &'a str,
    /// `/proc/<pid>/cmdline`: NUL-separated arguments, already cut to a bounded length.
    pub cmdline: &'a [u8],
    /// File descriptors 0, 1 and 2.
    pub stdio: [Fd; 3],
}

/// A connection from a socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// This end of the connection.
    pub local: SocketAddr,
    /// The other end; unspecified (`0.0.0.0:0`) for a listening socket.
    pub remote: SocketAddr,
    /// `None` for a UDP socket.
    pub tcp_state: Option<TcpState>,
}

impl Conn {
    /// From a row of a `tcp` or `tcp6` table.
    pub fn tcp(row: &SocketRow) -> Conn {
        Conn {
            local: row.local,
            remote: row.remote,
            tcp_state: row.tcp_state(),
        }
    }
}

/// Judges one process, pushing each kind found (at most once) to `out`.
///
/// - `exe_in_upper_layer`: the caller found the executable in the container's overlay upper
///   directory, i.e. written after the container started rather than shipped in the image.
///   Passed through as [`FindingKind::ExecFromWritableLayer`]; package installs and
///   self-updating programs inside a container trip it too.
/// - `stdio_conn`: the TCP connection of a socket inode, if it is in the container's `tcp`
///   or `tcp6` table (unix sockets are not, so they never make a reverse shell).
/// - `is_listening_port`: whether the container has a TCP socket listening on this port.
pub fn judge_process(
    p: &Process<'_>,
    rules: &Rules,
    exe_in_upper_layer: bool,
    stdio_conn: &dyn Fn(u64) -> Option<Conn>,
    is_listening_port: &dyn Fn(u16) -> bool,
    out: &mut Vec<FindingKind>,
) {
    let exe_name = exe_name(p.exe);
    if names_match(&rules.miner_names, p.comm, exe_name)
        || rules
            .cmdline_patterns
            .iter()
            .any(|pat| contains_folded(p.cmdline, pat.as_bytes()))
    {
        out.push(FindingKind::MinerProcess);
    }
    if is_fileless(p.exe) {
        out.push(FindingKind::FilelessExec);
    }
    if exe_in_upper_layer {
        out.push(FindingKind::ExecFromWritableLayer);
    }
    // A shell from sshd, `docker exec -t` or a web terminal has a pty; one from
    // `docker exec` without a tty has pipes. A shell handed a socket by an inetd-style server
    // in the container has an accepted connection, whose local port is a listener's. What is
    // left is a shell wired to a connection it (or its parent) opened: `bash -i >&
    // /dev/tcp/...`, `nc -e /bin/sh`, a script's `dup2(s, 0)`. A relay that gives the shell
    // a pty (`socat ... pty`, `pty.spawn`) hides it from this rule.
    let outward = |fd: Fd| match fd {
        Fd::Socket { inode } => stdio_conn(inode).is_some_and(|c| {
            c.tcp_state == Some(TcpState::Established) && !is_listening_port(c.local.port())
        }),
        Fd::Other | Fd::Unknown => false,
    };
    if names_match(&rules.shells, p.comm, exe_name) && outward(p.stdio[0]) && outward(p.stdio[1]) {
        out.push(FindingKind::ReverseShell);
    }
}

/// [`FindingKind::MinerPortConnection`] for a TCP connection going out (ESTABLISHED, or
/// SYN_SENT: a pool the network blocks still shows the attempt) to a pool port.
///
/// A connection whose local port is a listener's was accepted, not opened, so a client's
/// ephemeral port that happens to be a pool port (45700 is in Linux's range) does not count.
/// Loopback is not special-cased: a local proxy to a pool is as telling.
pub fn judge_connection(
    conn: &Conn,
    rules: &Rules,
    is_listening_port: &dyn Fn(u16) -> bool,
) -> Option<FindingKind> {
    let opening = matches!(
        conn.tcp_state,
        Some(TcpState::Established | TcpState::SynSent)
    );
    (opening
        && rules.pool_ports.contains(&conn.remote.port())
        && !is_listening_port(conn.local.port()))
    .then_some(FindingKind::MinerPortConnection)
}

/// Whether a process is a shell, by its `comm` or its executable's name.
pub fn is_shell(rules: &Rules, comm: &str, exe: &str) -> bool {
    names_match(&rules.shells, comm, exe_name(exe))
}

/// True for an executable with no file behind it. A binary replaced by a package upgrade
/// while it ran also shows ` (deleted)`.
fn is_fileless(exe: &str) -> bool {
    exe.starts_with("/memfd:") || exe.ends_with(" (deleted)")
}

/// The name part of an `exe` link: `/usr/bin/xmrig (deleted)` and `/memfd:xmrig` give `xmrig`.
fn exe_name(exe: &str) -> &str {
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    if let Some(name) = exe.strip_prefix("/memfd:") {
        return name;
    }
    exe.rsplit('/').next().unwrap_or(exe)
}

fn names_match(names: &[String], comm: &str, exe_name: &str) -> bool {
    names.iter().filter(|n| !n.is_empty()).any(|n| {
        comm_matches(comm, n) || (!exe_name.is_empty() && exe_name.eq_ignore_ascii_case(n))
    })
}

/// The kernel cuts `comm` to 15 bytes, so a 15-byte `comm` matches a longer name it starts.
fn comm_matches(comm: &str, name: &str) -> bool {
    const COMM_MAX: usize = 15;
    let (c, n) = (comm.as_bytes(), name.as_bytes());
    if c.is_empty() {
        return false;
    }
    if c.len() == COMM_MAX && n.len() > COMM_MAX {
        return n.get(..COMM_MAX).is_some_and(|p| p.eq_ignore_ascii_case(c));
    }
    c.eq_ignore_ascii_case(n)
}

/// Whether `needle` occurs in `hay`, ASCII case-insensitively, a NUL in `hay` matching a space
/// (so `-o pool` matches the arguments `-o`, `pool`).
fn contains_folded(hay: &[u8], needle: &[u8]) -> bool {
    let fold = |b: u8| if b == 0 { b' ' } else { b.to_ascii_lowercase() };
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.iter().zip(needle).all(|(&h, &n)| fold(h) == fold(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn proc<'a>(comm: &'a str, exe: &'a str, cmdline: &'a [u8]) -> Process<'a> {
        Process {
            comm,
            exe,
            cmdline,
            stdio: [Fd::Other; 3],
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The container: a web server listening on 8080; socket 7 an outgoing connection,
    /// socket 8 one accepted on 8080.
    fn conn_of(inode: u64) -> Option<Conn> {
        let est = Some(TcpState::Established);
        match inode {
            7 => Some(Conn {
                local: sa("10.0.0.2:40000"),
                remote: sa("203.0.113.9:4444"),
                tcp_state: est,
            }),
            8 => Some(Conn {
                local: sa("10.0.0.2:8080"),
                remote: sa("198.51.100.3:51000"),
                tcp_state: est,
            }),
            _ => None,
        }
    }

    fn listening(port: u16) -> bool {
        port == 8080
    }

    fn judge_rules(p: &Process<'_>, rules: &Rules, upper: bool) -> Vec<FindingKind> {
        let mut out = Vec::new();
        judge_process(p, rules, upper, &conn_of, &listening, &mut out);
        out
    }

    fn judge_with(p: &Process<'_>, upper: bool) -> Vec<FindingKind> {
        judge_rules(p, &Rules::default(), upper)
    }

    fn judge(p: &Process<'_>) -> Vec<FindingKind> {
        judge_with(p, false)
    }

    const NGINX: &[u8] = b"nginx\0-g\0daemon off;\0";

    #[test]
    fn names_and_serde_agree() {
        for k in FindingKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<FindingKind>(&json).unwrap(), k);
            assert_eq!(k.to_string(), k.name());
        }
    }

    #[test]
    fn miner_process_fires() {
        assert_eq!(
            judge(&proc("xmrig", "/usr/bin/xmrig", b"xmrig\0")),
            [FindingKind::MinerProcess]
        );
        // Renamed comm, miner binary.
        assert_eq!(
            judge(&proc("kworker", "/opt/x/XMRig", b"kworker\0")),
            [FindingKind::MinerProcess]
        );
        // Harmless names, pool on the command line, split over arguments.
        let cmd = b"./svc\0-o\0STRATUM+TCP://203.0.113.1:3333\0-u\0x\0";
        assert_eq!(
            judge(&proc("svc", "/app/svc", cmd)),
            [FindingKind::MinerProcess]
        );
        let mut rules = Rules::empty();
        rules.cmdline_patterns.push("-o pool".into());
        let p = proc("svc", "/app/svc", b"svc\0-o\0pool.example:443\0");
        assert_eq!(judge_rules(&p, &rules, false), [FindingKind::MinerProcess]);
        // comm cut at 15 bytes.
        let mut rules = Rules::empty();
        rules.miner_names.push("averylongminername".into());
        let p = proc("averylongminern", "", b"");
        assert_eq!(judge_rules(&p, &rules, false), [FindingKind::MinerProcess]);
    }

    #[test]
    fn miner_process_quiet_on_ordinary_processes() {
        assert!(judge(&proc("nginx", "/usr/sbin/nginx", NGINX)).is_empty());
        assert!(judge(&proc("python3", "/usr/bin/python3", b"python3\0app.py\0")).is_empty());
        assert!(judge(&proc(
            "cc1",
            "/usr/lib/gcc/cc1",
            b"cc\0-o\0pool.o\0pool.c\0"
        ))
        .is_empty());
        // A prefix of a miner name is not a match unless comm was cut.
        assert!(judge(&proc("xmr", "/bin/xmr", b"")).is_empty());
        // Empty entries match nothing.
        let mut rules = Rules::empty();
        rules.miner_names.push(String::new());
        rules.cmdline_patterns.push(String::new());
        assert!(judge_rules(&proc("", "", b""), &rules, false).is_empty());
    }

    #[test]
    fn fileless_exec_fires() {
        let p = proc("x", "/memfd:x (deleted)", b"x\0");
        assert_eq!(judge(&p), [FindingKind::FilelessExec]);
        let p = proc("app", "/tmp/app (deleted)", b"app\0");
        assert_eq!(judge(&p), [FindingKind::FilelessExec]);
        // A memfd miner is both.
        let p = proc("a", "/memfd:xmrig (deleted)", b"a\0");
        assert_eq!(
            judge(&p),
            [FindingKind::MinerProcess, FindingKind::FilelessExec]
        );
    }

    #[test]
    fn fileless_exec_quiet_on_files() {
        assert!(judge(&proc("python3", "/usr/bin/python3", b"python3\0")).is_empty());
        assert!(judge(&proc("deleted", "/srv/(deleted)/run", b"")).is_empty());
    }

    #[test]
    fn exec_from_writable_layer_passes_through() {
        let p = proc("app", "/tmp/app", b"app\0");
        assert_eq!(judge_with(&p, true), [FindingKind::ExecFromWritableLayer]);
    }

    #[test]
    fn exec_from_image_is_quiet() {
        let p = proc("nginx", "/usr/sbin/nginx", NGINX);
        assert!(judge_with(&p, false).is_empty());
    }

    #[test]
    fn reverse_shell_fires() {
        let mut p = proc("bash", "/usr/bin/bash", b"bash\0-i\0");
        p.stdio = [Fd::Socket { inode: 7 }; 3];
        assert_eq!(judge(&p), [FindingKind::ReverseShell]);
        // busybox sh: comm names the shell, exe does not.
        let mut p = proc("sh", "/bin/busybox", b"sh\0");
        p.stdio = [Fd::Socket { inode: 7 }, Fd::Socket { inode: 7 }, Fd::Other];
        assert_eq!(judge(&p), [FindingKind::ReverseShell]);
    }

    #[test]
    fn reverse_shell_quiet_on_ordinary_shells() {
        // sshd / web terminal / `docker exec -t`: a pty.
        let p = proc("bash", "/usr/bin/bash", b"bash\0");
        assert!(judge(&p).is_empty());
        // inetd-style: the socket is a connection accepted on the container's listener.
        let mut p = proc("bash", "/usr/bin/bash", b"bash\0");
        p.stdio = [Fd::Socket { inode: 8 }; 3];
        assert!(judge(&p).is_empty());
        // A unix socket (not in the tcp tables), or only stdout on the connection.
        p.stdio = [Fd::Socket { inode: 99 }; 3];
        assert!(judge(&p).is_empty());
        p.stdio = [Fd::Other, Fd::Socket { inode: 7 }, Fd::Socket { inode: 7 }];
        assert!(judge(&p).is_empty());
        // Not a shell: a client program on its own connection.
        let mut p = proc("curl", "/usr/bin/curl", b"curl\0");
        p.stdio = [Fd::Socket { inode: 7 }; 3];
        assert!(judge(&p).is_empty());
    }

    #[test]
    fn new_listener_and_unexpected_process_are_the_callers() {
        let mut p = proc("bash", "/memfd:xmrig (deleted)", b"stratum+tcp://x\0");
        p.stdio = [Fd::Socket { inode: 7 }; 3];
        let out = judge_with(&p, true);
        assert_eq!(out.len(), 4);
        assert!(!out.contains(&FindingKind::NewListener));
        assert!(!out.contains(&FindingKind::UnexpectedProcess));
    }

    #[test]
    fn caller_kinds_have_stable_names() {
        assert_eq!(FindingKind::NewListener.name(), "new_listener");
        assert_eq!(FindingKind::UnexpectedProcess.name(), "unexpected_process");
    }

    fn tcp(local: &str, remote: &str, state: TcpState) -> Conn {
        Conn {
            local: sa(local),
            remote: sa(remote),
            tcp_state: Some(state),
        }
    }

    #[test]
    fn miner_port_connection_fires() {
        let r = Rules::default();
        let c = tcp("10.0.0.2:40000", "203.0.113.9:3333", TcpState::Established);
        assert_eq!(
            judge_connection(&c, &r, &listening),
            Some(FindingKind::MinerPortConnection)
        );
        let c = tcp(
            "[::ffff:10.0.0.2]:40001",
            "[2001:db8::1]:14444",
            TcpState::SynSent,
        );
        assert_eq!(
            judge_connection(&c, &r, &listening),
            Some(FindingKind::MinerPortConnection)
        );
        // Loopback is not special-cased.
        let c = tcp("127.0.0.1:40002", "127.0.0.1:3333", TcpState::Established);
        assert_eq!(
            judge_connection(&c, &r, &listening),
            Some(FindingKind::MinerPortConnection)
        );
    }

    #[test]
    fn miner_port_connection_quiet_on_ordinary_connections() {
        let r = Rules::default();
        let c = tcp("10.0.0.2:40000", "203.0.113.9:443", TcpState::Established);
        assert_eq!(judge_connection(&c, &r, &listening), None);
        // A client of the container's server whose ephemeral port is 45700.
        let c = tcp("10.0.0.2:8080", "198.51.100.3:45700", TcpState::Established);
        assert_eq!(judge_connection(&c, &r, &listening), None);
        // Closed already, or UDP.
        let c = tcp("10.0.0.2:40000", "203.0.113.9:3333", TcpState::TimeWait);
        assert_eq!(judge_connection(&c, &r, &listening), None);
        let c = Conn {
            tcp_state: None,
            ..c
        };
        assert_eq!(judge_connection(&c, &r, &listening), None);
    }

    #[test]
    fn rules_extend_adds_missing_entries() {
        let mut r = Rules::default();
        let n = r.miner_names.len();
        let mut more = Rules::empty();
        more.miner_names = vec!["XMRIG".into(), "newminer".into()];
        more.pool_ports = vec![3333, 6000];
        more.shells = vec!["busybox".into()];
        r.extend(more);
        assert_eq!(r.miner_names.len(), n + 1);
        assert!(r.pool_ports.contains(&6000));
        assert_eq!(r.pool_ports.iter().filter(|&&p| p == 3333).count(), 1);
        assert!(r.shells.iter().any(|s| s == "busybox"));
        // Deserialized fields replace the built-in list; missing ones keep it.
        let r: Rules = serde_json::from_str(r#"{"pool_ports":[1]}"#).unwrap();
        assert_eq!(r.pool_ports, [1]);
        assert_eq!(r.shells, Rules::default().shells);
    }

    #[test]
    fn fd_from_link() {
        assert_eq!(Fd::from_link("socket:[12345]"), Fd::Socket { inode: 12345 });
        assert_eq!(Fd::from_link("/dev/pts/0"), Fd::Other);
        assert_eq!(Fd::from_link("pipe:[77]"), Fd::Other);
        assert_eq!(Fd::from_link("socket:[]"), Fd::Unknown);
        assert_eq!(Fd::from_link("socket:[+1]"), Fd::Unknown);
        assert_eq!(
            Fd::from_link("socket:[99999999999999999999999]"),
            Fd::Unknown
        );
    }

    #[test]
    fn exe_names() {
        assert_eq!(exe_name("/usr/bin/xmrig (deleted)"), "xmrig");
        assert_eq!(exe_name("/memfd:xmrig (deleted)"), "xmrig");
        assert_eq!(exe_name("/memfd: (deleted)"), "");
        assert_eq!(exe_name("xmrig"), "xmrig");
        assert_eq!(exe_name("/"), "");
        assert_eq!(exe_name(""), "");
    }

    proptest! {
        #[test]
        fn never_panics(
            comm in "\\PC{0,20}",
            exe in "(/memfd:)?\\PC{0,40}( \\(deleted\\))?",
            cmdline in proptest::collection::vec(any::<u8>(), 0..300),
            stdio in proptest::collection::vec(0u64..10, 3),
        ) {
            let fd = |i: u64| if i == 0 { Fd::Other } else { Fd::Socket { inode: i } };
            let mut p = proc(&comm, &exe, &cmdline);
            p.stdio = [fd(stdio[0]), fd(stdio[1]), fd(stdio[2])];
            let mut out = Vec::new();
            judge_process(&p, &Rules::default(), false, &conn_of, &listening, &mut out);
            let mut sorted = out.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), out.len());
            let _ = Fd::from_link(&exe);
        }
    }
}
