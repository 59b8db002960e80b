//! RFC 5882 for BGP: a BFD failure takes the BGP session down at once (Cease 6/10, "BFD
//! Down", RFC 9384) and lets it come back through the normal FSM with its back-off; a peer
//! signalling AdminDown, a session that never came Up, or one of ours going AdminDown
//! leaves BGP alone.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{BfdEvent, describe_transition, is_failure};
use crate::session::Speaker;

/// Follow `events` and take the BGP session of a peer whose BFD session failed down.
/// Runs until the BFD engine is gone.
pub fn link_to_bgp(
    speaker: Speaker,
    mut events: mpsc::UnboundedReceiver<BfdEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let BfdEvent::StateChanged { peer, transition } = ev;
            if !is_failure(&transition) {
                continue;
            }
            let reason = describe_transition(&transition);
            match speaker.bfd_down(peer, &reason) {
                Ok(()) => warn!(%peer, %reason, "BFD down: taking the BGP session down"),
                Err(e) => debug!(%peer, error = %e, "BFD down for a peer without BGP session"),
            }
        }
    })
}
