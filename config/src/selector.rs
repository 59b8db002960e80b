//! Kubernetes label selectors, as used by `peers[].node-selectors`.
//!
//! Semantics follow `metav1.LabelSelectorAsSelector`, which MetalLB calls: `match-labels`
//! and every `match-expressions` entry must all hold (AND); operators are exactly `In`,
//! `NotIn`, `Exists`, `DoesNotExist` (case-sensitive, MetalLB does not lowercase); `NotIn`
//! also matches a node without the key. An empty selector matches every node. Across a
//! peer's list of selectors any one matching is enough (OR); an empty list selects all.

use std::collections::BTreeMap;

/// One `node-selectors[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelRequirement>,
}

/// One `match-expressions[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    /// Non-empty for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl SelectorOperator {
    /// The exact spelling Kubernetes accepts.
    pub fn parse(text: &str) -> Option<SelectorOperator> {
        match text {
            "In" => Some(SelectorOperator::In),
            "NotIn" => Some(SelectorOperator::NotIn),
            "Exists" => Some(SelectorOperator::Exists),
            "DoesNotExist" => Some(SelectorOperator::DoesNotExist),
            _ => None,
        }
    }

    /// The spelling Kubernetes uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            SelectorOperator::In => "In",
            SelectorOperator::NotIn => "NotIn",
            SelectorOperator::Exists => "Exists",
            SelectorOperator::DoesNotExist => "DoesNotExist",
        }
    }

    /// The valid spelling closest to a wrong one (`in` -> `In`), for hints.
    pub fn suggest(text: &str) -> Option<&'static str> {
        let folded: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match folded.as_str() {
            "in" => Some("In"),
            "notin" => Some("NotIn"),
            "exists" => Some("Exists"),
            "doesnotexist" | "notexists" => Some("DoesNotExist"),
            _ => None,
        }
    }
}

impl std::fmt::Display for SelectorOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NodeSelector {
    /// Whether a node with these labels satisfies the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl LabelRequirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// OR across selectors; an empty list matches every node.
pub fn any_matches(selectors: &[NodeSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Checks a label key the way Kubernetes does (`[prefix/]name`). Returns the reason.
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !is_dns_subdomain(p))
    {
        return Err(format!(
            "{key:?} is not a valid label key: the prefix must be a lowercase DNS subdomain"
        ));
    }
    if name.is_empty() {
        return Err(format!(
            "{key:?} is not a valid label key: the name is empty"
        ));
    }
    if name.len() > 63 || !is_label_name(name) {
        return Err(format!(
            "{key:?} is not a valid label key: the name must be at most 63 characters of \
             letters, digits, '-', '_', '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value the way Kubernetes does. Returns the reason.
pub fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_name(value)) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid label value: at most 63 characters of letters, digits, \
             '-', '_', '.', starting and ending with a letter or digit"
        ))
    }
}

fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.last().is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: SelectorOperator, values: &[&str]) -> LabelRequirement {
        LabelRequirement {
            key: key.into(),
            operator: op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators() {
        let node = labels(&[("arch", "amd64"), ("zone", "a")]);
        assert!(req("arch", SelectorOperator::In, &["amd64", "arm"]).matches(&node));
        assert!(!req("arch", SelectorOperator::In, &["arm"]).matches(&node));
        assert!(!req("missing", SelectorOperator::In, &["x"]).matches(&node));
        assert!(req("arch", SelectorOperator::NotIn, &["arm"]).matches(&node));
        assert!(!req("arch", SelectorOperator::NotIn, &["amd64"]).matches(&node));
        assert!(req("missing", SelectorOperator::NotIn, &["x"]).matches(&node));
        assert!(req("zone", SelectorOperator::Exists, &[]).matches(&node));
        assert!(!req("missing", SelectorOperator::Exists, &[]).matches(&node));
        assert!(req("missing", SelectorOperator::DoesNotExist, &[]).matches(&node));
        assert!(!req("zone", SelectorOperator::DoesNotExist, &[]).matches(&node));
    }

    #[test]
    fn and_inside_or_across() {
        let node = labels(&[("kubernetes.io/hostname", "prod-01"), ("arch", "amd64")]);
        let sel = NodeSelector {
            match_labels: labels(&[("kubernetes.io/hostname", "prod-01")]),
            match_expressions: vec![req("arch", SelectorOperator::In, &["arm"])],
        };
        assert!(!sel.matches(&node), "AND inside one selector");
        let other = NodeSelector {
            match_labels: labels(&[("arch", "amd64")]),
            match_expressions: vec![],
        };
        assert!(
            any_matches(&[sel.clone(), other], &node),
            "OR across selectors"
        );
        assert!(!any_matches(std::slice::from_ref(&sel), &node));
        assert!(any_matches(&[], &node), "no selectors: every node");
        assert!(
            NodeSelector::default().matches(&node),
            "empty selector: every node"
        );
    }

    #[test]
    fn key_and_value_validation() {
        assert!(validate_key("kubernetes.io/hostname").is_ok());
        assert!(validate_key("beta.kubernetes.io/arch").is_ok());
        assert!(validate_key("rack").is_ok());
        assert_eq!(
            validate_key("Kubernetes.io/hostname"),
            Err("\"Kubernetes.io/hostname\" is not a valid label key: the prefix must be a lowercase DNS subdomain".into())
        );
        assert_eq!(
            validate_key("a/"),
            Err("\"a/\" is not a valid label key: the name is empty".into())
        );
        assert!(validate_key("-bad").is_err());
        assert!(validate_value("").is_ok());
        assert!(validate_value("prod-01").is_ok());
        assert!(validate_value("bad value").is_err());
        assert!(validate_value(&"x".repeat(64)).is_err());
    }

    #[test]
    fn operator_spelling() {
        assert_eq!(SelectorOperator::parse("In"), Some(SelectorOperator::In));
        assert_eq!(SelectorOperator::parse("in"), None);
        assert_eq!(SelectorOperator::suggest("in"), Some("In"));
        assert_eq!(
            SelectorOperator::suggest("does-not-exist"),
            Some("DoesNotExist")
        );
        assert_eq!(SelectorOperator::suggest("Equals"), None);
    }
}
