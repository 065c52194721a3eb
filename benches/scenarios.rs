//! Scenario benchmark (not criterion: it prints figures): rehearses the
//! shipped recovery playbook on every scenario in `config/scenarios/` and,
//! when present, `../shared/scenarios/`, with the baselines on the same
//! world, and prints one table. `cargo bench --bench scenarios`.
//! The playbook's resolver capacity is set to each scenario's, as an
//! operator would write it for that fleet; nothing else is tuned.

use rekindle::config::Playbook;
use rekindle::rehearse::{best_fixed_batch, rehearse, Options};
use rekindle::scenario::Scenario;
use rekindle::source::SourceText;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        root.join("config/scenarios"),
        root.join("../shared/scenarios"),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            v.sort();
            files.extend(v);
        }
    }
    let template = std::fs::read_to_string(root.join("config/mongo-sharded.toml")).unwrap();
    println!(
        "{:<34} {:>7} {:>9} {:>8} {:>6} {:>15} {:>8} {:>12} {:>10} {:>16} {:>10} {:>7}",
        "scenario",
        "cont.",
        "makespan",
        "LB",
        "ratio",
        "DNS peak/cap",
        "drops",
        "all-at-once",
        "drops",
        "best fixed batch",
        "drops",
        "wall"
    );
    for f in files {
        let scenario = match Scenario::load(&f) {
            Ok(s) => s,
            Err(e) => {
                println!("{}: {e}", f.display());
                continue;
            }
        };
        let mut text = template.clone();
        text = text.replace(
            "capacity_qps = 5000",
            &format!("capacity_qps = {}", scenario.dns.capacity_qps),
        );
        for (role, n) in ["configsvr", "shard", "router"]
            .iter()
            .zip(scenario.startup_lookups)
        {
            // The playbook states the fleet's startup lookups per role.
            let marker = format!("name = \"{role}\"\nselector = {{ \"db.role\" = \"{role}\" }}\n");
            if let Some(i) = text.find(&marker) {
                let rest = &text[i..];
                let j = i + rest.find("startup_lookups = ").unwrap();
                let k = j + text[j..].find('\n').unwrap();
                text.replace_range(j..k, &format!("startup_lookups = {n}"));
            }
        }
        let pb = Playbook::parse(&SourceText::new("config/mongo-sharded.toml", text)).unwrap();
        let wall = std::time::Instant::now();
        let r = rehearse(
            &pb,
            &scenario,
            &Options {
                compare: true,
                static_budget: false,
                handle_tx: None,
                state_dir: None,
                only: rekindle::config::Only::All,
            },
            |_, _| {},
        )
        .unwrap();
        let wall = wall.elapsed().as_secs_f64();
        let ms = |x: Option<f64>| {
            x.map(|v| format!("{v:.1}s"))
                .unwrap_or_else(|| "no conv.".into())
        };
        let aao = r
            .baselines
            .iter()
            .find(|b| b.policy == "all-at-once")
            .unwrap();
        let best = best_fixed_batch(&r.baselines).unwrap();
        println!(
            "{:<34} {:>7} {:>9} {:>7.1}s {:>6} {:>15} {:>8} {:>12} {:>10} {:>16} {:>10} {:>6.1}s",
            f.strip_prefix(root).unwrap_or(&f).display(),
            r.total,
            ms(r.makespan_s),
            r.lower_bound_s,
            r.ratio
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{:.0}", r.dns_peak_qps, r.dns_capacity_qps),
            r.dns_dropped,
            ms(aao.makespan_s),
            aao.dns_dropped,
            format!(
                "{} {}",
                best.policy.trim_start_matches("fixed-batch-"),
                ms(best.makespan_s)
            ),
            best.dns_dropped,
            wall
        );
    }
}
