//! `parse::nested_keyed` (v2 io.stat: `MAJ:MIN key=value ...`).
#![no_main]

use collector_core::parse::nested_keyed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // Rows with at least one word, in order, with their word count.
    let rows: Vec<usize> = text
        .lines()
        .map(|l| l.split_ascii_whitespace().count())
        .filter(|&n| n > 0)
        .collect();

    let mut handed = Vec::new();
    let res = nested_keyed(text, |major, minor, pairs| {
        let dev = format!("{major}:{minor}");
        let mut n = 0usize;
        for (k, _v) in pairs {
            n += 1;
            assert!(!k.is_empty(), "empty key on {dev}");
            assert!(!k.contains('='), "key {k:?} holds '='");
            assert!(
                !k.bytes().any(|b| b.is_ascii_whitespace()),
                "key {k:?} holds whitespace"
            );
        }
        handed.push(n);
    });

    // A row is handed out whole or not at all: each handed row gives all its pairs.
    match res {
        Ok(()) => {
            let want: Vec<usize> = rows.iter().map(|n| n - 1).collect();
            assert_eq!(handed, want, "Ok but some row was skipped or cut short");
        }
        Err(e) => {
            assert!(
                handed.len() < rows.len(),
                "Err ({e}) but every row was handed out"
            );
            assert!(e.starts_with("line "), "error without a line number: {e:?}");
        }
    }
});
