//! The FSM's vocabulary: its states, connections and timers, the [`Event`]s it takes and
//! the [`Action`]s it returns (apart from the state machine itself, which is `mod.rs`).

use std::fmt;
use std::time::Duration;

use super::codes;
use super::shutdown::decode_shutdown_message;
use crate::wire::{AddressFamily, Message, Notification, SessionContext, Update};

/// RFC 4271 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Stopped: not connecting, refusing connections.
    Idle,
    /// An outgoing TCP connection is being set up.
    Connect,
    /// Waiting for the peer to connect to us (or for the next connect retry).
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Session up: UPDATEs flow.
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        };
        f.write_str(s)
    }
}

/// Which of the (at most two) TCP connections of a peer an event or action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnId {
    /// The connection we initiated.
    Outbound,
    /// The connection the peer initiated (accepted on our listener).
    Inbound,
}

impl ConnId {
    /// The connection's slot in a two-entry table (outbound 0, inbound 1).
    pub(crate) fn index(self) -> usize {
        match self {
            ConnId::Outbound => 0,
            ConnId::Inbound => 1,
        }
    }

    pub(super) fn other(self) -> ConnId {
        match self {
            ConnId::Outbound => ConnId::Inbound,
            ConnId::Inbound => ConnId::Outbound,
        }
    }
}

/// The FSM's timers. Hold and keepalive timers belong to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Connect-retry / idle back-off timer; also bounds an outgoing connect attempt.
    ConnectRetry,
    /// Hold timer of a connection.
    Hold(ConnId),
    /// Keepalive timer of a connection.
    Keepalive(ConnId),
}

/// Why a session went down (or a connection attempt was abandoned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Our hold timer expired: nothing was received for the hold time.
    HoldTimerExpired,
    /// The peer sent us a NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent a NOTIFICATION because of an error on our side of the check
    /// (malformed message, bad OPEN, FSM error).
    NotificationSent(Notification),
    /// The TCP connection was closed or failed.
    TcpClosed,
    /// Stopped by configuration / operator (Cease sent if a session was up).
    Stopped,
    /// Reset by configuration change (Cease 6/4 sent).
    AdminReset,
    /// The peer's BFD session failed (Cease 6/10 sent); the text says how.
    BfdDown(String),
    /// The peer sent more prefixes than configured (Cease 6/1 sent, RFC 4486).
    MaxPrefixes {
        /// The configured limit.
        limit: u32,
    },
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived(n) => {
                write!(f, "notification received {}/{}", n.code, n.subcode)?;
                if n.code == codes::CEASE
                    && let Some(msg) = decode_shutdown_message(&n.data)
                {
                    write!(f, " ({msg:?})")?;
                }
                Ok(())
            }
            DownReason::NotificationSent(n) => {
                write!(f, "notification sent {}/{}", n.code, n.subcode)
            }
            DownReason::TcpClosed => f.write_str("tcp connection closed"),
            DownReason::Stopped => f.write_str("stopped"),
            DownReason::AdminReset => f.write_str("administrative reset"),
            DownReason::BfdDown(why) => write!(f, "BFD down: {why}"),
            DownReason::MaxPrefixes { limit } => {
                write!(f, "maximum number of prefixes reached (limit {limit})")
            }
        }
    }
}

/// Inputs to the FSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the peer (connect actively unless configured passive).
    ManualStart,
    /// Stop the peer: Cease 6/2 with an optional RFC 8203 shutdown message.
    ManualStop {
        /// Shutdown communication sent to the peer.
        reason: Option<String>,
    },
    /// The peer was removed from configuration: Cease 6/3, then stop.
    Deconfigured,
    /// A configuration change needs a new session: Cease 6/4, then reconnect.
    AdminReset {
        /// Shutdown communication sent to the peer.
        reason: Option<String>,
    },
    /// A TCP connection is up (our connect succeeded, or we accepted one).
    TcpConnected(ConnId),
    /// Our outgoing connect attempt failed.
    TcpConnectFailed,
    /// A connection was closed by the peer or failed.
    TcpClosed(ConnId),
    /// A decoded message arrived on a connection.
    Message(ConnId, Message),
    /// A message could not be decoded; the codec's NOTIFICATION goes to the peer.
    DecodeError(ConnId, Notification),
    /// A timer expired.
    TimerExpired(Timer),
    /// The peer's BFD session failed (RFC 5882): close every connection with Cease 6/10
    /// and reconnect after the back-off, as after any other session failure.
    BfdDown {
        /// How BFD noticed (for the log and the peer's last error).
        detail: String,
    },
    /// The Established session's peer sent more than `limit` prefixes of `family`:
    /// Cease 6/1 (RFC 4486), and no new session (either direction) for `restart_after`.
    MaxPrefixesExceeded {
        /// The family whose prefixes overflowed.
        family: AddressFamily,
        /// The configured limit.
        limit: u32,
        /// How long to wait before a new session.
        restart_after: Duration,
    },
}

/// Outputs of the FSM, to be carried out in order by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open an outgoing TCP connection (reported back as `TcpConnected(Outbound)` or
    /// `TcpConnectFailed`).
    Connect,
    /// Write a message on a connection.
    Send(ConnId, Message),
    /// Flush pending writes and close a connection (or abandon a connect attempt).
    CloseTcp(ConnId),
    /// (Re)start a timer.
    StartTimer(Timer, Duration),
    /// Stop a timer.
    StopTimer(Timer),
    /// The peer's state changed.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session on `conn` reached Established with these negotiated parameters.
    /// The driver now sends its full table and End-of-RIB markers.
    SessionEstablished(ConnId, SessionContext),
    /// An Established session went down.
    SessionDown(DownReason),
    /// A connection attempt or a not-yet-established session failed (for logging and
    /// the peer's "last error").
    ConnectionFailed(DownReason),
    /// An UPDATE arrived on the Established session.
    DeliverUpdate(Update),
    /// The peer sent End-of-RIB for a family.
    EndOfRibReceived(AddressFamily),
    /// The peer asked for our routes of a family again (RFC 2918).
    RouteRefreshRequested(AddressFamily),
}
