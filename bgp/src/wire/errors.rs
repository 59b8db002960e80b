//! Encode and decode errors, and the RFC 7606 actions the decoder took.

use ipnet::IpNet;

use super::types::{NextHop, Notification};

/// NOTIFICATION error codes and subcodes (RFC 4271 section 4.5, RFC 4486, RFC 6608):
/// the one set used by the codec and the FSM.
pub mod codes {
    /// Message Header Error.
    pub const HEADER: u8 = 1;
    /// 1/1 Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// 1/2 Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// 1/3 Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// 2/1 Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// 2/2 Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// 2/3 Bad BGP Identifier.
    pub const BAD_BGP_ID: u8 = 3;
    /// 2/6 Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// 3/1 Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// 3/2 Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    /// 3/9 Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// 3/10 Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// 5/1 Receive Unexpected Message in OpenSent State (RFC 6608).
    pub const FSM_IN_OPEN_SENT: u8 = 1;
    /// 5/2 Receive Unexpected Message in OpenConfirm State (RFC 6608).
    pub const FSM_IN_OPEN_CONFIRM: u8 = 2;
    /// 5/3 Receive Unexpected Message in Established State (RFC 6608).
    pub const FSM_IN_ESTABLISHED: u8 = 3;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// 6/1 Maximum Number of Prefixes Reached (RFC 4486).
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    /// 6/2 Administrative Shutdown (RFC 4486, with an RFC 8203 message).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// 6/3 Peer De-configured (RFC 4486).
    pub const PEER_DECONFIGURED: u8 = 3;
    /// 6/4 Administrative Reset (RFC 4486, with an RFC 8203 message).
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// 6/7 Connection Collision Resolution (RFC 4486).
    pub const CONNECTION_COLLISION: u8 = 7;
}

/// Why a message could not be encoded. Nothing is sent in that case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the 4096-byte limit (RFC 4271; no RFC 8654 here).
    #[error("message of {len} bytes exceeds the {limit}-byte BGP limit")]
    TooLong {
        /// Computed message length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The path attributes alone leave no room for a single prefix in 4096 bytes.
    #[error("path attributes take {len} bytes; no room for NLRI in one message")]
    AttributesTooLarge {
        /// Bytes the header and attributes take.
        len: usize,
    },
    /// A prefix whose family does not fit its next hop (e.g. IPv4 prefix, IPv6 next hop).
    #[error("prefix {prefix} cannot be announced with next hop {next_hop:?}")]
    NextHopFamily {
        /// The prefix.
        prefix: IpNet,
        /// Its next hop.
        next_hop: NextHop,
    },
    /// Announced prefixes without attributes or next hop.
    #[error("UPDATE announces prefixes but has no {0}")]
    Missing(&'static str),
    /// A prefix that is not unicast (netgauze refuses to encode it).
    #[error("prefix {0} is not a unicast prefix")]
    NotUnicast(IpNet),
    /// The codec (netgauze) refused the message.
    #[error("codec error: {0}")]
    Codec(String),
}

/// A received message that must end the session: send `notification`, then reset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {}/{})", notification.code, notification.subcode)]
pub struct DecodeError {
    /// What to send to the peer before closing.
    pub notification: Notification,
    /// Human-readable cause, for logs.
    pub reason: String,
}

impl DecodeError {
    /// Error with code/subcode/data.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> Self {
        DecodeError {
            notification: Notification {
                code,
                subcode,
                data,
            },
            reason: reason.into(),
        }
    }
}

/// A non-fatal decision the decoder took on a received UPDATE (RFC 7606), reported so
/// the session can log it. The message in [`super::Decoded`] already reflects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// The UPDATE's announced prefixes were moved to `withdrawn` (RFC 7606 section 2).
    TreatAsWithdraw {
        /// Attribute type code at fault (`None`: a missing mandatory attribute).
        type_code: Option<u8>,
        /// Cause.
        reason: String,
    },
    /// One attribute was dropped, the rest of the UPDATE used (RFC 7606 section 2).
    AttributeDiscard {
        /// Attribute type code.
        type_code: u8,
        /// Cause.
        reason: String,
    },
    /// Something we do not handle was ignored (e.g. MP_REACH_NLRI for another family,
    /// a ROUTE-REFRESH for a family we do not support).
    Ignored {
        /// Cause.
        reason: String,
    },
}
