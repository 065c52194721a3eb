//! One real-path run ([`run_once`]): a fresh unbound and fake fleet, the
//! playbook, the rehearsal of it on the same scenario, `rekindle run`
//! against the fake fleet (with `--crash` kills and `--resume`, `--chaos`
//! faults, `--measure` sampling), then the figures. Every process it
//! starts is stopped by PID before it returns, error or not.

use crate::figures::{self, RunInputs, RunResult, SurveyBefore};
use crate::playbook::{self, Pacing, Wiring};
use crate::procs::{self, Proc, ProcFigures};
use crate::services::{FakeFleet, Unbound};
use crate::{chaos, say, survey, witness, Settings};
use anyhow::{Context, Result};
use rekindle::scenario::Scenario;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What every run of one invocation shares.
pub struct Ctx {
    /// The settings (flags).
    pub s: Settings,
    /// rekindle's scenario, parsed by rekindle.
    pub sc: Scenario,
    /// The work directory (removed at the end unless `--keep`).
    pub work: PathBuf,
    /// The fleet's zone (`rekindle-fakefleet --zone-out`).
    pub zone: PathBuf,
    /// A name of that zone.
    pub probe_name: String,
}

/// What one run ended as.
pub enum Outcome {
    /// A run: its figures.
    Run(Box<RunResult>),
    /// `--survey-only`: the survey's figures.
    Survey(survey::SurveyResult),
}

/// One run, labelled `label`, with a static budget's headroom or the
/// playbook's own pacing.
pub fn run_once(ctx: &Ctx, label: &str, headroom: Option<&str>) -> Result<Outcome> {
    let s = &ctx.s;
    let dir = ctx.work.join(label);
    std::fs::create_dir_all(&dir)?;
    say!();
    let what = headroom.map_or("the playbook's pacing".to_string(), |h| {
        format!("static budget, headroom {h}")
    });
    say!("######## {label}: {what}");
    let capacity = ctx.sc.dns.capacity_qps as u64;
    say!("== unbound: the fleet's zone, ip-ratelimit {capacity} q/s");
    let mut unbound = Unbound::start(&dir, &ctx.zone, capacity)?;
    say!("== fake fleet");
    let fleet = FakeFleet::start(
        &s.bin,
        &s.scenario,
        unbound.port,
        &dir,
        s.faults.as_deref(),
        s.chaos,
    )?;
    say!("   {}", fleet.ready);
    say!("== playbook");
    let hosts_toml = std::fs::read_to_string(dir.join("hosts.toml"))?;
    write_playbook(ctx, &dir, &unbound, &fleet, headroom, &hosts_toml)?;
    say!("   {}", dir.join("pb.toml").display());
    if s.survey_only {
        let (r, _, _) = survey::run(&s.bin, &dir, &fleet)?;
        return Ok(Outcome::Survey(r));
    }
    say!("== rekindle rehearse (same playbook, same scenario)");
    let rehearse_exit = rekindle_to_files(
        s,
        &dir,
        "rehearse",
        &["--scenario".as_ref(), s.scenario.as_os_str()],
    )?;
    let _ = rehearse_exit; // a failed rehearsal shows as its error below
    let survey = match &s.only {
        Some(_) => Some(survey_before(s, &dir, &fleet)?),
        None => None,
    };
    say!("== rekindle run (against the fake fleet)");
    let started = Instant::now();
    let run = run_loop(ctx, &dir, &fleet, &mut unbound, &hosts_toml)?;
    let wall_s = started.elapsed().as_secs_f64();
    procs::sleep(Duration::from_secs(1))?; // the last health transitions and answers
    let stats = fleet.stats()?;
    let containers = fleet.containers()?;
    let ub = unbound.stats();
    drop(fleet);
    // What --keep keeps, as the script kept it.
    std::fs::write(dir.join("stats.json"), stats.to_string())?;
    std::fs::write(dir.join("containers.json"), containers.to_string())?;
    let ub_text: String = ub.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(dir.join("unbound.stats"), ub_text)?;
    drop(unbound);
    let inputs = RunInputs {
        label: label.into(),
        pacing: headroom.unwrap_or("default").into(),
        scenario: s.scenario.display().to_string(),
        run_exit: run.exit,
        wall_s,
        stats,
        containers,
        unbound: ub,
        rehearse: read_json(&dir.join("rehearse.json")).unwrap_or_else(|e| {
            let err = tail(&read(&dir.join("rehearse.err")), 500);
            serde_json::json!({ "error": if err.is_empty() { e.to_string() } else { err } })
        }),
        summary: last_json_line(&read(&dir.join("run.out"))),
        report: read_json(&dir.join("report/timeline.json")).unwrap_or(Value::Null),
        run_log: read(&dir.join("run.err")),
        survey,
        chaos: run.chaos,
        kills: run.kills,
        intents: witness::intents(&dir.join("state")),
        proc: run.proc,
        measure: s.measure,
    };
    let result = figures::report(&inputs);
    if let Some(before) = &inputs.survey {
        witness::only_broken(&inputs, before);
    }
    if !inputs.kills.is_empty() || inputs.chaos.is_some() {
        witness::faults(&inputs);
    }
    if inputs.measure {
        witness::scale(&inputs);
    }
    figures::print_failure(&inputs);
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    Ok(Outcome::Run(Box::new(result)))
}

fn write_playbook(
    ctx: &Ctx,
    dir: &Path,
    unbound: &Unbound,
    fleet: &FakeFleet,
    headroom: Option<&str>,
    hosts_toml: &str,
) -> Result<()> {
    let s = &ctx.s;
    let base = s
        .playbook
        .clone()
        .unwrap_or_else(|| PathBuf::from("config/mongo-sharded.toml"));
    let text =
        std::fs::read_to_string(&base).with_context(|| format!("read {}", base.display()))?;
    let mut pb: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", base.display()))?;
    if s.playbook.is_none() {
        playbook::derive(&mut pb, &ctx.sc, &ctx.probe_name)?;
    }
    let pacing = Pacing {
        static_headroom: headroom.map(|h| h.parse()).transpose()?,
        claim: s.claim,
        grant_at: s.grant_at.clone(),
    };
    let wiring = Wiring {
        probe_name: ctx.probe_name.clone(),
        nameserver: format!("127.0.0.1:{}", fleet.relay_port.unwrap_or(unbound.port)),
        unbound_conf: unbound.conf.display().to_string(),
        hosts_toml: hosts_toml.into(),
    };
    playbook::wire(&mut pb, &ctx.sc, &pacing, &wiring)
        .with_context(|| format!("{}", base.display()))?;
    say!("   {}", playbook::pacing_line(&pb));
    std::fs::write(dir.join("pb.toml"), toml::to_string(&pb)?)?;
    Ok(())
}

/// `rekindle CMD pb.toml EXTRA... [--only X] --output json`, its stdout to
/// `CMD.json` and stderr to `CMD.err`; its exit code.
fn rekindle_to_files(
    s: &Settings,
    dir: &Path,
    cmd: &str,
    extra: &[&std::ffi::OsStr],
) -> Result<i32> {
    let mut c = Command::new(s.bin.join("rekindle"));
    c.arg(cmd).arg(dir.join("pb.toml")).args(extra);
    if let (Some(only), "rehearse") = (&s.only, cmd) {
        c.args(["--only", only]);
    }
    c.args(["--output", "json"])
        .stdout(std::fs::File::create(dir.join(format!("{cmd}.json")))?)
        .stderr(std::fs::File::create(dir.join(format!("{cmd}.err")))?);
    Proc::spawn(&format!("rekindle {cmd}"), &mut c)?.wait()
}

fn survey_before(s: &Settings, dir: &Path, fleet: &FakeFleet) -> Result<SurveyBefore> {
    say!("== rekindle survey (before the run; the fake fleet's own count beside it)");
    let t0 = Instant::now();
    rekindle_to_files(s, dir, "survey", &[])?;
    let secs = t0.elapsed().as_secs_f64();
    let before = fleet.containers()?;
    std::fs::write(dir.join("containers-before.json"), before.to_string())?;
    Ok(SurveyBefore {
        survey: read_json(&dir.join("survey.json")).unwrap_or(Value::Null),
        before,
        secs,
    })
}

/// What the run loop leaves.
struct Run {
    exit: i32,
    kills: Vec<(f64, f64)>,
    chaos: Option<chaos::ChaosRecord>,
    proc: Option<ProcFigures>,
}

/// The `--crash` points: numbers of starts, uniform over the first 95% of
/// the fleet, in order.
pub fn crash_points(containers: u64, kills: u32, seed: u64) -> Vec<u64> {
    let mut rng = rekindle::rng::SplitMix64::new(seed);
    let mut p: Vec<u64> = (0..kills)
        .map(|_| (rng.uniform(0.0, 0.95) * containers as f64) as u64)
        .collect();
    p.sort_unstable();
    p
}

/// `rekindle run` until it ends by itself: killed with SIGKILL at each
/// crash point (once it has started a container itself), then started
/// again with `--resume` (a run anew if it died before its journal).
fn run_loop(
    ctx: &Ctx,
    dir: &Path,
    fleet: &FakeFleet,
    unbound: &mut Unbound,
    hosts_toml: &str,
) -> Result<Run> {
    let s = &ctx.s;
    let points = match s.crash {
        0 => vec![],
        k => {
            say!("   crash points from seed {}", s.seed);
            crash_points(fleet.stat("containers")? as u64, k, s.seed)
        }
    };
    let mut out = Run {
        exit: 0,
        kills: vec![],
        chaos: None,
        proc: None,
    };
    let err_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("run.err"))?;
    loop {
        let resume = !out.kills.is_empty() && has_journal(&dir.join("state"));
        let mut run = spawn_run(s, dir, resume, &err_log)?;
        let pid = run.pid();
        let sampler = s
            .measure
            .then(|| std::thread::spawn(move || procs::sample(pid)));
        if s.chaos && out.kills.is_empty() {
            out.chaos = Some(chaos::inject(
                fleet,
                unbound,
                &run,
                hosts_toml,
                s.chaos_host_s,
                s.dns_outage_s,
            )?);
        }
        if let Some(&target) = points.get(out.kills.len()) {
            let from = fleet.stat("starts_total")? as u64;
            fleet.wait_starts(target.max(from + 1) as f64, || run.running())?;
            if run.running() {
                run.kill9();
                let kill = (fleet.stat("now_s")?, fleet.stat("starts_total")?);
                out.kills.push(kill);
                say!(
                    "   kill -9 #{} (fleet clock {}s, {} starts so far)",
                    out.kills.len(),
                    kill.0 as u64,
                    kill.1 as u64
                );
                continue;
            }
        }
        out.proc = sampler.and_then(|t| t.join().ok());
        out.exit = run.wait()?;
        return Ok(out);
    }
}

fn spawn_run(s: &Settings, dir: &Path, resume: bool, err_log: &std::fs::File) -> Result<Proc> {
    let mut c = Command::new(s.bin.join("rekindle"));
    // --measure: the default filter of a real run (a log line per
    // container event costs CPU too).
    let filter = if s.measure {
        "warn,rekindle=info"
    } else {
        "warn,rekindle=info,rekindle::engine=trace"
    };
    if std::env::var_os("REKINDLE_LOG").is_none() {
        c.env("REKINDLE_LOG", filter);
    }
    c.args(["--log-format", "json", "run"])
        .arg(dir.join("pb.toml"))
        .args(["--yes", "--output", "json", "--state-dir"])
        .arg(dir.join("state"))
        .arg("--report")
        .arg(dir.join("report"));
    if let Some(only) = &s.only {
        c.args(["--only", only]);
    }
    if resume {
        c.arg("--resume");
    }
    c.stdout(std::fs::File::create(dir.join("run.out"))?)
        .stderr(err_log.try_clone()?);
    Proc::spawn("rekindle run", &mut c)
}

fn has_journal(state: &Path) -> bool {
    std::fs::read_dir(state).is_ok_and(|d| {
        d.filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "journal"))
    })
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn read_json(p: &Path) -> Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?)
}

/// The last line of `text` as JSON (`rekindle run --output json`'s
/// summary), or null.
pub fn last_json_line(text: &str) -> Value {
    text.trim()
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

fn tail(s: &str, n: usize) -> String {
    let start = s
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_are_sorted_within_95_percent_and_replayable() {
        let p = crash_points(4120, 20, 7);
        assert_eq!(p.len(), 20);
        assert!(p.windows(2).all(|w| w[0] <= w[1]));
        assert!(p.iter().all(|&x| x < 3914), "{p:?}");
        assert_eq!(p, crash_points(4120, 20, 7));
        assert_ne!(p, crash_points(4120, 20, 8));
    }

    #[test]
    fn the_summary_is_the_last_line() {
        assert_eq!(
            last_json_line("log\n{\"state\":\"succeeded\"}\n")["state"],
            "succeeded"
        );
        assert!(last_json_line("").is_null());
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
    }
}
