//! The seeds `write_corpus` generates: journals by the journal's own
//! writer, MongoDB replies (hello, connPoolStats, replSetGetStatus),
//! inventory files and API bodies.

use super::*;

/// Writes one seed into `tests/fuzz/corpus/<target>/`.
fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir("corpus", target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Journals, by the journal's own writer: a run that succeeded, one in
/// doubt, one halted, and one torn at its tail.
pub(super) fn journals() {
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
}

/// A hello reply as an OP_MSG frame: header, flags and a kind-0 section
/// whose document holds `fields` (type byte, key, encoded value); it must
/// parse, then it is written as a seed.
fn hello_reply(name: &str, fields: &[(u8, &str, Vec<u8>)]) {
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
}

/// A BSON string value: its length with the terminator, the bytes, 0.
fn bson_str(s: &str) -> Vec<u8> {
    [&(s.len() as i32 + 1).to_le_bytes()[..], s.as_bytes(), &[0]].concat()
}

/// Hello replies: a reply as a mongod or mongos sends it.
pub(super) fn hello_replies() {
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
        &bson_str("a:27017"),
        &[0],
    ]
    .concat();
    hello_reply(
        "secondary.bin",
        &[
            (0x03, "topologyVersion", tv.clone()),
            (0x04, "hosts", hosts.clone()),
            (0x02, "setName", bson_str("rs0")),
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
    hello_reply(
        "primary.bin",
        &[
            (0x08, "isWritablePrimary", vec![1]),
            (0x04, "hosts", hosts),
            (0x02, "setName", bson_str("rs0")),
            (0x12, "maxWireVersion", 21i64.to_le_bytes().to_vec()),
            ok.clone(),
        ],
    );
    hello_reply(
        "mongos.bin",
        &[
            (0x08, "ismaster", vec![1]),
            (0x02, "msg", bson_str("isdbgrid")),
            (
                0x10,
                "maxBsonObjectSize",
                16_777_216i32.to_le_bytes().to_vec(),
            ),
            ok.clone(),
        ],
    );
    hello_reply(
        "arbiter.bin",
        &[
            (0x08, "arbiterOnly", vec![1]),
            (0x02, "setName", bson_str("rs0")),
            (0x10, "ok", 1i32.to_le_bytes().to_vec()),
        ],
    );
    hello_reply(
        "startup2.bin",
        &[
            (0x03, "topologyVersion", tv),
            (0x02, "setName", bson_str("rs0")),
            (0x08, "isWritablePrimary", vec![0]),
            (0x08, "secondary", vec![0]),
            ok,
        ],
    );
    hello_reply(
        "error.bin",
        &[
            (0x01, "ok", 0.0f64.to_le_bytes().to_vec()),
            (0x02, "errmsg", bson_str("node is shutting down")),
            (0x10, "code", 91i32.to_le_bytes().to_vec()),
            (0x02, "codeName", bson_str("ShutdownInProgress")),
        ],
    );
    // STARTUP before the config is loaded (the drivers' RSGhost).
    hello_reply(
        "ghost.bin",
        &[
            (0x08, "isWritablePrimary", vec![0]),
            (0x08, "secondary", vec![0]),
            (0x08, "isreplicaset", vec![1]),
            (
                0x02,
                "info",
                bson_str("Does not have a valid replica set config"),
            ),
            (0x01, "ok", 1.0f64.to_le_bytes().to_vec()),
        ],
    );
}

/// The router gate's connPoolStats and the member gate's replSetGetStatus,
/// in the documented shapes, and the bad input the member gate must answer
/// with a reason.
pub(super) fn status_replies() {
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
}

/// Inventory files: the smoke scenario's fleet as `inventory --output json`
/// writes it, and a hand-written one with hosts and a primary.
pub(super) fn inventories() {
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
              "dns_name": "c1-cfg-0.db.test", "ports": [27019], "state": "running",
              "primary": true },
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
}

/// Request bodies for the daemon's API.
pub(super) fn api_bodies() {
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
