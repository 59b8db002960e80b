//! MetalLB's `metallb.io` custom resources, as MetalLB defines them (`api/v1beta1`,
//! `api/v1beta2` at v0.15.3): the same kinds, versions, field names, defaults, ranges and CEL
//! rules, so a manifest written for MetalLB applies unchanged. Doc comments are MetalLB's
//! field descriptions (they become the CRD's `description`s).
//!
//! Served versions: `IPAddressPool`, `BGPAdvertisement`, `L2Advertisement`, `BFDProfile`,
//! `Community` in v1beta1; `BGPPeer` in v1beta2 only (MetalLB also serves a deprecated
//! v1beta1 BGPPeer through a conversion webhook; ferrolb runs no webhook).

// kube's `printcolumn(name = .., type_ = ..)` repeats `type_ = "string"` once per column,
// which clippy takes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

mod advertisement;
mod bfd;
mod community;
mod l2;
mod peer;
mod pool;

pub use advertisement::{BGPAdvertisement, BGPAdvertisementSpec, BGPAdvertisementStatus};
pub use bfd::{BFDProfile, BFDProfileSpec, BFDProfileStatus};
pub use community::{Community, CommunityAlias, CommunitySpec, CommunityStatus};
pub use l2::{L2Advertisement, L2AdvertisementSpec, L2AdvertisementStatus};
pub use peer::{BGPPeer, BGPPeerSpec, BGPPeerStatus};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every kind here.
pub const GROUP: &str = "metallb.io";

/// What both advertisement kinds select: pools (by name, by label; neither = every pool)
/// and the nodes that announce.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Selection {
    /// The list of IPAddressPools to advertise via this advertisement, selected by name.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pools: Vec<String>,

    /// A selector for the IPAddressPools which would get advertised via this advertisement.
    /// If no IPAddressPool is selected by this or by the list, the advertisement is applied to all the IPAddressPools.
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// NodeSelectors allows to limit the nodes to announce as next hops for the LoadBalancer IP. When empty, all the nodes having  are announced as next hops.
    #[serde(
        default,
        rename = "nodeSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub node_selectors: Vec<LabelSelector>,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
