//! `rekindle runs …`: the daemon's client. Starts, lists, watches, pauses,
//! resumes, aborts and retunes runs over the HTTP API (`--server`,
//! `http://` or `unix:`; the token from `$REKINDLE_TOKEN`). `watch` draws
//! the same progress as `rekindle run` from the run's event stream, and
//! exits like `run` does (0, 3 halted, 4 aborted, 1 failed). No run logic
//! here: the daemon owns the runs.

use super::{progress, Aborted, Halted, Output, Usage};
use crate::daemon::{Retune, StartRequest};
use crate::engine::Event;
use crate::http::{self, Request, SseParser, Url};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// The daemon: https://HOST:PORT, http://HOST:PORT (loopback only with
    /// a token) or unix:/path/to.sock (default: $REKINDLE_SERVER, else
    /// http://127.0.0.1:7878).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The env var holding the bearer token (tokens stay off command lines).
    #[arg(
        long,
        global = true,
        default_value = "REKINDLE_TOKEN",
        value_name = "VAR"
    )]
    pub token_env: String,
    /// Verify an https:// daemon against the CA certificates in FILE (PEM)
    /// instead of the system's roots.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Start a run of a playbook the daemon serves.
    Start {
        /// The playbook's name in the daemon's config (GET /v1/playbooks).
        playbook: String,
        /// run = restart the real fleet; rehearse = simulate it; plan = plan
        /// only; survey = ask every container its gate, restart nothing.
        #[arg(long, value_parser = ["run", "rehearse", "plan", "survey"])]
        mode: String,
        /// The scenario (rehearse and plan; survey: instead of the Docker hosts).
        #[arg(long)]
        scenario: Option<String>,
        /// `broken`: restart only what a survey finds broken (run, rehearse, plan).
        #[arg(long, value_name = "all|broken")]
        only: Option<crate::config::Only>,
        /// Why (it goes to the audit log and the notes).
        #[arg(long)]
        reason: String,
        /// Continue the playbook's unfinished run (mode run).
        #[arg(long)]
        resume: bool,
        /// Rehearse at this many times real time, for people watching it
        /// (the live page); default: as fast as the machine goes.
        #[arg(long)]
        speed: Option<f64>,
        /// Then follow it like `watch`.
        #[arg(long)]
        watch: bool,
    },
    /// One run, or every run the daemon knows.
    Status { id: Option<String> },
    /// Follow a run to its end with progress bars.
    Watch { id: String },
    /// Stop starting restarts (those in flight finish and are watched).
    Pause {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Go on after a pause.
    Resume {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// End the run: restarts in flight finish, nothing new starts.
    Abort {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// An ended run's timeline (the daemon's GET /v1/runs/{id}/report): one
    /// HTML page, or its figures as JSON or Markdown.
    Report {
        id: String,
        #[arg(long, value_parser = ["html", "json", "md"], default_value = "html")]
        format: String,
        /// Write it to FILE instead of stdout.
        #[arg(long = "out", value_name = "FILE")]
        out_file: Option<std::path::PathBuf>,
    },
    /// Change a running run's pace.
    Tune {
        id: String,
        /// New DNS budget ceiling (lookups per second).
        #[arg(long, value_name = "QPS")]
        dns_budget: Option<f64>,
        /// New restart rate (restarts per second).
        #[arg(long, value_name = "PER_S")]
        restart_rate: Option<f64>,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// The daemon refused (its message); 4xx are the caller's to fix.
#[derive(Debug, thiserror::Error)]
#[error("the daemon answered {status}: {message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

struct Client {
    url: Url,
    token: Option<String>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    fn request<'a>(&self, method: &'a str, path: &'a str) -> Request<'a> {
        let req = Request::new(method, path).header("accept", "application/json");
        match &self.token {
            Some(t) => req.header("authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        Ok(self
            .send(method, path, body)
            .await?
            .json()
            .unwrap_or(Value::Null))
    }

    /// A 2xx answer, whole; anything else is the daemon's refusal.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<http::Response> {
        let mut req = self.request(method, path);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = http::send(&self.url, req, CALL_TIMEOUT).await?;
        if !(200..300).contains(&resp.status) {
            let v = resp.json().unwrap_or(Value::Null);
            let message = v["error"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
            let refused = Refused {
                status: resp.status,
                message,
            };
            return Err(if resp.status < 500 {
                anyhow::Error::new(Usage(refused.to_string()))
            } else {
                refused.into()
            });
        }
        Ok(resp)
    }
}

pub async fn runs(args: RunsArgs) -> anyhow::Result<()> {
    let server = args
        .server
        .clone()
        .or_else(|| {
            std::env::var("REKINDLE_SERVER")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "http://127.0.0.1:7878".into());
    let mut url = Url::parse(&server).map_err(|e| Usage(format!("--server: {e}")))?;
    if let Some(ca) = &args.ca {
        url = url.trusting(ca).map_err(|e| Usage(format!("--ca: {e}")))?;
    }
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    if token.is_some() && url.in_clear() {
        return Err(Usage(format!(
            "refusing to send ${} to {} over plain http: it would cross the network in clear; use https:// (the daemon's tls_cert), a unix: socket, or a loopback address",
            args.token_env,
            url.shown()
        ))
        .into());
    }
    let c = Client { url, token };
    let out = args.output;
    match args.command {
        RunsCommand::Start {
            playbook,
            mode,
            scenario,
            reason,
            resume,
            watch,
            only,
            speed,
        } => {
            let body = StartRequest {
                playbook,
                mode: serde_json::from_value(json!(mode))?,
                scenario,
                reason,
                resume,
                only,
                speed,
            };
            let v = c.call("POST", "/v1/runs", Some(json!(body))).await?;
            let id = v["id"].as_str().unwrap_or_default().to_string();
            if watch {
                progress::println(&format!("started run {id}"));
                return follow(&c, &id, out).await;
            }
            print(out, &v, || format!("started run {id}\n"))
        }
        RunsCommand::Status { id: None } => {
            let v = c.call("GET", "/v1/runs", None).await?;
            print(out, &v, || runs_table(&v))
        }
        RunsCommand::Status { id: Some(id) } => {
            let v = c.call("GET", &format!("/v1/runs/{id}"), None).await?;
            print(out, &v, || run_lines(&v))
        }
        RunsCommand::Watch { id } => follow(&c, &id, out).await,
        RunsCommand::Pause { id, reason } => control(&c, &id, "pause", &reason, out).await,
        RunsCommand::Resume { id, reason } => control(&c, &id, "resume", &reason, out).await,
        RunsCommand::Abort { id, reason } => control(&c, &id, "abort", &reason, out).await,
        RunsCommand::Report {
            id,
            format,
            out_file,
        } => {
            let resp = c
                .send(
                    "GET",
                    &format!("/v1/runs/{id}/report?format={format}"),
                    None,
                )
                .await?;
            match out_file {
                Some(path) => {
                    std::fs::write(&path, &resp.body)
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                    eprintln!("report of run {id} written to {}", path.display());
                }
                None => std::io::Write::write_all(&mut std::io::stdout().lock(), &resp.body)?,
            }
            Ok(())
        }
        RunsCommand::Tune {
            id,
            dns_budget,
            restart_rate,
            reason,
        } => {
            if dns_budget.is_none() && restart_rate.is_none() {
                return Err(Usage("tune: give --dns-budget and/or --restart-rate".into()).into());
            }
            let body = Retune {
                dns_budget_qps: dns_budget,
                restart_rate,
                reason: Some(reason),
            };
            let v = c
                .call("PATCH", &format!("/v1/runs/{id}"), Some(json!(body)))
                .await?;
            print(out, &v, || run_lines(&v))
        }
    }
}

async fn control(
    c: &Client,
    id: &str,
    action: &str,
    reason: &str,
    out: Output,
) -> anyhow::Result<()> {
    let v = c
        .call(
            "POST",
            &format!("/v1/runs/{id}/{action}"),
            Some(json!({ "reason": reason })),
        )
        .await?;
    print(out, &v, || run_lines(&v))
}

fn print(out: Output, v: &Value, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match out {
        Output::Json => writeln!(o, "{v}")?,
        Output::Table => write!(o, "{}", table())?,
    }
    Ok(())
}

fn runs_table(v: &Value) -> String {
    let mut s = format!(
        "{:<6} {:<20} {:<9} {:<12} {:>15}  {}\n",
        "ID", "PLAYBOOK", "MODE", "STATE", "HEALTHY/TOTAL", "REASON"
    );
    for r in v["runs"].as_array().into_iter().flatten() {
        let (healthy, total) = counts(r);
        s += &format!(
            "{:<6} {:<20} {:<9} {:<12} {:>15}  {}\n",
            r["id"].as_str().unwrap_or(""),
            r["playbook"].as_str().unwrap_or(""),
            r["mode"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            format!("{healthy}/{total}"),
            r["reason"].as_str().unwrap_or("")
        );
    }
    s
}

fn counts(r: &Value) -> (String, String) {
    let st = &r["status"];
    let res = &r["result"];
    let pick = |a: &Value, b: &Value| {
        a.as_u64()
            .or(b.as_u64())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into())
    };
    (
        pick(&res["healthy"], &st["healthy"]),
        pick(&res["total"], &st["containers_total"]),
    )
}

fn run_lines(r: &Value) -> String {
    let (healthy, total) = counts(r);
    let mut s = format!(
        "run {} of {} ({}): {}\n  reason   {}\n  healthy  {healthy}/{total}\n",
        r["id"].as_str().unwrap_or("?"),
        r["playbook"].as_str().unwrap_or("?"),
        r["mode"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
        r["reason"].as_str().unwrap_or("")
    );
    if let Some(st) = r.get("status").filter(|s| s.is_object()) {
        s += &format!(
            "  waves    {}/{} passed\n  restarts {}\n",
            st["waves_passed"], st["waves_total"], st["restarts"]
        );
        if let Some(p) = st.get("pace").filter(|p| p.is_object()) {
            let rate = |x: &Value, unit: &str| match x.as_f64() {
                Some(r) if r > 0.0 => format!("{r:.1}{unit}"),
                _ => "unlimited".to_string(),
            };
            s += &format!(
                "  pace     DNS budget {}, restart rate {}\n",
                rate(&p["dns_budget_qps"], " q/s"),
                rate(&p["restart_rate"], "/s")
            );
        }
    }
    for key in ["note", "error"] {
        if let Some(t) = r[key].as_str() {
            s += &format!("  {key:<8} {t}\n");
        }
    }
    if let Some(reason) = r["result"]["reason"].as_str() {
        s += &format!("  why      {reason}\n");
    }
    s
}

/// Follows a run's events to its end, reconnecting (with Last-Event-ID)
/// while a daemon restarts; exits like `rekindle run`.
async fn follow(c: &Client, id: &str, out: Output) -> anyhow::Result<()> {
    let first = c.call("GET", &format!("/v1/runs/{id}"), None).await?;
    let st = &first["status"];
    let real = first["mode"] == "run";
    let mut bars = progress::Progress::new(
        st["containers_total"].as_u64().unwrap_or(0),
        st["waves_total"].as_u64().unwrap_or(0) as usize,
        real,
    );
    let mut last_id: Option<String> = None;
    let mut at = 0.0f64;
    let mut lost_since: Option<std::time::Instant> = None;
    let events_path = format!("/v1/runs/{id}/events");
    let ended = loop {
        let mut req = c.request("GET", &events_path);
        if let Some(l) = &last_id {
            req = req.header("last-event-id", l.clone());
        }
        let mut body = match http::stream(&c.url, req, CALL_TIMEOUT).await {
            Ok(r) if r.status().is_success() => {
                lost_since = None;
                r.into_body()
            }
            Ok(r) => {
                return Err(Refused {
                    status: r.status().as_u16(),
                    message: "event stream refused".into(),
                }
                .into())
            }
            Err(e) => {
                let since = *lost_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(120) {
                    return Err(anyhow::anyhow!("lost the daemon for 2 minutes: {e}"));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut parser = SseParser::default();
        let mut pace = tokio::time::interval(Duration::from_secs(1));
        let mut finished: Option<Value> = None;
        loop {
            tokio::select! {
                frame = body.frame() => {
                    let Some(Ok(frame)) = frame else { break };
                    let Some(data) = frame.data_ref() else { continue };
                    for ev in parser.feed(data) {
                        last_id = ev.id.clone().or(last_id);
                        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else { continue };
                        if let Some(t) = v["at_s"].as_f64() {
                            at = t;
                        }
                        match ev.event.as_str() {
                            "run_ended" => finished = Some(v),
                            "run_resumed" => progress::println("the run resumed from its journal (daemon restarted)"),
                            "daemon_stopping" => progress::println("the daemon is stopping: the run resumes when a daemon starts again"),
                            _ => {
                                if let Ok(e) = serde_json::from_value::<Event>(v) {
                                    bars.on_event(&e, at);
                                }
                            }
                        }
                    }
                    if finished.is_some() { break; }
                }
                _ = pace.tick() => {
                    if let Ok(v) = c.call("GET", &format!("/v1/runs/{id}"), None).await {
                        if let Ok(p) = serde_json::from_value(v["status"]["pace"].clone()) {
                            bars.on_pace(&p);
                        }
                    }
                }
            }
        }
        if let Some(v) = finished {
            break v;
        }
        // The stream ended without the run's end: the daemon went away.
        let now = c.call("GET", &format!("/v1/runs/{id}"), None).await.ok();
        if let Some(v) =
            now.filter(|v| !matches!(v["state"].as_str(), Some("pending" | "running" | "paused")))
        {
            break json!({ "state": v["state"], "result": v["result"], "error": v["error"] });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bars.finish();
    let view = c
        .call("GET", &format!("/v1/runs/{id}"), None)
        .await
        .unwrap_or(ended.clone());
    print(out, &view, || run_lines(&view))?;
    match ended["state"].as_str() {
        Some("succeeded") => Ok(()),
        Some("halted") => {
            Err(Halted(ended["result"]["reason"].as_str().unwrap_or("").to_string()).into())
        }
        Some("aborted") => Err(Aborted.into()),
        other => Err(anyhow::anyhow!(
            "run {id} ended {}: {}",
            other.unwrap_or("?"),
            ended["error"].as_str().unwrap_or("")
        )),
    }
}
