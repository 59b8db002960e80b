//! BFD metrics with the names of MetalLB's FRR mode (`frr-metrics`: `metallb_bfd_*`,
//! label `peer` = the peer's address), read from the engine when `/metrics` is scraped.
//!
//! MetalLB exports its packet and event counts as counters *without* a `_total` suffix; in
//! OpenMetrics (what this registry writes) a counter must end in `_total`, so these are
//! exported as gauges holding the running totals: the series names are exactly MetalLB's and
//! `rate()` works on them as before. `metallb_bfd_echo_packet_*` stay 0 (ferrolb sends and
//! loops back no Echo packets itself); FRR's `zebra_notifications` has no equivalent and
//! is not exported. `ferrolb_bfd_dropped_packets{reason}` counts packets dropped before
//! reaching a session.

use std::collections::BTreeSet;
use std::sync::Mutex;

use ferrolb_bgp::bfd::{DropStats, SessionState, SessionStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `peer` label: the peer's address (as FRR's `show bfd peers`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct BfdPeerLabel {
    /// The address.
    pub peer: String,
}

/// `reason` label of dropped packets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DropLabel {
    /// `bad_ttl`, `unknown_peer`, ...
    pub reason: String,
}

type PerPeer = Family<BfdPeerLabel, Gauge>;

/// The BFD families.
#[derive(Default)]
pub struct BfdMetrics {
    session_up: PerPeer,
    control_in: PerPeer,
    control_out: PerPeer,
    echo_in: PerPeer,
    echo_out: PerPeer,
    up_events: PerPeer,
    down_events: PerPeer,
    dropped: Family<DropLabel, Gauge>,
    peers: Mutex<BTreeSet<BfdPeerLabel>>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl BfdMetrics {
    /// Register every family in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        for (name, help, f) in [
            (
                "metallb_bfd_session_up",
                "BFD session state (1 is up, 0 is down)",
                &self.session_up,
            ),
            (
                "metallb_bfd_control_packet_input",
                "Number of received BFD control packets",
                &self.control_in,
            ),
            (
                "metallb_bfd_control_packet_output",
                "Number of sent BFD control packets",
                &self.control_out,
            ),
            (
                "metallb_bfd_echo_packet_input",
                "Number of received BFD echo packets",
                &self.echo_in,
            ),
            (
                "metallb_bfd_echo_packet_output",
                "Number of sent BFD echo packets",
                &self.echo_out,
            ),
            (
                "metallb_bfd_session_up_events",
                "Number of BFD session up events",
                &self.up_events,
            ),
            (
                "metallb_bfd_session_down_events",
                "Number of BFD session down events",
                &self.down_events,
            ),
        ] {
            registry.register(name, help, f.clone());
        }
        registry.register(
            "ferrolb_bfd_dropped_packets",
            "BFD packets dropped before reaching a session, by reason",
            self.dropped.clone(),
        );
    }

    /// Bring the series up to date; sessions gone since the last call lose theirs.
    pub fn refresh(&self, sessions: &[SessionStatus], drops: &DropStats) {
        let mut seen = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = BTreeSet::new();
        for s in sessions {
            let l = BfdPeerLabel {
                peer: s.peer.to_string(),
            };
            self.session_up
                .get_or_create(&l)
                .set(i64::from(s.state == SessionState::Up));
            self.control_in
                .get_or_create(&l)
                .set(to_i64(s.control_packets_in));
            self.control_out
                .get_or_create(&l)
                .set(to_i64(s.control_packets_out));
            self.echo_in.get_or_create(&l).set(0);
            self.echo_out.get_or_create(&l).set(0);
            self.up_events
                .get_or_create(&l)
                .set(to_i64(s.session_up_events));
            self.down_events
                .get_or_create(&l)
                .set(to_i64(s.session_down_events));
            now.insert(l);
        }
        for gone in seen.difference(&now) {
            for f in [
                &self.session_up,
                &self.control_in,
                &self.control_out,
                &self.echo_in,
                &self.echo_out,
                &self.up_events,
                &self.down_events,
            ] {
                f.remove(gone);
            }
        }
        *seen = now;
        for (reason, n) in drops {
            self.dropped
                .get_or_create(&DropLabel {
                    reason: (*reason).to_string(),
                })
                .set(to_i64(*n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::report::tests::up_status;

    #[test]
    fn names_and_values_match_metallb_frr_mode() {
        let m = crate::metrics::Metrics::new();
        let mut down = up_status("172.17.0.2");
        down.state = SessionState::Down;
        let drops = DropStats::from([("bad_ttl", 3)]);
        m.bfd
            .refresh(&[up_status("172.17.0.1"), down.clone()], &drops);
        let text = m.encode();
        for want in [
            "metallb_bfd_session_up{peer=\"172.17.0.1\"} 1",
            "metallb_bfd_session_up{peer=\"172.17.0.2\"} 0",
            "metallb_bfd_control_packet_input{peer=\"172.17.0.1\"} 40",
            "metallb_bfd_control_packet_output{peer=\"172.17.0.1\"} 42",
            "metallb_bfd_echo_packet_input{peer=\"172.17.0.1\"} 0",
            "metallb_bfd_echo_packet_output{peer=\"172.17.0.1\"} 0",
            "metallb_bfd_session_up_events{peer=\"172.17.0.1\"} 2",
            "metallb_bfd_session_down_events{peer=\"172.17.0.1\"} 1",
            "ferrolb_bfd_dropped_packets{reason=\"bad_ttl\"} 3",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("metallb_bfd_control_packet_input_total"));
        // A removed session loses its series.
        m.bfd.refresh(&[down], &drops);
        assert!(!m.encode().contains("172.17.0.1"));
    }
}
