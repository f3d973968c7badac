//! The collector's part of the peer graph: the addresses of every network namespace it reads
//! (`NodeAddrs`, kept across sweeps, each namespace read again on the process interval), and
//! each container's peers (`PeerState`), read with its descriptors and resolved once every
//! namespace of the sweep is known.
//!
//! Resolving waits for the end of the reads: a container read early in a sweep may talk to
//! one read later, whose namespace is new.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::network::NsId;
use crate::security::peers::{peers_of, scope_outside_node, PeerKey};
use crate::security::sockets::SocketRow;
use crate::security::{Finding, FindingKind, ImagePolicy, PeerFacts};
use crate::stats::{Direction, Peer, PeerCounts, PeerStats, Scope, ScopeCounts};

/// Peers remembered per container (learned, or reported as new), and peers judged against
/// its policy. Past it, new ones are neither counted nor reported, nor judged: a container
/// with this many peers is a server whose peers are not news, and the memory stays bounded
/// (at most about 200 KB a container, both lists full).
const KNOWN_MAX: usize = 4096;
/// Peers listed per container for the API; the counts cover them all.
const LISTED_MAX: usize = 1024;
/// How long a container is given for its runtime to name it before a peer policy that goes
/// by names judges connections to it as to a container with no name.
const NAME_GRACE: Duration = Duration::from_secs(30);

/// The addresses of the network namespaces read, and the container first read in each.
#[derive(Debug, Default)]
pub(super) struct NodeAddrs {
    spaces: HashMap<NsId, Space>,
    /// Each address's namespace, rebuilt when a namespace's addresses change or it goes.
    index: HashMap<IpAddr, NsId>,
    sweep: u64,
    changed: bool,
    buf: Vec<IpAddr>,
}

#[derive(Debug, Default)]
struct Space {
    addrs: Vec<IpAddr>,
    read_at: Option<Instant>,
    sweep: u64,
    /// The first container met in it this sweep: its cgroup id, runtime name and image.
    owner_id: String,
    owner_name: Option<String>,
    owner_image: Option<String>,
    /// When a container was first met in it.
    since: Option<Instant>,
    /// Past `NAME_GRACE`: its container's name is as good as it gets.
    settled: bool,
}

/// A container on this node, as a peer names it.
struct Owner<'a> {
    ns: NsId,
    id: &'a str,
    name: Option<&'a str>,
    image: Option<&'a str>,
    settled: bool,
}

impl NodeAddrs {
    pub fn begin_sweep(&mut self) {
        self.sweep += 1;
    }

    /// Notes that container `id` (`name`, `image`) lives in namespace `ns`; its addresses
    /// are read through `read` when new or older than `every`.
    #[allow(clippy::too_many_arguments)]
    pub fn visit(
        &mut self,
        ns: NsId,
        id: &str,
        name: Option<&str>,
        image: Option<&str>,
        now: Instant,
        every: Duration,
        read: impl FnOnce(&mut Vec<IpAddr>),
    ) {
        let s = self.spaces.entry(ns).or_default();
        if s.sweep == self.sweep {
            return;
        }
        s.sweep = self.sweep;
        if s.owner_id != id || s.owner_name.as_deref() != name || s.owner_image.as_deref() != image
        {
            // Peers that name it are resolved again (a runtime names a container late).
            s.owner_id.clear();
            s.owner_id.push_str(id);
            set(&mut s.owner_name, name);
            set(&mut s.owner_image, image);
            self.changed = true;
        }
        let since = *s.since.get_or_insert(now);
        if !s.settled && now.duration_since(since) >= NAME_GRACE {
            // Peers that waited for its name are judged without it.
            s.settled = true;
            self.changed |= s.owner_name.is_none() && s.owner_image.is_none();
        }
        if s.read_at.is_some_and(|at| now.duration_since(at) < every) {
            return;
        }
        s.read_at = Some(now);
        self.buf.clear();
        read(&mut self.buf);
        self.buf.sort_unstable();
        if self.buf != s.addrs {
            std::mem::swap(&mut self.buf, &mut s.addrs);
            self.changed = true;
        }
    }

    /// Forgets the namespaces no container was met in this sweep, and indexes the addresses.
    /// True when the index changed (every container's peers are resolved again).
    pub fn end_sweep(&mut self) -> bool {
        let sweep = self.sweep;
        let before = self.spaces.len();
        self.spaces.retain(|_, s| s.sweep == sweep);
        if self.spaces.len() != before {
            self.changed = true;
        }
        let changed = std::mem::take(&mut self.changed);
        if changed {
            self.index.clear();
            for (ns, s) in &self.spaces {
                for a in &s.addrs {
                    self.index.insert(*a, *ns);
                }
            }
        }
        changed
    }

    fn owner(&self, addr: IpAddr) -> Option<Owner<'_>> {
        let ns = *self.index.get(&addr)?;
        let s = self.spaces.get(&ns)?;
        Some(Owner {
            ns,
            id: &s.owner_id,
            name: s.owner_name.as_deref(),
            image: s.owner_image.as_deref(),
            settled: s.settled,
        })
    }
}

/// A container's peers between sweeps, and what it has learned.
#[derive(Debug, Default)]
pub(super) struct PeerState {
    /// The peers of its last read, sorted.
    now: Vec<PeerKey>,
    /// Its socket inodes at that read, sorted: the same sockets have the same peers.
    inodes: Vec<u64>,
    /// Its network namespace at that read (a peer there is itself).
    ns: Option<NsId>,
    read_once: bool,
    /// Read in this sweep: to be resolved.
    fresh: bool,
    /// Peers met so far, sorted: learned within the window, or reported as new since.
    known: Vec<PeerKey>,
    new_total: ScopeCounts,
    /// Outbound peers judged against its image's `allowed_peers`, sorted.
    checked: Vec<PeerKey>,
    /// Some peer waits for the container's image to be known, for the policy.
    policy_pending: bool,
    /// As last resolved.
    resolved: PeerStats,
}

/// Its image's policy on peers, as far as it is known.
#[derive(Debug, Clone, Copy)]
pub(super) enum PeerPolicy<'a> {
    /// None applies (no policy file, no entry for the image, or no `allowed_peers`).
    None,
    /// The runtime has not named the image yet.
    Wait,
    Rules(&'a ImagePolicy),
}

/// What judging a container's peers needs.
pub(super) struct Judge<'a> {
    pub addrs: &'a NodeAddrs,
    pub cluster: &'a [ipnet::IpNet],
    pub learning: bool,
    pub policy: PeerPolicy<'a>,
    pub now_ms: u64,
}

impl PeerState {
    /// Whether its peers are to be read again: its sockets changed since the last read.
    pub fn due(&self, inodes: &[u64]) -> bool {
        !self.read_once || self.inodes != inodes
    }

    /// Takes the peers of its own sockets (`inodes`, sorted) from its namespace's rows.
    pub fn read(&mut self, rows: &[SocketRow], inodes: &[u64], ns: Option<NsId>) {
        peers_of(rows, |i| inodes.binary_search(&i).is_ok(), &mut self.now);
        self.inodes.clear();
        self.inodes.extend_from_slice(inodes);
        self.ns = ns;
        self.read_once = true;
        self.fresh = true;
    }

    /// Resolves its peers when read in this sweep, when the node's addresses changed, or
    /// when what a peer waited for in the policy may be known now. Peers first met after the
    /// learning window are counted and handed to `report` as `new_peer` findings (but inbound
    /// ones from outside the cluster: an internet-facing service meets new clients all day);
    /// outbound ones its image's `allowed_peers` does not allow as `unauthorized_connection`
    /// ones, from the first read on. Then puts the figures in `out`.
    pub fn resolve(
        &mut self,
        j: &Judge<'_>,
        addrs_changed: bool,
        mut report: impl FnMut(Finding),
        out: &mut PeerStats,
    ) {
        let retry = self.policy_pending && !matches!(j.policy, PeerPolicy::Wait);
        if self.read_once && (self.fresh || addrs_changed || retry) {
            self.fresh = false;
            self.policy_pending = false;
            let mut counts = PeerCounts::default();
            let mut listed = 0;
            for i in 0..self.now.len() {
                let key = self.now[i];
                let owner = j.addrs.owner(key.addr);
                if owner.as_ref().is_some_and(|o| Some(o.ns) == self.ns) {
                    continue;
                }
                let scope = match owner {
                    Some(_) => Scope::Container,
                    None => scope_outside_node(key.addr, j.cluster),
                };
                counts.add(key.direction, scope);
                if listed < LISTED_MAX {
                    if listed == self.resolved.list.len() {
                        self.resolved.list.push(blank_peer());
                    }
                    fill_peer(&mut self.resolved.list[listed], &key, scope, owner.as_ref());
                    listed += 1;
                }
                if key.direction == Direction::Outbound {
                    self.judge_policy(&key, scope, owner.as_ref(), j, &mut report);
                }
                let Err(at) = self.known.binary_search(&key) else {
                    continue;
                };
                if self.known.len() >= KNOWN_MAX {
                    continue;
                }
                self.known.insert(at, key);
                if j.learning {
                    continue;
                }
                self.new_total.add(scope);
                if key.direction == Direction::Outbound || scope != Scope::External {
                    report(finding(
                        FindingKind::NewPeer,
                        &key,
                        scope,
                        owner.as_ref(),
                        j.now_ms,
                    ));
                }
            }
            self.resolved.list.truncate(listed);
            self.resolved.current = Some(counts);
            self.resolved.new_total = Some(self.new_total.clone());
        }
        out.clone_from(&self.resolved);
    }

    /// Judges an outbound peer against the image's `allowed_peers`, once; one whose container
    /// the runtime has not named yet waits, when the rules go by names or images (until it is
    /// named, or `NAME_GRACE` has passed: both resolve every peer again).
    fn judge_policy(
        &mut self,
        key: &PeerKey,
        scope: Scope,
        owner: Option<&Owner<'_>>,
        j: &Judge<'_>,
        report: &mut impl FnMut(Finding),
    ) {
        let p = match j.policy {
            PeerPolicy::None => return,
            PeerPolicy::Wait => {
                self.policy_pending = true;
                return;
            }
            PeerPolicy::Rules(p) => p,
        };
        let Err(at) = self.checked.binary_search(key) else {
            return;
        };
        if self.checked.len() >= KNOWN_MAX {
            return;
        }
        let unnamed = |o: &Owner<'_>| o.name.is_none() && o.image.is_none() && !o.settled;
        if owner.is_some_and(unnamed) && p.names_peers() {
            return;
        }
        self.checked.insert(at, *key);
        let facts = PeerFacts {
            addr: key.addr,
            port: key.port,
            container: owner.map(|o| (o.name, o.image)),
        };
        if !p.allows_peer(&facts) {
            let kind = FindingKind::UnauthorizedConnection;
            report(finding(kind, key, scope, owner, j.now_ms));
        }
    }
}

fn blank_peer() -> Peer {
    Peer {
        direction: Direction::Outbound,
        scope: Scope::External,
        addr: IpAddr::from([0, 0, 0, 0]),
        port: 0,
        container_id: None,
        container_name: None,
    }
}

/// Fills a listed peer in place, reusing its strings.
fn fill_peer(p: &mut Peer, key: &PeerKey, scope: Scope, owner: Option<&Owner<'_>>) {
    p.direction = key.direction;
    p.scope = scope;
    p.addr = key.addr;
    p.port = key.port;
    set(&mut p.container_id, owner.map(|o| o.id));
    set(&mut p.container_name, owner.and_then(|o| o.name));
}

fn set(slot: &mut Option<String>, v: Option<&str>) {
    match (slot.as_mut(), v) {
        (Some(s), Some(v)) => {
            s.clear();
            s.push_str(v);
        }
        (_, v) => *slot = v.map(str::to_string),
    }
}

fn finding(
    kind: FindingKind,
    key: &PeerKey,
    scope: Scope,
    owner: Option<&Owner<'_>>,
    time_ms: u64,
) -> Finding {
    let mut peer = blank_peer();
    fill_peer(&mut peer, key, scope, owner);
    Finding {
        kind,
        time_ms,
        source: "socket_table",
        process: None,
        // Going out, the far end and the port it serves; coming in, the container's own
        // port (its address not kept) and the far end with port 0: a client's ephemeral port
        // says nothing.
        local: (key.direction == Direction::Inbound).then(|| {
            let any = match key.addr {
                IpAddr::V4(_) => IpAddr::from([0u8; 4]),
                IpAddr::V6(_) => IpAddr::from([0u16; 8]),
            };
            SocketAddr::new(any, key.port)
        }),
        remote: Some(SocketAddr::new(
            key.addr,
            if key.direction == Direction::Outbound {
                key.port
            } else {
                0
            },
        )),
        peer: Some(peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sockets::parse_table_into;

    // 10.0.0.1 (this container) went out to 10.0.0.9:5432 and 10.2.0.7:443, and accepted
    // 192.0.2.5 on its 8080; inode 105 went to its own address.
    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0
   1: 0100000A:A000 0900000A:1538 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 100 0 0 10 0
   2: 0100000A:A001 0700020A:01BB 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0000000000000000 100 0 0 10 0
   3: 0100000A:1F90 050200C0:C000 01 00000000:00000000 00:00000000 00000000     0        0 103 1 0000000000000000 100 0 0 10 0
   4: 0100000A:A002 0100000A:1F90 01 00000000:00000000 00:00000000 00000000     0        0 105 1 0000000000000000 100 0 0 10 0
";

    fn rows() -> Vec<SocketRow> {
        let mut rows = Vec::new();
        parse_table_into(TABLE, &mut rows).expect("the table");
        rows
    }

    fn node() -> NodeAddrs {
        let mut n = NodeAddrs::default();
        n.begin_sweep();
        let now = Instant::now();
        let every = Duration::from_secs(10);
        n.visit(NsId::Link(1), "/me", Some("me"), None, now, every, |out| {
            out.push(IpAddr::from([10, 0, 0, 1]))
        });
        n.visit(
            NsId::Link(2),
            "/db",
            Some("db"),
            Some("postgres:16"),
            now,
            every,
            |out| out.push(IpAddr::from([10, 0, 0, 9])),
        );
        assert!(n.end_sweep());
        n
    }

    fn judge<'a>(addrs: &'a NodeAddrs, cluster: &'a [ipnet::IpNet], learning: bool) -> Judge<'a> {
        Judge {
            addrs,
            cluster,
            learning,
            policy: PeerPolicy::None,
            now_ms: 7,
        }
    }

    #[test]
    fn peers_resolve_to_containers_the_cluster_and_the_rest() {
        let addrs = node();
        let cluster: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("a range")];
        let mut s = PeerState::default();
        s.read(&rows(), &[100, 101, 102, 103, 105], Some(NsId::Link(1)));
        let mut out = PeerStats::default();
        s.resolve(
            &judge(&addrs, &cluster, true),
            false,
            |f| panic!("{f:?}"),
            &mut out,
        );
        let c = out.current.expect("counts");
        assert_eq!(
            (
                c.outbound.container,
                c.outbound.cluster,
                c.outbound.external
            ),
            (1, 1, 0)
        );
        assert_eq!(
            (c.inbound.container, c.inbound.cluster, c.inbound.external),
            (0, 0, 1)
        );
        let db = out
            .list
            .iter()
            .find(|p| p.scope == Scope::Container)
            .expect("db");
        assert_eq!((db.container_id.as_deref(), db.port), (Some("/db"), 5432));
        assert_eq!(
            out.list.len(),
            3,
            "its own address is no peer: {:?}",
            out.list
        );
    }

    #[test]
    fn only_peers_met_after_the_window_are_new() {
        let addrs = node();
        let mut s = PeerState::default();
        let mut out = PeerStats::default();
        let mut found = Vec::new();
        s.read(&rows()[..2], &[100, 101], Some(NsId::Link(1)));
        s.resolve(
            &judge(&addrs, &[], true),
            false,
            |f| found.push(f),
            &mut out,
        );
        // Again after the window: 10.0.0.9 is learned; 10.2.0.7:443 and the inbound client
        // from outside are new, and only the first is a finding.
        s.read(&rows(), &[100, 101, 102, 103], Some(NsId::Link(1)));
        s.resolve(
            &judge(&addrs, &[], false),
            false,
            |f| found.push(f),
            &mut out,
        );
        s.resolve(
            &judge(&addrs, &[], false),
            true,
            |f| found.push(f),
            &mut out,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, FindingKind::NewPeer);
        assert_eq!(
            found[0].remote,
            Some("10.2.0.7:443".parse().expect("an address"))
        );
        assert_eq!(out.new_total.map(|n| n.external), Some(2));
    }

    /// Outbound peers meet the image's `allowed_peers` from the first read on, once each,
    /// and wait while the image is not known.
    #[test]
    fn peers_outside_the_policy_are_unauthorized() {
        let addrs = node();
        let policy: crate::security::ProcessPolicy = toml::from_str(
            "[[image]]\nimage = \"*\"\nallowed_peers = [{ image = \"postgres:*\", ports = [5432] }]\n",
        )
        .expect("a policy");
        let rules = &policy.images[0];
        let mut s = PeerState::default();
        let mut out = PeerStats::default();
        let mut found = Vec::new();
        s.read(&rows(), &[100, 101, 102, 103], Some(NsId::Link(1)));
        let mut j = judge(&addrs, &[], true);
        j.policy = PeerPolicy::Wait;
        s.resolve(&j, false, |f| found.push(f), &mut out);
        assert!(found.is_empty(), "{found:?}");
        j.policy = PeerPolicy::Rules(rules);
        for _ in 0..2 {
            s.resolve(&j, false, |f| found.push(f), &mut out);
            s.resolve(&j, true, |f| found.push(f), &mut out);
        }
        // db:5432 is allowed; 10.2.0.7:443 is not; the inbound client is not judged.
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, FindingKind::UnauthorizedConnection);
        assert_eq!(
            found[0].remote,
            Some("10.2.0.7:443".parse().expect("an address"))
        );
    }

    #[test]
    fn the_same_sockets_are_not_read_again() {
        let mut s = PeerState::default();
        assert!(s.due(&[1, 2]));
        s.read(&[], &[1, 2], None);
        assert!(!s.due(&[1, 2]));
        assert!(s.due(&[1, 3]));
    }
}
