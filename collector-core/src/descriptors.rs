//! The descriptors the collector holds open across sweeps (cgroup directories, process
//! handles with their `net/dev`, held files), and the most it may hold. Both are counted for the
//! whole process, as the open-files limit they share is: by default the soft `RLIMIT_NOFILE`
//! less an eighth (at least 1,024), so the rest of the program always has room. Beyond the
//! budget files are opened by path, which costs about twice the CPU.

/// How many descriptors the collectors of this process hold now.
pub fn held() -> usize {
    crate::read::held_dir_fds()
}

/// The most they may hold.
pub fn budget() -> usize {
    crate::read::dir_fd_budget()
}

/// Sets the budget (`None`: back to the default from `RLIMIT_NOFILE`), for a program that
/// needs more descriptors for itself, or a test that wants none held. Descriptors already held
/// stay until their containers are read again.
pub fn set_budget(n: Option<usize>) {
    crate::read::set_dir_fd_budget(n.unwrap_or(usize::MAX));
}
