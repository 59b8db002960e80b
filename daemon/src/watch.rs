//! Watches of both daemons: kube-runtime's watcher with a back-off that never sleeps past
//! the API server's return, and error logging that cannot flood.
//!
//! Why not `default_backoff()`: it grows to 30 s (client-go's reflector numbers), so after
//! a 30 s API outage a watch may sleep up to 30 s more before it notices the server is back
//! (measured: speaker watches resynced 25-37 s late), and changes in that window are missed.
//! Here retries start at 250 ms and stay at most 1 s apart (jittered, so a fleet of speakers
//! does not retry in lockstep), which puts every watch back within 2 s of the server
//! answering. The cost while the server is down is one failed connection per watch per
//! second. The back-off resets on the first event after an error (kube-runtime's
//! `StreamBackoff` does that on every `Ok`).

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

/// First retry after an error.
pub const MIN_RETRY: Duration = Duration::from_millis(250);
/// Longest pause between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(1);
/// While a watch keeps failing, one summary line per this period (the first error is
/// logged at once).
pub const ERROR_LOG_PERIOD: Duration = Duration::from_secs(30);

/// Doubling from [`MIN_RETRY`] to [`MAX_RETRY`], each delay drawn from `[d/2, d]`.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: MIN_RETRY }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (d * 2).min(MAX_RETRY);
        let jitter: f64 = rand::random::<f64>() * 0.5 + 0.5;
        Some(d.mul_f64(jitter))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = MIN_RETRY;
    }
}

/// Error bookkeeping of one watch: the first error of a streak is logged at once, then one
/// summary per [`ERROR_LOG_PERIOD`], and one line when the watch is back.
#[derive(Debug)]
pub struct WatchLog {
    name: &'static str,
    down_since: Option<Instant>,
    errors: u64,
    last_logged: Option<Instant>,
}

impl WatchLog {
    /// For the watch called `name` (`services`, `endpointslices`, ...).
    pub fn new(name: &'static str) -> Self {
        WatchLog {
            name,
            down_since: None,
            errors: 0,
            last_logged: None,
        }
    }

    /// Records an error; returns whether it was logged.
    pub fn error(&mut self, e: &watcher::Error) -> bool {
        let now = Instant::now();
        self.errors += 1;
        let since = *self.down_since.get_or_insert(now);
        let due = self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_PERIOD);
        if due {
            self.last_logged = Some(now);
            tracing::warn!(
                watch = self.name,
                error = %e,
                errors = self.errors,
                failing_for_s = since.elapsed().as_secs(),
                "watch failed; retrying at most every second"
            );
        }
        due
    }

    /// Records an event; logs the recovery once after errors.
    pub fn ok(&mut self) {
        if let Some(since) = self.down_since.take() {
            tracing::info!(
                watch = self.name,
                errors = self.errors,
                down_for_ms = since.elapsed().as_millis() as u64,
                "watch is back"
            );
            self.errors = 0;
            self.last_logged = None;
        }
    }

    /// Whether the watch is failing now.
    pub fn failing(&self) -> bool {
        self.down_since.is_some()
    }
}

/// A watch of `api` with [`WatchBackoff`] and [`WatchLog`]: errors are still yielded (so a
/// caller can count them) but already logged.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    name: &'static str,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + Unpin + 'static
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut log = WatchLog::new(name);
    watcher::watcher(api, config)
        .backoff(WatchBackoff::default())
        .map(move |item| {
            match &item {
                Ok(_) => log.ok(),
                Err(e) => {
                    log.error(e);
                }
            }
            item
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_one_second_cap_and_resets() {
        let mut b = WatchBackoff::default();
        let d: Vec<Duration> = (0..8).map(|_| b.next().unwrap()).collect();
        assert!(d[0] >= MIN_RETRY / 2 && d[0] <= MIN_RETRY, "{d:?}");
        assert!(d.iter().all(|x| *x <= MAX_RETRY), "{d:?}");
        assert!(d[7] >= MAX_RETRY / 2, "{d:?}");
        // The sum over a long outage: never more than a second between two attempts.
        b.reset();
        assert!(b.next().unwrap() <= MIN_RETRY);
    }

    #[test]
    fn errors_are_logged_once_per_streak_then_summarised() {
        let mut log = WatchLog::new("services");
        let e = || watcher::Error::NoResourceVersion;
        assert!(log.error(&e()));
        assert!(!log.error(&e()));
        assert!(!log.error(&e()));
        assert!(log.failing());
        log.ok();
        assert!(!log.failing());
        assert!(log.error(&e()), "a new streak is logged again");
    }
}
