//! Fuzzing on the stable toolchain (issue 12): one time-bounded target per
//! input rekindle reads from outside. No coverage-guided fuzzer runs here
//! (cargo-fuzz and libFuzzer need nightly), so each target is a property
//! test over arbitrary bytes and structure-aware mutations:
//!
//! 1. every file of `tests/fuzz/regressions/<target>/` (inputs that once
//!    panicked) runs first, always;
//! 2. every seed of `tests/fuzz/corpus/<target>/` runs;
//! 3. for `REKINDLE_FUZZ_SECS` seconds (default 2) mutations of the seeds
//!    run: byte-level (bit flips, interesting bytes and integers, inserted,
//!    deleted and duplicated ranges, splices of two seeds, truncation), of
//!    the format (TOML/JSON numbers at extremes, strings replaced by long,
//!    odd or meaningful ones, lines duplicated, dropped and swapped, values
//!    swapped, deep nesting; journal records re-framed, duplicated, spliced,
//!    lengths changed; BSON lengths, type bytes and terminators), plus pure
//!    arbitrary bytes. Inputs a parser accepts join the pool of inputs to
//!    mutate further (the only feedback there is without coverage).
//!
//! Every input runs under `catch_unwind`. A panic writes the input to
//! `target/fuzz-crashes/<target>-<hash>` and fails the test naming that file;
//! an input that takes more than 2 s (`REKINDLE_FUZZ_SLOW_MS`) is saved to
//! `target/fuzz-slow/` and counted (a finding too, not a failure: time is not
//! deterministic).
//! `REKINDLE_FUZZ_SEED` replays a run's sequence (each run prints its seed).
//!
//! ```text
//! cargo test --test integration fuzz_inputs::      # CI: ~2 s per target
//! scripts/fuzz.sh [TARGET]                       # 600 s per target, release build
//! cargo test --test integration fuzz_inputs::write_corpus -- --ignored   # regenerate generated seeds
//! ```
//!
//! Targets: `playbook`, `scenario`, `inventory`, `journal`, `api` (the
//! daemon's request bodies, through its router), `mongo` (the `hello` reply).

use rekindle::config::Playbook;
use rekindle::daemon::notify::Notifier;
use rekindle::daemon::{Daemon, DaemonSetup};
use rekindle::health::mongo::{parse_reply, parse_router_reply, parse_status_reply};
use rekindle::journal::{self, Journal, JournalError, Record};
use rekindle::rng::SplitMix64;
use rekindle::scenario::Scenario;
use rekindle::source::SourceText;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod corpus;
mod driver;
mod generic;
mod journal_mutants;
mod json_mutants;
mod mongo_mutants;
mod toml_mutants;

use driver::{fuzz, fuzz_dir};
use journal_mutants::{journal_mutant, JOURNAL_DICT};
use json_mutants::{json_mutant, random_api_body, random_inventory, JSON_DICT};
use mongo_mutants::{mongo_mutant, BSON_DICT};
use toml_mutants::{toml_mutant, TOML_DICT};

type Rng = SplitMix64;

/// The largest input a mutation makes (the daemon's own body limit is 16 KiB;
/// playbooks and scenarios are a few KiB).
const MAX_INPUT: usize = 64 * 1024;
/// One input slower than this is a finding (`REKINDLE_FUZZ_SLOW_MS` sets
/// another threshold, to look for the slowest inputs).
fn slow() -> Duration {
    std::env::var("REKINDLE_FUZZ_SLOW_MS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(2))
}
/// Accepted mutants kept to mutate further.
const POOL: usize = 256;

// ---------------------------------------------------------------------------
// The targets

/// `Playbook::parse` on any text; an accepted playbook serializes, and every
/// error is located inside the file.
#[test]
fn playbook() {
    fuzz("playbook", TOML_DICT, exec_playbook, toml_mutant);
}

fn exec_playbook(input: &[u8]) -> bool {
    let src = SourceText::new("fuzz.toml", String::from_utf8_lossy(input).into_owned());
    match Playbook::parse(&src) {
        Ok(pb) => {
            serde_json::to_vec(&pb).expect("a playbook serializes");
            for i in 0..pb.roles.len() {
                pb.restart_queries(i);
            }
            pb.dns.budget_qps();
            true
        }
        Err(e) => {
            check_located(&src, e.line, e.column, &e.to_string());
            false
        }
    }
}

/// `Scenario::parse` on any text; an accepted scenario's derived figures
/// compute, and a small one generates its fleet.
#[test]
fn scenario() {
    fuzz("scenario", TOML_DICT, exec_scenario, toml_mutant);
}

fn exec_scenario(input: &[u8]) -> bool {
    let src = SourceText::new("fuzz.toml", String::from_utf8_lossy(input).into_owned());
    match Scenario::parse(&src) {
        Ok(s) => {
            s.role_counts();
            let total = s.total_containers();
            s.total_startup_lookups();
            s.lower_bound_s();
            serde_json::to_vec(&s).expect("a scenario serializes");
            // Generating copies the domain and label keys into every
            // container: bounded here by the bytes that makes, not by count.
            let per = (s.domain.len() + s.labels.role.len() + s.labels.cluster.len()) as u64;
            let bytes = total * (per + s.labels.replset.len() as u64 + 64);
            if total <= 5_000 && s.hosts <= 10_000 && bytes <= 4 << 20 {
                let fleet = s.fleet();
                assert_eq!(fleet.all.len() as u64, total, "fleet size");
                fleet.inventory();
            }
            true
        }
        Err(e) => {
            check_located(&src, e.line, e.column, &e.to_string());
            false
        }
    }
}

/// `inventory::file::parse` on any text; an accepted inventory reads back
/// the same from what it writes.
#[test]
fn inventory() {
    fuzz("inventory", JSON_DICT, exec_inventory, |rng, pool| {
        json_mutant(rng, pool, random_inventory)
    });
}

fn exec_inventory(input: &[u8]) -> bool {
    let src = SourceText::new("fuzz.json", String::from_utf8_lossy(input).into_owned());
    match rekindle::inventory::file::parse(&src) {
        Ok(inv) => {
            let text = serde_json::to_string(&inv).expect("an inventory serializes");
            let again = rekindle::inventory::file::parse(&SourceText::new("again.json", text))
                .expect("an inventory reads what it writes");
            assert_eq!(again.containers, inv.containers);
            assert_eq!(again.hosts, inv.hosts);
            true
        }
        Err(e) => {
            check_located(&src, e.line, e.column, &e.to_string());
            false
        }
    }
}

/// `journal::read` on a file of any bytes: `Ok` or a `JournalError`. When it
/// is `Ok` and starts with a run, `Journal::resume` takes it, cuts what was
/// damaged, and the file then reads whole with the same records.
#[test]
fn journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let writer_dir = dir.path().join("written");
    std::fs::create_dir_all(&writer_dir).unwrap();
    let mut made = 0u64;
    fuzz(
        "journal",
        JOURNAL_DICT,
        |input| exec_journal(input, &path),
        |rng, pool| {
            made += 1;
            journal_mutant(rng, pool, &writer_dir.join(made.to_string()))
        },
    );
}

fn exec_journal(input: &[u8], path: &Path) -> bool {
    std::fs::write(path, input).unwrap();
    match journal::read(path) {
        Ok((replay, valid)) => {
            let valid = valid as usize;
            assert!(valid <= input.len(), "valid length past the end");
            if replay.torn.is_none() {
                assert_eq!(valid, input.len(), "not torn, yet not read to the end");
            }
            if let Some(Record::Start {
                playbook,
                fingerprint,
                ..
            }) = replay.records.first()
            {
                let (j, again) = Journal::resume(path, playbook, fingerprint, false)
                    .expect("a journal that reads and starts with a run resumes");
                drop(j);
                assert_eq!(again.records, replay.records);
                assert_eq!(std::fs::metadata(path).unwrap().len() as usize, valid);
                let (whole, len) = journal::read(path).expect("a resumed journal reads");
                assert!(whole.torn.is_none(), "torn after resume cut it");
                assert_eq!(whole.records, replay.records);
                assert_eq!(len as usize, valid);
            }
            !replay.records.is_empty()
        }
        Err(JournalError::Corrupt { offset, .. }) => {
            assert!(offset < input.len(), "corrupt offset past the end");
            false
        }
        Err(e) => panic!("journal::read may only fail as Corrupt here, not: {e}"),
    }
}

/// The daemon's JSON request bodies through its own router (served on a unix
/// socket in this process): POST /v1/runs, PATCH /v1/runs/{id}, POST
/// /v1/runs/{id}/pause. Every answer is a 4xx (the daemon serves no
/// playbook, so nothing can start); no answer at all is a handler panic.
#[test]
fn api() {
    let dir = tempfile::tempdir().unwrap();
    let sock = serve_api(dir.path());
    fuzz(
        "api",
        JSON_DICT,
        |input| exec_api(input, &sock),
        |rng, pool| json_mutant(rng, pool, random_api_body),
    );
}

const API_TOKEN: &str = "fuzz-token";

fn serve_api(dir: &Path) -> PathBuf {
    let sock = dir.join("api.sock");
    let state = dir.join("state");
    let (tx, rx) = std::sync::mpsc::channel();
    let at = sock.clone();
    std::thread::Builder::new()
        .name("fuzz-api-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let d = Daemon::new(DaemonSetup {
                    playbooks: BTreeMap::new(),
                    scenarios: BTreeMap::new(),
                    tokens: vec![rekindle::daemon::Token {
                        name: "fuzz".into(),
                        role: rekindle::daemon::Role::Operator,
                        secret: API_TOKEN.into(),
                    }],
                    metrics_public: false,
                    state_dir: state,
                    notifier: Notifier::default(),
                    ha: None,
                })
                .unwrap();
                let listener = tokio::net::UnixListener::bind(&at).unwrap();
                tx.send(()).unwrap();
                axum::serve(listener, rekindle::api::router(Arc::new(d)))
                    .await
                    .unwrap();
            });
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the daemon's router listens");
    sock
}

/// One HTTP/1.1 exchange; `None` when the server closed without answering.
fn call(sock: &Path, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = UnixStream::connect(sock).expect("the daemon's socket accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A body over the limit may be refused before it is read: keep going.
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((status, body.to_string()))
}

fn exec_api(input: &[u8], sock: &Path) -> bool {
    let mut accepted = false;
    for (method, path) in [
        ("POST", "/v1/runs"),
        ("PATCH", "/v1/runs/r1"),
        ("POST", "/v1/runs/r1/pause"),
    ] {
        let Some((status, body)) = call(sock, method, path, input) else {
            panic!(
                "{method} {path}: the connection closed without an answer (a handler panicked?)"
            );
        };
        assert!(
            (400..500).contains(&status),
            "{method} {path}: status {status}, expected a 4xx: {body}"
        );
        if path == "/v1/runs" && !body.contains("request body") {
            accepted = true;
        }
    }
    accepted
}

/// `health::mongo::parse_reply` (and the connPoolStats and
/// replSetGetStatus readers) on any bytes, with the request id the frame
/// answers (so the body is parsed) and with another one.
#[test]
fn mongo() {
    fuzz("mongo", BSON_DICT, exec_mongo, mongo_mutant);
}

fn exec_mongo(input: &[u8]) -> bool {
    let id = input
        .get(8..12)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .unwrap_or(0);
    let _ = parse_reply(input, id.wrapping_add(1));
    // The router and member gates read the same frames deeper.
    if let Ok(view) = parse_router_reply(input, id) {
        let _ = view.unreachable(&[]);
        let _ = view.unreachable(&["rs0".to_string()]);
    }
    if let Ok(status) = parse_status_reply(input, id) {
        let _ = status.lag_ms();
    }
    match parse_reply(input, id) {
        Ok(hello) => {
            hello.server_type();
            let _ = hello.member_verdict(Some("rs0"), false);
            let _ = hello.member_verdict(None, true);
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

/// An error names a line and column inside the file (1-based).
fn check_located(src: &SourceText, line: usize, column: usize, shown: &str) {
    let lines = src.text.split('\n').count();
    assert!(
        (1..=lines).contains(&line) && column >= 1,
        "error outside the file ({lines} lines): {shown}"
    );
}

// ---------------------------------------------------------------------------
// The generated seeds

/// Writes the seeds this file generates (journals, hello replies, inventory
/// files, API bodies) into `tests/fuzz/corpus/`. The text seeds of the
/// playbook and scenario targets are copies of the shipped files.
#[test]
#[ignore = "regenerates tests/fuzz/corpus: run by hand"]
fn write_corpus() {
    corpus::journals();
    corpus::hello_replies();
    corpus::status_replies();
    corpus::inventories();
    corpus::api_bodies();
}
