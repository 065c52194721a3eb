//! The MongoDB health gates on the real Docker Engine, with the dbnode
//! fixture speaking the wire protocol: a router gate that sees a mongos
//! which answers `hello` but cannot reach its shards (the incident), and a
//! member gate that waits for replication lag to close. Docker's own event
//! log is the witness of every start; the fixture's `connPoolStats`,
//! asked by the test itself, is the witness of what the routers reach.

use crate::common;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

mod auth;
mod gates;
mod rolling;

fn write_playbook(dir: &tempfile::TempDir, file: &str, text: &str) -> String {
    let path = dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The container's address on its network.
fn ip_of(name: &str) -> std::net::IpAddr {
    let out = common::docker()
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            name,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no address for {name}: {text:?}"))
}

/// The replica sets of each cluster (set → "host:port" members), from the
/// specs' labels and ports.
fn sets_of(specs: &[Spec]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for s in specs {
        let label = |k: &str| {
            s.labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let (Some(cluster), Some(set)) = (label("db.cluster"), label("db.replset")) else {
            continue;
        };
        let port = s
            .env
            .iter()
            .find(|(k, _)| k == "DBNODE_PORT")
            .map(|(_, v)| v.clone())
            .unwrap();
        out.entry(cluster)
            .or_default()
            .entry(set)
            .or_default()
            .push(format!("{}:{port}", s.name));
    }
    out
}

/// Each spec's container name and the port its fixture listens on.
fn ports_of(specs: &[Spec]) -> Vec<(String, u16)> {
    specs
        .iter()
        .map(|s| {
            let port = s.env.iter().find(|(k, _)| k == "DBNODE_PORT").unwrap();
            (s.name.clone(), port.1.parse().unwrap())
        })
        .collect()
}

/// Waits until every container listens: the fleet as the incident leaves
/// it, every process up (a fixture mongos first tries its shards, a few
/// seconds, before it listens).
fn wait_listening(ports: &[(String, u16)]) {
    for (name, port) in ports {
        let addr = std::net::SocketAddr::new(ip_of(name), *port);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} ({addr}) never listened"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Each router of `specs` as its replica-set monitor sees its cluster now:
/// the sets it cannot reach (empty: it reaches every one).
fn unreachable_by_router(specs: &[Spec]) -> BTreeMap<String, Vec<String>> {
    let sets = sets_of(specs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = BTreeMap::new();
    for s in specs.iter().filter(|s| s.name.contains("-mongos-")) {
        let cluster = s
            .labels
            .iter()
            .find(|(k, _)| k == "db.cluster")
            .unwrap()
            .1
            .clone();
        let expected: Vec<String> = sets[&cluster].keys().cloned().collect();
        let addr = std::net::SocketAddr::new(ip_of(&s.name), 27017);
        let view = rt
            .block_on(rekindle::health::mongo::with_conn(
                &rekindle::health::mongo::Target::plain(addr),
                Duration::from_secs(5),
                |c| Box::pin(c.router_view()),
            ))
            .unwrap_or_else(|e| panic!("connPoolStats on {}: {e}", s.name));
        out.insert(s.name.clone(), view.unreachable(&expected));
    }
    out
}

/// `sharded_specs` with each mongos told its cluster's replica sets, and
/// each shard member slow to open its port (a mongod replaying its journal).
fn gated_specs(id: &str, clusters: usize, shards: usize, routers: usize) -> Vec<Spec> {
    // Long enough that routers started once the config servers pass find
    // the shards closed: a second or two on an idle machine, but 15 s on a
    // loaded 2-core CI machine (where 10 s let every router start after
    // the shards had opened, and none was stranded).
    gated_specs_with(id, clusters, shards, routers, 25_000)
}

fn gated_specs_with(
    id: &str,
    clusters: usize,
    shards: usize,
    routers: usize,
    listen_delay_ms: u64,
) -> Vec<Spec> {
    let mut specs = sharded_specs(id, clusters, shards, routers);
    let sets = sets_of(&specs);
    for s in specs.iter_mut() {
        if s.name.contains("-mongos-") {
            let cluster = s
                .labels
                .iter()
                .find(|(k, _)| k == "db.cluster")
                .unwrap()
                .1
                .clone();
            let shards: Vec<String> = sets[&cluster]
                .iter()
                .map(|(set, hosts)| format!("{set}={}", hosts.join(",")))
                .collect();
            s.env.push(("DBNODE_SHARDS".into(), shards.join(";")));
        } else if s.name.contains("-rs") {
            s.env
                .push(("DBNODE_LISTEN_DELAY_MS".into(), listen_delay_ms.to_string()));
        }
        // One primary per set: member 0.
        if s.name.ends_with("-0") && !s.name.contains("-mongos-") {
            s.env.push(("DBNODE_PRIMARY".into(), "1".into()));
        }
    }
    specs
}

/// The shipped gates (`mongo` on members, `mongos` on routers), as
/// docs/playbook.md recommends them.
fn shipped_gates_playbook(id: &str, member_extra: &str) -> String {
    run_playbook(id, "", "fail")
        .replace(
            r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
            &format!(r#"health = {{ kind = "mongo", port = 27019, interval = "250ms", deadline = "30s"{member_extra} }}"#),
        )
        .replace(
            r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
            &format!(r#"health = {{ kind = "mongo", port = 27018, interval = "250ms", deadline = "30s"{member_extra} }}"#),
        )
        .replace(
            r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongos", port = 27017, stuck_after = "2s", interval = "250ms", deadline = "30s" }"#,
        )
        .replace("max_unavailable_per_replset = 1", "max_unavailable_per_replset = \"all\"")
}
