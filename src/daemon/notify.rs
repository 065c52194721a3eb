//! Webhooks: the daemon tells chat or paging (Slack-compatible JSON, a
//! `text` line plus a `rekindle` object with the details) when a run
//! starts, when a wave halts and when a run finishes. Each hook has a
//! bounded queue drained in order by a task of its own: a slow, failing or
//! full hook is logged and its notes dropped, never waited for by a run.

use crate::http::{self, Url};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `[[webhooks]]` in the daemon's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where notes go: `http://` or `https://`.
    pub url: String,
    /// Which notes to send (default: all of run_started, wave_halted, run_finished).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Per delivery attempt, e.g. "5s" (the default).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Every kind of note.
pub const KINDS: [&str; 3] = ["run_started", "wave_halted", "run_finished"];

struct Hook {
    url: Url,
    events: Vec<String>,
    timeout: Duration,
}

/// A note to deliver.
#[derive(Debug, Clone)]
pub struct Note {
    /// Its kind, one of [`KINDS`].
    pub kind: &'static str,
    /// The one line a chat shows.
    pub text: String,
    /// The details, sent as the `rekindle` object.
    pub details: serde_json::Value,
}

/// Delivers notes to every webhook that wants them, each hook on its own queue.
#[derive(Clone, Default)]
pub struct Notifier {
    /// Each hook's queue, drained in order by a task of its own: a hanging
    /// hook holds up only its own notes.
    hooks: Vec<(Arc<Hook>, tokio::sync::mpsc::Sender<Note>)>,
}

/// Attempts per delivery, and notes waiting per hook.
const ATTEMPTS: u32 = 3;
const QUEUE: usize = 256;

impl Notifier {
    /// Checks every hook; their delivery tasks start on the current runtime.
    pub fn start(configs: &[WebhookConfig]) -> Result<Notifier, String> {
        let mut hooks = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let url = Url::parse(&c.url).map_err(|e| format!("webhooks[{i}].url: {e}"))?;
            if matches!(url.target, http::Target::Unix(_)) {
                return Err(format!("webhooks[{i}].url: expected http:// or https://"));
            }
            let events = c
                .events
                .clone()
                .unwrap_or_else(|| KINDS.iter().map(|s| s.to_string()).collect());
            if let Some(bad) = events.iter().find(|e| !KINDS.contains(&e.as_str())) {
                return Err(format!(
                    "webhooks[{i}].events: unknown {bad:?}, expected some of {KINDS:?}"
                ));
            }
            let timeout = match &c.timeout {
                Some(t) => crate::duration::parse_duration(t)
                    .map_err(|e| format!("webhooks[{i}].timeout: {e}"))?,
                None => Duration::from_secs(5),
            };
            hooks.push(Arc::new(Hook {
                url,
                events,
                timeout,
            }));
        }
        let hooks = hooks
            .into_iter()
            .map(|hook| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Note>(QUEUE);
                let h = hook.clone();
                tokio::spawn(async move {
                    while let Some(note) = rx.recv().await {
                        deliver(&h, &note).await;
                    }
                });
                (hook, tx)
            })
            .collect();
        Ok(Notifier { hooks })
    }

    /// Queues a note for every hook that wants it; never waits.
    pub fn send(&self, note: Note) {
        for (hook, tx) in self
            .hooks
            .iter()
            .filter(|(h, _)| h.events.iter().any(|e| e == note.kind))
        {
            if let Err(e) = tx.try_send(note.clone()) {
                tracing::warn!(url = %hook.url.text, kind = note.kind, error = %e, "webhook queue full: note dropped");
            }
        }
    }
}

async fn deliver(hook: &Hook, note: &Note) {
    let body = serde_json::json!({ "text": note.text, "rekindle": note.details });
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let req = http::Request::new("POST", "")
            .json(&body)
            .header("user-agent", "rekindle");
        match http::send(&hook.url, req, hook.timeout).await {
            Ok(r) if (200..300).contains(&r.status) => {
                tracing::debug!(url = %hook.url.text, kind = note.kind, "webhook delivered");
                return;
            }
            Ok(r) => {
                last = format!(
                    "answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )
            }
            Err(e) => last = e.to_string(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
        }
    }
    tracing::warn!(url = %hook.url.text, kind = note.kind, error = %last, "webhook not delivered after {ATTEMPTS} attempts");
}
