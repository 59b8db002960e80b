//! What the FSM knows of one peer's configuration, and the checks and negotiation of the
//! OPEN exchange that depend on it (RFC 4271 sections 4.2 and 6.2).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::codes;
use crate::wire::{AddressFamily, Capability, Notification, Open};

/// Static parameters of one peer, as far as the FSM cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    /// Our AS.
    pub local_as: u32,
    /// The AS the peer must announce.
    pub remote_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we propose (0, or >= 3).
    pub hold_time: u16,
    /// Configured keepalive interval; `None` means hold time / 3.
    pub keepalive: Option<u16>,
    /// Families we offer.
    pub families: Vec<AddressFamily>,
    /// Graceful-restart capability with this restart time, only when configured.
    pub graceful_restart: Option<u16>,
    /// Never initiate connections; wait for the peer.
    pub passive: bool,
}

impl FsmConfig {
    /// The OPEN this configuration sends.
    pub fn local_open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.local_as));
        if let Some(restart_time) = self.graceful_restart {
            // F (forwarding state preserved) is set for every family: the routes we
            // announce point at this node, whose forwarding (kube-proxy, the kernel) does
            // not depend on the BGP process, so it survives a restart of the speaker. R
            // (restarted) stays clear: nothing tells a new process reliably that its
            // predecessor stopped gracefully, and helpers keep our routes on F alone.
            capabilities.push(Capability::GracefulRestart {
                restarting: false,
                restart_time,
                families: self.families.iter().map(|f| (*f, true)).collect(),
            });
        }
        Open {
            version: 4,
            my_as: self.local_as,
            hold_time: self.hold_time,
            bgp_id: self.router_id,
            capabilities,
        }
    }
}

/// Check a received OPEN against our configuration (RFC 4271 section 6.2).
pub fn validate_open(config: &FsmConfig, open: &Open) -> Result<(), Notification> {
    let err = |subcode: u8, data: Vec<u8>| Notification {
        code: codes::OPEN,
        subcode,
        data,
    };
    if open.version != 4 {
        // Data: the largest version we support, as two octets.
        return Err(err(codes::UNSUPPORTED_VERSION, vec![0, 4]));
    }
    let peer_as = open.four_octet_as().unwrap_or(open.my_as);
    if peer_as != config.remote_as {
        return Err(err(codes::BAD_PEER_AS, Vec::new()));
    }
    let ibgp = config.local_as == config.remote_as;
    if open.bgp_id.is_unspecified() || (ibgp && open.bgp_id == config.router_id) {
        return Err(err(codes::BAD_BGP_ID, Vec::new()));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(err(codes::UNACCEPTABLE_HOLD_TIME, Vec::new()));
    }
    Ok(())
}

/// Negotiated hold time and keepalive interval (`None`: timers disabled).
pub fn negotiate_timers(config: &FsmConfig, peer_hold: u16) -> Option<(Duration, Duration)> {
    let hold = config.hold_time.min(peer_hold);
    if hold == 0 {
        return None;
    }
    let third = (hold / 3).max(1);
    let keepalive = config.keepalive.map_or(third, |k| k.clamp(1, third));
    Some((
        Duration::from_secs(hold.into()),
        Duration::from_secs(keepalive.into()),
    ))
}
