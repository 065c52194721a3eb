//! The command line: parses arguments, calls the library, renders results.
//! Thin on purpose — no planning or restart logic lives here — and it owns
//! the one table of exit codes (see [`exit_code`]).

mod client;
mod daemon;
mod progress;
mod render;
pub mod run;

use crate::config::Playbook;
use crate::inventory::{InventoryError, InventorySource};
use crate::plan::PlanError;
use crate::recovery::prepare::PrepareError;
use crate::source::SourceError;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The command line as parsed.
#[derive(Debug, Parser)]
#[command(
    name = "rekindle",
    version,
    about = "Bring a fleet of database containers back after a network failure: planned, paced, health-gated restarts."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written on stderr.
// The variants carry `//` comments, not docs: clap would print variant docs
// in `--help` and the manual page.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    // Human-readable lines.
    Text,
    // One JSON object per line.
    Json,
}

/// How results are printed on stdout.
// The variants carry `//` comments, not docs: clap would print variant docs
// in `--help` and the manual page.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    // Tables for people.
    Table,
    // JSON for programs.
    Json,
}

/// rekindle's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a recovery would do: waves, order, DNS cost, estimated time. Changes nothing.
    Plan(PlanArgs),
    /// Restart the fleet for real, wave by wave, through the Docker hosts.
    Run(run::RunArgs),
    /// Run the real planner and engine against a simulated fleet on a virtual clock.
    Rehearse(RehearseArgs),
    /// Ask every container its health gate once, restarting nothing: how broken is the fleet?
    /// Exit code 5 when any container is not ok.
    Survey(SurveyArgs),
    /// Serve the HTTP API: start, watch, pause, resume and abort runs.
    Daemon(daemon::DaemonArgs),
    /// Talk to a daemon: start, status, watch, pause, resume, abort, tune.
    Runs(client::RunsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell, e.g. `rekindle completions bash > /etc/bash_completion.d/rekindle`.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `rekindle man | man -l -`.
    Man,
}

/// Arguments of `rekindle survey`.
#[derive(Debug, clap::Args)]
pub struct SurveyArgs {
    /// The playbook (TOML).
    pub playbook: PathBuf,
    /// Where the fleet comes from (a scenario is surveyed as simulated,
    /// before any restart: what its `[broken]` broke, else every container).
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Output format: a table per cluster and role, or every container's
    /// verdict as JSON.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Something surveyed is broken, down or did not answer (exit code 5).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Broken(pub String);

/// Arguments of `rekindle rehearse`.
#[derive(Debug, clap::Args)]
pub struct RehearseArgs {
    /// The playbook (TOML).
    pub playbook: PathBuf,
    /// The simulated fleet (a scenario file, see config/scenarios/README.md).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Also run the baselines (all-at-once, fixed batches) on the same world.
    #[arg(long)]
    pub compare: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Write the run's timeline (JSON and Markdown) into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Where the journal goes (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Pace at the playbook's static DNS budget: no adaptation to the
    /// resolver's strain (to see what adapting buys).
    #[arg(long)]
    pub static_budget: bool,
    /// Instead of one rehearsal, sweep static DNS budgets (10% to 100% of
    /// the capacity the playbook claims) and print the frontier: makespan,
    /// dropped, stuck; and the best budget under --drop-limit.
    #[arg(long, conflicts_with_all = ["compare", "static_budget", "report"])]
    pub sweep: bool,
    /// The share of queries a sweep's best budget may drop.
    #[arg(long, default_value_t = 0.005, value_name = "SHARE")]
    pub drop_limit: f64,
    /// `broken`: survey the world as it starts (the scenario's `[broken]`),
    /// restart only what the rules choose, close with a post-flight
    /// survey; with --compare, the full restart on the same world too.
    /// Default: the playbook's `[policy] only`, else `all`.
    #[arg(long, value_name = "all|broken", conflicts_with = "sweep")]
    pub only: Option<crate::config::Only>,
}

/// Where `rekindle plan` takes the fleet from.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Take the fleet from a reference scenario file (simulated fleet) instead of Docker.
    #[arg(long, value_name = "FILE", conflicts_with = "inventory")]
    pub scenario: Option<PathBuf>,
    /// Take the fleet from a static inventory file (JSON) instead of Docker.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

impl InventoryArgs {
    /// The source these arguments name: a scenario, a file, else Docker.
    pub fn source(&self) -> InventorySource {
        match (&self.scenario, &self.inventory) {
            (Some(s), _) => InventorySource::Scenario(s.clone()),
            (_, Some(i)) => InventorySource::File(i.clone()),
            _ => InventorySource::Docker,
        }
    }
}

/// Arguments of `rekindle plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The playbook (TOML).
    pub playbook: PathBuf,
    /// Where the fleet comes from.
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// List every wave in the table (default: the first 40).
    #[arg(long)]
    pub all: bool,
    /// `broken`: survey first (a scenario's world as it starts), then show
    /// the plan of only what is broken, what it leaves out and why.
    /// Default: the playbook's `[policy] only`, else `all`.
    #[arg(long, value_name = "all|broken")]
    pub only: Option<crate::config::Only>,
}

/// Exit codes: 0 success, 1 runtime failure, 2 usage or input error,
/// 3 halted by policy, 4 aborted, 5 a survey found something not ok.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Halted>() {
            return 3;
        }
        if cause.is::<Aborted>() {
            return 4;
        }
        if cause.is::<Broken>() {
            return 5;
        }
        if cause.is::<SourceError>() || cause.is::<PlanError>() || cause.is::<Usage>() {
            return 2;
        }
        if let Some(j) = cause.downcast_ref::<crate::journal::JournalError>() {
            if !matches!(j, crate::journal::JournalError::Io { .. }) {
                return 2;
            }
        }
        if let Some(InventoryError::Source(_)) = cause.downcast_ref::<InventoryError>() {
            return 2;
        }
        if let Some(PrepareError::Plan(_) | PrepareError::Inventory(InventoryError::Source(_))) =
            cause.downcast_ref::<PrepareError>()
        {
            return 2;
        }
        if let Some(crate::rehearse::RehearseError::Plan(_)) =
            cause.downcast_ref::<crate::rehearse::RehearseError>()
        {
            return 2;
        }
    }
    1
}

/// Sends logs to stderr in `format`, filtered by `REKINDLE_LOG` (default
/// `warn,rekindle=info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("REKINDLE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,rekindle=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plan(args) => plan(args).await,
        Command::Survey(args) => survey(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Daemon(args) => daemon::daemon(args).await,
        Command::Runs(args) => client::runs(args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "rekindle", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        // The simulation runs on runtimes of its own (paused clocks): off this one.
        Command::Rehearse(args) => std::thread::spawn(move || rehearse(args))
            .join()
            .expect("rehearsal thread"),
    }
}

fn rehearse(args: RehearseArgs) -> anyhow::Result<()> {
    let playbook = Playbook::load(&args.playbook)?;
    let scenario = crate::scenario::Scenario::load(&args.scenario)?;
    if args.sweep {
        if !(0.0..1.0).contains(&args.drop_limit) {
            return Err(Usage(format!(
                "--drop-limit: expected a share from 0 up to 1, found {}",
                args.drop_limit
            ))
            .into());
        }
        let sweep = crate::rehearse::sweep::sweep(
            &playbook,
            &scenario,
            &crate::rehearse::sweep::default_fractions(),
            args.drop_limit,
        )?;
        let mut out = std::io::stdout().lock();
        return match args.output {
            Output::Json => {
                serde_json::to_writer(&mut out, &sweep)?;
                use std::io::Write;
                Ok(writeln!(out)?)
            }
            Output::Table => Ok(render::sweep_table(&mut out, &sweep)?),
        };
    }
    let opts = crate::rehearse::Options {
        compare: args.compare,
        static_budget: args.static_budget,
        handle_tx: None,
        state_dir: args.state_dir.clone(),
        only: args.only.unwrap_or(playbook.policy.only),
    };
    let wall = std::time::Instant::now();
    let mut progress = progress::Progress::new(scenario.total_containers(), 0, false);
    let report = crate::rehearse::rehearse(&playbook, &scenario, &opts, |e, at| {
        progress.on_event(e, at)
    })?;
    progress.finish();
    let wall_s = wall.elapsed().as_secs_f64();
    if let Some(dir) = &args.report {
        let mut summary = Vec::new();
        render::rehearsal_table(&mut summary, &report, 0.0)?;
        crate::report::write(dir, &report, &String::from_utf8_lossy(&summary))?;
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["wall_s"] = serde_json::json!(wall_s);
            serde_json::to_writer(&mut out, &v)?;
            use std::io::Write;
            writeln!(out)?;
        }
        Output::Table => render::rehearsal_table(&mut out, &report, wall_s)?,
    }
    match report.state {
        crate::engine::RunState::Halted => {
            Err(anyhow::anyhow!(Halted(report.reason.unwrap_or_default())))
        }
        crate::engine::RunState::Aborted => Err(anyhow::anyhow!(Aborted)),
        _ => Ok(()),
    }
}

/// A run halted by policy (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("halted: {0}")]
pub struct Halted(pub String);

/// Wrong use: a missing flag, a refused unattended run (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A run aborted (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("aborted")]
pub struct Aborted;

async fn plan(args: PlanArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let playbook = Playbook::load(&args.playbook)?;
    if args.only.unwrap_or(playbook.policy.only) == crate::config::Only::Broken {
        return match &args.inventory.scenario {
            Some(path) => {
                let scenario = crate::scenario::Scenario::load(path)?;
                let world = crate::pipeline::Simulated {
                    sim: crate::sim::SimFleet::new(&scenario),
                    static_budget: true,
                };
                plan_only_broken(world, playbook, &args).await
            }
            None => {
                let fleet = crate::pipeline::DockerFleet::new(args.inventory.source());
                plan_only_broken(fleet, playbook, &args).await
            }
        };
    }
    // On Docker, the hosts discovery connected are the pre-flight's too.
    let fleet = crate::pipeline::DockerFleet::new(args.inventory.source());
    let prepared = crate::pipeline::prepare(fleet, playbook).await?;
    {
        let mut out = std::io::stdout().lock();
        let (pb, inv, plan) = (&prepared.playbook, &prepared.inventory, &prepared.plan);
        match args.output {
            Output::Json => render::plan_json(&mut out, pb, inv, plan)?,
            Output::Table => render::plan_table(&mut out, pb, inv, plan, args.all)?,
        }
    }
    // What `run` would check before its first restart (the JSON output
    // keeps stdout for the plan: the pre-flight goes to stderr). Pacing
    // off: the plan asks the resolver nothing.
    if crate::pipeline::Fleet::connected(&prepared.fleet) {
        let checked = prepared.check(true).await?;
        match args.output {
            Output::Table => {
                let mut out = std::io::stdout().lock();
                writeln!(out)?;
                checked.preflight.render(&mut out)?;
            }
            Output::Json => checked.preflight.render(&mut std::io::stderr().lock())?,
        }
    }
    Ok(())
}

/// `plan --only broken`: the pre-flight, the survey, then what the rules
/// restart and leave alone, and the plan of what they restart.
async fn plan_only_broken<F: crate::pipeline::Fleet>(
    fleet: F,
    playbook: Playbook,
    args: &PlanArgs,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut checked = crate::pipeline::prepare(fleet, playbook)
        .await?
        .check(true)
        .await?;
    checked.preflight.render(&mut std::io::stderr().lock())?;
    if let Some(failed) = checked.refusal() {
        return Err(Usage(failed).into());
    }
    let (survey, selection) = checked.only_broken().await?;
    let (pb, inv, plan) = (&checked.playbook, &checked.inventory, &checked.plan);
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            let mut doc = Vec::new();
            render::plan_json(&mut doc, pb, inv, plan)?;
            let mut v: serde_json::Value = serde_json::from_slice(&doc)?;
            v["selection"] = render::selection_json(inv, &selection);
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        }
        Output::Table => {
            render::selection_table(&mut out, &survey, &selection)?;
            render::plan_table(&mut out, pb, inv, plan, args.all)?;
        }
    }
    Ok(())
}

async fn survey(args: SurveyArgs) -> anyhow::Result<()> {
    use crate::pipeline::{prepare, DockerFleet, Simulated};
    let playbook = Playbook::load(&args.playbook)?;
    let surveyed = match &args.inventory.scenario {
        Some(path) => {
            let scenario = crate::scenario::Scenario::load(path)?;
            let world = Simulated {
                sim: crate::sim::SimFleet::new(&scenario),
                static_budget: true,
            };
            let checked = prepare(world, playbook).await?.check(true).await?;
            checked.preflight.render(&mut std::io::stderr().lock())?;
            if let Some(failed) = checked.refusal() {
                return Err(Usage(failed).into());
            }
            checked.survey().await
        }
        None => {
            let fleet = DockerFleet::new(args.inventory.source());
            let checked = prepare(fleet, playbook).await?.check(true).await?;
            checked.preflight.render(&mut std::io::stderr().lock())?;
            // Wrong credentials, a refused handshake: said once, here, not
            // as every container's finding.
            if let Some(failed) = checked.refusal() {
                return Err(Usage(failed).into());
            }
            checked.survey().await
        }
    };
    {
        let mut out = std::io::stdout().lock();
        match args.output {
            Output::Json => {
                serde_json::to_writer(&mut out, &surveyed)?;
                use std::io::Write;
                writeln!(out)?;
            }
            Output::Table => render::survey_table(&mut out, &surveyed)?,
        }
    }
    if surveyed.anything_wrong() {
        let n = surveyed.findings.len() - surveyed.count(&crate::survey::Verdict::Ok);
        return Err(Broken(format!(
            "{n} of {} containers are not ok",
            surveyed.findings.len()
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_that_cannot_be_planned_or_read_is_an_input_error() {
        let plan = PrepareError::Plan(PlanError::NothingMatched {
            playbook: "p".into(),
            inventory: 1,
        });
        assert_eq!(exit_code(&anyhow::Error::from(plan)), 2);
        let source = PrepareError::Inventory(InventoryError::Source(SourceError {
            file: "inv.json".into(),
            line: 2,
            column: 1,
            field: String::new(),
            message: "invalid".into(),
        }));
        assert_eq!(exit_code(&anyhow::Error::from(source)), 2);
    }
}
