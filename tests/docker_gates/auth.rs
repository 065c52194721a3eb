//! The gates with credentials (SCRAM-SHA-256, SCRAM-SHA-1 with the extra
//! SASL round) and over TLS with client certificates; a wrong password or a
//! refused handshake stops the run in preflight.

use super::*;

/// Every file under `dir`, read as text (journals, reports).
fn all_text_under(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

#[test]
fn credentials_authenticate_the_gates_and_a_wrong_password_stops_the_run_in_preflight() {
    if !docker_available(
        "credentials_authenticate_the_gates_and_a_wrong_password_stops_the_run_in_preflight",
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    const RIGHT: &str = "correct-horse-7Qx";
    const WRONG: &str = "wrong-battery-9Zk";
    let id = TestFleet::id_for("auth");
    let net = TestNetwork::create(&id);
    // 1 cluster: 3 config servers, 1 shard of 3, 2 routers; every process
    // requires SCRAM-SHA-256 for anything but hello.
    let mut specs = gated_specs_with(&id, 1, 1, 2, 0);
    for s in specs.iter_mut() {
        s.env.push(("DBNODE_AUTH_USER".into(), "rekindle".into()));
        s.env.push(("DBNODE_AUTH_PASSWORD".into(), RIGHT.into()));
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("mongo-password");
    let pb = write_playbook(&dir, "auth.toml", &authenticated_playbook(&id, &pw));

    // The right password: every gate authenticates and passes.
    std::fs::write(&pw, format!("{RIGHT}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state-right");
    let report = dir.path().join("report-right");
    let log = EventLog::follow(&id);
    let ran = rekindle(&[
        "run",
        &pb,
        "--yes",
        "--state-dir",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stderr.contains("authenticated, connPoolStats"), "{ran}");
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }
    let written = all_text_under(&state) + &all_text_under(&report);
    assert!(!written.is_empty());
    for text in [&ran.stdout, &ran.stderr, &written] {
        assert!(!text.contains(RIGHT), "the password leaked");
    }

    // A wrong password: pre-flight stops the run, exit 2, nothing
    // restarted, the container and "authentication failed" named.
    std::fs::write(&pw, format!("{WRONG}\n")).unwrap();
    let state = dir.path().join("state-wrong");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(2), "{ran}");
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        out.contains("pre-flight failed") && out.contains("authentication failed"),
        "{ran}"
    );
    assert!(
        fleet
            .names
            .iter()
            .any(|n| out.contains(&format!("container {n} "))),
        "the failure names the container\n{ran}"
    );
    assert!(starts(&events).is_empty(), "nothing restarted: {events:?}");
    // A survey with the wrong password: refused once by its pre-flight,
    // not "authentication failed" as every container's finding.
    let surveyed = rekindle(&["survey", &pb]);
    assert_eq!(surveyed.code, Some(2), "{surveyed}");
    let said = format!("{}{}", surveyed.stdout, surveyed.stderr);
    assert!(
        said.contains("authentication failed") && !said.contains("Not ok:"),
        "{surveyed}"
    );
    assert!(
        said.matches("authentication failed").count() < fleet.names.len(),
        "named once, not per container: {surveyed}"
    );
    for text in [&ran.stdout, &ran.stderr, &all_text_under(&state)] {
        assert!(
            !text.contains(WRONG) && !text.contains(RIGHT),
            "the password leaked"
        );
    }

    // The file readable by everyone, or missing: a located error (exit 2).
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr.contains("mongo.password_file") && ran.stderr.contains("readable by every user"),
        "{ran}"
    );
    let missing = write_playbook(
        &dir,
        "missing.toml",
        &authenticated_playbook(&id, &dir.path().join("nope")),
    );
    let ran = rekindle(&[
        "run",
        &missing,
        "--yes",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr.contains("mongo.password_file") && ran.stderr.contains("nope"),
        "{ran}"
    );
    assert!(!ran.stderr.contains(WRONG));
}

/// The run playbook with the mongo gates (members with max_lag, routers
/// stuck after 2 s) authenticating as `rekindle` with the password in
/// `password_file`.
fn authenticated_playbook(id: &str, password_file: &std::path::Path) -> String {
    run_playbook(id, "", "fail")
        .replace(
            r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27019, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27018, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongos", port = 27017, stuck_after = "2s", interval = "250ms", deadline = "30s" }"#,
        )
        + &format!("[mongo]\nuser = \"rekindle\"\npassword_file = {:?}\n", password_file.to_str().unwrap())
}

#[test]
fn gates_over_tls_with_client_certificates_and_a_refused_handshake_stops_the_run_in_preflight() {
    if !docker_available("gates_over_tls_with_client_certificates_and_a_refused_handshake_stops_the_run_in_preflight") {
        return;
    }
    let id = TestFleet::id_for("tls");
    // Fixed addresses, so that each certificate can carry the address
    // rekindle dials (and the name the mongos dials).
    let pid = std::process::id();
    let subnet = format!("10.{}.{}", 100 + pid % 100, (pid / 100) % 250);
    let net = TestNetwork::create_with(&id, &["--subnet", &format!("{subnet}.0/24")]);
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::Ca::new(dir.path(), "mongo");
    let pem = |path: &str| std::fs::read_to_string(path).unwrap();
    // 1 cluster: 3 config servers, 1 shard of 3, 1 router; TLS only, client
    // certificates required.
    let mut specs = gated_specs_with(&id, 1, 1, 1, 0);
    for (i, s) in specs.iter_mut().enumerate() {
        let ip = format!("{subnet}.{}", 10 + i);
        let leaf = ca.issue(
            &s.name,
            &format!(
                "subjectAltName=DNS:{},IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n",
                s.name
            ),
        );
        s.env.push(("DBNODE_TLS_CERT".into(), pem(&leaf.cert)));
        s.env.push(("DBNODE_TLS_KEY".into(), pem(&leaf.key)));
        s.env.push(("DBNODE_TLS_CA".into(), pem(&ca.cert)));
        s.ip = Some(ip);
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let client = ca.client("rekindle");
    let playbook = |tls: &str| {
        run_playbook(&id, "", "fail")
            .replace(
                r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongo", port = 27019, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
            )
            .replace(
                r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongo", port = 27018, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
            )
            .replace(
                r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongos", port = 27017, stuck_after = "2s", interval = "250ms", deadline = "30s" }"#,
            )
            + "[mongo.tls]\n"
            + tls
    };
    let pb = write_playbook(
        &dir,
        "tls.toml",
        &playbook(&format!(
            "ca = {:?}\ncert = {:?}\nkey = {:?}\n",
            ca.cert, client.cert, client.key
        )),
    );
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(
        ran.stderr.contains("(TLS, ") && ran.stderr.contains("connPoolStats"),
        "{ran}"
    );
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }

    // No client certificate: the servers refuse the handshake; pre-flight
    // stops the run, nothing restarted.
    let pb = write_playbook(
        &dir,
        "no-cert.toml",
        &playbook(&format!("ca = {:?}\n", ca.cert)),
    );
    let state = dir.path().join("state-no-cert");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr.contains("pre-flight failed") && ran.stderr.contains("TLS"),
        "{ran}"
    );
    assert!(starts(&events).is_empty(), "nothing restarted: {events:?}");
}

/// Issue 24: SCRAM-SHA-1 end to end (a server that offers only SHA-1, and
/// wants the empty last SASL round of servers before 4.4): every gate
/// authenticates (the member gate's `replSetGetStatus`, the router gate's
/// `connPoolStats`) and the run passes; a wrong password is refused in the
/// pre-flight.
#[test]
fn scram_sha1_with_the_extra_sasl_round_authenticates_every_gate() {
    if !docker_available("scram_sha1_with_the_extra_sasl_round_authenticates_every_gate") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    const RIGHT: &str = "sha1-horse-4Lp";
    let id = TestFleet::id_for("sha1");
    let net = TestNetwork::create(&id);
    let mut specs = gated_specs_with(&id, 1, 1, 1, 0);
    for s in specs.iter_mut() {
        s.env.push(("DBNODE_AUTH_USER".into(), "rekindle".into()));
        s.env.push(("DBNODE_AUTH_PASSWORD".into(), RIGHT.into()));
        s.env
            .push(("DBNODE_AUTH_MECHS".into(), "SCRAM-SHA-1".into()));
        s.env.push(("DBNODE_SASL_EXTRA_ROUND".into(), "1".into()));
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("mongo-password");
    let text = shipped_gates_playbook(&id, r#", max_lag = "5s""#)
        + &format!(
            "[mongo]\nuser = \"rekindle\"\npassword_file = {:?}\n",
            pw.to_str().unwrap()
        );
    let pb = write_playbook(&dir, "sha1.toml", &text);
    std::fs::write(&pw, format!("{RIGHT}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stderr.contains("authenticated, connPoolStats"), "{ran}");
    assert!(
        ran.stderr.contains("authenticated, replSetGetStatus"),
        "{ran}"
    );
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let ran = rekindle(&[
        "run",
        &pb,
        "--yes",
        "--state-dir",
        dir.path().join("s2").to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains("authentication failed"),
        "{ran}"
    );
}
