//! What runs inside containers and whom it talks to: the signals security monitoring needs.

pub mod proc_events;
