//! The daemon's HTTP surface (axum): routes under `/v1`, bearer tokens with
//! roles (compared in constant time by the daemon: a viewer's for every
//! route but `/healthz` — and `/metrics` when the config says so — an
//! operator's for starting and steering runs), an audit line for every
//! mutating and every refused call ([`guard`]), size-capped JSON bodies,
//! Server-Sent Events of a run, the metrics text, and one [`ApiError`]
//! that is the answer to every refused call. What a call does is the
//! [`crate::daemon`]'s: a handler parses, asks the daemon, and renders.

use crate::daemon::{metrics, Action, Daemon, Refusal, Retune, Role, Run, StartRequest};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub mod page;
pub mod tls;

/// The API's description, kept in the repo (docs/openapi.json).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// A refused call's answer: a status and `{"error": …}` (and `"leader"`
/// when a follower refuses).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": msg.into() }),
        }
    }

    fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, msg)
    }

    fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, msg)
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = match &r {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Unavailable(_) | Refusal::NotLeading { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut e = ApiError::new(status, r.to_string());
        if let Refusal::NotLeading { leader, .. } = r {
            e.body["leader"] = json!(leader);
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The secret of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The caller of a mutating call: an operator's token.
fn authorize(d: &Daemon, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(d.authorize(bearer(headers), Role::Operator)?)
}

/// Every call goes through here: a viewer's token for anything but
/// `/healthz` (and `/metrics` when public), then the handler (which asks
/// an operator's for what it changes), then an audit line for every
/// mutating call and every refused one (401, 403, 409, 413: a wrong
/// token, or a body too large, leaves its trace too).
async fn guard(
    State(d): State<Arc<Daemon>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let route = req.uri().path().to_string();
    let who = d.actor(bearer(req.headers()));
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<tls::Remote>>()
        .map_or_else(|| "local".to_string(), |c| c.0 .0.to_string());
    let open =
        route == "/healthz" || page::is_page(&route) || (route == "/metrics" && d.metrics_public);
    let reads = matches!(method, axum::http::Method::GET | axum::http::Method::HEAD);
    let response = match (open, reads) {
        (false, true) => match d.authorize(bearer(req.headers()), Role::Viewer) {
            Ok(_) => next.run(req).await,
            Err(r) => ApiError::from(r).into_response(),
        },
        _ => next.run(req).await,
    };
    let status = response.status().as_u16();
    if !reads || matches!(status, 401 | 403 | 409 | 413) {
        d.audit_call(&who, &remote, method.as_str(), &route, status);
    }
    response
}

/// A mutating call's caller and JSON body: 401 before 400.
fn authorized_body<T: serde::de::DeserializeOwned>(
    d: &Daemon,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, T), ApiError> {
    let who = authorize(d, headers)?;
    let req = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    Ok((who, req))
}

/// The HTTP API's routes, served by daemon `d`.
pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .route("/", get(page::index))
        .route(page::SCRIPT, get(page::script))
        .route(page::STYLE, get(page::style))
        .route("/v1/whoami", get(whoami))
        .route("/v1/playbooks", get(playbooks))
        .route("/v1/runs", get(list_runs).post(start_run))
        .route("/v1/runs/{id}", get(get_run).patch(retune_run))
        .route("/v1/runs/{id}/events", get(run_events))
        .route("/v1/runs/{id}/report", get(run_report))
        .route(
            "/v1/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .route("/metrics", get(metrics_text))
        .route(
            "/v1/cluster",
            get(|State(d): State<Arc<Daemon>>| async move { Json(d.cluster_view()) }),
        )
        .route("/v1/runs/{id}/{action}", post(control_run))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(d.clone(), guard))
        .with_state(d)
}

/// Who the caller's token says it is: its name and role (what the live
/// page shows, and whether it offers the controls).
async fn whoami(State(d): State<Arc<Daemon>>, headers: HeaderMap) -> Json<serde_json::Value> {
    let role = d.role(bearer(&headers)).unwrap_or(Role::Viewer);
    Json(json!({ "name": d.actor(bearer(&headers)), "role": role }))
}

async fn playbooks(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    Json(json!({
        "playbooks": d.playbooks.iter().map(|(n, p)| json!({ "name": n, "playbook": p.name, "roles": p.roles.iter().map(|r| &r.name).collect::<Vec<_>>() })).collect::<Vec<_>>(),
        "scenarios": d.scenarios.keys().collect::<Vec<_>>(),
    }))
}

fn view_of(run: &Run) -> serde_json::Value {
    let v = run.view.lock().unwrap().clone();
    let mut j = serde_json::to_value(&v).unwrap();
    if let Some(h) = run.handle.lock().unwrap().as_ref() {
        j["status"] = serde_json::to_value(h.status()).unwrap();
    }
    j
}

async fn list_runs(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    let runs: Vec<_> = d.runs().iter().map(|r| view_of(r)).collect();
    Json(json!({ "runs": runs }))
}

async fn get_run(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let run = d.run(&id)?;
    Ok(Json(view_of(&run)))
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
}

/// An ended rehearsal's or real run's timeline: the HTML page, or
/// `?format=json|md`.
async fn run_report(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(axum::extract::Query(q)) = query else {
        return Err(ApiError::bad_request("format: expected html, json or md"));
    };
    let (file, content_type) = match q.format.as_deref().unwrap_or("html") {
        "html" => ("timeline.html", "text/html; charset=utf-8"),
        "json" => ("timeline.json", "application/json"),
        "md" => ("timeline.md", "text/markdown; charset=utf-8"),
        other => {
            return Err(ApiError::bad_request(format!(
                "format: expected html, json or md, found {other:?}"
            )))
        }
    };
    let run = d.run(&id)?;
    match tokio::fs::read(d.report_path(&run, file)).await {
        Ok(bytes) => Ok(([("content-type", content_type)], bytes).into_response()),
        Err(_) if !run.ended() => Err(ApiError::not_found(format!("run {id} has not ended: its report is written when it does"))),
        Err(_) => Err(ApiError::not_found(format!("run {id} has no report (plans, runs that failed before the engine started, and runs ended before reports existed have none)"))),
    }
}

async fn start_run(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (who, req) = authorized_body::<StartRequest>(&d, &headers, &body)?;
    let id = d.start(&who, req)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn control_run(
    State(d): State<Arc<Daemon>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&d, &headers)?;
    let reason = if body.is_empty() {
        String::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => v["reason"].as_str().unwrap_or_default().to_string(),
            Ok(_) => {
                return Err(ApiError::bad_request(
                    "request body: expected a JSON object such as {\"reason\": \"...\"}",
                ))
            }
            Err(e) => return Err(ApiError::bad_request(format!("request body: {e}"))),
        }
    };
    let action: Action = action.parse()?;
    let run = d.control(&id, action, &who, &reason)?;
    Ok(Json(view_of(&run)))
}

/// Server-Sent Events of a run, from the start or after `Last-Event-ID`;
/// the stream ends after the `run_ended` event, or when the daemon stops.
async fn run_events(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let run = d.run(&id)?;
    let after: u64 = match headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return Err(ApiError::bad_request(
                "Last-Event-ID: expected the number of an event",
            ))
        }
    };
    let rx = run.seq.subscribe();
    let stop = d.shutdown_signal();
    let stream = futures_util::stream::unfold(
        (run, after, rx, stop, false),
        |(run, next, mut rx, mut stop, finished)| async move {
            if finished {
                return None;
            }
            loop {
                if let Some((i, e)) = run.event_from(next) {
                    let last = e.kind == "run_ended";
                    let ev = SseEvent::default()
                        .id((i + 1).to_string())
                        .event(e.kind)
                        .data(e.data);
                    return Some((
                        Ok::<_, std::convert::Infallible>(ev),
                        (run, i + 1, rx, stop, last),
                    ));
                }
                if run.ended() && run.event_count() <= next {
                    return None;
                }
                if *stop.borrow() {
                    return None;
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return None },
                    _ = stop.changed() => {}
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// PATCH a running run: a new DNS budget ceiling or restart rate.
async fn retune_run(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (who, req) = authorized_body::<Retune>(&d, &headers, &body)?;
    let run = d.retune(&id, &who, &req)?;
    Ok(Json(view_of(&run)))
}

/// The metrics (OpenMetrics text, [`metrics::Scrape`]).
async fn metrics_text(State(d): State<Arc<Daemon>>) -> Response {
    let text = d.scrape().render();
    ([("content-type", metrics::CONTENT_TYPE)], text).into_response()
}
