//! `parse::psi` (`*.pressure`, `/proc/pressure/*`).
#![no_main]

use collector_core::parse::psi;
use libfuzzer_sys::fuzz_target;

/// Whether some line starting with `kind` has a `total=` word whose value parses to `total`.
fn total_from_input(text: &str, kind: &str, total: u64) -> bool {
    text.lines().any(|l| {
        let mut w = l.split_ascii_whitespace();
        w.next() == Some(kind)
            && w.any(|w| {
                w.strip_prefix("total=")
                    .is_some_and(|v| v.parse::<u64>() == Ok(total))
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(p) = psi(text) {
        assert!(
            total_from_input(text, "some", p.some.total_us),
            "some.total_us {} did not come from a `some ... total=` in the input",
            p.some.total_us
        );
        if let Some(full) = p.full {
            assert!(
                total_from_input(text, "full", full.total_us),
                "full.total_us {} did not come from a `full ... total=` in the input",
                full.total_us
            );
        }
    }
});
