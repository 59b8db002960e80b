//! The one error type of the harness.
//!
//! Every variant that involves a command carries the command line, so a failing test says
//! *what* was run and *why* it failed (exit status, stderr or the daemon's log tail) without
//! anyone having to re-run it by hand.

use std::time::Duration;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building a topology or talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program does not exist or is not executable (checked before spawning).
    #[error("binary `{program}` not found or not executable")]
    MissingBinary {
        /// The path or name that was looked up.
        program: String,
    },
    /// The OS refused to start the command.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The full command line.
        command: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The full command line.
        command: String,
        /// Exit status as text (e.g. `exit status: 1`).
        status: String,
        /// Trimmed stderr (or stdout when stderr was empty).
        stderr: String,
    },
    /// The command did not finish in time and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    CommandTimeout {
        /// The full command line.
        command: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// A daemon exited while we waited for it to come up.
    #[error("{daemon} `{command}` exited during startup ({status}); log tail:\n{log_tail}")]
    DaemonExited {
        /// `gobgpd`, `bird`, ...
        daemon: String,
        /// The full command line.
        command: String,
        /// Exit status as text.
        status: String,
        /// Last lines of the daemon's stdout/stderr log.
        log_tail: String,
    },
    /// A daemon kept running but never answered its control interface.
    #[error(
        "{daemon} `{command}` did not answer within {timeout:?} (last probe: {last_error}); log tail:\n{log_tail}"
    )]
    DaemonNotReady {
        /// `gobgpd`, `bird`, ...
        daemon: String,
        /// The full command line.
        command: String,
        /// The startup deadline.
        timeout: Duration,
        /// What the last readiness probe said.
        last_error: String,
        /// Last lines of the daemon's log.
        log_tail: String,
    },
    /// A `wait_for` condition was not met before its deadline.
    #[error("timed out after {timeout:?} waiting for {what}; last seen: {last}")]
    WaitTimeout {
        /// Human description of the condition.
        what: String,
        /// The deadline that passed.
        timeout: Duration,
        /// The last observed state or probe error (truncated).
        last: String,
    },
    /// Output of a tool could not be understood.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed (e.g. `ip -j route`).
        what: String,
        /// Why it failed, with a snippet of the input.
        detail: String,
    },
    /// A name or prefix that would not make a valid, unique kernel object name.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What rule it breaks.
        reason: String,
    },
    /// A local file operation (config, log, work directory) failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Teardown hit one or more errors (it still tried every step).
    #[error("teardown incomplete: {}", .0.join("; "))]
    Teardown(Vec<String>),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Parse {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Truncates `s` to at most `max` bytes on a char boundary, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...[{} more bytes]", &s[..end], s.len() - end)
}
