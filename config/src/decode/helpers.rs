//! Small readers every section uses: required keys, booleans, AS numbers, IPs, durations.
//! Each records its problem in the diagnostics and returns `None` on error.

use std::net::IpAddr;

use crate::error::Diagnostics;
use crate::fields::{Fields, boolean, child, integer, string};
use crate::rules;
use crate::yaml::Node;

/// The value of a required key with its path; records "missing" on the entry otherwise.
pub(super) fn required<'a>(
    d: &mut Diagnostics,
    f: &Fields<'a>,
    entry: &Node,
    p: &str,
    key: &str,
) -> Option<(&'a Node, String)> {
    match f.get(key) {
        Some((_, v)) => Some((v, child(p, key))),
        None => {
            if let Some((k, _)) = f.get_even_null(key) {
                d.error(&child(p, key), k.line, "required value is empty");
            } else {
                d.error(p, entry.line, format!("missing required key {key:?}"));
            }
            None
        }
    }
}

pub(super) fn required_string(
    d: &mut Diagnostics,
    f: &Fields<'_>,
    entry: &Node,
    p: &str,
    key: &str,
) -> Option<String> {
    let (v, vp) = required(d, f, entry, p, key)?;
    string(d, v, &vp)
}

pub(super) fn opt_bool(d: &mut Diagnostics, f: &Fields<'_>, p: &str, key: &str) -> Option<bool> {
    let (_, v) = f.get(key)?;
    boolean(d, v, &child(p, key))
}

/// Line of a key's value, or of the entry when absent.
pub(super) fn line_of(f: &Fields<'_>, key: &str, entry: &Node) -> u32 {
    f.get_even_null(key)
        .map(|(_, v)| v.line)
        .unwrap_or(entry.line)
}

pub(super) fn asn(d: &mut Diagnostics, v: &Node, vp: &str) -> Option<u32> {
    let n = integer(d, v, vp, 0, i128::from(u32::MAX), rules::ASN_RANGE)?;
    let n = u32::try_from(n).ok()?;
    match rules::nonzero_asn(n) {
        Ok(n) => Some(n),
        Err(reason) => {
            d.error(vp, v.line, reason);
            None
        }
    }
}

pub(super) fn parse_ip_field(
    d: &mut Diagnostics,
    text: &str,
    v: &Node,
    vp: &str,
) -> Option<IpAddr> {
    check(d, v, vp, rules::ip(text))
}

/// A Go duration that must be a non-negative whole number of seconds.
pub(super) fn whole_seconds(d: &mut Diagnostics, text: &str, v: &Node, vp: &str) -> Option<u64> {
    check(d, v, vp, rules::whole_seconds(text))
}

/// A rule's verdict on the value at `v`: the value, or its reason recorded there.
pub(super) fn check<T>(d: &mut Diagnostics, v: &Node, vp: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(reason) => {
            d.error(vp, v.line, reason);
            None
        }
    }
}
