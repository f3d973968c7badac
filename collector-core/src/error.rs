//! The crate's one error type. Errors carry the path or the setting they came from, so an
//! operator can go and look.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong reading a file or directory, or setting something up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read (permissions, I/O error, ...).
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error the read returned.
        #[source]
        source: io::Error,
    },
    /// The file was read but its content is not in the kernel's format.
    #[error("parsing {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the offending line where there is one.
        reason: String,
    },
    /// No cgroup hierarchy could be found under the given roots.
    #[error("no cgroup hierarchy found: {0}")]
    NoHierarchy(String),
    /// A setting that cannot be used: a sink's URL, index, database or bucket name.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which setting (`url`, `container id`).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file a setting names could not be read (a CA bundle).
    #[error("reading {what} {path}: {source}")]
    ReadSetting {
        /// Which setting names the file (`CA file`, a client certificate or key).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error the read returned.
        #[source]
        source: io::Error,
    },
    /// The HTTP client of a sink could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
}

impl Error {
    /// A [`Error::Read`] for `path`.
    pub fn read(path: &Path, source: io::Error) -> Self {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`Error::Parse`] for `path`.
    pub fn parse(path: &Path, reason: impl Into<String>) -> Self {
        Error::Parse {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The path the error is about, when it has one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Read { path, .. }
            | Error::Parse { path, .. }
            | Error::ReadSetting { path, .. } => Some(path),
            Error::NoHierarchy(_) | Error::Invalid { .. } | Error::Client(_) => None,
        }
    }
}

/// True for the errors a cgroup or process that just went away produces.
/// Such a container stopped; that is not an error worth reporting.
pub fn is_vanished(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOENT | Errno::ENODEV | Errno::ESRCH)
    )
}

/// The crate's `Result`, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
