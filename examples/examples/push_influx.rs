//! Collects every 10 s and pushes to InfluxDB from your own async program, until Ctrl-C.
//! `cargo run -p examples --example push_influx -- http://127.0.0.1:8086 mydb`
//!
//! The sweeps run on the collector's own thread (`Collector::spawn`), never on the runtime,
//! so a slow sweep cannot stall the sink's deliveries (or anything else the program runs).
//! On Ctrl-C the collector stops, then the sink delivers what it holds, the last sweep too.

use std::time::Duration;

use collector_core::influx::{Api, InfluxConfig, InfluxSink};
use collector_core::sink::{RunnerConfig, SinkRunner};
use collector_core::{Collector, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8086".into());
    let database = args.next().unwrap_or_else(|| "containers".into());
    let api = Api::V1 {
        database,
        retention_policy: None,
        username: None,
        password: None,
    };
    let sink = SinkRunner::spawn(
        InfluxSink::new(InfluxConfig::new(url, api))?,
        RunnerConfig::default(),
    )?;
    let driver = Collector::new(Config::default())?.spawn(Duration::from_secs(10))?;
    driver.feed(sink.feeder());
    tokio::signal::ctrl_c().await?;
    driver.stop();
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
