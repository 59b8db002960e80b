//! Kubernetes `LabelSelector`s (node, pool, namespace and Service selectors), checked with
//! the rules the ConfigMap's `node-selectors` follow, plus MetalLB's CRD rule that a list
//! holds no selector twice and a selector no expression or value twice.

use std::collections::BTreeMap;

use ferrolb_config::rules::{label_key, label_value};
use ferrolb_config::{LabelRequirement, NodeSelector, ObjectRef, SelectorOperator};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::diag::{Diag, item};

/// A list of selectors at `path`; invalid ones are reported and left out.
pub(crate) fn selectors(
    d: &mut Diag,
    o: &ObjectRef,
    path: &str,
    list: &[LabelSelector],
) -> Vec<NodeSelector> {
    let mut out: Vec<(NodeSelector, String)> = Vec::new();
    for (i, sel) in list.iter().enumerate() {
        let p = item(path, i);
        let Some(s) = selector(d, o, &p, sel) else {
            continue;
        };
        if let Some((_, first)) = out.iter().find(|(other, _)| same_selector(other, &s)) {
            d.error(
                o,
                &p,
                format!("the same selector as {first} (MetalLB rejects this too)"),
            );
            continue;
        }
        out.push((s, p));
    }
    out.into_iter().map(|(s, _)| s).collect()
}

/// Equal once the values of every expression are sorted (MetalLB's comparison).
fn same_selector(a: &NodeSelector, b: &NodeSelector) -> bool {
    let norm = |s: &NodeSelector| {
        let mut exprs: Vec<(String, &'static str, Vec<String>)> = s
            .match_expressions
            .iter()
            .map(|r| {
                let mut v = r.values.clone();
                v.sort();
                (r.key.clone(), r.operator.as_str(), v)
            })
            .collect();
        exprs.sort();
        (s.match_labels.clone(), exprs)
    };
    norm(a) == norm(b)
}

/// One selector; `None` when any part of it is invalid (each part reported).
pub(crate) fn selector(
    d: &mut Diag,
    o: &ObjectRef,
    path: &str,
    sel: &LabelSelector,
) -> Option<NodeSelector> {
    let errors_before = d.errors.len();
    let mut out = NodeSelector::default();
    let labels: &BTreeMap<String, String> = match &sel.match_labels {
        Some(m) => m,
        None => &BTreeMap::new(),
    };
    for (k, v) in labels {
        let kp = format!("{path}.matchLabels.{k}");
        let ok = d.check(o, &kp, label_key(k)).is_some();
        if ok && d.check(o, &kp, label_value(v)).is_some() {
            out.match_labels.insert(k.clone(), v.clone());
        }
    }
    let ep = format!("{path}.matchExpressions");
    // Index in the input of each kept expression, for "the same as" notes.
    let mut kept_at: Vec<usize> = Vec::new();
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let p = item(&ep, i);
        let key_ok = d.check(o, &format!("{p}.key"), label_key(&e.key)).is_some();
        let Some(operator) = SelectorOperator::parse(&e.operator) else {
            let hint = SelectorOperator::suggest(&e.operator)
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_default();
            d.error(
                o,
                &format!("{p}.operator"),
                format!(
                    "{:?} is not a valid operator (In, NotIn, Exists, DoesNotExist){hint}",
                    e.operator
                ),
            );
            continue;
        };
        let values = e.values.clone().unwrap_or_default();
        let vp = format!("{p}.values");
        let mut values_ok = true;
        for (j, v) in values.iter().enumerate() {
            let ip = item(&vp, j);
            values_ok &= d.check(o, &ip, label_value(v)).is_some();
            if let Some(first) = values[..j].iter().position(|w| w == v) {
                let first = item(&vp, first);
                d.error(o, &ip, super::diag::duplicate("value", v, &first));
                values_ok = false;
            }
        }
        match operator {
            SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() => {
                d.error(
                    o,
                    &vp,
                    format!("operator {operator} needs at least one value"),
                );
                continue;
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
                d.error(o, &vp, format!("operator {operator} takes no values"));
                continue;
            }
            _ => {}
        }
        if !(key_ok && values_ok) {
            continue;
        }
        let req = LabelRequirement {
            key: e.key.clone(),
            operator,
            values,
        };
        let same = |r: &LabelRequirement| {
            let (mut a, mut b) = (r.values.clone(), req.values.clone());
            a.sort();
            b.sort();
            r.key == req.key && r.operator == req.operator && a == b
        };
        if let Some(first) = out.match_expressions.iter().position(same) {
            d.error(
                o,
                &p,
                format!(
                    "the same expression as {} (MetalLB rejects this too)",
                    item(&ep, kept_at[first])
                ),
            );
            continue;
        }
        out.match_expressions.push(req);
        kept_at.push(i);
    }
    (d.errors.len() == errors_before).then_some(out)
}
