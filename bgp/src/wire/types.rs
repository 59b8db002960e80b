//! ferrolb's own BGP message types.
//!
//! These are what the FSM, the RIBs and the session driver see. The byte layout is
//! produced by `netgauze-bgp-pkt` (see `super::codec`); keeping our own types means the
//! codec crate can be swapped without touching the rest of the speaker, and lets the
//! encoder decide AS_PATH width from the *negotiated* session (see [`SessionContext`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// `AS_TRANS` (RFC 6793): stands in for a 4-octet AS number in 2-octet fields.
pub const AS_TRANS: u16 = 23456;

/// Maximum BGP message size without RFC 8654 extended messages.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// An address family this speaker handles (AFI/SAFI pairs; unicast only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
}

impl AddressFamily {
    /// The family a prefix belongs to.
    pub fn of(prefix: &IpNet) -> Self {
        match prefix {
            IpNet::V4(_) => AddressFamily::Ipv4Unicast,
            IpNet::V6(_) => AddressFamily::Ipv6Unicast,
        }
    }
}

/// An OPEN capability (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760 multiprotocol extensions.
    Multiprotocol(AddressFamily),
    /// RFC 2918 route refresh.
    RouteRefresh,
    /// RFC 6793 4-octet AS number support, carrying our real AS.
    FourOctetAs(u32),
    /// RFC 4724 graceful restart.
    GracefulRestart {
        /// The R bit: the sender has restarted.
        restarting: bool,
        /// Seconds the peer should keep our routes after the session drops.
        restart_time: u16,
        /// Families with their "forwarding state preserved" bit.
        families: Vec<(AddressFamily, bool)>,
    },
    /// Anything we do not interpret: kept so it can be logged; never re-sent.
    Unknown {
        /// Capability code.
        code: u8,
        /// Raw value bytes.
        value: Vec<u8>,
    },
}

/// An OPEN message. `my_as` is always the *real* AS number; the encoder writes
/// `AS_TRANS` into the 2-octet field when it does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// BGP version; always 4.
    pub version: u8,
    /// The sender's AS (from the 4-octet capability if present, else the 2-octet field).
    pub my_as: u32,
    /// Proposed hold time in seconds (0, or >= 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order sent.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The 4-octet AS the peer announced in its capability, if any.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The graceful restart capability's restart time, if the OPEN carries one.
    pub fn graceful_restart(&self) -> Option<u16> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart { restart_time, .. } => Some(*restart_time),
            _ => None,
        })
    }

    /// The graceful restart capability of this OPEN as [`PeerRestart`].
    pub fn peer_restart(&self) -> Option<PeerRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart {
                restarting,
                restart_time,
                families,
            } => Some(PeerRestart {
                restart_time: *restart_time,
                restarted: *restarting,
                forwarding: families
                    .iter()
                    .filter(|(_, fwd)| *fwd)
                    .map(|(f, _)| *f)
                    .collect(),
            }),
            _ => None,
        })
    }

    /// Whether the capability list contains `cap`-like entries (matched by kind).
    pub fn supports_route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// The multiprotocol families offered (IPv4 unicast implied when none are listed).
    pub fn families(&self) -> Vec<AddressFamily> {
        let fams: Vec<AddressFamily> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if fams.is_empty() {
            vec![AddressFamily::Ipv4Unicast]
        } else {
            fams
        }
    }
}

/// What both sides agreed on in their OPENs; the encoder and decoder need it.
///
/// `Default` (same as [`SessionContext::default_for_open`]) is the context to use
/// before the OPENs are exchanged: 2-octet AS, IPv4 unicast only, AS 0 on both sides.
/// OPEN, KEEPALIVE and NOTIFICATION encoding/decoding do not depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH is 4 octets wide.
    pub four_octet_as: bool,
    /// Families both sides offered.
    pub families: Vec<AddressFamily>,
    /// Both sides support ROUTE-REFRESH.
    pub route_refresh: bool,
    /// Our AS and the peer's AS (eBGP when they differ).
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: u32,
    /// Both sides sent the graceful restart capability (RFC 4724), with what the peer
    /// said: a session that ends without a NOTIFICATION leaves each side's routes on the
    /// other, marked stale, for the restart time of the side that went away.
    pub graceful_restart: Option<PeerRestart>,
}

/// The peer's graceful restart capability, as negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRestart {
    /// How long (seconds) the peer asks us to keep its routes after its session drops.
    pub restart_time: u16,
    /// The R bit: the peer has just restarted.
    pub restarted: bool,
    /// The families for which the peer kept its forwarding state (F bit set).
    pub forwarding: Vec<AddressFamily>,
}

impl Default for SessionContext {
    fn default() -> Self {
        Self::default_for_open()
    }
}

impl SessionContext {
    /// The context before any OPEN was exchanged (see the type's doc comment).
    pub fn default_for_open() -> Self {
        SessionContext {
            four_octet_as: false,
            families: vec![AddressFamily::Ipv4Unicast],
            route_refresh: false,
            local_as: 0,
            peer_as: 0,
            graceful_restart: None,
        }
    }

    /// The result of our OPEN (`local`) and the peer's (`remote`): 4-octet AS only when
    /// both sent the capability (RFC 6793), the families both offered (RFC 4760; IPv4
    /// unicast is implied by an OPEN without multiprotocol capabilities), route refresh
    /// when both support it. The AS numbers are the real ones (`Open::my_as`).
    pub fn negotiate(local: &Open, remote: &Open) -> SessionContext {
        let remote_families = remote.families();
        let families = local
            .families()
            .into_iter()
            .filter(|f| remote_families.contains(f))
            .collect();
        SessionContext {
            four_octet_as: local.four_octet_as().is_some() && remote.four_octet_as().is_some(),
            families,
            route_refresh: local.supports_route_refresh() && remote.supports_route_refresh(),
            local_as: local.my_as,
            peer_as: remote.my_as,
            graceful_restart: local.graceful_restart().and_then(|_| remote.peer_restart()),
        }
    }

    /// True when local and peer AS are equal.
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }
}

/// ORIGIN attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Origin {
    /// IGP (0): what MetalLB sends for service routes.
    #[default]
    Igp,
    /// EGP (1).
    Egp,
    /// INCOMPLETE (2).
    Incomplete,
}

/// One AS_PATH segment, always held with 4-octet AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsSegment {
    /// AS_SEQUENCE.
    Sequence(Vec<u32>),
    /// AS_SET.
    Set(Vec<u32>),
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator.
    pub global: u32,
    /// Local data part 1.
    pub local1: u32,
    /// Local data part 2.
    pub local2: u32,
}

/// Subtype of the link bandwidth extended community (draft-ietf-idr-link-bandwidth) in
/// the two-octet AS specific types 0x00 (transitive) and 0x40 (non-transitive).
pub const LINK_BANDWIDTH_SUBTYPE: u8 = 0x04;

/// RFC 4360 2: the bit of the type octet that marks a non-transitive community.
const NON_TRANSITIVE_BIT: u8 = 0x40;

/// An extended community (RFC 4360): eight octets, a type (high and, for the extended
/// types, low octet) and a value. The link bandwidth community gets its own variant;
/// every other one is kept as its eight octets, so any community survives a decode and
/// re-encode unchanged. Build from bytes with [`ExtendedCommunity::from_bytes`], which
/// always picks the specific variant where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtendedCommunity {
    /// Link bandwidth: two-octet AS specific, subtype 0x04.
    LinkBandwidth(LinkBandwidth),
    /// Any other extended community, as sent on the wire.
    Other([u8; 8]),
}

impl ExtendedCommunity {
    /// The community encoded by `bytes`.
    pub fn from_bytes(bytes: [u8; 8]) -> ExtendedCommunity {
        let [ty, sub, a0, a1, v0, v1, v2, v3] = bytes;
        if sub == LINK_BANDWIDTH_SUBTYPE && (ty == 0x00 || ty == NON_TRANSITIVE_BIT) {
            return ExtendedCommunity::LinkBandwidth(LinkBandwidth {
                asn: u16::from_be_bytes([a0, a1]),
                bandwidth_bits: u32::from_be_bytes([v0, v1, v2, v3]),
                transitive: ty == 0x00,
            });
        }
        ExtendedCommunity::Other(bytes)
    }

    /// The eight octets on the wire.
    pub fn to_bytes(&self) -> [u8; 8] {
        match self {
            ExtendedCommunity::LinkBandwidth(lb) => {
                let ty = if lb.transitive {
                    0x00
                } else {
                    NON_TRANSITIVE_BIT
                };
                let [a0, a1] = lb.asn.to_be_bytes();
                let [v0, v1, v2, v3] = lb.bandwidth_bits.to_be_bytes();
                [ty, LINK_BANDWIDTH_SUBTYPE, a0, a1, v0, v1, v2, v3]
            }
            ExtendedCommunity::Other(bytes) => *bytes,
        }
    }

    /// Whether the community may cross an AS boundary (the type's T bit is clear).
    pub fn is_transitive(&self) -> bool {
        self.to_bytes()[0] & NON_TRANSITIVE_BIT == 0
    }

    /// The link bandwidth, if this is that community.
    pub fn link_bandwidth(&self) -> Option<LinkBandwidth> {
        match self {
            ExtendedCommunity::LinkBandwidth(lb) => Some(*lb),
            ExtendedCommunity::Other(_) => None,
        }
    }
}

/// The link bandwidth extended community (draft-ietf-idr-link-bandwidth): the AS that
/// set it and a bandwidth in **bytes per second** as an IEEE 754 single-precision float.
/// FRR's `set extcommunity bandwidth N` (N in Mbit/s) sends N * 125,000 bytes/s, and
/// `bgp bestpath bandwidth` weighs ECMP paths by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkBandwidth {
    /// Global administrator: a two-octet AS (AS_TRANS for a 4-octet one).
    pub asn: u16,
    /// The float's bits, so that the type is `Eq`, `Ord` and `Hash` and a received value
    /// round-trips bit for bit.
    bandwidth_bits: u32,
    /// Type 0x00 (transitive) rather than 0x40 (non-transitive).
    pub transitive: bool,
}

impl LinkBandwidth {
    /// A link bandwidth of `bytes_per_second`; `None` unless it is finite and not
    /// negative (the draft has no meaning for the rest). `-0.0` becomes `0.0`.
    pub fn new(asn: u16, bytes_per_second: f32, transitive: bool) -> Option<LinkBandwidth> {
        if !bytes_per_second.is_finite() || bytes_per_second < 0.0 {
            return None;
        }
        Some(LinkBandwidth {
            asn,
            bandwidth_bits: (bytes_per_second + 0.0).to_bits(),
            transitive,
        })
    }

    /// A link bandwidth of `mbps` Mbit/s, FRR's unit (1 Mbit/s = 125,000 bytes/s).
    pub fn from_mbps(asn: u16, mbps: f64, transitive: bool) -> Option<LinkBandwidth> {
        LinkBandwidth::new(asn, (mbps * 125_000.0) as f32, transitive)
    }

    /// The bandwidth in bytes per second, as sent (a received value may be NaN or
    /// negative; [`LinkBandwidth::new`] never makes one).
    pub fn bytes_per_second(&self) -> f32 {
        f32::from_bits(self.bandwidth_bits)
    }
}

/// Next hop of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// IPv4 next hop (NEXT_HOP attribute for IPv4 NLRI).
    V4(Ipv4Addr),
    /// IPv6 next hop in MP_REACH_NLRI: global, optionally with link-local (RFC 2545).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when on a shared link.
        link_local: Option<Ipv6Addr>,
    },
}

/// The attributes of one announcement, apart from the next hop and NLRI-carrying
/// attributes (those are derived from [`Update::announced`] and [`Update::next_hop`]).
/// Equal values mean "may share one UPDATE".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Origin,
    /// AS_PATH, with 4-octet numbers (the encoder narrows it when needed).
    pub as_path: Vec<AsSegment>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only; the encoder drops it towards eBGP peers).
    pub local_pref: Option<u32>,
    /// COMMUNITIES, as u32 values (`asn << 16 | value`).
    pub communities: Vec<u32>,
    /// EXTENDED COMMUNITIES (RFC 4360), in the order sent. The encoder leaves the
    /// non-transitive ones out towards eBGP peers (RFC 4360 6).
    pub ext_communities: Vec<ExtendedCommunity>,
    /// LARGE_COMMUNITIES.
    pub large_communities: Vec<LargeCommunity>,
}

/// An UPDATE message. One message carries at most one attribute set; IPv4 NLRI use the
/// classic fields, IPv6 ones MP_REACH_NLRI / MP_UNREACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Withdrawn prefixes (IPv4 and IPv6 mixed; IPv6 goes to MP_UNREACH_NLRI).
    pub withdrawn: Vec<IpNet>,
    /// Attributes of the announced prefixes (`None` when nothing is announced).
    pub attributes: Option<PathAttributes>,
    /// Next hop of the announced prefixes (`None` when nothing is announced).
    pub next_hop: Option<NextHop>,
    /// Announced prefixes, all of one family matching `next_hop`.
    pub announced: Vec<IpNet>,
    /// More announced prefixes sharing `attributes` but with another next hop. Only
    /// needed when one UPDATE carries classic IPv4 NLRI *and* MP_REACH_NLRI (a peer may
    /// send that; our own builder never does). Empty in nearly every message.
    pub extra_announced: Vec<(NextHop, Vec<IpNet>)>,
}

impl Update {
    /// An End-of-RIB marker for `family` (RFC 4724): an empty UPDATE for IPv4 unicast,
    /// an MP_UNREACH_NLRI with no prefixes for other families.
    pub fn is_end_of_rib(&self) -> bool {
        self.withdrawn.is_empty()
            && self.announced.is_empty()
            && self.extra_announced.is_empty()
            && self.attributes.is_none()
    }
}

/// A NOTIFICATION message (RFC 4271 section 4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code (1 header, 2 OPEN, 3 UPDATE, 4 hold timer, 5 FSM, 6 Cease).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data; for Cease 2/4 an RFC 8203 shutdown message (length byte + UTF-8).
    pub data: Vec<u8>,
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE. `EndOfRib(family)` is modelled separately so the family is explicit.
    Update(Update),
    /// End-of-RIB for a family (encoded as the RFC 4724 marker).
    EndOfRib(AddressFamily),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH for a family.
    RouteRefresh(AddressFamily),
}
