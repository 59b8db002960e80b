//! The schema: walks the located tree of one config document, fills in MetalLB 0.12's
//! defaults, checks every rule, and records every problem (it does not stop at the first).
//!
//! One module per section of the document; the value rules themselves (hold times,
//! passwords, aggregation lengths, ...) are in [`crate::rules`], shared with the CRD source.

mod advertisements;
mod bfd;
mod communities;
mod helpers;
mod peers;
mod pools;
mod selectors;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Diagnostics;
use crate::fields::read_map;
use crate::model::{BfdProfile, Community, Config};
use crate::yaml::{Kind, Node};

const TOP_KEYS: &[&str] = &["peers", "bgp-communities", "address-pools", "bfd-profiles"];

/// Decodes one config document (already parsed). `None` document = empty config.
pub(crate) fn decode_document(d: &mut Diagnostics, doc: Option<&Node>) -> Config {
    let mut config = Config::default();
    let Some(doc) = doc else {
        return config;
    };
    if matches!(doc.kind, Kind::Null) {
        return config;
    }
    let root = crate::ROOT_PATH;
    let Kind::Map(_) = doc.kind else {
        d.error(
            root,
            doc.line,
            format!(
                "expected a mapping with keys {}, found {}",
                TOP_KEYS.join(", "),
                doc.describe()
            ),
        );
        return config;
    };
    let Some(top) = read_map(d, doc, root, TOP_KEYS) else {
        return config;
    };

    // Order matters only for cross-references: aliases and profiles first.
    // Names defined with an invalid value: already reported where they are defined, so
    // references to them are not reported a second time as "not defined".
    let mut broken = Broken::default();
    if let Some((_, v)) = top.get("bgp-communities") {
        config.communities = communities::decode_communities(d, v, "bgp-communities", &mut broken);
    }
    if let Some((_, v)) = top.get("bfd-profiles") {
        config.bfd_profiles = bfd::decode_bfd_profiles(d, v, "bfd-profiles", &mut broken);
    }
    let refs = Refs {
        communities: &config.communities,
        bfd_profiles: &config.bfd_profiles,
        broken: &broken,
    };
    let peers = top
        .get("peers")
        .map(|(_, v)| peers::decode_peers(d, v, "peers", &refs))
        .unwrap_or_default();
    let pools = top
        .get("address-pools")
        .map(|(_, v)| pools::decode_pools(d, v, "address-pools", &refs))
        .unwrap_or_default();
    config.peers = peers;
    config.pools = pools;
    config
}

/// Names whose definition was invalid.
#[derive(Default)]
struct Broken {
    aliases: BTreeSet<String>,
    bfd_profiles: BTreeSet<String>,
}

/// What peers and pools may refer to.
struct Refs<'a> {
    communities: &'a BTreeMap<String, Community>,
    bfd_profiles: &'a [BfdProfile],
    broken: &'a Broken,
}
