//! `ferrolb-controller convert-config`: the custom resources equivalent to a MetalLB 0.12
//! ConfigMap, as MetalLB's `configmaptocrs` writes them (v0.15.3, `configmaptocrs/main.go`):
//! one `BGPPeer` per peer (`peer1`, `peer2`, ...), one `IPAddressPool` per pool, one
//! `BGPAdvertisement` per advertisement of a BGP pool (`bgpadvertisement1`, ...; a BGP pool
//! without advertisements gets one with no settings), one `L2Advertisement` per layer2
//! pool, one `BFDProfile` per profile, and one `Community` named `communities` holding every
//! alias. Names that are not valid Kubernetes names are converted MetalLB's way
//! (`formatToK8S`: at most 63 characters, lower case, `_` -> `-`, from the first letter on).
//!
//! The input is validated first (the same parse as `check-config`), and the output is built
//! from the validated model, so defaults are written out where MetalLB's tool left them
//! implicit (`holdTime`, `keepaliveTime`, every BFD field) and addresses are written
//! normalised (`10.0.0.1/24` becomes `10.0.0.0/24`). A community in an advertisement is
//! written as its alias when exactly one alias has its value. The result, read back with
//! [`crate::to_model::to_config`], is the ConfigMap's model (peer names aside): the tests
//! check exactly that on every real ConfigMap in the repository.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_config::{Config, NodeSelector, Protocol, parse_config_text};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use serde_json::Value;

use crate::to_model::Resources;
use crate::types::*;

/// MetalLB's namespace, when the ConfigMap does not say.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// The converted objects, and what was changed on the way.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub resources: Resources,
    /// `"IPAddressPool name \"My_Pool\" became \"my-pool\""`, ...
    pub renamed: Vec<String>,
}

/// A ConfigMap's model -> the equivalent custom resources in `namespace`.
pub fn from_config(c: &Config, namespace: &str) -> Result<Conversion, Vec<String>> {
    let mut renamed = Vec::new();
    let mut errors = Vec::new();
    let pool_names = k8s_names(
        "IPAddressPool",
        c.pools.iter().map(|p| p.name.as_str()),
        &mut renamed,
        &mut errors,
    );
    let bfd_names = k8s_names(
        "BFDProfile",
        c.bfd_profiles.iter().map(|b| b.name.as_str()),
        &mut renamed,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        ..ObjectMeta::default()
    };
    let mut r = Resources::default();
    for (i, p) in c.peers.iter().enumerate() {
        let spec = BGPPeerSpec {
            my_asn: p.my_asn,
            peer_asn: p.peer_asn,
            peer_address: Some(p.address.to_string()),
            source_address: p.source_address.map(|a| a.to_string()),
            peer_port: (p.port != ferrolb_config::rules::DEFAULT_PORT).then_some(p.port),
            hold_time: Some(go_duration(p.hold_time)),
            keepalive_time: Some(go_duration(p.keepalive_time)),
            router_id: p.router_id.map(|r| r.to_string()),
            node_selectors: p.node_selectors.iter().map(label_selector).collect(),
            password: p.password.clone(),
            bfd_profile: p.bfd_profile.as_ref().map(|b| bfd_names[b].clone()),
            ebgp_multi_hop: p.ebgp_multihop,
            ..BGPPeerSpec::default()
        };
        r.peers.push(BGPPeer {
            metadata: meta(format!("peer{}", i + 1)),
            spec,
            status: None,
        });
    }
    let alias_of = |value: ferrolb_config::Community| -> String {
        let mut names = c.communities.iter().filter(|(_, v)| **v == value);
        match (names.next(), names.next()) {
            (Some((name, _)), None) => name.clone(),
            _ => value.to_string(),
        }
    };
    let mut ad_index = 0;
    let mut l2_index = 0;
    for p in &c.pools {
        let name = pool_names[&p.name].clone();
        r.pools.push(IPAddressPool {
            metadata: meta(name.clone()),
            spec: IPAddressPoolSpec {
                addresses: p.addresses.iter().map(ToString::to_string).collect(),
                auto_assign: (!p.auto_assign).then_some(false),
                avoid_buggy_ips: p.avoid_buggy_ips,
                service_allocation: None,
            },
            status: None,
        });
        match p.protocol {
            Protocol::Layer2 => {
                l2_index += 1;
                r.l2_advertisements.push(L2Advertisement {
                    metadata: meta(format!("l2advertisement{l2_index}")),
                    spec: L2AdvertisementSpec {
                        selection: pools_named(&name),
                        ..L2AdvertisementSpec::default()
                    },
                    status: None,
                });
            }
            Protocol::Bgp => {
                for a in &p.bgp_advertisements {
                    ad_index += 1;
                    let mut metadata = meta(format!("bgpadvertisement{ad_index}"));
                    if a.weight_by_endpoints {
                        metadata.annotations = Some(BTreeMap::from([(
                            crate::to_model::WEIGHT_ANNOTATION.to_string(),
                            "true".to_string(),
                        )]));
                    }
                    r.bgp_advertisements.push(BGPAdvertisement {
                        metadata,
                        spec: BGPAdvertisementSpec {
                            aggregation_length: (a.aggregation_length != 32)
                                .then_some(i32::from(a.aggregation_length)),
                            aggregation_length_v6: (a.aggregation_length_v6 != 128)
                                .then_some(i32::from(a.aggregation_length_v6)),
                            local_pref: a.local_pref,
                            communities: a.communities.iter().map(|c| alias_of(*c)).collect(),
                            selection: pools_named(&name),
                            ..BGPAdvertisementSpec::default()
                        },
                        status: None,
                    });
                }
            }
        }
    }
    for b in &c.bfd_profiles {
        let ms = |d: Duration| u32::try_from(d.as_millis()).ok();
        r.bfd_profiles.push(BFDProfile {
            metadata: meta(bfd_names[&b.name].clone()),
            spec: BFDProfileSpec {
                receive_interval: ms(b.receive_interval),
                transmit_interval: ms(b.transmit_interval),
                detect_multiplier: Some(u32::from(b.detect_multiplier)),
                echo_interval: ms(b.echo_interval),
                echo_mode: Some(b.echo_mode),
                passive_mode: Some(b.passive_mode),
                minimum_ttl: Some(u32::from(b.minimum_ttl)),
            },
            status: None,
        });
    }
    if !c.communities.is_empty() {
        r.communities.push(Community {
            metadata: meta("communities".to_string()),
            spec: CommunitySpec {
                communities: c
                    .communities
                    .iter()
                    .map(|(name, v)| CommunityAlias {
                        name: name.clone(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
            status: None,
        });
    }
    Ok(Conversion {
        resources: r,
        renamed,
    })
}

/// A selection of exactly one pool, by name.
fn pools_named(name: &str) -> Selection {
    Selection {
        ip_address_pools: vec![name.to_string()],
        ..Selection::default()
    }
}

/// A name Kubernetes accepts for these objects (MetalLB's check).
fn is_k8s_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
}

/// MetalLB's `formatToK8S`.
fn format_to_k8s(name: &str) -> Option<String> {
    let truncated: String = name.chars().take(63).collect();
    let lower = truncated.to_lowercase().replace('_', "-");
    let start = lower.find(|c: char| c.is_ascii_lowercase())?;
    Some(lower[start..].to_string())
}

/// Old name -> Kubernetes name for every name of one kind; errors for names that cannot be
/// made valid or that two old names would share.
fn k8s_names<'a>(
    kind: &str,
    names: impl Iterator<Item = &'a str>,
    renamed: &mut Vec<String>,
    errors: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for n in names {
        let new = if is_k8s_name(n) {
            n.to_string()
        } else {
            match format_to_k8s(n).filter(|f| is_dns_label(f)) {
                Some(f) => {
                    if f != n {
                        renamed.push(format!("{kind} name {n:?} became {f:?}"));
                    }
                    f
                }
                None => {
                    errors.push(format!(
                        "{kind} name {n:?} cannot be made a Kubernetes name; rename it"
                    ));
                    continue;
                }
            }
        };
        if let Some((other, _)) = out.iter().find(|(_, v)| **v == new) {
            errors.push(format!(
                "{kind} names {other:?} and {n:?} both become {new:?}; rename one"
            ));
            continue;
        }
        out.insert(n.to_string(), new);
    }
    out
}

/// RFC 1123 label: what `metadata.name` of these kinds accepts in practice.
fn is_dns_label(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A whole number of seconds as Go's `time.Duration.String()` writes it (`2m0s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

fn label_selector(s: &NodeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!s.match_labels.is_empty()).then(|| s.match_labels.clone()),
        match_expressions: (!s.match_expressions.is_empty()).then(|| {
            s.match_expressions
                .iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.as_str().to_string(),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        }),
    }
}

/// The objects as one YAML stream, in MetalLB's order: peers, pools, BGP advertisements,
/// L2 advertisements, BFD profiles, communities.
pub fn render(r: &Resources, header: &str) -> String {
    let mut out = String::from(header);
    let mut push = |v: Value| {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&v).expect("objects render as YAML"));
    };
    r.peers.iter().for_each(|x| push(object_value(x)));
    r.pools.iter().for_each(|x| push(object_value(x)));
    r.bgp_advertisements
        .iter()
        .for_each(|x| push(object_value(x)));
    r.l2_advertisements
        .iter()
        .for_each(|x| push(object_value(x)));
    r.bfd_profiles.iter().for_each(|x| push(object_value(x)));
    r.communities.iter().for_each(|x| push(object_value(x)));
    out
}

/// One object as JSON, without an empty `status`.
fn object_value<T: serde::Serialize>(x: &T) -> Value {
    let mut v = serde_json::to_value(x).expect("objects serialise");
    if let Some(o) = v.as_object_mut()
        && o.get("status").is_none_or(Value::is_null)
    {
        o.remove("status");
    }
    v
}

/// What `convert-config` prints: the YAML on success, else the errors.
#[derive(Debug, Clone)]
pub struct Printed {
    pub yaml: String,
    /// `warning: ...` (from the ConfigMap) and `note: ...` (renames) lines.
    pub notes: Vec<String>,
}

/// `ferrolb-controller convert-config`: a ConfigMap manifest or bare config document in,
/// the equivalent custom resources out. `Err`: `error: ...` and `warning: ...` lines.
pub fn convert_config_text(text: &str, source: &str) -> Result<Printed, Vec<String>> {
    let parsed = match parse_config_text(text) {
        Ok(p) => p,
        Err(e) => {
            let mut lines: Vec<String> = e.errors.iter().map(|e| format!("error: {e}")).collect();
            lines.extend(e.warnings.iter().map(|w| format!("warning: {w}")));
            return Err(lines);
        }
    };
    let namespace = configmap_namespace(text).unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let conv = from_config(&parsed.config, &namespace).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| format!("error: {e}"))
            .collect::<Vec<_>>()
    })?;
    let header = format!(
        "# Generated by ferrolb-controller convert-config from the MetalLB 0.12 configuration in \
         {source}.\n"
    );
    let mut notes: Vec<String> = parsed
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    notes.extend(conv.renamed.iter().map(|r| format!("note: {r}")));
    Ok(Printed {
        yaml: render(&conv.resources, &header),
        notes,
    })
}

/// `metadata.namespace` of the ConfigMap a manifest holds (the one named `config`, else the
/// first, as `parse_configmap_manifest` picks it).
fn configmap_namespace(text: &str) -> Option<String> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(text).ok()?;
    let mut cms = Vec::new();
    for d in docs {
        let items = match d.get("kind").and_then(Value::as_str) {
            Some("List") => d["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![d],
        };
        cms.extend(items.into_iter().filter(|i| i["kind"] == "ConfigMap"));
    }
    let chosen = cms
        .iter()
        .find(|c| c["metadata"]["name"] == "config")
        .or(cms.first())?;
    chosen["metadata"]["namespace"].as_str().map(str::to_string)
}
