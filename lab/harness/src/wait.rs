//! Polling with a deadline: the only way the harness waits for anything.

use std::fmt::Debug;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, truncate};

/// How often conditions are re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `probe` until it returns `Ok(Some(value))` or `timeout` passes. Probe errors are
/// remembered and retried (a daemon may not answer yet); the timeout error carries the last
/// one.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last: String;
    loop {
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => last = "condition not met".to_string(),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(Error::WaitTimeout {
                what: what.to_string(),
                timeout,
                last: truncate(&last, 2000),
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Fetches a state with `fetch` until `pred` accepts it or `timeout` passes; returns the
/// accepted state. The timeout error shows the last state seen (Debug, truncated).
pub fn wait_for_state<S: Debug>(
    what: &str,
    timeout: Duration,
    mut fetch: impl FnMut() -> Result<S>,
    mut pred: impl FnMut(&S) -> bool,
) -> Result<S> {
    let deadline = Instant::now() + timeout;
    let mut last: String;
    loop {
        match fetch() {
            Ok(s) if pred(&s) => return Ok(s),
            Ok(s) => last = format!("{s:?}"),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(Error::WaitTimeout {
                what: what.to_string(),
                timeout,
                last: truncate(&last, 3000),
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_value_once_ready() {
        let mut n = 0;
        let v = wait_for("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            Ok((n >= 3).then_some(n))
        })
        .expect("reaches 3");
        assert_eq!(v, 3);
    }

    #[test]
    fn wait_for_times_out_with_last_error() {
        let start = Instant::now();
        let err = wait_for::<()>("never", Duration::from_millis(250), || {
            Err(Error::parse("probe", "boom"))
        })
        .expect_err("must time out");
        assert!(start.elapsed() < Duration::from_secs(2));
        let msg = err.to_string();
        assert!(msg.contains("never") && msg.contains("boom"), "{msg}");
    }

    #[test]
    fn wait_for_state_reports_last_state() {
        let err = wait_for_state(
            "x > 10",
            Duration::from_millis(200),
            || Ok(7u32),
            |x| *x > 10,
        )
        .expect_err("never true");
        assert!(err.to_string().contains("last seen: 7"), "{err}");
    }
}
