//! Whom a container talks to, from its network namespace's TCP tables: the far end of each
//! of its own connections, and which way it was opened. Pure: the collector reads the tables
//! and the namespaces' addresses, and resolves the peers against them.
//!
//! A peer is the far end's address with the port the connection serves: the remote port of a
//! connection it opened, its own listening port of one it accepted. A client's ephemeral
//! port says nothing, and keying by it would make every accepted connection a new peer.
//!
//! Loopback is skipped: a connection within the namespace (a sidecar and its app) has no
//! peer outside it. So is an address of the container's own namespace (the collector skips
//! it when resolving).

use std::net::{IpAddr, Ipv6Addr};

use super::sockets::{ListeningPorts, SocketRow, TcpState};
use crate::parse::Reason;
pub use crate::stats::{Direction, Scope};

/// A peer as the tables show it, before it is resolved to a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// Whether the container accepted the connection or opened it.
    pub direction: Direction,
    /// The peer's address (an IPv4-mapped IPv6 address as IPv4).
    pub addr: IpAddr,
    /// The port served: the container's own for an inbound connection, the peer's for an
    /// outbound one.
    pub port: u16,
}

/// Fills `out` with the peers of the rows `own` accepts (by inode), sorted and without
/// duplicates. `ESTABLISHED` and `SYN_SENT` only: a connection being opened is already a
/// peer (a blocked one still shows the attempt), a closing one is no longer news. Inbound
/// when its local port is one the namespace listens on.
pub fn peers_of(rows: &[SocketRow], own: impl Fn(u64) -> bool, out: &mut Vec<PeerKey>) {
    out.clear();
    let listen = ListeningPorts::of(rows);
    let listening = |port: u16| listen.contains(port);
    for r in rows {
        let state = r.tcp_state();
        if !matches!(state, Some(TcpState::Established | TcpState::SynSent)) {
            continue;
        }
        if r.inode == 0 || !own(r.inode) {
            continue;
        }
        let addr = r.remote.ip().to_canonical();
        if addr.is_loopback() || addr.is_unspecified() {
            continue;
        }
        let inbound = state == Some(TcpState::Established) && listening(r.local.port());
        let (direction, port) = if inbound {
            (Direction::Inbound, r.local.port())
        } else {
            (Direction::Outbound, r.remote.port())
        };
        out.push(PeerKey {
            direction,
            addr,
            port,
        });
    }
    out.sort_unstable();
    out.dedup();
}

/// `cluster` inside one of the configured ranges, else `external` (a container on this node
/// is found by the caller first).
pub fn scope_outside_node(addr: IpAddr, cluster: &[ipnet::IpNet]) -> Scope {
    if cluster.iter().any(|n| n.contains(&addr)) {
        Scope::Cluster
    } else {
        Scope::External
    }
}

/// Appends the IPv4 addresses a namespace's `net/fib_trie` marks local (`/32 host LOCAL`
/// leaves), loopback left out. The trie prints each leaf as `|-- <address>` followed by one
/// line per prefix on it (`/<len> <scope> <type> [tos=N]`). A line that does not parse is
/// returned as the reason, after the rest were read.
pub fn fib_trie_locals(text: &str, out: &mut Vec<IpAddr>) -> Result<(), Reason> {
    let mut first_err = None;
    let mut leaf: Option<std::net::Ipv4Addr> = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if line.trim_start().starts_with("|--") {
            leaf = t.parse().ok();
            if leaf.is_none() {
                first_err.get_or_insert_with(|| format!("line {}: not an address", n + 1));
            }
            continue;
        }
        if !line.trim_start().starts_with('/') {
            // Table headers (`Main:`, `Local:`) and inner nodes (`+-- 10.0.0.0/8 2 0 2`).
            continue;
        }
        let mut parts = line.split_whitespace();
        let (len, _scope, kind) = (parts.next(), parts.next(), parts.next());
        if len == Some("/32") && kind == Some("LOCAL") {
            match leaf {
                Some(a) if !a.is_loopback() => {
                    let a = IpAddr::V4(a);
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                Some(_) => {}
                None => {
                    first_err
                        .get_or_insert_with(|| format!("line {}: a prefix with no leaf", n + 1));
                }
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Appends the IPv6 addresses of a namespace's `net/if_inet6` (`<32 hex digits> <ifindex>
/// <prefix len> <scope> <flags> <name>`), loopback left out.
pub fn if_inet6_addrs(text: &str, out: &mut Vec<IpAddr>) -> Result<(), Reason> {
    let mut first_err = None;
    for (n, line) in text.lines().enumerate() {
        let Some(hex) = line.split_whitespace().next() else {
            continue;
        };
        let parsed = (hex.len() == 32 && hex.is_ascii())
            .then(|| u128::from_str_radix(hex, 16).ok())
            .flatten();
        let Some(bits) = parsed else {
            first_err.get_or_insert_with(|| format!("line {}: not an address", n + 1));
            continue;
        };
        let a = IpAddr::V6(Ipv6Addr::from(bits));
        if !a.is_loopback() && !out.contains(&a) {
            out.push(a);
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sockets::parse_table_into;
    use proptest::prelude::*;

    proptest! {
        /// Any text, and lines near the real ones: no panic, and never a loopback address.
        #[test]
        fn address_parsers_never_panic(
            text in "\\PC*",
            lines in proptest::collection::vec("[ |+\\-/0-9a-fA-F.:]{0,40}( host| link)?( LOCAL| UNICAST)?", 0..12),
        ) {
            let near = lines.join("\n");
            for t in [text.as_str(), near.as_str()] {
                let mut out = Vec::new();
                let _ = fib_trie_locals(t, &mut out);
                let _ = if_inet6_addrs(t, &mut out);
                prop_assert!(out.iter().all(|a| !a.is_loopback()));
            }
        }
    }

    /// A namespace with 10.1.0.5 (eth0) and loopback, as `ip netns exec .. cat
    /// /proc/net/fib_trie` prints it on 6.x.
    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.1.0.0/24 2 0 2
        +-- 10.1.0.0/29 2 0 2
           |-- 10.1.0.0
              /24 link UNICAST
           |-- 10.1.0.5
              /32 host LOCAL
        |-- 10.1.0.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.1.0.0/24 2 0 2
           |-- 10.1.0.5
              /32 host LOCAL
";

    const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000005 02 40 00 80     eth0
fe80000000000000a0b1c2fffed3e4f5 02 40 20 80     eth0
";

    #[test]
    fn local_addresses_of_a_namespace() {
        let mut out = Vec::new();
        fib_trie_locals(FIB_TRIE, &mut out).expect("the trie");
        assert_eq!(out, [IpAddr::from([10, 1, 0, 5])]);
        if_inet6_addrs(IF_INET6, &mut out).expect("if_inet6");
        let v6: Vec<String> = out.iter().skip(1).map(|a| a.to_string()).collect();
        assert_eq!(v6, ["fd00::5", "fe80::a0b1:c2ff:fed3:e4f5"]);
    }

    /// Damaged files (cut anywhere, bytes flipped, lines shuffled) never panic, and the good
    /// lines before and after a bad one still count.
    #[test]
    fn damaged_address_files_never_panic() {
        let mut out = Vec::new();
        for text in [FIB_TRIE, IF_INET6] {
            for cut in 0..=text.len() {
                let (a, b) = text.split_at(cut);
                for t in [a, b] {
                    out.clear();
                    let _ = fib_trie_locals(t, &mut out);
                    let _ = if_inet6_addrs(t, &mut out);
                }
            }
            let bytes = text.as_bytes();
            for i in 0..bytes.len() {
                for flip in [b'/', b'|', b' ', b'\n', b'x', 0xff] {
                    let mut b = bytes.to_vec();
                    b[i] = flip;
                    let t = String::from_utf8_lossy(&b);
                    out.clear();
                    let _ = fib_trie_locals(&t, &mut out);
                    let _ = if_inet6_addrs(&t, &mut out);
                }
            }
        }
        out.clear();
        let bad = "|-- 10.0.0.300\n   /32 host LOCAL\n|-- 10.0.0.7\n   /32 host LOCAL\n";
        assert!(fib_trie_locals(bad, &mut out).is_err());
        assert_eq!(out, [IpAddr::from([10, 0, 0, 7])]);
        out.clear();
        assert!(if_inet6_addrs(
            "zz\nfd000000000000000000000000000005 02 40 00 80 e\n",
            &mut out
        )
        .is_err());
        assert_eq!(out.len(), 1);
    }

    // 8080 listening; 10.0.0.2:51000 came in to it; it went out to 10.0.0.9:5432 and is
    // opening 10.0.0.9:6379; 127.0.0.1 and a TIME_WAIT row (inode 0) are left out; inode 107
    // is another container's.
    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0
   1: 0100000A:1F90 0200000A:C738 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 100 0 0 10 0
   2: 0100000A:A000 0900000A:1538 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0000000000000000 100 0 0 10 0
   3: 0100000A:A001 0900000A:18EB 02 00000000:00000000 00:00000000 00000000     0        0 103 1 0000000000000000 100 0 0 10 0
   4: 0100007F:A002 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 104 1 0000000000000000 100 0 0 10 0
   5: 0100000A:A003 0900000A:1538 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
   6: 0100000A:A004 0900000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 107 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn peers_with_their_direction_and_service_port() {
        let mut rows = Vec::new();
        parse_table_into(TABLE, &mut rows).expect("the table");
        let mut out = Vec::new();
        peers_of(&rows, |i| i != 107, &mut out);
        let a = |d: Direction, last: u8, port: u16| PeerKey {
            direction: d,
            addr: IpAddr::from([10, 0, 0, last]),
            port,
        };
        assert_eq!(
            out,
            [
                a(Direction::Inbound, 2, 8080),
                a(Direction::Outbound, 9, 5432),
                a(Direction::Outbound, 9, 6379),
            ]
        );
    }

    #[test]
    fn scopes_outside_the_node() {
        let cluster: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("a range")];
        let s = |a: [u8; 4]| scope_outside_node(IpAddr::from(a), &cluster);
        assert_eq!(s([10, 3, 2, 1]), Scope::Cluster);
        assert_eq!(s([192, 0, 2, 1]), Scope::External);
    }
}
