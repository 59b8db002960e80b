//! One model, two sources: the `metallb.io` custom resources of the namespace, converted to
//! the same [`ferrolb_config::Config`] a MetalLB 0.12 ConfigMap decodes to.
//!
//! Pure: the caller lists the objects (from the API server, or a file with
//! [`crate::resources::parse_resources`]) and gets the model, or every problem at once. The
//! value rules are `ferrolb_config::rules`, the ones the ConfigMap decoder applies, so a bad
//! hold time says the same in both; a CR problem names its object and field:
//! `BGPPeer/router-a spec.holdTime: 2s is not allowed: must be 0 or at least 3s`.
//!
//! Rules beyond the ConfigMap's, from MetalLB's CRD handling (`internal/config/config.go`,
//! v0.15.3): an advertisement without pool names or selectors takes every pool; aliases come
//! from Community resources; BGPPeer timers follow `parseTimers` (only a keepalive time: the
//! hold time is three times it); a pool no BGPAdvertisement selects is assigned but not
//! announced; two advertisements of one pool with different LOCAL_PREFs for the same routes
//! are refused (needs the nodes); lists holding an entry or a selector twice are refused.
//! ferrolb additionally refuses the BGPPeer fields it does not implement (`dynamicASN`,
//! `interface`, `vrf`, `connectTime`, `disableMP`) and warns where MetalLB is silent (a pool
//! or peer named but missing, a selector matching nothing, L2Advertisements).
//!
//! Objects are taken in name order, so the result does not depend on listing order.

mod advertisements;
pub use advertisements::WEIGHT_ANNOTATION;
mod diag;
mod peers;
mod pools;
mod references;
mod selectors;

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_config::{Config, ConfigErrors, Parsed};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use diag::{Diag, object};

/// Node name and labels.
pub type Nodes = [(String, BTreeMap<String, String>)];

/// Every `metallb.io` object of the namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub pools: Vec<IPAddressPool>,
    pub peers: Vec<BGPPeer>,
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub bfd_profiles: Vec<BFDProfile>,
    pub communities: Vec<Community>,
    /// The cluster's nodes (name, labels), when known. Only warnings ("selects no node") and
    /// MetalLB's LOCAL_PREF conflict rule depend on them; `None` skips both.
    pub nodes: Option<Vec<(String, BTreeMap<String, String>)>>,
}

impl Resources {
    /// No object at all (then a ConfigMap, if any, is the configuration).
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
            && self.peers.is_empty()
            && self.bgp_advertisements.is_empty()
            && self.l2_advertisements.is_empty()
            && self.bfd_profiles.is_empty()
            && self.communities.is_empty()
    }
}

/// `metadata.name` ("" when missing, which [`to_config`] reports).
pub(crate) fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// `items` sorted by name; a missing or repeated name is an error on the object.
fn by_name<'a, T>(
    d: &mut Diag,
    kind: &str,
    items: &'a [T],
    meta: fn(&T) -> &ObjectMeta,
) -> Vec<&'a T> {
    let mut out: Vec<&T> = items.iter().collect();
    out.sort_by(|a, b| name(meta(a)).cmp(name(meta(b))));
    let mut seen = BTreeSet::new();
    out.retain(|x| {
        let n = name(meta(x));
        if n.is_empty() {
            d.error(&object(kind, n), "metadata.name", "required");
            return false;
        }
        if !seen.insert(n) {
            d.error(
                &object(kind, n),
                "metadata.name",
                format!("another {kind} has this name"),
            );
            return false;
        }
        true
    });
    out
}

/// Converts the resources to the model: the configuration and its warnings, or every error.
pub fn to_config(r: &Resources) -> Result<Parsed, ConfigErrors> {
    let mut d = Diag::default();
    let communities = by_name(&mut d, "Community", &r.communities, |c| &c.metadata);
    let bfds = by_name(&mut d, "BFDProfile", &r.bfd_profiles, |b| &b.metadata);
    let peer_crs = by_name(&mut d, "BGPPeer", &r.peers, |p| &p.metadata);
    let pool_crs = by_name(&mut d, "IPAddressPool", &r.pools, |p| &p.metadata);
    let ad_crs = by_name(&mut d, "BGPAdvertisement", &r.bgp_advertisements, |a| {
        &a.metadata
    });
    let l2_crs = by_name(&mut d, "L2Advertisement", &r.l2_advertisements, |a| {
        &a.metadata
    });
    let nodes = r.nodes.as_deref();

    let mut refs = references::Refs::default();
    references::communities(&mut d, &mut refs, &communities);
    references::bfd_profiles(&mut d, &mut refs, &bfds);
    let peers = peers::peers(&mut d, &refs, &peer_crs, nodes);
    let (mut drafts, broken_pools) = pools::pools(&mut d, &pool_crs);
    let peer_names: BTreeSet<String> = peer_crs
        .iter()
        .map(|p| name(&p.metadata).to_string())
        .collect();
    let targets = advertisements::Targets {
        refs: &refs,
        broken_pools: &broken_pools,
        peers: &peer_names,
        nodes,
    };
    advertisements::attach(&mut d, &targets, &ad_crs, &mut drafts);
    advertisements::layer2_and_unadvertised(&mut d, &l2_crs, &mut drafts, &broken_pools);

    let config = Config {
        peers,
        pools: drafts.into_iter().map(|p| p.pool).collect(),
        communities: refs.aliases,
        bfd_profiles: refs.bfd_profiles,
    };
    // Grouped by object; within one, in the order found.
    d.errors.sort_by(|a, b| a.object.cmp(&b.object));
    d.warnings.sort_by(|a, b| a.object.cmp(&b.object));
    Parsed::or_errors(config, d.errors, d.warnings)
}
