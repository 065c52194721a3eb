//! Progress for people: on a terminal, indicatif bars — overall, one per
//! running wave (a few at a time; a 20,000-container fleet gets no 20,000
//! bars) and the DNS budget — with log lines printed above them, never
//! through them ([`LogWriter`]). Off a terminal, plain lines per wave event.

use crate::engine::pacer::PaceStatus;
use crate::engine::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

/// Waves shown with a bar of their own at once.
const WAVE_BARS: usize = 6;

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// tracing's writer: one event per writer, written with the bars suspended
/// so a log line never tears a bar.
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        bars().suspend(|| {
            let _ = std::io::stderr().lock().write_all(&buf);
        });
    }
}

pub fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// Prints a line above the bars (or plainly without a terminal).
pub fn println(line: &str) {
    bars().suspend(|| eprintln!("{line}"));
}

pub struct Progress {
    overall: ProgressBar,
    dns: ProgressBar,
    waves: HashMap<usize, ProgressBar>,
    tty: bool,
    waves_total: usize,
    waves_passed: usize,
    waves_running: usize,
    failed: usize,
    /// Off a terminal: a line per wave event, or per tenth of the waves.
    every_wave: bool,
    next_line: usize,
}

impl Progress {
    /// `every_wave`: off a terminal, a line per wave (real runs) rather than
    /// per tenth of the waves (rehearsals of huge fleets).
    pub fn new(containers: u64, waves_total: usize, every_wave: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let overall = bars().add(ProgressBar::new(containers));
        overall.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} healthy  {msg}")
                .unwrap()
                .progress_chars("=> "),
        );
        let dns = bars().add(ProgressBar::new(1));
        dns.set_style(ProgressStyle::with_template("  {msg}").unwrap());
        Progress {
            overall,
            dns,
            waves: HashMap::new(),
            tty,
            waves_total,
            waves_passed: 0,
            waves_running: 0,
            failed: 0,
            every_wave,
            next_line: 0,
        }
    }

    fn line(&self, text: String) {
        if self.tty {
            self.overall.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    pub fn on_event(&mut self, e: &Event, at_s: f64) {
        match e {
            Event::Healthy { wave, .. } => {
                self.overall.inc(1);
                if let Some(b) = self.waves.get(wave) {
                    b.inc(1);
                }
            }
            Event::WaveStarted { wave, role, group, containers, .. } => {
                self.waves_running += 1;
                // A rehearsal plans inside; its wave count shows as it goes.
                self.waves_total = self.waves_total.max(*wave + 1);
                if self.tty && self.waves.len() < WAVE_BARS {
                    let b = bars().insert_before(&self.dns, ProgressBar::new(*containers as u64));
                    b.set_style(ProgressStyle::with_template("  wave {prefix:>4} [{bar:20}] {pos}/{len} {msg}").unwrap().progress_chars("=> "));
                    b.set_prefix(wave.to_string());
                    b.set_message(format!("{role} {group}"));
                    self.waves.insert(*wave, b);
                } else if !self.tty && self.every_wave {
                    eprintln!("t={at_s:>7.1}s  wave {wave} started: {containers} × {role} {group}");
                }
            }
            Event::WavePassed { wave, healthy, .. } => {
                self.waves_passed += 1;
                self.waves_running = self.waves_running.saturating_sub(1);
                if let Some(b) = self.waves.remove(wave) {
                    b.finish_and_clear();
                    bars().remove(&b);
                }
                if !self.tty && self.waves_passed >= self.next_line {
                    if self.every_wave {
                        eprintln!("t={at_s:>7.1}s  wave {wave} passed: {healthy} healthy ({}/{} waves)", self.waves_passed, self.waves_total);
                        self.next_line = self.waves_passed + 1;
                    } else {
                        eprintln!("t={at_s:>7.1}s  {} waves passed, {} containers healthy", self.waves_passed, self.overall.position());
                        self.next_line = self.waves_passed + (self.waves_total / 10).max(1);
                    }
                }
            }
            Event::WaveHalted { wave, failed, .. } => self.line(format!("t={at_s:>7.1}s  wave {wave} halted: {}", failed.join("; "))),
            Event::ContainerFailed { container, reason, .. } => {
                self.failed += 1;
                if self.every_wave {
                    self.line(format!("t={at_s:>7.1}s  {container} failed: {reason}"));
                }
            }
            Event::Paused => self.line(format!("t={at_s:>7.1}s  paused")),
            Event::Resumed => self.line(format!("t={at_s:>7.1}s  resumed")),
            Event::Retuned { dns_budget_qps, restart_rate } => self.line(format!("t={at_s:>7.1}s  retuned: DNS budget {dns_budget_qps:.0} q/s, restart rate {restart_rate:.1}/s")),
            _ => {}
        }
        self.overall.set_message(format!(
            "{}/{} waves passed, {} running, {} failed, t={at_s:.0}s",
            self.waves_passed, self.waves_total, self.waves_running, self.failed
        ));
    }

    /// Shows the DNS budget and what the pacer granted.
    pub fn on_pace(&self, p: &PaceStatus) {
        let rate = |x: f64| {
            if x > 0.0 {
                format!("{x:.0}/s")
            } else {
                "unlimited".into()
            }
        };
        self.dns.set_message(format!(
            "DNS budget {} · {} lookups granted · restart rate {} · {} waiting",
            rate(p.dns_budget_qps),
            p.dns_lookups_granted,
            rate(p.restart_rate),
            p.waiting
        ));
        self.overall.tick();
    }

    /// Starts from a resumed run's state (waves passed, containers healthy).
    pub fn resume_from(&mut self, waves_passed: usize, healthy: usize) {
        self.waves_passed = waves_passed;
        self.overall.set_position(healthy as u64);
    }

    pub fn finish(&self) {
        for b in self.waves.values() {
            b.finish_and_clear();
        }
        self.dns.finish_and_clear();
        self.overall.finish_and_clear();
    }
}
