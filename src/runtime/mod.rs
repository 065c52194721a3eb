//! The boundary between rekindle and containers: the [`ContainerRuntime`]
//! trait (inspect, stop, start, exec, the runtime's own view of health,
//! and waiting for a change it hears of). The engine touches containers only through it; the
//! simulator ([`crate::sim`]) implements it for rehearsals, Docker
//! (bollard) for real runs. Nothing above this line knows which one it
//! has. Health checks of other kinds (TCP, exec, MongoDB) are
//! [`crate::probe`]'s: they ask this trait whether the process runs and
//! where, then dial it themselves.

pub mod docker;

use crate::model::{Container, ContainerState, Health};
use std::future::Future;
use thiserror::Error;

/// What an inspect returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The container's state.
    pub state: ContainerState,
    /// When the current process started, as the runtime reports it (an
    /// opaque, comparable marker: RFC 3339 from Docker, virtual nanoseconds
    /// from the simulator). A restart changes it.
    pub started_at: String,
    /// The container's address on its network, when the runtime knows one
    /// (a probe dials it when the container has no DNS name label).
    pub address: Option<std::net::IpAddr>,
}

/// Why a call to the runtime failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RuntimeError {
    /// The host did not answer.
    #[error("host {host}: unreachable: {reason}")]
    Unreachable {
        /// The host's name.
        host: String,
        /// Why it has no client (or is not a host of this playbook).
        reason: String,
    },
    /// The host does not know the container (removed, or renamed).
    #[error("container {container} on host {host}: not found")]
    NotFound {
        /// The host's name.
        host: String,
        /// The container's name.
        container: String,
    },
    /// A call got no answer in time.
    #[error("container {container} on host {host}: {op} timed out after {secs:.1}s")]
    Timeout {
        /// The host's name.
        host: String,
        /// The container's name.
        container: String,
        /// The call (`inspect`, `stop`, `start`, ...).
        op: &'static str,
        /// How long it waited, in seconds.
        secs: f64,
    },
    /// Not sent: the [`Fence`] did not hold (this daemon's leadership is
    /// not confirmed).
    #[error("container {container} on host {host}: {op} not sent: this daemon's leadership of its cluster is not confirmed")]
    Fenced {
        /// The host's name.
        host: String,
        /// The container's name.
        container: String,
        /// The call.
        op: &'static str,
    },
    /// The runtime refused or failed a call.
    #[error("container {container} on host {host}: {op} failed: {reason}")]
    Api {
        /// The host's name.
        host: String,
        /// The container's name.
        container: String,
        /// The call (`inspect`, `stop`, `start`, ...).
        op: &'static str,
        /// What the runtime said.
        reason: String,
    },
}

/// Whether this process may still act on the fleet. In the daemon's HA
/// mode: while its leadership of its cluster is confirmed. The Docker
/// runtime asks right before it sends a stop, after waiting for the host's
/// call slot, so that a leader paused while it waited does not stop a
/// container the next leader has already restarted.
pub trait Fence: Send + Sync {
    /// Whether acting now is allowed.
    fn holds(&self) -> bool;
}

/// The one way rekindle acts on containers.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// The container's state and start marker now.
    fn inspect(
        &self,
        c: &Container,
    ) -> impl Future<Output = Result<ContainerStatus, RuntimeError>> + Send;
    /// Stops the process gracefully (the playbook's stop timeout, then a
    /// kill) and returns once it is down. A stopped container is no error.
    /// This half of a restart causes no DNS lookups.
    fn stop(&self, c: &Container) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Starts a stopped container and returns once its process runs anew:
    /// its start marker moved from `started_before` (what inspect said
    /// before the stop). Its startup lookups begin now: the engine calls it
    /// only with DNS budget in hand.
    fn start(
        &self,
        c: &Container,
        started_before: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Runs a command in the container; returns its exit code.
    fn exec(
        &self,
        c: &Container,
        cmd: &[String],
    ) -> impl Future<Output = Result<i64, RuntimeError>> + Send;
    /// The container's health as the runtime itself sees it: Docker's
    /// state and the image's HEALTHCHECK (running counts as healthy for an
    /// image without one). The health gate's `docker` kind.
    fn health(&self, c: &Container) -> impl Future<Output = Result<Health, RuntimeError>> + Send;
    /// Waits before the next health probe of `c`: `interval` (the check's),
    /// or, when the runtime hears of changes on its own (Docker's events
    /// stream), until it hears of one for `c`, at most `longest`.
    fn changed(
        &self,
        c: &Container,
        interval: std::time::Duration,
        longest: std::time::Duration,
    ) -> impl Future<Output = ()> + Send {
        let _ = (c, longest);
        tokio::time::sleep(interval)
    }
}
