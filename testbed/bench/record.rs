//! `--record NAME`: an invocation's raw figures kept beside the docs, in
//! `docs/bench/runs/<YYYY-MM-DD>-<machine>/` (or `--out`): `NAME.csv`, one
//! row per run, and `NAME.txt`, what was printed. Nothing is written
//! without `--record`.

use crate::out::{csv, Row};
use crate::Settings;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The UTC date (YYYY-MM-DD) of an instant in nanoseconds since the
/// epoch: the date part of the fake fleet's Docker timestamps
/// (testbed/fakefleet/clock.rs, shared with this program).
pub fn date_of(ns: u64) -> String {
    crate::clock::rfc3339(ns)[..10].to_string()
}

/// Today (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    date_of(crate::clock::now_ns())
}

/// This machine's name: the hostname, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The directory of a record: `--out`, else docs/bench/runs/DATE-MACHINE
/// (from the repository's root).
pub fn dir(s: &Settings) -> Result<PathBuf> {
    if let Some(d) = &s.out {
        return Ok(d.clone());
    }
    let runs = Path::new("docs/bench/runs");
    anyhow::ensure!(
        runs.is_dir(),
        "no docs/bench/runs here: run from the repository's root, or give --out"
    );
    let machine = s.machine.clone().unwrap_or_else(hostname);
    Ok(runs.join(format!("{}-{machine}", today())))
}

/// Writes NAME.csv and NAME.txt; the directory.
pub fn write(s: &Settings, name: &str, rows: &[Row], transcript: &str) -> Result<PathBuf> {
    let dir = dir(s)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join(format!("{name}.csv")), csv(rows))?;
    std::fs::write(dir.join(format!("{name}.txt")), transcript)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_civil_dates() {
        let day = |d: u64| d * 86_400 * 1_000_000_000;
        assert_eq!(date_of(day(0)), "1970-01-01");
        assert_eq!(date_of(day(11_016)), "2000-02-29");
        // 2026-12-07, the date of the runs in docs/bench/runs/.
        assert_eq!(date_of(day(20_794) + 86_399_999_999_999), "2026-12-07");
    }
}
