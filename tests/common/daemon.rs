//! A `rekindle daemon` process for tests, and raw HTTP/1.1 calls to it
//! (an independent path from rekindle's own client).

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-7f3a";

pub struct DaemonProc {
    pub child: Child,
    pub addr: String,
    /// The state dir: its own temporary one, or the one given (kept).
    pub state: PathBuf,
    _own_state: Option<tempfile::TempDir>,
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DaemonProc {
    /// Starts a daemon on an ephemeral loopback port with `config`, on
    /// `state` (or a temporary state dir), and waits for it to listen.
    pub fn start(config: &str, state: Option<&Path>) -> DaemonProc {
        let mut d = DaemonProc::start_with(config, state, "127.0.0.1:0", Some(TOKEN));
        d.addr = d
            .addr
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("daemon said {:?}", d.addr))
            .to_string();
        d
    }

    /// Starts a daemon listening on `listen` (an address or unix:PATH),
    /// with `token` in $REKINDLE_TOKEN or none; `addr` is the URL it says.
    pub fn start_with(
        config: &str,
        state: Option<&Path>,
        listen: &str,
        token: Option<&str>,
    ) -> DaemonProc {
        DaemonProc::start_env(config, state, listen, token, &[])
    }

    /// [`DaemonProc::start_with`] with more environment variables.
    pub fn start_env(
        config: &str,
        state: Option<&Path>,
        listen: &str,
        token: Option<&str>,
        env: &[(&str, &str)],
    ) -> DaemonProc {
        DaemonProc::start_args(config, state, listen, token, env, &[])
    }

    /// [`DaemonProc::start_env`] with more arguments (`--cluster`, …).
    pub fn start_args(
        config: &str,
        state: Option<&Path>,
        listen: &str,
        token: Option<&str>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> DaemonProc {
        let own = if state.is_none() {
            Some(tempfile::tempdir().unwrap())
        } else {
            None
        };
        let state = state
            .map(Path::to_path_buf)
            .unwrap_or_else(|| own.as_ref().unwrap().path().to_path_buf());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekindle"));
        cmd.args([
            "daemon",
            "--config",
            config,
            "--listen",
            listen,
            "--state-dir",
        ])
        .arg(&state)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("REKINDLE_TOKEN");
        if let Some(t) = token {
            cmd.env("REKINDLE_TOKEN", t);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            // Its log, kept with its state (a test that fails can say it).
            .stderr({
                std::fs::create_dir_all(&state).unwrap();
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(state.join("daemon.stderr"))
                    .unwrap()
            })
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("daemon said {line:?}"))
            .to_string();
        DaemonProc {
            child,
            addr,
            state,
            _own_state: own,
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

/// One HTTP/1.1 request; returns (status, JSON body).
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, serde_json::Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    let body = body.unwrap_or(b"");
    req += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(rest.trim()).unwrap_or(serde_json::Value::Null),
    )
}

/// A GET whose answer is text (e.g. /metrics); HTTP/1.0, read to the end.
pub fn get_text(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

pub fn start_body(playbook: &str, scenario: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "playbook": playbook, "mode": "rehearse", "scenario": scenario, "reason": "game day" })).unwrap()
}

/// Starts a rehearsal of `playbook` on `scenario` (201, or the test
/// fails); its id.
pub fn start_run(addr: &str, playbook: &str, scenario: &str) -> String {
    let (code, v) = call(
        addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body(playbook, scenario)),
    );
    assert_eq!(code, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// POSTs a control action, retrying while the run has not started (409).
pub fn control(addr: &str, id: &str, action: &str) -> serde_json::Value {
    loop {
        let (code, v) = call(
            addr,
            "POST",
            &format!("/v1/runs/{id}/{action}"),
            Some(TOKEN),
            Some(b"{\"reason\":\"test\"}"),
        );
        if code == 200 {
            return v;
        }
        assert_eq!(code, 409, "{v}");
        assert!(
            !v["error"].as_str().unwrap_or("").contains("has ended"),
            "the run ended before {action}: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls a run until `until` holds for its view (or panics after `within`).
pub fn wait_for(
    addr: &str,
    id: &str,
    within: Duration,
    what: &str,
    until: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, v) = call(addr, "GET", &format!("/v1/runs/{id}"), Some(TOKEN), None);
        assert_eq!(code, 200, "{v}");
        if until(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "run {id}: {what} did not happen within {within:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_state(addr: &str, id: &str, want: &[&str]) -> serde_json::Value {
    wait_for(
        addr,
        id,
        Duration::from_secs(60),
        &format!("state {want:?}"),
        |v| want.contains(&v["state"].as_str().unwrap_or("")),
    )
}
