//! One measurement of a directory tree, like `du -s` and `find -xdev | wc -l` together, that
//! can stop when its time slice is used up and carry on later from where it stopped.

use std::collections::HashSet;
use std::fs::{self, ReadDir};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Totals of a finished walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// `st_blocks` * 512 over every inode, hard links counted once.
    pub bytes: u64,
    /// Inodes, the top directory included, hard links counted once.
    pub inodes: u64,
    /// `st_dev` of the top directory.
    pub dev: u64,
    /// Entries that vanished or could not be read during the walk (skipped).
    pub skipped: u64,
}

/// How a slice of a walk ended.
#[derive(Debug)]
pub enum Step {
    Done(Totals),
    /// The time slice ran out; call [`Walk::run`] again to go on.
    Paused,
    /// Asked to stop (the collector is shutting down).
    Stopped,
}

/// A walk in progress: the directories still to read and the sums so far.
#[derive(Debug)]
pub struct Walk {
    dev: u64,
    /// Directories found but not read yet.
    pending: Vec<PathBuf>,
    /// The directory being read when the last slice ran out.
    current: Option<ReadDir>,
    totals: Totals,
    /// (dev, ino) of multiply linked non-directories already counted.
    links: HashSet<(u64, u64)>,
    /// Slices run so far.
    pub slices: u32,
    /// Wall time spent in slices so far.
    pub busy: Duration,
}

/// Entries between clock reads.
const CHECK_EVERY: u32 = 64;

impl Walk {
    /// Starts a walk of the directory `root` (not followed if it is a symlink).
    pub fn start(root: &Path) -> io::Result<Walk> {
        let md = fs::symlink_metadata(root)?;
        if !md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Walk {
            dev: md.dev(),
            pending: vec![root.to_path_buf()],
            current: None,
            totals: Totals {
                bytes: md.blocks().saturating_mul(512),
                inodes: 1,
                dev: md.dev(),
                skipped: 0,
            },
            links: HashSet::new(),
            slices: 0,
            busy: Duration::ZERO,
        })
    }

    /// Walks on for at most about `budget` (checked every few entries), or until `stop` is set.
    /// The top directory vanishing makes the rest of the walk empty, not an error: the caller
    /// checks whether the tree still exists.
    pub fn run(&mut self, budget: Duration, stop: &AtomicBool) -> Step {
        let started = Instant::now();
        self.slices += 1;
        let mut n = 0u32;
        let step = loop {
            n += 1;
            if n % CHECK_EVERY == 0 {
                if stop.load(Ordering::Relaxed) {
                    break Step::Stopped;
                }
                if started.elapsed() >= budget {
                    break Step::Paused;
                }
            }
            let dir = match self.current.as_mut() {
                Some(d) => d,
                None => match self.pending.pop() {
                    Some(p) => match fs::read_dir(&p) {
                        Ok(d) => self.current.insert(d),
                        Err(_) => {
                            self.totals.skipped += 1;
                            continue;
                        }
                    },
                    None => break Step::Done(self.totals),
                },
            };
            let entry = match dir.next() {
                Some(Ok(e)) => e,
                Some(Err(_)) => {
                    // A directory that errors while being listed (removed under us): move on.
                    self.totals.skipped += 1;
                    self.current = None;
                    continue;
                }
                None => {
                    self.current = None;
                    continue;
                }
            };
            // lstat through the directory's descriptor: no path is built for files.
            let md = match entry.metadata() {
                Ok(m) => m,
                Err(_) => {
                    self.totals.skipped += 1;
                    continue;
                }
            };
            let is_dir = md.is_dir();
            if !is_dir && md.nlink() > 1 && !self.links.insert((md.dev(), md.ino())) {
                continue;
            }
            self.totals.inodes += 1;
            self.totals.bytes = self
                .totals
                .bytes
                .saturating_add(md.blocks().saturating_mul(512));
            // Counted, but not entered when it is another filesystem's mount point (-xdev).
            if is_dir && md.dev() == self.dev {
                self.pending.push(entry.path());
            }
        };
        self.busy += started.elapsed();
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_all(root: &Path, budget: Duration) -> (Totals, u32) {
        let stop = AtomicBool::new(false);
        let mut w = Walk::start(root).unwrap();
        loop {
            match w.run(budget, &stop) {
                Step::Done(t) => return (t, w.slices),
                Step::Paused => continue,
                Step::Stopped => unreachable!(),
            }
        }
    }

    #[test]
    fn counts_like_du_and_find() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/f1"), vec![1u8; 10_000]).unwrap();
        fs::write(r.join("a/b/f2"), b"x").unwrap();
        fs::hard_link(r.join("a/f1"), r.join("link")).unwrap();
        std::os::unix::fs::symlink("a/f1", r.join("sym")).unwrap();
        let (t, _) = walk_all(r, Duration::from_secs(10));
        // root, a, a/b, f1 (once for two links), f2, sym
        assert_eq!(t.inodes, 6);
        let du: u64 = ["", "a", "a/b", "a/f1", "a/b/f2", "sym"]
            .iter()
            .map(|p| fs::symlink_metadata(r.join(p)).unwrap().blocks() * 512)
            .sum();
        assert_eq!(t.bytes, du);
        assert!(t.bytes >= 10_000);
    }

    #[test]
    fn resumes_across_slices() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..50 {
            let sub = d.path().join(format!("d{i}"));
            fs::create_dir(&sub).unwrap();
            for j in 0..20 {
                fs::write(sub.join(format!("f{j}")), b"").unwrap();
            }
        }
        let (whole, one) = walk_all(d.path(), Duration::from_secs(60));
        assert_eq!(one, 1);
        assert_eq!(whole.inodes, 1 + 50 + 50 * 20);
        // A zero budget pauses at every check: the same totals, many slices.
        let (sliced, many) = walk_all(d.path(), Duration::ZERO);
        assert_eq!(sliced, whole);
        assert!(many > 10, "{many}");
    }

    #[test]
    fn not_a_directory_and_stop() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, b"").unwrap();
        assert!(Walk::start(&f).is_err());
        assert!(Walk::start(&d.path().join("missing")).is_err());
        for i in 0..100 {
            fs::write(d.path().join(format!("g{i}")), b"").unwrap();
        }
        let stop = AtomicBool::new(true);
        let mut w = Walk::start(d.path()).unwrap();
        assert!(matches!(
            w.run(Duration::from_secs(5), &stop),
            Step::Stopped
        ));
    }
}
