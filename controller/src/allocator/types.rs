//! Plain input and output types of the allocator.
//!
//! Why our own types: the allocator is pure and must not depend on Kubernetes or on the config
//! crate. The controller converts a Service and the config's pools into these.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::scope::Labels;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `ip` (an IPv4-mapped IPv6 address counts as IPv6, as in Kubernetes).
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A Service port protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One (protocol, port) a Service exposes; two Services sharing an IP may not overlap here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub protocol: Protocol,
    pub port: u16,
}

impl Port {
    pub fn tcp(port: u16) -> Port {
        Port {
            protocol: Protocol::Tcp,
            port,
        }
    }

    pub fn udp(port: u16) -> Port {
        Port {
            protocol: Protocol::Udp,
            port,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

pub use ferrolb_config::service::TrafficPolicy;

/// `spec.ipFamilyPolicy` together with the primary family (`spec.ipFamilies[0]`).
///
/// The primary family orders the returned IPs (primary first) and is the one PreferDualStack
/// falls back to when no pool can give both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyPolicy {
    /// Exactly one IP, of this family.
    SingleStack(Family),
    /// One IP per family from one pool if any pool can give both, else one IP (primary family
    /// first).
    PreferDualStack(Family),
    /// One IP per family, both from the same pool, or nothing.
    RequireDualStack(Family),
}

impl Default for FamilyPolicy {
    fn default() -> Self {
        FamilyPolicy::SingleStack(Family::V4)
    }
}

impl FamilyPolicy {
    /// The primary family.
    pub fn primary(self) -> Family {
        match self {
            FamilyPolicy::SingleStack(f)
            | FamilyPolicy::PreferDualStack(f)
            | FamilyPolicy::RequireDualStack(f) => f,
        }
    }

    /// A short name for messages.
    pub(crate) fn describe(self) -> String {
        match self {
            FamilyPolicy::SingleStack(f) => format!("SingleStack {f}"),
            FamilyPolicy::PreferDualStack(_) => "PreferDualStack".to_string(),
            FamilyPolicy::RequireDualStack(_) => "RequireDualStack".to_string(),
        }
    }
}

/// What one LoadBalancer Service asks of the allocator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `namespace/name`.
    pub key: String,
    /// `spec.loadBalancerIP` or the `loadBalancerIPs` annotation (at most one per family).
    /// Reading both sources at once is the caller's error to report.
    pub requested_ips: Vec<IpAddr>,
    /// The `address-pool` annotation (may name an auto-assign=false pool).
    pub pool: Option<String>,
    /// The `allow-shared-ip` annotation; an empty string counts as unset.
    pub sharing_key: Option<String>,
    /// `spec.ports` as (protocol, port).
    pub ports: Vec<Port>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector` (compared only for Local services that want to share).
    pub selector: BTreeMap<String, String>,
    /// `spec.ipFamilyPolicy` + `spec.ipFamilies[0]`.
    pub family: FamilyPolicy,
    /// `metadata.labels`, for pools whose `serviceAllocation` has `serviceSelectors`.
    pub labels: Labels,
    /// The labels of the Service's namespace, for `namespaceSelectors`.
    pub namespace_labels: Labels,
}

impl Request {
    /// A request for `key` with defaults: no requested IP/pool, no sharing, no ports,
    /// Cluster policy, SingleStack IPv4.
    pub fn new(key: impl Into<String>) -> Request {
        Request {
            key: key.into(),
            ..Request::default()
        }
    }

    /// The namespace: `key` up to its first `/` (all of `key` if it has none).
    pub fn namespace(&self) -> &str {
        self.key
            .split_once('/')
            .map_or(self.key.as_str(), |(ns, _)| ns)
    }

    /// The sharing key with "" normalised to `None`.
    pub(crate) fn sharing(&self) -> Option<&str> {
        self.sharing_key.as_deref().filter(|k| !k.is_empty())
    }

    /// MetalLB's "backend key": Cluster services may share with each other regardless of
    /// selectors; Local services only with Local services that select the same pods (traffic
    /// for one IP is announced from one set of nodes). `None` means Cluster.
    pub(crate) fn backend(&self) -> Option<&BTreeMap<String, String>> {
        match self.traffic_policy {
            TrafficPolicy::Cluster => None,
            TrafficPolicy::Local => Some(&self.selector),
        }
    }
}

/// What a Service holds: the pool its IPs come from and the IPs (primary family first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    pub ips: Vec<IpAddr>,
}

/// Per-pool numbers for the `metallb_allocator_*{pool}` metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    pub pool: String,
    /// Assignable addresses (excluding .0/.255 when the pool avoids buggy IPs); saturates at
    /// `u128::MAX` for an IPv6 /0.
    pub addresses_total: u128,
    /// Distinct addresses held by at least one Service (a shared IP counts once).
    pub in_use: u128,
    /// Of [`Self::in_use`], the IPv4 addresses (for the IPAddressPool status).
    pub in_use_ipv4: u128,
    /// Of [`Self::in_use`], the IPv6 addresses.
    pub in_use_ipv6: u128,
    /// Services holding IPs from this pool.
    pub services_allocated: usize,
}

impl PoolStats {
    /// `addresses_total` for a Prometheus gauge (rounded for huge IPv6 pools).
    pub fn addresses_total_f64(&self) -> f64 {
        self.addresses_total as f64
    }
}
