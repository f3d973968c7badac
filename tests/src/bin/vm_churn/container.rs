//! A container as the churn soak makes it: a cgroup with one process (`/bin/sleep`) in a
//! network namespace of its own, as `unshare -n sleep` in `benches/soak/churn.py`.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Container {
    /// The cgroup id the exporter reports (`/churn/c12`).
    pub id: String,
    pub born: Instant,
    dir: PathBuf,
    child: Option<Child>,
}

impl Container {
    /// Makes cgroup `parent/name` (`id` is its path under the cgroup2 mount) and starts its
    /// process in it.
    pub fn start(parent: &Path, id: &str, name: &str) -> io::Result<Container> {
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| annotate(e, &dir))?;
        let mut c = Container {
            id: id.to_string(),
            born: Instant::now(),
            dir,
            child: None,
        };
        // On error `c` is dropped, which removes the cgroup.
        c.child = Some(spawn_in(&c.dir)?);
        Ok(c)
    }

    /// Kills the process, reaps it and removes the cgroup.
    pub fn destroy(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            // Already dead is fine: it is reaped below either way.
            let _ = child.kill();
            child.wait()?;
        }
        remove_dir_retrying(&self.dir)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("vm_churn: {}: {e}", self.dir.display());
        }
    }
}

/// `/bin/sleep` joined to cgroup `dir` and unshared into a new network namespace between fork
/// and exec. Only async-signal-safe calls there: the probe has other threads, so the child
/// must not allocate.
fn spawn_in(dir: &Path) -> io::Result<Child> {
    let procs_path = dir.join("cgroup.procs");
    let procs = OpenOptions::new()
        .write(true)
        .open(&procs_path)
        .map_err(|e| annotate(e, &procs_path))?;
    let fd = procs.as_raw_fd();
    let mut cmd = Command::new("/bin/sleep");
    cmd.arg("100000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure only calls getpid, write and unshare on a stack buffer.
    unsafe {
        cmd.pre_exec(move || {
            let mut buf = [0u8; 12];
            let n = format_pid(libc::getpid(), &mut buf);
            if libc::write(fd, buf.as_ptr().cast(), n) != n as isize {
                return Err(io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(procs);
    Ok(child)
}

/// Writes `pid` in decimal into `buf`, returning the length; no allocation.
fn format_pid(pid: libc::pid_t, buf: &mut [u8; 12]) -> usize {
    let mut digits = [0u8; 12];
    let mut n = 0;
    let mut v = pid.unsigned_abs();
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 || n == digits.len() {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    n
}

/// rmdir, retried for a moment: a killed process may take a little while to leave.
pub fn remove_dir_retrying(dir: &Path) -> io::Result<()> {
    let mut last = None;
    for _ in 0..100 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(annotate(
        last.unwrap_or_else(|| io::Error::other("rmdir kept failing")),
        dir,
    ))
}

/// Removes cgroup `dir` and every cgroup under it, deepest first (their processes must be
/// gone).
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(annotate(e, dir)),
    };
    for e in entries {
        let e = e?;
        if e.file_type()?.is_dir() {
            remove_tree(&e.path())?;
        }
    }
    remove_dir_retrying(dir)
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pids_are_written_in_decimal() {
        let mut buf = [0u8; 12];
        for (pid, text) in [(0, "0"), (7, "7"), (4_194_304, "4194304")] {
            let n = super::format_pid(pid, &mut buf);
            assert_eq!(&buf[..n], text.as_bytes());
        }
    }
}
