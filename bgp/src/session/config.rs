//! Speaker and peer configuration, with validation that names the offending field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::fsm::FsmConfig;
use crate::wire::{AddressFamily, NextHop, PathAttributes};

/// How long a peer that overflowed its maximum-prefix limit waits before a new session,
/// unless configured ([`PeerConfig::max_prefix_restart`]).
pub const DEFAULT_MAX_PREFIX_RESTART: Duration = Duration::from_secs(300);

/// Settings shared by every peer of a [`super::Speaker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Default BGP identifier (a peer may override it).
    pub router_id: Ipv4Addr,
    /// Accept incoming BGP connections on this address (`None`: connect out only).
    /// One listener serves all peers; connections are dispatched by remote address.
    pub listen: Option<SocketAddr>,
}

impl SpeakerConfig {
    /// A speaker that only connects out.
    pub fn new(router_id: Ipv4Addr) -> Self {
        SpeakerConfig {
            router_id,
            listen: None,
        }
    }
}

/// One BGP neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address (also the key the peer is known by).
    pub address: IpAddr,
    /// The peer's BGP port (179).
    pub port: u16,
    /// Source address of our connections (must exist on this host).
    pub source_address: Option<IpAddr>,
    /// Our AS towards this peer.
    pub local_as: u32,
    /// The peer's AS.
    pub remote_as: u32,
    /// BGP identifier override for this session.
    pub router_id: Option<Ipv4Addr>,
    /// Proposed hold time in seconds (0, or >= 3; default 90).
    pub hold_time: u16,
    /// Keepalive interval in seconds (default: hold time / 3; must be <= hold time).
    pub keepalive: Option<u16>,
    /// TCP MD5 signature password (RFC 2385).
    pub password: Option<String>,
    /// eBGP multihop: TTL 255 instead of 1 towards an eBGP peer.
    pub ebgp_multihop: bool,
    /// Never connect out; wait for the peer (needs a speaker listener).
    pub passive: bool,
    /// Families offered (default: IPv4 and IPv6 unicast).
    pub families: Vec<AddressFamily>,
    /// Offer graceful restart with this restart time (seconds); off unless set.
    pub graceful_restart: Option<u16>,
    /// Next hop for IPv4 routes with [`NextHopSpec::SelfAddress`] when the session runs
    /// over IPv6.
    pub ipv4_next_hop: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes with [`NextHopSpec::SelfAddress`] when the session runs
    /// over IPv4.
    pub ipv6_next_hop: Option<Ipv6Addr>,
    /// Most prefixes accepted from the peer (RFC 4486): over it the session ends with
    /// Cease 6/1 and the peer's routes are removed; a warning is logged at 80 %. `None`:
    /// no limit.
    pub max_prefixes: Option<u32>,
    /// How long to wait after a max-prefix Cease before a new session (either way).
    pub max_prefix_restart: Duration,
}

impl PeerConfig {
    /// A peer with every optional field at its default.
    pub fn new(address: IpAddr, local_as: u32, remote_as: u32) -> Self {
        PeerConfig {
            address,
            port: 179,
            source_address: None,
            local_as,
            remote_as,
            router_id: None,
            hold_time: 90,
            keepalive: None,
            password: None,
            ebgp_multihop: false,
            passive: false,
            families: vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast],
            graceful_restart: None,
            ipv4_next_hop: None,
            ipv6_next_hop: None,
            max_prefixes: None,
            max_prefix_restart: DEFAULT_MAX_PREFIX_RESTART,
        }
    }

    /// True for iBGP (same AS on both sides).
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.remote_as
    }

    /// TTL of our packets: 1 towards a directly connected eBGP peer, else 255.
    pub fn ttl(&self) -> u32 {
        if self.is_ibgp() || self.ebgp_multihop {
            255
        } else {
            1
        }
    }

    /// Whether changing from `self` to `new` needs the session to be reset. Only the
    /// next-hop overrides can change on a live session (routes are re-resolved), and the
    /// maximum-prefix settings (checked from the next UPDATE on).
    pub fn needs_reset(&self, new: &PeerConfig) -> bool {
        let strip = |c: &PeerConfig| PeerConfig {
            ipv4_next_hop: None,
            ipv6_next_hop: None,
            max_prefixes: None,
            max_prefix_restart: Duration::ZERO,
            ..c.clone()
        };
        strip(self) != strip(new)
    }

    pub(crate) fn fsm_config(&self, default_router_id: Ipv4Addr) -> FsmConfig {
        FsmConfig {
            local_as: self.local_as,
            remote_as: self.remote_as,
            router_id: self.router_id.unwrap_or(default_router_id),
            hold_time: self.hold_time,
            keepalive: self.keepalive,
            families: self.families.clone(),
            graceful_restart: self.graceful_restart,
            passive: self.passive,
        }
    }

    /// Check the configuration; the error names the field at fault.
    pub(crate) fn validate(
        &self,
        default_router_id: Ipv4Addr,
        has_listener: bool,
    ) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| ConfigError::Invalid {
            peer: self.address,
            field,
            reason,
        };
        if self.local_as == 0 {
            return Err(bad("local_as", "must be non-zero".into()));
        }
        if self.remote_as == 0 {
            return Err(bad("remote_as", "must be non-zero".into()));
        }
        if self.port == 0 {
            return Err(bad("port", "must be non-zero".into()));
        }
        if matches!(self.hold_time, 1 | 2) {
            return Err(bad(
                "hold_time",
                format!(
                    "{} s is not allowed: must be 0 or at least 3 seconds",
                    self.hold_time
                ),
            ));
        }
        if let Some(ka) = self.keepalive
            && ka > self.hold_time
        {
            return Err(bad(
                "keepalive",
                format!(
                    "{ka} s is longer than the hold time of {} s",
                    self.hold_time
                ),
            ));
        }
        if self.router_id.unwrap_or(default_router_id).is_unspecified() {
            return Err(bad("router_id", "must not be 0.0.0.0".into()));
        }
        if self.max_prefixes == Some(0) {
            return Err(bad(
                "max_prefixes",
                "must be at least 1 (leave it unset for no limit)".into(),
            ));
        }
        if self.families.is_empty() {
            return Err(bad(
                "families",
                "at least one address family is needed".into(),
            ));
        }
        if self.ebgp_multihop && self.is_ibgp() {
            return Err(bad("ebgp_multihop", "not allowed on an iBGP peer".into()));
        }
        if let Some(pw) = &self.password
            && (pw.is_empty() || pw.len() > super::socket::MD5_MAX_KEY_LEN)
        {
            return Err(bad(
                "password",
                format!("must be 1 to {} bytes long", super::socket::MD5_MAX_KEY_LEN),
            ));
        }
        if self.passive && !has_listener {
            return Err(bad(
                "passive",
                "the speaker has no listener, so a passive peer could never connect".into(),
            ));
        }
        if let Some(src) = self.source_address {
            if src.is_ipv4() != self.address.is_ipv4() {
                return Err(bad(
                    "source_address",
                    format!("{src} is not of the same family as the peer address"),
                ));
            }
            super::socket::check_local_address(src).map_err(|e| {
                bad(
                    "source_address",
                    format!("{src} cannot be used on this host: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

/// How the next hop of a route is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHopSpec {
    /// The local address of each session's TCP connection (per peer), or the peer's
    /// `ipv4_next_hop` / `ipv6_next_hop` when the session's family differs.
    SelfAddress,
    /// A fixed next hop.
    Fixed(NextHop),
}

/// A route to announce. Attributes sit behind an `Arc` so that 100k routes sharing
/// one attribute set cost a pointer each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Path attributes (AS_PATH as originated: the encoder prepends our AS on eBGP).
    pub attributes: Arc<PathAttributes>,
    /// Next hop.
    pub next_hop: NextHopSpec,
}

impl RouteSpec {
    /// A route with these attributes and our session address as next hop.
    pub fn self_next_hop(attributes: Arc<PathAttributes>) -> Self {
        RouteSpec {
            attributes,
            next_hop: NextHopSpec::SelfAddress,
        }
    }
}

/// Which peers a route operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSelector {
    /// Every peer, and the default for peers added later.
    All,
    /// One peer, by address.
    Peer(IpAddr),
}

/// A rejected configuration or operation.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field has an invalid value.
    #[error("peer {peer}: {field}: {reason}")]
    Invalid {
        /// The peer.
        peer: IpAddr,
        /// Field name, as in [`PeerConfig`].
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A peer with this address exists already.
    #[error("peer {0} is already configured")]
    DuplicatePeer(IpAddr),
    /// No peer with this address.
    #[error("peer {0} is not configured")]
    UnknownPeer(IpAddr),
    /// The speaker was shut down.
    #[error("the speaker is shut down")]
    ShutDown,
    /// Setting up a socket option (TCP MD5 on the listener) failed.
    #[error("peer {peer}: {what}: {source}")]
    Socket {
        /// The peer.
        peer: IpAddr,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Errors creating a speaker.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// `Speaker::new` needs a tokio runtime.
    #[error("Speaker::new must be called inside a tokio runtime")]
    NoRuntime,
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}
