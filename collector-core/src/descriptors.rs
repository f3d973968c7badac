//! The descriptors a collector holds open across sweeps (cgroup directories, process handles
//! with their `net/dev`, held files), and the most it may hold: its [`FdBudget`]. Beyond the
//! budget files are opened by path, which costs about twice the CPU.
//!
//! A collector counts against the budget its [`Config`](crate::Config) names
//! (`descriptor_budget`), else against [`FdBudget::process_default`], shared by every
//! collector of the process that has none of its own. Every descriptor is given back when
//! its container goes or the collector is dropped.
//!
//! ```
//! use collector_core::{Collector, Config, FdBudget};
//!
//! // Two collectors that together hold at most 2,000 descriptors.
//! let budget = FdBudget::new(2_000);
//! let a = Collector::with_budget(Config::default(), budget.clone())?;
//! let b = Collector::with_budget(Config::default(), budget.clone())?;
//! assert_eq!(a.resources().descriptor_budget, 2_000);
//! drop((a, b));
//! assert_eq!(budget.held(), 0);
//! # Ok::<(), collector_core::Error>(())
//! ```

pub use crate::read::FdBudget;
