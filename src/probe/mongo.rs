//! The MongoDB side of the probes: the member gate (`hello`, and with
//! `max_lag` the member's lag from `replSetGetStatus`), the router gate
//! (`hello`, then a mongos's `connPoolStats`: a reachable primary for each
//! of its replica sets), and the commands around a restart that dial the
//! same address with the same TLS and credentials (who is primary, a
//! primary's step-down, the pre-flight). The wire protocol itself is
//! [`crate::health::mongo`].

use super::Prober;
use crate::config::{HealthCheck, HealthKind};
use crate::health::mongo::{
    hello, step_down, with_conn, Hello, MemberStatus, MongoError, ServerType, Target, Tls,
};
use crate::health::scram::Credentials;
use crate::model::Container;
use crate::runtime::{ContainerRuntime, ContainerStatus, RuntimeError};
use std::sync::Arc;
use std::time::Duration;

impl<R: ContainerRuntime> Prober<R> {
    /// The member gate: MongoDB's hello, classified as the drivers do
    /// ([`Hello::member_verdict`]: a member passes only as its labelled
    /// set's primary or secondary), and, with `max_lag`, a secondary's lag
    /// behind its primary from `replSetGetStatus` (a missing primary or
    /// `optimeDate` fails). `Err` says why it did not pass, naming the
    /// server type; `Ok(true)`: it passes as its set's primary.
    pub(super) async fn member(
        &self,
        c: &Container,
        port: u16,
        max_lag: Option<Duration>,
        arbiters: bool,
        status: &ContainerStatus,
        timeout: Duration,
    ) -> Result<bool, String> {
        let (addr, creds) = self.dial(c, status, port).await?;
        let expected = self
            .replset_label
            .as_deref()
            .and_then(|k| c.labels.get(k))
            .map(str::to_string);
        let asked = with_conn(&addr, timeout, |conn| {
            Box::pin(async move {
                let hello = conn.hello().await?;
                let verdict = hello.member_verdict(expected.as_deref(), arbiters);
                let status = match (&verdict, max_lag) {
                    (Ok(ServerType::RSSecondary), Some(_)) => {
                        if let Some(creds) = &creds {
                            conn.authenticate(creds).await?;
                        }
                        Some(conn.member_status().await?)
                    }
                    _ => None,
                };
                Ok::<(Hello, Result<ServerType, String>, Option<MemberStatus>), MongoError>((
                    hello, verdict, status,
                ))
            })
        })
        .await;
        let (h, verdict, status) = asked.map_err(|e| format!("hello to {addr}: {e}"))?;
        let primary =
            verdict.map_err(|why| format!("hello to {addr}: {why}"))? == ServerType::RSPrimary;
        if let (Some(st), Some(bound)) = (status, max_lag) {
            let set = h.set_name.as_deref().unwrap_or("?");
            let lag = st
                .lag_ms()
                .map_err(|why| format!("replSetGetStatus on {addr}: member of {set}: {why}"))?;
            let lag = Duration::from_millis(lag as u64);
            if lag > bound {
                return Err(format!(
                    "replSetGetStatus on {addr}: member of {set} is {:.1}s behind its primary {} (bound {:.1}s)",
                    lag.as_secs_f64(),
                    st.primary.as_deref().unwrap_or("?"),
                    bound.as_secs_f64()
                ));
            }
        }
        Ok(primary)
    }

    /// The router gate: hello says mongos, and its replica-set monitor has
    /// a reachable primary for each of `sets`. `Ok(Err(why))`: it answers
    /// but cannot reach them (the outer `Err` of a failed probe is "not
    /// yet").
    pub(super) async fn router(
        &self,
        c: &Container,
        port: u16,
        sets: &[String],
        status: &ContainerStatus,
        timeout: Duration,
    ) -> Result<Result<(), String>, String> {
        let (addr, creds) = self.dial(c, status, port).await?;
        let asked = with_conn(&addr, timeout, |conn| {
            Box::pin(async move {
                let hello = conn.hello().await?;
                if hello.server_type() != ServerType::Mongos {
                    return Ok((hello, None));
                }
                if let Some(creds) = &creds {
                    conn.authenticate(creds).await?;
                }
                Ok((hello, Some(conn.router_view().await?)))
            })
        })
        .await;
        let (hello, view) = asked.map_err(|e| format!("mongos at {addr}: {e}"))?;
        let Some(view) = view else {
            return Err(match hello.server_type() {
                t @ ServerType::Unknown => format!(
                    "hello to {addr}: {t} ({})",
                    hello.errmsg.as_deref().unwrap_or("ok is not 1")
                ),
                t => format!("hello to {addr}: {t} (not a mongos: a router is expected)"),
            });
        };
        let unreachable = view.unreachable(sets);
        if unreachable.is_empty() {
            Ok(Ok(()))
        } else {
            Ok(Err(format!(
                "mongos at {addr} cannot reach {}",
                unreachable.join("; ")
            )))
        }
    }

    /// Where a gate dials `c`, and the credentials it authenticates with;
    /// `Err` says why it cannot.
    async fn dial(
        &self,
        c: &Container,
        status: &ContainerStatus,
        port: u16,
    ) -> Result<(Target, Option<Arc<Credentials>>), String> {
        let addr = self
            .target(c, status, port)
            .await
            .map_err(|e| e.to_string())?;
        Ok((addr, self.credentials()?))
    }

    /// Where the MongoDB gates connect to `c`: its address, with TLS when
    /// the playbook says (the certificate must carry the container's DNS
    /// name when it has one, else its address).
    async fn target(
        &self,
        c: &Container,
        status: &ContainerStatus,
        port: u16,
    ) -> Result<Target, TargetError> {
        let ip = self.ip(c, status).await.map_err(TargetError::Address)?;
        let addr = std::net::SocketAddr::from((ip, port));
        let tls = match &self.tls {
            None => None,
            Some(Err(e)) => return Err(TargetError::Tls(format!("MongoDB TLS: {e}"))),
            Some(Ok(config)) => {
                let name = match &c.dns_name {
                    Some(n) => {
                        rustls::pki_types::ServerName::try_from(n.trim_end_matches('.').to_string())
                            .map_err(|e| {
                                TargetError::Tls(format!("{n}: not a name TLS can check: {e}"))
                            })?
                    }
                    None => rustls::pki_types::ServerName::IpAddress(ip.into()),
                };
                Some(Tls {
                    config: config.clone(),
                    name,
                })
            }
        };
        Ok(Target { addr, tls })
    }

    /// The gates' credentials: none configured, or read (an `Err` when
    /// the playbook names them but they could not be read).
    fn credentials(&self) -> Result<Option<Arc<Credentials>>, String> {
        match &self.credentials {
            None => Ok(None),
            Some(Ok(c)) => Ok(Some(c.clone())),
            Some(Err(e)) => Err(format!("MongoDB credentials: {e}")),
        }
    }

    /// Whether `c` says (`hello`) it is its replica set's primary.
    pub async fn is_primary(
        &self,
        c: &Container,
        port: u16,
        timeout: Duration,
    ) -> Result<bool, RuntimeError> {
        let api = |reason: String| RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op: "hello",
            reason,
        };
        let status = self.rt.inspect(c).await?;
        let addr = self
            .target(c, &status, port)
            .await
            .map_err(|e| api(e.to_string()))?;
        hello(&addr, timeout)
            .await
            .map(|h| h.server_type() == ServerType::RSPrimary)
            .map_err(|e| api(format!("{addr}: {e}")))
    }

    /// Pre-flight for one container of a role gated on MongoDB: it
    /// answers, the credentials (if any) authenticate, and the gate's own
    /// command is allowed (`connPoolStats` on a mongos, `replSetGetStatus`
    /// on a member gated on lag). `Err` says what failed, naming the
    /// container, and whether it was a refusal or no answer.
    pub async fn preflight_mongo(
        &self,
        c: &Container,
        check: &HealthCheck,
    ) -> Result<String, PreflightFailure> {
        let (port, command) = match &check.kind {
            HealthKind::Mongos { port, .. } => (*port, Some("connPoolStats")),
            HealthKind::Mongo { port, max_lag, .. } => (*port, max_lag.map(|_| "replSetGetStatus")),
            _ => return Ok("no MongoDB gate".into()),
        };
        let fail = |refused: bool, reason: String| PreflightFailure {
            container: c.name.clone(),
            host: c.host.clone(),
            reason,
            refused,
        };
        let status = self
            .rt
            .inspect(c)
            .await
            .map_err(|e| fail(false, e.to_string()))?;
        // A TLS setting that does not load, or a name TLS cannot check, is
        // refused; a container without an address has not answered.
        let addr = self
            .target(c, &status, port)
            .await
            .map_err(|e| fail(matches!(e, TargetError::Tls(_)), e.to_string()))?;
        let creds = self.credentials().map_err(|e| fail(true, e))?;
        let authenticated = creds.is_some();
        with_conn(&addr, check.timeout, |conn| {
            Box::pin(async move {
                if let Some(creds) = &creds {
                    conn.authenticate(creds).await?;
                }
                match command {
                    Some("connPoolStats") => {
                        conn.router_view().await?;
                    }
                    Some(_) => {
                        // A member not yet in a set answers 94; what
                        // matters here is that the command is allowed.
                        match conn.member_status().await {
                            Ok(_) => {}
                            Err(MongoError::Command { code: 94, .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    None => {
                        conn.hello().await?;
                    }
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| fail(e.is_refusal(), format!("{addr}: {e}")))?;
        Ok(format!(
            "{} at {addr}: {}{}",
            c.name,
            if authenticated { "authenticated, " } else { "" },
            command.unwrap_or("hello")
        ))
    }

    /// [`HealthProbe::step_down`](super::HealthProbe::step_down) for MongoDB.
    pub async fn step_down(
        &self,
        c: &Container,
        check: &HealthCheck,
        catch_up: Duration,
    ) -> Result<bool, RuntimeError> {
        let HealthKind::Mongo { port, .. } = &check.kind else {
            return Ok(false);
        };
        let api = |reason: String| RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op: "step down",
            reason,
        };
        let status = self.rt.inspect(c).await?;
        let addr = self
            .target(c, &status, *port)
            .await
            .map_err(|e| api(e.to_string()))?;
        let creds = self.credentials().map_err(api)?;
        step_down(&addr, creds.as_deref(), catch_up, check.timeout)
            .await
            .map_err(|e| api(format!("{addr}: {e}")))
    }
}

/// Why the MongoDB gates cannot dial a container.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The container has no address to dial (yet).
    #[error("{0}")]
    Address(String),
    /// The playbook's TLS settings do not apply to it.
    #[error("{0}")]
    Tls(String),
}

/// Why one container's pre-flight check did not pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("container {container} on host {host}: {reason}")]
pub struct PreflightFailure {
    /// The container checked.
    pub container: String,
    /// Its Docker host.
    pub host: String,
    /// What failed.
    pub reason: String,
    /// A definite refusal (TLS, credentials, rights, configuration) that
    /// fails the pre-flight; otherwise the container did not answer, which
    /// during a recovery is no verdict (another container is tried).
    pub refused: bool,
}
