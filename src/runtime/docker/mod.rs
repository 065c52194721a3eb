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
//! pool), [`events`] (each host's events stream and what it said), and
//! here the runtime itself over them.

mod connection;
pub mod discover;
mod events;
pub mod fenced;

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

/// The playbook's Docker hosts, connected once for a whole run: discovery
/// and the runtime share each host's client (one version handshake per
/// host), and one resolver (one cache) serves host names, TCP probes and
/// the DNS budget's probe.
pub struct DockerHosts {
    specs: Vec<HostSpec>,
    clients: Vec<Result<Docker, HostError>>,
    resolver: Option<CachedResolver>,
    /// The run's fence, asked by every host's connections.
    fence: FenceSlot,
}

impl DockerHosts {
    /// Connects to every host of the playbook at once, the handshake bounded
    /// by the discovery timeout; a host that does not answer keeps its
    /// reason.
    pub async fn connect(pb: &Playbook) -> DockerHosts {
        let specs = hosts_of(pb);
        let timeouts = CallTimeouts::of(pb);
        let handshake = pb.discovery.timeout;
        let resolver = resolver_for(pb, true);
        let fence = FenceSlot::default();
        let clients = futures_util::future::join_all(specs.iter().map(|s| {
            connect_negotiated(
                s,
                handshake,
                timeouts.restart,
                resolver.as_ref(),
                pb.limits.connections_per_host as usize,
                &fence,
            )
        }))
        .await;
        DockerHosts {
            specs,
            clients,
            resolver,
            fence,
        }
    }

    /// Each host with its client, or why it has none.
    pub fn iter(&self) -> impl Iterator<Item = (&HostSpec, Result<&Docker, &HostError>)> {
        self.specs
            .iter()
            .zip(&self.clients)
            .map(|(s, c)| (s, c.as_ref()))
    }

    /// The run's resolver, if one could be built.
    pub fn resolver(&self) -> Option<&CachedResolver> {
        self.resolver.as_ref()
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

    /// Keeps what a confirmed start saw of the new process, for
    /// [`Self::heard_health`]; `gen`: the host stream's generation when the
    /// start was sent.
    fn note_started(&self, c: &Container, gen: u64, inspected: &ContainerInspectResponse) {
        let ns = inspected
            .state
            .as_ref()
            .and_then(|s| s.started_at.as_deref())
            .and_then(rfc3339_ns);
        self.record_started(c, gen, ns, has_healthcheck(inspected));
    }

    /// Keeps a confirmed start's new process (`ns`: when it started, host
    /// clock) for the Docker gate; none: the gate inspects.
    fn record_started(&self, c: &Container, gen: u64, ns: Option<u64>, has_health: bool) {
        let heard = ns.filter(|_| gen != 0);
        if let Some(host) = self.hosts.get(&c.host) {
            let mut waiters = host.heard.waiters.lock().unwrap();
            if heard.is_some() {
                // Kept if the start made it: a wake-up may be in it already.
                waiters
                    .entry(c.id.clone())
                    .or_insert_with(|| Arc::new(tokio::sync::Notify::new()));
            } else {
                waiters.remove(&c.id);
            }
        }
        let mut started = self.started.lock().unwrap();
        match heard {
            Some(ns) => {
                started.insert(
                    c.id.clone(),
                    Started {
                        gen,
                        ns,
                        has_health,
                        checked: tokio::time::Instant::now(),
                    },
                );
            }
            None => {
                started.remove(&c.id);
            }
        }
    }

    /// The new process's start as the host's stream reported it, without an
    /// inspect: a `start` event for `c` more than a second after the old
    /// process started (`before_ns`; the old process's own event comes
    /// within milliseconds of it), heard while the stream stayed the one
    /// of generation `gen`. Waits up to a second for it; `None`: inspect.
    async fn heard_start(&self, c: &Container, gen: u64, before_ns: u64) -> Option<u64> {
        let host = self.hosts.get(&c.host)?;
        let waiter = host.heard.waiters.lock().unwrap().get(&c.id).cloned()?;
        let give_up = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            if !host.heard.unbroken_since(gen) {
                return None;
            }
            let start_ns = host.heard.said_of(&c.id).start_ns;
            if start_ns > before_ns.saturating_add(1_000_000_000) {
                return Some(start_ns);
            }
            if tokio::time::timeout_at(give_up, waiter.notified())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// The Docker gate's answer from the host's events stream, without a
    /// call: when the stream has been live, unbroken, since the container's
    /// start was sent, it reports the health its HEALTHCHECK last reported
    /// for the new process (`Starting` until it does), or running for an
    /// image without one. `None` (inspect instead): no such stream, the
    /// process died since, or [`HEARD_RECHECK`] passed since the last
    /// inspect.
    fn heard_health(&self, c: &Container) -> Option<Health> {
        let host = self.hosts.get(&c.host)?;
        let mut started = self.started.lock().unwrap();
        let st = started.get_mut(&c.id)?;
        if !host.heard.unbroken_since(st.gen) {
            return None;
        }
        let now = tokio::time::Instant::now();
        if now.duration_since(st.checked) >= HEARD_RECHECK {
            return None;
        }
        let said = host.heard.said_of(&c.id);
        if said.died_ns >= st.ns {
            return None;
        }
        let h = match said.health {
            Some(h) if said.health_ns >= st.ns => h,
            _ if !st.has_health => Health::Healthy,
            _ => Health::Starting,
        };
        if h != Health::Starting {
            // Decided: nobody waits for this process any more.
            host.heard.waiters.lock().unwrap().remove(&c.id);
        }
        Some(h)
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

/// rekindle's resolver, built when a host is named by DNS name or `probes`
/// needs one. Without a usable resolver, host names go to the system's and
/// TCP probes by DNS name fail (saying why); probes by container IP work.
fn resolver_for(pb: &Playbook, probes: bool) -> Option<CachedResolver> {
    let named = hosts_of(pb).iter().any(|h| {
        let rest = h
            .url
            .strip_prefix("tcp://")
            .or_else(|| h.url.strip_prefix("http://"));
        rest.is_some_and(|r| {
            r.rsplit_once(':')
                .map(|x| x.0)
                .unwrap_or(r)
                .parse::<IpAddr>()
                .is_err()
        })
    });
    if !named && !probes {
        return None;
    }
    match CachedResolver::new(&pb.resolver) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "no resolver of rekindle's own: host names go to the system's, TCP probes by DNS name fail");
            None
        }
    }
}

/// Maps a bollard error to ours, naming the container.
/// Whether a failed call may succeed when made again: the server's own
/// error (5xx), a timeout, or a connection lost or refused. A 4xx (no such
/// container, a bad request) will not.
pub fn transient(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        E::RequestTimeoutError
        | E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::HyperLegacyError { .. } => true,
        _ => false,
    }
}

fn classify(c: &Container, op: &'static str, e: bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error as E;
    if fenced::is_fenced(&e) {
        return RuntimeError::Fenced {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
        };
    }
    match e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => RuntimeError::NotFound {
            host: c.host.clone(),
            container: c.name.clone(),
        },
        E::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            reason: format!("{status_code}: {message}"),
        },
        E::RequestTimeoutError => RuntimeError::Timeout {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            secs: 0.0,
        },
        E::IOError { .. } | E::HyperResponseError { .. } | E::HyperLegacyError { .. } => {
            RuntimeError::Unreachable {
                host: c.host.clone(),
                reason: format!("{op} {}: {}", c.name, with_causes(&e)),
            }
        }
        other => RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            reason: other.to_string(),
        },
    }
}

fn status_of(r: &ContainerInspectResponse) -> ContainerStatus {
    let st = r.state.as_ref();
    let state = match st {
        Some(s) if s.restarting == Some(true) => ContainerState::Restarting,
        Some(s) => s
            .status
            .map(|x| ContainerState::parse(x.as_ref()))
            .unwrap_or_default(),
        None => ContainerState::default(),
    };
    ContainerStatus {
        state,
        started_at: st.and_then(|s| s.started_at.clone()).unwrap_or_default(),
        address: container_ip(r).and_then(|ip| ip.parse().ok()),
    }
}

fn container_ip(r: &ContainerInspectResponse) -> Option<String> {
    let nets = r.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = nets.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| nets[n].ip_address.clone())
        .find(|ip| !ip.is_empty())
}

/// An RFC 3339 time as Docker writes it (`2026-11-30T21:10:43.123456789Z`,
/// or with an offset) in nanoseconds since the Unix epoch; `None` before
/// the epoch (a container never started: `0001-01-01T00:00:00Z`) or when
/// it cannot be read.
pub fn rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let kept = &digits[..digits.len().min(9)];
        frac_ns = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    if secs < 0 {
        return None;
    }
    Some(secs as u64 * 1_000_000_000 + frac_ns as u64)
}

/// Whether the container's image defines a HEALTHCHECK (its config's
/// test, or a health state Docker keeps).
fn has_healthcheck(r: &ContainerInspectResponse) -> bool {
    let configured = r
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|t| t != "NONE");
    let reported = r
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .is_some_and(|s| !matches!(s, HealthStatusEnum::NONE | HealthStatusEnum::EMPTY));
    configured || reported
}

/// Health as Docker reports it: the container's HEALTHCHECK status, or
/// "running" when the image defines none.
fn docker_health(r: &ContainerInspectResponse) -> Health {
    let Some(st) = r.state.as_ref() else {
        return Health::Starting;
    };
    if st.restarting == Some(true) {
        return Health::Starting;
    }
    if st.running != Some(true) {
        return Health::Down;
    }
    match st.health.as_ref().and_then(|h| h.status) {
        None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) => Health::Healthy,
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
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

/// A container as a list call reports it, or `None` without an id.
pub fn summary_to_container(
    spec: &HostSpec,
    s: bollard::models::ContainerSummary,
) -> Option<Container> {
    let id = s.id.clone()?;
    let name = s
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let labels: Labels = s.labels.unwrap_or_default().into_iter().collect();
    let dns_name = labels.get("rekindle.dns_name").map(str::to_string);
    let mut ports: Vec<u16> = s
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| p.private_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    Some(Container {
        id,
        name,
        host: spec.name.clone(),
        labels,
        dns_name,
        ports,
        state: s
            .state
            .map(|st| ContainerState::parse(st.as_ref()))
            .unwrap_or_default(),
        primary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ns;

    #[test]
    fn reads_docker_times() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ns("2026-11-30T21:10:43.123456789Z"),
            Some(1_796_073_043_123_456_789)
        );
        // An offset, fewer digits, a leap day.
        assert_eq!(
            rfc3339_ns("2000-02-29T01:02:03.5+02:00"),
            Some(951_778_923_500_000_000)
        );
        // More than nanoseconds: the rest is dropped.
        assert_eq!(
            rfc3339_ns("1970-01-01T00:00:01.0000000019Z"),
            Some(1_000_000_001)
        );
        // Never started, or not a time.
        assert_eq!(rfc3339_ns("0001-01-01T00:00:00Z"), None);
        for bad in [
            "",
            "2026-11-30",
            "2026-13-01T00:00:00Z",
            "2026-11-30T21:10:43.Z",
            "2026-11-30T21:10:43",
            "2026-11-30T21:10:43+0200",
            "2026-11-30T2x:10:43Z",
            "２026-11-30T21:10:43Z",
        ] {
            assert_eq!(rfc3339_ns(bad), None, "{bad:?}");
        }
    }
}
