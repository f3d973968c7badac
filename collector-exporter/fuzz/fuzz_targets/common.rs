//! Shared by the targets: the input as a file, as the exporter reads it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch directory of its own, holding `name` with `text`; removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
    pub file: PathBuf,
}

impl Scratch {
    pub fn new(name: &str, text: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "exporter-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let file = dir.join(name);
        std::fs::write(&file, text).expect("scratch file");
        Scratch { dir, file }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The error `load` gives for `text` is one line and shows none of `secrets` (values that may be
/// passwords). A secret counts as shown when the message holds it and, with the secret
/// changed in the input, holds the changed one instead: the message then follows the input's
/// value. (libFuzzer learns the messages' own words and puts them into secrets.) `load` gives
/// the message with the scratch file's path left out, or `None` when the text is accepted.
pub fn check_error(text: &str, secrets: &[String], load: impl Fn(&str) -> Option<String>) {
    let Some(message) = load(text) else {
        return;
    };
    assert!(
        !message.contains('\n'),
        "an error over two lines: {message:?}"
    );
    for s in secrets {
        if s.len() < 4 || text.matches(s.as_str()).count() != 1 || !message.contains(s.as_str()) {
            continue;
        }
        let changed = shifted(s);
        if changed == *s {
            continue;
        }
        let again = load(&text.replacen(s.as_str(), &changed, 1)).unwrap_or_default();
        let follows_input = again.contains(&changed) && !again.contains(s.as_str());
        assert!(
            !follows_input,
            "the error shows a secret {s:?}: {message:?}"
        );
    }
}

/// `s` with each ASCII letter and digit moved to the next (z to a, 9 to 0).
fn shifted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c if c.is_ascii_alphanumeric() => (c as u8 + 1) as char,
            c => c,
        })
        .collect()
}
