//! Prints what happens to containers as the sweeps notice it: starts, stops, OOM kills and
//! security findings (a miner, a reverse shell, a new listener...), one line each, until
//! Ctrl-C. `cargo run -p examples --example watch_events`
//!
//! Events ride on the snapshots: each carries those its sweep noticed. Containers present at
//! start are not news; those that come later are `started`.

use std::time::Duration;

use collector_core::{Collector, Config, EventKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let driver = Collector::new(Config::default())?.spawn(Duration::from_secs(1))?;
    let mut snapshots = driver.watch();
    let first = snapshots
        .wait_for(Option::is_some)
        .await?
        .as_ref()
        .map_or(0, |s| s.containers.len());
    println!("watching {first} containers");
    loop {
        tokio::select! {
            changed = snapshots.changed() => changed?,
            _ = tokio::signal::ctrl_c() => break,
        }
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        for e in &snapshot.events {
            let who = e.name.as_deref().unwrap_or(&e.id);
            match (&e.kind, &e.finding) {
                (EventKind::Finding(_), Some(f)) => {
                    let what = match (&f.process, f.remote, f.local) {
                        (Some(p), _, _) => format!("pid {} {}: {}", p.pid, p.comm, p.cmdline),
                        (None, Some(remote), _) => format!("connection to {remote}"),
                        (None, None, Some(local)) => format!("listening on {local}"),
                        (None, None, None) => String::new(),
                    };
                    println!("{} {who} {}: {what}", e.kind.name(), e.id)
                }
                (EventKind::OomKill, _) => println!("oom_kill {who} {} x{}", e.id, e.count),
                _ => println!("{} {who} {}", e.kind.name(), e.id),
            }
        }
    }
    driver.stop();
    Ok(())
}
