//! Leader election on a coordination.k8s.io/v1 Lease.
//!
//! Two replicas must never both write Service status, so only the Lease holder writes. The
//! scheme is client-go's: the holder renews every `retry` period; a candidate takes over once
//! it has seen the same Lease record unchanged for a whole lease duration (measured on its own
//! clock, so clock skew between nodes does not matter); writes use optimistic concurrency
//! (`resourceVersion`), so two candidates cannot both win. A leader that could not renew for
//! `renew_deadline` (< lease duration) steps down on its own before anyone else may take over.
//! On shutdown the holder empties the Lease so a standby takes over at its next poll.
//!
//! The elector runs on its own thread, with its own runtime and its own client (its own
//! connection): a burst of thousands of Service writes keeps the controller's loop and
//! connection pool busy, and a renewal must not wait behind them. On the server side the
//! manifests put the controller's Lease requests in the `leader-election` priority level
//! (`manifests/flowcontrol.yaml`), apart from its status writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_daemon::Identity;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease record stays valid without a renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops acting as leader.
    pub renew_deadline: Duration,
    /// How often the Lease is polled / renewed.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self::for_lease_duration(Duration::from_secs(15))
    }
}

impl Timing {
    /// Derive renew deadline (2/3) and retry period (1/7, at least 200 ms) from the lease
    /// duration: 15 s gives 10 s and ~2 s, the client-go defaults scaled down.
    pub fn for_lease_duration(lease_duration: Duration) -> Self {
        Self {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry: (lease_duration / 7).max(Duration::from_millis(200)),
        }
    }
}

/// Where the Lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// Our holder identity.
    pub identity: String,
    /// Timing.
    pub timing: Timing,
}

/// Cheap, cloneable view of "may I write right now?".
#[derive(Clone, Debug)]
pub struct LeaderHandle {
    rx: watch::Receiver<bool>,
    valid_until: Arc<Mutex<Option<Instant>>>,
}

impl LeaderHandle {
    /// True only while we hold the Lease and the last renewal is recent enough.
    pub fn is_leader(&self) -> bool {
        if !*self.rx.borrow() {
            return false;
        }
        let until = *self
            .valid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    /// Wait for the next leadership change and return the new state.
    pub async fn changed(&mut self) -> bool {
        if self.rx.changed().await.is_err() {
            // Elector gone: we are certainly not leading any more.
            std::future::pending::<()>().await;
        }
        *self.rx.borrow_and_update()
    }

    /// The current flag, marking it seen.
    pub fn current(&mut self) -> bool {
        *self.rx.borrow_and_update()
    }
}

/// A default identity: `POD_NAME` or the hostname, plus a random suffix so two processes on
/// one host differ.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ferrolb-controller".to_string());
    let suffix: u32 = rand::random();
    format!("{base}_{suffix:08x}")
}

/// Called with the duration of every acquire/renew round (its GET and PUT).
pub type LatencyObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// The running elector.
pub struct ElectorTask {
    /// Resolves when the elector has stopped (after releasing the Lease on `cancel`).
    pub done: tokio::task::JoinHandle<()>,
    /// Stops at once, without releasing the Lease (a crash, for tests).
    pub abort: CancellationToken,
}

/// Start the elector on its own thread, with a client from `config` that identifies itself
/// as `identity` (User-Agent `... (ID; leader-election)`, field manager). It ends after
/// `cancel`, releasing the Lease if held.
pub async fn spawn(
    config: kube::Config,
    identity: &Identity,
    cfg: LeaseConfig,
    observe: LatencyObserver,
    cancel: CancellationToken,
) -> Result<(LeaderHandle, ElectorTask), ferrolb_daemon::ClientError> {
    let (tx, rx) = watch::channel(false);
    let valid_until = Arc::new(Mutex::new(None));
    let handle = LeaderHandle {
        rx,
        valid_until: valid_until.clone(),
    };
    let lease_identity = Identity {
        component: identity.component,
        instance: format!("{}; leader-election", identity.instance),
    };
    let abort = CancellationToken::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) =
        tokio::sync::oneshot::channel::<Result<(), ferrolb_daemon::ClientError>>();
    let post = lease_identity.post_params();
    let stop = abort.clone();
    let thread = std::thread::Builder::new()
        .name("lease-elector".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(ferrolb_daemon::ClientError::Client(format!(
                        "elector runtime: {e}"
                    ))));
                    return;
                }
            };
            runtime.block_on(async move {
                // The client's connection pool belongs to this runtime.
                let client = match ferrolb_daemon::client::client(config, &lease_identity) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
                let mut elector = Elector {
                    api,
                    cfg,
                    post,
                    observe,
                    held: None,
                    observed: None,
                    tx,
                    valid_until,
                };
                tokio::select! {
                    _ = elector.run(cancel) => {}
                    _ = stop.cancelled() => elector.step_down(),
                }
            });
            let _ = done_tx.send(());
        });
    if let Err(e) = thread {
        return Err(ferrolb_daemon::ClientError::Client(format!(
            "elector thread: {e}"
        )));
    }
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(ferrolb_daemon::ClientError::Client(
                "elector thread ended at start".into(),
            ));
        }
    }
    let done = tokio::spawn(async move {
        let _ = done_rx.await;
    });
    Ok((handle, ElectorTask { done, abort }))
}

/// A Lease record as compared between polls: holder and renew time.
type Record = (Option<String>, Option<Timestamp>);

struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    post: PostParams,
    observe: LatencyObserver,
    /// The Lease as we last wrote it, while we hold it (renewals start from it).
    held: Option<Lease>,
    /// The last Lease record seen (holder, renew time) and when we first saw it.
    observed: Option<(Record, Instant)>,
    tx: watch::Sender<bool>,
    valid_until: Arc<Mutex<Option<Instant>>>,
}

impl Elector {
    async fn run(&mut self, cancel: CancellationToken) {
        let mut last_renew: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let attempt = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.try_acquire_or_renew() => r,
            };
            let took = started.elapsed();
            (self.observe)(took);
            tracing::debug!(
                lease = %self.cfg.name,
                elapsed_us = took.as_micros() as u64,
                renewal = self.held.is_some(),
                ok = attempt.is_ok(),
                "lease round"
            );
            match attempt {
                Ok(true) => {
                    let now = Instant::now();
                    last_renew = Some(now);
                    self.set_valid_until(Some(now + self.cfg.timing.renew_deadline));
                    if !*self.tx.borrow() {
                        tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.name, "became leader");
                        let _ = self.tx.send(true);
                    }
                }
                Ok(false) => {
                    if *self.tx.borrow() {
                        tracing::warn!(identity = %self.cfg.identity, "lost the leader lease");
                    }
                    self.step_down();
                    last_renew = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.cfg.name, "lease request failed");
                    let expired =
                        last_renew.is_none_or(|t| t.elapsed() >= self.cfg.timing.renew_deadline);
                    if *self.tx.borrow() && expired {
                        tracing::warn!("could not renew the lease in time, stepping down");
                        self.step_down();
                        last_renew = None;
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.cfg.timing.retry) => {}
            }
        }
        let was_leader = *self.tx.borrow();
        self.step_down();
        if was_leader {
            match self.release().await {
                Ok(()) => tracing::info!(lease = %self.cfg.name, "released the leader lease"),
                Err(e) => tracing::warn!(error = %e, "releasing the lease failed"),
            }
        }
    }

    fn set_valid_until(&self, t: Option<Instant>) {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = t;
    }

    fn step_down(&self) {
        self.set_valid_until(None);
        if *self.tx.borrow() {
            let _ = self.tx.send(false);
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.cfg.timing.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One round: create, renew or take over the Lease. `Ok(true)` = we hold it now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        // While leading, renew with one PUT of the Lease as we last wrote it (client-go's
        // optimistic renew); only a conflict (someone else wrote it) needs the GET below.
        if *self.tx.borrow()
            && let Some(mut lease) = self.held.clone()
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(self.duration_secs());
            }
            match self.api.replace(&self.cfg.name, &self.post, &lease).await {
                Ok(written) => {
                    self.held = Some(written);
                    return Ok(true);
                }
                Err(e) if is_conflict(&e) => self.held = None,
                Err(e) => return Err(e),
            }
        }
        self.held = None;
        let existing = self.api.get_opt(&self.cfg.name).await?;
        let Some(lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&self.post, &lease).await {
                Ok(written) => {
                    self.held = Some(written);
                    Ok(true)
                }
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record.clone(), at));
                at
            }
        };
        let ours = holder.as_deref() == Some(self.cfg.identity.as_str());
        if let Some(other) = holder.as_deref().filter(|_| !ours) {
            let dur = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .unwrap_or(self.cfg.timing.lease_duration);
            if observed_at.elapsed() < dur {
                tracing::trace!(holder = other, "lease held by another replica");
                return Ok(false);
            }
            tracing::info!(previous = other, "lease expired, taking over");
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.duration_secs()),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..spec
        };
        let mut updated = lease;
        updated.spec = Some(new_spec);
        match self.api.replace(&self.cfg.name, &self.post, &updated).await {
            Ok(written) => {
                self.held = Some(written);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Empty the holder so a standby can take over without waiting for expiry.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        let now = Timestamp::now();
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(now));
        lease.spec = Some(spec);
        self.api.replace(&self.cfg.name, &self.post, &lease).await?;
        Ok(())
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing_matches_the_spec() {
        let t = Timing::default();
        assert_eq!(t.lease_duration, Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert!(t.retry >= Duration::from_secs(2) && t.retry <= Duration::from_secs(5));
    }

    #[test]
    fn identities_differ() {
        assert_ne!(default_identity(), default_identity());
    }
}
