//! The process events connector's datagrams (`cn_proc`): netlink messages holding exec, fork
//! and exit events, as the kernel sends them.
#![no_main]

use collector_core::fuzzing::{proc_events, ProcEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![ProcEvent::Exec { pid: 1, tgid: 1 }];
    match proc_events(data, &mut out) {
        Ok(n) => assert_eq!(
            n,
            out.len() - 1,
            "the count returned and the events appended"
        ),
        Err(why) => assert!(!why.is_empty()),
    }
    // What was there before is kept; each event takes a netlink header at least.
    assert_eq!(out[0], ProcEvent::Exec { pid: 1, tgid: 1 });
    assert!(
        (out.len() - 1) * 16 <= data.len(),
        "{} events from {} bytes",
        out.len() - 1,
        data.len()
    );
});
