//! Load on the daemon while it rehearses: `cargo bench --bench daemon_load`
//! (or `scripts/bench-daemon-load.sh`). Loopback only, bounded in time.
//!
//! Starts the release `rekindle daemon` with config/daemon.toml, rehearses
//! braze-us01 a few times with no load (the baseline), then sends status
//! requests (`GET /v1/runs/{id}` of the rehearsal in progress) at a fixed
//! rate for a fixed time while rehearsing braze-us01 back to back. Prints
//! the latency percentiles (measured from each request's scheduled time,
//! so a stall counts against every request it delays) and each
//! rehearsal's makespan (virtual seconds, from the report) and wall time
//! (created → ended, from the daemon's record), with and without load.
//!
//! A control phase sends the same load to a second, idle daemon process
//! while the first rehearses: what the load costs through the machine's
//! shared CPU alone. No-load rehearsals run before and after the load,
//! after a warm-up.
//!
//! Env: LOAD_RPS (default 1000), LOAD_SECONDS (default 30), CONTROL_SECONDS
//! (default 15), BASELINE_RUNS (default 3, before and after), WARMUP_RUNS
//! (default 10), LOAD_CONNECTIONS (default 32), LOAD_TLS=1 (both daemons
//! serve HTTPS with a certificate made here by the openssl CLI: a CA and a
//! server certificate for 127.0.0.1; the load's connections verify it).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "load-test-token";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Daemon {
    child: Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemons' TLS for LOAD_TLS=1: a CA and a server certificate for
/// 127.0.0.1 made with the openssl CLI in `dir`, and the load's client
/// settings that trust that CA.
struct Tls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    client: Arc<rustls::ClientConfig>,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_tls(dir: &std::path::Path) -> Tls {
    use rustls::pki_types::pem::PemObject;
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
                "-days",
                "2",
                "-subj",
                "/CN=load CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &p("d.key"),
                "-out",
                &p("d.csr"),
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(p("d.ext"), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("d.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("d.pem"),
        "-days",
        "2",
        "-extfile",
        &p("d.ext"),
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p("d.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(p("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Tls {
        cert: dir.join("d.pem"),
        key: dir.join("d.key"),
        client: Arc::new(client),
    }
}

/// The client's TLS, when the daemons serve HTTPS.
static CLIENT_TLS: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> =
    std::sync::OnceLock::new();

fn start_daemon(state: &std::path::Path, tls: Option<&Tls>) -> Daemon {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::create_dir_all(state).unwrap();
    let config = state.join("daemon.toml");
    let mut text = format!(
        "[playbooks]\nmongo-sharded = \"{root}/config/mongo-sharded.toml\"\n[scenarios]\nbraze-us01 = \"{root}/config/scenarios/braze-us01.toml\"\n"
    );
    if let Some(t) = tls {
        text = format!("tls_cert = {:?}\ntls_key = {:?}\n{text}", t.cert, t.key);
    }
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state)
        .env("REKINDLE_TOKEN", TOKEN)
        .env("REKINDLE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the daemon (cargo bench builds it)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.strip_prefix(if tls.is_some() { "https://" } else { "http://" }))
        .unwrap_or_else(|| panic!("daemon said {line:?}"))
        .to_string();
    Daemon { child, addr }
}

/// One keep-alive connection.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let sender = match CLIENT_TLS.get().cloned().flatten() {
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                sender
            }
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await
                    .unwrap();
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                sender
            }
        };
        Conn { sender }
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "daemon")
            // Every route but /healthz needs a token (reads a viewer's).
            .header("authorization", format!("Bearer {TOKEN}"));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

#[derive(Debug, Clone)]
struct Rehearsal {
    makespan_s: f64,
    wall_s: f64,
}

/// Rehearses braze-us01 once through the API; polls its end at 4 Hz.
async fn rehearse(addr: &str, current: &Mutex<String>) -> Rehearsal {
    let mut c = Conn::open(addr).await;
    let body = r#"{"playbook":"mongo-sharded","mode":"rehearse","scenario":"braze-us01","reason":"load test"}"#;
    let (status, b) = c.call("POST", "/v1/runs", Some(body.into())).await.unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&b));
    let id = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    *current.lock().unwrap() = id.clone();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, b) = c
            .call("GET", &format!("/v1/runs/{id}"), None)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        if v["ended_at"].is_f64() {
            assert_eq!(v["state"], "succeeded", "{v}");
            return Rehearsal {
                makespan_s: v["result"]["makespan_s"].as_f64().unwrap(),
                wall_s: v["ended_at"].as_f64().unwrap() - v["created_at"].as_f64().unwrap(),
            };
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// Status requests at `rps` for `seconds` against `target` (the run in
/// `current`), while braze-us01 rehearsals run back to back on `addr`.
/// Returns (latencies ms sorted, errors, seconds, rehearsals).
async fn loaded_phase(
    label: &str,
    addr: &str,
    target: &str,
    rps: u64,
    seconds: u64,
    connections: u64,
) -> (Vec<f64>, Vec<String>, f64, Vec<Rehearsal>) {
    let current = Arc::new(Mutex::new(String::from("r1")));
    let start = Instant::now() + Duration::from_millis(100);
    let total = rps * seconds;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..connections {
        let (target, current, latencies, errors) = (
            target.to_string(),
            current.clone(),
            latencies.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut c = Conn::open(&target).await;
            let mut k = w;
            while k < total {
                // Request k is due at start + k / rps.
                let due = start + Duration::from_secs_f64(k as f64 / rps as f64);
                tokio::time::sleep_until(due.into()).await;
                let id = current.lock().unwrap().clone();
                match c.call("GET", &format!("/v1/runs/{id}"), None).await {
                    Ok((200, _)) => latencies
                        .lock()
                        .unwrap()
                        .push(due.elapsed().as_secs_f64() * 1000.0),
                    Ok((s, b)) => errors
                        .lock()
                        .unwrap()
                        .push(format!("{s}: {}", String::from_utf8_lossy(&b))),
                    Err(e) => {
                        errors.lock().unwrap().push(e);
                        c = Conn::open(&target).await;
                    }
                }
                k += connections;
            }
        }));
    }
    let load = futures_util::future::join_all(workers);
    tokio::pin!(load);
    let mut done = Vec::new();
    let mut load_done = false;
    // When the load goes to this daemon, it asks for the rehearsal in
    // progress; otherwise for a run of the other daemon.
    let asks_here = addr == target;
    let shown = Arc::new(Mutex::new(String::new()));
    while !load_done {
        let r = rehearse(addr, if asks_here { &current } else { &shown });
        tokio::pin!(r);
        // A rehearsal that starts under load is finished even if the load
        // ends first.
        loop {
            tokio::select! {
                r = &mut r => {
                    println!("  {label:<9} rehearsal {}: makespan {:.1} s (virtual), wall {:.2} s", done.len() + 1, r.makespan_s, r.wall_s);
                    done.push(r);
                    break;
                }
                _ = &mut load, if !load_done => load_done = true,
            }
        }
    }
    let took = start.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let errors = errors.lock().unwrap().clone();
    (lat, errors, took, done)
}

fn main() {
    // `cargo bench` passes --bench; a filter argument (criterion-style) is ignored.
    let rps = env_or("LOAD_RPS", 1000);
    let seconds = env_or("LOAD_SECONDS", 30);
    let control_seconds = env_or("CONTROL_SECONDS", 15);
    let baseline_runs = env_or("BASELINE_RUNS", 3);
    let warmup_runs = env_or("WARMUP_RUNS", 10);
    let connections = env_or("LOAD_CONNECTIONS", 32);
    let state = tempfile::tempdir().unwrap();
    let tls = (env_or("LOAD_TLS", 0) == 1).then(|| make_tls(state.path()));
    CLIENT_TLS
        .set(tls.as_ref().map(|t| t.client.clone()))
        .unwrap();
    let daemon = start_daemon(&state.path().join("a"), tls.as_ref());
    let other = start_daemon(&state.path().join("b"), tls.as_ref());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (addr, other_addr) = (daemon.addr.clone(), other.addr.clone());
    rt.block_on(async move {
        let scheme = if CLIENT_TLS.get().cloned().flatten().is_some() { "https" } else { "http" };
        println!("daemon_load: {} at {scheme}://{addr}; {rps} status req/s for {seconds} s over {connections} connections", env!("CARGO_BIN_EXE_rekindle"));
        // The other daemon holds one finished run for the control's requests.
        rehearse(&other_addr, &Mutex::new(String::new())).await;
        // A fresh daemon rehearses faster for its first few runs (a young
        // heap); warm it up so both sides of the comparison are on the plateau.
        for _ in 0..warmup_runs {
            rehearse(&addr, &Mutex::new(String::new())).await;
        }
        let mut quiet = Vec::new();
        for i in 0..baseline_runs {
            let r = rehearse(&addr, &Mutex::new(String::new())).await;
            println!("  no load   rehearsal {}: makespan {:.1} s (virtual), wall {:.2} s", i + 1, r.makespan_s, r.wall_s);
            quiet.push(r);
        }
        let (lat, errors, took, loaded) = loaded_phase("loaded", &addr, &addr, rps, seconds, connections).await;
        // Control: the same load sent to another (idle) daemon process on
        // this machine: what the load costs the rehearsal through shared
        // CPU alone, not through the daemon that rehearses.
        let (_, _, _, control) = loaded_phase("control", &addr, &other_addr, rps, control_seconds, connections).await;
        for i in 0..baseline_runs {
            let r = rehearse(&addr, &Mutex::new(String::new())).await;
            println!("  no load   rehearsal {}: makespan {:.1} s (virtual), wall {:.2} s", baseline_runs + i + 1, r.makespan_s, r.wall_s);
            quiet.push(r);
        }
        let q = |xs: &[Rehearsal], f: fn(&Rehearsal) -> f64| median(&xs.iter().map(f).collect::<Vec<_>>());
        let (m0, m1) = (q(&quiet, |r| r.makespan_s), q(&loaded, |r| r.makespan_s));
        let (w0, w1, wc) = (q(&quiet, |r| r.wall_s), q(&loaded, |r| r.wall_s), q(&control, |r| r.wall_s));
        println!();
        println!("status requests   {} answered 200 of {} scheduled, {} errors, over {took:.1} s ({:.0}/s)", lat.len(), rps * seconds, errors.len(), lat.len() as f64 / took);
        println!(
            "latency (ms)      p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}   goal p99 < 50",
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        );
        println!("braze-us01 makespan (virtual s, median)  no load {m0:.1}  loaded {m1:.1}  ratio {:.3}   goal within 5%", m1 / m0);
        println!(
            "braze-us01 wall time (s, median)         no load {w0:.2}  loaded {w1:.2} ({:.3})  load on another daemon {wc:.2} ({:.3})   ({}, {} and {} rehearsals)",
            w1 / w0,
            wc / w0,
            quiet.len(),
            loaded.len(),
            control.len()
        );
        for e in errors.iter().take(5) {
            println!("  error: {e}");
        }
        let json = serde_json::json!({
            "rps": rps, "seconds": seconds, "tls": scheme == "https", "answered": lat.len(), "errors": errors.len(),
            "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "max_ms": lat.last(),
            "makespan_s": { "no_load": m0, "loaded": m1 }, "wall_s": { "no_load": w0, "loaded": w1, "load_elsewhere": wc },
        });
        println!("{json}");
    });
    drop(daemon);
    drop(other);
}
