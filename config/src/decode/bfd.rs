//! `bfd-profiles[]`: named BFD timer sets that peers refer to.

use std::time::Duration;

use super::Broken;
use super::helpers::{line_of, opt_bool, required_string};
use crate::error::Diagnostics;
use crate::fields::{child, integer, item, list, read_map};
use crate::model::BfdProfile;
use crate::rules;
use crate::yaml::Node;

const BFD_KEYS: &[&str] = &[
    "name",
    "receive-interval",
    "transmit-interval",
    "detect-multiplier",
    "echo-interval",
    "echo-mode",
    "passive-mode",
    "minimum-ttl",
];

/// An integer key within one of the BFD ranges of [`rules`].
fn ranged(
    d: &mut Diagnostics,
    f: &crate::fields::Fields<'_>,
    p: &str,
    key: &str,
    (lo, hi, hint): (u32, u32, &str),
) -> Option<u32> {
    f.get(key)
        .and_then(|(_, v)| integer(d, v, &child(p, key), i128::from(lo), i128::from(hi), hint))
        .and_then(|v| u32::try_from(v).ok())
}

pub(super) fn decode_bfd_profiles(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    broken: &mut Broken,
) -> Vec<BfdProfile> {
    let mut out: Vec<BfdProfile> = Vec::new();
    let mut declared: Vec<(usize, String)> = Vec::new();
    let Some(items) = list(d, node, path) else {
        return out;
    };
    for (i, entry) in items.iter().enumerate() {
        let p = item(path, i);
        let Some(f) = read_map(d, entry, &p, BFD_KEYS) else {
            continue;
        };
        let errors_before = d.errors.len();
        let name = required_string(d, &f, entry, &p, "name");
        let ms = |d: &mut Diagnostics, key: &str, default: u64| -> Duration {
            ranged(d, &f, &p, key, rules::BFD_INTERVAL)
                .map(|v| Duration::from_millis(u64::from(v)))
                .unwrap_or(Duration::from_millis(default))
        };
        let receive_interval = ms(d, "receive-interval", rules::BFD_DEFAULT_INTERVAL_MS);
        let transmit_interval = ms(d, "transmit-interval", rules::BFD_DEFAULT_INTERVAL_MS);
        let echo_interval = ms(d, "echo-interval", rules::BFD_DEFAULT_ECHO_MS);
        let detect_multiplier = ranged(d, &f, &p, "detect-multiplier", rules::BFD_MULTIPLIER)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(rules::BFD_DEFAULT_MULTIPLIER);
        let minimum_ttl = ranged(d, &f, &p, "minimum-ttl", rules::BFD_MINIMUM_TTL)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(rules::BFD_DEFAULT_MINIMUM_TTL);
        let echo_mode = opt_bool(d, &f, &p, "echo-mode").unwrap_or(false);
        let passive_mode = opt_bool(d, &f, &p, "passive-mode").unwrap_or(false);
        let Some(name) = name else { continue };
        if name.is_empty() {
            d.error(
                &child(&p, "name"),
                line_of(&f, "name", entry),
                "must not be empty",
            );
            continue;
        }
        if let Some((j, _)) = declared.iter().find(|(_, n)| *n == name) {
            d.error(
                &child(&p, "name"),
                line_of(&f, "name", entry),
                format!("duplicate BFD profile name {name:?} (also {path}[{j}])"),
            );
            continue;
        }
        declared.push((i, name.clone()));
        if d.errors.len() > errors_before {
            broken.bfd_profiles.insert(name);
            continue;
        }
        out.push(BfdProfile {
            name,
            receive_interval,
            transmit_interval,
            detect_multiplier,
            echo_interval,
            echo_mode,
            passive_mode,
            minimum_ttl,
        });
    }
    out
}
