//! What each host's events stream says: container starts, deaths and
//! health, followed into [`Heard`] (reconnecting with backoff when the
//! stream breaks), so that a start is confirmed and a Docker health gate
//! answered without an inspect per container per interval.

use super::*;

/// What one host's events stream said about its containers, so that a
/// Docker health gate reads it instead of inspecting each container every
/// interval (at 100,000 containers those inspects were most of the calls).
#[derive(Default)]
pub(super) struct Heard {
    /// The stream's generation: 0 while it is down or has said nothing yet
    /// since it (re)connected, a new number each time it comes back (the
    /// events in between are lost).
    pub(super) gen: std::sync::atomic::AtomicU64,
    /// The last generation handed out.
    pub(super) last_gen: std::sync::atomic::AtomicU64,
    /// Per container id.
    pub(super) said: Mutex<HashMap<String, Said>>,
    /// Health gates waiting to hear of their container, by id: woken by
    /// its next health or death event (a wake-up with no one waiting is
    /// kept for the next wait).
    pub(super) waiters: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl Heard {
    /// What the stream last said of container `id` (nothing: all zero).
    pub(super) fn said_of(&self, id: &str) -> Said {
        self.said
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or_default()
    }

    /// Whether the stream has missed nothing since generation `gen` (a
    /// start sent while it was `gen`): it is up and still the same.
    pub(super) fn unbroken_since(&self, gen: u64) -> bool {
        let now = self.gen.load(std::sync::atomic::Ordering::Acquire);
        now != 0 && now == gen
    }
}

/// The last health and death a stream reported for one container, with
/// their event times (the host's clock, nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Said {
    pub(super) start_ns: u64,
    pub(super) health_ns: u64,
    pub(super) health: Option<Health>,
    pub(super) died_ns: u64,
}

/// A restarted container's new process, as its start confirmed it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Started {
    /// The host stream's generation when the start was sent: the stream
    /// has missed nothing of this process while it is still the same.
    pub(super) gen: u64,
    /// `State.StartedAt` of the new process (host clock, ns).
    pub(super) ns: u64,
    /// Whether the image defines a HEALTHCHECK.
    pub(super) has_health: bool,
    /// When the container was last inspected.
    pub(super) checked: tokio::time::Instant,
}

/// How often a Docker gate inspects a container all the same while the
/// events stream is live: a stream can stall without breaking.
pub(super) const HEARD_RECHECK: Duration = Duration::from_secs(10);

/// What one event of a host's stream says.
#[derive(Debug, Clone, Copy)]
pub(super) enum EventKind {
    /// The container's process started.
    Start,
    /// The container's process ended.
    Die,
    /// Its HEALTHCHECK reported a new status.
    Health(Health),
}

/// Follows one host's container events (start, die, health) into what
/// the runtime has heard ([`Heard`]); reconnects with backoff when the
/// stream breaks.
pub(super) async fn watch_events(
    docker: Docker,
    spec: HostSpec,
    selector: Vec<(String, String)>,
    heard: Arc<Heard>,
) {
    use std::sync::atomic::Ordering;
    let mut labels = host_label_filters(&spec);
    labels.extend(selector.iter().map(|(k, v)| format!("{k}={v}")));
    let mut filters: HashMap<String, Vec<String>> = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            vec!["start".into(), "die".into(), "health_status".into()],
        ),
    ]);
    if !labels.is_empty() {
        filters.insert("label".to_string(), labels);
    }
    let mut delay = Duration::from_millis(200);
    loop {
        let mut stream = docker.events(Some(EventsOptionsBuilder::new().filters(&filters).build()));
        let mut live = false;
        while let Some(item) = stream.next().await {
            let Ok(msg) = item else { break };
            delay = Duration::from_millis(200);
            if !live {
                // Live from its first event on: nothing since it was
                // subscribed has been missed.
                live = true;
                let g = heard.last_gen.fetch_add(1, Ordering::AcqRel) + 1;
                heard.gen.store(g, Ordering::Release);
            }
            let (Some(action), Some(id)) = (
                msg.action.as_deref(),
                msg.actor.as_ref().and_then(|a| a.id.clone()),
            ) else {
                continue;
            };
            let kind = match action {
                "start" => EventKind::Start,
                "die" => EventKind::Die,
                a if a.starts_with("health_status") => match a.rsplit(' ').next() {
                    Some("healthy") => EventKind::Health(Health::Healthy),
                    Some("unhealthy") => EventKind::Health(Health::Unhealthy),
                    _ => EventKind::Health(Health::Starting),
                },
                _ => continue,
            };
            let ns = msg
                .time_nano
                .map(|n| n.max(0) as u64)
                .or(msg.time.map(|t| t.max(0) as u64 * 1_000_000_000));
            if let Some(ns) = ns {
                let mut said = heard.said.lock().unwrap();
                let entry = said.entry(id.clone()).or_default();
                match kind {
                    EventKind::Start => entry.start_ns = entry.start_ns.max(ns),
                    EventKind::Die => entry.died_ns = entry.died_ns.max(ns),
                    EventKind::Health(h) if ns >= entry.health_ns => {
                        entry.health_ns = ns;
                        entry.health = Some(h);
                    }
                    _ => {}
                }
                drop(said);
                if let Some(w) = heard.waiters.lock().unwrap().get(&id) {
                    w.notify_one();
                }
            }
        }
        heard.gen.store(0, Ordering::Release);
        tracing::debug!(host = %spec.name, "event stream ended; reconnecting");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// What the runtime keeps of a confirmed start and reads back from the
/// host's events stream, so that a start is confirmed and a Docker gate
/// answered without an inspect.
impl DockerRuntime {
    /// Keeps what a confirmed start saw of the new process, for
    /// [`Self::heard_health`]; `gen`: the host stream's generation when the
    /// start was sent.
    pub(super) fn note_started(
        &self,
        c: &Container,
        gen: u64,
        inspected: &ContainerInspectResponse,
    ) {
        let ns = inspected
            .state
            .as_ref()
            .and_then(|s| s.started_at.as_deref())
            .and_then(rfc3339_ns);
        self.record_started(c, gen, ns, has_healthcheck(inspected));
    }

    /// Keeps a confirmed start's new process (`ns`: when it started, host
    /// clock) for the Docker gate; none: the gate inspects.
    pub(super) fn record_started(
        &self,
        c: &Container,
        gen: u64,
        ns: Option<u64>,
        has_health: bool,
    ) {
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
    pub(super) async fn heard_start(&self, c: &Container, gen: u64, before_ns: u64) -> Option<u64> {
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
    pub(super) fn heard_health(&self, c: &Container) -> Option<Health> {
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
}
