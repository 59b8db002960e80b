//! `node-selectors[]`: Kubernetes label selectors, `match-labels` and `match-expressions`.

use super::helpers::{line_of, required_string};
use crate::error::Diagnostics;
use crate::fields::{child, item, list, read_map, string};
use crate::selector::{
    LabelRequirement, NodeSelector, SelectorOperator, validate_key, validate_value,
};
use crate::yaml::{Kind, Node};

const SELECTOR_KEYS: &[&str] = &["match-labels", "match-expressions"];
const EXPRESSION_KEYS: &[&str] = &["key", "operator", "values"];

pub(super) fn decode_selectors(d: &mut Diagnostics, node: &Node, path: &str) -> Vec<NodeSelector> {
    let mut out = Vec::new();
    let Some(items) = list(d, node, path) else {
        return out;
    };
    for (i, entry) in items.iter().enumerate() {
        let p = item(path, i);
        let Some(f) = read_map(d, entry, &p, SELECTOR_KEYS) else {
            continue;
        };
        let mut sel = NodeSelector::default();
        if let Some((_, v)) = f.get("match-labels") {
            let lp = child(&p, "match-labels");
            match &v.kind {
                Kind::Map(entries) => {
                    for (k, val) in entries {
                        let Some(key) = k.scalar_text() else {
                            d.error(
                                &lp,
                                k.line,
                                format!("label keys must be strings, found {}", k.describe()),
                            );
                            continue;
                        };
                        let kp = child(&lp, &key);
                        if let Err(reason) = validate_key(&key) {
                            d.error(&kp, k.line, reason);
                            continue;
                        }
                        if sel.match_labels.contains_key(&key) {
                            d.error(&kp, k.line, "key is given more than once");
                            continue;
                        }
                        let value = match val.kind {
                            Kind::Null => String::new(),
                            _ => match string(d, val, &kp) {
                                Some(s) => s,
                                None => continue,
                            },
                        };
                        if let Err(reason) = validate_value(&value) {
                            d.error(&kp, val.line, reason);
                            continue;
                        }
                        sel.match_labels.insert(key, value);
                    }
                }
                _ => d.error(
                    &lp,
                    v.line,
                    format!("expected a mapping of label: value, found {}", v.describe()),
                ),
            }
        }
        if let Some((_, v)) = f.get("match-expressions") {
            let ep = child(&p, "match-expressions");
            if let Some(exprs) = list(d, v, &ep) {
                for (j, e) in exprs.iter().enumerate() {
                    if let Some(r) = decode_requirement(d, e, &item(&ep, j)) {
                        sel.match_expressions.push(r);
                    }
                }
            }
        }
        out.push(sel);
    }
    out
}

fn decode_requirement(d: &mut Diagnostics, node: &Node, p: &str) -> Option<LabelRequirement> {
    let f = read_map(d, node, p, EXPRESSION_KEYS)?;
    let key = required_string(d, &f, node, p, "key").and_then(|k| match validate_key(&k) {
        Ok(()) => Some(k),
        Err(reason) => {
            d.error(&child(p, "key"), line_of(&f, "key", node), reason);
            None
        }
    });
    let operator = required_string(d, &f, node, p, "operator").and_then(|op| {
        match SelectorOperator::parse(&op) {
            Some(o) => Some(o),
            None => {
                let hint = SelectorOperator::suggest(&op)
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                d.error(
                    &child(p, "operator"),
                    line_of(&f, "operator", node),
                    format!(
                        "{op:?} is not a valid operator (In, NotIn, Exists, DoesNotExist){hint}"
                    ),
                );
                None
            }
        }
    });
    let mut values = Vec::new();
    let mut values_ok = true;
    if let Some((_, v)) = f.get("values") {
        let vp = child(p, "values");
        match list(d, v, &vp) {
            Some(items) => {
                for (i, it) in items.iter().enumerate() {
                    let ip = item(&vp, i);
                    match string(d, it, &ip) {
                        Some(s) => match validate_value(&s) {
                            Ok(()) => values.push(s),
                            Err(reason) => {
                                d.error(&ip, it.line, reason);
                                values_ok = false;
                            }
                        },
                        None => values_ok = false,
                    }
                }
            }
            None => values_ok = false,
        }
    }
    let operator = operator?;
    let values_line = f
        .get_even_null("values")
        .map(|(k, _)| k.line)
        .unwrap_or(node.line);
    match operator {
        SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() && values_ok => {
            d.error(
                &child(p, "values"),
                values_line,
                format!("operator {operator} needs at least one value"),
            );
            return None;
        }
        SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
            d.error(
                &child(p, "values"),
                values_line,
                format!("operator {operator} takes no values"),
            );
            return None;
        }
        _ => {}
    }
    if !values_ok {
        return None;
    }
    Some(LabelRequirement {
        key: key?,
        operator,
        values,
    })
}
