//! Reading typed values out of the located YAML tree, recording every problem.
//!
//! Type rules follow Go's yaml.v2 (MetalLB's parser): a string field takes any scalar as its
//! source text (`password: 1234` is the string "1234"), a number field needs an unquoted
//! number, a boolean field needs an unquoted boolean (YAML 1.1 spellings such as `yes` are
//! booleans). A null value (`key:` with nothing after it) counts as not given.

use crate::error::Diagnostics;
use crate::yaml::{Kind, Node};

/// Path of a map entry under `parent`.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() || parent == crate::ROOT_PATH {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Path of a list item under `parent`.
pub(crate) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The entries of one mapping, checked for unknown and repeated keys.
pub(crate) struct Fields<'a> {
    entries: Vec<(String, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// The key node and value of `key`, if given with a non-null value.
    pub fn get(&self, key: &str) -> Option<(&'a Node, &'a Node)> {
        self.get_even_null(key)
            .filter(|(_, v)| !matches!(v.kind, Kind::Null))
    }

    /// The key node and value of `key`, if given at all (even as null).
    pub fn get_even_null(&self, key: &str) -> Option<(&'a Node, &'a Node)> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, kn, vn)| (*kn, *vn))
    }
}

/// Reads a mapping whose allowed keys are `known`. Unknown keys and keys given twice are
/// errors (the first occurrence is used). Returns `None` when `node` is not a mapping.
pub(crate) fn read_map<'a>(
    d: &mut Diagnostics,
    node: &'a Node,
    path: &str,
    known: &[&str],
) -> Option<Fields<'a>> {
    let Kind::Map(entries) = &node.kind else {
        d.error(
            path,
            node.line,
            format!("expected a mapping, found {}", node.describe()),
        );
        return None;
    };
    let mut fields = Fields {
        entries: Vec::new(),
    };
    for (k, v) in entries {
        let Some(name) = k.scalar_text() else {
            d.error(
                path,
                k.line,
                format!("keys must be plain names, found {}", k.describe()),
            );
            continue;
        };
        let key_path = child(path, &name);
        if !known.contains(&name.as_str()) {
            d.error(&key_path, k.line, unknown_key_message(&name, known));
            continue;
        }
        if fields.entries.iter().any(|(seen, _, _)| *seen == name) {
            d.error(&key_path, k.line, "key is given more than once");
            continue;
        }
        fields.entries.push((name, k, v));
    }
    Some(fields)
}

fn unknown_key_message(name: &str, known: &[&str]) -> String {
    // Keys of MetalLB's pre-0.7 format, still found in old tutorials.
    let legacy = match name {
        "cidr" => Some("addresses"),
        "advertisements" => Some("bgp-advertisements"),
        _ => None,
    };
    let candidates: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| !k.chars().any(char::is_uppercase))
        .collect();
    let folded = fold(name);
    let suggestion = legacy.filter(|l| candidates.contains(l)).or_else(|| {
        candidates
            .iter()
            .map(|k| (distance(&folded, &fold(k)), *k))
            .min_by_key(|(dist, _)| *dist)
            .filter(|(dist, _)| *dist <= 2)
            .map(|(_, k)| k)
    });
    match suggestion {
        Some(k) => format!("unknown key; did you mean \"{k}\"?"),
        None => format!("unknown key; valid keys here: {}", candidates.join(", ")),
    }
}

/// Lowercase without separators, so `bfdProfile`, `bfd_profile` and `bfd-profile` agree.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A string field.
pub(crate) fn string(d: &mut Diagnostics, node: &Node, path: &str) -> Option<String> {
    let text = node.scalar_text();
    if text.is_none() {
        d.error(
            path,
            node.line,
            format!("expected a string, found {}", node.describe()),
        );
    }
    text
}

/// A boolean field.
pub(crate) fn boolean(d: &mut Diagnostics, node: &Node, path: &str) -> Option<bool> {
    match node.kind {
        Kind::Bool(b) => Some(b),
        _ => {
            d.error(
                path,
                node.line,
                format!("expected true or false, found {}", node.describe()),
            );
            None
        }
    }
}

/// An integer field, within `min..=max`; `range_hint` explains the range in errors.
pub(crate) fn integer(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    min: i128,
    max: i128,
    range_hint: &str,
) -> Option<i128> {
    let value = match &node.kind {
        Kind::Int(i) => Some(*i),
        // `064512`: YAML 1.2 (serde-saphyr) reads a float 64512, YAML 1.1 (MetalLB's yaml.v2)
        // reads octal 26954. Refuse rather than silently pick one meaning.
        Kind::Float(_)
            if node.raw.as_deref().is_some_and(|r| {
                let r = r.trim();
                r.len() > 1 && r.starts_with('0') && r.bytes().all(|b| b.is_ascii_digit())
            }) =>
        {
            d.error(
                path,
                node.line,
                format!(
                    "{} has a leading zero, which MetalLB's YAML parser reads as octal; write \
                     the number without it",
                    node.raw.as_deref().unwrap_or_default().trim()
                ),
            );
            return None;
        }
        // Digits too large for any integer type arrive as a float.
        Kind::Float(_)
            if node
                .raw
                .as_deref()
                .is_some_and(|r| r.trim().bytes().all(|b| b.is_ascii_digit() || b == b'-')) =>
        {
            d.error(
                path,
                node.line,
                format!(
                    "{} is out of range: {range_hint}",
                    node.raw.as_deref().unwrap_or_default().trim()
                ),
            );
            return None;
        }
        _ => None,
    };
    let Some(value) = value else {
        d.error(
            path,
            node.line,
            format!("expected a whole number, found {}", node.describe()),
        );
        return None;
    };
    if value < min || value > max {
        d.error(
            path,
            node.line,
            format!("{value} is out of range: {range_hint}"),
        );
        return None;
    }
    Some(value)
}

/// A list field; null counts as an empty list.
pub(crate) fn list<'a>(d: &mut Diagnostics, node: &'a Node, path: &str) -> Option<&'a [Node]> {
    match &node.kind {
        Kind::Seq(items) => Some(items),
        Kind::Null => Some(&[]),
        _ => {
            d.error(
                path,
                node.line,
                format!("expected a list, found {}", node.describe()),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["bfd-profile", "bfdProfile", "peer-asn", "my-asn"];
        assert_eq!(
            unknown_key_message("bfd_profile", &known),
            "unknown key; did you mean \"bfd-profile\"?"
        );
        assert_eq!(
            unknown_key_message("peer-as", &known),
            "unknown key; did you mean \"peer-asn\"?"
        );
        assert_eq!(
            unknown_key_message("cidr", &["name", "addresses"]),
            "unknown key; did you mean \"addresses\"?"
        );
        assert_eq!(
            unknown_key_message("colour", &known),
            "unknown key; valid keys here: bfd-profile, peer-asn, my-asn"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(child("", "peers"), "peers");
        assert_eq!(item("peers", 2), "peers[2]");
        assert_eq!(child("peers[2]", "hold-time"), "peers[2].hold-time");
    }
}
