//! Tokens and their roles, and the audit of every mutating or refused call.

use super::*;

/// Tokens with roles and an audit of every call: a viewer's token reads
/// and is refused (403) what an operator's may do (201); no token or a
/// wrong one is 401 on every route but /healthz (and /metrics, made public
/// here); a body too large is 413; each refusal and each mutating call is
/// a line of audit.log naming the token's name (never its secret), the
/// remote address, the call and its status. audit.log is 0600 in a 0700
/// state dir. A token file that others may read is refused at start,
/// naming it.
#[test]
fn daemon_tokens_have_roles_and_every_mutating_or_refused_call_is_audited() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (viewer, config) = write_roles_config(dir.path());
    let state = dir.path().join("state");
    let d = DaemonProc::start_env(
        config.to_str().unwrap(),
        Some(&state),
        "127.0.0.1:0",
        None,
        &[("OPERATOR_TOKEN", "operator-secret-5d0e")],
    );
    let addr = d.addr.strip_prefix("http://").unwrap().to_string();
    let (v, o) = (Some("viewer-secret-91c2"), Some("operator-secret-5d0e"));
    let body = start_body("mongo-sharded", "smoke");

    assert_eq!(call(&addr, "GET", "/healthz", None, None).0, 200);
    // The live page holds no data: served without a token, locked to this
    // origin; who a token is comes from /v1/whoami (name, never secret).
    assert_page_and_whoami(&addr, v, o);
    // A watched rehearsal's speed: only for rehearsals, above 0.
    for (speed, mode) in [
        ("0", "rehearse"),
        ("-1", "rehearse"),
        ("1e9", "rehearse"),
        ("2", "plan"),
    ] {
        let bad = format!("{{\"playbook\":\"mongo-sharded\",\"mode\":\"{mode}\",\"scenario\":\"smoke\",\"reason\":\"x\",\"speed\":{speed}}}");
        let (code, e) = call(&addr, "POST", "/v1/runs", o, Some(bad.as_bytes()));
        assert_eq!(code, 400, "speed {speed} for {mode}: {e}");
        assert!(e["error"].as_str().unwrap().starts_with("speed:"), "{e}");
    }
    assert_eq!(
        call(&addr, "GET", "/v1/runs", None, None).0,
        401,
        "reads need a token"
    );
    assert_eq!(call(&addr, "GET", "/v1/runs", Some("nope"), None).0, 401);
    assert_eq!(call(&addr, "GET", "/v1/runs", v, None).0, 200);
    assert_eq!(call(&addr, "GET", "/v1/openapi.json", v, None).0, 200);
    assert!(get_metrics_without_token(&addr).starts_with("HTTP/1.0 200"));
    let (code, refused) = call(&addr, "POST", "/v1/runs", v, Some(&body));
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("dashboard"),
        "{refused}"
    );
    assert_eq!(call(&addr, "POST", "/v1/runs", None, Some(&body)).0, 401);
    let big = vec![b' '; 64 * 1024];
    assert_eq!(call(&addr, "POST", "/v1/runs", o, Some(&big)).0, 413);
    let (code, started) = call(&addr, "POST", "/v1/runs", o, Some(&body));
    assert_eq!(code, 201, "{started}");
    let id = started["id"].as_str().unwrap();
    assert_eq!(
        call(
            &addr,
            "POST",
            &format!("/v1/runs/{id}/pause"),
            v,
            Some(b"{}")
        )
        .0,
        403
    );

    assert_audited(&state, id);
    drop(d);

    // A token file others may read: refused at start, naming it.
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path().join("state2"))
        .env("OPERATOR_TOKEN", "operator-secret-5d0e")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(viewer.to_str().unwrap()) && stderr.contains("644"),
        "{stderr}"
    );
}

/// A daemon config with a viewer token in a file (mode 0600) and an
/// operator token in the environment (`OPERATOR_TOKEN`), metrics public:
/// the token file and the config.
fn write_roles_config(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let root = env!("CARGO_MANIFEST_DIR");
    let viewer = dir.join("viewer.token");
    std::fs::write(&viewer, "viewer-secret-91c2\n").unwrap();
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_public = true\n[playbooks]\nmongo-sharded = \"{root}/config/mongo-sharded.toml\"\n\
             [scenarios]\nsmoke = \"{root}/config/scenarios/smoke.toml\"\n\
             [[tokens]]\nname = \"dashboard\"\nrole = \"viewer\"\nfile = \"viewer.token\"\n\
             [[tokens]]\nname = \"automation\"\nrole = \"operator\"\nenv = \"OPERATOR_TOKEN\"\n"
        ),
    )
    .unwrap();
    (viewer, config)
}

/// The live page (no data in it) is served without a token, locked to
/// this origin; who a token is comes from /v1/whoami (name and role, never
/// the secret).
fn assert_page_and_whoami(addr: &str, v: Option<&str>, o: Option<&str>) {
    let page = raw_get(addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'self'"),
        "{page}"
    );
    assert!(raw_get(addr, "/page.js").starts_with("HTTP/1.1 200"));
    assert_eq!(call(addr, "GET", "/v1/whoami", None, None).0, 401);
    let (code, me) = call(addr, "GET", "/v1/whoami", v, None);
    assert_eq!(
        (code, &me["name"], &me["role"]),
        (
            200,
            &serde_json::json!("dashboard"),
            &serde_json::json!("viewer")
        ),
        "{me}"
    );
    let (code, me) = call(addr, "GET", "/v1/whoami", o, None);
    assert_eq!(
        (code, &me["role"]),
        (200, &serde_json::json!("operator")),
        "{me}"
    );
    assert!(!me.to_string().contains("secret"), "{me}");
}

/// Every mutating or refused call is in the audit log (who, what, status,
/// from where), a read that passes is not, no secret is, and the log and
/// the state directory are the daemon's own (0600, 0700).
fn assert_audited(state: &std::path::Path, id: &str) {
    use std::os::unix::fs::PermissionsExt;
    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l.get("status").is_some())
        .collect();
    let has = |who: &str, call: &str, status: u64| {
        lines.iter().any(|l| {
            l["who"] == who
                && l["call"].as_str().unwrap().starts_with(call)
                && l["status"] == status
                && l["remote"].as_str().unwrap().starts_with("127.0.0.1:")
        })
    };
    assert!(has("unauthenticated", "GET /v1/runs", 401), "{audit}");
    assert!(has("dashboard", "POST /v1/runs", 403), "{audit}");
    assert!(has("unauthenticated", "POST /v1/runs", 401), "{audit}");
    assert!(has("automation", "POST /v1/runs", 413), "{audit}");
    assert!(has("automation", "POST /v1/runs", 201), "{audit}");
    assert!(
        has("dashboard", &format!("POST /v1/runs/{id}/pause"), 403),
        "{audit}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["call"] == "GET /v1/runs" && l["status"] == 200),
        "a read that passes is not audited: {audit}"
    );
    assert!(
        !audit.contains("secret-"),
        "no secret in the audit log: {audit}"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("audit.log")), 0o600);
    assert_eq!(mode(state), 0o700);
}

/// `GET /metrics` with no Authorization header at all.
/// A GET without a token: the raw HTTP answer, headers lowercased.
fn raw_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    format!(
        "{}\r\n\r\n{body}",
        head.to_lowercase().replacen("http/1.1", "HTTP/1.1", 1)
    )
}

fn get_metrics_without_token(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}
