//! What peers and advertisements refer to by name: `Community` aliases and `BFDProfile`s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrolb_config::rules;
use ferrolb_config::{BfdProfile, Community as CommunityValue};

use super::diag::{Diag, item, object};
use crate::types::{BFDProfile, Community};

/// Aliases and profiles, with the names whose definition was invalid (already reported
/// there, so a use is not reported again as "not defined").
#[derive(Debug, Default)]
pub(crate) struct Refs {
    pub aliases: BTreeMap<String, CommunityValue>,
    pub broken_aliases: BTreeSet<String>,
    /// Where each alias is defined (`Community/x spec.communities[0]`).
    pub alias_at: BTreeMap<String, String>,
    pub bfd_profiles: Vec<BfdProfile>,
    pub broken_bfd: BTreeSet<String>,
}

pub(crate) fn communities(d: &mut Diag, refs: &mut Refs, crs: &[&Community]) {
    for c in crs {
        let name = super::name(&c.metadata);
        let o = object("Community", name);
        for (i, alias) in c.spec.communities.iter().enumerate() {
            let p = item("spec.communities", i);
            if alias.name.is_empty() {
                d.error(&o, &format!("{p}.name"), "required: the alias");
                continue;
            }
            if let Some(first) = refs.alias_at.get(&alias.name) {
                d.error(
                    &o,
                    &format!("{p}.name"),
                    format!(
                        "alias {:?} is defined more than once (also {first})",
                        alias.name
                    ),
                );
                continue;
            }
            refs.alias_at.insert(alias.name.clone(), format!("{o} {p}"));
            match rules::community_value(&alias.value) {
                Ok(v) => {
                    refs.aliases.insert(alias.name.clone(), v);
                }
                Err(reason) => {
                    d.error(&o, &format!("{p}.value"), reason);
                    refs.broken_aliases.insert(alias.name.clone());
                }
            }
        }
    }
}

pub(crate) fn bfd_profiles(d: &mut Diag, refs: &mut Refs, crs: &[&BFDProfile]) {
    for b in crs {
        let name = super::name(&b.metadata).to_string();
        let o = object("BFDProfile", &name);
        let errors_before = d.errors.len();
        let s = &b.spec;
        let ranged = |d: &mut Diag, key: &str, v: Option<u32>, range| -> Option<u32> {
            let v = v?;
            d.check(
                &o,
                &format!("spec.{key}"),
                rules::in_range(u64::from(v), range),
            )
        };
        let ms = |v: Option<u32>, default: u64| {
            v.map_or(Duration::from_millis(default), |v| {
                Duration::from_millis(u64::from(v))
            })
        };
        let receive = ranged(
            d,
            "receiveInterval",
            s.receive_interval,
            rules::BFD_INTERVAL,
        );
        let transmit = ranged(
            d,
            "transmitInterval",
            s.transmit_interval,
            rules::BFD_INTERVAL,
        );
        let echo = ranged(d, "echoInterval", s.echo_interval, rules::BFD_INTERVAL);
        let mult = ranged(
            d,
            "detectMultiplier",
            s.detect_multiplier,
            rules::BFD_MULTIPLIER,
        );
        let ttl = ranged(d, "minimumTtl", s.minimum_ttl, rules::BFD_MINIMUM_TTL);
        if d.errors.len() > errors_before {
            refs.broken_bfd.insert(name);
            continue;
        }
        refs.bfd_profiles.push(BfdProfile {
            name,
            receive_interval: ms(receive, rules::BFD_DEFAULT_INTERVAL_MS),
            transmit_interval: ms(transmit, rules::BFD_DEFAULT_INTERVAL_MS),
            detect_multiplier: mult
                .and_then(|m| u8::try_from(m).ok())
                .unwrap_or(rules::BFD_DEFAULT_MULTIPLIER),
            echo_interval: ms(echo, rules::BFD_DEFAULT_ECHO_MS),
            echo_mode: s.echo_mode.unwrap_or(false),
            passive_mode: s.passive_mode.unwrap_or(false),
            minimum_ttl: ttl
                .and_then(|t| u8::try_from(t).ok())
                .unwrap_or(rules::BFD_DEFAULT_MINIMUM_TTL),
        });
    }
}
