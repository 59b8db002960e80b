//! `bgp-communities`: alias -> community value.

use std::collections::BTreeMap;

use super::Broken;
use crate::error::Diagnostics;
use crate::fields::{child, string};
use crate::model::Community;
use crate::rules;
use crate::yaml::{Kind, Node};

pub(super) fn decode_communities(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    broken: &mut Broken,
) -> BTreeMap<String, Community> {
    let mut out = BTreeMap::new();
    let Kind::Map(entries) = &node.kind else {
        d.error(
            path,
            node.line,
            format!(
                "expected a mapping of alias: \"<0-65535>:<0-65535>\", found {}",
                node.describe()
            ),
        );
        return out;
    };
    for (k, v) in entries {
        let Some(alias) = k.scalar_text() else {
            d.error(
                path,
                k.line,
                format!("aliases must be names, found {}", k.describe()),
            );
            continue;
        };
        let p = child(path, &alias);
        if out.contains_key(&alias) || broken.aliases.contains(&alias) {
            d.error(&p, k.line, "alias is defined more than once");
            continue;
        }
        let Some(text) = string(d, v, &p) else {
            broken.aliases.insert(alias);
            continue;
        };
        match rules::community_value(&text) {
            Ok(c) => {
                out.insert(alias, c);
            }
            Err(reason) => {
                d.error(&p, v.line, reason);
                broken.aliases.insert(alias);
            }
        }
    }
    out
}
