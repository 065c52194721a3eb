//! Runs through the daemon's API: rehearsals started, paused, resumed and
//! aborted; a survey and a run of only what is broken.

use super::*;

#[test]
fn daemon_runs_pauses_resumes_and_aborts_rehearsals() {
    let d = start();
    let (code, v) = call(&d.addr, "GET", "/v1/playbooks", Some(TOKEN), None);
    assert_eq!(code, 200);
    assert!(
        v["playbooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mongo-sharded"),
        "{v}"
    );

    // The smoke scenario, to its end.
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "smoke")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let done = wait_state(&d.addr, &id, &["succeeded", "halted", "aborted", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["healthy"], done["result"]["total"], "{done}");
    // Its timeline: the page, the JSON, the Markdown; bad format 400, unknown run 404.
    assert_report(&d.addr, &id, &done);

    // braze-us01: pause, a second start refused, resume, to the end.
    pause_refuse_a_second_start_resume(&d.addr);

    // Another, aborted.
    abort_is_final(&d.addr);

    let audit = std::fs::read_to_string(d.state.join("audit.log")).unwrap();
    for what in ["start r1", "start r2", "pause r2", "resume r2", "abort r3"] {
        assert!(audit.contains(what), "audit log lacks {what:?}:\n{audit}");
    }
    assert!(audit.contains("game day"));
}

/// An ended run's timeline: the page (HTML, three charts), the JSON (to
/// every container healthy, a span per wave), the Markdown; a bad format
/// is 400, an unknown run 404.
fn assert_report(addr: &str, id: &str, done: &serde_json::Value) {
    let page = get_text(addr, &format!("/v1/runs/{id}/report"));
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(
        page.contains("text/html")
            && page.contains("Rehearsal: mongo-sharded on smoke")
            && page.matches("<svg").count() == 3,
        "{page}"
    );
    let (code, timeline) = call(
        addr,
        "GET",
        &format!("/v1/runs/{id}/report?format=json"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200, "{timeline}");
    assert_eq!(
        timeline["healthy_per_second"].as_array().unwrap().last(),
        Some(&done["result"]["total"]),
        "{timeline}"
    );
    assert_eq!(
        timeline["wave_spans"].as_array().unwrap().len() as u64,
        timeline["waves"].as_u64().unwrap()
    );
    assert!(
        get_text(addr, &format!("/v1/runs/{id}/report?format=md")).contains("## DNS per second")
    );
    assert_eq!(
        call(
            addr,
            "GET",
            &format!("/v1/runs/{id}/report?format=pdf"),
            Some(TOKEN),
            None
        )
        .0,
        400
    );
    assert_eq!(
        call(addr, "GET", "/v1/runs/r999/report", Some(TOKEN), None).0,
        404
    );
}

/// braze-us01 started, paused (no report before its end, a second start
/// of the playbook refused: 409), resumed, to the end.
fn pause_refuse_a_second_start_resume(addr: &str) {
    let id = start_run(addr, "mongo-sharded", "braze-us01");
    let paused = control(addr, &id, "pause");
    assert_ne!(paused["state"], "succeeded", "{paused}");
    wait_state(addr, &id, &["paused"]);
    let (code, v) = call(
        addr,
        "GET",
        &format!("/v1/runs/{id}/report"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 404, "no report before the end: {v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("has not ended"),
        "{v}"
    );
    let (code, v) = call(
        addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "smoke")),
    );
    assert_eq!(code, 409, "one active run per playbook: {v}");
    assert_eq!(
        call(
            addr,
            "POST",
            &format!("/v1/runs/{id}/resume"),
            Some(TOKEN),
            None
        )
        .0,
        200
    );
    let done = wait_state(addr, &id, &["succeeded", "halted", "aborted", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["healthy"], 22_200);
}

/// Another braze-us01 run, aborted: a pause, a resume or a retune after it
/// is refused (409) and the run ends aborted, with no restart after the
/// abort.
fn abort_is_final(addr: &str) {
    let id = start_run(addr, "mongo-sharded", "braze-us01");
    control(addr, &id, "abort");
    // An abort is final: a pause, a resume or a retune after it is refused
    // (409) and the run ends aborted, with no restart after the abort.
    for action in ["pause", "resume"] {
        let (code, v) = call(
            addr,
            "POST",
            &format!("/v1/runs/{id}/{action}"),
            Some(TOKEN),
            Some(b"{\"reason\":\"test\"}"),
        );
        assert_eq!(code, 409, "{action} after the abort: {v}");
    }
    let (code, v) = call(
        addr,
        "PATCH",
        &format!("/v1/runs/{id}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": 100}"),
    );
    assert_eq!(code, 409, "retune after the abort: {v}");
    let done = wait_state(addr, &id, &["succeeded", "halted", "aborted", "failed"]);
    assert_eq!(done["state"], "aborted", "{done}");
}

/// `mode: survey` and `only: "broken"` through the API, on a world where
/// the outage broke part of the fleet: the survey counts what the scenario
/// broke, a plan of only what is broken says what it restarts and leaves
/// alone, a rehearsal restarts that and its post-flight finds all ok; a
/// survey with `only` is refused.
#[test]
fn daemon_surveys_and_restarts_only_what_is_broken() {
    let d = start();
    let body = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let run = |v: serde_json::Value| {
        let (code, r) = call(&d.addr, "POST", "/v1/runs", Some(TOKEN), Some(&body(v)));
        assert_eq!(code, 201, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        wait_state(&d.addr, &id, &["succeeded", "halted", "aborted", "failed"])
    };
    let survey = run(serde_json::json!({
        "playbook": "mongo-sharded", "mode": "survey", "scenario": "smoke-partial", "reason": "how bad is it"
    }));
    assert_eq!(survey["state"], "succeeded", "{survey}");
    let r = &survey["result"];
    // smoke-partial: 1 + 1 of 6 config servers, 6 of 12 shard members,
    // 2 of 4 routers.
    assert_eq!(r["containers"], 22, "{r}");
    assert_eq!(r["broken"], 10, "{r}");
    assert_eq!(r["not_ok"].as_array().unwrap().len(), 10, "{r}");

    let plan = run(serde_json::json!({
        "playbook": "mongo-sharded", "mode": "plan", "scenario": "smoke-partial", "only": "broken", "reason": "what would it restart"
    }));
    let p = &plan["result"];
    assert_eq!(plan["only"], "broken", "{plan}");
    assert_eq!(
        p["selection"]["sets_without_primary"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{p}"
    );
    assert_eq!(
        p["containers"], 12,
        "the 10 broken and the 2 healthy members of sets without a primary: {p}"
    );
    assert_eq!(p["left_alone"], 10, "{p}");

    let rehearsal = run(serde_json::json!({
        "playbook": "mongo-sharded", "mode": "rehearse", "scenario": "smoke-partial", "only": "broken", "reason": "game day"
    }));
    assert_eq!(rehearsal["state"], "succeeded", "{rehearsal}");
    let sel = &rehearsal["result"]["selection"];
    assert_eq!(sel["restarted"], 12, "{sel}");
    assert_eq!(
        (sel["false_positives"].as_u64(), sel["missed"].as_u64()),
        (Some(0), Some(0)),
        "{sel}"
    );
    assert_eq!(sel["post_flight_ok"], 22, "{sel}");

    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&body(serde_json::json!({
            "playbook": "mongo-sharded", "mode": "survey", "only": "broken", "reason": "x"
        }))),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("only"), "{v}");
}
