//! JSON (inventory files, API bodies): the dictionary, mutations of a
//! parsed tree, and random documents of each shape.

use super::generic::{
    chance, insert_nesting, long_string, mutate_lines, pick, replace_number, replace_string, small,
    STRINGS,
};
use super::*;

pub(super) const JSON_DICT: &[&[u8]] = &[
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
pub(super) fn json_mutant(
    rng: &mut Rng,
    pool: &[Vec<u8>],
    random_doc: fn(&mut Rng) -> Value,
) -> Vec<u8> {
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

pub(super) fn random_string(rng: &mut Rng) -> String {
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
pub(super) fn mutate_value(rng: &mut Rng, v: &mut Value, depth: usize) {
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

pub(super) fn random_inventory(rng: &mut Rng) -> Value {
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

pub(super) fn random_api_body(rng: &mut Rng) -> Value {
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
