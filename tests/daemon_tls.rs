//! The daemon over TLS (issue 26): curl against it — no token 401, a
//! viewer's token on a POST 403, an operator's 201, each in audit.log; the
//! client verifies it against a CA file; SIGHUP reloads the certificate
//! without a restart; and what is refused at start, naming the address or
//! the file: plain HTTP on an address other machines reach, a key that is
//! not the certificate's, a key others may read. The certificates are made
//! here with openssl; every daemon is killed by its guard.

use crate::common;
use common::daemon::{start_body, DaemonProc};
use common::tls::{Ca, Leaf};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const VIEWER: &str = "viewer-secret-4b1d";
const OPERATOR: &str = "operator-secret-c07e";

fn private(path: &str) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A config serving the smoke scenario over TLS with `leaf`, a viewer's
/// token in a file and an operator's in $OPERATOR_TOKEN.
fn config(dir: &Path, leaf: &Leaf) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let viewer = dir.join("viewer.token");
    std::fs::write(&viewer, VIEWER).unwrap();
    private(viewer.to_str().unwrap());
    let path = dir.join("daemon.toml");
    std::fs::write(
        &path,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\n[playbooks]\nmongo-sharded = \"{root}/config/mongo-sharded.toml\"\n\
             [scenarios]\nsmoke = \"{root}/config/scenarios/smoke.toml\"\n\
             [[tokens]]\nname = \"dashboard\"\nrole = \"viewer\"\nfile = \"viewer.token\"\n\
             [[tokens]]\nname = \"automation\"\nrole = \"operator\"\nenv = \"OPERATOR_TOKEN\"\n",
            leaf.cert, leaf.key
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// curl's status code for a call (`-w %{http_code}`; 000 when TLS fails).
fn curl(ca: &str, method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        ca,
        "-X",
        method,
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(String::from_utf8_lossy(b).into_owned());
    }
    String::from_utf8_lossy(&cmd.arg(url).output().unwrap().stdout).into_owned()
}

/// `rekindle daemon` that must refuse to start: its exit code and stderr.
fn refused(config: &str, listen: &str, state: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            config,
            "--listen",
            listen,
            "--state-dir",
        ])
        .arg(state)
        .env_remove("REKINDLE_TOKEN")
        .env("OPERATOR_TOKEN", OPERATOR)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn daemon_over_tls_refuses_by_role_audits_reloads_on_sighup_and_refuses_bad_files_at_start() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed (scripts/test.sh's machine has it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "one");
    let leaf = ca.server("daemon");
    private(&leaf.key);
    let cfg = config(dir.path(), &leaf);
    let state = dir.path().join("state");
    let d = DaemonProc::start_env(
        &cfg,
        Some(&state),
        "127.0.0.1:0",
        None,
        &[("OPERATOR_TOKEN", OPERATOR)],
    );
    assert!(d.addr.starts_with("https://127.0.0.1:"), "{}", d.addr);
    let url = |p: &str| format!("{}{p}", d.addr);

    let other = assert_roles_and_audit(dir.path(), &d.addr, &ca, &state);

    // The client verifies the daemon against --ca, and sends no token in
    // clear to an address other machines reach.
    assert_client_verifies(&d.addr, &ca, &other);

    // SIGHUP: a certificate from another CA, without a restart.
    let renewed = other.server("daemon");
    std::fs::copy(&renewed.cert, &leaf.cert).unwrap();
    std::fs::copy(&renewed.key, &leaf.key).unwrap();
    private(&leaf.key);
    let hup = Command::new("kill")
        .args(["-HUP", &d.pid()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while curl(&other.cert, "GET", &url("/healthz"), None, None) != "200" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is served after SIGHUP"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        curl(&ca.cert, "GET", &url("/healthz"), None, None),
        "000",
        "the old one is not"
    );
    assert_eq!(
        curl(&other.cert, "GET", &url("/v1/runs"), Some(VIEWER), None),
        "200"
    );
    drop(d);

    // tls_client_ca: a caller without a certificate that CA signed gets no
    // connection at all.
    assert_client_ca_required(dir.path(), &cfg, &other);

    // A certificate outside its validity is named (checked at `now`; the
    // daemon checks at start and at each SIGHUP with the clock's).
    assert_validity_named(&leaf);

    // Refused at start, naming what.
    assert_bad_files_refused(dir.path(), &cfg, &ca, &leaf);
}

/// Over TLS, by role: /healthz open, reads need a token, a viewer may not
/// start a run, an operator may; a CA that did not sign the daemon's
/// certificate is refused; each refused or mutating call is audited. The
/// other CA, made here.
fn assert_roles_and_audit(dir: &Path, addr: &str, ca: &Ca, state: &Path) -> Ca {
    let url = |p: &str| format!("{addr}{p}");
    let body = start_body("mongo-sharded", "smoke");

    assert_eq!(curl(&ca.cert, "GET", &url("/healthz"), None, None), "200");
    assert_eq!(curl(&ca.cert, "GET", &url("/v1/runs"), None, None), "401");
    assert_eq!(
        curl(&ca.cert, "GET", &url("/v1/runs"), Some(VIEWER), None),
        "200"
    );
    assert_eq!(
        curl(
            &ca.cert,
            "POST",
            &url("/v1/runs"),
            Some(VIEWER),
            Some(&body)
        ),
        "403"
    );
    assert_eq!(
        curl(
            &ca.cert,
            "POST",
            &url("/v1/runs"),
            Some(OPERATOR),
            Some(&body)
        ),
        "201"
    );
    let other = Ca::new(dir, "other");
    assert_eq!(
        curl(&other.cert, "GET", &url("/healthz"), None, None),
        "000",
        "a CA that did not sign the daemon's certificate is refused"
    );
    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    for (who, call, status) in [
        ("unauthenticated", "GET /v1/runs", 401),
        ("dashboard", "POST /v1/runs", 403),
        ("automation", "POST /v1/runs", 201),
    ] {
        assert!(
            audit.lines().any(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["who"] == who && v["call"] == call && v["status"] == status
            }),
            "{who} {call} {status} in {audit}"
        );
    }
    other
}

/// `rekindle runs` verifies the daemon against `--ca`, and sends no token
/// in clear to an address other machines reach.
fn assert_client_verifies(addr: &str, ca: &Ca, other: &Ca) {
    let runs = |server: &str, ca: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekindle"));
        cmd.arg("runs").args(args).args(["--server", server]);
        if let Some(ca) = ca {
            cmd.args(["--ca", ca]);
        }
        let out = cmd.env("REKINDLE_TOKEN", VIEWER).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = runs(addr, Some(&ca.cert), &["status", "-o", "json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("\"started_by\":\"automation\""),
        "the run names its starter: {out}"
    );
    let (code, out) = runs(addr, Some(&other.cert), &["status"]);
    assert_eq!(
        code,
        Some(1),
        "an unverified daemon is not talked to: {out}"
    );
    let (code, out) = runs("http://10.255.0.1:7878", None, &["status"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("refusing to send $REKINDLE_TOKEN") && out.contains("10.255.0.1"),
        "{out}"
    );
}

/// tls_client_ca: a caller without a certificate that CA signed gets no
/// connection at all; one with such a certificate gets its answer.
fn assert_client_ca_required(dir: &Path, cfg: &str, other: &Ca) {
    let client = other.client("caller");
    let mtls = dir.join("mtls.toml");
    std::fs::write(
        &mtls,
        format!(
            "tls_client_ca = {:?}\n{}",
            other.cert,
            std::fs::read_to_string(cfg).unwrap()
        ),
    )
    .unwrap();
    let d = DaemonProc::start_env(
        mtls.to_str().unwrap(),
        Some(&dir.join("s0")),
        "127.0.0.1:0",
        None,
        &[("OPERATOR_TOKEN", OPERATOR)],
    );
    let healthz = format!("{}/healthz", d.addr);
    assert_eq!(curl(&other.cert, "GET", &healthz, None, None), "000");
    let with_cert = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &other.cert,
        ])
        .args(["--cert", &client.cert, "--key", &client.key, &healthz])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&with_cert.stdout), "200");
    drop(d);
}

/// A certificate outside its validity is named (checked at `now`; the
/// daemon checks at start and at each SIGHUP with the clock's).
fn assert_validity_named(leaf: &Leaf) {
    use rekindle::api::tls::{load, unix_now, TlsFiles};
    let files = TlsFiles {
        cert: leaf.cert.clone().into(),
        key: leaf.key.clone().into(),
        client_ca: None,
    };
    assert!(load(&files, unix_now()).is_ok());
    let in_2100 = 4_102_444_800;
    let e = load(&files, in_2100).unwrap_err();
    assert!(e.contains(&leaf.cert) && e.contains("expired"), "{e}");
    let e = load(&files, 0).unwrap_err();
    assert!(e.contains(&leaf.cert) && e.contains("not valid yet"), "{e}");
}

/// Refused at start, naming what: plaintext off loopback, a key that is
/// not the certificate's, a key others may read.
fn assert_bad_files_refused(dir: &Path, cfg: &str, ca: &Ca, leaf: &Leaf) {
    let plain = dir.join("plain.toml");
    std::fs::write(
        &plain,
        std::fs::read_to_string(cfg)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("tls_"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let (code, err) = refused(plain.to_str().unwrap(), "0.0.0.0:0", &dir.join("s1"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("0.0.0.0:0") && err.contains("--insecure-plaintext"),
        "{err}"
    );

    let stranger = ca.server("stranger");
    private(&stranger.key);
    let mismatched = dir.join("mismatched.toml");
    std::fs::write(
        &mismatched,
        std::fs::read_to_string(cfg)
            .unwrap()
            .replace(&leaf.key, &stranger.key),
    )
    .unwrap();
    let (code, err) = refused(mismatched.to_str().unwrap(), "127.0.0.1:0", &dir.join("s2"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&stranger.key) && err.contains(&leaf.cert),
        "{err}"
    );

    std::fs::set_permissions(&leaf.key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, err) = refused(cfg, "127.0.0.1:0", &dir.join("s3"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&leaf.key) && err.contains("640"), "{err}");
}
