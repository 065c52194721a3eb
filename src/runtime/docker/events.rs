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
