//! Every exec, fork and exit on the host, as the kernel announces them through its process
//! events connector (`CONFIG_PROC_EVENTS`).
//!
//! Polling `/proc` misses what lives shorter than the interval: a `curl | sh` step or a
//! shell spawned by an exploit is gone in a millisecond. The connector multicasts a message
//! for each event as it happens, so a subscriber sees it however brief the process was.
//!
//! The protocol: a `NETLINK_CONNECTOR` socket joins multicast group `CN_IDX_PROC` and sends
//! one `cn_msg` addressed to {`CN_IDX_PROC`, `CN_VAL_PROC`} carrying the u32
//! `PROC_CN_MCAST_LISTEN`; the kernel answers with an acknowledgement (`PROC_EVENT_NONE`)
//! and from then on sends one datagram per event: `nlmsghdr` + `cn_msg` + `struct
//! proc_event` (`include/uapi/linux/{netlink,connector,cn_proc}.h`), in host byte order.
//!
//! What it takes (`drivers/connector/{connector,cn_proc}.c`, `net/netlink/af_netlink.c`):
//! - the host's network namespace: the connector's kernel socket exists only there, so
//!   elsewhere the subscription is refused (`ECONNREFUSED`); a DaemonSet needs
//!   `hostNetwork: true`;
//! - the initial PID and user namespaces: the kernel silently ignores subscriptions from
//!   anywhere else, which [`ProcEvents::open`] notices as a missing acknowledgement; a
//!   DaemonSet needs `hostPID: true` and no user namespace (`hostUsers` left true);
//! - on older kernels, `CAP_NET_ADMIN` in the host's user namespace (`EPERM` at `bind` or
//!   in the acknowledgement). Since the connector's filtering rework (6.6, as far as we
//!   know) any user may subscribe: on 6.18 uid 65534 without capabilities does. Setting
//!   the receive buffer beyond `rmem_max` still takes `CAP_NET_ADMIN`.
//!
//! PIDs in events are those of the initial PID namespace, the ones the host's `/proc`
//! shows. Threads count: a new thread is a `Fork` whose `child_pid` differs from its
//! `child_tgid`, and each thread has its own `Exit`.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, MsgFlags, NetlinkAddr};

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;

/// `struct cn_msg` before its data: idx u32, val u32, seq u32, ack u32, len u16, flags u16.
const CN_MSG_LEN: usize = 20;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;

const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;

/// `struct proc_event` before its union: what u32, cpu u32, timestamp_ns u64 (8-aligned).
const EV_HDR_LEN: usize = 16;
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// The subscription message: nlmsghdr + cn_msg + one u32.
const CONTROL_LEN: usize = NLMSG_HDRLEN + CN_MSG_LEN + 4;

/// Asked of the kernel with `SO_RCVBUFFORCE` (it doubles the figure for its bookkeeping).
/// A queued event costs its skb's truesize, about 830 bytes, not its 76 bytes of data: the
/// default 208 KiB holds 256 events, while 200 processes started at once make 600 (fork,
/// exec, exit). 2 MiB holds about 2500, a burst's worth between two drains.
const RCVBUF_BYTES: usize = 1 << 20;

/// Datagrams are 76 bytes; a larger one (future kernels) is detected through `MSG_TRUNC`.
const RECV_BUF_LEN: usize = 4096;

/// The kernel acknowledges synchronously, within the `send`; the wait covers a loaded host.
const ACK_WAIT: Duration = Duration::from_secs(1);

/// Numbers our control messages, so that our acknowledgement is told from those other
/// subscribers receive too (acknowledgements are multicast).
static SEQ: AtomicU32 = AtomicU32::new(1);

/// One process event. The others the kernel sends (uid, gid, sid, ptrace, comm, coredump)
/// are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcEvent {
    /// `tgid` (the process) replaced its program; `pid` is the thread that called `execve`,
    /// which by then has become the leader, so the two are equal.
    Exec {
        /// The thread that called `execve`.
        pid: u32,
        /// The process.
        tgid: u32,
    },
    /// A new process (`child_pid == child_tgid`) or thread of `child_tgid` was created by
    /// a thread of `parent_tgid`.
    Fork {
        /// The process that forked.
        parent_tgid: u32,
        /// The new thread or process.
        child_pid: u32,
        /// The process the new one belongs to.
        child_tgid: u32,
    },
    /// Thread `pid` of process `tgid` exited. `exit_code` is the wait status as the kernel
    /// keeps it: the exit status shifted left by 8, or the killing signal (0x80 added when
    /// it dumped core).
    Exit {
        /// The thread that exited.
        pid: u32,
        /// Its process.
        tgid: u32,
        /// The wait status, as described above.
        exit_code: u32,
    },
}

/// What one [`ProcEvents::drain`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// Events appended to `out`.
    pub events: usize,
    /// Messages lost: the socket's buffer overflowed (ENOBUFS) since the last drain.
    pub lost: bool,
    /// Datagrams that were cut short, inconsistent, or not sent by the kernel; the events
    /// decoded before the fault were kept.
    pub malformed: usize,
}

/// A subscription to the kernel's process events: a non-blocking, close-on-exec netlink
/// socket. Poll it through [`AsFd`] for readability, then [`drain`](Self::drain).
pub struct ProcEvents {
    fd: OwnedFd,
    buf: Box<[u8]>,
}

impl fmt::Debug for ProcEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcEvents")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

impl ProcEvents {
    /// Subscribes; an error (not root / no CAP_NET_ADMIN / not in the host's network
    /// namespace / kernel without the connector) says why, so the caller can fall back to
    /// polling.
    ///
    /// The error's kind tells the cases apart: [`io::ErrorKind::PermissionDenied`] without
    /// `CAP_NET_ADMIN` (older kernels), [`io::ErrorKind::ConnectionRefused`] outside the
    /// host's network namespace, [`io::ErrorKind::TimedOut`] when the kernel ignored the
    /// subscription (not in the initial PID or user namespace), [`io::ErrorKind::Unsupported`]
    /// without the connector. Events that arrive before this returns are not kept.
    pub fn open() -> io::Result<ProcEvents> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPROTONOSUPPORT) => io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the kernel has no netlink connector (CONFIG_CONNECTOR): {e}"),
                ),
                _ => e,
            });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // FORCE passes rmem_max and needs CAP_NET_ADMIN; the plain option is the fallback,
        // capped at rmem_max.
        if socket::setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF_BYTES).is_err() {
            let _ = socket::setsockopt(&fd, sockopt::RcvBuf, &RCVBUF_BYTES);
        }

        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, CN_IDX_PROC)).map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(
                e.kind(),
                format!(
                    "joining the process events group (this kernel asks for CAP_NET_ADMIN \
                     in the host's user namespace): {e}"
                ),
            )
        })?;

        let mut events = ProcEvents {
            fd,
            buf: vec![0u8; RECV_BUF_LEN].into_boxed_slice(),
        };
        events.listen()?;
        Ok(events)
    }

    /// Sends `PROC_CN_MCAST_LISTEN` and waits for the kernel's acknowledgement of it.
    fn listen(&mut self) -> io::Result<()> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        // The kernel echoes ack + 1 but replaces seq with its own counter, so the ack
        // field alone tells our answer from those of other subscribers.
        let ack = std::process::id().rotate_left(16) ^ seq;
        self.send_control(PROC_CN_MCAST_LISTEN, seq, ack)?;
        let deadline = Instant::now() + ACK_WAIT;
        loop {
            match self.recv() {
                Ok(Some(n)) => {
                    let mut reply = None;
                    let _ = walk(self.buf.get(..n).unwrap_or_default(), |r| {
                        if let Record::Ack { ack: a, err } = r {
                            if a == ack.wrapping_add(1) {
                                reply = Some(err);
                            }
                        }
                    });
                    match reply {
                        Some(0) => return Ok(()),
                        Some(err) => {
                            let e = io::Error::from_raw_os_error(err as i32);
                            return Err(io::Error::new(
                                e.kind(),
                                format!("the kernel refused PROC_CN_MCAST_LISTEN: {e}"),
                            ));
                        }
                        None => continue,
                    }
                }
                Ok(None) => {}
                // Not from the kernel, or cut short: not our answer.
                Err(e) if e.raw_os_error() == Some(libc::EPROTO) => continue,
                // Our acknowledgement may be among what overflowed; asking again is
                // harmless (the kernel counts a socket's subscription once).
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.send_control(PROC_CN_MCAST_LISTEN, seq, ack)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the kernel did not acknowledge PROC_CN_MCAST_LISTEN: it ignores \
                     subscribers outside the initial PID and user namespaces (hostPID)",
                ));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes what arrived since the last call, without blocking, and appends it to `out`:
    /// datagrams are read until `max` events came (the rest stay queued in the socket, where
    /// polling sees them). The kernel sends one event a datagram; one carrying several would
    /// have them all taken, past `max`. Skipped kinds of event do not count towards `max`,
    /// but a drain reads at most `2 * max + 16` datagrams, so a flood of them cannot keep it
    /// busy.
    pub fn drain(&mut self, out: &mut Vec<ProcEvent>, max: usize) -> Drain {
        let mut d = Drain::default();
        let mut reads = 0usize;
        let read_cap = max.saturating_mul(2).saturating_add(16);
        while d.events < max && reads < read_cap {
            reads += 1;
            let n = match self.recv() {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    d.lost = true;
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EPROTO) => {
                    d.malformed += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading process events");
                    break;
                }
            };
            let Some(datagram) = self.buf.get(..n) else {
                d.malformed += 1;
                continue;
            };
            let before = out.len();
            if let Err(why) = parse(datagram, out) {
                tracing::debug!(why, len = n, "malformed process event datagram");
                d.malformed += 1;
            }
            d.events += out.len() - before;
        }
        d
    }

    /// One datagram from the kernel into `self.buf`: `Ok(None)` when none is queued,
    /// `EPROTO` for one cut short or not sent by the kernel.
    fn recv(&mut self) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
            let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
            let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // MSG_TRUNC makes netlink return the datagram's full length, so one larger
            // than the buffer is noticed instead of decoded cut short.
            // SAFETY: `buf` is valid for writes of its length, `from` for `from_len`.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(None),
                    _ => return Err(e),
                }
            }
            // Port 0 is the kernel; a process with CAP_NET_ADMIN could multicast to the
            // group too.
            let n = n as usize;
            if n > self.buf.len() || from.nl_pid != 0 {
                return Err(io::Error::from_raw_os_error(libc::EPROTO));
            }
            return Ok(Some(n));
        }
    }

    fn send_control(&self, op: u32, seq: u32, ack: u32) -> io::Result<()> {
        let msg = control_message(op, seq, ack);
        // The kernel is port 0 of an unbound destination; bind() set no default peer.
        let kernel = NetlinkAddr::new(0, 0);
        loop {
            match socket::sendto(self.fd.as_raw_fd(), &msg, &kernel, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECONNREFUSED) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "the process events connector answers only in the host's network \
                         namespace (hostNetwork)",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl ProcEvents {
    /// Has the kernel deliver only exec events (and acknowledgements) to this socket: a
    /// classic BPF filter on the event's `what` field drops the fork and exit events (two of
    /// every three a short-lived process makes, and every thread's) before they are queued,
    /// so they cost neither a wake-up nor a read. [`drain`](Self::drain) then only meets
    /// [`ProcEvent::Exec`].
    pub fn only_execs(&self) -> io::Result<()> {
        // Absolute loads read the packet (from the nlmsghdr on) big-endian; the event's
        // fields are in host order.
        let want = |what: u32| u32::from_be_bytes(what.to_ne_bytes());
        let what_at = (NLMSG_HDRLEN + CN_MSG_LEN) as u32;
        let prog = [
            // A = what (a message too short for it is dropped by the load).
            bpf(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, what_at),
            bpf(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                2,
                0,
                want(PROC_EVENT_EXEC),
            ),
            bpf(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                1,
                0,
                want(PROC_EVENT_NONE),
            ),
            bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
            bpf(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel copies them.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

impl AsFd for ProcEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ProcEvents {
    /// Unsubscribes before closing: the kernel keeps a count of listeners, and builds
    /// events only while it is above zero.
    fn drop(&mut self) {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let _ = self.send_control(PROC_CN_MCAST_IGNORE, seq, 0);
    }
}

/// The message that subscribes (`PROC_CN_MCAST_LISTEN`) or unsubscribes.
fn control_message(op: u32, seq: u32, ack: u32) -> [u8; CONTROL_LEN] {
    let mut m = [0u8; CONTROL_LEN];
    // nlmsghdr; the connector ignores its type and flags, NLMSG_DONE is the convention.
    m[0..4].copy_from_slice(&(CONTROL_LEN as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // cn_msg
    m[16..20].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m[20..24].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m[24..28].copy_from_slice(&seq.to_ne_bytes());
    m[28..32].copy_from_slice(&ack.to_ne_bytes());
    m[32..34].copy_from_slice(&4u16.to_ne_bytes());
    // A 4-byte payload is the plain operation (kernels 6.6+ also take an 8-byte filter).
    m[36..40].copy_from_slice(&op.to_ne_bytes());
    m
}

/// Decodes one datagram from the connector (it may hold several netlink messages),
/// appending the exec, fork and exit events to `out`; returns how many.
///
/// Messages for other connector users (another idx/val), acknowledgements and other kinds
/// of process event are skipped. At the first inconsistent message decoding stops with
/// what was wrong; the events before it stay in `out`.
pub fn parse(buf: &[u8], out: &mut Vec<ProcEvent>) -> Result<usize, &'static str> {
    let mut n = 0;
    walk(buf, |r| {
        if let Record::Event(e) = r {
            out.push(e);
            n += 1;
        }
    })?;
    Ok(n)
}

/// One decoded connector message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Event(ProcEvent),
    /// `PROC_EVENT_NONE`: the answer to a control message, echoing its ack + 1.
    Ack {
        ack: u32,
        err: u32,
    },
    Skipped,
}

fn walk(buf: &[u8], mut each: impl FnMut(Record)) -> Result<(), &'static str> {
    let mut at = 0usize;
    while let Some(rest) = buf.get(at..).filter(|r| !r.is_empty()) {
        let len = u32_at(rest, 0).ok_or("netlink header cut short")? as usize;
        let kind = u16_at(rest, 4).ok_or("netlink header cut short")?;
        if rest.len() < NLMSG_HDRLEN {
            return Err("netlink header cut short");
        }
        if len < NLMSG_HDRLEN {
            return Err("netlink length shorter than its header");
        }
        let payload = rest
            .get(NLMSG_HDRLEN..len)
            .ok_or("netlink length beyond the datagram")?;
        if !matches!(kind, NLMSG_NOOP | NLMSG_ERROR | NLMSG_OVERRUN) {
            each(decode_cn(payload)?);
        }
        // Messages start 4-aligned; the last one's padding may be absent.
        match len.checked_add(3) {
            Some(l) => at = at.saturating_add(l & !3),
            None => break,
        }
    }
    Ok(())
}

fn decode_cn(msg: &[u8]) -> Result<Record, &'static str> {
    if msg.len() < CN_MSG_LEN {
        return Err("cn_msg cut short");
    }
    let cut = "cn_msg cut short";
    let idx = u32_at(msg, 0).ok_or(cut)?;
    let val = u32_at(msg, 4).ok_or(cut)?;
    let ack = u32_at(msg, 12).ok_or(cut)?;
    let data_len = usize::from(u16_at(msg, 16).ok_or(cut)?);
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Ok(Record::Skipped);
    }
    let data = msg
        .get(CN_MSG_LEN..CN_MSG_LEN + data_len)
        .ok_or("cn_msg length beyond the netlink message")?;
    if data.len() < EV_HDR_LEN {
        return Err("proc_event shorter than its header");
    }
    let what = u32_at(data, 0).ok_or("proc_event shorter than its header")?;
    // Field i of the event_data union; all of those read are u32 (pid_t is too).
    let field = |i: usize| u32_at(data, EV_HDR_LEN + 4 * i).ok_or("proc_event cut short");
    Ok(match what {
        PROC_EVENT_NONE => Record::Ack {
            ack,
            err: field(0)?,
        },
        // {parent_pid, parent_tgid, child_pid, child_tgid}
        PROC_EVENT_FORK => Record::Event(ProcEvent::Fork {
            parent_tgid: field(1)?,
            child_pid: field(2)?,
            child_tgid: field(3)?,
        }),
        // {process_pid, process_tgid}
        PROC_EVENT_EXEC => Record::Event(ProcEvent::Exec {
            pid: field(0)?,
            tgid: field(1)?,
        }),
        // {process_pid, process_tgid, exit_code, exit_signal, parent_pid, parent_tgid}
        PROC_EVENT_EXIT => Record::Event(ProcEvent::Exit {
            pid: field(0)?,
            tgid: field(1)?,
            exit_code: field(2)?,
        }),
        _ => Record::Skipped,
    })
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::process::Command;

    use proptest::prelude::*;

    /// One datagram as the kernel builds it: nlmsghdr, cn_msg, then a 40-byte proc_event
    /// whose union starts with `fields`.
    fn message(idx: u32, val: u32, what: u32, fields: &[u32]) -> Vec<u8> {
        let mut ev = vec![0u8; 40];
        ev[0..4].copy_from_slice(&what.to_ne_bytes());
        ev[4..8].copy_from_slice(&3u32.to_ne_bytes()); // cpu
        ev[8..16].copy_from_slice(&123_456_789u64.to_ne_bytes());
        for (i, f) in fields.iter().enumerate() {
            ev[16 + 4 * i..20 + 4 * i].copy_from_slice(&f.to_ne_bytes());
        }
        let mut m = Vec::new();
        let total = (NLMSG_HDRLEN + CN_MSG_LEN + ev.len()) as u32;
        m.extend_from_slice(&total.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes()); // seq
        m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
        m.extend_from_slice(&idx.to_ne_bytes());
        m.extend_from_slice(&val.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes()); // seq
        m.extend_from_slice(&0u32.to_ne_bytes()); // ack
        m.extend_from_slice(&(ev.len() as u16).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&ev);
        assert_eq!(m.len(), 76);
        m
    }

    fn proc_msg(what: u32, fields: &[u32]) -> Vec<u8> {
        message(CN_IDX_PROC, CN_VAL_PROC, what, fields)
    }

    fn parsed(buf: &[u8]) -> (Result<usize, &'static str>, Vec<ProcEvent>) {
        let mut out = Vec::new();
        let r = parse(buf, &mut out);
        (r, out)
    }

    #[test]
    fn decodes_exec() {
        let (r, out) = parsed(&proc_msg(PROC_EVENT_EXEC, &[4242, 4242]));
        assert_eq!(r, Ok(1));
        assert_eq!(
            out,
            [ProcEvent::Exec {
                pid: 4242,
                tgid: 4242
            }]
        );
    }

    #[test]
    fn decodes_fork() {
        let (r, out) = parsed(&proc_msg(PROC_EVENT_FORK, &[10, 11, 12, 13]));
        assert_eq!(r, Ok(1));
        assert_eq!(
            out,
            [ProcEvent::Fork {
                parent_tgid: 11,
                child_pid: 12,
                child_tgid: 13
            }]
        );
    }

    #[test]
    fn decodes_exit() {
        // exit_signal 17 (SIGCHLD) and the parent follow exit_code.
        let (r, out) = parsed(&proc_msg(PROC_EVENT_EXIT, &[20, 21, 0x300, 17, 1, 1]));
        assert_eq!(r, Ok(1));
        assert_eq!(
            out,
            [ProcEvent::Exit {
                pid: 20,
                tgid: 21,
                exit_code: 0x300
            }]
        );
    }

    #[test]
    fn decodes_several_messages_in_one_datagram() {
        let mut buf = proc_msg(PROC_EVENT_EXEC, &[1, 1]);
        buf.extend(proc_msg(PROC_EVENT_COMM_FOR_TEST, &[1, 1]));
        buf.extend(proc_msg(PROC_EVENT_EXIT, &[1, 1, 0, 17]));
        let (r, out) = parsed(&buf);
        assert_eq!(r, Ok(2));
        assert_eq!(out.len(), 2);
    }

    const PROC_EVENT_COMM_FOR_TEST: u32 = 0x200;

    #[test]
    fn skips_unknown_kinds_acks_and_other_connector_users() {
        for what in [PROC_EVENT_COMM_FOR_TEST, 0x4, 0x4000_0000, 0x1234_5678] {
            assert_eq!(parsed(&proc_msg(what, &[1, 2, 3, 4])), (Ok(0), vec![]));
        }
        assert_eq!(parsed(&proc_msg(PROC_EVENT_NONE, &[0])), (Ok(0), vec![]));
        for (idx, val) in [(2, 1), (1, 2), (0xa, 0x1)] {
            let m = message(idx, val, PROC_EVENT_EXEC, &[5, 5]);
            assert_eq!(parsed(&m), (Ok(0), vec![]));
        }
    }

    #[test]
    fn an_ack_carries_ack_and_err() {
        let mut m = proc_msg(PROC_EVENT_NONE, &[libc::EINVAL as u32]);
        m[28..32].copy_from_slice(&100u32.to_ne_bytes());
        let mut got = Vec::new();
        walk(&m, |r| got.push(r)).unwrap();
        assert_eq!(
            got,
            [Record::Ack {
                ack: 100,
                err: libc::EINVAL as u32
            }]
        );
    }

    #[test]
    fn skips_netlink_noop() {
        let mut m = proc_msg(PROC_EVENT_EXEC, &[1, 1]);
        m[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
        assert_eq!(parsed(&m), (Ok(0), vec![]));
    }

    #[test]
    fn every_truncation_is_an_error_never_an_event() {
        for what in [PROC_EVENT_EXEC, PROC_EVENT_FORK, PROC_EVENT_EXIT] {
            let m = proc_msg(what, &[1, 2, 3, 4, 5, 6]);
            for cut in 1..m.len() {
                let (r, out) = parsed(&m[..cut]);
                assert!(r.is_err(), "{what:#x} cut at {cut}: {r:?}");
                assert!(out.is_empty());
            }
            assert_eq!(parsed(&[]), (Ok(0), vec![]));
        }
    }

    #[test]
    fn inconsistent_lengths_are_errors() {
        let good = proc_msg(PROC_EVENT_EXEC, &[1, 1]);
        for nl_len in [0u32, 15, 77, u32::MAX] {
            let mut m = good.clone();
            m[0..4].copy_from_slice(&nl_len.to_ne_bytes());
            assert!(parsed(&m).0.is_err(), "nlmsg_len {nl_len}");
        }
        // cn_msg.len beyond the netlink message.
        let mut m = good.clone();
        m[32..34].copy_from_slice(&41u16.to_ne_bytes());
        assert!(parsed(&m).0.is_err());
        // An exec event that ends before its tgid.
        let mut m = good.clone();
        m[32..34].copy_from_slice(&20u16.to_ne_bytes());
        assert_eq!(parsed(&m).0, Err("proc_event cut short"));
        // Shorter than the event header.
        let mut m = good;
        m[32..34].copy_from_slice(&8u16.to_ne_bytes());
        assert!(parsed(&m).0.is_err());
    }

    #[test]
    fn events_before_a_fault_are_kept() {
        let mut buf = proc_msg(PROC_EVENT_EXEC, &[9, 9]);
        buf.extend_from_slice(&[1, 2, 3]);
        let (r, out) = parsed(&buf);
        assert!(r.is_err());
        assert_eq!(out, [ProcEvent::Exec { pid: 9, tgid: 9 }]);
    }

    #[test]
    fn control_message_layout() {
        let mut want = Vec::new();
        want.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
        want.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        want.extend_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags
        want.extend_from_slice(&5u32.to_ne_bytes()); // nlmsg_seq
        want.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        want.extend_from_slice(&1u32.to_ne_bytes()); // CN_IDX_PROC
        want.extend_from_slice(&1u32.to_ne_bytes()); // CN_VAL_PROC
        want.extend_from_slice(&5u32.to_ne_bytes()); // seq
        want.extend_from_slice(&6u32.to_ne_bytes()); // ack
        want.extend_from_slice(&4u16.to_ne_bytes()); // len
        want.extend_from_slice(&0u16.to_ne_bytes()); // flags
        want.extend_from_slice(&1u32.to_ne_bytes()); // PROC_CN_MCAST_LISTEN
        assert_eq!(control_message(PROC_CN_MCAST_LISTEN, 5, 6).as_slice(), want);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut out = Vec::new();
            let before = out.len();
            if let Ok(n) = parse(&bytes, &mut out) {
                prop_assert_eq!(out.len() - before, n);
            }
        }

        #[test]
        fn parse_never_panics_on_damaged_messages(
            what in prop_oneof![Just(PROC_EVENT_EXEC), Just(PROC_EVENT_FORK),
                                Just(PROC_EVENT_EXIT), Just(PROC_EVENT_NONE), any::<u32>()],
            nl_len in any::<u32>(),
            cn_len in any::<u16>(),
            cut in 0usize..200,
            copies in 1usize..4,
        ) {
            let mut m = proc_msg(what, &[1, 2, 3, 4, 5, 6]);
            m[0..4].copy_from_slice(&nl_len.to_ne_bytes());
            m[32..34].copy_from_slice(&cn_len.to_ne_bytes());
            let buf: Vec<u8> = m.repeat(copies);
            let mut out = Vec::new();
            let _ = parse(&buf[..cut.min(buf.len())], &mut out);
        }
    }

    /// Subscribes, or fails saying why: these tests run as root by design.
    fn open_as_root() -> ProcEvents {
        match ProcEvents::open() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => panic!(
                "this test needs root (older kernels ask for CAP_NET_ADMIN) to subscribe to \
                 process events: {e}"
            ),
            Err(e) => panic!("ProcEvents::open: {e}"),
        }
    }

    /// Drains for up to two seconds, until `done` says everything wanted was seen.
    fn drain_until(
        ev: &mut ProcEvents,
        mut done: impl FnMut(&[ProcEvent]) -> bool,
    ) -> (Vec<ProcEvent>, Drain) {
        let mut all = Vec::new();
        let mut total = Drain::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let d = ev.drain(&mut all, 4096);
            total.events += d.events;
            total.lost |= d.lost;
            total.malformed += d.malformed;
            if done(&all) || Instant::now() >= deadline {
                return (all, total);
            }
            if d.events < 4096 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// With the filter on, the exec of a short-lived child still arrives and its fork and
    /// exit do not.
    #[test]
    fn the_filter_keeps_only_execs() {
        let mut ev = open_as_root();
        ev.only_execs().expect("the filter attaches");
        let mut child = Command::new("/bin/true").spawn().expect("spawn /bin/true");
        let pid = child.id();
        child.wait().expect("wait");
        let (all, _) = drain_until(&mut ev, |all| {
            all.iter()
                .any(|e| matches!(e, ProcEvent::Exec { tgid, .. } if *tgid == pid))
        });
        assert!(
            all.iter()
                .any(|e| matches!(e, ProcEvent::Exec { tgid, .. } if *tgid == pid)),
            "{all:?}"
        );
        assert!(
            all.iter().all(|e| matches!(e, ProcEvent::Exec { .. })),
            "only execs pass: {all:?}"
        );
    }

    #[test]
    fn sees_a_process_too_short_for_polling() {
        let mut ev = open_as_root();
        // /bin/false lives well under a millisecond; its status 1 shows as 1 << 8, which
        // tells exit_code apart from the fields around it.
        let mut child = Command::new("/bin/false")
            .spawn()
            .expect("spawn /bin/false");
        let pid = child.id();
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(1));

        let (all, d) = drain_until(&mut ev, |all| {
            let exec = all
                .iter()
                .any(|e| matches!(e, ProcEvent::Exec { tgid, .. } if *tgid == pid));
            let exit = all
                .iter()
                .any(|e| matches!(e, ProcEvent::Exit { tgid, .. } if *tgid == pid));
            exec && exit
        });
        let mine: Vec<_> = all
            .iter()
            .filter(|e| match **e {
                ProcEvent::Exec { tgid, .. } | ProcEvent::Exit { tgid, .. } => tgid == pid,
                ProcEvent::Fork { child_tgid, .. } => child_tgid == pid,
            })
            .collect();
        eprintln!(
            "child {pid}: {mine:?}; drained {} events in all, {d:?}",
            all.len()
        );
        assert!(
            mine.contains(&&ProcEvent::Exec { pid, tgid: pid }),
            "no exec event for {pid}"
        );
        assert!(
            mine.contains(&&ProcEvent::Exit {
                pid,
                tgid: pid,
                exit_code: 1 << 8
            }),
            "no exit event for {pid}"
        );
        assert!(
            mine.contains(&&ProcEvent::Fork {
                parent_tgid: std::process::id(),
                child_pid: pid,
                child_tgid: pid
            }),
            "no fork event for {pid}"
        );
        assert_eq!(d.malformed, 0);
    }

    #[test]
    fn a_burst_of_200_processes_loses_nothing() {
        let mut ev = open_as_root();
        let rcvbuf = socket::getsockopt(&ev.as_fd(), sockopt::RcvBuf).expect("SO_RCVBUF");
        // Nothing is drained while the burst runs: the socket's buffer holds it all.
        let mut children: Vec<_> = (0..200)
            .map(|_| Command::new("/bin/true").spawn().expect("spawn /bin/true"))
            .collect();
        let pids: HashSet<u32> = children.iter().map(|c| c.id()).collect();
        for c in &mut children {
            assert!(c.wait().expect("wait").success());
        }

        let count = |all: &[ProcEvent]| {
            let mut exec = HashSet::new();
            let mut exit = HashSet::new();
            for e in all {
                match *e {
                    ProcEvent::Exec { tgid, .. } if pids.contains(&tgid) => {
                        exec.insert(tgid);
                    }
                    ProcEvent::Exit { tgid, .. } if pids.contains(&tgid) => {
                        exit.insert(tgid);
                    }
                    _ => {}
                }
            }
            (exec.len(), exit.len())
        };
        let (all, d) = drain_until(&mut ev, |all| count(all) == (200, 200));
        let (exec, exit) = count(&all);
        eprintln!(
            "SO_RCVBUF {rcvbuf} B; burst of 200: {exec} exec, {exit} exit of ours, \
             {} events in all, {d:?}",
            all.len()
        );
        assert!(!d.lost, "the socket's buffer overflowed ({rcvbuf} B)");
        assert_eq!((exec, exit), (200, 200));
        assert_eq!(d.malformed, 0);
    }

    #[test]
    fn drain_honours_max() {
        let mut ev = open_as_root();
        let mut children: Vec<_> = (0..5)
            .map(|_| Command::new("/bin/true").spawn().expect("spawn /bin/true"))
            .collect();
        for c in &mut children {
            c.wait().expect("wait");
        }
        let mut out = Vec::new();
        let d = ev.drain(&mut out, 3);
        assert_eq!((d.events, out.len()), (3, 3));
        // 5 processes make at least 15 events; the rest are still there.
        let d = ev.drain(&mut out, 4096);
        assert!(d.events >= 12, "{d:?}");
        assert_eq!(ev.drain(&mut out, 0), Drain::default());
    }
}
