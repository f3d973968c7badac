//! The socket tables (`/proc/<pid>/net/{tcp,tcp6,udp,udp6}`): `parse_table_into`,
//! `count_tcp` and `count_udp` over the same text.
#![no_main]

use collector_core::fuzzing::{count_tcp, count_udp, parse_table_into, TcpCounts, UdpCounts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rows = Vec::new();
    let parsed = parse_table_into(text, &mut rows);
    let lines = text
        .lines()
        .enumerate()
        .filter(|(n, l)| {
            let header = *n == 0 && l.trim_start().starts_with("sl");
            !header && !l.trim().is_empty()
        })
        .count();
    assert!(
        rows.len() <= lines,
        "{} rows from {lines} lines",
        rows.len()
    );
    if parsed.is_ok() {
        assert_eq!(rows.len(), lines, "Ok, yet a line gave no row");
    } else {
        assert!(rows.len() < lines, "an error, yet every line gave a row");
    }
    for r in &rows {
        assert_eq!(
            r.local.is_ipv4(),
            r.remote.is_ipv4(),
            "mixed families in {r:?}"
        );
    }

    // Counting TCP states counts each good row with a known state once.
    let mut tcp = TcpCounts::default();
    let counted = count_tcp(text, &mut tcp);
    let total: u64 = tcp.labeled().iter().map(|(_, n)| n).sum();
    let known = rows.iter().filter(|r| (1..=11).contains(&r.state)).count() as u64;
    assert_eq!(total, known, "TCP states counted");
    if counted.is_ok() {
        assert_eq!(total as usize, rows.len());
    }

    // Every good row is a UDP socket; queues add up without overflow.
    let mut udp = UdpCounts::default();
    let _ = count_udp(text, &mut udp);
    assert_eq!(
        udp.labeled()[0].1 as usize,
        rows.len(),
        "UDP sockets counted"
    );
});
