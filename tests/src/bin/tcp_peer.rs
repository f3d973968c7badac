//! Test workload: a TCP listener on a given address, a server that accepts and holds every
//! connection made to it, or a client holding one connection to it. Writes the ready file
//! once listening or connected, then sleeps (or accepts) until killed.
//! Usage: tcp_peer listen|serve|connect ADDR READY_FILE

use std::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, addr, ready] = args.as_slice() else {
        panic!("usage: tcp_peer listen|serve|connect ADDR READY_FILE");
    };
    let held: Box<dyn std::any::Any> = match mode.as_str() {
        "listen" => Box::new(TcpListener::bind(addr.as_str()).expect("a listener")),
        "serve" => {
            let l = TcpListener::bind(addr.as_str()).expect("a listener");
            std::fs::write(ready, "ready").expect("the ready file");
            // Accepted connections are held: a socket the kernel queued but no process
            // accepted has no descriptor, and so no owner.
            let mut held = Vec::new();
            for s in l.incoming() {
                held.push(s.expect("a connection"));
            }
            unreachable!("incoming() never ends");
        }
        "connect" => Box::new(TcpStream::connect(addr.as_str()).expect("a connection")),
        other => panic!("unknown mode {other:?}"),
    };
    std::fs::write(ready, "ready").expect("the ready file");
    std::hint::black_box(&held);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
