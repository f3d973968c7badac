//! The latest snapshot, shared between the sweep loop (one writer) and the HTTP handlers.

use std::sync::{Arc, RwLock};

use collector_core::Snapshot;

#[derive(Debug, Default)]
pub struct Latest {
    inner: RwLock<Option<Arc<Snapshot>>>,
}

impl Latest {
    pub fn get(&self) -> Option<Arc<Snapshot>> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, s: Arc<Snapshot>) {
        match self.inner.write() {
            Ok(mut g) => *g = Some(s),
            Err(poisoned) => *poisoned.into_inner() = Some(s),
        }
    }
}
