//! What runs inside containers and whom it talks to: the signals security monitoring needs.
//!
//! - `sockets`: the kernel's TCP and UDP tables, parsed and counted by state;
//! - `judge`: the rules that judge a process or a connection, pure;
//! - `inspect`: a process read from `/proc` and judged against them;
//! - `proc_events` and `exec_watch`: every exec as it happens, through the kernel's process
//!   events connector, looked at on a thread of its own; `cgroupns`: the host's cgroup paths
//!   when the collector runs in a cgroup namespace of its own;
//! - `policy`: which programs and listening ports an image is expected to have;
//! - `finding`: a finding as the events carry it.

pub mod cgroupns;
pub mod exec_watch;
pub mod finding;
pub mod inspect;
pub mod judge;
pub mod peers;
pub mod policy;
pub mod proc_events;
pub mod sockets;

pub use finding::{Finding, ProcessRef};
pub use judge::{FindingKind, Rules};
pub use policy::{ImagePolicy, PeerFacts, PeerRule, ProcessPolicy};
