//! Timelines on disk, for a rehearsal or a real run: `timeline.json` (the
//! whole report), `timeline.md` (summary and DNS per second) and
//! `timeline.html`, one self-contained page (inline SVG, no script, no
//! external file) with the DNS load against capacity and budget,
//! containers healthy over time and every wave's span. It collects the
//! timeline from engine events and renders it; the figures come from the
//! rehearsal or the run.

mod run;
mod text;
pub use run::RunReport;
pub mod rehearsal;
pub use text::rehearsal_table;

use crate::engine::Event;
use rehearsal::Report;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// When a wave ran: from its start to its gate passing (or halting).
#[derive(Debug, Clone, Serialize)]
pub struct WaveSpan {
    /// The wave's index in the plan.
    pub wave: usize,
    /// Its role's name.
    pub role: String,
    /// Its group (cluster label value).
    pub group: String,
    /// When it started (seconds since the run started).
    pub start_s: f64,
    /// When it passed or halted (seconds); `None` while it runs.
    pub end_s: Option<f64>,
    /// Whether it halted the run.
    pub halted: bool,
}

/// Collects a timeline from the engine's events (seconds since the start).
#[derive(Default)]
pub struct Collector {
    healthy_at: Vec<f64>,
    /// Every wave's span, in the order the waves started.
    pub spans: Vec<WaveSpan>,
    index: std::collections::HashMap<usize, usize>,
}

impl Collector {
    /// Takes one event, `at` seconds since the start.
    pub fn on(&mut self, e: &Event, at: f64) {
        match e {
            Event::Healthy { .. } => self.healthy_at.push(at),
            Event::WaveStarted {
                wave, role, group, ..
            } => {
                self.index.insert(*wave, self.spans.len());
                self.spans.push(WaveSpan {
                    wave: *wave,
                    role: role.clone(),
                    group: group.clone(),
                    start_s: at,
                    end_s: None,
                    halted: false,
                });
            }
            Event::WavePassed { wave, .. } | Event::WaveHalted { wave, .. } => {
                if let Some(&i) = self.index.get(wave) {
                    self.spans[i].end_s = Some(at);
                    self.spans[i].halted = matches!(e, Event::WaveHalted { .. });
                }
            }
            _ => {}
        }
    }

    /// Healthy containers by the end of each of `seconds` seconds.
    pub fn healthy_per_second(&self, seconds: usize) -> Vec<u64> {
        let mut per = vec![0u64; seconds];
        for &t in &self.healthy_at {
            let s = (t.floor() as usize).min(seconds.saturating_sub(1));
            if let Some(x) = per.get_mut(s) {
                *x += 1;
            }
        }
        let mut total = 0;
        per.iter_mut().for_each(|x| {
            total += *x;
            *x = total;
        });
        per
    }
}

/// What the page and the Markdown draw, from a rehearsal or a run.
pub struct Chart<'a> {
    /// "Rehearsal: PLAYBOOK on SCENARIO", "Run: PLAYBOOK".
    pub title: String,
    /// Containers in the run.
    pub total: usize,
    /// DNS queries in each second (what `dns_series` says).
    pub dns_per_second: &'a [u64],
    /// What `dns_per_second` counts (the legend and the table say it).
    pub dns_series: &'a str,
    /// What the resolver's own counters showed, when read (a real run).
    pub resolver: &'a [crate::engine::ResolverLoad],
    /// The resolver's capacity, in q/s.
    pub dns_capacity_qps: f64,
    /// The static DNS budget, in q/s (0: none drawn).
    pub dns_budget_qps: f64,
    /// The adaptive budget over time: (seconds, q/s).
    pub dns_budget: &'a [(f64, f64)],
    /// DNS totals for the legend.
    pub dns_totals: String,
    /// Containers healthy by the end of each second.
    pub healthy_per_second: &'a [u64],
    /// Each wave's span.
    pub wave_spans: &'a [WaveSpan],
}

impl<'a> From<&'a Report> for Chart<'a> {
    fn from(r: &'a Report) -> Chart<'a> {
        Chart {
            title: format!("Rehearsal: {} on {}", r.playbook, r.scenario),
            total: r.total,
            dns_per_second: &r.dns_per_second,
            dns_series: "queries the resolver received",
            resolver: &[],
            dns_capacity_qps: r.dns_capacity_qps,
            dns_budget_qps: r.dns_budget_qps,
            dns_budget: &r.dns_budget,
            dns_totals: format!(
                "{} queries, {} dropped, peak {} q/s",
                r.dns_queries, r.dns_dropped, r.dns_peak_qps
            ),
            healthy_per_second: &r.healthy_per_second,
            wave_spans: &r.wave_spans,
        }
    }
}

impl Chart<'_> {
    /// The DNS budget in force at `t` seconds.
    pub fn budget_at(&self, t: f64) -> f64 {
        self.dns_budget
            .iter()
            .take_while(|(at, _)| *at < t)
            .last()
            .map(|&(_, q)| q)
            .unwrap_or(self.dns_budget_qps)
    }
}

/// Writes a rehearsal's three files into `dir`; `summary` is its table.
pub fn write(dir: &Path, r: &Report, summary: &str) -> std::io::Result<()> {
    write_chart(dir, r, &Chart::from(r), summary)
}

/// Writes `timeline.json` (`whole`), `timeline.md` and `timeline.html`.
pub fn write_chart(
    dir: &Path,
    whole: &impl Serialize,
    c: &Chart,
    summary: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("timeline.json"), serde_json::to_vec_pretty(whole)?)?;
    let mut md = format!(
        "# {}\n\n```\n{summary}```\n\n## DNS per second\n\n{} in each second, and the DNS budget in force (adaptive: it moves; static: the playbook's).\n\n| second | queries | budget q/s | capacity |\n|---:|---:|---:|---:|\n",
        c.title,
        capitalized(c.dns_series)
    );
    for (s, q) in c.dns_per_second.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {s} | {q} | {:.0} | {:.0} |",
            c.budget_at(s as f64 + 1.0),
            c.dns_capacity_qps
        );
    }
    if !c.resolver.is_empty() {
        md += "\n## What the resolver received\n\nIts own counters, read every adaptation interval (other clients and retries included), beside the budget in force and the capacity.\n\n| at (s) | received q/s | dropped q/s | budget q/s | capacity |\n|---:|---:|---:|---:|---:|\n";
        for r in c.resolver {
            let dropped = r
                .dropped_qps
                .map(|d| format!("{d:.0}"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                md,
                "| {:.1} | {:.0} | {dropped} | {:.0} | {:.0} |",
                r.at_s,
                r.received_qps,
                c.budget_at(r.at_s),
                c.dns_capacity_qps
            );
        }
    }
    std::fs::write(dir.join("timeline.md"), md)?;
    std::fs::write(dir.join("timeline.html"), html(c, summary))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 960.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 16.0;

/// A chart frame: x in seconds over `[0, t_max]`, y over `[0, y_max]`.
struct Frame {
    t_max: f64,
    y_max: f64,
    h: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        PAD_L + (W - PAD_L - PAD_R) * (t / self.t_max.max(1e-9))
    }
    fn y(&self, v: f64) -> f64 {
        8.0 + (self.h - 32.0) * (1.0 - v / self.y_max.max(1e-9))
    }
    /// Axes, with ticks at round values.
    fn axes(&self, out: &mut String, y_label: &str) {
        let base = self.y(0.0);
        let _ = write!(
            out,
            r##"<line x1="{PAD_L}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="#444"/>"##,
            W - PAD_R
        );
        let _ = write!(
            out,
            r##"<line x1="{PAD_L}" y1="8" x2="{PAD_L}" y2="{base:.1}" stroke="#444"/>"##
        );
        for t in ticks(self.t_max) {
            let x = self.x(t);
            let _ = write!(
                out,
                r##"<text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{t}s</text>"##,
                base + 14.0
            );
        }
        for v in ticks(self.y_max) {
            let y = self.y(v);
            let _ = write!(
                out,
                r##"<line x1="{PAD_L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
                W - PAD_R,
                PAD_L - 4.0,
                y + 4.0
            );
        }
        let _ = write!(
            out,
            r##"<text x="4" y="12" font-size="11">{}</text>"##,
            esc(y_label)
        );
    }
}

/// About five round tick values from 0 to `max`.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 {
        return vec![0.0];
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|v| *v <= max + 1e-9)
        .collect()
}

fn polyline(out: &mut String, points: impl Iterator<Item = (f64, f64)>, color: &str, extra: &str) {
    let pts: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" {extra} points="{}"/>"#,
        pts.join(" ")
    );
}

/// The page: the DNS chart, the healthy containers, the waves.
pub fn html(r: &Chart, summary: &str) -> String {
    let t_max = (r.dns_per_second.len().max(r.healthy_per_second.len()) as f64).max(1.0);
    let mut body = String::new();
    dns_chart(&mut body, r, t_max);
    healthy_chart(&mut body, r, t_max);
    waves_chart(&mut body, r, t_max);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rekindle {title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} pre{{background:#f6f6f6;padding:12px;overflow:auto}} .legend span{{margin-right:14px}} svg{{display:block;max-width:100%;height:auto}}</style></head>
<body><h1>{title}</h1><pre>{summary}</pre>{body}</body></html>
"#,
        title = esc(&r.title),
        summary = esc(summary)
    )
}

/// DNS: queries per second against capacity and budget.
fn dns_chart(out: &mut String, r: &Chart, t_max: f64) {
    let peak = r.dns_per_second.iter().copied().max().unwrap_or(0) as f64;
    let peak = r
        .resolver
        .iter()
        .map(|l| l.received_qps)
        .fold(peak, f64::max);
    let top_budget = r
        .dns_budget
        .iter()
        .map(|b| b.1)
        .fold(r.dns_budget_qps, f64::max);
    let f = Frame {
        t_max,
        y_max: peak.max(r.dns_capacity_qps).max(top_budget) * 1.1,
        h: 300.0,
    };
    let _ = write!(
        out,
        r#"<h2>DNS queries per second</h2><svg viewBox="0 0 {W} {}" width="{W}" role="img" aria-label="DNS queries per second">"#,
        f.h
    );
    f.axes(out, "queries/s");
    polyline(
        out,
        r.dns_per_second.iter().enumerate().flat_map(|(s, q)| {
            [
                (f.x(s as f64), f.y(*q as f64)),
                (f.x(s as f64 + 1.0), f.y(*q as f64)),
            ]
        }),
        "#3b6ea5",
        "",
    );
    if !r.resolver.is_empty() {
        polyline(
            out,
            r.resolver
                .iter()
                .map(|l| (f.x(l.at_s), f.y(l.received_qps))),
            "#8e44ad",
            "",
        );
    }
    let cap = f.y(r.dns_capacity_qps);
    let _ = write!(
        out,
        r##"<line x1="{PAD_L}" y1="{cap:.1}" x2="{:.1}" y2="{cap:.1}" stroke="#c0392b" stroke-dasharray="6 4"/>"##,
        W - PAD_R
    );
    let steps = (0..=t_max as usize).map(|s| (f.x(s as f64), f.y(r.budget_at(s as f64 + 1.0))));
    polyline(out, steps, "#27ae60", "");
    let _ = write!(
        out,
        r##"</svg><p class="legend"><span style="color:#3b6ea5">■ {}</span>{} <span style="color:#c0392b">- - capacity {:.0} q/s</span> <span style="color:#27ae60">— DNS budget ({})</span> · {}</p>"##,
        esc(r.dns_series),
        if r.resolver.is_empty() {
            ""
        } else {
            r##" <span style="color:#8e44ad">— what the resolver received (its own counter)</span>"##
        },
        r.dns_capacity_qps,
        if r.dns_budget.is_empty() {
            "static"
        } else {
            "adaptive"
        },
        esc(&r.dns_totals)
    );
}

/// Healthy containers over time.
fn healthy_chart(out: &mut String, r: &Chart, t_max: f64) {
    let f = Frame {
        t_max,
        y_max: r.total.max(1) as f64,
        h: 220.0,
    };
    let _ = write!(
        out,
        r#"<h2>Containers healthy</h2><svg viewBox="0 0 {W} {}" width="{W}" role="img" aria-label="containers healthy over time">"#,
        f.h
    );
    f.axes(out, "healthy");
    polyline(
        out,
        std::iter::once((f.x(0.0), f.y(0.0))).chain(
            r.healthy_per_second
                .iter()
                .enumerate()
                .map(|(s, n)| (f.x(s as f64 + 1.0), f.y(*n as f64))),
        ),
        "#8e44ad",
        "",
    );
    let _ = write!(out, "</svg>");
}

/// Waves: one bar each, coloured by role; halted ones red.
fn waves_chart(out: &mut String, r: &Chart, t_max: f64) {
    let roles: Vec<&str> = r.wave_spans.iter().fold(Vec::new(), |mut v, w| {
        if !v.contains(&w.role.as_str()) {
            v.push(w.role.as_str());
        }
        v
    });
    let palette = [
        "#3b6ea5", "#e67e22", "#16a085", "#8e44ad", "#7f8c8d", "#d35400",
    ];
    let row = if r.wave_spans.len() > 150 { 2.0 } else { 8.0 };
    let h = 40.0 + row * r.wave_spans.len() as f64;
    let f = Frame {
        t_max,
        y_max: 1.0,
        h,
    };
    let _ = write!(
        out,
        r#"<h2>Waves ({})</h2><svg viewBox="0 0 {W} {h}" width="{W}" role="img" aria-label="wave spans">"#,
        r.wave_spans.len()
    );
    for (i, w) in r.wave_spans.iter().enumerate() {
        let color = if w.halted {
            "#c0392b"
        } else {
            palette[roles.iter().position(|x| *x == w.role).unwrap_or(0) % palette.len()]
        };
        let (x0, x1) = (f.x(w.start_s), f.x(w.end_s.unwrap_or(t_max)));
        let _ = write!(
            out,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>wave {} {} {}: {:.1}s – {}</title></rect>"#,
            8.0 + i as f64 * row,
            (x1 - x0).max(1.0),
            (row - 0.5).max(1.0),
            w.wave,
            esc(&w.role),
            esc(&w.group),
            w.start_s,
            w.end_s
                .map(|e| format!("{e:.1}s"))
                .unwrap_or_else(|| "not passed".into())
        );
    }
    let base = 8.0 + row * r.wave_spans.len() as f64 + 4.0;
    for t in ticks(t_max) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{t}s</text>"#,
            f.x(t),
            base + 12.0
        );
    }
    let _ = write!(out, "</svg><p class=\"legend\">");
    for (i, role) in roles.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span style="color:{}">■ {}</span> "#,
            palette[i % palette.len()],
            esc(role)
        );
    }
    let _ = write!(out, r#"<span style="color:#c0392b">■ halted</span></p>"#);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(125.0), vec![0.0, 50.0, 100.0]);
        assert_eq!(ticks(5500.0), vec![0.0, 2000.0, 4000.0]);
        assert_eq!(ticks(0.0), vec![0.0]);
    }
}
