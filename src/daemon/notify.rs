//! Webhooks: the daemon tells chat or paging (Slack-compatible JSON, a
//! `text` line plus a `rekindle` object with the details) when a run
//! starts, when a wave halts and when a run finishes. Each hook has a
//! bounded queue drained in order by a task of its own: a slow, failing or
//! full hook is logged and its notes dropped, never waited for by a run.

use crate::http::{self, Url};
use crate::retry::{Backoff, Failed};
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
/// Three attempts, 0.5 s then 1 s apart.
const DELIVERY: Backoff = Backoff {
    attempts: 3,
    first: Duration::from_millis(500),
};

/// A `[[webhooks]]` entry that cannot be used, by its place and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhooks[{index}].{field}: {reason}")]
pub struct WebhookError {
    /// Its place in the list, from 0.
    pub index: usize,
    /// The field (`url`, `events`, `timeout`).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}
const QUEUE: usize = 256;

impl Notifier {
    /// Checks every hook; their delivery tasks start on the current runtime.
    pub fn start(configs: &[WebhookConfig]) -> Result<Notifier, WebhookError> {
        let mut hooks = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let bad = |field: &'static str, reason: String| WebhookError {
                index: i,
                field,
                reason,
            };
            let url = Url::parse(&c.url).map_err(|e| bad("url", e.to_string()))?;
            if matches!(url.target, http::Target::Unix(_)) {
                return Err(bad("url", "expected http:// or https://".into()));
            }
            let events = c
                .events
                .clone()
                .unwrap_or_else(|| KINDS.iter().map(|s| s.to_string()).collect());
            if let Some(unknown) = events.iter().find(|e| !KINDS.contains(&e.as_str())) {
                return Err(bad(
                    "events",
                    format!("unknown {unknown:?}, expected some of {KINDS:?}"),
                ));
            }
            let timeout = match &c.timeout {
                Some(t) => {
                    crate::duration::parse_duration(t).map_err(|e| bad("timeout", e.to_string()))?
                }
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
                tracing::warn!(url = %hook.url.shown(), kind = note.kind, error = %e, "webhook queue full: note dropped");
            }
        }
    }
}

async fn deliver(hook: &Hook, note: &Note) {
    let body = serde_json::json!({ "text": note.text, "rekindle": note.details });
    let delivered = crate::retry::retry(&DELIVERY, None, |_| async {
        let req = http::Request::new("POST", "")
            .json(&body)
            .header("user-agent", "rekindle");
        match http::send(&hook.url, req, hook.timeout).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            Ok(r) => Err(Failed::Retry(format!(
                "answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))),
            Err(e) => Err(Failed::Retry(e.to_string())),
        }
    })
    .await;
    let Err(last) = delivered else {
        tracing::debug!(url = %hook.url.shown(), kind = note.kind, "webhook delivered");
        return;
    };
    tracing::warn!(url = %hook.url.shown(), kind = note.kind, error = %last, "webhook not delivered after {} attempts", DELIVERY.attempts);
}
