//! The cgroup v2 VM of `tests/vm/`: `prepare.sh` caches Debian's 6.1 kernel and installs qemu,
//! `run.sh` boots it with a probe binary as the workload and prints the probe's stdout. Shared
//! by the tests that run probes there (`cgroup_v2_vm.rs`, `churn_v2_vm.rs`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// What to do when the VM cannot be had.
pub const SETUP_HINT: &str = "set the machine up with `scripts/test.sh` (it runs `tests/vm/prepare.sh <cache>`, \
     which needs root and apt for qemu-system-x86, busybox-static, cpio and the linux-image-6.1 package)";

/// Where `scripts/test.sh` has `prepare.sh` cache the kernel: `$CARGO_TARGET_DIR/vm-cache`,
/// default `target/vm-cache`.
pub fn cache_dir() -> PathBuf {
    let ws = crate::repo_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => ws.join(t).join("vm-cache"),
        _ => ws.join("target").join("vm-cache"),
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(text);
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `prepare.sh` on the cache (quick when it is filled), failing the test with the set-up
/// command when it cannot.
pub fn prepare() -> PathBuf {
    let cache = cache_dir();
    let prepare = crate::repo_root().join("tests/vm/prepare.sh");
    let out = Command::new("bash")
        .arg(&prepare)
        .arg(&cache)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP_HINT}", prepare.display()));
    assert!(
        out.status.success(),
        "cgroup v2 VM prerequisites missing: `{} {}` failed ({}):\n{}\n{SETUP_HINT}",
        prepare.display(),
        cache.display(),
        out.status,
        tail(&out.stderr, 30)
    );
    cache
}

/// Boots the VM with `probe` and `args` (`env` sets run.sh's `VM_*`), and returns the probe's
/// stdout; fails the test, with run.sh's stderr, unless the probe exited 0.
pub fn run_probe(probe: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let cache = prepare();
    let run = crate::repo_root().join("tests/vm/run.sh");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&run)
        .arg(&cache)
        .arg(probe)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP_HINT}", run.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    eprintln!("VM run took {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "tests/vm/run.sh failed ({}); if qemu or the kernel cache is missing, {SETUP_HINT}. stderr:\n{stderr}",
        out.status
    );
    out.stdout
}
