//! The Docker runtime over TCP + TLS with client certificates, against the
//! machine's real engine behind a TLS front that verifies clients as
//! `dockerd --tlsverify` does (the engine itself listens on its unix
//! socket only; its TLS listener cannot be reconfigured from a test).

use crate::common;
use common::tls::{Ca, Leaf, TlsFront};
use common::*;

/// The test playbook with one host entry of the caller's instead of the
/// two unix-socket entries (`hosts` empty: none, the environment decides).
fn playbook_with(
    dir: &std::path::Path,
    id: &str,
    on_unreachable: &str,
    hosts: &str,
    file: &str,
) -> String {
    let text = run_playbook(id, "", on_unreachable);
    let text = &text[..text.find("[[hosts]]").unwrap()];
    let path = dir.join(file);
    std::fs::write(&path, format!("{text}{hosts}")).unwrap();
    path.to_str().unwrap().to_string()
}

fn tls_host(port: u16, ca: &str, cert: &str, key: &str) -> String {
    format!("[[hosts]]\nname = \"tls-engine\"\nurl = \"https://localhost:{port}\"\ntls = {{ ca = {ca:?}, cert = {cert:?}, key = {key:?} }}\n")
}

#[test]
fn docker_over_tls_restarts_with_client_certificates_and_refuses_strangers_by_name() {
    if !docker_available(
        "docker_over_tls_restarts_with_client_certificates_and_refuses_strangers_by_name",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine_ca = Ca::new(dir.path(), "engine");
    let server = engine_ca.server("engine");
    let client = engine_ca.client("rekindle");
    let front = TlsFront::start(&engine_ca, &server, "/var/run/docker.sock");

    let id = TestFleet::id_for("tls");
    // 1 cluster: 3 config servers, 1 shard × 3, 1 router.
    let fleet = TestFleet::start(&id, sharded_specs(&id, 1, 1, 1));
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();

    // The playbook's tls = { ca, cert, key }: a whole run, each container once.
    let pb = playbook_with(
        dir.path(),
        &id,
        "fail",
        &tls_host(front.port, &engine_ca.cert, &client.cert, &client.key),
        "tls.toml",
    );
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state]);
    assert_eq!(
        ran.code,
        Some(0),
        "{ran}\nrefused handshakes: {:?}",
        front.refusals()
    );
    let started = starts(&log.stop());
    for name in &fleet.names {
        assert_eq!(
            started.get(name).copied(),
            Some(1),
            "{name}: {started:?}\n{ran}"
        );
    }
    assert!(front.refusals().is_empty(), "{:?}", front.refusals());

    // No [[hosts]]: DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (ca.pem,
    // cert.pem, key.pem in it), as the docker CLI reads them.
    assert_docker_env_read(dir.path(), &id, front.port, &engine_ca, &client, state);

    // A client certificate from another CA: the engine refuses the
    // handshake; rekindle names the host and restarts nothing.
    let stranger_ca = Ca::new(dir.path(), "stranger");
    let stranger = stranger_ca.client("stranger");
    let pb = playbook_with(
        dir.path(),
        &id,
        "fail",
        &tls_host(front.port, &engine_ca.cert, &stranger.cert, &stranger.key),
        "stranger.toml",
    );
    let log = EventLog::follow(&id);
    let before = front.refusals().len();
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state]);
    assert_eq!(ran.code, Some(1), "{ran}");
    // The cause, not just "client error": the engine's TLS alert.
    assert!(
        ran.stderr.contains("tls-engine") && ran.stderr.contains("alert"),
        "{ran}"
    );
    // The front logs a refusal after it sent the alert: rekindle may have
    // exited before the log line is read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while front.refusals().len() <= before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        front.refusals().len() > before,
        "the engine saw no refused handshake: {ran}"
    );
    assert!(
        starts(&log.stop()).is_empty(),
        "nothing may restart when the engine refuses us"
    );

    // An engine whose certificate our CA did not sign: rekindle refuses it.
    let pb = playbook_with(
        dir.path(),
        &id,
        "fail",
        &tls_host(front.port, &stranger_ca.cert, &client.cert, &client.key),
        "untrusted.toml",
    );
    let ran = rekindle(&["run", &pb, "--dry-run", "--state-dir", state]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr.contains("tls-engine") && ran.stderr.contains("UnknownIssuer"),
        "{ran}"
    );

    // A certificate file that is not there: a configuration error naming it.
    let missing = dir.path().join("nowhere/cert.pem");
    let pb = playbook_with(
        dir.path(),
        &id,
        "fail",
        &tls_host(
            front.port,
            &engine_ca.cert,
            missing.to_str().unwrap(),
            &client.key,
        ),
        "missing.toml",
    );
    let ran = rekindle(&["run", &pb, "--dry-run", "--state-dir", state]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr.contains("tls-engine")
            && ran.stderr.contains("tls.cert")
            && ran.stderr.contains("nowhere/cert.pem"),
        "{ran}"
    );
}

/// No [[hosts]]: DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
/// (ca.pem, cert.pem, key.pem in it), as the docker CLI reads them; a dry
/// run finds the fleet through the TLS front on `port`.
fn assert_docker_env_read(
    dir: &std::path::Path,
    id: &str,
    port: u16,
    engine_ca: &Ca,
    client: &Leaf,
    state: &str,
) {
    let certs = dir.join("docker-certs");
    std::fs::create_dir_all(&certs).unwrap();
    for (from, to) in [
        (&engine_ca.cert, "ca.pem"),
        (&client.cert, "cert.pem"),
        (&client.key, "key.pem"),
    ] {
        std::fs::copy(from, certs.join(to)).unwrap();
    }
    let pb = playbook_with(dir, id, "fail", "", "env.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(["run", &pb, "--dry-run", "--state-dir", state])
        .env("DOCKER_HOST", format!("tcp://localhost:{}", port))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("7 containers on 1 hosts"),
        "{stdout}\n{stderr}"
    );
}
