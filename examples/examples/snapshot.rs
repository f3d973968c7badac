//! Prints one sweep of this machine as JSON: every container's id (cgroup path), runtime and
//! figures, then the errors met. Run with `cargo run -p examples --example snapshot`.
//! `HOST_ROOT=/host` reads a host's /proc and /sys mounted under /host.

use collector_core::{Collector, Config, Roots};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    if let Ok(prefix) = std::env::var("HOST_ROOT") {
        config.roots = Roots::under(prefix);
    }
    let mut collector = Collector::new(config)?;
    // Two sweeps a second apart, so the load averages have a second point.
    collector.sweep();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let snapshot = collector.sweep();
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    Ok(())
}
