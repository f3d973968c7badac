//! `parse::net_dev` (`/proc/<pid>/net/dev`).
#![no_main]

use collector_core::parse::net_dev;
use collector_core::InterfaceStats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let check = |out: &[InterfaceStats]| {
        for i in out {
            assert!(!i.name.is_empty(), "empty interface name");
            assert!(
                !i.name.contains(':'),
                "interface name {:?} holds ':'",
                i.name
            );
        }
    };

    // Fresh buffer.
    let mut out = Vec::new();
    let first = net_dev(text, &mut out);
    check(&out);

    // The buffer is reused between sweeps: a stale, longer buffer must give the same result.
    let mut reused = vec![
        InterfaceStats {
            name: "stale-entry".into(),
            rx_bytes: 7,
            ..Default::default()
        };
        out.len() + 3
    ];
    let second = net_dev(text, &mut reused);
    assert_eq!(first, second, "result depends on the buffer's old content");
    assert_eq!(out, reused, "entries depend on the buffer's old content");

    if let Err(e) = first {
        assert!(e.starts_with("line "), "error without a line number: {e:?}");
    }
});
