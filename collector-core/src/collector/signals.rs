//! A container's security signals between sweeps: the processes already looked at, the
//! sockets already judged, its own listening ports, what it has been found doing, and the
//! findings waiting to become events.
//!
//! Socket tables are read only for sockets that lived through two walks of the container's
//! descriptors without being judged: each read walks the kernel's whole socket hash, and a
//! server's short-lived connections would otherwise have every table read on every interval.
//! A pool connection, a reverse shell or a new listener lives longer than that.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::security::exec_watch::ExecRecord;
use crate::security::inspect::Examiner;
use crate::security::judge::{judge_connection, Conn};
use crate::security::policy::is_runtime_init;
use crate::security::sockets::{ListeningPorts, SocketRow, TcpState};
use crate::security::{Finding, FindingKind, ImagePolicy, ProcessRef, Rules};
use crate::stats::{FindingCounts, SecurityStats};

/// Each finding is reported once per container and key; past this many keys, every one is.
const REPORTED_MAX: usize = 256;
/// Processes kept for the policy while the container's image is not yet known.
const BACKLOG_MAX: usize = 64;
/// New processes looked at in one poll (a fork bomb's are counted, not all looked at).
const POLL_MAX: usize = 256;
/// Findings kept for events between sweeps; all are counted.
const FRESH_MAX: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Signals {
    counts: FindingCounts,
    started: u64,
    /// Pids at the last look, sorted.
    pids: Vec<u32>,
    /// Socket inodes at the last walk, sorted.
    inodes_prev: Vec<u64>,
    /// Socket inodes whose rows were judged at the last table read, sorted.
    inodes_judged: Vec<u64>,
    /// Its own listening ports: those of its first table read and of its learning window.
    listeners: Vec<u16>,
    baseline_taken: bool,
    reported: Vec<(FindingKind, u64)>,
    /// Processes looked at before its image was known, with how they were seen.
    backlog: Vec<(ProcessRef, &'static str, u64)>,
    /// Findings not yet made events.
    fresh: Vec<Finding>,
    /// Findings counted but dropped from the events (`FRESH_MAX`), not yet taken.
    unreported: u64,
    /// Followed since the collector's first scan: its sockets at the first look are its
    /// own whenever that look comes. One that appeared later learns only within
    /// `listener_learning` of being first seen.
    pub preexisting: bool,
}

impl Signals {
    pub fn stats(&self) -> SecurityStats {
        SecurityStats {
            processes_started: Some(self.started),
            findings: Some(self.counts.clone()),
        }
    }

    /// An exec the process events reported.
    pub fn note_exec(&mut self, rec: ExecRecord) {
        self.started += 1;
        if let Err(at) = self.pids.binary_search(&rec.pid) {
            self.pids.insert(at, rec.pid);
        }
        for f in rec.findings {
            let key = finding_key(&f);
            self.report(f, key);
        }
        if let Some(p) = rec.process {
            self.hold_for_policy(p, "exec", rec.time_ms);
        }
    }

    /// The processes a walk listed: those not seen before are counted as started and looked
    /// at.
    ///
    /// The runtime's init (`runc init`, about to exec the container's program under the same
    /// pid) is not counted and not remembered: the next walk looks at it again, as the
    /// program it became.
    pub fn poll(&mut self, pids: &[u64], examiner: &Examiner, now_ms: u64) {
        let mut looked = 0;
        let mut found = Vec::new();
        let mut again = Vec::new();
        for &pid in pids {
            let Ok(pid) = u32::try_from(pid) else {
                continue;
            };
            if self.pids.binary_search(&pid).is_ok() {
                continue;
            }
            if looked >= POLL_MAX {
                self.started += 1;
                continue;
            }
            looked += 1;
            let Some(facts) = examiner.read_facts(pid) else {
                self.started += 1;
                continue;
            };
            examiner.examine(&facts, "poll", now_ms, &mut found);
            for f in found.drain(..) {
                let key = finding_key(&f);
                self.report(f, key);
            }
            if is_runtime_init(&facts.process.comm, &facts.process.cmdline) {
                again.push(pid);
                continue;
            }
            self.started += 1;
            self.hold_for_policy(facts.process, "poll", now_ms);
        }
        self.pids.clear();
        self.pids.extend(
            pids.iter()
                .filter_map(|&p| u32::try_from(p).ok())
                .filter(|p| !again.contains(p)),
        );
        self.pids.sort_unstable();
    }

    /// Keeps a process for the image's policy, unless it is the runtime's own init.
    fn hold_for_policy(&mut self, p: ProcessRef, source: &'static str, time_ms: u64) {
        if is_runtime_init(&p.comm, &p.cmdline) {
            return;
        }
        if self.backlog.len() < BACKLOG_MAX {
            self.backlog.push((p, source, time_ms));
        }
    }

    /// Findings counted but not kept for events since the last call.
    pub fn take_unreported(&mut self) -> u64 {
        std::mem::take(&mut self.unreported)
    }

    /// Judges the processes held so far against the image's policy, which `policy` looks up
    /// only when some process waits (the globs run once per new process, not per sweep).
    /// While the image is not known they wait (bounded); without a policy for it they are let
    /// go.
    pub fn judge_policy<'p>(
        &mut self,
        image_known: bool,
        policy: impl FnOnce() -> Option<&'p ImagePolicy>,
    ) {
        if !image_known || self.backlog.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.backlog);
        let policy = policy();
        let Some(policy) = policy else {
            return;
        };
        for (p, source, time_ms) in held {
            if !policy.allows_process(&p.comm, &p.exe, &p.cmdline) {
                let f = Finding {
                    kind: FindingKind::UnexpectedProcess,
                    time_ms,
                    source,
                    process: Some(p),
                    local: None,
                    remote: None,
                    peer: None,
                };
                let key = finding_key(&f);
                self.report(f, key);
            }
        }
    }

    /// Whether the socket tables are due: a socket seen at the last walk too has not been
    /// judged. Remembers this walk's sockets for the next.
    pub fn tables_due(&mut self, inodes: &[u64]) -> bool {
        let due = inodes.iter().any(|i| {
            self.inodes_prev.binary_search(i).is_ok()
                && self.inodes_judged.binary_search(i).is_err()
        });
        self.inodes_prev.clear();
        self.inodes_prev.extend_from_slice(inodes);
        due
    }

    /// Whether the last walk met sockets not yet judged: the next walk (due even when the
    /// container is idle) tells whether they lived long enough to be.
    pub fn sockets_pending(&self) -> bool {
        self.inodes_prev
            .iter()
            .any(|i| self.inodes_judged.binary_search(i).is_err())
    }

    /// Judges the rows of its own sockets (`inodes`, sorted). `learning`: its listening ports
    /// are still its own (the first read always is).
    pub fn judge_tables(
        &mut self,
        rows: &[SocketRow],
        inodes: &[u64],
        rules: &Rules,
        policy: Option<&ImagePolicy>,
        learning: bool,
        now_ms: u64,
    ) {
        let listen = ListeningPorts::of(rows);
        let listening = |port: u16| listen.contains(port);
        let own = |r: &&SocketRow| r.inode != 0 && inodes.binary_search(&r.inode).is_ok();
        let learn = learning || (self.preexisting && !self.baseline_taken);
        for row in rows.iter().filter(own) {
            let conn = Conn::tcp(row);
            if conn.tcp_state == Some(TcpState::Listen) {
                let port = row.local.port();
                let refused = policy.is_some_and(|p| p.limits_ports() && !p.allows_port(port));
                let known = self.listeners.binary_search(&port);
                if let Err(at) = known {
                    self.listeners.insert(at, port);
                }
                if refused || (known.is_err() && !learn) {
                    let f = network_finding(FindingKind::NewListener, &conn, now_ms);
                    self.report(f, u64::from(port));
                }
                continue;
            }
            if let Some(kind) = judge_connection(&conn, rules, &listening) {
                let key = hash(&conn.remote);
                self.report(network_finding(kind, &conn, now_ms), key);
            }
        }
        self.baseline_taken = true;
        self.inodes_judged.clear();
        self.inodes_judged.extend_from_slice(inodes);
    }

    /// Counts a finding and keeps it for an event, once per kind and key.
    fn report(&mut self, f: Finding, key: u64) {
        if self.reported.contains(&(f.kind, key)) {
            return;
        }
        if self.reported.len() < REPORTED_MAX {
            self.reported.push((f.kind, key));
        }
        self.counts.add(f.kind);
        if self.fresh.len() < FRESH_MAX {
            self.fresh.push(f);
        } else {
            self.unreported += 1;
        }
    }

    /// A finding made outside these signals (the collector's peers: `new_peer`).
    pub fn report_found(&mut self, f: Finding) {
        let key = finding_key(&f);
        self.report(f, key);
    }

    /// The findings not yet made events.
    pub fn take_fresh(&mut self) -> std::vec::Drain<'_, Finding> {
        self.fresh.drain(..)
    }
}

fn network_finding(kind: FindingKind, conn: &Conn, time_ms: u64) -> Finding {
    Finding {
        kind,
        time_ms,
        source: "socket_table",
        process: None,
        local: Some(conn.local),
        remote: (kind != FindingKind::NewListener).then_some(conn.remote),
        peer: None,
    }
}

/// A process finding's key: the same program found again (a restart, a forked child) is
/// the same finding. One about the executable's file (in the writable layer, or with no
/// file) is keyed by its path; one about the program's name (a miner, a shell, a program
/// outside the policy) by its name, which a process read as it exits still has when its
/// executable can no longer be read (keyed by both, that one program counted twice).
///
/// A new peer is keyed by the peer: its address, the port it serves and the direction.
///
/// A reverse shell is keyed by its connection alone: `bash -c 'exec 3<>/dev/tcp/..; exec sh
/// <&3 >&3'` is bash with the socket as its stdio for a moment, then sh under the same pid,
/// and the subshells it forks share the socket; all are one shell session. Another
/// connection, to the same peer or another, is another finding.
fn finding_key(f: &Finding) -> u64 {
    if f.kind == FindingKind::ReverseShell {
        return hash(&(f.kind, f.local, f.remote));
    }
    if let Some(p) = &f.peer {
        return hash(&(f.kind, p.direction, p.addr, p.port));
    }
    let program = f.process.as_ref().map(|p| match f.kind {
        FindingKind::ExecFromWritableLayer | FindingKind::FilelessExec => hash(&p.exe),
        _ => hash(&p.comm),
    });
    hash(&(program, f.remote))
}

fn hash(v: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sockets::parse_table_into;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A000 0100007F:0D05 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0000000000000000 20 4 30 10 -1
";

    fn rows() -> Vec<SocketRow> {
        let mut rows = Vec::new();
        parse_table_into(TABLE, &mut rows).expect("the table");
        rows
    }

    fn preexisting() -> Signals {
        Signals {
            preexisting: true,
            ..Signals::default()
        }
    }

    #[test]
    fn a_socket_is_judged_once_it_lived_through_two_walks() {
        let mut s = Signals::default();
        assert!(!s.tables_due(&[100, 102]));
        assert!(s.sockets_pending());
        assert!(s.tables_due(&[100, 102]));
        s.judge_tables(&rows(), &[100, 102], &Rules::default(), None, false, 0);
        assert!(!s.sockets_pending());
        assert!(!s.tables_due(&[100, 102]));
        // A short-lived socket (gone by the next walk) never makes the tables due.
        assert!(!s.tables_due(&[100, 102, 200]));
        assert!(!s.tables_due(&[100, 102, 201]));
    }

    #[test]
    fn the_first_read_is_the_baseline_and_pool_ports_are_found() {
        let mut s = preexisting();
        // Only 8080 is its own at first; 3333 (0x0D05) is an outgoing connection.
        s.judge_tables(&rows(), &[100, 102], &Rules::default(), None, false, 0);
        let kinds: Vec<_> = s.take_fresh().map(|f| f.kind).collect();
        assert_eq!(kinds, [FindingKind::MinerPortConnection]);
        // 8081 opened later: a new listener, reported once.
        s.judge_tables(&rows(), &[100, 101, 102], &Rules::default(), None, false, 0);
        s.judge_tables(&rows(), &[100, 101, 102], &Rules::default(), None, false, 0);
        let fresh: Vec<_> = s.take_fresh().collect();
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        assert_eq!(fresh[0].kind, FindingKind::NewListener);
        assert_eq!(fresh[0].local.map(|a| a.port()), Some(8081));
        assert_eq!(s.counts.new_listener, 1);
        assert_eq!(s.counts.miner_port_connection, 1);
    }

    #[test]
    fn listeners_opened_while_learning_are_its_own() {
        let mut s = Signals::default();
        s.judge_tables(&rows(), &[100], &Rules::default(), None, true, 0);
        s.judge_tables(&rows(), &[100, 101], &Rules::default(), None, true, 0);
        s.judge_tables(&rows(), &[100, 101], &Rules::default(), None, false, 0);
        assert_eq!(s.take_fresh().count(), 0);
    }

    /// A container that appeared after the collector started owns only the listeners of its
    /// learning window: a first look after it (its first long-lived socket is the
    /// attacker's) is no baseline.
    #[test]
    fn a_late_first_look_is_no_baseline_for_a_new_container() {
        let mut s = Signals::default();
        s.judge_tables(&rows(), &[100], &Rules::default(), None, false, 7);
        let fresh: Vec<_> = s.take_fresh().collect();
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        assert_eq!(
            (fresh[0].kind, fresh[0].time_ms),
            (FindingKind::NewListener, 7)
        );
    }

    #[test]
    fn a_reverse_shell_is_one_finding_per_connection() {
        let mut s = Signals::default();
        let shell = |port: u16| Finding {
            kind: FindingKind::ReverseShell,
            time_ms: 0,
            source: "exec",
            process: Some(ProcessRef {
                exe: "/usr/bin/bash".into(),
                comm: "bash".into(),
                ..ProcessRef::default()
            }),
            local: None,
            remote: Some(std::net::SocketAddr::from(([10, 0, 0, 1], port))),
            peer: None,
        };
        let as_sh = |mut f: Finding| {
            f.process = Some(ProcessRef {
                exe: "/usr/bin/dash".into(),
                comm: "sh".into(),
                ..ProcessRef::default()
            });
            f
        };
        let from = |port: u16| {
            let mut f = shell(4444);
            f.local = Some(std::net::SocketAddr::from(([10, 0, 0, 2], port)));
            f
        };
        // bash, then the sh it became over the same connection, then a second connection to
        // the same peer, then one to another peer.
        for f in [
            shell(4444),
            as_sh(shell(4444)),
            from(40000),
            as_sh(from(40000)),
            shell(5555),
        ] {
            let key = finding_key(&f);
            s.report(f, key);
        }
        assert_eq!(s.take_fresh().count(), 3);
        assert_eq!(s.counts.reverse_shell, 3);
    }

    #[test]
    fn a_policy_refuses_ports_from_the_first_read() {
        let policy = ImagePolicy {
            image: "*".into(),
            allowed_processes: vec![],
            allowed_listen_ports: vec![8080],
            allowed_peers: vec![],
        };
        let mut s = Signals::default();
        s.judge_tables(
            &rows(),
            &[100, 101],
            &Rules::default(),
            Some(&policy),
            true,
            0,
        );
        let fresh: Vec<_> = s.take_fresh().collect();
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        assert_eq!(fresh[0].local.map(|a| a.port()), Some(8081));
    }

    #[test]
    fn processes_wait_for_the_image_then_meet_the_policy() {
        let policy = ImagePolicy {
            image: "*".into(),
            allowed_processes: vec!["nginx".into()],
            allowed_listen_ports: vec![],
            allowed_peers: vec![],
        };
        let proc = |comm: &str| ProcessRef {
            comm: comm.into(),
            exe: format!("/usr/bin/{comm}"),
            ..ProcessRef::default()
        };
        let mut s = Signals::default();
        s.hold_for_policy(proc("nginx"), "poll", 1);
        s.hold_for_policy(proc("curl"), "exec", 2);
        s.judge_policy(false, || Some(&policy));
        assert_eq!(s.take_fresh().count(), 0);
        s.judge_policy(true, || Some(&policy));
        let fresh: Vec<_> = s.take_fresh().collect();
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].kind, FindingKind::UnexpectedProcess);
        assert_eq!((fresh[0].source, fresh[0].time_ms), ("exec", 2));
        assert_eq!(s.stats().findings.map(|c| c.unexpected_process), Some(1));
    }

    /// Reads race with exec and exit: one program read whole and read as it exited (no
    /// executable, no command line), or read with the name it had before its exec, is still
    /// one finding.
    #[test]
    fn one_program_read_in_passing_is_one_finding() {
        let policy = ImagePolicy {
            image: "*".into(),
            allowed_processes: vec!["sh".into()],
            allowed_listen_ports: vec![],
            allowed_peers: vec![],
        };
        let ls = |pid: u32, exe: &str, cmdline: &str| ProcessRef {
            pid,
            comm: "ls".into(),
            exe: exe.into(),
            cmdline: cmdline.into(),
            ..ProcessRef::default()
        };
        let mut s = Signals::default();
        s.hold_for_policy(ls(10, "/bin/busybox", "ls /"), "exec", 0);
        s.hold_for_policy(ls(11, "", ""), "exec", 0);
        s.judge_policy(true, || Some(&policy));
        assert_eq!(s.take_fresh().count(), 1);
        let dropped = |comm: &str| ExecRecord {
            time_ms: 0,
            pid: 7,
            cgroup: "/c".into(),
            findings: vec![Finding {
                kind: FindingKind::ExecFromWritableLayer,
                time_ms: 0,
                source: "exec",
                process: Some(ProcessRef {
                    pid: 7,
                    comm: comm.into(),
                    exe: "/tmp/sleep".into(),
                    ..ProcessRef::default()
                }),
                local: None,
                remote: None,
                peer: None,
            }],
            process: None,
        };
        s.note_exec(dropped("sh"));
        s.note_exec(dropped("sleep"));
        assert_eq!(s.take_fresh().count(), 1);
        let c = s.stats().findings.expect("counted");
        assert_eq!((c.unexpected_process, c.exec_from_writable_layer), (1, 1));
    }

    /// At each container start and `docker exec`, runc's init sits in the container's cgroup
    /// until it execs the container's program; a walk or the exec watch can meet it there.
    #[test]
    fn the_runtimes_init_is_not_held_to_the_images_policy() {
        let policy = ImagePolicy {
            image: "*".into(),
            allowed_processes: vec!["sh".into()],
            allowed_listen_ports: vec![],
            allowed_peers: vec![],
        };
        let mut s = Signals::default();
        for comm in ["runc:[2:INIT]", "runc"] {
            s.hold_for_policy(
                ProcessRef {
                    comm: comm.into(),
                    exe: "/".into(),
                    cmdline: "runc init".into(),
                    ..ProcessRef::default()
                },
                "poll",
                0,
            );
        }
        s.judge_policy(true, || Some(&policy));
        assert_eq!(s.take_fresh().count(), 0);
    }

    /// A walk that meets runc's init looks at the pid again at the next walk, when it has
    /// become the container's program (the only look a walk would get at it without the
    /// exec watch).
    #[test]
    fn a_walk_looks_again_at_the_runtimes_init() {
        let root = tempfile::tempdir().expect("a temp dir");
        let dir = root.path().join("4242");
        std::fs::create_dir_all(dir.join("fd")).expect("a fake /proc/4242");
        let become_ = |comm: &str, cmdline: &[u8], exe: &str| {
            std::fs::write(dir.join("status"), "PPid:\t1\nUid:\t0\t0\t0\t0\n").unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
            let _ = std::fs::remove_file(dir.join("exe"));
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        };
        let examiner = Examiner::new(
            root.path(),
            std::path::Path::new("/"),
            std::sync::Arc::new(Rules::default()),
            true,
        );
        let policy = ImagePolicy {
            image: "*".into(),
            allowed_processes: vec!["sh".into()],
            allowed_listen_ports: vec![],
            allowed_peers: vec![],
        };
        let mut s = Signals::default();
        become_("runc:[2:INIT]", b"runc\0init\0", "/");
        s.poll(&[4242], &examiner, 0);
        s.judge_policy(true, || Some(&policy));
        assert_eq!(s.take_fresh().count(), 0);
        assert_eq!(s.started, 0);
        become_("cat", b"cat\0", "/bin/busybox");
        s.poll(&[4242], &examiner, 0);
        s.poll(&[4242], &examiner, 0);
        s.judge_policy(true, || Some(&policy));
        let fresh: Vec<_> = s.take_fresh().collect();
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        assert_eq!(fresh[0].kind, FindingKind::UnexpectedProcess);
        assert_eq!(fresh[0].process.as_ref().map(|p| p.pid), Some(4242));
        assert_eq!(s.started, 1);
    }
}
