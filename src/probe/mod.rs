//! The health gate's probes: one trait, [`HealthProbe`], that the engine's
//! gate asks with a container and its role's check, whatever the check's
//! kind. Two sides implement it: [`Prober`] for real runs (Docker's own
//! view through the [`ContainerRuntime`], a TCP connect, a command run in
//! the container, MongoDB's `hello`, `replSetGetStatus` and a mongos's
//! `connPoolStats`, in [`mongo`]) and `sim::SimProbe` for rehearsals (what
//! each kind can see of a simulated process). A probe says how the
//! container is now and, when it is not healthy, why; it never decides
//! retries or deadlines (the gate does) and never restarts anything.
//!
//! The MongoDB commands around a restart that are not health (asking who is
//! primary, a primary's step-down, the pre-flight's checks) live here too:
//! they dial the same address with the same TLS and credentials.

pub mod mongo;

use crate::config::{HealthCheck, HealthKind, Playbook};
use crate::dns::CachedResolver;
use crate::health::mongo::TlsFileError;
use crate::health::scram::{Credentials, ScramError};
use crate::model::{Container, ContainerState, Health};
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{ContainerRuntime, ContainerStatus, RuntimeError};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The container's health by this check: `Healthy` passes the gate,
    /// `Starting` is "not yet" (the gate's deadline decides), `Unhealthy`
    /// is stuck (running, and will not become ready by waiting), `Down`
    /// is not running.
    pub health: Health,
    /// Why it did not pass, when the probe knows more than "not yet" (the
    /// address it dialled, what the server answered): read by people, in
    /// the failure's reason.
    pub note: Option<String>,
    /// The member said it is its replica set's writable primary (only a
    /// `mongo` check can tell; `false` from any other).
    pub primary: bool,
}

impl Probed {
    /// A verdict without a note.
    pub fn plain(health: Health) -> Probed {
        Probed {
            health,
            note: None,
            primary: false,
        }
    }
}

/// The one way the health gate looks at a container.
pub trait HealthProbe: Send + Sync + 'static {
    /// Probes `c` once with `check`. `Err`: the runtime could not be asked
    /// (the gate counts it as "not yet", with the error as its reason).
    fn check(
        &self,
        c: &Container,
        check: &HealthCheck,
    ) -> impl Future<Output = Result<Probed, RuntimeError>> + Send;

    /// MongoDB's rolling order: if `c` is its replica set's primary, asks
    /// it to step down (a secondary catches up for `catch_up`) and returns
    /// once it no longer is. `Ok(false)`: it was not primary, nothing
    /// asked. A side without replica sets (the simulator) has no primaries
    /// to step down.
    fn step_down(
        &self,
        c: &Container,
        check: &HealthCheck,
        catch_up: Duration,
    ) -> impl Future<Output = Result<bool, RuntimeError>> + Send {
        let _ = (c, check, catch_up);
        std::future::ready(Ok(false))
    }
}

/// The pre-flight's question to one container of a role gated on
/// MongoDB (before the first restart): does it answer, do the credentials
/// authenticate, is the gate's own command allowed. `Ok` says what
/// answered; `Err` says what failed and whether it was a refusal (final)
/// or no answer (another container is tried).
pub trait PreflightProbe: Send + Sync {
    /// Asks `c` under `check`.
    fn preflight(
        &self,
        c: &Container,
        check: &HealthCheck,
    ) -> impl Future<Output = Result<String, mongo::PreflightFailure>> + Send;
}

impl<R: ContainerRuntime> PreflightProbe for Prober<R> {
    fn preflight(
        &self,
        c: &Container,
        check: &HealthCheck,
    ) -> impl Future<Output = Result<String, mongo::PreflightFailure>> + Send {
        self.preflight_mongo(c, check)
    }
}

/// The real probes, over any [`ContainerRuntime`] (Docker in a run): the
/// `docker` kind asks the runtime's own view; the others first ask the
/// runtime whether the process runs (a container that does not is `Down`,
/// not probed) and then dial it themselves: at its DNS name label through
/// the run's resolver, else at the address the runtime reports.
pub struct Prober<R> {
    rt: Arc<R>,
    /// The run's one resolver (the Docker hosts'), for containers probed
    /// by DNS name.
    resolver: Option<CachedResolver>,
    /// TLS for the MongoDB gates (`[mongo.tls]`), built once; the error
    /// says why it could not be.
    tls: Option<Result<Arc<rustls::ClientConfig>, TlsFileError>>,
    /// The MongoDB gates' credentials (`[mongo]`), read once.
    credentials: Option<Result<Arc<Credentials>, ScramError>>,
    /// The label naming a container's replica set (`groups.replset`): the
    /// member gate passes a member only of the set it names.
    replset_label: Option<String>,
    /// Routers failing the router gate: since when, per process (the
    /// container's start marker), to tell "not yet" from stuck.
    failing: Mutex<HashMap<String, (String, tokio::time::Instant)>>,
}

impl<R: ContainerRuntime> Prober<R> {
    /// Probes over `rt`, dialling names through `resolver` (the run's
    /// one); reads the playbook's MongoDB TLS files and credentials now (an
    /// error is kept and given as the reason of each probe that needs them,
    /// and refused by the pre-flight).
    pub fn new(pb: &Playbook, rt: Arc<R>, resolver: Option<CachedResolver>) -> Prober<R> {
        Prober {
            rt,
            resolver,
            tls: pb.mongo_tls.as_ref().map(|t| {
                crate::health::mongo::tls_config(
                    &t.ca,
                    t.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                )
            }),
            credentials: pb
                .mongo
                .as_ref()
                .map(|m| Credentials::load(m).map(Arc::new)),
            replset_label: pb.replset_label.clone(),
            failing: Mutex::new(HashMap::new()),
        }
    }

    /// The runtime it asks.
    pub fn runtime(&self) -> &Arc<R> {
        &self.rt
    }

    /// The address a probe dials: the container's DNS name label through
    /// the run's resolver, else the address the runtime reports. `Err`:
    /// why none.
    async fn ip(&self, c: &Container, status: &ContainerStatus) -> Result<IpAddr, String> {
        match &c.dns_name {
            Some(name) => {
                let r = self.resolver.as_ref().ok_or_else(|| {
                    format!(
                        "{name}: rekindle has no resolver of its own (see the warning at start)"
                    )
                })?;
                match r.lookup(name).await {
                    Ok(ips) => ips
                        .first()
                        .copied()
                        .ok_or_else(|| format!("{name}: no address")),
                    Err(e) => Err(e.to_string()),
                }
            }
            None => status.address.ok_or_else(|| {
                "the container has no network address to probe (label it rekindle.dns_name)"
                    .to_string()
            }),
        }
    }

    /// A TCP connect; `Err` says why it did not pass.
    async fn tcp(
        &self,
        c: &Container,
        port: u16,
        status: &ContainerStatus,
        timeout: Duration,
    ) -> Result<(), String> {
        let addr = std::net::SocketAddr::from((self.ip(c, status).await?, port));
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("tcp connect to {addr}: {e}")),
            Err(_) => Err(format!(
                "tcp connect to {addr}: no answer within {}s",
                timeout.as_secs_f64()
            )),
        }
    }

    /// The operator's own command, run in the container: exit 0 passes.
    async fn exec(
        &self,
        c: &Container,
        command: &[String],
    ) -> Result<Result<(), String>, RuntimeError> {
        match self.rt.exec(c, command).await {
            Ok(0) => Ok(Ok(())),
            Ok(code) => Ok(Err(format!("{command:?} exited with {code}"))),
            Err(e @ RuntimeError::Api { .. }) => Ok(Err(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// The router gate's verdict on a mongos that answers but cannot reach
    /// a set: stuck once it has failed so for `stuck_after` since this
    /// process (`started`) first did (a fresh mongos's monitor needs a
    /// heartbeat or two to see its shards), else not yet.
    fn router_failing(&self, c: &Container, started: &str, stuck_after: Duration) -> Health {
        let now = tokio::time::Instant::now();
        let mut failing = self.failing.lock().unwrap();
        let entry = failing
            .entry(c.id.clone())
            .or_insert_with(|| (started.to_string(), now));
        if entry.0 != started {
            *entry = (started.to_string(), now);
        }
        if now.duration_since(entry.1) >= stuck_after {
            failing.remove(&c.id);
            Health::Unhealthy
        } else {
            Health::Starting
        }
    }
}

impl Prober<DockerRuntime> {
    /// Probes over a run's Docker hosts, sharing their resolver (one per
    /// run).
    pub fn docker(pb: &Playbook, rt: DockerRuntime) -> Prober<DockerRuntime> {
        let resolver = rt.resolver().cloned();
        Prober::new(pb, Arc::new(rt), resolver)
    }
}

impl<R: ContainerRuntime> HealthProbe for Prober<R> {
    async fn check(&self, c: &Container, check: &HealthCheck) -> Result<Probed, RuntimeError> {
        if check.kind == HealthKind::Docker {
            let health = self.rt.health(c).await?;
            return Ok(Probed {
                note: (health == Health::Unhealthy)
                    .then(|| "Docker says unhealthy (the image's HEALTHCHECK fails)".to_string()),
                ..Probed::plain(health)
            });
        }
        // Probes of our own: only a running container is probed, and a
        // failing probe means "not yet" (the gate's deadline decides); why
        // it failed goes with the verdict.
        let status = self.rt.inspect(c).await?;
        match status.state {
            ContainerState::Running | ContainerState::Paused => {}
            ContainerState::Restarting => return Ok(Probed::plain(Health::Starting)),
            _ => return Ok(Probed::plain(Health::Down)),
        }
        let probed = match &check.kind {
            HealthKind::Docker => unreachable!("answered above"),
            HealthKind::Tcp { port } => self
                .tcp(c, *port, &status, check.timeout)
                .await
                .map(|()| false),
            HealthKind::Mongo {
                port,
                max_lag,
                arbiters,
                ..
            } => {
                self.member(c, *port, *max_lag, *arbiters, &status, check.timeout)
                    .await
            }
            HealthKind::Mongos {
                port,
                stuck_after,
                sets,
            } => match self.router(c, *port, sets, &status, check.timeout).await {
                Ok(Err(why)) => {
                    let health = self.router_failing(c, &status.started_at, *stuck_after);
                    return Ok(Probed {
                        health,
                        note: Some(why),
                        primary: false,
                    });
                }
                Ok(Ok(())) => {
                    self.failing.lock().unwrap().remove(&c.id);
                    Ok(false)
                }
                Err(why) => Err(why),
            },
            HealthKind::Exec { command } => self.exec(c, command).await?.map(|()| false),
        };
        Ok(match probed {
            Ok(primary) => Probed {
                primary,
                ..Probed::plain(Health::Healthy)
            },
            Err(why) => Probed {
                health: Health::Starting,
                note: Some(why),
                primary: false,
            },
        })
    }

    async fn step_down(
        &self,
        c: &Container,
        check: &HealthCheck,
        catch_up: Duration,
    ) -> Result<bool, RuntimeError> {
        Prober::step_down(self, c, check, catch_up).await
    }
}

/// A shared probe is a probe (a caller keeps a handle on what it asked).
impl<T: HealthProbe> HealthProbe for Arc<T> {
    fn check(
        &self,
        c: &Container,
        check: &HealthCheck,
    ) -> impl Future<Output = Result<Probed, RuntimeError>> + Send {
        (**self).check(c, check)
    }

    fn step_down(
        &self,
        c: &Container,
        check: &HealthCheck,
        catch_up: Duration,
    ) -> impl Future<Output = Result<bool, RuntimeError>> + Send {
        (**self).step_down(c, check, catch_up)
    }
}
