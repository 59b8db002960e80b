//! BFD Control packets (RFC 5880 section 4.1): the 24-byte mandatory section, encoded and
//! decoded with the session-independent reception checks of section 6.8.6.
//!
//! Decoding never panics: every malformed packet comes back as a [`PacketError`] whose
//! [`PacketError::kind`] names a drop counter. Authentication (the A bit) is not
//! implemented, so an authenticated packet is refused as section 6.8.6 demands of a session
//! without authentication. Diagnostic codes this crate has no name for are kept as
//! [`Diag::Other`], so every valid packet re-encodes to the same bytes.

use std::fmt;
use std::time::Duration;

/// The protocol version this codec speaks.
pub const VERSION: u8 = 1;
/// Length of a Control packet without an authentication section.
pub const LEN: usize = 24;
/// Smallest valid length of a packet with the A bit set (section 6.8.6).
const AUTH_MIN_LEN: usize = 26;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Session state as carried in the `Sta` field (section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionState {
    /// Administratively down: held down on purpose, not a failure.
    AdminDown,
    /// Down (or not yet up).
    Down,
    /// The remote system's Down was seen: the three-way handshake is half done.
    Init,
    /// Both sides see each other.
    Up,
}

impl SessionState {
    fn from_bits(bits: u8) -> SessionState {
        match bits & 0x03 {
            0 => SessionState::AdminDown,
            1 => SessionState::Down,
            2 => SessionState::Init,
            _ => SessionState::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            SessionState::AdminDown => 0,
            SessionState::Down => 1,
            SessionState::Init => 2,
            SessionState::Up => 3,
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::AdminDown => "AdminDown",
            SessionState::Down => "Down",
            SessionState::Init => "Init",
            SessionState::Up => "Up",
        })
    }
}

/// Diagnostic code (section 4.1): why the sender's session last changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0: no diagnostic.
    None,
    /// 1: Control Detection Time Expired.
    ControlDetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFunctionFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborSignaledDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdministrativelyDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// Any other value of the 5-bit field (kept so the packet re-encodes unchanged).
    Other(u8),
}

impl Diag {
    /// The code of a 5-bit field value.
    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Other(other),
        }
    }

    /// The field value.
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(c) => c & 0x1f,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("no diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Other(c) => write!(f, "diagnostic {c}"),
        }
    }
}

/// One Control packet (mandatory section). Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Diagnostic.
    pub diag: Diag,
    /// The sender's session state.
    pub state: SessionState,
    /// Poll (P): the sender asks for a Final.
    pub poll: bool,
    /// Final (F): the answer to a Poll.
    pub final_: bool,
    /// Control Plane Independent (C).
    pub cpi: bool,
    /// Demand (D).
    pub demand: bool,
    /// Detect Mult: the sender's detection multiplier.
    pub detect_mult: u8,
    /// My Discriminator (the sender's).
    pub my_discriminator: u32,
    /// Your Discriminator (the receiver's, as the sender knows it; 0 if unknown).
    pub your_discriminator: u32,
    /// Desired Min TX Interval (µs).
    pub desired_min_tx: u32,
    /// Required Min RX Interval (µs).
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval (µs); 0 means the sender loops back no Echo packets.
    pub required_min_echo_rx: u32,
}

/// Why a received datagram is not a usable Control packet (section 6.8.6). Each one is
/// dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the mandatory section.
    #[error("{0} bytes is shorter than a BFD Control packet (24)")]
    Truncated(usize),
    /// Version is not 1.
    #[error("version {0} (only 1 is defined)")]
    BadVersion(u8),
    /// The Length field is below the minimum (24, or 26 with the A bit).
    #[error("length field {0} is below the minimum")]
    LengthTooSmall(u8),
    /// The Length field is larger than the datagram.
    #[error("length field {field} is larger than the {payload}-byte datagram")]
    LengthBeyondPayload {
        /// The Length field.
        field: u8,
        /// Bytes received.
        payload: usize,
    },
    /// Detect Mult is 0.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The Multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is 0.
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    /// Your Discriminator is 0 although the sender says Init or Up.
    #[error("your discriminator 0 in state {0}")]
    ZeroYourDiscriminator(SessionState),
    /// The A bit is set; authentication is not implemented (and never configured).
    #[error("authentication present but not configured")]
    AuthNotConfigured,
    /// Poll and Final together (section 6.5 forbids it).
    #[error("poll and final bits both set")]
    PollAndFinal,
}

impl PacketError {
    /// A short name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PacketError::Truncated(_) => "truncated",
            PacketError::BadVersion(_) => "bad_version",
            PacketError::LengthTooSmall(_) | PacketError::LengthBeyondPayload { .. } => {
                "bad_length"
            }
            PacketError::ZeroDetectMult => "zero_detect_mult",
            PacketError::Multipoint => "multipoint",
            PacketError::ZeroMyDiscriminator => "zero_my_discriminator",
            PacketError::ZeroYourDiscriminator(_) => "zero_your_discriminator",
            PacketError::AuthNotConfigured => "auth",
            PacketError::PollAndFinal => "poll_and_final",
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ControlPacket {
    /// Decode and check one datagram's payload. The checks are those of section 6.8.6
    /// that need no session, in the RFC's order.
    pub fn decode(buf: &[u8]) -> Result<ControlPacket, PacketError> {
        if buf.len() < LEN {
            return Err(PacketError::Truncated(buf.len()));
        }
        let version = buf[0] >> 5;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let flags = buf[1];
        let length = buf[3];
        let auth = flags & FLAG_AUTH != 0;
        let min = if auth { AUTH_MIN_LEN } else { LEN };
        if usize::from(length) < min {
            return Err(PacketError::LengthTooSmall(length));
        }
        if usize::from(length) > buf.len() {
            return Err(PacketError::LengthBeyondPayload {
                field: length,
                payload: buf.len(),
            });
        }
        let detect_mult = buf[2];
        if detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if flags & FLAG_MULTIPOINT != 0 {
            return Err(PacketError::Multipoint);
        }
        let my_discriminator = be32(buf, 4);
        if my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        let state = SessionState::from_bits(flags >> 6);
        let your_discriminator = be32(buf, 8);
        if your_discriminator == 0 && matches!(state, SessionState::Init | SessionState::Up) {
            return Err(PacketError::ZeroYourDiscriminator(state));
        }
        if auth {
            return Err(PacketError::AuthNotConfigured);
        }
        let poll = flags & FLAG_POLL != 0;
        let final_ = flags & FLAG_FINAL != 0;
        if poll && final_ {
            return Err(PacketError::PollAndFinal);
        }
        Ok(ControlPacket {
            diag: Diag::from_code(buf[0]),
            state,
            poll,
            final_,
            cpi: flags & FLAG_CPI != 0,
            demand: flags & FLAG_DEMAND != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: be32(buf, 12),
            required_min_rx: be32(buf, 16),
            required_min_echo_rx: be32(buf, 20),
        })
    }

    /// The packet's 24 bytes (no authentication section).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | self.diag.code();
        let mut flags = self.state.bits() << 6;
        for (on, bit) in [
            (self.poll, FLAG_POLL),
            (self.final_, FLAG_FINAL),
            (self.cpi, FLAG_CPI),
            (self.demand, FLAG_DEMAND),
        ] {
            if on {
                flags |= bit;
            }
        }
        b[1] = flags;
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        b
    }
}

/// A duration as a wire interval (µs), saturating at `u32::MAX`.
pub fn to_micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A wire interval (µs) as a duration.
pub fn from_micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diag::None,
            state: SessionState::Up,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x5549_1be8,
            your_discriminator: 0x9294_4b04,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let p = sample();
        let b = p.encode();
        assert_eq!(b[0], 0x20, "version 1, diag 0");
        assert_eq!(b[1], 0xe0, "Up + P");
        assert_eq!(b[3], 24);
        assert_eq!(ControlPacket::decode(&b), Ok(p));
    }

    #[test]
    fn unknown_diag_is_kept() {
        let mut b = sample().encode();
        b[0] = 0x20 | 17;
        let p = ControlPacket::decode(&b).expect("valid");
        assert_eq!(p.diag, Diag::Other(17));
        assert_eq!(p.encode(), b);
    }
}
