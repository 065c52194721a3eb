//! Human durations in playbooks and scenarios (`"500ms"`, `"5s"`, `"2m"`,
//! `"1h"`, or a bare number of seconds). Parsing only: this module never
//! reads a clock.

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number where one was expected.
    #[error("expected a duration such as \"500ms\", \"5s\", \"2m\" or \"1h\", found {0:?}")]
    NotADuration(String),
    /// A unit other than ms, s, m or h.
    #[error("unknown duration unit {unit:?} in {text:?}: use ms, s, m or h")]
    UnknownUnit {
        /// The unit found.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Negative, or not finite.
    #[error("duration {0:?} must be a finite, non-negative value")]
    OutOfRange(String),
    /// Longer than a `Duration` holds.
    #[error("duration {0:?} is too long")]
    TooLong(String),
}

/// Parses `"250ms"`, `"1.5s"`, `"2m"`, `"1h"` or `"3"` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| DurationError::NotADuration(text.to_string()))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            })
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(DurationError::OutOfRange(text.to_string()));
    }
    // Finite yet past what a Duration holds (~5.8e11 years): an error, not
    // the panic `from_secs_f64` would raise.
    Duration::try_from_secs_f64(secs).map_err(|_| DurationError::TooLong(text.to_string()))
}

/// Formats a duration for tables: `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{}ms", d.as_millis())
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn too_long_is_an_error_not_a_panic() {
        // Found by fuzzing (tests/fuzz/regressions/playbook/).
        for t in ["18446744073709551615s", "99999999999999999999999999999999"] {
            assert!(parse_duration(t).is_err(), "{t}");
        }
        let e = parse_duration("99999999999999999999h").unwrap_err();
        assert!(matches!(e, DurationError::TooLong(_)), "{e}");
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn formats() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
    }
}
