//! `--record NAME`: an invocation's raw figures kept beside the docs, in
//! `docs/bench/runs/<YYYY-MM-DD>-<machine>/` (or `--out`): `NAME.csv`, one
//! row per run, and `NAME.txt`, what was printed. Nothing is written
//! without `--record`.

use crate::out::{csv, Row};
use crate::Settings;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The civil date (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Today (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
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
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // 2026-12-07, the date of the runs in docs/bench/runs/.
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
    }
}
