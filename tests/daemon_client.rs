//! The daemon from the outside, as automation and operators use it: the
//! `rekindle runs` client (over TCP and a unix socket), and webhooks
//! delivered to a real HTTP listener while a dead one never holds a run up.

use crate::common;
use common::daemon::{call, wait_state, DaemonProc, TOKEN};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

/// `rekindle runs …` against `server`, with `token` in the environment.
fn runs(server: &str, token: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    cmd.arg("runs")
        .args(args)
        .args(["--server", server])
        .env_remove("REKINDLE_TOKEN")
        .env_remove("REKINDLE_SERVER");
    if let Some(t) = token {
        cmd.env("REKINDLE_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn daemon_client_starts_watches_and_steers_runs() {
    let d = DaemonProc::start(&root("config/daemon.toml"), None);
    let server = format!("http://{}", d.addr);
    // start --watch follows the rehearsal to its end and exits like `run`.
    let (code, out, err) = runs(
        &server,
        Some(TOKEN),
        &[
            "start",
            "mongo-sharded",
            "--mode",
            "rehearse",
            "--scenario",
            "smoke",
            "--reason",
            "game day",
            "--watch",
        ],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("run r1 of mongo-sharded (rehearse): succeeded")
            && out.contains("healthy  22/22"),
        "{out}"
    );
    assert!(err.contains("waves passed"), "watch shows progress: {err}");
    assert_status_and_report(&server);
    // A wrong token is refused (exit 2, the daemon's word) and changes nothing.
    let (code, out, err) = runs(
        &server,
        Some("wrong"),
        &[
            "start",
            "mongo-sharded",
            "--mode",
            "rehearse",
            "--scenario",
            "smoke",
            "--reason",
            "x",
        ],
    );
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("401") && err.contains("wrong token"), "{err}");
    assert_eq!(
        call(&d.addr, "GET", "/v1/runs", Some(TOKEN), None).1["runs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Pause (asked before the engine starts, applied when it does), tune, abort.
    pause_tune_abort_r2(&server, &d.addr);
    let audit = std::fs::read_to_string(d.state.join("audit.log")).unwrap();
    for what in ["start r1", "pause r2", "retune r2", "abort r2"] {
        assert!(
            audit.contains(what),
            "{what} missing from the audit log:\n{audit}"
        );
    }
    // A daemon that is not there: a clear error, exit 1.
    let (code, _, err) = runs(
        &format!("http://127.0.0.1:{}", common::closed_port()),
        None,
        &["status"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

/// The succeeded run r1 through the client: status lists it, as a table
/// and as JSON; its report, JSON on stdout and the page into a file; an
/// unknown run is the daemon's 404 (exit 2).
fn assert_status_and_report(server: &str) {
    // status lists it, as a table and as JSON.
    let (code, out, _) = runs(server, Some(TOKEN), &["status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines().any(|l| l.starts_with("r1 ")
            && l.contains("succeeded")
            && l.contains("22/22")
            && l.contains("game day")),
        "{out}"
    );
    let (_, out, _) = runs(server, Some(TOKEN), &["status", "r1", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"]["healthy"], 22, "{v}");
    // Its report: JSON on stdout, the page into a file; an unknown run is the daemon's 404.
    let (code, out, err) = runs(server, Some(TOKEN), &["report", "r1", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let timeline: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(timeline["healthy"], 22, "{timeline}");
    let page = tempfile::NamedTempFile::new().unwrap();
    let (code, _, err) = runs(
        server,
        Some(TOKEN),
        &["report", "r1", "--out", page.path().to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    let html = std::fs::read_to_string(page.path()).unwrap();
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<svg"),
        "{html}"
    );
    let (code, _, err) = runs(server, Some(TOKEN), &["report", "r9"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("404") && err.contains("r9"), "{err}");
}

/// A braze rehearsal started as r2, paused (asked before the engine
/// starts, applied when it does; nothing restarts while paused), tuned (a
/// tune without a value refused), aborted; watching it then exits 4.
fn pause_tune_abort_r2(server: &str, addr: &str) {
    let (code, out, err) = runs(
        server,
        Some(TOKEN),
        &[
            "start",
            "mongo-sharded",
            "--mode",
            "rehearse",
            "--scenario",
            "braze-us01",
            "--reason",
            "drill",
        ],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(out.trim(), "started run r2");
    let (code, out, err) = runs(
        server,
        Some(TOKEN),
        &["pause", "r2", "--reason", "look first"],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("paused"), "{out}");
    wait_state(addr, "r2", &["paused"]);
    // Restarts in flight at the pause finish first; then nothing moves.
    std::thread::sleep(Duration::from_millis(300));
    let paused = wait_state(addr, "r2", &["paused"]);
    let healthy_at_pause = paused["status"]["healthy"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(300));
    let still = wait_state(addr, "r2", &["paused"]);
    assert_eq!(
        still["status"]["healthy"].as_u64().unwrap_or(0),
        healthy_at_pause,
        "nothing restarts while paused: {still}"
    );
    let (code, out, err) = runs(
        server,
        Some(TOKEN),
        &[
            "tune",
            "r2",
            "--dns-budget",
            "800",
            "--reason",
            "resolver busy",
        ],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("DNS budget 800.0 q/s"), "{out}");
    let (code, _, err) = runs(server, Some(TOKEN), &["tune", "r2"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = runs(
        server,
        Some(TOKEN),
        &["abort", "r2", "--reason", "drill over"],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, out, err) = runs(server, Some(TOKEN), &["watch", "r2"]);
    assert_eq!(
        code,
        Some(4),
        "watch of an aborted run exits 4\n{out}\n{err}"
    );
    assert!(out.contains("aborted"), "{out}");
}

#[test]
fn daemon_on_a_unix_socket_serves_the_client_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("rekindle.sock");
    let listen = format!("unix:{}", sock.display());
    let d = DaemonProc::start_with(&root("config/daemon.toml"), None, &listen, None);
    assert_eq!(d.addr, listen);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "only its owner may talk to it"
    );
    let (code, out, err) = runs(
        &listen,
        None,
        &[
            "start",
            "mongo-sharded",
            "--mode",
            "plan",
            "--scenario",
            "smoke",
            "--reason",
            "check",
            "--watch",
        ],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("succeeded"), "{out}");
    let (code, out, _) = runs(&listen, None, &["status", "-o", "json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["runs"][0]["result"]["containers"], 22, "{v}");
    // A second daemon cannot take the socket (nor the state dir).
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            &root("config/daemon.toml"),
            "--listen",
            &listen,
            "--state-dir",
        ])
        .arg(&d.state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A webhook receiver: answers 200 and keeps each body.
fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break Some(rest[..len].to_string());
                    }
                }
            };
            if let Some(b) = body {
                g.lock()
                    .unwrap()
                    .push(serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)));
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, got)
}

#[test]
fn daemon_webhooks_are_delivered_and_a_hanging_hook_never_holds_a_run() {
    let (url, got) = receiver();
    // A hook that accepts and never answers: its deliveries hang for their
    // whole timeout while the runs go on.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = format!("http://{}/", black_hole.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let failing = dir.path().join("failing.toml");
    std::fs::write(
        &failing,
        std::fs::read_to_string(root("config/scenarios/smoke.toml"))
            .unwrap()
            .replace("restart_failure_rate = 0.0", "restart_failure_rate = 0.99"),
    )
    .unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[playbooks]\nmongo-sharded = {:?}\n[scenarios]\nsmoke = {:?}\nfailing = {:?}\n[[webhooks]]\nurl = {hole:?}\ntimeout = \"60s\"\n[[webhooks]]\nurl = {url:?}\n",
            root("config/mongo-sharded.toml"),
            root("config/scenarios/smoke.toml"),
            failing.display().to_string()
        ),
    )
    .unwrap();
    let d = DaemonProc::start(config.to_str().unwrap(), None);
    let body = |scenario: &str| {
        serde_json::json!({ "playbook": "mongo-sharded", "mode": "rehearse", "scenario": scenario, "reason": "hook check" }).to_string()
    };
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(body("smoke").as_bytes()),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        wait_state(&d.addr, "r1", &["succeeded", "halted", "aborted", "failed"])["state"],
        "succeeded"
    );
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(body("failing").as_bytes()),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        wait_state(&d.addr, "r2", &["succeeded", "halted", "aborted", "failed"])["state"],
        "halted"
    );
    // Both runs ended while the black hole still holds its first delivery
    // (its 60 s timeout has not passed): the hook never held them up.
    black_hole.set_nonblocking(true).unwrap();
    let held = black_hole.accept().is_ok();
    assert!(held, "the hanging hook was called");
    // The receiving hook got, in order per run: started, (halted,) finished.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let kinds = loop {
        let kinds: Vec<(String, String)> = got
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["rekindle"]["run"].as_str().unwrap_or("").to_string(),
                    kind_of(v),
                )
            })
            .collect();
        if kinds.len() >= 5 || std::time::Instant::now() > deadline {
            break kinds;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let of = |run: &str| {
        kinds
            .iter()
            .filter(|(r, _)| r == run)
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("r1"), ["started", "succeeded"], "{kinds:?}");
    let r2 = of("r2");
    assert_eq!(r2.first(), Some(&"started"), "{kinds:?}");
    assert!(r2.contains(&"halted at wave"), "{kinds:?}");
    assert_eq!(r2.last(), Some(&"halted"), "{kinds:?}");
    let all = got.lock().unwrap().clone();
    let finished = all
        .iter()
        .find(|v| v["rekindle"]["run"] == "r2" && v["rekindle"]["state"] == "halted")
        .unwrap();
    assert!(
        finished["text"]
            .as_str()
            .unwrap()
            .starts_with("rekindle: run r2 of mongo-sharded"),
        "Slack-compatible text: {finished}"
    );
}

/// What a note says: started, halted at wave, or the final state.
fn kind_of(v: &serde_json::Value) -> String {
    let text = v["text"].as_str().unwrap_or("");
    if text.contains(" started: ") {
        "started".into()
    } else if text.contains("halted at wave") {
        "halted at wave".into()
    } else {
        v["rekindle"]["state"].as_str().unwrap_or("?").to_string()
    }
}

/// An HTTPS webhook receiver (Python's http.server behind ssl): prints
/// its port, then each POST body on a line.
const HTTPS_HOOK: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        sys.stdout.write(body.decode() + "\n"); sys.stdout.flush()
        self.send_response(200); self.send_header('content-length', '2'); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[test]
fn daemon_webhooks_reach_an_https_hook_verified_against_the_trusted_roots() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let authority = common::tls::Ca::new(dir.path(), "hooks");
    let server = authority.server("hook");
    let (ca, cert, key) = (
        authority.cert.clone(),
        server.cert.clone(),
        server.key.clone(),
    );
    let mut hook = Killed(
        Command::new("python3")
            .args(["-c", HTTPS_HOOK, &cert, &key])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut lines = std::io::BufReader::new(hook.0.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();
    let got = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        lines.map_while(Result::ok).for_each(|l| {
            g.lock()
                .unwrap()
                .push(serde_json::from_str(&l).unwrap_or_default())
        })
    });
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[playbooks]\nmongo-sharded = {:?}\n[scenarios]\nsmoke = {:?}\n[[webhooks]]\nurl = \"https://localhost:{port}/hook\"\nevents = [\"run_finished\"]\n",
            root("config/mongo-sharded.toml"),
            root("config/scenarios/smoke.toml")
        ),
    )
    .unwrap();
    let body = serde_json::json!({ "playbook": "mongo-sharded", "mode": "rehearse", "scenario": "smoke", "reason": "tls" }).to_string();
    // Trusting the test CA (as the system's roots, via SSL_CERT_FILE): delivered.
    // Without it: the certificate is refused, nothing delivered, the run unaffected.
    for (trust, want) in [(true, 1usize), (false, 0)] {
        got.lock().unwrap().clear();
        let state = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekindle"));
        cmd.args([
            "daemon",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state.path())
        .env("REKINDLE_TOKEN", TOKEN);
        cmd.env(
            "SSL_CERT_FILE",
            if trust { ca.as_str() } else { "/dev/null" },
        )
        .env_remove("SSL_CERT_DIR");
        let mut child = Killed(
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        std::io::BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap()
            .to_string();
        assert_eq!(
            call(
                &addr,
                "POST",
                "/v1/runs",
                Some(TOKEN),
                Some(body.as_bytes())
            )
            .0,
            201
        );
        assert_eq!(
            wait_state(&addr, "r1", &["succeeded", "halted", "aborted", "failed"])["state"],
            "succeeded"
        );
        // Three attempts take 1.5 s of backoff; give the delivery 5 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().len() < want.max(1) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(child);
        let notes = got.lock().unwrap().clone();
        assert_eq!(
            notes.len(),
            want,
            "trusting the CA: {trust}; notes: {notes:?}"
        );
        if want == 1 {
            assert_eq!(notes[0]["rekindle"]["state"], "succeeded", "{notes:?}");
        }
    }
    drop(hook);
}

/// A child process killed when dropped, even when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
