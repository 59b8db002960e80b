//! `address-pools[].bgp-advertisements[]`: how a BGP pool's addresses are announced.

use super::Refs;
use super::pools::Entry;
use crate::error::Diagnostics;
use crate::fields::{boolean, child, integer, item, list, read_map, string};
use crate::model::{BgpAdvertisement, Community};
use crate::rules::{self, Spelling};
use crate::yaml::{Kind, Node};

const ADVERTISEMENT_KEYS: &[&str] = &[
    "aggregation-length",
    "aggregation-length-v6",
    "localpref",
    "communities",
    WEIGHT_KEY,
];

/// ferrolb's own key beside MetalLB's schema (see [`BgpAdvertisement::weight_by_endpoints`]).
const WEIGHT_KEY: &str = "ferrolb-weight-by-endpoints";

/// An advertisement as written, which is how MetalLB compares two of them (Go's
/// `reflect.DeepEqual` on the raw struct): `aggregation-length: 32` differs from nothing,
/// `communities: []` from no `communities` key, an alias from its value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct RawAdvertisement {
    aggregation_length: Option<u8>,
    aggregation_length_v6: Option<u8>,
    local_pref: Option<u32>,
    communities: Option<Vec<String>>,
    weight_by_endpoints: Option<bool>,
}

/// Decodes one advertisement; a null entry (a bare `-`) is one with every default, as in
/// MetalLB (yaml.v2 reads it as the zero struct).
pub(super) fn decode_advertisement(
    d: &mut Diagnostics,
    node: &Node,
    p: &str,
    addresses: &[Entry],
    refs: &Refs<'_>,
) -> Option<(BgpAdvertisement, RawAdvertisement)> {
    if matches!(node.kind, Kind::Null) {
        return Some((BgpAdvertisement::default(), RawAdvertisement::default()));
    }
    let f = read_map(d, node, p, ADVERTISEMENT_KEYS)?;
    let errors_before = d.errors.len();
    let mut ad = BgpAdvertisement::default();
    let mut raw = RawAdvertisement::default();

    for (key, v4, max) in [
        ("aggregation-length", true, 32u8),
        ("aggregation-length-v6", false, 128u8),
    ] {
        let Some((_, v)) = f.get(key) else { continue };
        let kp = child(p, key);
        let hint = format!("must be 0 to {max}");
        let Some(len) =
            integer(d, v, &kp, 0, i128::from(max), &hint).and_then(|n| u8::try_from(n).ok())
        else {
            continue;
        };
        let entries = addresses
            .iter()
            .map(|e| (&e.range, e.text.as_str(), e.path.as_str()));
        for reason in rules::aggregation(len, v4, entries) {
            d.error(&kp, v.line, reason);
        }
        if v4 {
            ad.aggregation_length = len;
            raw.aggregation_length = Some(len);
        } else {
            ad.aggregation_length_v6 = len;
            raw.aggregation_length_v6 = Some(len);
        }
    }

    if let Some((_, v)) = f.get("localpref") {
        ad.local_pref = integer(
            d,
            v,
            &child(p, "localpref"),
            0,
            i128::from(u32::MAX),
            "must be 0 to 4294967295",
        )
        .and_then(|n| u32::try_from(n).ok());
        raw.local_pref = ad.local_pref;
    }

    if let Some((_, v)) = f.get("communities") {
        let cp = child(p, "communities");
        if let Some(items) = list(d, v, &cp) {
            let mut seen: Vec<(Community, String)> = Vec::new();
            let mut written = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let ip = item(&cp, i);
                let Some(text) = string(d, it, &ip) else {
                    continue;
                };
                written.push(text.clone());
                let resolved = match rules::community_reference(
                    &text,
                    refs.communities,
                    &refs.broken.aliases,
                    &Spelling::CONFIGMAP,
                ) {
                    Ok(c) => c,
                    Err(reason) => {
                        d.error(&ip, it.line, reason);
                        None
                    }
                };
                let Some(c) = resolved else { continue };
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == c) {
                    d.error(&ip, it.line, rules::duplicate_community(c, first));
                    continue;
                }
                seen.push((c, ip));
            }
            ad.communities = seen.into_iter().map(|(c, _)| c).collect();
            raw.communities = Some(written);
        }
    }

    if let Some((_, v)) = f.get(WEIGHT_KEY)
        && let Some(on) = boolean(d, v, &child(p, WEIGHT_KEY))
    {
        ad.weight_by_endpoints = on;
        raw.weight_by_endpoints = Some(on);
    }

    (d.errors.len() == errors_before).then_some((ad, raw))
}
