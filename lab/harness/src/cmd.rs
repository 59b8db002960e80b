//! Running external commands (iproute2, gobgp, birdc, anything in a namespace) with a
//! deadline, so that no harness call can hang a test.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, truncate};

/// Default deadline for short commands (`ip`, `gobgp`, `birdc`, `exec`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line that was run (for messages).
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Turns a non-zero exit into [`Error::CommandFailed`], else returns stdout.
    pub fn into_stdout(self) -> Result<String> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            Err(failed(&self))
        }
    }
}

pub(crate) fn failed(out: &CmdOutput) -> Error {
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    Error::CommandFailed {
        command: out.command.clone(),
        status: out.status.to_string(),
        stderr: truncate(text, 4000),
    }
}

/// Renders a command line for humans (quotes arguments with spaces).
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = vec![quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Checks that `program` exists and is executable: a path is checked directly, a bare name
/// is searched in `PATH`. Done before spawning because `ip netns exec` would otherwise turn
/// a missing binary into an opaque exit status 255.
pub fn check_binary(program: &str) -> Result<()> {
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let found = if program.contains('/') {
        is_exec(Path::new(program))
    } else {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| is_exec(&dir.join(program))))
            .unwrap_or(false)
    };
    if found {
        Ok(())
    } else {
        Err(Error::MissingBinary {
            program: program.to_string(),
        })
    }
}

/// Runs `cmd` to completion with a deadline; the child is killed when the deadline passes.
///
/// Output pipes are drained on helper threads (no pipe-buffer deadlock). If a grandchild
/// keeps a pipe open after the child exited, we stop waiting for it at the deadline rather
/// than hang.
pub fn run(mut cmd: Command, timeout: Duration) -> Result<CmdOutput> {
    let command = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    let deadline = Instant::now() + timeout;
    let out_rx = drain(child.stdout.take());
    let err_rx = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                return Err(Error::Spawn { command, source });
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::CommandTimeout { command, timeout });
        }
        thread::sleep(Duration::from_millis(5));
    };
    // Normally the pipes hit EOF right after exit. If a grandchild inherited them, take
    // what was written so far after a short grace instead of waiting for it.
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(200), Duration::from_secs(1));
    let grace_end = Instant::now() + grace;
    let stdout = out_rx.collect(grace_end);
    let stderr = err_rx.collect(grace_end);
    tracing::trace!(%command, %status, "command finished");
    Ok(CmdOutput {
        command,
        status,
        stdout,
        stderr,
    })
}

/// A pipe being read on a helper thread.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    fn collect(self, until: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        let buf = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Drain {
    let (tx, done) = mpsc::channel();
    let buf = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = pipe {
        let sink = buf.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => match sink.lock() {
                        Ok(mut b) => b.extend_from_slice(&chunk[..n]),
                        Err(_) => break,
                    },
                }
            }
            let _ = tx.send(());
        });
    } else {
        let _ = tx.send(());
    }
    Drain { buf, done }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run(c, Duration::from_secs(5)).expect("sh runs");
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
        let err = out.into_stdout().expect_err("exit 3 is a failure");
        let msg = err.to_string();
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("err"), "{msg}");
    }

    #[test]
    fn run_kills_at_deadline() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let start = Instant::now();
        let err = run(c, Duration::from_millis(300)).expect_err("must time out");
        assert!(matches!(err, Error::CommandTimeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_does_not_wait_for_grandchild_holding_pipe() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo started; sleep 3 &"]);
        let start = Instant::now();
        let out = run(c, Duration::from_secs(10)).expect("sh exits at once");
        assert!(out.success());
        assert_eq!(out.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn check_binary_finds_and_rejects() {
        check_binary("sh").expect("sh is in PATH");
        check_binary("/bin/sh").expect("/bin/sh exists");
        let err = check_binary("/nonexistent/ferrolb-bogus").expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/ferrolb-bogus"));
    }

    #[test]
    fn describe_quotes_spaces() {
        let mut c = Command::new("echo");
        c.args(["a b", "c"]);
        assert_eq!(describe(&c), "echo 'a b' c");
    }
}
