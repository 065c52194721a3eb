//! The resolver's own query counter, read from a command (e.g.
//! `unbound-control stats_noreset`) or a Prometheus text endpoint, turned
//! with, optionally, its drop counter: the load the resolver really sees
//! (other clients included), and what it refused.
//! A reading that cannot be parsed is an error naming what was read; the
//! caller degrades to the latency probe alone and says so once.

use crate::config::{CounterConfig, CounterSource};
use crate::dns::budget::CounterReading;
use std::time::Duration;

/// Why the resolver's counters could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CounterError {
    /// The command failed or the URL did not answer.
    #[error("resolver counter {from}: {reason}")]
    Read {
        /// The command or URL read.
        from: String,
        /// What went wrong.
        reason: String,
    },
    /// The output holds no number for the key.
    #[error(
        "resolver counter {from}: no `{key}` with a number in its output (first line: {first:?})"
    )]
    Garbage {
        /// The command or URL read.
        from: String,
        /// The key looked for.
        key: String,
        /// The output's first line.
        first: String,
    },
}

/// Finds `key` in `key=value`, `key value` or `key{labels} value` lines.
pub fn parse_counter(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(key)?;
        let rest = match rest.chars().next()? {
            '=' | ' ' | '\t' => rest,
            '{' => &rest[rest.find('}')? + 1..],
            _ => return None,
        };
        rest.trim_start_matches(['=', ' ', '\t'])
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    })
}

/// Reads one resolver's counters.
pub struct ResolverCounter {
    /// Where they are read.
    pub source: CounterSource,
    /// The counter of queries received.
    pub key: String,
    /// The counter of queries dropped, if the resolver has one.
    pub dropped_key: Option<String>,
    /// How long one reading may take.
    pub timeout: Duration,
}

impl ResolverCounter {
    /// A reader of the counters `config` names, each reading bounded by `timeout`.
    pub fn new(config: &CounterConfig, timeout: Duration) -> Self {
        ResolverCounter {
            source: config.source.clone(),
            key: config.key.clone(),
            dropped_key: config.dropped_key.clone(),
            timeout,
        }
    }

    /// The source, as the log and `plan` name it.
    pub fn name(&self) -> String {
        match &self.source {
            CounterSource::Command(argv) => format!("`{}`", argv.join(" ")),
            CounterSource::Url(u) => u.clone(),
        }
    }

    async fn fetch(&self) -> Result<String, String> {
        match &self.source {
            CounterSource::Command(argv) => {
                let (prog, args) = argv.split_first().ok_or("empty command")?;
                let out = tokio::time::timeout(
                    self.timeout,
                    tokio::process::Command::new(prog)
                        .args(args)
                        .kill_on_drop(true)
                        .output(),
                )
                .await
                .map_err(|_| format!("no answer within {:?}", self.timeout))?
                .map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(format!(
                        "exited with {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            CounterSource::Url(url) => http_get(url, self.timeout).await,
        }
    }

    fn value(&self, text: &str, key: &str) -> Result<f64, CounterError> {
        parse_counter(text, key).ok_or_else(|| CounterError::Garbage {
            from: self.name(),
            key: key.to_string(),
            first: text.lines().next().unwrap_or("").chars().take(80).collect(),
        })
    }

    /// Reads the counters (cumulative totals).
    pub async fn read(&self) -> Result<CounterReading, CounterError> {
        let text = self.fetch().await.map_err(|reason| CounterError::Read {
            from: self.name(),
            reason,
        })?;
        let received = self.value(&text, &self.key)?;
        let dropped = self
            .dropped_key
            .as_ref()
            .map(|k| self.value(&text, k))
            .transpose()?;
        Ok(CounterReading { received, dropped })
    }
}

/// A GET of a Prometheus endpoint, through rekindle's HTTP client.
async fn http_get(url: &str, timeout: std::time::Duration) -> Result<String, String> {
    let u = crate::http::Url::parse(url).map_err(|e| e.to_string())?;
    let r = crate::http::send(&u, crate::http::Request::new("GET", ""), timeout)
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("HTTP status {}", r.status));
    }
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unbound_and_prometheus_lines() {
        assert_eq!(
            parse_counter(
                "total.num.queries=1234\ntotal.num.cachehits=3\n",
                "total.num.queries"
            ),
            Some(1234.0)
        );
        assert_eq!(
            parse_counter(
                "# HELP x\ncoredns_dns_requests_total{server=\"dns://:53\"} 5e3\n",
                "coredns_dns_requests_total"
            ),
            Some(5000.0)
        );
        assert_eq!(parse_counter("q 7\n", "q"), Some(7.0));
        assert_eq!(
            parse_counter("total.num.queries_ip_ratelimited=9\n", "total.num.queries"),
            None,
            "a longer key is another key"
        );
        assert_eq!(parse_counter("<html>oops</html>", "q"), None);
        assert_eq!(parse_counter("q=NaN", "q"), None);
    }
}
