//! # collector-core
//!
//! Finds every container on a Linux host through its cgroups (v1, v2 and hybrid) and reads
//! its CPU, memory, block IO, pids, pressure, load and network figures.
//!
//! ```no_run
//! use collector_core::{Collector, Config};
//!
//! let mut collector = Collector::new(Config::default())?;
//! let snapshot = collector.sweep();
//! for c in &snapshot.containers {
//!     println!("{} {:?} cpu={:?}ns mem={:?}B", c.id, c.identity.runtime,
//!              c.stats.cpu.usage_ns, c.stats.memory.usage_bytes);
//! }
//! for e in &snapshot.errors {
//!     eprintln!("{e}");
//! }
//! # Ok::<(), collector_core::Error>(())
//! ```
//!
//! Every root is injectable through [`Roots`], so the collector runs on fixture trees and
//! inside a container with the host's `/proc` and `/sys` mounted elsewhere.

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
