//! Running async code inside a network namespace from a process that lives elsewhere.
//!
//! The lab's API server, client and pods live in namespaces that have no link to the root
//! namespace (so the lab never leaves interfaces behind in the host). The `demo` command and
//! the end-to-end tests still need to talk to them: a fresh thread joins the namespace with
//! `setns(CLONE_NEWNET)` (per-thread for network namespaces) and runs a current-thread tokio
//! runtime there, so every socket it opens belongs to that namespace.

use std::fs::File;
use std::future::Future;

use anyhow::{Context, Result, anyhow};
use nix::sched::{CloneFlags, setns};

/// Runs the future built by `make` inside network namespace `ns` (a name in `/run/netns`)
/// on a dedicated thread, and returns its result.
pub fn block_on_in<T, F, Fut>(ns: &str, make: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| {
        format!("opening {path}: the lab namespace {ns} does not exist (is the lab up?)")
    })?;
    let ns_name = ns.to_string();
    let handle = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || -> Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns into {ns_name} (needs root)"))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a tokio runtime")?;
            rt.block_on(make())
        })
        .context("spawning a namespace thread")?;
    handle
        .join()
        .map_err(|_| anyhow!("the thread working in namespace {ns} panicked"))?
}
