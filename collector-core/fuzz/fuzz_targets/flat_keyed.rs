//! `parse::flat_keyed` (memory.stat, cpu.stat, memory.events, cpuacct.stat).
#![no_main]

use collector_core::parse::flat_keyed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The readers read files as UTF-8 strings; other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let mut calls = 0usize;
    let res = flat_keyed(text, |k, _v| {
        calls += 1;
        // A key is one whitespace-separated word of the input.
        assert!(!k.is_empty(), "empty key");
        assert!(
            !k.bytes().any(|b| b.is_ascii_whitespace()),
            "key {k:?} holds whitespace"
        );
        assert!(text.contains(k), "key {k:?} is not in the input");
    });

    // Every line with content is either handed out once or reported: Ok means all of them
    // were handed out, Err means at least one was not.
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    match res {
        Ok(()) => assert_eq!(calls, lines, "Ok but not every line reached the callback"),
        Err(e) => {
            assert!(
                calls < lines,
                "Err ({e}) but every line reached the callback"
            );
            assert!(e.starts_with("line "), "error without a line number: {e:?}");
        }
    }
});
