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
// The driver

fn budget() -> Duration {
    let secs = std::env::var("REKINDLE_FUZZ_SECS")
        .ok()
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("REKINDLE_FUZZ_SECS={s:?}: expected seconds"))
        })
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn run_seed() -> u64 {
    match std::env::var("REKINDLE_FUZZ_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("REKINDLE_FUZZ_SEED={s:?}: expected an integer")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind)
        .join(target)
}

/// The files of a directory, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn save(kind: &str, target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(kind);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{target}-{:016x}", fnv(input)));
    std::fs::write(&path, input).unwrap();
    path
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[derive(Default)]
struct Stats {
    slow_limit: Duration,
    inputs: u64,
    accepted: u64,
    slow: Vec<PathBuf>,
    slowest: Duration,
}

/// Runs one input; a panic fails the test and names the saved input.
fn run_one(
    target: &str,
    exec: &mut dyn FnMut(&[u8]) -> bool,
    input: &[u8],
    stats: &mut Stats,
    origin: Option<&Path>,
) -> bool {
    let t = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| exec(input)));
    let took = t.elapsed();
    stats.inputs += 1;
    stats.slowest = stats.slowest.max(took);
    if took > stats.slow_limit {
        let file = save("fuzz-slow", target, input);
        eprintln!(
            "fuzz {target}: one input took {:.1} s: {}",
            took.as_secs_f64(),
            file.display()
        );
        stats.slow.push(file);
    }
    match r {
        Ok(accepted) => {
            stats.accepted += accepted as u64;
            accepted
        }
        Err(p) => {
            let msg = panic_message(&*p);
            match origin {
                Some(file) => panic!(
                    "fuzz {target}: regression {} panics again: {msg}",
                    file.display()
                ),
                None => {
                    let file = save("fuzz-crashes", target, input);
                    panic!(
                        "fuzz {target}: an input panicked ({msg}) after {} inputs; saved to {} \
                         (fix it, then move it to tests/fuzz/regressions/{target}/)",
                        stats.inputs,
                        file.display()
                    )
                }
            }
        }
    }
}

/// Regressions, seeds, then mutants for the time budget. `structured` makes
/// a structure-aware mutant from the pool (seeds and accepted mutants).
fn fuzz(
    target: &str,
    dict: &[&[u8]],
    mut exec: impl FnMut(&[u8]) -> bool,
    mut structured: impl FnMut(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
) {
    let seed = run_seed() ^ fnv(target.as_bytes());
    let mut rng = Rng::new(seed);
    let mut stats = Stats {
        slow_limit: slow(),
        ..Stats::default()
    };
    let start = Instant::now();

    let regressions = files(&fuzz_dir("regressions", target));
    for (path, input) in &regressions {
        run_one(target, &mut exec, input, &mut stats, Some(path));
    }
    let seeds = files(&fuzz_dir("corpus", target));
    assert!(
        !seeds.is_empty(),
        "no seeds in {}",
        fuzz_dir("corpus", target).display()
    );
    let mut pool: Vec<Vec<u8>> = Vec::new();
    for (_, input) in &seeds {
        run_one(target, &mut exec, input, &mut stats, None);
        pool.push(input.clone());
    }
    let fixed = pool.len();

    let deadline = start + budget();
    let (mut mutated, mut arbitrary) = (0u64, 0u64);
    while Instant::now() < deadline {
        let input = match rng.below(16) {
            0 => {
                arbitrary += 1;
                random_bytes(&mut rng)
            }
            1 => {
                mutated += 1;
                token_soup(&mut rng, dict)
            }
            2..=7 => {
                mutated += 1;
                let mut m = pick(&mut rng, &pool).clone();
                havoc(&mut rng, &mut m, &pool, dict);
                m
            }
            _ => {
                mutated += 1;
                let mut m = structured(&mut rng, &pool);
                if rng.below(4) == 0 {
                    havoc(&mut rng, &mut m, &pool, dict);
                }
                m
            }
        };
        if run_one(target, &mut exec, &input, &mut stats, None) {
            if pool.len() < fixed + POOL {
                pool.push(input);
            } else {
                let i = fixed + rng.below(POOL as u64) as usize;
                pool[i] = input;
            }
        }
    }
    println!(
        "fuzz {target}: {} inputs in {:.1} s ({} regressions, {} seeds, {mutated} mutated, \
         {arbitrary} arbitrary; {} accepted), 0 panics, {} slow (slowest {:.1} ms), seed {seed}",
        stats.inputs,
        start.elapsed().as_secs_f64(),
        regressions.len(),
        seeds.len(),
        stats.accepted,
        stats.slow.len(),
        stats.slowest.as_secs_f64() * 1e3,
    );
    for f in &stats.slow {
        println!("fuzz {target}: slow input {}", f.display());
    }
}

// ---------------------------------------------------------------------------
// Generic mutations

fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.below(xs.len() as u64) as usize]
}

fn chance(rng: &mut Rng, one_in: u64) -> bool {
    rng.below(one_in) == 0
}

/// A length with a bias to small ones.
fn small(rng: &mut Rng, max: usize) -> usize {
    let cap = *pick(rng, &[4usize, 16, 64, 256, max]);
    rng.below(cap.min(max) as u64 + 1) as usize
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = small(rng, 4096);
    let ascii = chance(rng, 2);
    (0..n)
        .map(|_| {
            let b = rng.next_u64() as u8;
            if ascii {
                b % 96 + 32
            } else {
                b
            }
        })
        .collect()
}

const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'"', b'\'', b'\\', b'\n', b'\r', b'\t', b' ', b'=', b'[',
    b']', b'{', b'}', b',', b':', b'.', b'-', b'#',
];

const INTS: &[i64] = &[
    -1,
    0,
    1,
    4,
    5,
    8,
    16,
    20,
    21,
    127,
    128,
    255,
    256,
    2013,
    16 * 1024,
    0x7fff,
    0xffff,
    1 << 20,
    i32::MAX as i64,
    i32::MIN as i64,
    u32::MAX as i64,
    i64::MAX,
    i64::MIN,
];

/// 1 to 8 stacked byte-level (and, for text, token-level) mutations.
fn havoc(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    for _ in 0..1 + rng.below(8) {
        mutate_bytes(rng, data, pool, dict);
        if data.len() > MAX_INPUT {
            data.truncate(MAX_INPUT);
        }
    }
}

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    let at = |rng: &mut Rng| rng.below(len as u64 + 1) as usize;
    match rng.below(16) {
        0 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            data[i] = *pick(rng, BYTES);
        }
        2 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            data[i] = rng.next_u64() as u8;
        }
        3 => {
            let i = at(rng);
            let n = 1 + small(rng, 32);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(i..i, bytes);
        }
        4 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            let n = (1 + small(rng, len)).min(len - i);
            data.drain(i..i + n);
        }
        5 if len > 0 => {
            // Duplicate a range, sometimes many times over.
            let i = rng.below(len as u64) as usize;
            let n = (1 + small(rng, 256)).min(len - i);
            let chunk = data[i..i + n].to_vec();
            let times = if chance(rng, 8) {
                1 + small(rng, 1000)
            } else {
                1
            };
            let j = at(rng);
            let rep: Vec<u8> = chunk
                .iter()
                .copied()
                .cycle()
                .take((n * times).min(MAX_INPUT))
                .collect();
            data.splice(j..j, rep);
        }
        6 => {
            // Splice: this one's head, another's tail.
            let other = pick(rng, pool);
            let i = at(rng);
            let j = rng.below(other.len() as u64 + 1) as usize;
            data.truncate(i);
            data.extend_from_slice(&other[j..]);
        }
        7 => {
            // Another's chunk over or into this one.
            let other = pick(rng, pool);
            if !other.is_empty() {
                let j = rng.below(other.len() as u64) as usize;
                let n = (1 + small(rng, 256)).min(other.len() - j);
                let i = at(rng);
                let end = if chance(rng, 2) { (i + n).min(len) } else { i };
                data.splice(i..end, other[j..j + n].iter().copied());
            }
        }
        8 => {
            let v = *pick(rng, INTS);
            let bytes: Vec<u8> = if chance(rng, 2) {
                (v as i32).to_le_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            };
            let i = at(rng);
            let end = if chance(rng, 2) {
                (i + bytes.len()).min(len)
            } else {
                i
            };
            data.splice(i..end, bytes);
        }
        9 => {
            let i = at(rng);
            data.truncate(i);
        }
        10 | 11 if !dict.is_empty() => {
            let i = at(rng);
            data.splice(i..i, pick(rng, dict).iter().copied());
        }
        12 => replace_number(rng, data),
        13 => replace_string(rng, data),
        14 => mutate_lines(rng, data, dict),
        _ => insert_nesting(rng, data),
    }
}

/// Dictionary tokens and values, space- or newline-separated.
fn token_soup(rng: &mut Rng, dict: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + small(rng, 64) {
        match rng.below(4) {
            0 => out.extend_from_slice(pick(rng, NUMBERS).as_bytes()),
            1 => {
                out.push(b'"');
                out.extend_from_slice(pick(rng, STRINGS).as_bytes());
                out.push(b'"');
            }
            _ => {
                let token = pick::<&[u8]>(rng, dict);
                out.extend_from_slice(token);
            }
        }
        out.push(*pick(rng, b" \n=,:"));
    }
    out
}

const NUMBERS: &[&str] = &[
    "-1",
    "0",
    "1",
    "-0",
    "0.0",
    "-0.0",
    "2",
    "3",
    "1.5",
    "0.5",
    "1e308",
    "-1e308",
    "1e309",
    "1e-400",
    "5e-324",
    "1.7976931348623157e308",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "4294967295",
    "4294967296",
    "2147483647",
    "2147483648",
    "65535",
    "65536",
    "100000",
    "1000001",
    "10000000",
    "99999999999999999999999999999999",
    "nan",
    "+nan",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "NaN",
    "1_000_000",
    "0x7fffffff",
    "0xffffffffffffffff",
    "0o777",
    "0b101",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "true",
    "false",
    "null",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "\\u0000",
    "\\n",
    "\\\"",
    "\\uD800",
    "é",
    "漢字",
    "🦀",
    "\u{feff}",
    "all",
    "absolute",
    "search",
    "start",
    "restart",
    "warn",
    "fail",
    "docker",
    "tcp",
    "exec",
    "mongo",
    "queue",
    "per_second",
    "configsvr",
    "shard",
    "router",
    "run",
    "rehearse",
    "plan",
    "r1",
    "0",
    "3",
    "500ms",
    "0ms",
    "2m",
    "1h",
    "1.5s",
    "0.0000001s",
    "-5s",
    "1e30s",
    "NaNs",
    "infs",
    ".",
    "..",
    "1.5.5ms",
    "99999999999999999999",
    "99999999999999999999h",
    "18446744073709551616s",
    "1e308",
    "http://",
    "https://[::1",
    "http://a:99999/x",
    "http://127.0.0.1:8080/metrics",
    "unix://",
    "unix:///var/run/docker.sock",
    "tcp://h:2376",
    "127.0.0.1:5353",
    "10.0.0.2",
    "::1",
    "[::1]:53",
    "1.2.3.4:99999",
    "db.role",
    "db.cluster",
    "db.replset",
    "mongo-sharded",
    "smoke",
    "running",
    "exited",
];

/// Maximal runs of number characters that hold a digit.
fn number_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let is_num = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'+' | b'-' | b'e' | b'E' | b'_');
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_num(b[i]) {
            let mut j = i;
            while j < b.len() && is_num(b[j]) {
                j += 1;
            }
            if b[i..j].iter().any(u8::is_ascii_digit) {
                spans.push((i, j));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    spans
}

/// Contents of double-quoted strings (quotes not after a backslash, paired).
fn string_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let quotes: Vec<usize> = (0..b.len())
        .filter(|&i| b[i] == b'"' && (i == 0 || b[i - 1] != b'\\'))
        .collect();
    quotes.chunks_exact(2).map(|q| (q[0] + 1, q[1])).collect()
}

fn replace_number(rng: &mut Rng, data: &mut Vec<u8>) {
    let spans = number_spans(data);
    if spans.is_empty() {
        return;
    }
    let (i, j) = *pick(rng, &spans);
    let with = pick(rng, NUMBERS).as_bytes().to_vec();
    data.splice(i..j, with);
}

fn long_string(rng: &mut Rng) -> String {
    let n = *pick(rng, &[256usize, 4096, 16 * 1024, 60 * 1024]);
    let unit = *pick(rng, &["a", "é", "9", "\\\\", "🦀", " "]);
    unit.repeat(n / unit.len().max(1))
}

fn replace_string(rng: &mut Rng, data: &mut Vec<u8>) {
    let spans = string_spans(data);
    if spans.is_empty() {
        return;
    }
    let (i, j) = *pick(rng, &spans);
    let with = if chance(rng, 6) {
        long_string(rng)
    } else {
        pick(rng, STRINGS).to_string()
    };
    data.splice(i..j, with.into_bytes());
}

/// Line-level: duplicate a block (sometimes hundreds of times), drop, swap,
/// move, or insert a dictionary line; or swap two values after `=`/`:`.
fn mutate_lines(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&[u8]]) {
    let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let n = lines.len();
    let at = |rng: &mut Rng| rng.below(n as u64) as usize;
    match rng.below(6) {
        0 => {
            let i = at(rng);
            let k = (1 + small(rng, 16)).min(n - i);
            let block: Vec<Vec<u8>> = lines[i..i + k].to_vec();
            let times = if chance(rng, 4) {
                1 + small(rng, 500)
            } else {
                1
            };
            let mut size = data.len();
            let mut insert = Vec::new();
            for _ in 0..times {
                size += block.iter().map(|l| l.len() + 1).sum::<usize>();
                if size > MAX_INPUT {
                    break;
                }
                insert.extend(block.iter().cloned());
            }
            let j = at(rng);
            lines.splice(j..j, insert);
        }
        1 if n > 1 => {
            lines.remove(at(rng));
        }
        2 => {
            let (a, b) = (at(rng), at(rng));
            lines.swap(a, b);
        }
        3 => {
            let l = lines.remove(at(rng));
            let j = rng.below(lines.len() as u64 + 1) as usize;
            lines.insert(j, l);
        }
        4 if !dict.is_empty() => {
            let j = at(rng);
            lines.insert(j, pick(rng, dict).to_vec());
        }
        _ => {
            // Swap the values of two `key = value` (or `"key": value`) lines.
            let with_value: Vec<(usize, usize)> = lines
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    l.iter()
                        .position(|&b| b == b'=' || b == b':')
                        .map(|p| (i, p))
                })
                .collect();
            if with_value.len() >= 2 {
                let (a, pa) = *pick(rng, &with_value);
                let (b, pb) = *pick(rng, &with_value);
                if a != b {
                    let va = lines[a][pa + 1..].to_vec();
                    let vb = lines[b][pb + 1..].to_vec();
                    lines[a].truncate(pa + 1);
                    lines[a].extend_from_slice(&vb);
                    lines[b].truncate(pb + 1);
                    lines[b].extend_from_slice(&va);
                }
            }
        }
    }
    *data = lines.join(&b'\n');
}

/// Deeply nested arrays or tables (TOML and JSON alike), at a random place.
fn insert_nesting(rng: &mut Rng, data: &mut Vec<u8>) {
    let depth = *pick(
        rng,
        &[2usize, 16, 64, 127, 128, 129, 256, 1000, 5000, 20_000],
    );
    let (open, close): (&[u8], &[u8]) = match rng.below(4) {
        0 => (b"[", b"]"),
        1 => (b"{\"a\":", b"}"),
        2 => (b"{a=", b"}"),
        _ => (b"[[", b"]]"),
    };
    let mut nest = Vec::new();
    if chance(rng, 2) {
        nest.extend_from_slice(b"\nx = ");
    }
    for _ in 0..depth {
        nest.extend_from_slice(open);
    }
    if chance(rng, 2) {
        nest.extend_from_slice(b"1");
    }
    if chance(rng, 4) {
        // Unclosed, or half closed.
        for _ in 0..rng.below(depth as u64) {
            nest.extend_from_slice(close);
        }
    } else {
        for _ in 0..depth {
            nest.extend_from_slice(close);
        }
    }
    nest.push(b'\n');
    if data.len() + nest.len() > MAX_INPUT {
        return;
    }
    let i = rng.below(data.len() as u64 + 1) as usize;
    data.splice(i..i, nest);
}

// ---------------------------------------------------------------------------
// TOML (playbooks, scenarios)

const TOML_DICT: &[&[u8]] = &[
    b"[groups]",
    b"[[roles]]",
    b"[limits]",
    b"[canary]",
    b"[dns]",
    b"[dns.fleet]",
    b"[dns.counter]",
    b"[policy]",
    b"[estimates]",
    b"[discovery]",
    b"[[hosts]]",
    b"[resolver]",
    b"[fleet]",
    b"[[fleet.clusters]]",
    b"[labels]",
    b"[startup_lookups]",
    b"[timing]",
    b"[timing.ready]",
    b"[faults]",
    b"[docker]",
    b"name = \"x\"",
    b"seed = 18446744073709551615",
    b"cluster = \"db.cluster\"",
    b"replset = \"db.replset\"",
    b"selector = { \"db.role\" = \"shard\" }",
    b"selector = {}",
    b"after = [\"shard\", \"shard\", \"router\"]",
    b"after = []",
    b"startup_lookups = 5",
    b"ready_estimate = \"5s\"",
    b"health = { kind = \"mongo\", port = 27017, timeout = \"2s\", deadline = \"120s\" }",
    b"health = { kind = \"tcp\" }",
    b"health = { kind = \"exec\", command = [] }",
    b"max_per_host = 0",
    b"max_unavailable_per_replset = \"all\"",
    b"max_unavailable_per_replset = 1.5",
    b"max_wave_size = 10000001",
    b"restart_rate = nan",
    b"stop_timeout = \"99999999999999999999\"",
    b"api_calls_per_host = 1025",
    b"containers = 1",
    b"soak = \"1h\"",
    b"confirm = true",
    b"capacity_qps = 5000",
    b"headroom = 1.0000001",
    b"adaptive = false",
    b"latency_threshold = \"0ms\"",
    b"probe_name = \" \"",
    b"grant_at = \"restart\"",
    b"families = 3",
    b"search = []",
    b"ndots = 16",
    b"name_dots = 128",
    b"names = \"search\"",
    b"command = [\"unbound-control\", \"stats_noreset\"]",
    b"url = \"http://127.0.0.1:8080/metrics\"",
    b"key = \"total.num.queries\"",
    b"dropped_key = \"\"",
    b"retries = 101",
    b"max_failed_fraction = -0.0",
    b"backoff_initial = \"60s\"",
    b"backoff_max = \"2s\"",
    b"stuck_rerestarts = 2",
    b"restart = \"2s\"",
    b"labels = { a = \"b\" }",
    b"timeout = \"10s\"",
    b"on_unreachable = \"fail\"",
    b"url = \"tcp://h:2376\"",
    b"tls = { ca = \"a\", cert = \"b\", key = \"c\" }",
    b"nameservers = [\"10.0.0.2\", \"127.0.0.1:5353\", \"::1\"]",
    b"resolv_conf = \"/etc/resolv.conf\"",
    b"attempts = 11",
    b"cache_size = 0",
    b"min_ttl = \"300s\"",
    b"max_ttl = \"1s\"",
    b"negative_max_ttl = \"30s\"",
    b"serve_stale = \"300s\"",
    b"hosts = 100000",
    b"domain = \".\"",
    b"count = 1000000",
    b"config_members = 50",
    b"shards = 10000",
    b"members_per_shard = 50",
    b"routers = 100000",
    b"mode = \"per_second\"",
    b"queue = 100000000",
    b"timeout_ms = 600000",
    b"restart = [1.0, 0.5]",
    b"configsvr = [0.0, 1e308]",
    b"router = 100000",
    b"restart_failure_rate = 0.999999",
    b"stuck_if_started_before_deps = [\"router\", \"mongos\"]",
    b"down_hosts = 99999",
    b"api_concurrency_per_host = 10000",
    b"a.b.c = 1",
    b"\"quoted key\" = 1",
    b"'literal' = 'x'",
    b"s = \"\"\"\nmulti\nline\"\"\"",
    b"s = '''\nraw'''",
    b"x = 1979-05-27T07:32:00Z",
    b"# comment",
    b"=",
    b"[",
    b"]",
    b"[[",
    b"\"",
    b"'",
    b"\\",
    b"\r\n",
];

/// A structure-aware TOML mutant: one to four token- or line-level
/// mutations of a pooled input.
fn toml_mutant(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut m = pick(rng, pool).clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 | 1 => replace_number(rng, &mut m),
            2 => replace_string(rng, &mut m),
            3 | 4 => mutate_lines(rng, &mut m, TOML_DICT),
            _ => insert_nesting(rng, &mut m),
        }
        if m.len() > MAX_INPUT {
            m.truncate(MAX_INPUT);
        }
    }
    m
}

// ---------------------------------------------------------------------------
// JSON (inventory files, API bodies)

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"false",
    b"{}",
    b"[]",
    b"\"containers\":",
    b"\"hosts\":",
    b"\"id\":",
    b"\"name\":",
    b"\"host\":",
    b"\"labels\":",
    b"\"dns_name\":",
    b"\"ports\":",
    b"\"state\":",
    b"\"reachable\":",
    b"\"error\":",
    b"\"playbook\":",
    b"\"mode\":",
    b"\"scenario\":",
    b"\"reason\":",
    b"\"resume\":",
    b"\"dns_budget_qps\":",
    b"\"restart_rate\":",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"1e309",
    b"-0",
    b"18446744073709551616",
    b"\xef\xbb\xbf",
];

/// A structure-aware JSON mutant: a pooled input (or a fresh random
/// document) parsed and mutated as a tree, written back compact or pretty,
/// then sometimes mutated as text (numbers JSON cannot hold, duplicate keys).
fn json_mutant(rng: &mut Rng, pool: &[Vec<u8>], random_doc: fn(&mut Rng) -> Value) -> Vec<u8> {
    let mut v = if chance(rng, 4) {
        random_doc(rng)
    } else {
        match serde_json::from_slice::<Value>(pick(rng, pool).as_slice()) {
            Ok(v) => v,
            Err(_) => random_doc(rng),
        }
    };
    for _ in 0..1 + rng.below(4) {
        mutate_value(rng, &mut v, 0);
    }
    let mut out = if chance(rng, 2) {
        serde_json::to_vec(&v).unwrap()
    } else {
        serde_json::to_vec_pretty(&v).unwrap()
    };
    for _ in 0..rng.below(3) {
        match rng.below(4) {
            0 => replace_number(rng, &mut out),
            1 => replace_string(rng, &mut out),
            2 => mutate_lines(rng, &mut out, JSON_DICT),
            _ => insert_nesting(rng, &mut out),
        }
    }
    out.truncate(MAX_INPUT);
    out
}

fn random_number(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!(i64::MIN),
        1 => json!(u64::MAX),
        2 => json!(f64::MAX),
        3 => json!(-0.0),
        4 => json!(5e-324),
        5 => json!(-1),
        6 => json!(rng.next_u64() % 70_000),
        _ => json!(rng.next_f64() * 10_000.0),
    }
}

fn random_string(rng: &mut Rng) -> String {
    if chance(rng, 8) {
        long_string(rng)
    } else {
        // STRINGS hold TOML/JSON escapes as text; unescape the few used.
        pick(rng, STRINGS)
            .replace("\\u0000", "\0")
            .replace("\\n", "\n")
            .replace("\\\"", "\"")
            .replace("\\uD800", "\u{fffd}")
    }
}

fn random_scalar(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => Value::Null,
        1 => Value::Bool(chance(rng, 2)),
        2 => random_number(rng),
        _ => Value::String(random_string(rng)),
    }
}

const KEYS: &[&str] = &[
    "containers",
    "hosts",
    "id",
    "name",
    "host",
    "labels",
    "dns_name",
    "ports",
    "state",
    "reachable",
    "error",
    "playbook",
    "mode",
    "scenario",
    "reason",
    "resume",
    "dns_budget_qps",
    "restart_rate",
    "db.role",
    "",
    "unknown",
];

/// One mutation at a random node of the tree.
fn mutate_value(rng: &mut Rng, v: &mut Value, depth: usize) {
    // Descend to a child now and then.
    if depth < 8 && !chance(rng, 3) {
        match v {
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len() as u64) as usize;
                return mutate_value(rng, &mut a[i], depth + 1);
            }
            Value::Object(o) if !o.is_empty() => {
                let k = pick(rng, &o.keys().cloned().collect::<Vec<_>>()).clone();
                return mutate_value(rng, o.get_mut(&k).unwrap(), depth + 1);
            }
            _ => {}
        }
    }
    match rng.below(10) {
        0 | 1 => *v = random_scalar(rng),
        2 => *v = if chance(rng, 2) { json!([]) } else { json!({}) },
        3 => *v = json!([v.take()]),
        4 => {
            let mut o = serde_json::Map::new();
            o.insert(pick(rng, KEYS).to_string(), v.take());
            *v = Value::Object(o);
        }
        5 => {
            // Nested deeper than serde_json reads (128) now and then.
            let mut x = random_scalar(rng);
            for _ in 0..*pick(rng, &[2usize, 100, 127, 128, 129, 200]) {
                x = if chance(rng, 2) {
                    json!([x])
                } else {
                    json!({ "a": x })
                };
            }
            *v = x;
        }
        _ => match v {
            Value::Object(o) => match rng.below(3) {
                0 if !o.is_empty() => {
                    let k = pick(rng, &o.keys().cloned().collect::<Vec<_>>()).clone();
                    o.remove(&k);
                }
                1 if !o.is_empty() => {
                    let k = pick(rng, &o.keys().cloned().collect::<Vec<_>>()).clone();
                    let x = o.remove(&k).unwrap();
                    o.insert(pick(rng, KEYS).to_string(), x);
                }
                _ => {
                    o.insert(pick(rng, KEYS).to_string(), random_scalar(rng));
                }
            },
            Value::Array(a) => match rng.below(3) {
                0 if !a.is_empty() => {
                    a.remove(rng.below(a.len() as u64) as usize);
                }
                1 if !a.is_empty() => {
                    let x = pick(rng, a).clone();
                    for _ in 0..1 + small(rng, 200) {
                        a.push(x.clone());
                    }
                }
                _ => a.push(random_scalar(rng)),
            },
            _ => *v = random_scalar(rng),
        },
    }
}

fn random_container(rng: &mut Rng, i: u64) -> Value {
    let mut c = json!({
        "id": format!("{:012x}", rng.next_u64()),
        "name": format!("c{i}-{}", pick(rng, &["cfg-0", "rs00-1", "mongos-0"])),
        "host": format!("h{}", rng.below(4)),
        "labels": {
            "db.role": pick(rng, &["configsvr", "shard", "router"]),
            "db.cluster": format!("c{}", rng.below(3)),
        },
        "ports": [pick(rng, &[27017, 27018, 27019, 0, 65535])],
        "state": pick(rng, &["running", "exited", "restarting", "dead", "unknown"]),
    });
    if chance(rng, 2) {
        c["dns_name"] = json!(format!("c{i}.db.test"));
    }
    c
}

fn random_inventory(rng: &mut Rng) -> Value {
    let containers: Vec<Value> = (0..small(rng, 64) as u64)
        .map(|i| random_container(rng, i))
        .collect();
    let mut inv = json!({ "containers": containers });
    if chance(rng, 2) {
        inv["hosts"] = json!([
            { "name": "h0", "reachable": true, "containers": 1 },
            { "name": "h1", "reachable": false, "error": "refused", "containers": 0 },
        ]);
    }
    inv
}

fn random_api_body(rng: &mut Rng) -> Value {
    match rng.below(3) {
        0 => {
            let mut b = json!({
                "playbook": pick(rng, &["mongo-sharded", "mongo-rolling", ""]),
                "mode": pick(rng, &["run", "rehearse", "plan", "Run", ""]),
                "reason": random_string(rng),
            });
            if chance(rng, 2) {
                b["scenario"] = json!(pick(rng, &["smoke", "braze-us01"]));
            }
            if chance(rng, 2) {
                b["resume"] = json!(chance(rng, 2));
            }
            b
        }
        1 => {
            let mut b = json!({});
            if chance(rng, 2) {
                b["dns_budget_qps"] = random_number(rng);
            }
            if chance(rng, 2) {
                b["restart_rate"] = random_number(rng);
            }
            if chance(rng, 2) {
                b["reason"] = json!(random_string(rng));
            }
            b
        }
        _ => json!({ "reason": random_string(rng) }),
    }
}

// ---------------------------------------------------------------------------
// Journals

const JOURNAL_DICT: &[&[u8]] = &[
    b"{\"t\":\"start\",\"playbook\":\"p\",\"fingerprint\":\"f\",\"containers\":1}",
    b"{\"t\":\"intent\",\"id\":\"a\",\"wave\":0,\"attempt\":4294967295,\"before\":\"\"}",
    b"{\"t\":\"outcome\",\"id\":\"a\",\"healthy\":true,\"reason\":null}",
    b"{\"t\":\"wave_passed\",\"wave\":18446744073709551615}",
    b"{\"t\":\"end\",\"state\":\"succeeded\"}",
    b"{\"t\":\"unknown\"}",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
];

fn random_record(rng: &mut Rng) -> Record {
    let id = |rng: &mut Rng| {
        if chance(rng, 16) {
            random_string(rng)
        } else {
            format!("c{}", rng.below(8))
        }
    };
    let big = |rng: &mut Rng, small_max: u64| -> u64 {
        match rng.below(8) {
            0 => u64::MAX,
            1 => u32::MAX as u64,
            _ => rng.below(small_max),
        }
    };
    match rng.below(5) {
        0 => Record::Start {
            playbook: if chance(rng, 4) {
                random_string(rng)
            } else {
                "p".into()
            },
            fingerprint: format!("{:x}", rng.next_u64()),
            containers: big(rng, 100) as usize,
            only: chance(rng, 3).then(|| (0..small(rng, 8)).map(|_| id(rng)).collect()),
        },
        1 => Record::Intent {
            id: id(rng),
            wave: big(rng, 10) as usize,
            attempt: big(rng, 4) as u32,
            before: format!("{}", rng.next_u64()),
        },
        2 => Record::Outcome {
            id: id(rng),
            healthy: chance(rng, 2),
            reason: chance(rng, 2).then(|| random_string(rng)),
        },
        3 => Record::WavePassed {
            wave: big(rng, 10) as usize,
        },
        _ => Record::End {
            state: pick(rng, &["succeeded", "halted", "aborted", ""]).to_string(),
        },
    }
}

/// A valid journal written by the journal's own writer.
fn written_journal(rng: &mut Rng, path: &Path) -> Vec<u8> {
    let start = Record::Start {
        playbook: "p".into(),
        fingerprint: format!("{:x}", rng.next_u64()),
        containers: rng.below(100) as usize,
        only: None,
    };
    let mut j = Journal::create(path, start, false).unwrap();
    for _ in 0..small(rng, 32) {
        j.append(&random_record(rng)).unwrap();
    }
    drop(j);
    let bytes = std::fs::read(path).unwrap();
    std::fs::remove_file(path).unwrap();
    bytes
}

/// The payloads of the well-framed records at the front of a journal.
fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if bytes.len() - pos - 8 < len {
            break;
        }
        out.push(bytes[pos + 8..pos + 8 + len].to_vec());
        pos += 8 + len;
    }
    out
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Records re-framed with valid checksums after record-level mutations
/// (duplicated, dropped, swapped, spliced from another journal, payloads
/// mutated as JSON), then sometimes damaged at the frame level (a length
/// changed, a payload byte flipped under its checksum, cut short, stray
/// bytes after).
fn journal_mutant(rng: &mut Rng, pool: &[Vec<u8>], scratch: &Path) -> Vec<u8> {
    let base = if chance(rng, 4) {
        written_journal(rng, scratch)
    } else {
        pick(rng, pool).clone()
    };
    let mut recs = frames(&base);
    if recs.is_empty() {
        recs = frames(&written_journal(rng, scratch));
    }
    for _ in 0..1 + rng.below(3) {
        let n = recs.len();
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n as u64) as usize;
                let r = recs[i].clone();
                for _ in 0..1 + small(rng, 100) {
                    recs.insert(i, r.clone());
                }
            }
            1 if n > 1 => {
                recs.remove(rng.below(n as u64) as usize);
            }
            2 if n > 1 => {
                let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
                recs.swap(a, b);
            }
            3 => {
                // Splice: this journal's head, another's tail.
                let other = frames(pick(rng, pool).as_slice());
                let i = rng.below(n as u64 + 1) as usize;
                let j = rng.below(other.len() as u64 + 1) as usize;
                recs.truncate(i);
                recs.extend_from_slice(&other[j..]);
            }
            4 => {
                let i = rng.below(n as u64 + 1) as usize;
                let r = serde_json::to_vec(&random_record(rng)).unwrap();
                recs.insert(i, r);
            }
            _ if n > 0 => {
                // A payload mutated as JSON or as text, its checksum valid.
                let i = rng.below(n as u64) as usize;
                let p = &mut recs[i];
                match serde_json::from_slice::<Value>(p) {
                    Ok(mut v) if chance(rng, 2) => {
                        mutate_value(rng, &mut v, 0);
                        *p = serde_json::to_vec(&v).unwrap();
                    }
                    _ => match rng.below(3) {
                        0 => replace_number(rng, p),
                        1 => replace_string(rng, p),
                        _ => mutate_bytes(rng, p, pool, JOURNAL_DICT),
                    },
                }
            }
            _ => {}
        }
    }
    let mut offsets = Vec::new();
    let mut out = Vec::new();
    for r in &recs {
        offsets.push(out.len());
        out.extend_from_slice(&frame(r));
        if out.len() > MAX_INPUT {
            break;
        }
    }
    for _ in 0..rng.below(3) {
        match rng.below(5) {
            0 if !offsets.is_empty() => {
                // A length changed (unless an earlier cut took it).
                let at = *pick(rng, &offsets);
                if at + 4 > out.len() {
                    continue;
                }
                let old = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
                let new = match rng.below(6) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => i32::MAX as u32,
                    3 => old.wrapping_add(1),
                    4 => old.wrapping_sub(1),
                    _ => rng.next_u64() as u32 % 4096,
                };
                out[at..at + 4].copy_from_slice(&new.to_le_bytes());
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len() as u64) as usize;
                out[i] ^= 1 << rng.below(8);
            }
            2 => {
                let i = rng.below(out.len() as u64 + 1) as usize;
                out.truncate(i);
            }
            3 => {
                for _ in 0..1 + rng.below(11) {
                    out.push(rng.next_u64() as u8);
                }
            }
            _ => {
                // A valid-looking header with nothing (or too little) after it.
                out.extend_from_slice(&(rng.below(64) as u32).to_le_bytes());
                out.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// MongoDB OP_MSG replies

const BSON_DICT: &[&[u8]] = &[
    b"ok\0",
    b"isWritablePrimary\0",
    b"ismaster\0",
    b"secondary\0",
    b"arbiterOnly\0",
    b"setName\0",
    b"msg\0",
    b"errmsg\0",
    b"\xdd\x07\x00\x00",
    b"\x00\x00\x00\x00\x00",
    b"\x05\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
];

const BSON_KINDS: &[u8] = &[
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
    0x11, 0x12, 0x13, 0x7F, 0xFF, 0x00, 0x14, 0x80,
];

const BSON_NAMES: &[&str] = &[
    "ok",
    "isWritablePrimary",
    "ismaster",
    "secondary",
    "arbiterOnly",
    "setName",
    "msg",
    "errmsg",
    "hosts",
    "topologyVersion",
    "",
    "é",
];

/// Where the length fields and type bytes of a generated frame are.
#[derive(Default)]
struct BsonMarks {
    lengths: Vec<usize>,
    kinds: Vec<usize>,
    ends: Vec<usize>,
}

fn bson_string(d: &mut Vec<u8>, marks: &mut BsonMarks, s: &[u8]) {
    marks.lengths.push(d.len());
    d.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
    d.extend_from_slice(s);
    d.push(0);
}

fn bson_doc(rng: &mut Rng, d: &mut Vec<u8>, marks: &mut BsonMarks, depth: u32) {
    let start = d.len();
    marks.lengths.push(start);
    d.extend_from_slice(&[0; 4]);
    for _ in 0..small(rng, 12) {
        let kind = if chance(rng, 3) {
            *pick(rng, &[0x01, 0x02, 0x08, 0x10, 0x12])
        } else {
            *pick(rng, BSON_KINDS)
        };
        marks.kinds.push(d.len());
        d.push(kind);
        if chance(rng, 16) {
            d.extend((0..small(rng, 8)).map(|_| rng.next_u64() as u8 | 1));
        } else {
            d.extend_from_slice(pick(rng, BSON_NAMES).as_bytes());
        }
        d.push(0);
        match kind {
            0x01 => {
                let x = *pick(rng, &[1.0, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e308, 0.5]);
                d.extend_from_slice(&x.to_le_bytes());
            }
            0x02 | 0x0D | 0x0E => {
                let s = if chance(rng, 8) {
                    long_string(rng)
                } else {
                    pick(rng, &["rs0", "isdbgrid", "", "node is shutting down", "é"]).to_string()
                };
                bson_string(d, marks, s.as_bytes());
            }
            0x03 | 0x04 if depth < 3 => bson_doc(rng, d, marks, depth + 1),
            0x03 | 0x04 => d.extend_from_slice(&[5, 0, 0, 0, 0]),
            0x05 => {
                let n = small(rng, 32);
                marks.lengths.push(d.len());
                d.extend_from_slice(&(n as i32).to_le_bytes());
                d.push(0);
                d.extend((0..n).map(|_| rng.next_u64() as u8));
            }
            0x06 | 0x0A | 0x7F | 0xFF => {}
            0x07 => d.extend_from_slice(&[0x7f; 12]),
            0x08 => d.push(*pick(rng, &[0, 1, 2, 0xff])),
            0x09 | 0x11 | 0x12 => d.extend_from_slice(&rng.next_u64().to_le_bytes()),
            0x10 => d.extend_from_slice(&(*pick(rng, &[0i32, 1, -1, i32::MAX])).to_le_bytes()),
            0x13 => d.extend_from_slice(&[0x11; 16]),
            _ => d.extend((0..small(rng, 8)).map(|_| rng.next_u64() as u8)),
        }
    }
    marks.ends.push(d.len());
    d.push(0);
    let n = (d.len() - start) as i32;
    d[start..start + 4].copy_from_slice(&n.to_le_bytes());
}

/// A whole OP_MSG reply: header, flags, a kind-0 section and its document.
fn op_msg(rng: &mut Rng, marks: &mut BsonMarks) -> Vec<u8> {
    let mut m = Vec::new();
    marks.lengths.push(0);
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&(rng.next_u64() as i32).to_le_bytes());
    let any = rng.next_u64() as i32;
    let responding = *pick(rng, &[1i32, 5, 0, -1, any]);
    m.extend_from_slice(&responding.to_le_bytes());
    let op = if chance(rng, 16) { 1 } else { 2013i32 };
    m.extend_from_slice(&op.to_le_bytes());
    let flags = *pick(rng, &[0u32, 0, 0, 1, 2, 1 << 16]);
    m.extend_from_slice(&flags.to_le_bytes());
    m.push(if chance(rng, 16) { 1 } else { 0 });
    bson_doc(rng, &mut m, marks, 0);
    if flags == 1 << 16 {
        m.extend_from_slice(&rng.next_u64().to_le_bytes()[..4]);
    }
    let n = m.len() as i32;
    m[0..4].copy_from_slice(&n.to_le_bytes());
    m
}

/// A generated frame with its lengths, type bytes and terminators mutated,
/// or a pooled reply with an int written at a 4-aligned place.
fn mongo_mutant(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    if chance(rng, 4) {
        let mut m = pick(rng, pool).clone();
        if m.len() >= 4 {
            let at = 4 * rng.below(m.len() as u64 / 4) as usize;
            let v = *pick(rng, INTS) as i32;
            m[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        return m;
    }
    let mut marks = BsonMarks::default();
    let mut m = op_msg(rng, &mut marks);
    for _ in 0..rng.below(4) {
        match rng.below(5) {
            // (A mark past a cut is skipped.)
            0 if marks.lengths.iter().any(|&at| at + 4 <= m.len()) => {
                let at = *pick(rng, &marks.lengths);
                if at + 4 > m.len() {
                    continue;
                }
                let old = i32::from_le_bytes(m[at..at + 4].try_into().unwrap());
                let new = match rng.below(8) {
                    0 => -1,
                    1 => 0,
                    2 => 4,
                    3 => 5,
                    4 => i32::MAX,
                    5 => i32::MIN,
                    6 => old.wrapping_add(1),
                    _ => old.wrapping_sub(1 + rng.below(8) as i32),
                };
                m[at..at + 4].copy_from_slice(&new.to_le_bytes());
            }
            1 if !marks.kinds.is_empty() => {
                let at = *pick(rng, &marks.kinds);
                if at < m.len() {
                    m[at] = *pick(rng, BSON_KINDS);
                }
            }
            2 => {
                let at = *pick(rng, &marks.ends);
                if at < m.len() {
                    m[at] = *pick(rng, &[1, 0xff, 0x02]);
                }
            }
            3 => {
                // Cut short, with the header saying so or not.
                let i = rng.below(m.len() as u64 + 1) as usize;
                m.truncate(i);
                if chance(rng, 2) && m.len() >= 4 {
                    let n = m.len() as i32;
                    m[0..4].copy_from_slice(&n.to_le_bytes());
                }
            }
            _ => m.extend((0..1 + small(rng, 16)).map(|_| rng.next_u64() as u8)),
        }
    }
    m
}

// ---------------------------------------------------------------------------
// The generated seeds

/// Writes the seeds this file generates (journals, hello replies, inventory
/// files, API bodies) into `tests/fuzz/corpus/`. The text seeds of the
/// playbook and scenario targets are copies of the shipped files.
#[test]
#[ignore = "regenerates tests/fuzz/corpus: run by hand"]
fn write_corpus() {
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir("corpus", target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    // Journals, by the journal's own writer.
    let tmp = tempfile::tempdir().unwrap();
    let start = |n| Record::Start {
        playbook: "mongo-sharded".into(),
        fingerprint: "5f2c9a1e".into(),
        containers: n,
        only: None,
    };
    let intent = |id: &str, wave, attempt| Record::Intent {
        id: id.into(),
        wave,
        attempt,
        before: "2024-05-01T10:00:00.000000000Z".into(),
    };
    let outcome = |id: &str, healthy: bool| Record::Outcome {
        id: id.into(),
        healthy,
        reason: (!healthy).then(|| "deadline passed".into()),
    };
    let write = |name: &str, records: &[Record]| {
        let path = tmp.path().join(name);
        let mut j = Journal::create(&path, start(3), false).unwrap();
        for r in records {
            j.append(r).unwrap();
        }
        drop(j);
        put("journal", name, &std::fs::read(&path).unwrap());
    };
    write(
        "succeeded.journal",
        &[
            intent("c0-cfg-0", 0, 0),
            outcome("c0-cfg-0", true),
            intent("c0-rs00-0", 0, 0),
            outcome("c0-rs00-0", false),
            intent("c0-rs00-0", 0, 1),
            outcome("c0-rs00-0", true),
            Record::WavePassed { wave: 0 },
            intent("c0-mongos-0", 1, 0),
            outcome("c0-mongos-0", true),
            Record::WavePassed { wave: 1 },
            Record::End {
                state: "succeeded".into(),
            },
        ],
    );
    write(
        "in-doubt.journal",
        &[
            intent("c0-cfg-0", 0, 0),
            outcome("c0-cfg-0", true),
            intent("c0-rs00-0", 0, 0),
        ],
    );
    write(
        "halted.journal",
        &[
            intent("c0-cfg-0", 0, 0),
            outcome("c0-cfg-0", false),
            Record::End {
                state: "halted".into(),
            },
        ],
    );
    let path = tmp.path().join("torn");
    let mut j = Journal::create(&path, start(1), false).unwrap();
    j.append(&intent("c0-cfg-0", 0, 0)).unwrap();
    drop(j);
    let mut torn = std::fs::read(&path).unwrap();
    torn.truncate(torn.len() - 5);
    put("journal", "torn-tail.journal", &torn);

    // Hello replies: a reply as a mongod or mongos sends it.
    let reply = |name: &str, fields: &[(u8, &str, Vec<u8>)]| {
        let mut d = vec![0u8; 4];
        for (kind, key, value) in fields {
            d.push(*kind);
            d.extend_from_slice(key.as_bytes());
            d.push(0);
            d.extend_from_slice(value);
        }
        d.push(0);
        let n = d.len() as i32;
        d[0..4].copy_from_slice(&n.to_le_bytes());
        let mut m = Vec::new();
        m.extend_from_slice(&(21 + n).to_le_bytes());
        m.extend_from_slice(&99i32.to_le_bytes());
        m.extend_from_slice(&1i32.to_le_bytes());
        m.extend_from_slice(&2013i32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(&d);
        parse_reply(&m, 1).expect("a seed reply parses");
        put("mongo", name, &m);
    };
    let string = |s: &str| [&(s.len() as i32 + 1).to_le_bytes()[..], s.as_bytes(), &[0]].concat();
    let ok = (0x01, "ok", 1.0f64.to_le_bytes().to_vec());
    let tv = [
        &22i32.to_le_bytes()[..],
        &[0x12],
        b"counter\0",
        &0i64.to_le_bytes(),
        &[0],
    ]
    .concat();
    let hosts = [
        &20i32.to_le_bytes()[..],
        &[0x02],
        b"0\0",
        &string("a:27017"),
        &[0],
    ]
    .concat();
    reply(
        "secondary.bin",
        &[
            (0x03, "topologyVersion", tv.clone()),
            (0x04, "hosts", hosts.clone()),
            (0x02, "setName", string("rs0")),
            (0x10, "setVersion", 3i32.to_le_bytes().to_vec()),
            (0x08, "isWritablePrimary", vec![0]),
            (0x08, "secondary", vec![1]),
            (0x07, "electionId", vec![0x7f; 12]),
            (
                0x09,
                "localTime",
                1_700_000_000_000i64.to_le_bytes().to_vec(),
            ),
            (
                0x05,
                "sig",
                [&3i32.to_le_bytes()[..], &[0x00], b"abc"].concat(),
            ),
            (0x11, "operationTime", 7u64.to_le_bytes().to_vec()),
            (0x0A, "nothing", vec![]),
            ok.clone(),
        ],
    );
    reply(
        "primary.bin",
        &[
            (0x08, "isWritablePrimary", vec![1]),
            (0x04, "hosts", hosts),
            (0x02, "setName", string("rs0")),
            (0x12, "maxWireVersion", 21i64.to_le_bytes().to_vec()),
            ok.clone(),
        ],
    );
    reply(
        "mongos.bin",
        &[
            (0x08, "ismaster", vec![1]),
            (0x02, "msg", string("isdbgrid")),
            (
                0x10,
                "maxBsonObjectSize",
                16_777_216i32.to_le_bytes().to_vec(),
            ),
            ok.clone(),
        ],
    );
    reply(
        "arbiter.bin",
        &[
            (0x08, "arbiterOnly", vec![1]),
            (0x02, "setName", string("rs0")),
            (0x10, "ok", 1i32.to_le_bytes().to_vec()),
        ],
    );
    reply(
        "startup2.bin",
        &[
            (0x03, "topologyVersion", tv),
            (0x02, "setName", string("rs0")),
            (0x08, "isWritablePrimary", vec![0]),
            (0x08, "secondary", vec![0]),
            ok,
        ],
    );
    reply(
        "error.bin",
        &[
            (0x01, "ok", 0.0f64.to_le_bytes().to_vec()),
            (0x02, "errmsg", string("node is shutting down")),
            (0x10, "code", 91i32.to_le_bytes().to_vec()),
            (0x02, "codeName", string("ShutdownInProgress")),
        ],
    );
    // STARTUP before the config is loaded (the drivers' RSGhost).
    reply(
        "ghost.bin",
        &[
            (0x08, "isWritablePrimary", vec![0]),
            (0x08, "secondary", vec![0]),
            (0x08, "isreplicaset", vec![1]),
            (
                0x02,
                "info",
                string("Does not have a valid replica set config"),
            ),
            (0x01, "ok", 1.0f64.to_le_bytes().to_vec()),
        ],
    );
    // The router gate's connPoolStats and the member gate's
    // replSetGetStatus, in the documented shapes.
    let framed = |name: &str, body: bson::Document| {
        let body = body.to_vec().unwrap();
        let mut m = Vec::new();
        m.extend_from_slice(&(21 + body.len() as i32).to_le_bytes());
        m.extend_from_slice(&99i32.to_le_bytes());
        m.extend_from_slice(&1i32.to_le_bytes());
        m.extend_from_slice(&2013i32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(&body);
        put("mongo", name, &m);
    };
    framed(
        "connpoolstats.bin",
        bson::doc! {
            "numClientConnections": 0i32,
            "replicaSets": {
                "csRS": { "hosts": [ { "addr": "cfg1:27019", "ok": true, "ismaster": true, "hidden": false, "secondary": false, "pingTimeMillis": 0.4 } ] },
                "rs0": { "hosts": [ { "addr": "a:27018", "ok": false, "ismaster": false, "hidden": false, "secondary": false, "pingTimeMillis": 9.2e18 } ] },
            },
            "ok": 1.0,
        },
    );
    framed(
        "replsetgetstatus.bin",
        bson::doc! {
            "set": "rs0",
            "date": bson::DateTime::from_millis(1_700_000_013_000),
            "members": [
                { "_id": 0i32, "name": "a:27018", "state": 1i32, "stateStr": "PRIMARY", "optimeDate": bson::DateTime::from_millis(1_700_000_012_500),
                  "optime": { "ts": bson::Timestamp { time: 1_700_000_012, increment: 1 }, "t": 3i64 } },
                { "_id": 1i32, "name": "b:27018", "state": 2i32, "stateStr": "SECONDARY", "optimeDate": bson::DateTime::from_millis(1_700_000_000_000), "self": true },
            ],
            "ok": 1i32,
        },
    );
    framed(
        "unauthorized.bin",
        bson::doc! { "ok": 0.0, "errmsg": "command connPoolStats requires authentication", "code": 13i32, "codeName": "Unauthorized" },
    );
    // Bad input the member gate must answer with a reason (issue 24): a
    // field of the wrong BSON type, hosts that are not strings, a setName
    // past its bound (a 10 MB one is a unit test in health::mongo: the
    // fuzzer's inputs stop at 64 KiB), a secondary without optimeDate.
    framed(
        "isreplicaset-int.bin",
        bson::doc! { "isWritablePrimary": false, "secondary": false, "isreplicaset": 1i32, "ok": 1.0 },
    );
    framed(
        "hosts-not-strings.bin",
        bson::doc! { "setName": "rs0", "secondary": true, "hosts": ["a:27018", 27018i32, { "host": "b" }], "ok": 1.0 },
    );
    framed(
        "setname-long.bin",
        bson::doc! { "setName": "r".repeat(16 << 10), "secondary": true, "ok": 1.0 },
    );
    framed(
        "status-no-optime.bin",
        bson::doc! {
            "set": "rs0",
            "myState": 2i32,
            "members": [
                { "_id": 0i32, "name": "a:27018", "state": 1i32, "stateStr": "PRIMARY" },
                { "_id": 1i32, "name": "b:27018", "state": 2i32, "stateStr": "SECONDARY", "self": true },
            ],
            "ok": 1i32,
        },
    );

    // Inventory files: the smoke scenario's fleet as `inventory --output
    // json` writes it, and a hand-written one with hosts.
    let smoke =
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/scenarios/smoke.toml"))
            .unwrap();
    let inv = smoke.fleet().inventory();
    put(
        "inventory",
        "smoke-fleet.json",
        &serde_json::to_vec_pretty(&inv).unwrap(),
    );
    let hand = json!({
        "containers": [
            { "id": "a1", "name": "c1-cfg-0", "host": "h1",
              "labels": { "db.role": "configsvr", "db.cluster": "c1", "db.replset": "c1-cfg" },
              "dns_name": "c1-cfg-0.db.test", "ports": [27019], "state": "running" },
            { "id": "a2", "name": "c1-mongos-0", "host": "h2",
              "labels": { "db.role": "router", "db.cluster": "c1" }, "state": "exited" },
            { "id": "a3", "name": "c1-rs00-0", "host": "h2", "labels": {} }
        ],
        "hosts": [
            { "name": "h1", "reachable": true, "containers": 1 },
            { "name": "h2", "reachable": true, "error": null, "containers": 2 },
            { "name": "h3", "reachable": false, "error": "connection refused", "containers": 0 }
        ]
    });
    put(
        "inventory",
        "hand.json",
        &serde_json::to_vec_pretty(&hand).unwrap(),
    );
    for (name, body) in [
        (
            "start-rehearse.json",
            json!({ "playbook": "mongo-sharded", "mode": "rehearse", "scenario": "smoke", "reason": "drill" }),
        ),
        (
            "start-plan.json",
            json!({ "playbook": "mongo-rolling", "mode": "plan", "scenario": "braze-us01", "reason": "how long?" }),
        ),
        (
            "start-run-resume.json",
            json!({ "playbook": "mongo-sharded", "mode": "run", "reason": "network loop at 03:12", "resume": true }),
        ),
        (
            "retune.json",
            json!({ "dns_budget_qps": 2500.5, "restart_rate": 40, "reason": "resolver strained" }),
        ),
        ("control.json", json!({ "reason": "operator pause" })),
    ] {
        put("api", name, &serde_json::to_vec(&body).unwrap());
    }
}
