//! `parse::blkio_v1` (v1 blkio.throttle.io_service_bytes[_recursive], io_serviced[_recursive]).
#![no_main]

use collector_core::parse::blkio_v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // Device rows: lines with a first word other than the trailing `Total`.
    let rows = text
        .lines()
        .filter(|l| {
            l.split_ascii_whitespace()
                .next()
                .is_some_and(|w| w != "Total")
        })
        .count();

    let mut calls = 0usize;
    let res = blkio_v1(text, |_major, _minor, op, _v| {
        calls += 1;
        assert!(!op.is_empty(), "empty op");
        assert!(
            !op.bytes().any(|b| b.is_ascii_whitespace()),
            "op {op:?} holds whitespace"
        );
    });

    match res {
        Ok(()) => assert_eq!(calls, rows, "Ok but not every device row was handed out"),
        Err(e) => {
            assert!(
                calls < rows,
                "Err ({e}) but every device row was handed out"
            );
            assert!(e.starts_with("line "), "error without a line number: {e:?}");
        }
    }
});
