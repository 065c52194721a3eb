//! Rendering plans for people (tables) and machines (JSON).

use crate::config::Playbook;
use crate::duration::human;
use crate::model::Inventory;
use crate::plan::Plan;
use serde_json::json;
use std::io::Write;

const TABLE_ROWS: usize = 40;

pub fn plan_json(
    out: &mut impl Write,
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
) -> std::io::Result<()> {
    let name = |i: &u32| inv.containers[*i as usize].name.as_str();
    let waves: Vec<_> = plan
        .waves
        .iter()
        .map(|w| {
            json!({
                "index": w.index,
                "role": pb.roles[w.role].name,
                "group": w.group,
                "canary": w.canary,
                "after": w.after,
                "containers": w.containers.iter().map(name).collect::<Vec<_>>(),
                "hosts": w.hosts,
                "dns_lookups": w.dns_lookups,
                "dns_queries": w.dns_queries,
                "estimate_s": secs(w.estimate),
            })
        })
        .collect();
    let doc = json!({
        "playbook": pb.name,
        "containers": plan.containers,
        "unmatched": plan.unmatched.iter().map(name).collect::<Vec<_>>(),
        "empty_roles": plan.empty_roles,
        "unreachable_hosts": inv.unreachable_hosts().map(|h| json!({"host": h.name, "error": h.error})).collect::<Vec<_>>(),
        "dns_lookups": plan.dns_lookups,
        "dns_queries": plan.dns_queries,
        "dns_queries_per_lookup": pb.dns.fleet.queries_per_lookup(),
        "dns_budget_qps": pb.dns.budget_qps(),
        "critical_path_s": secs(plan.critical_path),
        "dns_bound_s": secs(plan.dns_bound),
        "estimate_s": secs(plan.estimate),
        "waves": waves,
    });
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The plan for people: what it covers and its warnings, its roles, its
/// waves (the first `TABLE_ROWS` (40) unless `all`), and its DNS load and
/// time estimate.
pub fn plan_table(
    out: &mut impl Write,
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
    all: bool,
) -> std::io::Result<()> {
    plan_header(out, pb, inv, plan)?;
    writeln!(out)?;
    roles_table(out, pb, plan)?;
    writeln!(out)?;
    waves_table(out, pb, plan, all)?;
    writeln!(out)?;
    plan_footer(out, pb, inv, plan)
}

/// The plan's first lines: the playbook, how many containers, hosts and
/// waves, what is left alone, and a warning per unreachable host and per
/// role that matches nothing.
fn plan_header(
    out: &mut impl Write,
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
) -> std::io::Result<()> {
    writeln!(
        out,
        "Plan for playbook {:?} ({})",
        pb.name,
        pb.source.display()
    )?;
    let reachable = inv.hosts.iter().filter(|h| h.reachable).count();
    writeln!(
        out,
        "  {} containers on {} hosts in {} waves; {} not matched by any role",
        plan.containers,
        reachable,
        plan.waves.len(),
        plan.unmatched.len()
    )?;
    if !plan.left_out.is_empty() {
        writeln!(
            out,
            "  {} containers left alone: they pass their gates (only what is broken restarts)",
            plan.left_out.len()
        )?;
    }
    for h in inv.unreachable_hosts() {
        writeln!(
            out,
            "  WARNING: host {} unreachable: {} — its containers are not in this plan",
            h.name,
            h.error.as_deref().unwrap_or("no answer")
        )?;
    }
    for r in &plan.empty_roles {
        writeln!(out, "  WARNING: role {r:?} matches no container")?;
    }
    Ok(())
}

/// One row per role, in dependency order: its waves, containers, DNS
/// lookups and the roles it waits for.
fn roles_table(out: &mut impl Write, pb: &Playbook, plan: &Plan) -> std::io::Result<()> {
    writeln!(out, "By role (dependency order):")?;
    writeln!(
        out,
        "  {:<14} {:>8} {:>7} {:>11} {:>10}",
        "ROLE", "WAVES", "CONTAINERS", "DNS LOOKUPS", "AFTER"
    )?;
    for (r, role) in pb.roles.iter().enumerate() {
        let waves: Vec<_> = plan.waves.iter().filter(|w| w.role == r).collect();
        let n: usize = waves.iter().map(|w| w.containers.len()).sum();
        let dns: u64 = waves.iter().map(|w| w.dns_lookups).sum();
        let after: Vec<&str> = role
            .after
            .iter()
            .map(|&d| pb.roles[d].name.as_str())
            .collect();
        writeln!(
            out,
            "  {:<14} {:>8} {:>7} {:>11} {:>10}",
            role.name,
            waves.len(),
            n,
            dns,
            if after.is_empty() {
                "-".to_string()
            } else {
                after.join(",")
            }
        )?;
    }
    Ok(())
}

/// One row per wave (the first `TABLE_ROWS` (40) unless `all`, then how many
/// more): its role, group, size, hosts, DNS queries, estimate and the
/// waves it waits for.
fn waves_table(out: &mut impl Write, pb: &Playbook, plan: &Plan, all: bool) -> std::io::Result<()> {
    writeln!(out, "Waves:")?;
    writeln!(
        out,
        "  {:>5}  {:<18} {:<10} {:>6} {:>6} {:>8} {:>9}  AFTER",
        "WAVE", "ROLE", "GROUP", "COUNT", "HOSTS", "DNS Q", "EST"
    )?;
    let shown = if all {
        plan.waves.len()
    } else {
        plan.waves.len().min(TABLE_ROWS)
    };
    for w in &plan.waves[..shown] {
        let after = match w.after.len() {
            0 => "-".to_string(),
            1..=4 => w
                .after
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
            n => format!("{n} waves"),
        };
        let role = if w.canary {
            format!("{} (canary)", pb.roles[w.role].name)
        } else {
            pb.roles[w.role].name.clone()
        };
        writeln!(
            out,
            "  {:>5}  {:<18} {:<10} {:>6} {:>6} {:>8} {:>9}  {}",
            w.index,
            role,
            if w.group.is_empty() { "-" } else { &w.group },
            w.containers.len(),
            w.hosts,
            w.dns_queries,
            human(w.estimate),
            after
        )?;
    }
    if shown < plan.waves.len() {
        writeln!(
            out,
            "  … {} more waves (--all lists them, --output json gives everything)",
            plan.waves.len() - shown
        )?;
    }
    Ok(())
}

/// The plan's last lines: the DNS queries its startups cost against the
/// budget, the pacing, and the estimated time.
fn plan_footer(
    out: &mut impl Write,
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
) -> std::io::Result<()> {
    writeln!(
        out,
        "DNS: {} startup lookups × {} quer{} each ({} address famil{} × {} name{} tried) = {} queries under a budget of {:.0} q/s ({:.0} q/s capacity × {:.0}% headroom)",
        plan.dns_lookups,
        pb.dns.fleet.queries_per_lookup(),
        if pb.dns.fleet.queries_per_lookup() == 1 { "y" } else { "ies" },
        pb.dns.fleet.families,
        if pb.dns.fleet.families == 1 { "y" } else { "ies" },
        pb.dns.fleet.names_tried(),
        if pb.dns.fleet.names_tried() == 1 { "" } else { "s" },
        plan.dns_queries,
        pb.dns.budget_qps(),
        pb.dns.capacity_qps,
        pb.dns.headroom * 100.0
    )?;
    writeln!(out, "{}", pacing_line(pb, inv))?;
    writeln!(
        out,
        "Estimated time: {} (critical path {}, DNS bound {})",
        human(plan.estimate),
        human(plan.critical_path),
        human(plan.dns_bound)
    )?;
    Ok(())
}

pub use crate::report::rehearsal_table;

/// The static-budget frontier of `rehearse --sweep`.
pub fn sweep_table(out: &mut impl Write, s: &crate::rehearse::sweep::Sweep) -> std::io::Result<()> {
    writeln!(
        out,
        "Static DNS budgets for playbook {:?} on scenario {:?} (lower bound {:.1}s)",
        s.playbook, s.scenario, s.lower_bound_s
    )?;
    writeln!(
        out,
        "{:>8} {:>10} {:>10} {:>7} {:>10} {:>9} {:>6}",
        "fraction", "budget q/s", "makespan", "ratio", "dropped", "share", "stuck"
    )?;
    for p in &s.points {
        let makespan = p
            .makespan_s
            .map(|m| format!("{m:.1}s"))
            .unwrap_or_else(|| "never".into());
        let ratio = p
            .makespan_s
            .map(|m| format!("{:.3}", m / s.lower_bound_s))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:>8.2} {:>10.0} {:>10} {:>7} {:>10} {:>8.2}% {:>6}",
            p.fraction,
            p.budget_qps,
            makespan,
            ratio,
            p.dns_dropped,
            p.dropped_share * 100.0,
            p.stuck
        )?;
    }
    match &s.best {
        Some(b) => writeln!(
            out,
            "best static budget under {:.2}% dropped: {:.0} q/s ({:.2} of the claim): makespan {:.1}s ({:.3} x the lower bound), {:.2}% dropped",
            s.drop_limit * 100.0,
            b.budget_qps,
            b.fraction,
            b.makespan_s.unwrap_or(f64::NAN),
            b.makespan_s.unwrap_or(f64::NAN) / s.lower_bound_s,
            b.dropped_share * 100.0
        ),
        None => writeln!(out, "no static budget swept stays under {:.2}% dropped with every container healthy", s.drop_limit * 100.0),
    }
}

/// Which DNS pacing a run of this plan would use, and on which signals.
fn pacing_line(pb: &Playbook, inv: &Inventory) -> String {
    if !pb.dns.adaptive {
        return "DNS pacing: static at that budget (dns.adaptive = false)".into();
    }
    let mut signals = Vec::new();
    if let Some(c) = &pb.dns.counter {
        let from = match &c.source {
            crate::config::CounterSource::Command(argv) => format!("`{}`", argv.join(" ")),
            crate::config::CounterSource::Url(u) => u.clone(),
        };
        signals.push(format!(
            "the resolver's counters from {from} ({}{})",
            c.key,
            c.dropped_key
                .as_ref()
                .map(|k| format!(", dropped: {k}"))
                .unwrap_or_default()
        ));
    }
    match crate::recovery::probe_name(pb, inv) {
        Some((name, from)) => signals.push(format!("probe queries for {name} (from {from})")),
        None => return "DNS pacing: static at that budget (no dns.probe_name and no DNS name in the inventory to probe)".into(),
    }
    format!(
        "DNS pacing: adaptive under that budget, from half of it; signals: {}",
        signals.join("; ")
    )
}

/// `rekindle survey`'s table: per cluster and role, how many are ok,
/// broken, down or unknown; then every container that is not ok, with why.
pub fn survey_table(out: &mut impl Write, s: &crate::survey::Survey) -> std::io::Result<()> {
    use crate::survey::Verdict;
    writeln!(
        out,
        "Survey of playbook {:?}: {} containers: {} ok, {} broken, {} down, {} unknown",
        s.playbook,
        s.findings.len(),
        s.count(&Verdict::Ok),
        s.count(&Verdict::Broken),
        s.count(&Verdict::Down),
        s.count(&Verdict::Unknown)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<24} {:<16} {:>6} {:>7} {:>6} {:>8}",
        "CLUSTER", "ROLE", "OK", "BROKEN", "DOWN", "UNKNOWN"
    )?;
    for ((cluster, role), n) in s.by_cluster() {
        writeln!(
            out,
            "  {:<24} {:<16} {:>6} {:>7} {:>6} {:>8}",
            cluster, role, n[0], n[1], n[2], n[3]
        )?;
    }
    if !s.hosts_silent.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Docker hosts that did not answer: {} (their containers could not be listed, none is surveyed):",
            s.hosts_silent.len()
        )?;
        for h in &s.hosts_silent {
            writeln!(out, "  {}: {}", h.host, h.error)?;
        }
    }
    if !s.sets_without_primary.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Replica sets without a primary: {} ({})",
            s.sets_without_primary.len(),
            abbreviate(&s.sets_without_primary, 10)
        )?;
    }
    let wrong: Vec<_> = s
        .findings
        .iter()
        .filter(|f| f.verdict != Verdict::Ok)
        .collect();
    const SHOWN: usize = 50;
    if !wrong.is_empty() {
        writeln!(out)?;
        writeln!(out, "Not ok:")?;
        if wrong.len() > SHOWN {
            writeln!(
                out,
                "  (the first {SHOWN} of {}: --output json lists every one)",
                wrong.len()
            )?;
        }
        for f in wrong.into_iter().take(SHOWN) {
            finding_line(out, f)?;
        }
    }
    Ok(())
}

/// What a run of only what is broken restarts and leaves alone, per rule
/// (before its plan's table).
pub fn selection_table(
    out: &mut impl Write,
    s: &crate::survey::Survey,
    sel: &crate::survey::select::Selection,
) -> std::io::Result<()> {
    use crate::survey::Verdict;
    writeln!(
        out,
        "Only what is broken: the survey found {} containers: {} ok, {} broken, {} down, {} unknown",
        s.findings.len(),
        s.count(&Verdict::Ok),
        s.count(&Verdict::Broken),
        s.count(&Verdict::Down),
        s.count(&Verdict::Unknown)
    )?;
    let sets = sel.sets_without_primary();
    for (why, n) in sel.counts() {
        let verb = if why.restarts() { "restart" } else { "leave" };
        let what = match &why {
            crate::survey::select::Why::NoPrimary { .. } => format!(
                "their replica set has no primary ({} sets: {})",
                sets.len(),
                abbreviate(&sets, 6)
            ),
            other => other.describe(),
        };
        writeln!(out, "  {verb:<8} {n:>7}  {what}")?;
    }
    writeln!(out)
}

/// The first `n` items, then how many more.
fn abbreviate(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        s.push_str(&format!(" and {} more", items.len() - n));
    }
    s
}

/// The selection as JSON: counts per rule, and every container restarted
/// with its reason (those left alone are counted).
pub fn selection_json(
    inv: &Inventory,
    sel: &crate::survey::select::Selection,
) -> serde_json::Value {
    json!({
        "restart": sel.why.iter().filter(|(_, w)| w.restarts()).map(|(&i, w)| {
            let mut v = serde_json::to_value(w).unwrap_or_default();
            v["container"] = json!(inv.containers[i as usize].name);
            v
        }).collect::<Vec<_>>(),
        "left_alone": sel.left_alone(),
        "by_rule": sel.counts().iter().map(|(w, n)| json!({"why": w.describe(), "restarts": w.restarts(), "containers": n})).collect::<Vec<_>>(),
        "sets_without_primary": sel.sets_without_primary(),
    })
}

/// The closing survey (post-flight) in one line, and what is still not
/// ok (the first 20).
pub fn post_flight(out: &mut impl Write, s: &crate::survey::Survey) -> std::io::Result<()> {
    use crate::survey::Verdict;
    let wrong: Vec<_> = s
        .findings
        .iter()
        .filter(|f| f.verdict != Verdict::Ok)
        .collect();
    writeln!(
        out,
        "post-flight survey: {} of {} containers ok{}",
        s.count(&Verdict::Ok),
        s.findings.len(),
        if wrong.is_empty() {
            String::new()
        } else {
            format!("; {} still not ok:", wrong.len())
        }
    )?;
    for f in wrong.iter().take(20) {
        finding_line(out, f)?;
    }
    if wrong.len() > 20 {
        writeln!(
            out,
            "  … and {} more (rekindle survey lists them all)",
            wrong.len() - 20
        )?;
    }
    Ok(())
}

/// One container that is not ok, with why.
fn finding_line(out: &mut impl Write, f: &crate::survey::Finding) -> std::io::Result<()> {
    writeln!(
        out,
        "  {:<8} {} on {} ({}): {}",
        f.verdict.as_str(),
        f.container,
        f.host,
        f.role,
        f.reason.as_deref().unwrap_or("")
    )
}
