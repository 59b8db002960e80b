//! BFD on the status page: one row per peer with a BFD profile.

use std::fmt::Write as _;
use std::time::Duration;

use ferrolb_bgp::bfd::SessionStatus;
use serde::Serialize;

use crate::status::{PeerReport, human_duration, table};

/// A peer's BFD session as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BfdReport {
    /// The `bfd-profile`.
    pub profile: String,
    /// `Up`, `Down`, `Init`, `AdminDown`, or `NotConfigured` when the session was refused.
    pub state: String,
    /// The router's state as last heard.
    pub remote_state: String,
    /// RFC 5883 multihop session.
    pub multihop: bool,
    /// Negotiated interval of our packets (ms); none while we may not send.
    pub transmit_interval_ms: Option<u64>,
    /// Interval at which the router's packets are expected (ms).
    pub receive_interval_ms: u64,
    /// Detection time (ms); none until the router was heard.
    pub detect_time_ms: Option<u64>,
    /// The router's detect multiplier.
    pub remote_detect_multiplier: u8,
    /// Seconds Up.
    pub uptime_seconds: Option<u64>,
    /// Why the session last went down.
    pub last_down_reason: Option<String>,
    /// Control packets received / sent.
    pub packets_in: u64,
    /// Control packets sent.
    pub packets_out: u64,
    /// Why the session could not be set up.
    pub error: Option<String>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl BfdReport {
    /// From the engine's status.
    pub fn from_status(profile: &str, s: &SessionStatus) -> BfdReport {
        BfdReport {
            profile: profile.to_string(),
            state: s.state.to_string(),
            remote_state: s.remote_state.to_string(),
            multihop: s.multihop,
            transmit_interval_ms: s.negotiated.transmit_interval.map(millis),
            receive_interval_ms: millis(s.negotiated.receive_interval),
            detect_time_ms: s.negotiated.detect_time.map(millis),
            remote_detect_multiplier: s.negotiated.remote_detect_mult,
            uptime_seconds: s.uptime.map(|u| u.as_secs()),
            last_down_reason: s.last_down_reason.clone(),
            packets_in: s.control_packets_in,
            packets_out: s.control_packets_out,
            error: None,
        }
    }

    /// A session the engine refused.
    pub fn refused(profile: &str, error: &str) -> BfdReport {
        BfdReport {
            profile: profile.to_string(),
            state: "NotConfigured".into(),
            remote_state: "-".into(),
            multihop: false,
            transmit_interval_ms: None,
            receive_interval_ms: 0,
            detect_time_ms: None,
            remote_detect_multiplier: 0,
            uptime_seconds: None,
            last_down_reason: None,
            packets_in: 0,
            packets_out: 0,
            error: Some(error.to_string()),
        }
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| format!("{v}ms"))
}

/// The `BFD:` section of the text page (nothing when no peer has a profile).
pub fn render(o: &mut String, peers: &[PeerReport]) {
    let rows: Vec<[String; 8]> = peers
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| (p, b)))
        .map(|(p, b)| {
            [
                p.peer.clone(),
                format!(
                    "{}{}",
                    b.profile,
                    if b.multihop { " (multihop)" } else { "" }
                ),
                format!("{}/{}", b.state, b.remote_state),
                format!(
                    "{}/{}",
                    ms(b.transmit_interval_ms),
                    ms(Some(b.receive_interval_ms))
                ),
                ms(b.detect_time_ms),
                b.uptime_seconds.map_or("-".into(), human_duration),
                format!("{}/{}", b.packets_out, b.packets_in),
                b.error
                    .clone()
                    .or_else(|| b.last_down_reason.clone())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "BFD:");
    let header = [
        "PEER",
        "PROFILE",
        "STATE/REMOTE",
        "TX/RX",
        "DETECT",
        "UPTIME",
        "SENT/RECEIVED",
        "LAST DOWN",
    ]
    .map(String::from);
    table(o, &header, &rows);
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::IpAddr;

    use ferrolb_bgp::bfd::session::SessionConfig;
    use ferrolb_bgp::bfd::{Diag, Negotiated, SessionState};

    use super::*;
    use crate::status::StatusReport;

    /// An Up session as the engine reports it (shared with the metrics test).
    pub(crate) fn up_status(peer: &str) -> SessionStatus {
        let ms = Duration::from_millis;
        SessionStatus {
            peer: peer.parse::<IpAddr>().unwrap(),
            local_address: None,
            multihop: false,
            state: SessionState::Up,
            remote_state: SessionState::Up,
            local_discriminator: 1,
            remote_discriminator: 2,
            local_diag: Diag::None,
            remote_diag: Diag::None,
            config: SessionConfig::default(),
            negotiated: Negotiated {
                transmit_interval: Some(ms(300)),
                receive_interval: ms(300),
                detect_time: Some(ms(900)),
                remote_detect_mult: 3,
                remote_min_rx: ms(300),
                remote_desired_tx: ms(300),
                remote_min_echo_rx: Duration::ZERO,
                polling: false,
            },
            uptime: Some(Duration::from_secs(65)),
            last_down_reason: Some("control detection time expired".into()),
            control_packets_in: 40,
            control_packets_out: 42,
            session_up_events: 2,
            session_down_events: 1,
            dropped: 0,
        }
    }

    fn peer(addr: &str, bfd: Option<BfdReport>) -> PeerReport {
        PeerReport {
            peer: format!("{addr}:179"),
            remote_as: 64512,
            local_as: 64522,
            state: "Established".into(),
            uptime_seconds: Some(60),
            local_address: None,
            prefixes_sent: 1,
            prefixes_received: 0,
            prefixes_desired: 1,
            updates_sent: 2,
            updates_received: 1,
            last_error: None,
            max_prefixes: None,
            max_prefix_ceases: 0,
            bfd,
        }
    }

    #[test]
    fn status_page_shows_state_intervals_detect_time_uptime_and_last_down() {
        let mut r = StatusReport::default();
        assert!(!r.render().contains("BFD:"), "no section without profiles");
        r.peers = vec![
            peer(
                "172.17.0.1",
                Some(BfdReport::from_status("fast", &up_status("172.17.0.1"))),
            ),
            peer(
                "172.17.0.2",
                Some(BfdReport::refused("slow", "binding the receiver: in use")),
            ),
            peer("172.17.0.3", None),
        ];
        let text = r.render();
        for want in [
            "BFD:",
            "PEER            PROFILE  STATE/REMOTE",
            "172.17.0.1:179  fast     Up/Up",
            "300ms/300ms",
            "900ms",
            "1m5s",
            "42/40",
            "control detection time expired",
            "172.17.0.2:179  slow     NotConfigured/-",
            "binding the receiver: in use",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(text.matches("172.17.0.3:179").count(), 1, "only in Peers");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["peers"][0]["bfd"]["detect_time_ms"], 900);
        assert_eq!(json["peers"][0]["bfd"]["state"], "Up");
        assert_eq!(json["peers"][2]["bfd"], serde_json::Value::Null);
    }
}
