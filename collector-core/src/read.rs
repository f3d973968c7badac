//! Reading cgroup files into one reused buffer, turning outcomes into values or recorded errors.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{is_vanished, Error};
use crate::parse;

/// A reused path and content buffer, plus the errors met while reading one container.
#[derive(Debug, Default)]
pub struct Reader {
    path: PathBuf,
    buf: String,
    /// Errors met since the last `take_errors`.
    pub errors: Vec<Error>,
    /// Set when a file was absent: the cgroup may have vanished (the caller checks).
    pub saw_missing: bool,
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `dir/file`. `None` when it does not exist (an older kernel or a vanished cgroup),
    /// or when reading failed (the error is recorded).
    pub fn read(&mut self, dir: &Path, file: &str) -> Option<&str> {
        self.path.clear();
        self.path.push(dir);
        self.path.push(file);
        self.buf.clear();
        let res = File::open(&self.path).and_then(|mut f| f.read_to_string(&mut self.buf));
        match res {
            Ok(_) => Some(self.buf.as_str()),
            Err(e) if is_vanished(&e) => {
                self.saw_missing = true;
                None
            }
            Err(e) => {
                self.errors.push(Error::read(&self.path, e));
                None
            }
        }
    }

    /// The path of the last file read, for error messages.
    pub fn last_path(&self) -> &Path {
        &self.path
    }

    /// Records a parse failure of the last file read.
    pub fn parse_error(&mut self, reason: String) {
        let e = Error::parse(&self.path, reason);
        self.errors.push(e);
    }

    /// Reads and parses with `f`; a parse failure is recorded and gives `None`.
    pub fn parsed<T>(
        &mut self,
        dir: &Path,
        file: &str,
        f: impl FnOnce(&str) -> Result<T, parse::Reason>,
    ) -> Option<T> {
        let text = self.read(dir, file)?;
        match f(text) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.parse_error(reason);
                None
            }
        }
    }

    pub fn u64(&mut self, dir: &Path, file: &str) -> Option<u64> {
        self.parsed(dir, file, parse::single_u64)
    }

    /// A limit file: `Some(None)` means "unlimited", `None` that it could not be read.
    pub fn limit(&mut self, dir: &Path, file: &str) -> Option<Option<u64>> {
        self.parsed(dir, file, parse::limit)
    }

    /// A one-line string into `out`, reusing its buffer; `None` when it could not be read.
    pub fn string_into(&mut self, dir: &Path, file: &str, out: &mut Option<String>) {
        match self.read(dir, file) {
            Some(text) => {
                let text = text.trim();
                match out {
                    Some(s) => {
                        s.clear();
                        s.push_str(text);
                    }
                    None => *out = Some(text.to_string()),
                }
            }
            None => *out = None,
        }
    }

    /// Flat keyed file: `f` sees each pair; a bad line is recorded, the good ones still count.
    pub fn flat_keyed(&mut self, dir: &Path, file: &str, f: impl FnMut(&str, u64)) -> bool {
        let Some(text) = self.read(dir, file) else {
            return false;
        };
        if let Err(reason) = parse::flat_keyed(text, f) {
            self.parse_error(reason);
        }
        true
    }

    /// Takes the recorded errors out, leaving the reader ready for the next container.
    pub fn take_errors(&mut self, into: &mut Vec<Error>) {
        into.append(&mut self.errors);
        self.saw_missing = false;
    }
}

/// Whether an I/O error means "gone" rather than "broken".
pub fn vanished(e: &io::Error) -> bool {
    is_vanished(e)
}
