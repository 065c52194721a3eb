//! `rekindle-bench`: rekindle's benchmark driver (docs/real-path.md).
//!
//! `rekindle-bench real-path SCENARIO [PLAYBOOK]` runs `rekindle run`
//! against a fake fleet of Docker hosts (`rekindle-fakefleet`) whose
//! containers send real DNS queries to a real unbound limited to the
//! scenario's capacity, and prints, beside the rehearsal of the same
//! playbook on the same scenario: first start → all healthy, the lower
//! bound and the ratio, unbound's own query and rate-limit counters, stuck
//! containers and containers started more than once. Not a test: nothing
//! here asserts a figure. Needs unbound and unbound-control.
//!
//! Layout: [`realpath`] (one run), [`playbook`] (the playbook, by key),
//! [`services`] (unbound, the fake fleet), [`procs`] (processes stopped by
//! PID, signals, /proc), [`figures`] and [`witness`] (what is printed),
//! [`sweep`], [`survey`], [`chaos`], [`out`] (transcript, CSV), [`record`].

mod chaos;
// The fake fleet's clock: Docker's timestamps, whose date part names a
// recorded run's folder.
#[path = "../fakefleet/clock.rs"]
mod clock;
mod figures;
mod out;
mod playbook;
mod procs;
mod realpath;
mod record;
mod services;
mod survey;
mod sweep;
mod witness;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use realpath::{Ctx, Outcome};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Debug, Parser)]
#[command(
    name = "rekindle-bench",
    about = "rekindle's benchmarks against a fake fleet and a real unbound."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// `rekindle run` against the fake fleet and a real unbound, beside the
    /// rehearsal of the same playbook (docs/real-path.md).
    RealPath(Settings),
}

/// The settings of `real-path` (scripts/bench-real-path.sh maps its
/// environment variables onto these).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The scenario (e.g. benches/scenarios/realpath-4k.toml).
    pub scenario: PathBuf,
    /// The playbook; without it, one derived from config/mongo-sharded.toml
    /// (Docker health, the scenario's labels, startup lookups, capacity).
    pub playbook: Option<PathBuf>,
    /// One run with a static budget: `[dns] adaptive = false, headroom = F`.
    #[arg(long = "static", value_name = "F", value_parser = fraction, conflicts_with = "sweep")]
    pub static_: Option<String>,
    /// One static run per fraction, then the adaptive run: the frontier, the
    /// best static budget under --drop-limit, adaptive / best static.
    #[arg(long, value_name = "F,...", value_delimiter = ',', value_parser = fraction)]
    pub sweep: Vec<String>,
    /// The share of queries the best static budget may have rate-limited.
    #[arg(long, value_name = "SHARE", default_value_t = 0.005)]
    pub drop_limit: f64,
    /// The playbook claims F × the scenario's capacity (unbound keeps the
    /// scenario's limit).
    #[arg(long, value_name = "F")]
    pub claim: Option<f64>,
    /// `[dns] grant_at` (`restart`: each restart's DNS cost before its stop).
    #[arg(long, value_name = "WHEN")]
    pub grant_at: Option<String>,
    /// Rehearse and run with `--only` (e.g. `broken`), after a survey.
    #[arg(long, value_name = "WHICH")]
    pub only: Option<String>,
    /// `rekindle survey` alone: its wall time, CPU, RSS, verdicts.
    #[arg(long, conflicts_with_all = ["sweep", "crash", "chaos", "only"])]
    pub survey_only: bool,
    /// Faults the fake fleet injects from the start (its --faults JSON).
    #[arg(long, value_name = "JSON")]
    pub faults: Option<String>,
    /// kill -9 `rekindle run` at N random points of its progress, --resume
    /// after each; prints whether every container started once per intent.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub crash: u32,
    /// The seed of the crash points (default: from the clock; printed).
    #[arg(long = "seed", value_name = "N")]
    seed_arg: Option<u64>,
    #[arg(skip)]
    pub seed: u64,
    /// The scale figures: rekindle's CPU, RSS, sockets (from /proc), the
    /// connections each fake host saw.
    #[arg(long, conflicts_with_all = ["sweep", "crash"])]
    pub measure: bool,
    /// Mid-run faults: a refusing and a hung host, then unbound stopped.
    #[arg(long)]
    pub chaos: bool,
    /// How long chaos's hosts refuse or hang, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub chaos_host_s: u64,
    /// How long chaos stops unbound, in seconds.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub dns_outage_s: u64,
    /// Keep the work directory (playbooks, logs, reports, result.json).
    #[arg(long)]
    pub keep: bool,
    /// Where rekindle and rekindle-fakefleet are (default: beside this
    /// program, i.e. the same cargo profile).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    #[arg(skip)]
    pub bin: PathBuf,
    /// Record this invocation's runs as NAME.csv and NAME.txt in
    /// docs/bench/runs/<date>-<machine>/ (or --out).
    #[arg(long, value_name = "NAME")]
    pub record: Option<String>,
    /// The directory --record writes to.
    #[arg(long, value_name = "DIR", requires = "record")]
    pub out: Option<PathBuf>,
    /// The machine's name in the record's directory (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
}

fn fraction(s: &str) -> Result<String, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(s.to_string()),
        _ => Err(format!("{s} is not a fraction in (0, 1]")),
    }
}

fn main() -> ExitCode {
    procs::handle_signals();
    let Cmd::RealPath(mut s) = Cli::parse().cmd;
    match real_path(&mut s) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rekindle-bench: {e:#}");
            ExitCode::from(if procs::interrupted() { 130 } else { 1 })
        }
    }
}

fn real_path(s: &mut Settings) -> Result<()> {
    for tool in ["unbound", "unbound-control"] {
        if !procs::on_path(tool) {
            bail!("{tool} is not installed (apt-get install unbound)");
        }
    }
    s.bin = match &s.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program's directory")?
            .to_path_buf(),
    };
    for b in ["rekindle", "rekindle-fakefleet"] {
        if !procs::is_executable(&s.bin.join(b)) {
            bail!("no {}", s.bin.join(b).display());
        }
    }
    say!("== binaries from {}", s.bin.display());
    s.seed = s.seed_arg.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let sc = rekindle::scenario::Scenario::load(&s.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let work = Work::new(s.keep)?;
    let zone = work.0.join("zone.conf");
    let st = Command::new(s.bin.join("rekindle-fakefleet"))
        .arg("--scenario")
        .arg(&s.scenario)
        .arg("--zone-out")
        .arg(&zone)
        .status()?;
    anyhow::ensure!(st.success(), "rekindle-fakefleet --zone-out: {st}");
    let probe_name = services::probe_name(&std::fs::read_to_string(&zone)?)
        .context("no name in the fleet's zone")?;
    let ctx = Ctx {
        s: s.clone(),
        sc,
        work: work.0.clone(),
        zone,
        probe_name,
    };
    let rows = modes(&ctx)?;
    if let Some(name) = &s.record {
        let dir = record::write(s, name, &rows, &out::transcript())?;
        eprintln!("== recorded in {}", dir.display());
    }
    Ok(())
}

/// The runs of this invocation (sweep, static or default); their CSV rows.
fn modes(ctx: &Ctx) -> Result<Vec<out::Row>> {
    let s = &ctx.s;
    let scenario = s.scenario.display().to_string();
    let row = |o: &Outcome| match o {
        Outcome::Run(r) => r.row(&scenario),
        Outcome::Survey(r) => r.row(&scenario),
    };
    if s.sweep.is_empty() {
        let o = match &s.static_ {
            Some(h) => realpath::run_once(ctx, &format!("static-{h}"), Some(h))?,
            None => realpath::run_once(ctx, "default", None)?,
        };
        return Ok(vec![row(&o)]);
    }
    let mut runs = Vec::new();
    for h in &s.sweep {
        if let Outcome::Run(r) = realpath::run_once(ctx, &format!("static-{h}"), Some(h))? {
            runs.push(*r);
        }
    }
    let Outcome::Run(ad) = realpath::run_once(ctx, "adaptive", None)? else {
        bail!("a sweep runs");
    };
    say!();
    say!("== rekindle rehearse --sweep (the simulator's frontier, 0.10..1.00)");
    let sw = rehearse_sweep(ctx);
    sweep::print(&scenario, &s.sweep, &runs, &ad, s.drop_limit, sw);
    let mut rows: Vec<out::Row> = runs.iter().map(|r| r.row(&scenario)).collect();
    rows.push(ad.row(&scenario));
    Ok(rows)
}

fn rehearse_sweep(ctx: &Ctx) -> Result<serde_json::Value, String> {
    let s = &ctx.s;
    let out = Command::new(s.bin.join("rekindle"))
        .arg("rehearse")
        .arg(ctx.work.join("adaptive/pb.toml"))
        .arg("--scenario")
        .arg(&s.scenario)
        .args([
            "--sweep",
            "--drop-limit",
            &s.drop_limit.to_string(),
            "--output",
            "json",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::write(ctx.work.join("rehearse-sweep.json"), &out.stdout);
    serde_json::from_slice(&out.stdout).map_err(|e| {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if tail.is_empty() {
            e.to_string()
        } else {
            tail
        }
    })
}

/// The work directory: removed when dropped, unless kept.
struct Work(PathBuf, bool);

impl Work {
    fn new(keep: bool) -> Result<Work> {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let dir = base.join(format!("rekindle-bench.{}.{i}", std::process::id()));
            if std::fs::create_dir(&dir).is_ok() {
                return Ok(Work(dir, keep));
            }
        }
        bail!("no work directory under {}", base.display())
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.1 {
            eprintln!("== kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
