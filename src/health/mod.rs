//! Probes that speak a database's own protocol, for health kinds beyond
//! Docker's view (state, HEALTHCHECK, exec, TCP connect). It owns the wire
//! format and the verdict; it never decides retries or deadlines (the
//! engine's health gate does) and never sends anything but read-only
//! commands (and, with credentials, the SCRAM exchange that authenticates
//! them).

pub mod mongo;
pub mod scram;
