//! # collector-core
//!
//! Finds every container on a Linux host through its cgroups (v1, v2 and hybrid) and reads
//! its CPU, memory, block IO, pids, pressure, load, network and filesystem figures, what
//! runs in it and whom it talks to. The figures and names are cAdvisor's.
//!
//! ## Three ways to use it
//!
//! **Sweep when you like** (blocking; a sweep is file I/O, tens of milliseconds at a
//! thousand containers):
//!
//! ```
//! use collector_core::{Collector, Config};
//!
//! let mut collector = Collector::new(Config::default())?; // detects v1, hybrid or v2
//! let snapshot = collector.sweep(); // what could be read, and the errors met
//! for c in &snapshot.containers {
//!     println!("{} cpu={:?}ns working_set={:?}B", c.id, c.stats.cpu.usage_ns,
//!              c.stats.memory.working_set_bytes);
//! }
//! for e in &snapshot.errors {
//!     eprintln!("{e}");
//! }
//! # assert!(snapshot.get("/").is_some(), "the machine's own cgroup is always there");
//! # Ok::<(), collector_core::Error>(())
//! ```
//!
//! **Let it sweep on its own thread** and take the snapshots from a callback, a
//! `tokio::sync::watch` channel or a sink ([`Collector::spawn`], [`Driver`]): an async
//! program never runs a sweep on its runtime.
//!
//! ```
//! use std::time::Duration;
//! use collector_core::{Collector, Config};
//!
//! let driver = Collector::new(Config::default())?.spawn(Duration::from_millis(100))?;
//! // On the sweep thread, so keep it quick; async code takes `driver.watch()` instead
//! // (feature `sinks`), and sinks take `driver.feed(..)`.
//! driver.on_snapshot(|s| println!("{} containers", s.containers.len()));
//! std::thread::sleep(Duration::from_millis(300));
//! let latest = driver.latest().expect("a sweep by now");
//! assert!(latest.get("/").is_some());
//! driver.stop(); // after the sweep in progress has been handed out
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Serve or push what it reads**: [`prometheus`] writes a snapshot as Prometheus text or
//! OpenMetrics (or hands it to your own `prometheus-client` registry), and the [`sink`]s
//! push it to InfluxDB, Elasticsearch or a Remote-Write receiver, queued, retried and
//! spooled. The `collector-exporter` binary is all of this behind one HTTP server.
//!
//! ## What it holds
//!
//! A collector's descriptors (within its [`FdBudget`]), inotify instances, walker threads and
//! exec watch are its own, reported by [`Collector::resources`] and let go when it is
//! dropped. Every root is injectable through [`Roots`], so a collector runs on fixture trees
//! and inside a container with the host's `/proc` and `/sys` mounted elsewhere; two with
//! different roots work side by side.
//!
//! ## Features
//!
//! | Feature | What it adds |
//! |---|---|
//! | `prometheus` (default) | [`prometheus`]: the exposition with cAdvisor's names |
//! | `sinks` | [`sink`]: the push framework (a task per sink, queue, retry, spool) |
//! | `influxdb` | [`influx`]: InfluxDB v1 and v2 line protocol over HTTP |
//! | `elasticsearch` | [`elastic`]: ECS documents to `_bulk`, data streams or dated indices |
//! | `remote_write` | [`remote_write`]: Prometheus Remote-Write 1.0 |
//! | `runtime` | [`runtime`]: names, images and labels from container runtimes (the common part) |
//! | `docker`, `containerd`, `crio` | each runtime's API, over its unix socket |
//!
//! Without any, the crate reads and returns [`Snapshot`]s and nothing else.

// Every public item says what it is: CI's clippy -D warnings holds it.
#![warn(missing_docs)]

// What an embedder uses.
pub mod collector;
pub mod descriptors;
pub mod driver;
#[cfg(feature = "elasticsearch")]
pub mod elastic;
pub mod error;
pub mod events;
pub mod fs;
pub mod hierarchy;
pub mod identity;
#[cfg(feature = "influxdb")]
pub mod influx;
pub mod machine;
pub mod metadata;
pub mod preflight;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "remote_write")]
pub mod remote_write;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod security;
#[cfg(feature = "sinks")]
pub mod sink;
pub mod stats;

// The kernel's text formats: pure functions over `&str`, public for the fuzz targets and the
// parse bench.
pub mod mountinfo;
pub mod parse;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

// How the figures are read.
mod devices;
mod dirs;
mod discover;
mod idle;
mod load;
mod network;
mod process_list;
mod processes;
mod read;
mod specwatch;
mod v1;
mod v2;

#[cfg(test)]
mod testutil;

#[cfg(all(
    test,
    feature = "prometheus",
    feature = "influxdb",
    feature = "elasticsearch"
))]
mod encoder_coverage;

pub use collector::{
    Collector, Config, Container, ExecSource, Resources, SecurityConfig, SecurityCounters, Snapshot,
};
pub use descriptors::FdBudget;
pub use driver::Driver;
pub use error::{Error, Result};
pub use events::{Event, EventKind};
pub use hierarchy::{Controller, Hierarchy, Roots, Setup};
pub use identity::{Identity, Kind, Runtime};
pub use metadata::{Metadata, MetadataProvider};
pub use process_list::{list_processes, ProcessInfo, ProcessList, CMDLINE_MAX, MAX_PROCESSES};
pub use stats::*;
