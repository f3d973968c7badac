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

pub(crate) mod cgroupns;
pub(crate) mod exec_watch;
pub(crate) mod finding;
pub(crate) mod inspect;
pub(crate) mod judge;
pub(crate) mod peers;
pub mod policy;
pub(crate) mod proc_events;
pub(crate) mod sockets;

pub use finding::{Finding, ProcessRef};
pub use judge::{FindingKind, Rules};
pub use policy::{ImagePolicy, PeerFacts, PeerRule, ProcessPolicy};
