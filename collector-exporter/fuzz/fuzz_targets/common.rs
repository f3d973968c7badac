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

/// The error is one line and holds none of `secrets`. A secret is checked when it is found
/// once in the input (so it cannot have reached the message another way), is 8 characters or
/// more, and does not start like a bcrypt hash (`$2y$`, which the help text names). The
/// scratch file's path, which the message names, is left out of the search.
pub fn check_error(message: &str, input: &str, secrets: &[String], file: &std::path::Path) {
    assert!(
        !message.contains('\n'),
        "an error over two lines: {message:?}"
    );
    let message = message.replace(&*file.to_string_lossy(), "");
    for s in secrets {
        if s.len() >= 8 && !s.starts_with("$2") && input.matches(s.as_str()).count() == 1 {
            assert!(
                !message.contains(s.as_str()),
                "the error shows a secret: {message:?}"
            );
        }
    }
}
