//! The kernel's socket tables, `/proc/<pid>/net/{tcp,tcp6,udp,udp6}`: every socket of the
//! network namespace the process lives in, with its addresses, state, owner and inode.
//!
//! The inode ties a row to a process: `/proc/<pid>/fd/N` links to `socket:[<inode>]`.
//!
//! Addresses are printed by the kernel as the raw 32-bit words of the address in host byte
//! order (`%08X` of a `__be32`), so they are read back with the host's byte order; the
//! hand-written fixtures below are little-endian (x86, arm64) rows. Ports are already in
//! host order.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::parse::Reason;
pub use crate::stats::{TcpCounts, UdpCounts};

/// A TCP state, numbered as the kernel's `include/net/tcp_states.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// `ESTABLISHED`.
    Established = 0x01,
    /// `SYN_SENT`.
    SynSent = 0x02,
    /// `SYN_RECV`.
    SynRecv = 0x03,
    /// `FIN_WAIT1`.
    FinWait1 = 0x04,
    /// `FIN_WAIT2`.
    FinWait2 = 0x05,
    /// `TIME_WAIT`.
    TimeWait = 0x06,
    /// `CLOSE`.
    Close = 0x07,
    /// `CLOSE_WAIT`.
    CloseWait = 0x08,
    /// `LAST_ACK`.
    LastAck = 0x09,
    /// `LISTEN`.
    Listen = 0x0A,
    /// `CLOSING`.
    Closing = 0x0B,
}

impl TcpState {
    /// The state of the `st` column, or `None` for a number no TCP socket shows there.
    /// (`TCP_NEW_SYN_RECV`, 0x0C, is printed as `SYN_RECV`.)
    pub fn from_code(code: u8) -> Option<TcpState> {
        use TcpState::*;
        Some(match code {
            0x01 => Established,
            0x02 => SynSent,
            0x03 => SynRecv,
            0x04 => FinWait1,
            0x05 => FinWait2,
            0x06 => TimeWait,
            0x07 => Close,
            0x08 => CloseWait,
            0x09 => LastAck,
            0x0A => Listen,
            0x0B => Closing,
            _ => return None,
        })
    }

    /// The `tcp_state` label value cAdvisor gives this state in
    /// `container_network_tcp_usage_total` and `container_network_tcp6_usage_total`.
    pub fn label(self) -> &'static str {
        use TcpState::*;
        match self {
            Established => "established",
            SynSent => "synsent",
            SynRecv => "synrecv",
            FinWait1 => "finwait1",
            FinWait2 => "finwait2",
            TimeWait => "timewait",
            Close => "close",
            CloseWait => "closewait",
            LastAck => "lastack",
            Listen => "listen",
            Closing => "closing",
        }
    }
}

/// One row of a socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketRow {
    /// The local address and port.
    pub local: SocketAddr,
    /// The remote address and port; all zeros for a listening or unconnected socket.
    pub remote: SocketAddr,
    /// The `st` column. For TCP see `TcpState`; UDP uses the same numbers
    /// (`07` unconnected, `01` connected).
    pub state: u8,
    /// Bytes queued for sending and for reading (`tx_queue:rx_queue`).
    pub tx_queue: u64,
    /// Bytes received and not yet read.
    pub rx_queue: u64,
    /// The owner's uid, as seen from the reader's user namespace.
    pub uid: u32,
    /// 0 for sockets no file refers to any more (TIME_WAIT, orphans).
    pub inode: u64,
}

impl SocketRow {
    /// The TCP state of `state`; `None` when the number is not one.
    pub fn tcp_state(&self) -> Option<TcpState> {
        TcpState::from_code(self.state)
    }
}

impl TcpCounts {
    /// Counts one more socket in this state.
    pub(crate) fn add(&mut self, state: TcpState) {
        *self.get_mut(state) += 1;
    }

    /// How many sockets were counted in this state.
    pub(crate) fn get(&self, state: TcpState) -> u64 {
        use TcpState::*;
        match state {
            Established => self.established,
            SynSent => self.syn_sent,
            SynRecv => self.syn_recv,
            FinWait1 => self.fin_wait1,
            FinWait2 => self.fin_wait2,
            TimeWait => self.time_wait,
            Close => self.close,
            CloseWait => self.close_wait,
            LastAck => self.last_ack,
            Listen => self.listen,
            Closing => self.closing,
        }
    }

    fn get_mut(&mut self, state: TcpState) -> &mut u64 {
        use TcpState::*;
        match state {
            Established => &mut self.established,
            SynSent => &mut self.syn_sent,
            SynRecv => &mut self.syn_recv,
            FinWait1 => &mut self.fin_wait1,
            FinWait2 => &mut self.fin_wait2,
            TimeWait => &mut self.time_wait,
            Close => &mut self.close,
            CloseWait => &mut self.close_wait,
            LastAck => &mut self.last_ack,
            Listen => &mut self.listen,
            Closing => &mut self.closing,
        }
    }

    /// `(tcp_state label, count)` in cAdvisor's order.
    pub fn labeled(&self) -> [(&'static str, u64); 11] {
        TCP_STATES.map(|s| (s.label(), self.get(s)))
    }
}

/// Every state, in the order cAdvisor exposes them.
pub const TCP_STATES: [TcpState; 11] = [
    TcpState::Established,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::FinWait1,
    TcpState::FinWait2,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::Listen,
    TcpState::Closing,
];

impl UdpCounts {
    /// `(udp_state label, value)` as in `container_network_udp_usage_total`.
    pub fn labeled(&self) -> [(&'static str, u64); 4] {
        [
            ("listen", self.listen),
            ("dropped", self.dropped),
            ("rxqueued", self.rx_queued),
            ("txqueued", self.tx_queued),
        ]
    }
}

/// The ports a table's sockets listen on, found once per table: a host-network container sees
/// the host's whole table, so asking each row's port of every row would be quadratic.
pub struct ListeningPorts(Vec<u16>);

impl ListeningPorts {
    /// The TCP ports in LISTEN among `rows`.
    pub fn of(rows: &[SocketRow]) -> ListeningPorts {
        let mut ports: Vec<u16> = rows
            .iter()
            .filter(|r| r.tcp_state() == Some(TcpState::Listen))
            .map(|r| r.local.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ListeningPorts(ports)
    }

    /// Whether a socket of the table listens on `port`.
    pub fn contains(&self, port: u16) -> bool {
        self.0.binary_search(&port).is_ok()
    }
}

/// Parses a socket table, calling `f` for each row. A bad row is skipped and the first one is
/// returned as the error, after the rest were parsed.
pub fn parse_table(text: &str, mut f: impl FnMut(&SocketRow)) -> Result<(), Reason> {
    each_row(text, |row, _, _| f(row))
}

/// As `parse_table`, appended to `out` (so `tcp` and `tcp6` go into one list; rows are
/// `Copy`, so a reused `Vec` does not allocate once it is large enough).
pub fn parse_table_into(text: &str, out: &mut Vec<SocketRow>) -> Result<(), Reason> {
    parse_table(text, |r| out.push(*r))
}

/// Adds the rows of a `tcp` or `tcp6` table to `counts`. A row with a state outside
/// `01..=0B` is a bad row (cAdvisor also rejects it).
pub fn count_tcp(text: &str, counts: &mut TcpCounts) -> Result<(), Reason> {
    let mut first_err = None;
    let parsed = each_row(text, |row, n, _| match row.tcp_state() {
        Some(s) => counts.add(s),
        None => {
            first_err.get_or_insert_with(|| format!("line {}: unknown TCP state", n + 1));
        }
    });
    match (parsed, first_err) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    }
}

/// Adds the rows of a `udp` or `udp6` table to `counts`.
pub fn count_udp(text: &str, counts: &mut UdpCounts) -> Result<(), Reason> {
    each_row(text, |row, _, line| {
        counts.listen += 1;
        counts.tx_queued = counts.tx_queued.saturating_add(row.tx_queue);
        counts.rx_queued = counts.rx_queued.saturating_add(row.rx_queue);
        // `drops` is the 13th column of UDP rows only, so it is not in `SocketRow`.
        if let Some(d) = line.split_ascii_whitespace().nth(12).and_then(dec_u64) {
            counts.dropped = counts.dropped.saturating_add(d);
        }
    })
}

/// The local addresses of the TCP sockets in LISTEN. Bad rows are left out.
#[cfg(test)]
pub fn listeners(text: &str) -> impl Iterator<Item = SocketAddr> + '_ {
    let mut out = Vec::new();
    let _ = each_row(text, |r, _, _| {
        if r.state == TcpState::Listen as u8 {
            out.push(r.local);
        }
    });
    out.into_iter()
}

/// Calls `f` with each good row, its line index and its text.
fn each_row(text: &str, mut f: impl FnMut(&SocketRow, usize, &str)) -> Result<(), Reason> {
    let mut first_err = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && line.trim_start().starts_with("sl")) {
            continue;
        }
        match parse_row(line) {
            Ok(row) => f(&row, n, line),
            Err(what) => {
                first_err.get_or_insert_with(|| bad_row(n, line, what));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...`
fn parse_row(line: &str) -> Result<SocketRow, &'static str> {
    let mut cols = line.split_ascii_whitespace();
    let mut next = || cols.next().ok_or("too few columns");
    let sl = next()?;
    if !sl.ends_with(':') {
        return Err("expected `sl:`");
    }
    let local = addr(next()?).ok_or("bad local address")?;
    let remote = addr(next()?).ok_or("bad remote address")?;
    if local.is_ipv4() != remote.is_ipv4() {
        return Err("local and remote addresses of different families");
    }
    let state = hex(next()?, 2).ok_or("bad state")? as u8;
    let (tx, rx) = next()?.split_once(':').ok_or("bad queues")?;
    let tx_queue = hex(tx, 16).ok_or("bad tx_queue")?;
    let rx_queue = hex(rx, 16).ok_or("bad rx_queue")?;
    let _timer = next()?;
    let _retrnsmt = next()?;
    let uid = dec_u64(next()?)
        .and_then(|u| u32::try_from(u).ok())
        .ok_or("bad uid")?;
    let _timeout = next()?;
    let inode = dec_u64(next()?).ok_or("bad inode")?;
    Ok(SocketRow {
        local,
        remote,
        state,
        tx_queue,
        rx_queue,
        uid,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6).
fn addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = hex(port, 4)? as u16;
    match ip.len() {
        8 => {
            let w = hex(ip, 8)? as u32;
            Some(SocketAddr::new(
                Ipv4Addr::from(w.to_ne_bytes()).into(),
                port,
            ))
        }
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
                let w = hex(ip.get(i * 8..i * 8 + 8)?, 8)? as u32;
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            Some(SocketAddrV6::new(Ipv6Addr::from(b), port, 0, 0).into())
        }
        _ => None,
    }
}

/// 1 to `max` hex digits, nothing else (`from_str_radix` would take a sign).
fn hex(s: &str, max: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn dec_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn bad_row(n: usize, line: &str, what: &str) -> Reason {
    let cut = line
        .char_indices()
        .nth(80)
        .map_or(line, |(i, _)| &line[..i]);
    format!("line {}: {what}: {cut:?}", n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    // Rows as a little-endian kernel prints them.
    #[cfg(target_endian = "little")]
    mod little_endian {
        use super::*;

        const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0200000A:C350 2301A8C0:01BB 01 00000010:00000002 02:000A7B2C 00000000     0        0 41299 2 0000000000000000 20 4 30 10 -1
   2: 0100007F:8E2A 0100007F:1F90 06 00000000:00000000 03:00000BE9 00000000     0        0 0 3 0000000000000000
";

        #[test]
        fn v4_rows() {
            let mut rows = Vec::new();
            parse_table_into(TCP, &mut rows).unwrap();
            assert_eq!(rows.len(), 3);
            let l = rows[0];
            assert_eq!(l.local, sa("127.0.0.1:8080"));
            assert_eq!(l.remote, sa("0.0.0.0:0"));
            assert_eq!(l.tcp_state(), Some(TcpState::Listen));
            assert_eq!((l.uid, l.inode), (1000, 41234));
            let e = rows[1];
            assert_eq!(e.local, sa("10.0.0.2:50000"));
            assert_eq!(e.remote, sa("192.168.1.35:443"));
            assert_eq!(e.tcp_state(), Some(TcpState::Established));
            assert_eq!((e.tx_queue, e.rx_queue, e.inode), (16, 2, 41299));
            assert_eq!(rows[2].tcp_state(), Some(TcpState::TimeWait));
            assert_eq!(rows[2].inode, 0);
        }

        #[test]
        fn v6_rows() {
            let text = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000    33        0 5002 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000200000A:D432 01 00000000:00000000 00:00000000 00000000    33        0 5003 1 0000000000000000 20 4 30 10 -1
   3: 000080FE00000000FF020002FE5634FE:01BB 0000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5004 1 0000000000000000 100 0 0 10 0
";
            let mut rows = Vec::new();
            let err = parse_table_into(text, &mut rows).unwrap_err();
            // Row 3's remote has 31 digits.
            assert!(err.starts_with("line 5: bad remote address"), "{err}");
            assert_eq!(rows.len(), 3);
            assert_eq!(rows[0].local, sa("[::]:80"));
            assert_eq!(rows[1].local, sa("[::1]:8080"));
            assert_eq!(rows[1].remote, sa("[::1]:54321"));
            assert_eq!(rows[1].uid, 33);
            assert_eq!(rows[2].local, sa("[::ffff:127.0.0.1]:8080"));
            assert_eq!(rows[2].remote, sa("[::ffff:10.0.0.2]:54322"));
            let ll = parse_row("   3: 000080FE00000000FF020002FE5634FE:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5004").unwrap();
            assert_eq!(ll.local, sa("[fe80::200:2ff:fe34:56fe]:443"));
        }

        #[test]
        fn udp_counts_and_listeners() {
            let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  120: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 2001 2 0000000000000000 0
  300: 00000000:0044 00000000:0000 07 00000100:00000340 00:00000000 00000000     0        0 2002 2 0000000000000000 7
  301: 0200000A:9C40 0101A8C0:0035 01 00000000:00000010 00:00000000 00000000     0        0 2003 2 0000000000000000 1
";
            let mut c = UdpCounts::default();
            count_udp(udp, &mut c).unwrap();
            assert_eq!(
                c,
                UdpCounts {
                    listen: 3,
                    dropped: 8,
                    rx_queued: 0x350,
                    tx_queued: 0x100
                }
            );
            let l: Vec<_> = listeners(TCP).collect();
            assert_eq!(l, vec![sa("127.0.0.1:8080")]);
            // UDP sockets are never LISTEN.
            assert_eq!(listeners(udp).count(), 0);
        }
    }

    #[test]
    fn tcp_counts_by_cadvisor_label() {
        let text = format!(
            "{TCP_HEADER}\n{}\n{}\n{}\n{}\n",
            "0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
            "1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 2",
            "2: 0100007F:0016 0100007F:A000 01 00000000:00000000 00:00000000 00000000 0 0 3",
            "3: 0100007F:0016 0100007F:A001 02 00000000:00000000 00:00000000 00000000 0 0 4",
        );
        let mut c = TcpCounts::default();
        count_tcp(&text, &mut c).unwrap();
        let got: Vec<_> = c.labeled().into_iter().filter(|&(_, n)| n > 0).collect();
        assert_eq!(got, [("established", 1), ("synsent", 1), ("listen", 2)]);
        let labels: Vec<_> = c.labeled().into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            labels,
            [
                "established",
                "synsent",
                "synrecv",
                "finwait1",
                "finwait2",
                "timewait",
                "close",
                "closewait",
                "lastack",
                "listen",
                "closing"
            ]
        );
        for code in 1..=11 {
            let s = TcpState::from_code(code).unwrap();
            assert_eq!(s as u8, code);
        }
        assert_eq!(TcpState::from_code(0), None);
        assert_eq!(TcpState::from_code(0x0C), None);
    }

    #[test]
    fn malformed_rows_are_reasons() {
        let cases = [
            ("0: 0100007F:1F90", "too few columns"),
            (
                "0 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
                "expected `sl:`",
            ),
            (
                "0: 0100007G:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
                "bad local address",
            ),
            (
                "0: 0100007F:1F90 0000:0000 0A 0:0 0:0 0 0 0 1",
                "bad remote address",
            ),
            (
                "0: 0100007F:+F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
                "bad local address",
            ),
            (
                "0: 0100007F:1F90 00000000:0000 0AA 0:0 0:0 0 0 0 1",
                "bad state",
            ),
            (
                "0: 0100007F:1F90 00000000:0000 0A 00 0:0 0 0 0 1",
                "bad queues",
            ),
            (
                "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 -1 0 1",
                "bad uid",
            ),
            (
                "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 4294967296 0 1",
                "bad uid",
            ),
            (
                "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 +1",
                "bad inode",
            ),
        ];
        for (row, want) in cases {
            let text = format!("{TCP_HEADER}\n{row}\n");
            let err = parse_table(&text, |_| panic!("bad row accepted: {row}")).unwrap_err();
            assert_eq!(err, format!("line 2: {want}: {row:?}"));
        }
        // An unknown state parses as a row but does not count.
        let text = format!(
            "{TCP_HEADER}\n0: 0100007F:1F90 00000000:0000 0C 0:0 0:0 0 0 0 1\n\
             1: 0100007F:1F91 00000000:0000 0A 0:0 0:0 0 0 0 2\n"
        );
        let mut c = TcpCounts::default();
        assert_eq!(
            count_tcp(&text, &mut c).unwrap_err(),
            "line 2: unknown TCP state"
        );
        assert_eq!(c.listen, 1);
    }

    #[test]
    fn empty_and_header_only() {
        let mut rows = vec![];
        parse_table_into("", &mut rows).unwrap();
        parse_table_into(TCP_HEADER, &mut rows).unwrap();
        parse_table_into(&format!("{TCP_HEADER}\n\n"), &mut rows).unwrap();
        assert!(rows.is_empty());
    }

    /// The `socket:[N]` inode of an fd of this process.
    fn fd_inode(fd: std::os::fd::RawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let s = link.to_str().unwrap();
        s.strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn real_listener_and_connection() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let table = || std::fs::read_to_string("/proc/self/net/tcp").unwrap();
        let mut rows = Vec::new();
        let mut buf = table();
        parse_table_into(&buf, &mut rows).unwrap();
        let l = rows
            .iter()
            .find(|r| r.local == server && r.tcp_state() == Some(TcpState::Listen))
            .expect("listener row");
        assert_eq!(l.inode, fd_inode(listener.as_raw_fd()));
        assert!(listeners(&buf).any(|a| a == server));

        let client = std::net::TcpStream::connect(server).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let caddr = client.local_addr().unwrap();
        buf = table();
        rows.clear();
        parse_table_into(&buf, &mut rows).unwrap();
        let est = |local, remote| {
            rows.iter()
                .find(|r| r.local == local && r.remote == remote)
                .filter(|r| r.tcp_state() == Some(TcpState::Established))
                .map(|r| r.inode)
        };
        assert_eq!(est(caddr, server), Some(fd_inode(client.as_raw_fd())));
        assert_eq!(est(server, caddr), Some(fd_inode(accepted.as_raw_fd())));
        let mut c = TcpCounts::default();
        count_tcp(&buf, &mut c).unwrap();
        assert!(c.established >= 2 && c.listen >= 1, "{c:?}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse_table(&text, |_| {});
            let _ = count_tcp(&text, &mut TcpCounts::default());
            let _ = count_udp(&text, &mut UdpCounts::default());
            let _ = listeners(&text).count();
        }

        #[test]
        fn never_panics_on_near_rows(
            cols in proptest::collection::vec("[0-9A-Fa-f:+\\- ]{0,40}", 0..16)
        ) {
            let text = format!("{TCP_HEADER}\n{}\n", cols.join(" "));
            let _ = parse_table(&text, |_| {});
            let _ = count_udp(&text, &mut UdpCounts::default());
        }
    }

    #[test]
    fn a_row_mixing_address_families_is_bad() {
        let text = "   1: 00000000000000000000000000000000:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 31338 1\n";
        let mut rows = Vec::new();
        let e = parse_table_into(text, &mut rows).unwrap_err();
        assert!(rows.is_empty());
        assert!(e.contains("different families"), "{e}");
    }
}
