//! The wire format and the verdicts on replies assembled by hand from the
//! BSON, OP_MSG and SDAM specifications.

use super::*;
use bson::{doc, Document};

/// A reply assembled by hand from the BSON and OP_MSG specifications
/// (not by our own encoder): a SECONDARY of replica set "rs0" with the
/// field types a real mongod sends (ObjectId, dates, embedded documents,
/// arrays, timestamps, binary, int64).
fn secondary_reply(responding_to: i32) -> Vec<u8> {
    let mut d: Vec<u8> = vec![0, 0, 0, 0];
    let mut field = |kind: u8, name: &str, value: &[u8]| {
        d.push(kind);
        d.extend_from_slice(name.as_bytes());
        d.push(0);
        d.extend_from_slice(value);
    };
    let string = |s: &str| [&(s.len() as i32 + 1).to_le_bytes()[..], s.as_bytes(), &[0]].concat();
    // {"counter": int64 0} and ["a:27017"] as embedded documents.
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
    field(0x03, "topologyVersion", &tv);
    field(0x04, "hosts", &hosts);
    field(0x02, "setName", &string("rs0"));
    field(0x10, "setVersion", &3i32.to_le_bytes());
    field(0x08, "isWritablePrimary", &[0]);
    field(0x08, "secondary", &[1]);
    field(0x07, "electionId", &[0x7f; 12]);
    field(0x09, "localTime", &1_700_000_000_000i64.to_le_bytes());
    field(
        0x05,
        "sig",
        &[&3i32.to_le_bytes()[..], &[0x00], b"abc"].concat(),
    );
    field(0x11, "operationTime", &7u64.to_le_bytes());
    field(0x0A, "nothing", &[]);
    field(0x01, "ok", &1.0f64.to_le_bytes());
    d.push(0);
    let n = d.len() as i32;
    d[0..4].copy_from_slice(&n.to_le_bytes());
    let mut m = Vec::new();
    m.extend_from_slice(&(21 + n).to_le_bytes());
    m.extend_from_slice(&99i32.to_le_bytes());
    m.extend_from_slice(&responding_to.to_le_bytes());
    m.extend_from_slice(&2013i32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(&d);
    m
}

#[test]
fn request_is_the_documented_op_msg() {
    let r = hello_request(7);
    // header: length, requestID 7, responseTo 0, opCode 2013; flags 0; kind 0.
    assert_eq!(
        i32::from_le_bytes(r[0..4].try_into().unwrap()) as usize,
        r.len()
    );
    assert_eq!(&r[4..16], &[7, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0]);
    assert_eq!(&r[16..21], &[0, 0, 0, 0, 0]);
    let doc = bson::Document::from_reader(&r[21..]).unwrap();
    assert_eq!(doc, doc! { "hello": 1i32, "$db": "admin" });
}

/// A reply message around `body` (answering request `to`).
fn reply(to: i32, body: &Document) -> Vec<u8> {
    let mut m = command_request(99, body);
    m[8..12].copy_from_slice(&to.to_le_bytes());
    m
}

#[test]
fn router_view_names_each_set_without_a_reachable_primary() {
    // The documented connPoolStats shape (docs/research/mongo-gates.md):
    // shardB's only host is down, as the monitor reports an unknown host.
    let body = doc! {
        "numClientConnections": 0i32,
        "replicaSets": {
            "csRS": { "hosts": [ { "addr": "cfg1:27019", "ok": true, "ismaster": true, "hidden": false, "secondary": false, "pingTimeMillis": 0.4 } ] },
            "shardA": { "hosts": [
                { "addr": "a1:27018", "ok": true, "ismaster": false, "secondary": true },
                { "addr": "a2:27018", "ok": true, "ismaster": true, "secondary": false } ] },
            "shardB": { "hosts": [ { "addr": "b1:27018", "ok": false, "ismaster": false, "hidden": false, "secondary": false, "pingTimeMillis": 9.223372036854776e18 } ] },
        },
        "ok": 1.0,
    };
    let view = parse_router_reply(&reply(3, &body), 3).unwrap();
    assert_eq!(view.sets.len(), 3);
    let all: Vec<String> = ["csRS", "shardA", "shardB", "shardC"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        view.unreachable(&all),
        vec![
            "shardB (no primary reachable: b1:27018 unreachable)".to_string(),
            "shardC (not monitored by this router)".to_string(),
        ]
    );
    assert!(view.unreachable(&all[..2]).is_empty());
    // No expectation: every monitored set, and at least one.
    assert_eq!(view.unreachable(&[]).len(), 1);
    assert_eq!(RouterView::default().unreachable(&[]).len(), 1);
}

#[test]
fn an_unauthorized_command_is_an_error_with_the_servers_code() {
    let body = doc! { "ok": 0.0, "errmsg": "command connPoolStats requires authentication", "code": 13i32, "codeName": "Unauthorized" };
    match parse_router_reply(&reply(4, &body), 4) {
        Err(MongoError::Command {
            code: 13, message, ..
        }) => assert!(message.contains("requires authentication")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn member_lag_is_the_primarys_optime_date_minus_its_own() {
    let at = |ms: i64| bson::DateTime::from_millis(ms);
    let body = doc! {
        "set": "rs0",
        "members": [
            { "_id": 0i32, "name": "a:27018", "state": 1i32, "stateStr": "PRIMARY", "optimeDate": at(1_700_000_012_500) },
            { "_id": 1i32, "name": "b:27018", "state": 2i32, "stateStr": "SECONDARY", "optimeDate": at(1_700_000_000_000), "self": true },
        ],
        "ok": 1i32,
    };
    let st = parse_status_reply(&reply(5, &body), 5).unwrap();
    assert_eq!(
        (st.state, st.primary.as_deref()),
        (Some(2), Some("a:27018"))
    );
    assert_eq!(st.lag_ms(), Ok(12_500));
    // Dates at the ends of the range (the fuzzer's find: an overflow).
    let body = doc! { "members": [
        { "name": "a", "state": 1i32, "optimeDate": at(i64::MAX) },
        { "name": "b", "state": 2i32, "optimeDate": at(i64::MIN), "self": true },
    ], "ok": 1i32 };
    assert_eq!(
        parse_status_reply(&reply(7, &body), 7).unwrap().lag_ms(),
        Ok(i64::MAX)
    );
    // No primary: no lag to speak of.
    let body = doc! { "members": [ { "name": "b:27018", "state": 2i32, "optimeDate": at(1), "self": true } ], "ok": 1i32 };
    let st = parse_status_reply(&reply(6, &body), 6).unwrap();
    assert_eq!(st.primary, None);
    assert!(st.lag_ms().is_err());
}

#[test]
fn secondary_reply_with_every_field_type_is_a_secondary() {
    let h = parse_reply(&secondary_reply(5), 5).unwrap();
    assert_eq!(
        h,
        Hello {
            ok: true,
            secondary: true,
            set_name: Some("rs0".into()),
            hosts: vec!["a:27017".into()],
            ..Hello::default()
        }
    );
    assert_eq!(h.server_type(), ServerType::RSSecondary);
    assert_eq!(
        h.member_verdict(Some("rs0"), false),
        Ok(ServerType::RSSecondary)
    );
}

/// One reply of the SDAM table: what it is, its body, the server type it
/// must be, and whether the member gate passes it for a container labelled
/// `rs0` and for one without a replica-set label.
type SdamCase = (&'static str, Document, ServerType, bool, bool);

/// The SDAM tests below give one reply per server type and edge, written
/// here from the rules of the specification's "Parsing a hello or legacy
/// hello response" → "type" (mongodb/specifications,
/// source/server-discovery-and-monitoring/server-discovery-and-monitoring.md),
/// with the member gate's verdict for a container labelled `rs0` and for
/// one without a replica-set label. Checked against the spec's own test
/// files (rs/, single/, sharded/: read, not copied; they are CC BY-NC-SA).
/// Each reply is parsed, typed and judged; every mismatch is named, and
/// the test fails listing them all.
fn check_sdam_cases(table: &[SdamCase]) {
    let mut failures = Vec::new();
    for (what, body, want, in_rs0, unlabelled) in table {
        let h = parse_reply(&reply(9, body), 9).unwrap();
        let got = (
            h.server_type(),
            h.member_verdict(Some("rs0"), false).is_ok(),
            h.member_verdict(None, false).is_ok(),
        );
        if got != (*want, *in_rs0, *unlabelled) {
            failures.push(format!(
                "{what}: got {got:?}, want {:?}",
                (want, in_rs0, unlabelled)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A reply whose `ok` is not 1 says nothing of the server: Unknown, and
/// no gate passes it.
#[test]
fn replies_without_ok_1_are_unknown_and_fail_the_member_gate() {
    use ServerType::*;
    check_sdam_cases(&[
        (
            "ok: 0",
            doc! { "ok": 0.0, "errmsg": "node is shutting down" },
            Unknown,
            false,
            false,
        ),
        (
            "no ok at all",
            doc! { "isWritablePrimary": true },
            Unknown,
            false,
            false,
        ),
    ]);
}

/// A standalone and a mongos (`isdbgrid` wins over a `setName`) are no
/// member of `rs0`, yet pass a container without a replica-set label.
#[test]
fn standalones_and_routers_pass_only_unlabelled() {
    use ServerType::*;
    check_sdam_cases(&[
        (
            "ok: 1 as an int32",
            doc! { "ok": 1i32, "isWritablePrimary": true },
            Standalone,
            false,
            true,
        ),
        (
            "standalone",
            doc! { "ok": 1.0, "isWritablePrimary": true, "maxWireVersion": 21i32 },
            Standalone,
            false,
            true,
        ),
        (
            "mongos",
            doc! { "ok": 1.0, "isWritablePrimary": true, "msg": "isdbgrid" },
            Mongos,
            false,
            true,
        ),
        (
            "isreplicaset: false",
            doc! { "ok": 1.0, "isWritablePrimary": true, "isreplicaset": false },
            Standalone,
            false,
            true,
        ),
        (
            "isdbgrid beats a setName",
            doc! { "ok": 1.0, "isWritablePrimary": true, "msg": "isdbgrid", "setName": "rs0" },
            Mongos,
            false,
            true,
        ),
    ]);
}

/// A primary (`isWritablePrimary`, or the legacy `ismaster` when it is
/// absent) and a secondary pass as members of their own set, and a
/// secondary of another set only unlabelled.
#[test]
fn primaries_and_secondaries_pass_as_members_of_their_own_set() {
    use ServerType::*;
    check_sdam_cases(&[
        (
            "primary",
            doc! { "ok": 1.0, "isWritablePrimary": true, "secondary": false, "setName": "rs0", "hosts": ["a:27018", "b:27018"] },
            RSPrimary,
            true,
            true,
        ),
        (
            "primary, legacy ismaster only",
            doc! { "ok": 1.0, "ismaster": true, "secondary": false, "setName": "rs0" },
            RSPrimary,
            true,
            true,
        ),
        (
            "isWritablePrimary wins over ismaster",
            doc! { "ok": 1.0, "isWritablePrimary": false, "ismaster": true, "secondary": true, "setName": "rs0" },
            RSSecondary,
            true,
            true,
        ),
        (
            "secondary",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "setName": "rs0" },
            RSSecondary,
            true,
            true,
        ),
        (
            "secondary of another set",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "setName": "rs1" },
            RSSecondary,
            false,
            true,
        ),
    ]);
}

/// An arbiter, a hidden member, one in STARTUP2 / RECOVERING and one
/// without a replica-set config (RSGhost, even with a `setName`) fail
/// the member gate, labelled or not.
#[test]
fn arbiters_hidden_recovering_and_ghost_members_fail_the_member_gate() {
    use ServerType::*;
    check_sdam_cases(&[
        (
            "arbiter",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "arbiterOnly": true, "setName": "rs0" },
            RSArbiter,
            false,
            false,
        ),
        (
            "hidden secondary",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "hidden": true, "setName": "rs0" },
            RSOther,
            false,
            false,
        ),
        (
            "STARTUP2 / RECOVERING",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "setName": "rs0" },
            RSOther,
            false,
            false,
        ),
        (
            "STARTUP, no config",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "isreplicaset": true, "info": "Does not have a valid replica set config" },
            RSGhost,
            false,
            false,
        ),
        (
            "isreplicaset with a setName",
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "isreplicaset": true, "setName": "rs0" },
            RSGhost,
            false,
            false,
        ),
    ]);
}

#[test]
fn a_failed_verdict_names_the_type_and_both_set_names() {
    let h = |body: Document| parse_reply(&reply(9, &body), 9).unwrap();
    let ghost =
        h(doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "isreplicaset": true });
    assert_eq!(
        ghost.member_verdict(Some("rs0"), false),
        Err("RSGhost (no replica-set config yet)".into())
    );
    let other = h(doc! { "ok": 1.0, "secondary": true, "setName": "rs1" });
    let why = other.member_verdict(Some("rs0"), false).unwrap_err();
    assert!(
        why.contains("RSSecondary") && why.contains("rs1") && why.contains("rs0"),
        "{why}"
    );
    let mongos = h(doc! { "ok": 1.0, "msg": "isdbgrid" });
    let why = mongos.member_verdict(Some("rs0"), false).unwrap_err();
    assert!(
        why.starts_with("Mongos (a router where a member is expected)"),
        "{why}"
    );
    let arbiter = h(doc! { "ok": 1.0, "arbiterOnly": true, "setName": "rs0" });
    assert!(arbiter
        .member_verdict(Some("rs0"), false)
        .unwrap_err()
        .starts_with("RSArbiter"));
    assert_eq!(
        arbiter.member_verdict(Some("rs0"), true),
        Ok(ServerType::RSArbiter)
    );
    let down = h(doc! { "ok": 0.0, "errmsg": "node is shutting down" });
    assert_eq!(
        down.member_verdict(None, false),
        Err("Unknown (node is shutting down)".into())
    );
}

/// Bad input (issue 24): a field of the wrong BSON type, `hosts` with a
/// non-string, a 10 MB `setName` — a reason, never a panic.
#[test]
fn hello_fields_of_the_wrong_type_or_size_are_malformed() {
    let bad = [
        (
            doc! { "ok": 1.0, "isreplicaset": 1i32 },
            "isreplicaset is an int32, expected a boolean",
        ),
        (
            doc! { "ok": 1.0, "secondary": "yes", "setName": "rs0" },
            "secondary is a string",
        ),
        (doc! { "ok": 1.0, "setName": 7i32 }, "setName is an int32"),
        (
            doc! { "ok": 1.0, "setName": "rs0", "hosts": ["a:1", 2i32] },
            "hosts.1 is an int32",
        ),
        (
            doc! { "ok": 1.0, "setName": "rs0", "hosts": "a:1" },
            "hosts is a string",
        ),
        (
            doc! { "ok": 1.0, "setName": "x".repeat(10 << 20) },
            "setName of 10485760 bytes",
        ),
    ];
    for (body, want) in bad {
        match parse_reply(&reply(9, &body), 9) {
            Err(MongoError::Malformed(m)) => assert!(m.contains(want), "{m} / {want}"),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn missing_optime_dates_fail_instead_of_counting_as_caught_up() {
    let at = |ms: i64| bson::DateTime::from_millis(ms);
    let status = |members: Vec<Document>| {
        let body = doc! { "set": "rs0", "members": members, "ok": 1i32 };
        parse_status_reply(&reply(5, &body), 5).unwrap()
    };
    let no_own = status(vec![
        doc! { "name": "a:1", "state": 1i32, "optimeDate": at(10_000) },
        doc! { "name": "b:1", "state": 2i32, "self": true },
    ]);
    assert!(no_own
        .lag_ms()
        .unwrap_err()
        .contains("no optimeDate of its own"));
    let no_primarys = status(vec![
        doc! { "name": "a:1", "state": 1i32 },
        doc! { "name": "b:1", "state": 2i32, "optimeDate": at(1), "self": true },
    ]);
    assert!(no_primarys
        .lag_ms()
        .unwrap_err()
        .contains("primary a:1 reports no optimeDate"));
    // STARTUP2 with its config: ok 1, myState 5, no primary yet.
    let body = doc! { "set": "rs0", "myState": 5i32, "members": [ { "name": "b:1", "self": true } ], "ok": 1i32 };
    let st = parse_status_reply(&reply(5, &body), 5).unwrap();
    assert_eq!(st.state, Some(5));
    assert!(st.lag_ms().unwrap_err().contains("no primary"));
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    let good = secondary_reply(5);
    assert!(
        matches!(parse_reply(&good, 6), Err(MongoError::Malformed(m)) if m.contains("request 5"))
    );
    // Every truncation and every single corrupted byte: an answer or an error, never a panic.
    for n in 0..good.len() {
        let _ = parse_reply(&good[..n], 5);
    }
    for i in 0..good.len() {
        for b in [0x00, 0x7f, 0xff] {
            let mut m = good.clone();
            m[i] = b;
            let _ = parse_reply(&m, 5);
        }
    }
}
