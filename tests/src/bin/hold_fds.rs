//! Test workload: sets its soft open-files limit, opens files, TCP listeners and UDP sockets
//! on loopback as its arguments say, writes the ready file it is given, then sleeps until
//! killed. Descriptors it inherited beyond stdio (a test harness's jobserver pipes) are closed
//! first, so the test knows every one it holds. It also makes CONNECT connections to its
//! first listener (each an established pair in the namespace's table).
//! Usage: hold_fds READY_FILE NOFILE FILES TCP UDP CONNECT

use std::net::{TcpListener, TcpStream, UdpSocket};

fn arg(i: usize) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: READY_FILE NOFILE FILES TCP UDP CONNECT"))
}

fn main() {
    // SAFETY: closes descriptors this process owns and has not used; no Rust object holds any
    // of them at this point.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    assert_eq!(rc, 0, "close_range: {}", std::io::Error::last_os_error());
    let ready = std::env::args().nth(1).expect("READY_FILE");
    let (nofile, files, tcp, udp) = (arg(2), arg(3), arg(4), arg(5));
    let connect = arg(6);
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, nofile, hard)
        .expect("setrlimit");
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for _ in 0..files {
        held.push(Box::new(
            std::fs::File::open("/proc/self/status").expect("a file"),
        ));
    }
    let mut first = None;
    for _ in 0..tcp {
        let l = TcpListener::bind("127.0.0.1:0").expect("a listener");
        first.get_or_insert(l.local_addr().expect("its address"));
        held.push(Box::new(l));
    }
    for _ in 0..connect {
        let to = first.expect("CONNECT needs a TCP listener");
        held.push(Box::new(TcpStream::connect(to).expect("a connection")));
    }
    for _ in 0..udp {
        held.push(Box::new(
            UdpSocket::bind("127.0.0.1:0").expect("a udp socket"),
        ));
    }
    std::fs::write(&ready, "ready").expect("the ready file");
    std::hint::black_box(&held);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
