//! The Docker adapter: the [`ContainerRuntime`] and discovery
//! ([`discover`]) over one client per host, built once per run
//! ([`DockerHosts`]) and shared by both. Plain-TCP and TLS hosts get a
//! hyper connection pool behind bollard (`limits.connections_per_host`
//! idle connections and slots for short calls; stops and starts hold one
//! each), whose connections ask the run's fence before they write a stop
//! ([`fenced`]). Each host's events stream confirms starts and carries
//! health, with inspect as the fallback (docs/scale.md). Every call has a
//! timeout, and only calls that are safe to repeat (inspect, list, stop
//! and start, which answer 304 when already done) are retried here
//! ([`crate::retry`]). A restart is a stop then a start; it is confirmed by
//! the container's start time moving, never by the call returning. This
//! module never decides what to restart or when: that is the engine's.
//!
//! Its parts: [`connection`] (which hosts, TLS, the negotiated API, the
//! pool, the hosts connected once per run), [`events`] (each host's events
//! stream, what it said, and what the runtime reads back from it),
//! [`answers`] (what Docker's inspect, list and error answers say), and
//! here the runtime itself over them: its calls and the
//! [`ContainerRuntime`] methods.

mod answers;
mod connection;
pub mod discover;
mod events;
pub mod fenced;

pub use answers::*;
pub use connection::*;
use events::*;

use super::{ContainerRuntime, ContainerStatus, RuntimeError};
use crate::config::{HostSpec, Playbook, TlsPaths};
use crate::dns::CachedResolver;
use crate::model::{Container, ContainerState, Health, Labels};
use crate::retry::{retry, Backoff, Failed};
use crate::rng::SplitMix64;
use bollard::models::{ContainerInspectResponse, ExecConfig, HealthStatusEnum};
use bollard::query_parameters::{
    EventsOptionsBuilder, StartContainerOptions, StopContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use fenced::{FenceSlot, FencedConnector};
use futures_util::StreamExt;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

struct HostClient {
    docker: Docker,
    /// The host's pool: one permit per connection for the short calls
    /// (`limits.connections_per_host`).
    calls: Arc<Semaphore>,
    /// What the host's events stream said.
    heard: Arc<Heard>,
}

/// Timeouts of the calls the runtime makes.
#[derive(Debug, Clone, Copy)]
pub struct CallTimeouts {
    /// inspect, list, exec create/start/inspect.
    pub api: Duration,
    /// The restart call: stop timeout plus time to start.
    pub restart: Duration,
    /// The stop timeout passed to the engine (`t`).
    pub stop: Duration,
}

impl CallTimeouts {
    /// The timeouts for a playbook: 10 s for API calls; the stop timeout plus 60 s for a restart.
    pub fn of(pb: &Playbook) -> CallTimeouts {
        CallTimeouts {
            api: Duration::from_secs(10),
            restart: pb.limits.stop_timeout + Duration::from_secs(60),
            stop: pb.limits.stop_timeout,
        }
    }
}

/// Docker hosts as a [`ContainerRuntime`].
pub struct DockerRuntime {
    hosts: HashMap<String, HostClient>,
    /// Hosts that did not answer when connecting, with the reason.
    unreachable: BTreeMap<String, String>,
    selector: Vec<(String, String)>,
    timeouts: CallTimeouts,
    watchers: Vec<tokio::task::AbortHandle>,
    jitter: Mutex<SplitMix64>,
    /// The run's one resolver (host names here; the probes' names through
    /// [`crate::probe::Prober`]).
    resolver: Option<CachedResolver>,
    /// Whether each inspected container's image has a HEALTHCHECK.
    healthcheck: Mutex<HashMap<String, bool>>,
    /// Each restarted container's new process as its start confirmed it,
    /// for the Docker gate to read the events stream instead of inspecting.
    started: Mutex<HashMap<String, Started>>,
    /// Asked before each stop is sent, and by every connection before it
    /// writes a stop (HA mode); empty: always allowed.
    fence: FenceSlot,
}

impl Drop for DockerRuntime {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
    }
}

impl DockerRuntime {
    /// The run's one cached resolver, if one could be built: host names go
    /// through it, and the probes and the DNS budget's probe share it.
    pub fn resolver(&self) -> Option<&CachedResolver> {
        self.resolver.as_ref()
    }

    /// The runtime over hosts already connected (discovery's): a host that
    /// did not answer is recorded, not fatal: its containers' calls fail
    /// with [`RuntimeError::Unreachable`]. Must be called inside a tokio
    /// runtime (it starts the event watchers).
    pub fn from_hosts(pb: &Playbook, connected: DockerHosts) -> DockerRuntime {
        let DockerHosts {
            specs,
            clients,
            resolver,
            fence,
        } = connected;
        let timeouts = CallTimeouts::of(pb);
        let mut rt = DockerRuntime {
            hosts: HashMap::new(),
            unreachable: BTreeMap::new(),
            selector: pb
                .discovery
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeouts,
            watchers: Vec::new(),
            jitter: Mutex::new(SplitMix64::new(0x5eed)),
            resolver,
            started: Mutex::new(HashMap::new()),
            healthcheck: Mutex::new(HashMap::new()),
            fence,
        };
        for (spec, client) in specs.iter().zip(clients) {
            match client {
                Ok(docker) => {
                    let calls = Arc::new(Semaphore::new(pb.limits.connections_per_host as usize));
                    let heard = Arc::new(Heard::default());
                    let task = tokio::spawn(watch_events(
                        docker.clone(),
                        spec.clone(),
                        rt.selector.clone(),
                        heard.clone(),
                    ));
                    rt.watchers.push(task.abort_handle());
                    rt.hosts.insert(
                        spec.name.clone(),
                        HostClient {
                            docker,
                            calls,
                            heard,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(host = %spec.name, url = %spec.url, error = %e, "Docker host unreachable");
                    rt.unreachable.insert(spec.name.clone(), e.to_string());
                }
            }
        }
        rt
    }

    /// Hosts that did not answer, with the reason.
    pub fn unreachable(&self) -> &BTreeMap<String, String> {
        &self.unreachable
    }

    fn host(&self, host: &str) -> Result<&HostClient, RuntimeError> {
        self.hosts
            .get(host)
            .ok_or_else(|| RuntimeError::Unreachable {
                host: host.to_string(),
                reason: self
                    .unreachable
                    .get(host)
                    .cloned()
                    .unwrap_or_else(|| "not a host of this playbook".into()),
            })
    }

    /// One API call on `c`'s host: under the host's concurrency cap, within
    /// `limit`; retried with backoff and jitter when `idempotent` and the
    /// failure is [`transient`] (a 5xx, a timeout, a lost connection):
    /// reads, and stop (a stopped container answers 304). Start retries
    /// through its own look at the container (see `start`).
    async fn call<T, F, Fut>(
        &self,
        c: &Container,
        op: &'static str,
        limit: Duration,
        idempotent: bool,
        f: F,
    ) -> Result<T, RuntimeError>
    where
        F: Fn(Docker) -> Fut,
        Fut: Future<Output = Result<T, bollard::errors::Error>>,
    {
        self.call_fenced(c, op, limit, idempotent, false, f).await
    }

    /// [`Self::call`]; with `fenced`, each attempt asks the fence (HA
    /// mode) once it holds the host's call slot, and is not sent when it
    /// does not hold.
    async fn call_fenced<T, F, Fut>(
        &self,
        c: &Container,
        op: &'static str,
        limit: Duration,
        idempotent: bool,
        fenced: bool,
        f: F,
    ) -> Result<T, RuntimeError>
    where
        F: Fn(Docker) -> Fut,
        Fut: Future<Output = Result<T, bollard::errors::Error>>,
    {
        let b = Backoff {
            attempts: if idempotent { 3 } else { 1 },
            ..CALL_BACKOFF
        };
        retry(&b, Some(&self.jitter), |_| async {
            self.call_once(c, op, limit, fenced, &f)
                .await
                .map_err(|(e, again)| Failed::new(e, again))
        })
        .await
    }

    /// One attempt of a call; `Err` says whether trying again may help.
    async fn call_once<T, F, Fut>(
        &self,
        c: &Container,
        op: &'static str,
        limit: Duration,
        fenced: bool,
        f: &F,
    ) -> Result<T, (RuntimeError, bool)>
    where
        F: Fn(Docker) -> Fut,
        Fut: Future<Output = Result<T, bollard::errors::Error>>,
    {
        let host = self.host(&c.host).map_err(|e| (e, false))?;
        // Stops and starts are bounded by the engine's slots per host
        // (`api_calls_per_host`) and hold a connection of their own while
        // they last; the other calls share the host's pool.
        let _permit = if matches!(op, "stop" | "start") {
            None
        } else {
            Some(host.calls.acquire().await.expect("semaphore never closed"))
        };
        if fenced && !self.fence.holds() {
            return Err((
                RuntimeError::Fenced {
                    host: c.host.clone(),
                    container: c.name.clone(),
                    op,
                },
                false,
            ));
        }
        tracing::debug!(container = %c.name, host = %c.host, op, "call");
        match tokio::time::timeout(limit, f(host.docker.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // A write the connection refused (the fence) is final.
                let again = transient(&e) && !fenced::is_fenced(&e);
                Err((classify(c, op, e), again))
            }
            Err(_) => Err((
                RuntimeError::Timeout {
                    host: c.host.clone(),
                    container: c.name.clone(),
                    op,
                    secs: limit.as_secs_f64(),
                },
                true,
            )),
        }
    }

    async fn inspect_full(&self, c: &Container) -> Result<ContainerInspectResponse, RuntimeError> {
        self.call(c, "inspect", self.timeouts.api, true, |d| {
            let id = c.id.clone();
            async move { d.inspect_container(&id, None).await }
        })
        .await
    }

    /// Asks `fence` before each stop is sent, and again as the stop's
    /// bytes are written (the daemon's HA mode). A runtime is fenced once.
    pub fn set_fence(&self, fence: Arc<dyn super::Fence>) {
        if !self.fence.set(fence) {
            tracing::warn!("this runtime already has a fence; the first one stays");
        }
    }
}

impl ContainerRuntime for DockerRuntime {
    async fn inspect(&self, c: &Container) -> Result<ContainerStatus, RuntimeError> {
        let inspected = self.inspect_full(c).await?;
        // Whether its image has a HEALTHCHECK, for a start confirmed by
        // the events stream (the engine inspects before each restart).
        self.healthcheck
            .lock()
            .unwrap()
            .insert(c.id.clone(), has_healthcheck(&inspected));
        Ok(status_of(&inspected))
    }

    async fn stop(&self, c: &Container) -> Result<(), RuntimeError> {
        let t = self.timeouts.stop.as_secs().min(i32::MAX as u64) as i32;
        // Idempotent: stopping a stopped container answers 304.
        self.call_fenced(c, "stop", self.timeouts.restart, true, true, |d| {
            let id = c.id.clone();
            async move {
                d.stop_container(
                    &id,
                    Some(StopContainerOptions {
                        t: Some(t),
                        signal: None,
                    }),
                )
                .await
            }
        })
        .await
    }

    async fn start(&self, c: &Container, started_before: &str) -> Result<(), RuntimeError> {
        // A start that failed may have acted all the same (a 500 after the
        // engine started it, an answer lost): look before asking again, so
        // one call never becomes two starts (304 alone does not protect a
        // process that started and died at once).
        let start = |d: Docker| {
            let id = c.id.clone();
            async move { d.start_container(&id, None::<StartContainerOptions>).await }
        };
        let gen = self.hosts.get(&c.host).map_or(0, |h| {
            let gen = h.heard.gen.load(std::sync::atomic::Ordering::Acquire);
            if gen != 0 {
                // A fresh waiter: no wake-up from an earlier process.
                h.heard
                    .waiters
                    .lock()
                    .unwrap()
                    .insert(c.id.clone(), Arc::new(tokio::sync::Notify::new()));
            }
            gen
        });
        // A start is not sent twice for one failure that may have acted:
        // before another attempt, an inspect shows whether it did.
        retry(&CALL_BACKOFF, Some(&self.jitter), |attempt| {
            let start = &start;
            async move {
                if attempt > 1 {
                    match self.inspect(c).await {
                        Ok(now)
                            if now.started_at != started_before && !now.started_at.is_empty() =>
                        {
                            return Ok(())
                        }
                        Ok(_) => {}
                        Err(e) => return Err(Failed::Final(e)),
                    }
                }
                self.call_once(c, "start", self.timeouts.restart, false, start)
                    .await
                    .map_err(|(e, again)| Failed::new(e, again))
            }
        })
        .await?;
        // The call returned; confirm the process really started anew: the
        // host's stream says so, or else an inspect.
        let has_health = self.healthcheck.lock().unwrap().get(&c.id).copied();
        if let (true, Some(before_ns), Some(has_health)) =
            (gen != 0, rfc3339_ns(started_before), has_health)
        {
            if let Some(ns) = self.heard_start(c, gen, before_ns).await {
                self.record_started(c, gen, Some(ns), has_health);
                return Ok(());
            }
        }
        let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let inspected = self.inspect_full(c).await?;
            let now = status_of(&inspected);
            if now.started_at != started_before && !now.started_at.is_empty() {
                self.note_started(c, gen, &inspected);
                return Ok(());
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(RuntimeError::Api {
                    host: c.host.clone(),
                    container: c.name.clone(),
                    op: "start",
                    reason: format!("the engine answered, but the container's start time did not move from {started_before:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exec(&self, c: &Container, cmd: &[String]) -> Result<i64, RuntimeError> {
        let config = ExecConfig {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            ..Default::default()
        };
        let exec = self
            .call(c, "exec", self.timeouts.api, false, |d| {
                let (id, config) = (c.id.clone(), config.clone());
                async move { d.create_exec(&id, config).await }
            })
            .await?;
        self.call(c, "exec", self.timeouts.api, false, |d| {
            let id = exec.id.clone();
            async move {
                d.start_exec(
                    &id,
                    Some(bollard::exec::StartExecOptions {
                        detach: true,
                        ..Default::default()
                    }),
                )
                .await
                .map(|_| ())
            }
        })
        .await?;
        let give_up = tokio::time::Instant::now() + self.timeouts.api;
        loop {
            let r = self
                .call(c, "exec", self.timeouts.api, true, |d| {
                    let id = exec.id.clone();
                    async move { d.inspect_exec(&id).await }
                })
                .await?;
            if r.running != Some(true) {
                if let Some(code) = r.exit_code {
                    return Ok(code);
                }
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(RuntimeError::Timeout {
                    host: c.host.clone(),
                    container: c.name.clone(),
                    op: "exec",
                    secs: self.timeouts.api.as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn health(&self, c: &Container) -> Result<Health, RuntimeError> {
        if let Some(h) = self.heard_health(c) {
            return Ok(h);
        }
        let inspected = self.inspect_full(c).await?;
        if let Some(st) = self.started.lock().unwrap().get_mut(&c.id) {
            st.checked = tokio::time::Instant::now();
        }
        Ok(docker_health(&inspected))
    }

    async fn changed(&self, c: &Container, interval: Duration, longest: Duration) {
        // Only while the stream has missed nothing of this process: else
        // probe every interval.
        let waiter = self.hosts.get(&c.host).and_then(|h| {
            let live = self
                .started
                .lock()
                .unwrap()
                .get(&c.id)
                .is_some_and(|st| h.heard.unbroken_since(st.gen));
            live.then(|| h.heard.waiters.lock().unwrap().get(&c.id).cloned())
                .flatten()
        });
        match waiter {
            Some(w) => {
                let _ = tokio::time::timeout(longest, w.notified()).await;
            }
            None => tokio::time::sleep(interval).await,
        }
    }
}
