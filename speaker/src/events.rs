//! The speaker's Events: the shared writer of `ferrolb-daemon` (client-go's aggregation,
//! bounded queue, drops counted), reporting as MetalLB's `metallb-speaker` from this node.

use ferrolb_daemon::Identity;
use ferrolb_daemon::events::{self, Options, Source};
use tokio_util::sync::CancellationToken;

pub use ferrolb_daemon::events::{EventSink, EventSpec, Regarding, Severity};

/// The `source.component` MetalLB's speaker uses.
pub const COMPONENT: &str = "metallb-speaker";

/// Starts the writer; the node (`identity.instance`) goes to `source.host` and
/// `reportingInstance`.
pub fn spawn(
    client: kube::Client,
    identity: &Identity,
    cancel: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let opts = Options::new(
        Source {
            component: COMPONENT,
            host: Some(identity.instance.clone()),
            instance: identity.instance.clone(),
        },
        identity.field_manager(),
    );
    events::spawn(client, opts, cancel)
}

/// An Event about Service `namespace/name`.
pub fn about_service(
    namespace: &str,
    name: &str,
    uid: Option<String>,
    severity: Severity,
    reason: &'static str,
    message: String,
) -> EventSpec {
    EventSpec {
        regarding: Regarding {
            kind: "Service",
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid,
        },
        severity,
        reason,
        message,
    }
}
