//! `--survey-only`: `rekindle survey` alone against the fake fleet (no
//! rehearsal, no run): its wall time, CPU and peak RSS (from /proc), its
//! verdicts against the fake fleet's count of what it broke, and the
//! connections each fake host saw.

use crate::figures::{shown, u};
use crate::out::{opt, Row};
use crate::procs::{self, Proc};
use crate::say;
use crate::services::FakeFleet;
use crate::witness::{broken_at_start, not_ok, verdicts};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// A survey's figures.
#[derive(Debug, Default, serde::Serialize)]
pub struct SurveyResult {
    pub exit: i32,
    pub wall_s: f64,
    pub containers: u64,
    pub hosts: u64,
    pub verdicts: Vec<(&'static str, usize)>,
    pub broken: usize,
    pub false_positives: usize,
    pub missed: usize,
    pub cpu_s: f64,
    pub peak_rss_kb: u64,
    pub starts: u64,
}

impl SurveyResult {
    /// Its CSV row.
    pub fn row(&self, scenario: &str) -> Row {
        let mut row = vec![
            ("scenario", scenario.to_string()),
            ("kind", "survey".to_string()),
            ("exit", self.exit.to_string()),
            ("wall_s", format!("{:.3}", self.wall_s)),
            ("containers", self.containers.to_string()),
            ("hosts", self.hosts.to_string()),
        ];
        for (v, n) in &self.verdicts {
            row.push((v, n.to_string()));
        }
        row.extend([
            ("broken_at_start", self.broken.to_string()),
            ("false_positives", self.false_positives.to_string()),
            ("missed", self.missed.to_string()),
            ("cpu_s", format!("{:.2}", self.cpu_s)),
            (
                "peak_rss_mb",
                opt(Some(format!("{:.1}", self.peak_rss_kb as f64 / 1024.0))),
            ),
            ("starts", self.starts.to_string()),
        ]);
        row
    }
}

/// Runs the survey (sampling /proc), then once more for its table (not
/// measured); prints the table's first 40 lines and the figures.
pub fn run(bin: &Path, dir: &Path, fleet: &FakeFleet) -> Result<(SurveyResult, Value, Value)> {
    say!("== rekindle survey (nothing restarted; /proc sampled)");
    let pb = dir.join("pb.toml");
    let t0 = Instant::now();
    let mut survey = Proc::spawn(
        "rekindle survey",
        Command::new(bin.join("rekindle"))
            .arg("survey")
            .arg(&pb)
            .args(["--output", "json"])
            .stdout(std::fs::File::create(dir.join("survey.json"))?)
            .stderr(std::fs::File::create(dir.join("survey.err"))?),
    )?;
    let proc = procs::sample(survey.pid());
    let exit = survey.wait()?;
    let wall = t0.elapsed().as_secs_f64();
    let st = fleet.stats()?;
    let cs = fleet.containers()?;
    let table = Command::new(bin.join("rekindle"))
        .arg("survey")
        .arg(&pb)
        .stderr(std::process::Stdio::null())
        .output()?;
    std::fs::write(dir.join("survey.txt"), &table.stdout)?;
    say!("== the survey's table (its first 40 lines)");
    let text = String::from_utf8_lossy(&table.stdout);
    say!("{}", text.lines().take(40).collect::<Vec<_>>().join("\n"));
    let sv: Value = std::fs::read_to_string(dir.join("survey.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| {
            let err = std::fs::read_to_string(dir.join("survey.err")).unwrap_or_default();
            format!(
                "no survey JSON:\n{}",
                &err[err.len().saturating_sub(2000)..]
            )
        })?;
    let found = not_ok(&sv);
    let broke = broken_at_start(&cs);
    let r = SurveyResult {
        exit,
        wall_s: wall,
        containers: u(&st, "containers"),
        hosts: u(&st, "hosts"),
        verdicts: verdicts(&sv),
        broken: broke.len(),
        false_positives: found.difference(&broke).count(),
        missed: broke.difference(&found).count(),
        cpu_s: proc.cpu_s,
        peak_rss_kb: proc.peak_rss_kb,
        starts: u(&st, "starts_total"),
    };
    print(&r, &st, &proc);
    Ok((r, st, cs))
}

fn print(r: &SurveyResult, st: &Value, p: &procs::ProcFigures) {
    let hs = &st["hosts_seen"];
    say!(
        "\nSurvey of {} containers on {} fake hosts: exit {}, {:.1}s wall",
        r.containers,
        r.hosts,
        r.exit,
        r.wall_s
    );
    let v: Vec<String> = r.verdicts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    say!("  verdicts                  {}", v.join(", "));
    say!(
        "  against the fleet's count {} broken at the start: {} false positives, {} missed",
        r.broken,
        r.false_positives,
        r.missed
    );
    say!(
        "  CPU                       {:.1}s user+sys over {:.1}s wall: {:.3} cores",
        p.cpu_s,
        r.wall_s,
        p.cpu_s / r.wall_s
    );
    say!(
        "  memory                    peak RSS {:.1} MB; at most {} sockets, {} threads",
        p.peak_rss_kb as f64 / 1024.0,
        p.peak_sockets,
        p.peak_threads
    );
    say!("  connections per host      at most {} open; idle: at most {} at one sample, at most {} throughout a second; {} setups in all",
        shown(&hs["max_open_per_host"]), shown(&hs["max_idle_per_host"]), shown(&hs["max_idle_second_per_host"]), shown(&hs["accepted_total"]));
    say!(
        "  restarted                 {} starts (a survey restarts nothing)",
        r.starts
    );
}
