//! The controller's Events: the shared writer of `ferrolb-daemon` (client-go's aggregation,
//! bounded queue, drops counted), reporting as MetalLB's `metallb-controller`, and waiting
//! for Service writes in flight so a burst of assignments reaches the API server first.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use ferrolb_daemon::Identity;
use ferrolb_daemon::events::{self, Options, Source};
use tokio_util::sync::CancellationToken;

pub use ferrolb_daemon::events::{EventSink, EventSpec, Regarding, Severity};

/// The `source.component` / `reportingComponent` MetalLB uses.
pub const COMPONENT: &str = "metallb-controller";

/// Longest an Event waits for Service writes to finish before it is written anyway.
pub const MAX_DEFER: Duration = Duration::from_secs(30);

/// Starts the writer; `identity.instance` goes to `reportingInstance`. `writes_busy` is the
/// number of Service writes queued or running: Events wait while it is non-zero.
pub fn spawn(
    client: kube::Client,
    identity: &Identity,
    writes_busy: Arc<AtomicUsize>,
    cancel: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let mut opts = Options::new(
        Source {
            component: COMPONENT,
            host: None,
            instance: identity.instance.clone(),
        },
        identity.field_manager(),
    );
    opts.gate = Some(writes_busy);
    opts.max_defer = MAX_DEFER;
    events::spawn(client, opts, cancel)
}
