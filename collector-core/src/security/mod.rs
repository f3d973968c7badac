//! What runs inside containers and whom it talks to: the signals security monitoring needs.
//! The building blocks so far: the kernel's socket tables (`sockets`), the judgements of a
//! process or a connection (`judge`), and exec events as they happen (`proc_events`).

pub mod judge;
pub mod proc_events;
pub mod sockets;
