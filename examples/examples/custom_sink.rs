//! Pushes each sweep through a `Sink` of your own: here one JSON line per container (and per
//! event) appended to a file, or written to stdout, until Ctrl-C.
//! `cargo run -p examples --example custom_sink -- /tmp/containers.jsonl`
//!
//! A sink turns a snapshot into items (`encode`, on the sink's task) and delivers batches of
//! them (`send`); the runner queues, batches, retries and, on shutdown, delivers what it holds.

use std::io::Write;
use std::time::Duration;

use collector_core::sink::{Outcome, RunnerConfig, Sink, SinkRunner};
use collector_core::{Collector, Config, Snapshot};

/// Appends JSON lines to a file, or writes them to stdout.
struct JsonLines {
    path: Option<std::path::PathBuf>,
}

impl Sink for JsonLines {
    fn kind(&self) -> &'static str {
        "json_lines"
    }

    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
        if metrics {
            for c in &snapshot.containers {
                let line = serde_json::json!({
                    "time_ms": snapshot.timestamp_ms,
                    "id": c.id,
                    "name": c.meta.name,
                    "cpu_usage_ns": c.stats.cpu.usage_ns,
                    "memory_working_set_bytes": c.stats.memory.working_set_bytes,
                    "tasks": c.stats.pids.current,
                });
                out.push(line.to_string().into_bytes());
            }
        }
        // Events go out with every snapshot, whether metrics are due or not.
        for e in &snapshot.events {
            if let Ok(line) = serde_json::to_vec(e) {
                out.push(line);
            }
        }
    }

    async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
        let mut text = Vec::new();
        for item in batch {
            text.extend_from_slice(item);
            text.push(b'\n');
        }
        let written = match &self.path {
            Some(p) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| f.write_all(&text)),
            None => std::io::stdout().lock().write_all(&text),
        };
        match written {
            Ok(()) => Outcome::Delivered,
            // The runner keeps the batch and tries again with back-off.
            Err(e) => Outcome::Retry {
                after: None,
                reason: format!("writing: {e}"),
            },
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(std::path::PathBuf::from);
    let sink = SinkRunner::spawn(JsonLines { path }, RunnerConfig::default())?;
    let driver = Collector::new(Config::default())?.spawn(Duration::from_secs(1))?;
    driver.feed(sink.feeder());
    tokio::signal::ctrl_c().await?;
    driver.stop();
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
