//! The benchmark's playbook, edited as a TOML table by key (no text
//! rewriting): derived from the shipped config/mongo-sharded.toml for a
//! scenario (its labels, startup lookups and DNS capacity; Docker health,
//! since the fake fleet has no MongoDB port), or a given one; then the fake
//! fleet's `[[hosts]]`, this unbound as `[resolver]` and `[dns.counter]`, a
//! probe name of the fleet's zone, and the run's pacing are set. rekindle's
//! own parser reads the result (the rehearsal and the run).

use anyhow::{bail, Context, Result};
use rekindle::scenario::{Scenario, SimRole};
use toml::{Table, Value};

/// The settings a run puts into the playbook.
#[derive(Debug, Clone, Default)]
pub struct Pacing {
    /// A static budget's headroom (`[dns] adaptive = false, headroom = F`);
    /// `None`: the playbook's own pacing.
    pub static_headroom: Option<f64>,
    /// The playbook claims this multiple of the scenario's capacity.
    pub claim: Option<f64>,
    /// `[dns] grant_at` (e.g. `restart`).
    pub grant_at: Option<String>,
}

/// Where rekindle finds this run's unbound and fake fleet.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// A name of the fleet's zone (`dns.probe_name`).
    pub probe_name: String,
    /// The resolver rekindle itself uses (unbound, or the fleet's relay).
    pub nameserver: String,
    /// unbound's config file, for `unbound-control -c`.
    pub unbound_conf: String,
    /// The fake fleet's `[[hosts]]` entries (its `--hosts-out` file).
    pub hosts_toml: String,
}

/// The shipped playbook derived for `sc`: labels, name, Docker health,
/// startup lookups, a short stop timeout, the capacity, and `name_dots` of
/// the absolute names the fake containers look up (one query per lookup).
pub fn derive(base: &mut Table, sc: &Scenario, probe_name: &str) -> Result<()> {
    let labels = [
        ("db.role", sc.labels.role.as_str()),
        ("db.cluster", sc.labels.cluster.as_str()),
        ("db.replset", sc.labels.replset.as_str()),
    ];
    rename_labels(base, &labels);
    let name = if sc.name.starts_with("realpath") {
        sc.name.clone()
    } else {
        format!("realpath-{}", sc.name)
    };
    base.insert("name".into(), Value::String(name));
    if let Some(roles) = base.get_mut("roles").and_then(Value::as_array_mut) {
        for role in roles.iter_mut().filter_map(Value::as_table_mut) {
            docker_health(role);
            let name = role.get("name").and_then(Value::as_str).unwrap_or("");
            let lookups = SimRole::ALL
                .iter()
                .position(|r| r.label() == name)
                .map(|i| sc.startup_lookups[i]);
            if let (Some(n), true) = (lookups, role.contains_key("startup_lookups")) {
                role.insert("startup_lookups".into(), Value::Integer(n.into()));
            }
        }
    }
    if let Some(limits) = table_mut(base, "limits") {
        if limits.contains_key("stop_timeout") {
            limits.insert("stop_timeout".into(), "5s".into());
        }
    }
    let dns = table_mut(base, "dns").context("the playbook has no [dns]")?;
    dns.insert("capacity_qps".into(), Value::Float(sc.dns.capacity_qps));
    if let Some(fleet) = table_mut(dns, "fleet") {
        if fleet.contains_key("name_dots") {
            let dots = probe_name.trim_end_matches('.').matches('.').count();
            fleet.insert("name_dots".into(), Value::Integer(dots as i64));
        }
    }
    Ok(())
}

/// Sets what every run sets: the probe name, the claim, the pacing, this
/// unbound's counter and address, the fake fleet's hosts.
pub fn wire(pb: &mut Table, sc: &Scenario, pacing: &Pacing, w: &Wiring) -> Result<()> {
    if pb.contains_key("hosts") {
        bail!("the playbook has [[hosts]] of its own; the benchmark adds the fake fleet's");
    }
    let dns = entry_table(pb, "dns")?;
    dns.insert("probe_name".into(), w.probe_name.clone().into());
    if let Some(claim) = pacing.claim {
        dns.insert(
            "capacity_qps".into(),
            Value::Float(claim * sc.dns.capacity_qps),
        );
    }
    if let Some(headroom) = pacing.static_headroom {
        dns.insert("adaptive".into(), false.into());
        dns.insert("headroom".into(), Value::Float(headroom));
    }
    if let Some(at) = &pacing.grant_at {
        dns.insert("grant_at".into(), at.clone().into());
    }
    let mut counter = Table::new();
    let command = ["unbound-control", "-c", &w.unbound_conf, "stats_noreset"];
    counter.insert(
        "command".into(),
        Value::Array(command.iter().map(|s| Value::from(*s)).collect()),
    );
    counter.insert("key".into(), "total.num.queries".into());
    counter.insert(
        "dropped_key".into(),
        "total.num.queries_ip_ratelimited".into(),
    );
    dns.insert("counter".into(), Value::Table(counter));
    let resolver = entry_table(pb, "resolver")?;
    resolver.insert(
        "nameservers".into(),
        Value::Array(vec![w.nameserver.clone().into()]),
    );
    let hosts: Table = toml::from_str(&w.hosts_toml).context("the fake fleet's hosts file")?;
    if let Some(h) = hosts.get("hosts") {
        pb.insert("hosts".into(), h.clone());
    }
    Ok(())
}

/// The line the benchmark prints about a playbook's pacing.
pub fn pacing_line(pb: &Table) -> String {
    let dns = pb.get("dns").and_then(Value::as_table);
    let get = |k: &str| dns.and_then(|d| d.get(k));
    let adaptive = get("adaptive").and_then(Value::as_bool).unwrap_or(true);
    let capacity = get("capacity_qps").and_then(number).unwrap_or(f64::NAN);
    let headroom = get("headroom").and_then(number).unwrap_or(0.8);
    format!(
        "pacing: {}, capacity_qps {capacity}, headroom {headroom} (ceiling {:.0} q/s)",
        if adaptive { "adaptive" } else { "static" },
        capacity * headroom
    )
}

/// A TOML integer or float as f64.
pub fn number(v: &Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// Every key or string value equal to a shipped label key, renamed to the
/// scenario's (what the shipped playbook names `db.role` and so on).
fn rename_labels(t: &mut Table, labels: &[(&str, &str)]) {
    let renamed = |s: &str| {
        labels
            .iter()
            .find(|(from, _)| *from == s)
            .map(|(_, to)| to.to_string())
    };
    let keys: Vec<String> = t.keys().cloned().collect();
    for key in keys {
        let mut value = t.remove(&key).expect("a key just listed");
        rename_in(&mut value, labels);
        t.insert(renamed(&key).unwrap_or(key), value);
    }
    fn rename_in(v: &mut Value, labels: &[(&str, &str)]) {
        match v {
            Value::String(s) => {
                if let Some((_, to)) = labels.iter().find(|(from, _)| from == s) {
                    *s = to.to_string();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| rename_in(x, labels)),
            Value::Table(t) => rename_labels(t, labels),
            _ => {}
        }
    }
}

/// A MongoDB or TCP gate becomes Docker's health (the fake fleet has no
/// MongoDB port): kind `docker`, interval 500 ms, its deadline kept.
fn docker_health(role: &mut Table) {
    let Some(health) = table_mut(role, "health") else {
        return;
    };
    let kind = health.get("kind").and_then(Value::as_str).unwrap_or("");
    if !matches!(kind, "mongo" | "mongos" | "tcp") {
        return;
    }
    for k in ["port", "timeout", "max_lag"] {
        health.remove(k);
    }
    health.insert("kind".into(), "docker".into());
    health.insert("interval".into(), "500ms".into());
}

fn table_mut<'a>(t: &'a mut Table, key: &str) -> Option<&'a mut Table> {
    t.get_mut(key).and_then(Value::as_table_mut)
}

fn entry_table<'a>(t: &'a mut Table, key: &str) -> Result<&'a mut Table> {
    t.entry(key)
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .with_context(|| format!("`{key}` in the playbook is not a table"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rekindle::source::SourceText;

    const SHIPPED: &str = include_str!("../../config/mongo-sharded.toml");

    /// realpath-small with labels, lookups and a name of its own.
    fn scenario() -> Scenario {
        let text = include_str!("../../benches/scenarios/realpath-small.toml")
            .replace("name = \"realpath-small\"", "name = \"tiny\"")
            .replace("role = \"db.role\"", "role = \"x.role\"")
            .replace("cluster = \"db.cluster\"", "cluster = \"x.cluster\"")
            .replace("replset = \"db.replset\"", "replset = \"x.rs\"")
            .replace("configsvr = 5\nshard = 5\n", "configsvr = 7\nshard = 6\n");
        let sc =
            Scenario::parse(&SourceText::new("tiny.toml", text)).expect("the test scenario parses");
        assert_eq!(
            (
                sc.name.as_str(),
                sc.labels.replset.as_str(),
                sc.startup_lookups
            ),
            ("tiny", "x.rs", [7, 6, 41])
        );
        sc
    }

    fn wiring() -> Wiring {
        Wiring {
            probe_name: "n-0.db.tiny.".into(),
            nameserver: "127.0.0.1:5353".into(),
            unbound_conf: "/w/unbound.conf".into(),
            hosts_toml: "[[hosts]]\nname = \"h0\"\nurl = \"tcp://127.0.0.1:1\"\n".into(),
        }
    }

    fn built(pacing: &Pacing) -> Table {
        let sc = scenario();
        let mut pb: Table = toml::from_str(SHIPPED).unwrap();
        derive(&mut pb, &sc, &wiring().probe_name).unwrap();
        wire(&mut pb, &sc, pacing, &wiring()).unwrap();
        // What the benchmark writes, read back by rekindle's own parser.
        let text = toml::to_string(&pb).unwrap();
        rekindle::config::Playbook::parse(&SourceText::new("pb.toml", text.clone()))
            .unwrap_or_else(|e| panic!("rekindle rejects the derived playbook: {e}\n{text}"));
        pb
    }

    fn at<'a>(t: &'a Table, path: &str) -> &'a Value {
        let mut v = t
            .get(path.split('.').next().unwrap())
            .unwrap_or_else(|| panic!("{path}"));
        for k in path.split('.').skip(1) {
            v = v.get(k).unwrap_or_else(|| panic!("{path}: no {k}"));
        }
        v
    }

    #[test]
    fn derived_from_the_shipped_playbook_for_a_scenario() {
        let pb = built(&Pacing::default());
        assert_eq!(at(&pb, "name").as_str(), Some("realpath-tiny"));
        assert_eq!(at(&pb, "groups.cluster").as_str(), Some("x.cluster"));
        assert_eq!(at(&pb, "groups.replset").as_str(), Some("x.rs"));
        let roles = at(&pb, "roles").as_array().unwrap();
        let lookups: Vec<_> = roles
            .iter()
            .map(|r| r["startup_lookups"].as_integer().unwrap())
            .collect();
        assert_eq!(lookups, [7, 6, 41]);
        assert_eq!(roles[2]["selector"]["x.role"].as_str(), Some("router"));
        let h = roles[0]["health"].as_table().unwrap();
        assert_eq!(h["kind"].as_str(), Some("docker"));
        assert_eq!(h["interval"].as_str(), Some("500ms"));
        assert_eq!(h["deadline"].as_str(), Some("120s"));
        assert!(!h.contains_key("port") && !h.contains_key("max_lag"));
        assert_eq!(at(&pb, "limits.stop_timeout").as_str(), Some("5s"));
        assert_eq!(number(at(&pb, "dns.capacity_qps")), Some(300.0));
        assert_eq!(at(&pb, "dns.fleet.name_dots").as_integer(), Some(2));
        assert_eq!(at(&pb, "dns.probe_name").as_str(), Some("n-0.db.tiny."));
        assert_eq!(at(&pb, "dns.counter.command").as_array().unwrap().len(), 4);
        assert_eq!(
            at(&pb, "dns.counter.command")[2].as_str(),
            Some("/w/unbound.conf")
        );
        assert_eq!(
            at(&pb, "resolver.nameservers")[0].as_str(),
            Some("127.0.0.1:5353")
        );
        assert_eq!(at(&pb, "hosts").as_array().unwrap().len(), 1);
        assert!(
            at(&pb, "dns").get("adaptive").is_none(),
            "the playbook's own pacing"
        );
        assert_eq!(
            pacing_line(&pb),
            "pacing: adaptive, capacity_qps 300, headroom 0.98 (ceiling 294 q/s)"
        );
    }

    #[test]
    fn static_claim_and_grant_at_are_set_by_key() {
        let pb = built(&Pacing {
            static_headroom: Some(0.7),
            claim: Some(2.0),
            grant_at: Some("restart".into()),
        });
        assert_eq!(at(&pb, "dns.adaptive").as_bool(), Some(false));
        assert_eq!(number(at(&pb, "dns.headroom")), Some(0.7));
        assert_eq!(number(at(&pb, "dns.capacity_qps")), Some(600.0));
        assert_eq!(at(&pb, "dns.grant_at").as_str(), Some("restart"));
        assert_eq!(
            pacing_line(&pb),
            "pacing: static, capacity_qps 600, headroom 0.7 (ceiling 420 q/s)"
        );
    }

    #[test]
    fn a_playbook_with_hosts_of_its_own_is_refused() {
        let mut pb: Table = toml::from_str(SHIPPED).unwrap();
        pb.insert("hosts".into(), Value::Array(vec![]));
        let e = wire(&mut pb, &scenario(), &Pacing::default(), &wiring()).unwrap_err();
        assert!(e.to_string().contains("[[hosts]] of its own"), "{e}");
    }

    #[test]
    fn a_scenario_named_realpath_keeps_its_name() {
        let mut sc = scenario();
        sc.name = "realpath-4k".into();
        let mut pb: Table = toml::from_str(SHIPPED).unwrap();
        derive(&mut pb, &sc, "a.b.").unwrap();
        assert_eq!(pb["name"].as_str(), Some("realpath-4k"));
        assert_eq!(at(&pb, "dns.fleet.name_dots").as_integer(), Some(1));
    }
}
