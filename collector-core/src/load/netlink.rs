//! Per-cgroup task counts from the kernel's taskstats generic-netlink family.
//!
//! `CGROUPSTATS_CMD_GET` makes the kernel walk one cgroup's task list and bucket the
//! tasks by scheduler state, which costs one round trip instead of reading every
//! `/proc/<pid>/task/<tid>/stat`. The kernel implements it for cgroup v1 hierarchies
//! only; see [`CgroupStatsSocket::query_fd`] for what a v2 directory gives.
//!
//! The wire format comes from the kernel's uapi headers `linux/netlink.h`,
//! `linux/genetlink.h`, `linux/taskstats.h` and `linux/cgroupstats.h`. Every integer
//! on a netlink socket is in host byte order.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Task counts of one cgroup by state, as the kernel's cgroupstats reports them.
///
/// The kernel counts a task only when its state equals one of these exactly, so the
/// sum is often well below the number of tasks. Since Linux 6.1 `nanosleep` and futex
/// waits sleep in `TASK_INTERRUPTIBLE | TASK_FREEZABLE` and are counted nowhere: a
/// `sleep` process, or the idle threads of most multithreaded programs, vanish from
/// `sleeping` (pipe and epoll waits, for example, still count); so do `TASK_IDLE`
/// waits, which procfs shows as `I`. A `TASK_UNINTERRUPTIBLE` task counts as
/// `uninterruptible` even while waiting on I/O; `io_wait` only gets tasks that
/// matched none of the states and have `in_iowait` set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskCounts {
    pub running: u64,
    pub sleeping: u64,
    pub stopped: u64,
    pub uninterruptible: u64,
    pub io_wait: u64,
}

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLA_HDRLEN: usize = 4;
/// Clears NLA_F_NESTED and NLA_F_NET_BYTEORDER, which are flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

// linux/genetlink.h
const GENL_HDRLEN: usize = 4;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_NEWFAMILY: u8 = 1;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_VERSION: u8 = 1;

// linux/taskstats.h, linux/cgroupstats.h
const TASKSTATS_GENL_NAME: &[u8] = b"TASKSTATS\0";
const TASKSTATS_GENL_VERSION: u8 = 1;
/// The cgroupstats commands continue the taskstats enum after `__TASKSTATS_CMD_MAX` (3).
const CGROUPSTATS_CMD_GET: u8 = 4;
const CGROUPSTATS_CMD_NEW: u8 = 5;
const CGROUPSTATS_CMD_ATTR_FD: u16 = 1;
const CGROUPSTATS_TYPE_CGROUP_STATS: u16 = 1;
/// `struct cgroupstats`: five `__u64`.
const CGROUPSTATS_LEN: usize = 5 * 8;

/// Replies to these requests are single kernel skbs of at most NLMSG_GOODSIZE
/// (8 KiB even on 64 KiB-page machines); anything longer is reported, not dropped.
const RECV_BUF_LEN: usize = 8192;
/// Large enough for both requests this module sends (36 and 28 bytes).
const REQ_BUF_LEN: usize = 64;
/// Bounds every send and receive so a lost reply costs one second, not a stuck collector.
const IO_TIMEOUT_SECS: libc::time_t = 1;

const fn nla_align(len: usize) -> usize {
    (len + 3) & !3
}

/// One netlink socket, reused across calls (not thread-safe by design; one per collector).
///
/// Requests carry `NLM_F_ACK` so that every exchange ends with a message the kernel
/// always sends: the receive queue is empty after each call, and a request the kernel
/// drops without a reply (old kernels did so for an unknown fd) fails at once instead
/// of waiting for the timeout. The price is a second `recv` per query.
pub struct CgroupStatsSocket {
    fd: OwnedFd,
    /// Generic netlink id of TASKSTATS; assigned at boot, so resolved once.
    family: u16,
    seq: u32,
    /// Reused for every reply so that a query does not allocate.
    buf: Box<[u8]>,
}

impl fmt::Debug for CgroupStatsSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgroupStatsSocket")
            .field("fd", &self.fd.as_raw_fd())
            .field("family", &self.family)
            .field("seq", &self.seq)
            .finish()
    }
}

impl CgroupStatsSocket {
    /// Opens the socket and resolves the TASKSTATS family.
    ///
    /// Fails with [`io::ErrorKind::Unsupported`] when the kernel has no taskstats
    /// family (built without `CONFIG_TASKSTATS`). The family is netns-aware, so this
    /// also works from inside a container's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let tv = libc::timeval {
            tv_sec: IO_TIMEOUT_SECS,
            tv_usec: 0,
        };
        setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)?;
        // Keeps error messages to their header instead of echoing our request.
        // Optional (Linux 4.3+), hence the ignored result.
        let _ = setsockopt(fd.as_fd(), libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, &1i32);

        // Connected to the kernel (port 0), the socket refuses unicasts from other
        // user-space netlink sockets, so every reply we read comes from the kernel.
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl and the length matches it.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }

        let mut sock = CgroupStatsSocket {
            fd,
            family: 0,
            seq: 0,
            buf: vec![0u8; RECV_BUF_LEN].into_boxed_slice(),
        };
        sock.family = sock.resolve_family().map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the kernel has no TASKSTATS generic netlink family (CONFIG_TASKSTATS off?)",
                )
            } else {
                e
            }
        })?;
        Ok(sock)
    }

    /// Opens `cgroup_dir`, asks for its task counts and closes it again.
    ///
    /// Same results as [`query_fd`](Self::query_fd); in addition the `open` itself can
    /// fail (`ENOENT` when the cgroup is gone, `ENOTDIR`, `EACCES`).
    pub fn query(&mut self, cgroup_dir: &Path) -> io::Result<TaskCounts> {
        // std adds O_CLOEXEC and converts short paths on the stack, so no allocation.
        // Not O_PATH: the kernel's fd lookup ignores O_PATH descriptors.
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(cgroup_dir)?;
        self.query_fd(dir.as_fd())
    }

    /// Asks for the task counts of the cgroup directory open at `dir_fd`.
    ///
    /// Only directories of a cgroup v1 hierarchy (including named ones such as
    /// `name=systemd`) are answered. For anything else, a cgroup2 directory in
    /// particular, the kernel answers `EINVAL`; this returns that as an error of kind
    /// [`io::ErrorKind::Unsupported`] (the raw errno is dropped), so a caller can fall
    /// back to procfs on `kind() == Unsupported`. Every other kernel error keeps its
    /// raw errno. A cgroup removed while its directory is still open is answered with
    /// all zeros (Linux 6.18), not with an error. No reply within a second gives
    /// [`io::ErrorKind::TimedOut`]; a malformed reply gives
    /// [`io::ErrorKind::InvalidData`].
    pub fn query_fd(&mut self, dir_fd: BorrowedFd<'_>) -> io::Result<TaskCounts> {
        // The kernel resolves the fd in the sender's fd table while handling sendmsg,
        // which is why a plain descriptor number can travel in the request.
        let fd = u32::try_from(dir_fd.as_raw_fd())
            .map_err(|_| invalid_input("negative file descriptor"))?;
        let seq = self.next_seq();
        let mut req = [0u8; REQ_BUF_LEN];
        let len = build_request(
            &mut req,
            self.family,
            seq,
            CGROUPSTATS_CMD_GET,
            TASKSTATS_GENL_VERSION,
            CGROUPSTATS_CMD_ATTR_FD,
            &fd.to_ne_bytes(),
        )?;
        let expect = Expect {
            seq,
            msg_type: self.family,
            cmd: CGROUPSTATS_CMD_NEW,
        };
        self.exchange(&req[..len], expect, parse_cgroupstats)
            .map_err(map_cgroupstats_error)
    }

    fn resolve_family(&mut self) -> io::Result<u16> {
        let seq = self.next_seq();
        let mut req = [0u8; REQ_BUF_LEN];
        let len = build_request(
            &mut req,
            GENL_ID_CTRL,
            seq,
            CTRL_CMD_GETFAMILY,
            CTRL_VERSION,
            CTRL_ATTR_FAMILY_NAME,
            TASKSTATS_GENL_NAME,
        )?;
        let expect = Expect {
            seq,
            msg_type: GENL_ID_CTRL,
            cmd: CTRL_CMD_NEWFAMILY,
        };
        self.exchange(&req[..len], expect, parse_family_id)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request and reads datagrams until the kernel's ACK or error for it.
    fn exchange<T>(
        &mut self,
        req: &[u8],
        expect: Expect,
        extract: fn(&[u8]) -> io::Result<T>,
    ) -> io::Result<T> {
        let fd = self.fd.as_raw_fd();
        loop {
            // SAFETY: `req` is valid for reads of `req.len()` bytes.
            let n = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(timeout_or(e));
            }
            if n as usize != req.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "netlink request sent partially",
                ));
            }
            break;
        }

        let mut reply = None;
        loop {
            // MSG_TRUNC makes netlink return the datagram's full length, so a reply
            // larger than the buffer is detected instead of parsed cut short.
            // SAFETY: `self.buf` is valid for writes of `self.buf.len()` bytes.
            let n = unsafe {
                libc::recv(
                    fd,
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(timeout_or(e));
            }
            let n = n as usize;
            if n > self.buf.len() {
                return Err(invalid_data("netlink reply larger than the receive buffer"));
            }
            if let Some(done) = process_datagram(&self.buf[..n], expect, &mut reply, extract)? {
                return Ok(done);
            }
        }
    }
}

/// What a reply to one request must look like.
#[derive(Debug, Clone, Copy)]
struct Expect {
    seq: u32,
    msg_type: u16,
    cmd: u8,
}

/// Writes a generic netlink request with one attribute into `buf`; returns its length.
fn build_request(
    buf: &mut [u8; REQ_BUF_LEN],
    msg_type: u16,
    seq: u32,
    cmd: u8,
    version: u8,
    attr_type: u16,
    payload: &[u8],
) -> io::Result<usize> {
    let attr_len = NLA_HDRLEN + payload.len();
    let total = NLMSG_HDRLEN + GENL_HDRLEN + nla_align(attr_len);
    if total > buf.len() {
        return Err(invalid_input("netlink request too long"));
    }
    buf.fill(0);
    buf[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid stays 0: the kernel knows our port from the socket.
    buf[16] = cmd;
    buf[17] = version;
    let a = NLMSG_HDRLEN + GENL_HDRLEN;
    buf[a..a + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
    buf[a + 2..a + 4].copy_from_slice(&attr_type.to_ne_bytes());
    buf[a + NLA_HDRLEN..a + attr_len].copy_from_slice(payload);
    Ok(total)
}

/// Walks the netlink messages of one datagram.
///
/// Returns `Ok(Some(_))` once the request is complete (ACK after the reply),
/// `Ok(None)` when more datagrams are needed, `Err` on a kernel error or a malformed
/// message. Messages with another sequence number are skipped: they answer an earlier
/// request that timed out.
fn process_datagram<T>(
    datagram: &[u8],
    expect: Expect,
    reply: &mut Option<T>,
    extract: fn(&[u8]) -> io::Result<T>,
) -> io::Result<Option<T>> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let (msg, next) = split_message(rest)?;
        rest = next;
        let msg_type = read_u16(msg, 4).ok_or_else(|| invalid_data("short header"))?;
        let seq = read_u32(msg, 8).ok_or_else(|| invalid_data("short header"))?;
        if seq != expect.seq {
            continue;
        }
        let payload = &msg[NLMSG_HDRLEN..];
        match msg_type {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                let code = read_u32(payload, 0)
                    .ok_or_else(|| invalid_data("truncated netlink error message"))?
                    as i32;
                if code != 0 {
                    return Err(errno_error(code));
                }
                return reply.take().map(Some).ok_or_else(|| {
                    invalid_data("kernel acknowledged the request without a reply")
                });
            }
            // Only dumps end with DONE; accept it as the end all the same.
            NLMSG_DONE => {
                return reply
                    .take()
                    .map(Some)
                    .ok_or_else(|| invalid_data("kernel ended the reply without data"));
            }
            NLMSG_OVERRUN => return Err(invalid_data("netlink overrun")),
            t if t == expect.msg_type => {
                if payload.len() < GENL_HDRLEN {
                    return Err(invalid_data("truncated generic netlink header"));
                }
                if payload[0] != expect.cmd {
                    return Err(invalid_data("unexpected generic netlink command in reply"));
                }
                if reply.is_some() {
                    return Err(invalid_data("duplicate netlink reply"));
                }
                *reply = Some(extract(&payload[GENL_HDRLEN..])?);
            }
            _ => return Err(invalid_data("unexpected netlink message type")),
        }
    }
    Ok(None)
}

/// Splits off the first message of `buf`, validating its length; the rest starts at
/// the next 4-byte boundary.
fn split_message(buf: &[u8]) -> io::Result<(&[u8], &[u8])> {
    let len = read_u32(buf, 0).ok_or_else(|| invalid_data("truncated netlink header"))? as usize;
    if len < NLMSG_HDRLEN || len > buf.len() {
        return Err(invalid_data("netlink message length out of bounds"));
    }
    let next = nla_align(len).min(buf.len());
    Ok((&buf[..len], &buf[next..]))
}

/// Payload of the first attribute of type `want`. Validates every attribute, so a
/// corrupt attribute anywhere fails the whole message.
fn find_attr(mut attrs: &[u8], want: u16) -> io::Result<Option<&[u8]>> {
    let mut found = None;
    while !attrs.is_empty() {
        let (len, ty) = match (read_u16(attrs, 0), read_u16(attrs, 2)) {
            (Some(len), Some(ty)) => (len as usize, ty & NLA_TYPE_MASK),
            _ => return Err(invalid_data("truncated netlink attribute header")),
        };
        if len < NLA_HDRLEN || len > attrs.len() {
            return Err(invalid_data("netlink attribute length out of bounds"));
        }
        if ty == want && found.is_none() {
            found = Some(&attrs[NLA_HDRLEN..len]);
        }
        attrs = &attrs[nla_align(len).min(attrs.len())..];
    }
    Ok(found)
}

fn parse_family_id(attrs: &[u8]) -> io::Result<u16> {
    let id = find_attr(attrs, CTRL_ATTR_FAMILY_ID)?
        .ok_or_else(|| invalid_data("family reply without CTRL_ATTR_FAMILY_ID"))?;
    match read_u16(id, 0) {
        Some(0) | None => Err(invalid_data("bad CTRL_ATTR_FAMILY_ID")),
        Some(id) => Ok(id),
    }
}

fn parse_cgroupstats(attrs: &[u8]) -> io::Result<TaskCounts> {
    let s = find_attr(attrs, CGROUPSTATS_TYPE_CGROUP_STATS)?
        .ok_or_else(|| invalid_data("reply without CGROUPSTATS_TYPE_CGROUP_STATS"))?;
    // Longer is accepted: fields appended by a future kernel would not move these.
    if s.len() < CGROUPSTATS_LEN {
        return Err(invalid_data("struct cgroupstats too short"));
    }
    let field =
        |i: usize| read_u64(s, i * 8).ok_or_else(|| invalid_data("struct cgroupstats too short"));
    Ok(TaskCounts {
        sleeping: field(0)?,
        running: field(1)?,
        stopped: field(2)?,
        uninterruptible: field(3)?,
        io_wait: field(4)?,
    })
}

/// EINVAL is what `cgroupstats_build` answers for a directory that is not on a cgroup
/// v1 mount; the request itself is well-formed by construction.
fn map_cgroupstats_error(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::EINVAL) {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "cgroupstats answers only for cgroup v1 directories (kernel said EINVAL)",
        )
    } else {
        e
    }
}

/// The kernel reports `-errno`; anything else is not a valid error code.
fn errno_error(code: i32) -> io::Error {
    match code.checked_neg() {
        Some(errno) if errno > 0 => io::Error::from_raw_os_error(errno),
        _ => invalid_data("invalid error code in netlink error message"),
    }
}

fn timeout_or(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "no netlink reply from the kernel in time",
        )
    } else {
        e
    }
}

fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is valid for reads of size_of::<T>() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn invalid_data(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn invalid_input(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::thread;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    // ---- hand-built replies -------------------------------------------------

    const FAMILY: u16 = 0x1a;
    const SEQ: u32 = 7;
    const EXPECT: Expect = Expect {
        seq: SEQ,
        msg_type: FAMILY,
        cmd: CGROUPSTATS_CMD_NEW,
    };

    fn pad(mut v: Vec<u8>) -> Vec<u8> {
        v.resize(nla_align(v.len()), 0);
        v
    }

    fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&1234u32.to_ne_bytes());
        v.extend_from_slice(payload);
        pad(v)
    }

    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        pad(v)
    }

    fn genl(cmd: u8, attrs: &[u8]) -> Vec<u8> {
        let mut v = vec![cmd, TASKSTATS_GENL_VERSION, 0, 0];
        v.extend_from_slice(attrs);
        v
    }

    fn stats_bytes(sleeping: u64, running: u64, stopped: u64, unint: u64, io: u64) -> Vec<u8> {
        [sleeping, running, stopped, unint, io]
            .iter()
            .flat_map(|x| x.to_ne_bytes())
            .collect()
    }

    fn stats_reply(seq: u32) -> Vec<u8> {
        let attrs = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &stats_bytes(1, 2, 3, 4, 5));
        nlmsg(FAMILY, seq, &genl(CGROUPSTATS_CMD_NEW, &attrs))
    }

    /// NLMSG_ERROR carrying `code` and the echoed request header, as the kernel sends it.
    fn error_msg(seq: u32, code: i32) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        p.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
        nlmsg(NLMSG_ERROR, seq, &p)
    }

    fn run(datagrams: &[Vec<u8>]) -> io::Result<Option<TaskCounts>> {
        let mut reply = None;
        for d in datagrams {
            if let Some(done) = process_datagram(d, EXPECT, &mut reply, parse_cgroupstats)? {
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    const EXPECTED: TaskCounts = TaskCounts {
        sleeping: 1,
        running: 2,
        stopped: 3,
        uninterruptible: 4,
        io_wait: 5,
    };

    #[test]
    fn reply_then_ack_in_separate_datagrams() {
        let r = run(&[stats_reply(SEQ), error_msg(SEQ, 0)]).unwrap();
        assert_eq!(r, Some(EXPECTED));
    }

    #[test]
    fn reply_and_ack_in_one_datagram() {
        let mut d = stats_reply(SEQ);
        d.extend(error_msg(SEQ, 0));
        assert_eq!(run(&[d]).unwrap(), Some(EXPECTED));
    }

    #[test]
    fn reply_without_ack_needs_more() {
        assert_eq!(run(&[stats_reply(SEQ)]).unwrap(), None);
    }

    #[test]
    fn parses_at_odd_offsets() {
        let mut d = vec![0xff];
        d.extend(stats_reply(SEQ));
        d.extend(error_msg(SEQ, 0));
        assert_eq!(run(&[d[1..].to_vec()]).unwrap(), Some(EXPECTED));
        let mut reply = None;
        let got = process_datagram(&d[1..], EXPECT, &mut reply, parse_cgroupstats).unwrap();
        assert_eq!(got, Some(EXPECTED));
    }

    #[test]
    fn stale_sequence_numbers_are_skipped() {
        let mut stale = stats_reply(SEQ - 1);
        stale.extend(error_msg(SEQ - 1, 0));
        let r = run(&[stale.clone(), error_msg(SEQ - 1, -libc::EINVAL)]).unwrap();
        assert_eq!(r, None);
        let r = run(&[stale, stats_reply(SEQ), error_msg(SEQ, 0)]).unwrap();
        assert_eq!(r, Some(EXPECTED));
    }

    #[test]
    fn nlmsg_error_returns_errno() {
        let e = run(&[error_msg(SEQ, -libc::EBADF)]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        let e = run(&[error_msg(SEQ, -libc::EINVAL)]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let mapped = map_cgroupstats_error(e);
        assert_eq!(mapped.kind(), io::ErrorKind::Unsupported);
        let e = map_cgroupstats_error(run(&[error_msg(SEQ, -libc::ENOENT)]).unwrap_err());
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn nonsense_error_codes_are_errors() {
        for code in [i32::MIN, 1, i32::MAX] {
            let e = run(&[error_msg(SEQ, code)]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "code {code}");
        }
    }

    #[test]
    fn truncated_error_message_is_an_error() {
        let e = run(&[nlmsg(NLMSG_ERROR, SEQ, &[0, 0])]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = run(&[nlmsg(NLMSG_ERROR, SEQ, &[])]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn ack_without_reply_is_an_error() {
        let e = run(&[error_msg(SEQ, 0)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut d = stats_reply(SEQ);
        d.extend(error_msg(SEQ, 0));
        for cut in 1..d.len() {
            let mut reply = None;
            let r = process_datagram(&d[..cut], EXPECT, &mut reply, parse_cgroupstats);
            // A cut exactly between the two messages leaves a complete reply waiting
            // for its ACK; every other cut must be rejected.
            if cut == stats_reply(SEQ).len() {
                assert_eq!(r.unwrap(), None);
            } else {
                assert!(r.is_err(), "cut at {cut} accepted: {r:?}");
            }
        }
    }

    #[test]
    fn bad_message_lengths_are_errors() {
        let mut d = stats_reply(SEQ);
        d[0..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than the header
        assert!(run(&[d]).is_err());
        let mut d = stats_reply(SEQ);
        d[0..4].copy_from_slice(&u32::MAX.to_ne_bytes()); // beyond the datagram
        assert!(run(&[d]).is_err());
        // Header only: no room for the genetlink header.
        assert!(run(&[nlmsg(FAMILY, SEQ, &[CGROUPSTATS_CMD_NEW, 1])]).is_err());
    }

    #[test]
    fn bad_attribute_lengths_are_errors() {
        let stats = stats_bytes(1, 2, 3, 4, 5);
        // Attribute claims 2 bytes: less than its own header.
        let mut a = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &stats);
        a[0..2].copy_from_slice(&2u16.to_ne_bytes());
        // Attribute claims more than the message holds.
        let mut b = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &stats);
        b[0..2].copy_from_slice(&200u16.to_ne_bytes());
        // Payload one byte short of struct cgroupstats.
        let c = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &stats[..CGROUPSTATS_LEN - 1]);
        // Empty payload.
        let d = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &[]);
        // Good attribute followed by 2 stray bytes (no room for a header).
        let mut e = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &stats);
        e.extend_from_slice(&[0, 0]);
        // No stats attribute at all.
        let f = nla(7, &[1, 2, 3, 4]);
        for (name, attrs) in [
            ("tiny", a),
            ("huge", b),
            ("short", c),
            ("empty", d),
            ("stray", e),
            ("missing", f),
        ] {
            let msg = nlmsg(FAMILY, SEQ, &genl(CGROUPSTATS_CMD_NEW, &attrs));
            let r = run(&[msg, error_msg(SEQ, 0)]);
            assert!(r.is_err(), "{name}: {r:?}");
        }
    }

    #[test]
    fn longer_stats_and_other_attributes_are_tolerated() {
        let mut stats = stats_bytes(1, 2, 3, 4, 5);
        stats.extend_from_slice(&[9; 8]);
        let mut attrs = nla(9, &[1, 2, 3]);
        attrs.extend(nla(CGROUPSTATS_TYPE_CGROUP_STATS | 0x8000, &stats)); // NLA_F_NESTED set
        let msg = nlmsg(FAMILY, SEQ, &genl(CGROUPSTATS_CMD_NEW, &attrs));
        assert_eq!(run(&[msg, error_msg(SEQ, 0)]).unwrap(), Some(EXPECTED));
    }

    #[test]
    fn unexpected_messages_are_errors() {
        let attrs = nla(CGROUPSTATS_TYPE_CGROUP_STATS, &stats_bytes(1, 2, 3, 4, 5));
        let wrong_cmd = nlmsg(FAMILY, SEQ, &genl(CGROUPSTATS_CMD_GET, &attrs));
        assert!(run(&[wrong_cmd]).is_err());
        let wrong_type = nlmsg(FAMILY + 1, SEQ, &genl(CGROUPSTATS_CMD_NEW, &attrs));
        assert!(run(&[wrong_type]).is_err());
        assert!(run(&[nlmsg(NLMSG_OVERRUN, SEQ, &[])]).is_err());
        let mut dup = stats_reply(SEQ);
        dup.extend(stats_reply(SEQ));
        assert!(run(&[dup]).is_err());
        // NOOP is skipped.
        let r = run(&[
            nlmsg(NLMSG_NOOP, SEQ, &[]),
            stats_reply(SEQ),
            error_msg(SEQ, 0),
        ]);
        assert_eq!(r.unwrap(), Some(EXPECTED));
    }

    #[test]
    fn family_id_reply() {
        let expect = Expect {
            seq: SEQ,
            msg_type: GENL_ID_CTRL,
            cmd: CTRL_CMD_NEWFAMILY,
        };
        let family = |attrs: &[u8]| -> io::Result<Option<u16>> {
            let mut d = nlmsg(GENL_ID_CTRL, SEQ, &genl(CTRL_CMD_NEWFAMILY, attrs));
            d.extend(error_msg(SEQ, 0));
            let mut reply = None;
            process_datagram(&d, expect, &mut reply, parse_family_id)
        };
        let mut attrs = nla(CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME);
        attrs.extend(nla(CTRL_ATTR_FAMILY_ID, &0x1bu16.to_ne_bytes()));
        assert_eq!(family(&attrs).unwrap(), Some(0x1b));
        assert!(family(&nla(CTRL_ATTR_FAMILY_ID, &[1])).is_err());
        assert!(family(&nla(CTRL_ATTR_FAMILY_ID, &0u16.to_ne_bytes())).is_err());
        assert!(family(&nla(CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME)).is_err());
        let mut reply = None;
        let e = process_datagram(
            &error_msg(SEQ, -libc::ENOENT),
            expect,
            &mut reply,
            parse_family_id,
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn garbage_never_panics() {
        let mut good = stats_reply(SEQ);
        good.extend(error_msg(SEQ, 0));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            // Random bytes, sometimes with a plausible length in front.
            let len = (rnd() % 96) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            if len >= 4 && rnd() % 2 == 0 {
                let l = (rnd() % (len as u64 + 8)) as u32;
                d[0..4].copy_from_slice(&l.to_ne_bytes());
            }
            let _ = run(&[d]);
            // A valid datagram with a few bytes flipped.
            let mut m = good.clone();
            for _ in 0..1 + rnd() % 3 {
                let i = (rnd() as usize) % m.len();
                m[i] = rnd() as u8;
            }
            let _ = run(&[m]);
        }
    }

    #[test]
    fn request_layout() {
        let mut buf = [0u8; REQ_BUF_LEN];
        let n = build_request(
            &mut buf,
            FAMILY,
            42,
            CGROUPSTATS_CMD_GET,
            1,
            CGROUPSTATS_CMD_ATTR_FD,
            &5u32.to_ne_bytes(),
        )
        .unwrap();
        assert_eq!(n, 28);
        let (msg, rest) = split_message(&buf[..n]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(read_u16(msg, 4), Some(FAMILY));
        assert_eq!(read_u16(msg, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(read_u32(msg, 8), Some(42));
        assert_eq!(msg[16], CGROUPSTATS_CMD_GET);
        let fd = find_attr(&msg[NLMSG_HDRLEN + GENL_HDRLEN..], CGROUPSTATS_CMD_ATTR_FD).unwrap();
        assert_eq!(fd, Some(&5u32.to_ne_bytes()[..]));

        let n = build_request(
            &mut buf,
            GENL_ID_CTRL,
            1,
            CTRL_CMD_GETFAMILY,
            1,
            CTRL_ATTR_FAMILY_NAME,
            TASKSTATS_GENL_NAME,
        )
        .unwrap();
        assert_eq!(n, 36);
        assert_eq!(read_u16(&buf, 20), Some(14)); // nla_len excludes the padding
        assert!(build_request(&mut buf, 1, 1, 1, 1, 1, &[0; 60]).is_err());
    }

    // ---- against the running kernel -----------------------------------------

    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

    fn fs_magic(p: &Path) -> Option<i64> {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: statfs is plain data; the kernel fills it on success.
        let mut s: libc::statfs = unsafe { mem::zeroed() };
        // SAFETY: `c` is NUL-terminated and `s` is a valid out-pointer.
        if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
            return None;
        }
        Some(s.f_type as i64)
    }

    /// The mount to test on. A machine that cannot run the test fails it, naming the set-up:
    /// a test never passes without having run.
    fn mount_for_test(path: &str, magic: i64) -> Option<PathBuf> {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!("creating cgroups needs root: run the suite with `scripts/test.sh` as root");
        }
        let p = PathBuf::from(path);
        if fs_magic(&p) != Some(magic) {
            panic!("{path} is not the expected cgroup mount; this test needs a v1/hybrid host (see scripts/test.sh)");
        }
        Some(p)
    }

    fn open_socket() -> Option<CgroupStatsSocket> {
        match CgroupStatsSocket::open() {
            Ok(s) => Some(s),
            Err(e) => {
                panic!("opening the taskstats socket: {e} (a kernel with taskstats is needed)")
            }
        }
    }

    /// A cgroup directory and the children moved into it; Drop kills the children and
    /// removes the directory even when the test failed half-way.
    struct TestCgroup {
        dir: PathBuf,
        children: Vec<Child>,
    }

    impl TestCgroup {
        fn create(parent: &Path) -> io::Result<Self> {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dir = parent.join(format!("cgstats-test-{}-{nanos}", std::process::id()));
            fs::create_dir(&dir)?;
            Ok(TestCgroup {
                dir,
                children: Vec::new(),
            })
        }

        fn spawn_into(&mut self, program: &str, args: &[&str], stdin: Stdio) -> io::Result<()> {
            let child = Command::new(program)
                .args(args)
                .stdin(stdin)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let pid = child.id();
            // Owned by the guard before the move, so it is killed even if the move fails.
            self.children.push(child);
            fs::write(self.dir.join("cgroup.procs"), format!("{pid}\n"))
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            for child in &mut self.children {
                // SAFETY: plain syscall; the child is not reaped yet, so its pid is ours.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                let _ = child.wait();
            }
            for _ in 0..100 {
                match fs::remove_dir(&self.dir) {
                    Ok(()) => return,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            eprintln!("could not remove {}", self.dir.display());
        }
    }

    #[test]
    fn v1_cgroup_counts_running_and_sleeping_tasks() {
        let Some(root) = mount_for_test("/sys/fs/cgroup/cpu", CGROUP_SUPER_MAGIC) else {
            return;
        };
        let Some(mut sock) = open_socket() else {
            return;
        };
        let mut cg = TestCgroup::create(&root).expect("creating the test cgroup");

        let empty = sock.query(&cg.dir).expect("querying an empty cgroup");
        assert_eq!(empty, TaskCounts::default());

        cg.spawn_into("sh", &["-c", "while :; do :; done"], Stdio::null())
            .expect("spawning the busy loop");
        cg.spawn_into("sleep", &["1000"], Stdio::null())
            .expect("spawning sleep");
        // Since Linux 6.1 nanosleep is a freezable sleep that cgroupstats does not count
        // (see TaskCounts), so `sleep` alone cannot satisfy the check below. `cat` on a
        // pipe whose write end the guard keeps open sleeps in plain TASK_INTERRUPTIBLE.
        cg.spawn_into("cat", &[], Stdio::piped())
            .expect("spawning cat");

        // The busy loop can be off-CPU for a moment and the sleepers need a moment to
        // block, hence the retries.
        let mut last = TaskCounts::default();
        for _ in 0..200 {
            last = sock.query(&cg.dir).expect("querying the test cgroup");
            if last.running >= 1 && last.sleeping >= 1 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert!(last.running >= 1, "{last:?}");
        assert!(last.sleeping >= 1, "{last:?}");
        assert_eq!(last.stopped, 0, "{last:?}");
        let total =
            last.running + last.sleeping + last.stopped + last.uninterruptible + last.io_wait;
        assert!(total <= 3, "more tasks than were put in: {last:?}");

        // query_fd on a descriptor kept open gives the same view.
        let dir = fs::File::open(&cg.dir).unwrap();
        let via_fd = sock.query_fd(dir.as_fd()).unwrap();
        assert!(via_fd.running + via_fd.sleeping >= 1, "{via_fd:?}");
    }

    #[test]
    fn removed_cgroup_is_enoent_or_empty() {
        let Some(root) = mount_for_test("/sys/fs/cgroup/cpu", CGROUP_SUPER_MAGIC) else {
            return;
        };
        let Some(mut sock) = open_socket() else {
            return;
        };
        let cg = TestCgroup::create(&root).expect("creating the test cgroup");
        let dir = fs::File::open(&cg.dir).unwrap();
        fs::remove_dir(&cg.dir).unwrap();
        match sock.query_fd(dir.as_fd()) {
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}"),
            Ok(c) => assert_eq!(c, TaskCounts::default()),
        }
        assert_eq!(
            sock.query(&cg.dir).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn cgroup2_directories_are_unsupported() {
        let Some(root) = mount_for_test("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC) else {
            return;
        };
        let Some(mut sock) = open_socket() else {
            return;
        };
        let e = sock.query(&root).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");

        let mut cg = TestCgroup::create(&root).expect("creating a cgroup2 child");
        cg.spawn_into("sleep", &["1000"], Stdio::null())
            .expect("spawning sleep");
        let e = sock.query(&cg.dir).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");

        // The socket stays usable after an error.
        if let Some(v1) = mount_for_test("/sys/fs/cgroup/cpu", CGROUP_SUPER_MAGIC) {
            sock.query(&v1).expect("v1 query after a v2 error");
        }
    }

    #[test]
    fn non_cgroup_paths() {
        let Some(mut sock) = open_socket() else {
            return;
        };
        let tmp = std::env::temp_dir();
        let e = sock.query(&tmp).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
        // A file is refused by open(O_DIRECTORY) before the kernel is asked.
        let e = sock.query(Path::new("/proc/self/status")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{e}");
        let e = sock.query(Path::new("/nonexistent/cgroup")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }

    #[test]
    fn socket_is_cloexec() {
        let Some(sock) = open_socket() else { return };
        // SAFETY: plain fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(sock.fd.as_raw_fd(), libc::F_GETFD) };
        assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0);
    }
}
