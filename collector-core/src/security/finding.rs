//! A finding as the sinks carry it: its kind, the process that gave rise to it and, for a
//! network finding, the endpoints. Pids, names and addresses live here, never in labels.

use std::net::SocketAddr;

use serde::Serialize;

use super::judge::FindingKind;
use crate::stats::FindingCounts;

/// The longest command line kept, in bytes; longer ones are cut (at a character boundary).
pub const CMDLINE_MAX: usize = 1024;

/// A process as a finding names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessRef {
    /// The process id, as the exporter's `/proc` numbers it.
    pub pid: u32,
    /// The parent's process id; 0 when it was not read.
    pub ppid: u32,
    /// The real user id, in the host's user namespace.
    pub uid: u32,
    /// The process's name (`/proc/<pid>/comm`, at most 15 bytes).
    pub comm: String,
    /// The target of `/proc/<pid>/exe`, as the process's own mount namespace names it; empty
    /// when it could not be read.
    pub exe: String,
    /// The arguments joined by spaces, cut to [`CMDLINE_MAX`](crate::CMDLINE_MAX) bytes.
    pub cmdline: String,
}

/// What was found, and what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of finding this is.
    pub kind: FindingKind,
    /// When it was seen (Unix milliseconds): the exec, or the sweep that found it.
    pub time_ms: u64,
    /// How it was seen: `exec` (the kernel's process events, at the exec), `poll` (a process
    /// new in `cgroup.procs` since the last look) or `socket_table` (the network namespace's
    /// TCP tables).
    pub source: &'static str,
    /// The process concerned; `None` for a finding from the socket tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef>,
    /// The container's end of the connection or listening socket; `None` for a process finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// The other end of the connection; `None` for a process finding or a new listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    /// For `new_peer` and `unauthorized_connection`: the peer, with the container at its address when on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<crate::stats::Peer>,
}

impl FindingCounts {
    /// How many findings of this kind were counted.
    pub fn get(&self, kind: FindingKind) -> u64 {
        *self.slot(kind)
    }

    /// Counts one more finding of this kind.
    pub fn add(&mut self, kind: FindingKind) {
        *self.slot_mut(kind) += 1;
    }

    /// Each kind's name and count, in [`FindingKind::ALL`]'s order.
    pub fn labeled(&self) -> [(&'static str, u64); 9] {
        FindingKind::ALL.map(|k| (k.name(), self.get(k)))
    }

    fn slot(&self, kind: FindingKind) -> &u64 {
        match kind {
            FindingKind::MinerProcess => &self.miner_process,
            FindingKind::MinerPortConnection => &self.miner_port_connection,
            FindingKind::ReverseShell => &self.reverse_shell,
            FindingKind::ExecFromWritableLayer => &self.exec_from_writable_layer,
            FindingKind::FilelessExec => &self.fileless_exec,
            FindingKind::NewListener => &self.new_listener,
            FindingKind::UnexpectedProcess => &self.unexpected_process,
            FindingKind::NewPeer => &self.new_peer,
            FindingKind::UnauthorizedConnection => &self.unauthorized_connection,
        }
    }

    fn slot_mut(&mut self, kind: FindingKind) -> &mut u64 {
        match kind {
            FindingKind::MinerProcess => &mut self.miner_process,
            FindingKind::MinerPortConnection => &mut self.miner_port_connection,
            FindingKind::ReverseShell => &mut self.reverse_shell,
            FindingKind::ExecFromWritableLayer => &mut self.exec_from_writable_layer,
            FindingKind::FilelessExec => &mut self.fileless_exec,
            FindingKind::NewListener => &mut self.new_listener,
            FindingKind::UnexpectedProcess => &mut self.unexpected_process,
            FindingKind::NewPeer => &mut self.new_peer,
            FindingKind::UnauthorizedConnection => &mut self.unauthorized_connection,
        }
    }
}

/// Joins NUL-separated arguments with spaces, cut to [`CMDLINE_MAX`] bytes, invalid UTF-8
/// replaced.
pub fn cmdline_text(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    let cut = &raw[..raw.len().min(CMDLINE_MAX)];
    let mut s: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c == '\0' { ' ' } else { c })
        .collect();
    while s.len() > CMDLINE_MAX {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind() {
        let mut c = FindingCounts::default();
        for k in FindingKind::ALL {
            c.add(k);
        }
        c.add(FindingKind::NewListener);
        assert!(c
            .labeled()
            .iter()
            .all(|(name, n)| *n == if *name == "new_listener" { 2 } else { 1 }));
    }

    #[test]
    fn cmdline_joined_and_cut() {
        assert_eq!(
            cmdline_text(b"xmrig\0-o\0stratum+tcp://x:3333\0"),
            "xmrig -o stratum+tcp://x:3333"
        );
        assert_eq!(cmdline_text(b""), "");
        let long = vec![b'a'; CMDLINE_MAX * 2];
        assert_eq!(cmdline_text(&long).len(), CMDLINE_MAX);
        // A multi-byte character cut in two becomes a replacement character, still bounded.
        let mut odd = vec![b'a'; CMDLINE_MAX - 1];
        odd.extend_from_slice("é".as_bytes());
        assert!(cmdline_text(&odd).len() <= CMDLINE_MAX);
    }
}
