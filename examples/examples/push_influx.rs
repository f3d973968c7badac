//! Collects every 10 s and pushes to InfluxDB from your own program.
//! `cargo run -p examples --example push_influx -- http://127.0.0.1:8086 mydb`

use std::{sync::Arc, time::Duration};

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
    let sink = InfluxSink::new(InfluxConfig::new(url, api))?;
    let handle = SinkRunner::spawn(sink, RunnerConfig::default())?;
    let mut collector = Collector::new(Config::default())?;
    loop {
        handle.push(Arc::new(collector.sweep()));
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
