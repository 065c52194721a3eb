//! One retry rule for calls that may fail for a moment (a Docker API call,
//! a webhook): a bounded number of attempts, a backoff that doubles
//! between them (with jitter when given a generator), and the caller
//! deciding after each failure whether another attempt can help. The
//! engine's retries of a restart are not this: they run on the engine's
//! clock under the playbook's `[policy]`.

use crate::rng::SplitMix64;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// How many attempts, and the wait before the second.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// The wait before the second attempt; each later one doubles it.
    pub first: Duration,
}

impl Backoff {
    /// The wait after failed attempt `attempt` (1, 2, …): `first` doubled
    /// `attempt - 1` times; with `jitter`, uniform in its upper half.
    pub fn delay(&self, attempt: u32, jitter: Option<&Mutex<SplitMix64>>) -> Duration {
        let full = self.first.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1) as i32);
        let secs = match jitter {
            Some(rng) => rng.lock().unwrap().uniform(full / 2.0, full),
            None => full,
        };
        Duration::from_secs_f64(secs)
    }
}

/// A failed attempt: whether another one may help.
#[derive(Debug)]
pub enum Failed<E> {
    /// Try again (while attempts remain).
    Retry(E),
    /// Give up now.
    Final(E),
}

impl<E> Failed<E> {
    /// `Retry` when `again`, else `Final`.
    pub fn new(e: E, again: bool) -> Failed<E> {
        if again {
            Failed::Retry(e)
        } else {
            Failed::Final(e)
        }
    }
}

/// Runs `op(attempt)` (attempt 1, 2, …) until it succeeds, fails for
/// good, or `b.attempts` are spent; returns its value or its last error.
pub async fn retry<T, E, F, Fut>(
    b: &Backoff,
    jitter: Option<&Mutex<SplitMix64>>,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failed<E>>>,
{
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(Failed::Final(e)) => return Err(e),
            Err(Failed::Retry(e)) if attempt >= b.attempts => return Err(e),
            Err(Failed::Retry(_)) => {
                tokio::time::sleep(b.delay(attempt, jitter)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_and_jitter_keeps_it_in_the_upper_half() {
        let b = Backoff {
            attempts: 3,
            first: Duration::from_millis(100),
        };
        assert_eq!(b.delay(1, None), Duration::from_millis(100));
        assert_eq!(b.delay(3, None), Duration::from_millis(400));
        let rng = Mutex::new(SplitMix64::new(7));
        for _ in 0..100 {
            let d = b.delay(2, Some(&rng)).as_secs_f64();
            assert!((0.1..=0.2).contains(&d), "{d}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_stops_at_success_a_final_failure_or_the_last_attempt() {
        let b = Backoff {
            attempts: 3,
            first: Duration::from_millis(10),
        };
        let mut calls = 0;
        let r: Result<u32, &str> = retry(&b, None, |a| {
            calls += 1;
            async move {
                if a < 2 {
                    Err(Failed::Retry("once"))
                } else {
                    Ok(a)
                }
            }
        })
        .await;
        assert_eq!((r, calls), (Ok(2), 2));
        let mut calls = 0;
        let r: Result<(), &str> = retry(&b, None, |_| {
            calls += 1;
            async { Err(Failed::Final("no")) }
        })
        .await;
        assert_eq!((r, calls), (Err("no"), 1));
        let mut calls = 0;
        let start = tokio::time::Instant::now();
        let r: Result<(), u32> = retry(&b, None, |a| {
            calls += 1;
            async move { Err(Failed::Retry(a)) }
        })
        .await;
        assert_eq!((r, calls), (Err(3), 3));
        assert_eq!(start.elapsed(), Duration::from_millis(30), "10 + 20 ms");
    }
}
