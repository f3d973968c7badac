//! Member crate.
