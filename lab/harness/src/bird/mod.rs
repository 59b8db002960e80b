//! A real BIRD 2 inside a namespace, configured from [`BirdConfig`] and read as data through
//! `birdc` on a per-instance control socket.

mod config;
mod parse;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;

pub use config::{BirdBgp, BirdChannel, BirdConfig, BirdKernel, BirdStatic};
pub use parse::{BirdBfdSession, BirdProtocol, parse_bfd_sessions, parse_protocols, parse_routes};

use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::daemon;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::process::Proc;
use crate::rib::{self, RibRoute};
use crate::wait;

/// Everything read from BIRD in one poll.
#[derive(Debug, Clone)]
pub struct BirdState {
    /// `show protocols`.
    pub protocols: Vec<BirdProtocol>,
    /// `show route all` (all tables).
    pub routes: Vec<RibRoute>,
}

impl BirdState {
    /// The protocol with this name.
    pub fn protocol(&self, name: &str) -> Option<&BirdProtocol> {
        self.protocols.iter().find(|p| p.name == name)
    }

    /// The route for this prefix.
    pub fn route(&self, prefix: IpNet) -> Option<&RibRoute> {
        rib::find(&self.routes, prefix)
    }
}

/// A running BIRD. The lab stops it at teardown; [`Bird::stop`] stops it earlier.
#[derive(Debug, Clone)]
pub struct Bird {
    proc: Proc,
    config_path: PathBuf,
    socket: PathBuf,
    birdc_bin: PathBuf,
}

impl Bird {
    /// Writes `cfg` to the lab directory, starts `bird -f -c CONF -s SOCK -P PIDFILE` in
    /// `ns` and waits until `birdc show status` says it is up. A config error fails at once
    /// with BIRD's message.
    pub fn start(ns: &Netns, cfg: &BirdConfig) -> Result<Bird> {
        let bin = cfg.bird_bin.to_string_lossy().into_owned();
        cmd::check_binary(&bin)?;
        cmd::check_binary(&cfg.birdc_bin.to_string_lossy())?;
        let stem = daemon::fresh_stem(ns.dir(), "bird");
        let config_path = stem.with_extension("conf");
        let socket = stem.with_extension("ctl");
        let pidfile = stem.with_extension("pid");
        let log = stem.with_extension("log");
        daemon::write_file(&config_path, &cfg.to_conf()?)?;
        let _ = std::fs::remove_file(&socket);
        let proc = ns.spawn_logged(
            &bin,
            &[
                "-f",
                "-c",
                &config_path.to_string_lossy(),
                "-s",
                &socket.to_string_lossy(),
                "-P",
                &pidfile.to_string_lossy(),
            ],
            &log,
        )?;
        let b = Bird {
            proc,
            config_path,
            socket,
            birdc_bin: cfg.birdc_bin.clone(),
        };
        daemon::wait_ready("bird", &b.proc, cfg.start_timeout, || {
            let out = b.birdc(&["show", "status"])?;
            if out.contains("Daemon is up and running") {
                Ok(())
            } else {
                Err(Error::parse("birdc show status", out.trim().to_string()))
            }
        })?;
        tracing::info!(ns = ns.label(), pid = b.proc.pid(), "bird up");
        Ok(b)
    }

    /// The daemon process (for `signal(SIGSTOP)`, `log_tail`, ...).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The control socket (`birdc -s PATH`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs `birdc -s SOCK args...` and returns stdout. birdc exits 0 even for most
    /// command errors, so callers check the text.
    pub fn birdc<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        let mut c = Command::new(&self.birdc_bin);
        c.arg("-s")
            .arg(&self.socket)
            .args(args.iter().map(AsRef::as_ref));
        cmd::run(c, DEFAULT_TIMEOUT)?.into_stdout()
    }

    /// `show protocols`.
    pub fn protocols(&self) -> Result<Vec<BirdProtocol>> {
        parse_protocols(&self.birdc(&["show", "protocols"])?)
    }

    /// `show bfd sessions`.
    pub fn bfd_sessions(&self) -> Result<Vec<BirdBfdSession>> {
        parse_bfd_sessions(&self.birdc(&["show", "bfd", "sessions"])?)
    }

    /// `show route all`, every table.
    pub fn routes(&self) -> Result<Vec<RibRoute>> {
        parse_routes(&self.birdc(&["show", "route", "all"])?)
    }

    /// Replaces the config and asks BIRD to reload it (`birdc configure`).
    pub fn reconfigure(&self, cfg: &BirdConfig) -> Result<()> {
        daemon::write_file(&self.config_path, &cfg.to_conf()?)?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(Error::CommandFailed {
                command: format!("birdc -s {} configure", self.socket.display()),
                status: "exit status: 0".into(),
                stderr: out.trim().to_string(),
            })
        }
    }

    /// Protocols and routes, read now.
    pub fn state(&self) -> Result<BirdState> {
        Ok(BirdState {
            protocols: self.protocols()?,
            routes: self.routes()?,
        })
    }

    /// Polls [`Bird::state`] until `pred` holds; the timeout error shows the last state.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&BirdState) -> bool,
    ) -> Result<BirdState> {
        wait::wait_for_state(&format!("bird: {what}"), timeout, || self.state(), pred)
    }

    /// Waits until BGP protocol `name` is Established.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<BirdProtocol> {
        wait::wait_for(
            &format!("bird: protocol {name} Established"),
            timeout,
            || {
                Ok(self
                    .protocols()?
                    .into_iter()
                    .find(|p| p.name == name && p.is_established()))
            },
        )
    }

    /// Waits until `prefix` is in BIRD's tables with a path from protocol `from` (any
    /// protocol when `None`) and returns the route.
    pub fn wait_route(
        &self,
        prefix: IpNet,
        from: Option<&str>,
        timeout: Duration,
    ) -> Result<RibRoute> {
        wait::wait_for(&format!("bird: route {prefix}"), timeout, || {
            Ok(rib::find(&self.routes()?, prefix)
                .filter(|r| {
                    from.is_none_or(|f| r.paths.iter().any(|p| p.source.as_deref() == Some(f)))
                })
                .cloned())
        })
    }

    /// Stops the daemon now (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&self) {
        self.proc.kill();
    }
}
