//! The crate's one error for bad settings: which key, and why, in one line (the exporter
//! prints it and exits with 2).

use std::path::{Path, PathBuf};

/// A bad setting. `key` is a flag or TOML key (`housekeeping.interval`, `sinks[0].url`), or,
/// with `file`, a key inside a file another setting names (the web config), which is then
/// said first. Never carries a secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {}{reason}", place(.file, .key))]
pub struct Error {
    pub key: String,
    pub reason: String,
    /// The setting naming the file, and the file.
    pub file: Option<(&'static str, PathBuf)>,
}

fn place(file: &Option<(&'static str, PathBuf)>, key: &str) -> String {
    match file {
        None => format!("{key}: "),
        Some((setting, path)) if key.is_empty() => format!("{setting} {}: ", path.display()),
        Some((setting, path)) => format!("{setting} {}: {key}: ", path.display()),
    }
}

impl Error {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Error {
        Error {
            key: key.into(),
            reason: reason.into(),
            file: None,
        }
    }

    /// The key is inside `path`, the file the setting `setting` names.
    pub fn in_file(self, setting: &'static str, path: &Path) -> Error {
        Error {
            file: Some((setting, path.to_path_buf())),
            ..self
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parser's message on one line: the exporter's errors are one line each.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A TOML error on one line, with the line it points at in `text` where it points at one.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = one_line(e.message());
    match e.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |t| t.matches('\n').count())
                + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}
