//! `mountinfo::parse` and `mountinfo::unescape` (`/proc/<pid>/mountinfo`).
#![no_main]

use collector_core::mountinfo::{parse, unescape};
use libfuzzer_sys::fuzz_target;

/// Escapes like the kernel's mountinfo writer: space, tab, newline and backslash as `\ooo`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => {
                let b = c as u8;
                out.push('\\');
                for shift in [6, 3, 0] {
                    out.push(char::from(b'0' + ((b >> shift) & 7)));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let (entries, err) = parse(text);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    match &err {
        None => assert_eq!(entries.len(), lines, "no error but a row was dropped"),
        Some(e) => {
            assert!(entries.len() < lines, "error {e:?} but every row was kept");
            assert!(e.starts_with("line "), "error without a line number: {e:?}");
        }
    }
    for m in &entries {
        // Fields that are kept verbatim are single space-separated words of one line.
        for f in [&m.mount_options, &m.fs_type, &m.super_options] {
            assert!(
                !f.contains(' ') && !f.contains('\n'),
                "field {f:?} spans words"
            );
        }
        let _ = m.has_super_option("memory");
    }

    // Unescaping never grows a string, leaves strings without `\` alone, and undoes the
    // kernel's escaping of any string.
    let u = unescape(text);
    assert!(u.len() <= text.len(), "unescape grew {text:?} to {u:?}");
    if !text.contains('\\') {
        assert_eq!(u, text);
    }
    assert_eq!(unescape(&escape(text)), text, "escape/unescape round trip");
});
