//! `rekindle run`: the real thing. Discovers, plans, shows the plan, asks
//! (or takes `--yes`), then drives the engine over the Docker runtime with a
//! durable journal, progress, and Ctrl-C as "pause and ask". It holds no
//! restart logic of its own: that is the engine's.

use super::{progress, render, Aborted, Halted, Output, Usage};
use crate::config::{Only, Playbook};
use crate::engine::{Event, Handle, Outcome, RunState};
use crate::inventory::InventorySource;
use crate::model::Inventory;
use crate::pipeline::{self, DockerFleet};
use crate::plan::Plan;
use crate::recovery::{default_state_dir, journal_path};
use crate::session::{JournalMode, JournalSpec, Observer};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Arguments of `rekindle run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The playbook (TOML).
    pub playbook: PathBuf,
    /// Take the fleet from a static inventory file (JSON) instead of discovering it.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
    /// Show the plan and stop: nothing is restarted.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the run recorded in the journal (after a crash, halt or abort):
    /// nothing already restarted is restarted again.
    #[arg(long)]
    pub resume: bool,
    /// Where the journal lives (default: $XDG_STATE_HOME/rekindle or ~/.local/state/rekindle).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Restart as fast as the hosts allow: no restart rate, no DNS budget
    /// (health gates, host and replica-set limits still hold). For benchmarks
    /// and fleets whose resolvers are not at risk.
    #[arg(long)]
    pub no_pacing: bool,
    /// Output format of the plan and the final summary.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// When the run ends (any outcome), write its timeline into DIR:
    /// timeline.json, timeline.md and timeline.html (DNS queries the
    /// restarts were budgeted for, per second, against capacity and budget;
    /// containers healthy over time; every wave's span).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// What to restart: `all` (every container the roles select) or
    /// `broken` (survey first, then restart only what is broken, down or
    /// silent, plus what the rules require; a post-flight survey closes
    /// the run). Default: the playbook's `[policy] only`, else `all`. A
    /// resumed run restarts what its journal chose.
    #[arg(long, value_name = "all|broken")]
    pub only: Option<Only>,
}

/// Runs `rekindle run`: the pipeline on the Docker hosts (discovery, plan,
/// pre-flight, session, archive), with the plan shown, a confirmation,
/// progress and Ctrl-C around it.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let playbook = Playbook::load(&args.playbook)?;
    // One connection setup per Docker host for the whole run: discovery
    // and the runtime share it (a file inventory connects after the plan).
    let source = match &args.inventory {
        Some(f) => InventorySource::File(f.clone()),
        None => InventorySource::Docker,
    };
    let prepared = pipeline::prepare(DockerFleet::new(source), playbook).await?;
    if let Some(n) = prepared.primaries {
        eprintln!("rolling order: {n} primaries found; each goes last in its replica set, after a step-down");
    }
    let only = args.only.unwrap_or(prepared.playbook.policy.only);
    // Only what is broken: the survey needs the probes, so the plan shows
    // after the pre-flight (a resume restarts what its journal chose).
    let selective = only == Only::Broken && !args.resume;
    if !selective {
        render::plan_table(
            &mut plan_out(args.output),
            &prepared.playbook,
            &prepared.inventory,
            &prepared.plan,
            false,
        )?;
    }
    if args.dry_run && !selective {
        if args.output == Output::Json {
            let out = &mut std::io::stdout().lock();
            render::plan_json(out, &prepared.playbook, &prepared.inventory, &prepared.plan)?;
        }
        return Ok(());
    }

    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let path = journal_path(&state_dir, &prepared.playbook.name);
    if !args.resume && !args.dry_run {
        // Refuse before asking anything (opening the journal says the same).
        pipeline::check_new(&path, &prepared.playbook.name)?;
    }
    // Checked before anything is asked or restarted.
    let mut checked = prepared
        .check(args.no_pacing)
        .await
        .map_err(|e| Usage(e.to_string()))?;
    checked.preflight.render(&mut std::io::stderr().lock())?;
    if let Some(failed) = checked.refusal() {
        return Err(Usage(failed).into());
    }
    if selective && !select_broken(&args, &mut checked).await? {
        return Ok(());
    }
    if !args.yes {
        confirm(
            &checked.playbook,
            &checked.inventory,
            &checked.plan,
            args.resume,
        )
        .await?;
    }
    let mode = if args.resume {
        JournalMode::Resume
    } else {
        JournalMode::New
    };
    let journal = JournalSpec {
        path: path.clone(),
        mode,
        durable: true,
    };
    let selective_run = !checked.plan.left_out.is_empty() || selective;
    let finished = execute(checked, journal).await?;
    conclude(&args, &finished, &path, selective_run).await
}

/// Where the plan goes: where the summary goes; with `--output json`,
/// stdout carries the JSON summary only and the plan table goes to stderr.
fn plan_out(output: Output) -> Box<dyn Write> {
    match output {
        Output::Table => Box::new(std::io::stdout().lock()),
        Output::Json => Box::new(std::io::stderr().lock()),
    }
}

/// A run of only what is broken, once the pre-flight passed: the survey,
/// what it chose and the plan cut to it are shown (with `--dry-run
/// --output json`, the plan's JSON with the selection). `Ok(false)`: the
/// command ends here, a dry run or nothing broken; `Ok(true)`: go on.
async fn select_broken(
    args: &RunArgs,
    checked: &mut pipeline::Checked<DockerFleet>,
) -> anyhow::Result<bool> {
    let (survey, selection) = checked.only_broken().await?;
    let mut out = plan_out(args.output);
    render::selection_table(&mut out, &survey, &selection)?;
    render::plan_table(
        &mut out,
        &checked.playbook,
        &checked.inventory,
        &checked.plan,
        false,
    )?;
    drop(out);
    if args.dry_run {
        if args.output == Output::Json {
            let out = &mut std::io::stdout().lock();
            let mut doc = Vec::new();
            render::plan_json(
                &mut doc,
                &checked.playbook,
                &checked.inventory,
                &checked.plan,
            )?;
            let mut v: serde_json::Value = serde_json::from_slice(&doc)?;
            v["selection"] = render::selection_json(&checked.inventory, &selection);
            serde_json::to_writer(&mut *out, &v)?;
            writeln!(out)?;
        }
        return Ok(false);
    }
    if selection.restarts() == 0 {
        println!("nothing is broken: nothing to restart");
        return Ok(false);
    }
    Ok(true)
}

/// After the session: a post-flight survey when only part of the fleet
/// was restarted, the journal archived (a succeeded run) or kept at
/// `path`, the summary printed (and with `--report`, the report written),
/// and the run's end as the command's result (halted and aborted are
/// errors, for the exit code).
async fn conclude(
    args: &RunArgs,
    finished: &pipeline::Finished<DockerFleet>,
    path: &std::path::Path,
    selective_run: bool,
) -> anyhow::Result<()> {
    // A run of only what was broken closes with a survey of everything:
    // what is still broken.
    let post = match selective_run || finished.left_out > 0 {
        true => Some(finished.survey().await),
        false => None,
    };
    let (playbook, inventory, outcome) =
        (&finished.playbook, &finished.inventory, &finished.outcome);
    let kept = match finished.archive_name() {
        Some(done) => {
            finished.archive(&done)?;
            format!("journal archived as {}", done.display())
        }
        None => format!("journal kept at {}: fix the cause, then `rekindle run --resume` continues without restarting anything twice", path.display()),
    };
    summary(
        &mut std::io::stdout().lock(),
        args.output,
        playbook,
        inventory,
        outcome,
        &kept,
        post.as_ref(),
    )?;
    if let Some(dir) = &args.report {
        let mut text = Vec::new();
        summary(
            &mut text,
            Output::Table,
            playbook,
            inventory,
            outcome,
            &kept,
            post.as_ref(),
        )?;
        finished
            .report()
            .write(dir, &String::from_utf8_lossy(&text))
            .map_err(|e| anyhow::anyhow!("writing the report into {}: {e}", dir.display()))?;
        eprintln!("report written to {}", dir.join("timeline.html").display());
    }
    match outcome.state {
        RunState::Halted => Err(anyhow::anyhow!(Halted(
            outcome.reason.clone().unwrap_or_default()
        ))),
        RunState::Aborted => Err(anyhow::anyhow!(Aborted)),
        _ => Ok(()),
    }
}

/// Asks on the terminal; refuses to go on unattended.
async fn confirm(pb: &Playbook, inv: &Inventory, plan: &Plan, resume: bool) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Usage(format!("refusing to restart {} containers without confirmation: stdin is not a terminal; pass --yes to run unattended", plan.containers)).into());
    }
    let hosts = inv.hosts.iter().filter(|h| h.reachable).count();
    let verb = if resume {
        "Resume the run of"
    } else {
        "Restart"
    };
    eprint!(
        "{verb} {} containers on {hosts} hosts in {} waves (playbook {:?})? Type yes to go on: ",
        plan.containers,
        plan.waves.len(),
        pb.name
    );
    let _ = std::io::stderr().flush();
    let line = read_line().await.unwrap_or_default();
    if matches!(line.trim().to_ascii_lowercase().as_str(), "yes" | "y") {
        Ok(())
    } else {
        Err(Aborted.into())
    }
}

/// The terminal's view of a session: progress bars, and Ctrl-C / SIGTERM
/// steering the run.
struct Terminal {
    progress: progress::Progress,
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    steer: Option<tokio::task::JoinHandle<()>>,
}

impl Observer for Terminal {
    fn started(&mut self, handle: &Handle) {
        let st = handle.status();
        self.progress.resume_from(st.waves_passed, st.healthy);
        if let Some((interrupt, terminate)) = self.signals.take() {
            self.steer = Some(tokio::spawn(steer(handle.clone(), interrupt, terminate)));
        }
    }
    fn event(&mut self, e: &Event, at_s: f64) {
        self.progress.on_event(e, at_s);
    }
    fn tick(&mut self, handle: &Handle) {
        if let Some(p) = handle.status().pace {
            self.progress.on_pace(&p);
        }
    }
}

/// Runs the checked pipeline with progress and Ctrl-C handling to its end.
async fn execute(
    checked: pipeline::Checked<DockerFleet>,
    journal: JournalSpec,
) -> anyhow::Result<pipeline::Finished<DockerFleet>> {
    // The handlers go in before any progress shows or the engine starts: a
    // Ctrl-C at the first bar must pause the run, not kill the process.
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt())
        .map_err(|e| anyhow::anyhow!("installing the SIGINT handler: {e}"))?;
    let terminate = signal(SignalKind::terminate())
        .map_err(|e| anyhow::anyhow!("installing the SIGTERM handler: {e}"))?;
    let progress = progress::Progress::new(
        checked.plan.containers as u64,
        checked.plan.waves.len(),
        true,
    );
    let mut term = Terminal {
        progress,
        signals: Some((interrupt, terminate)),
        steer: None,
    };
    let finished = checked.run(journal, None, &mut term).await;
    term.progress.finish();
    if let Some(t) = term.steer {
        t.abort();
    }
    Ok(finished?)
}

/// Ctrl-C pauses and asks (on a terminal); a second Ctrl-C, or Ctrl-C
/// without a terminal, or SIGTERM, aborts: restarts in flight finish and
/// are watched, nothing new starts.
async fn steer(
    handle: crate::engine::Handle,
    mut interrupt: tokio::signal::unix::Signal,
    mut term: tokio::signal::unix::Signal,
) {
    let interactive = std::io::stdin().is_terminal();
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {
                progress::println("SIGTERM: aborting (restarts in flight finish and are watched)");
                handle.abort();
                return;
            }
        }
        if !interactive {
            progress::println("interrupted: aborting (restarts in flight finish and are watched)");
            handle.abort();
            return;
        }
        if handle.pause().is_err() {
            // Halted (or aborted): final. What is in flight is watched to
            // its end; a second Ctrl-C changes nothing.
            progress::println("the run has halted: it is final; restarts in flight finish and are watched (resume later with `rekindle run --resume`)");
            continue;
        }
        progress::println("paused: restarts in flight finish and are watched, nothing new starts. Type r + Enter to resume, a + Enter to abort (Ctrl-C again aborts).");
        tokio::select! {
            line = read_line() => {
                if line.unwrap_or_default().trim().starts_with('r') {
                    if handle.resume().is_err() {
                        progress::println("the run halted meanwhile: it is final; restarts in flight finish and are watched");
                    }
                    continue;
                }
            }
            _ = interrupt.recv() => {}
        }
        progress::println("aborting (restarts in flight finish and are watched)");
        handle.abort();
        return;
    }
}

fn summary(
    out: &mut impl Write,
    output: Output,
    pb: &Playbook,
    inv: &Inventory,
    o: &Outcome,
    journal: &str,
    post: Option<&crate::survey::Survey>,
) -> anyhow::Result<()> {
    let unreachable: Vec<_> = inv
        .unreachable_hosts()
        .map(|h| json!({"host": h.name, "error": h.error}))
        .collect();
    match output {
        Output::Json => {
            let doc = json!({
                "playbook": pb.name,
                "state": o.state,
                "reason": o.reason,
                "healthy": o.healthy,
                "failed": o.failed,
                "restarts": o.restarts,
                "elapsed_s": (o.elapsed_s * 1000.0).round() / 1000.0,
                "unreachable_hosts": unreachable,
                "journal": journal,
                "post_flight": post.map(|s| json!({
                    "ok": s.count(&crate::survey::Verdict::Ok),
                    "containers": s.findings.len(),
                    "not_ok": s.findings.iter().filter(|f| f.verdict != crate::survey::Verdict::Ok).collect::<Vec<_>>(),
                })),
            });
            serde_json::to_writer(&mut *out, &doc)?;
            writeln!(out)?;
        }
        Output::Table => {
            writeln!(out, "Run of playbook {:?}: {:?}", pb.name, o.state)?;
            if let Some(r) = &o.reason {
                writeln!(out, "  {r}")?;
            }
            writeln!(out, "  healthy     {}", o.healthy)?;
            writeln!(out, "  failed      {}", o.failed.len())?;
            writeln!(out, "  restarts    {}", o.restarts)?;
            writeln!(out, "  elapsed     {:.1}s", o.elapsed_s)?;
            for h in inv.unreachable_hosts() {
                writeln!(
                    out,
                    "  NOT RESTARTED: host {} unreachable ({})",
                    h.name,
                    h.error.as_deref().unwrap_or("no answer")
                )?;
            }
            writeln!(out, "  {journal}")?;
            if let Some(s) = post {
                render::post_flight(out, s)?;
            }
        }
    }
    Ok(())
}

/// A line from stdin, read on a thread of its own: an unanswered question
/// must not keep the process alive once the run has ended (the runtime
/// waits for its blocking tasks on the way out, not for this thread).
async fn read_line() -> Option<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = tx.send(std::io::stdin().read_line(&mut s).map(|_| s));
    });
    rx.await.ok().and_then(Result::ok)
}
