//! The events stream (resumable, server-sent), the metrics, retuning, and
//! memory bounded under clients that never read.

use super::*;

/// Reads a whole SSE stream (HTTP/1.0: no chunking; the stream ends after
/// `run_ended`); returns (id, event name, data) triples.
fn sse(
    addr: &str,
    path: &str,
    last_event_id: Option<u64>,
) -> Vec<(u64, String, serde_json::Value)> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    if let Some(id) = last_event_id {
        req += &format!("Last-Event-ID: {id}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let (mut id, mut ev, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if let Some(x) = line.strip_prefix("id:") {
                id = x.trim().parse().ok();
            } else if let Some(x) = line.strip_prefix("event:") {
                ev = x.trim().to_string();
            } else if let Some(x) = line.strip_prefix("data:") {
                data += x.trim();
            }
        }
        if let Some(id) = id {
            out.push((
                id,
                ev,
                serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            ));
        }
    }
    out
}

#[test]
fn daemon_streams_events_resumably_reports_metrics_and_retunes() {
    let d = start();
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "smoke")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Followed over SSE to the end.
    let all = sse(&d.addr, &format!("/v1/runs/{id}/events"), None);
    let last = all.last().expect("events");
    assert_eq!(last.1, "run_ended", "{last:?}");
    assert_eq!(last.2["state"], "succeeded");
    assert!(all.iter().any(|e| e.1 == "wave_started") && all.iter().any(|e| e.1 == "healthy"));
    assert_outline_loads_and_ids(&all);
    // Resumed after event 10: exactly the rest.
    let rest = sse(&d.addr, &format!("/v1/runs/{id}/events"), Some(10));
    assert_eq!(rest.len(), all.len() - 10);
    assert_eq!(rest[0].0, 11);
    assert_eq!(
        rest.iter().map(|e| &e.2).collect::<Vec<_>>(),
        all[10..].iter().map(|e| &e.2).collect::<Vec<_>>()
    );

    // Retune a running braze rehearsal; bad values refused.
    let id = paused_braze_retuned(&d.addr);

    // Metrics while one run is paused and one succeeded.
    assert_metrics(&d.addr, &id);
    call(
        &d.addr,
        "POST",
        &format!("/v1/runs/{id}/abort"),
        Some(TOKEN),
        None,
    );

    // The OpenAPI document served is the one in the repo.
    let (code, v) = call(&d.addr, "GET", "/v1/openapi.json", Some(TOKEN), None);
    assert_eq!(code, 200);
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/docs/openapi.json", env!("CARGO_MANIFEST_DIR")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v, file);
}

/// For watchers: the plan's outline before the first wave, and load
/// samples on the run's clock, the last at its end with every container
/// healthy; the events' ids count up from 1.
fn assert_outline_loads_and_ids(all: &[(u64, String, serde_json::Value)]) {
    let plan = all
        .iter()
        .position(|e| e.1 == "plan")
        .expect("a plan event");
    let first_wave = all.iter().position(|e| e.1 == "wave_started").unwrap();
    assert!(plan < first_wave, "the plan comes before the first wave");
    let outline = &all[plan].2;
    let waves = outline["waves"].as_array().unwrap();
    let started = all.iter().filter(|e| e.1 == "wave_started").count();
    assert_eq!(
        waves.len(),
        started,
        "every wave of the plan started: {outline}"
    );
    assert!(waves
        .iter()
        .all(|w| w["role"].is_string() && w["containers"].as_u64() > Some(0)));
    assert!(["static", "adaptive"].contains(&outline["pacing"].as_str().unwrap()));
    let loads: Vec<_> = all.iter().filter(|e| e.1 == "load").map(|e| &e.2).collect();
    assert!(loads.len() >= 2, "{loads:?}");
    let at: Vec<f64> = loads.iter().map(|l| l["at_s"].as_f64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    let end = loads.last().unwrap();
    assert_eq!(end["healthy"], outline["containers"], "{end}");
    assert!(end["dns_budget_qps"].as_f64().unwrap() > 0.0, "{end}");
    let ids: Vec<u64> = all.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "ids count up from 1"
    );
}

/// A braze rehearsal started and paused once the engine started, then
/// retuned: a bad value refused (400), no token refused (401), 1000 q/s
/// taken. Its id.
fn paused_braze_retuned(addr: &str) -> String {
    let id = start_run(addr, "mongo-sharded", "braze-us01");
    control(addr, &id, "pause");
    wait_for(
        addr,
        &id,
        Duration::from_secs(60),
        "the engine's start",
        |v| v["status"].is_object(),
    );
    let (code, v) = call(
        addr,
        "PATCH",
        &format!("/v1/runs/{id}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": -5}"),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        call(
            addr,
            "PATCH",
            &format!("/v1/runs/{id}"),
            None,
            Some(b"{\"dns_budget_qps\": 1000}")
        )
        .0,
        401
    );
    let (code, v) = call(
        addr,
        "PATCH",
        &format!("/v1/runs/{id}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": 1000, \"reason\": \"resolver busy\"}"),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["pace"]["dns_budget_qps"], 1000.0, "{v}");
    id
}

/// The metrics while one run (`id`, retuned to 1000 q/s) is paused and
/// one (smoke) succeeded: runs by state, the run's budget and restarts,
/// restarts by role and outcome and wave durations from the smoke run.
fn assert_metrics(addr: &str, id: &str) {
    let text = get_text(addr, "/metrics");
    assert!(
        text.contains("rekindle_runs{state=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(text.contains("rekindle_runs{state=\"paused\"} 1"), "{text}");
    assert!(
        text.contains(&format!(
            "rekindle_run_dns_budget_qps{{run=\"{id}\",playbook=\"mongo-sharded\"}} 1000"
        )),
        "{text}"
    );
    assert!(text.contains("rekindle_run_restarts_total{"), "{text}");
    // Restarts by role and outcome, and wave durations, from the smoke run.
    let smoke_routers = text
        .lines()
        .find(|l| l.starts_with("rekindle_restarts_total{playbook=\"mongo-sharded\",mode=\"rehearse\",role=\"router\",outcome=\"healthy\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        smoke_routers.ends_with(" 4"),
        "smoke has 2 clusters × 2 routers: {smoke_routers}"
    );
    assert!(text.contains("rekindle_wave_duration_seconds_count{playbook=\"mongo-sharded\",mode=\"rehearse\",role=\"configsvr\"}"), "{text}");
    assert!(
        text.contains("# TYPE rekindle_wave_duration_seconds histogram"),
        "{text}"
    );
}

/// SSE clients that never read: the daemon holds for each at most what its
/// socket takes (the stream is drawn from the run's history only as the
/// socket drains), so 16 of them on a braze-us01 rehearsal (tens of
/// thousands of events each) cost the daemon about what the rehearsal
/// costs without them, and it answers and finishes the run meanwhile.
/// Were each stalled stream buffered, the 16 would hold the run's events
/// 16 times over (hundreds of MB).
#[test]
fn daemon_memory_stays_bounded_with_sse_clients_that_never_read() {
    let d = start();
    let rss_kb = || -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", d.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let rehearse = || {
        let (code, v) = call(
            &d.addr,
            "POST",
            "/v1/runs",
            Some(TOKEN),
            Some(&start_body("mongo-sharded", "braze-us01")),
        );
        assert_eq!(code, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    };
    let finish = |id: &str| {
        let done = wait_for(&d.addr, id, Duration::from_secs(300), "the end", |v| {
            v["ended_at"].is_f64()
        });
        assert_eq!(done["state"], "succeeded", "{done}");
    };
    // Two runs without clients: what one more run's history costs.
    let id = rehearse();
    finish(&id);
    let after_first = rss_kb();
    let id = rehearse();
    finish(&id);
    let after_second = rss_kb();
    // A third with 16 clients that never read its events.
    let id = rehearse();
    // A 4 KiB receive buffer each: what the kernel holds for a client that
    // never reads stays small, so a stream the daemon buffered would show.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stalled: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let s = rt.block_on(async {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.set_recv_buffer_size(4096).unwrap();
                sock.connect(d.addr.parse().unwrap()).await.unwrap()
            });
            let s = s.into_std().unwrap();
            s.set_nonblocking(false).unwrap();
            let mut w = &s;
            w.write_all(
                format!(
                    "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
                    d.addr
                )
                .as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    finish(&id);
    let with_stalled = rss_kb();
    let one_run = after_second.saturating_sub(after_first);
    let grew = with_stalled.saturating_sub(after_second);
    assert!(
        grew <= one_run + 64 * 1024,
        "16 stalled SSE clients grew the daemon by {grew} kB, one run alone by {one_run} kB (RSS {after_first} → {after_second} → {with_stalled} kB)"
    );
    // And the streams were held, not cut: one read now gets the whole run,
    // far more than its socket's buffers held, to its run_ended.
    let mut s = &stalled[0];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut got, mut tail, mut buf) = (0usize, Vec::new(), vec![0u8; 1 << 16]);
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before run_ended after {got} bytes");
        got += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(16).any(|w| w == b"event: run_ended") {
            break;
        }
        let keep = tail.len().saturating_sub(32);
        tail.drain(..keep);
    }
    assert!(
        got > 4 << 20,
        "a braze-us01 run's events are MBs, not {got} bytes"
    );
    drop(stalled);
}
