//! Whole ConfigMap manifests and the `check-config` report.
//!
//! Operators keep MetalLB's configuration as a manifest file (`kubectl apply -f`), so
//! `check-config` accepts either that file or the bare config document, and reports lines
//! of the file they are editing.

use std::path::Path;

use crate::error::{ConfigErrors, Diagnostics, Line};
use crate::yaml::{Kind, Node};
use crate::{Parsed, ROOT_PATH, parse_config};

/// Parses a ConfigMap manifest (possibly one document of several, or a `kind: List`):
/// the ConfigMap named `config`, else the first ConfigMap; its `data.config` is parsed with
/// [`parse_config`]. Error lines are lines of `text` when `data.config` is a literal block
/// (`config: |`), otherwise lines inside `data.config` ([`Line::InDataConfig`]).
pub fn parse_configmap_manifest(text: &str) -> Result<Parsed, ConfigErrors> {
    let mut d = Diagnostics::default();
    let docs = match crate::yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            d.error(ROOT_PATH, e.line, format!("invalid YAML: {}", e.message));
            return Err(into_errors(d));
        }
    };
    let mut configmaps: Vec<&Node> = Vec::new();
    for doc in &docs {
        collect_configmaps(doc, &mut configmaps);
    }
    let chosen = configmaps
        .iter()
        .find(|cm| name_of(cm).as_deref() == Some("config"))
        .or_else(|| configmaps.first());
    let Some(cm) = chosen else {
        d.error(
            ROOT_PATH,
            docs.first().map(|n| n.line).unwrap_or(0),
            "no ConfigMap found (expected a document with kind: ConfigMap and data.config)",
        );
        return Err(into_errors(d));
    };

    match get(cm, "apiVersion") {
        Some((_, v)) if v.scalar_text().as_deref() == Some("v1") => {}
        Some((_, v)) => d.error(
            "apiVersion",
            v.line,
            format!("a ConfigMap has apiVersion v1, found {}", v.describe()),
        ),
        None => d.error(ROOT_PATH, cm.line, "missing apiVersion: v1"),
    }

    let data = get(cm, "data").map(|(_, v)| v);
    let config = data.and_then(|data| get(data, "config"));
    let Some((key, value)) = config else {
        let keys: Vec<String> = match data.map(|n| &n.kind) {
            Some(Kind::Map(entries)) => entries
                .iter()
                .filter_map(|(k, _)| k.scalar_text())
                .collect(),
            _ => Vec::new(),
        };
        let has = if keys.is_empty() {
            String::new()
        } else {
            format!(" (data has: {})", keys.join(", "))
        };
        d.warn(
            "data.config",
            data.map(|n| n.line).unwrap_or(cm.line),
            format!(
                "the ConfigMap has no data.config{has}; MetalLB treats that as an empty \
                 configuration (no peers, no pools)"
            ),
        );
        return finish(
            d,
            Parsed {
                config: crate::Config::default(),
                warnings: Vec::new(),
            },
        );
    };
    let body = match &value.kind {
        Kind::Str(s) => s.clone(),
        Kind::Null => String::new(),
        _ => {
            d.error(
                "data.config",
                value.line,
                format!(
                    "expected the configuration as a string (write `config: |` and indent the \
                     document under it), found {}",
                    value.describe()
                ),
            );
            return Err(into_errors(d));
        }
    };

    let offset = literal_block_offset(text, key.line);
    let remap = |line: Line| match (line, offset) {
        (Line::At(n), Some(off)) => Line::At(n + off),
        (Line::At(n), None) => Line::InDataConfig(n),
        (other, _) => other,
    };
    match parse_config(&body) {
        Ok(mut parsed) => {
            for w in &mut parsed.warnings {
                w.line = remap(w.line);
            }
            finish(d, parsed)
        }
        Err(mut errs) => {
            errs.map_lines(remap);
            let mut all = into_errors(d);
            all.errors.extend(errs.errors);
            all.warnings.extend(errs.warnings);
            Err(all)
        }
    }
}

fn into_errors(d: Diagnostics) -> ConfigErrors {
    ConfigErrors {
        errors: d.errors,
        warnings: d.warnings,
    }
}

fn finish(d: Diagnostics, mut parsed: Parsed) -> Result<Parsed, ConfigErrors> {
    if d.errors.is_empty() {
        let mut warnings = d.warnings;
        warnings.append(&mut parsed.warnings);
        parsed.warnings = warnings;
        Ok(parsed)
    } else {
        let mut errs = into_errors(d);
        errs.warnings.extend(parsed.warnings);
        Err(errs)
    }
}

/// When the key on `key_line` (1-based) introduces a literal block (`config: |`, `|-`,
/// `|+`, `|2`, optionally followed by a comment), line N of the string is line
/// `key_line + N` of the file.
fn literal_block_offset(text: &str, key_line: u32) -> Option<u32> {
    let idx = usize::try_from(key_line).ok()?.checked_sub(1)?;
    let line = text.lines().nth(idx)?;
    let after_key = line.split_once(':')?.1.trim_start();
    let indicator = after_key.strip_prefix('|')?;
    let rest = indicator.trim_start_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit());
    let rest = rest.trim_start();
    (rest.is_empty() || rest.starts_with('#')).then_some(key_line)
}

fn get<'a>(node: &'a Node, key: &str) -> Option<(&'a Node, &'a Node)> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(k, v)| (k, v)),
        _ => None,
    }
}

fn is_kind(node: &Node, kind: &str) -> bool {
    get(node, "kind")
        .and_then(|(_, v)| v.scalar_text())
        .as_deref()
        == Some(kind)
}

fn name_of(node: &Node) -> Option<String> {
    get(node, "metadata")
        .and_then(|(_, m)| get(m, "name"))
        .and_then(|(_, n)| n.scalar_text())
}

fn collect_configmaps<'a>(doc: &'a Node, out: &mut Vec<&'a Node>) {
    if is_kind(doc, "ConfigMap") {
        out.push(doc);
    } else if is_kind(doc, "List")
        && let Some((_, items)) = get(doc, "items")
        && let Kind::Seq(items) = &items.kind
    {
        for it in items {
            collect_configmaps(it, out);
        }
    }
}

/// Whether `text` looks like a Kubernetes manifest rather than a bare config document.
fn is_manifest(text: &str) -> bool {
    match crate::yaml::parse_documents(text) {
        Ok(docs) => docs
            .iter()
            .any(|d| get(d, "kind").is_some() || get(d, "apiVersion").is_some()),
        Err(_) => false,
    }
}

/// Parses a config given as text: a ConfigMap manifest (a document with `kind` or
/// `apiVersion`) with [`parse_configmap_manifest`], else a bare config document.
pub fn parse_config_text(text: &str) -> Result<Parsed, ConfigErrors> {
    if is_manifest(text) {
        parse_configmap_manifest(text)
    } else {
        parse_config(text)
    }
}

/// Checks a config given as text (a bare config document or a ConfigMap manifest) and
/// returns exactly what `ferrolb-controller check-config` prints, plus whether it is valid.
///
/// Valid: `OK: N peers, M pools (NAME: PROTOCOL, K addresses; ...)` then one
/// `warning: ...` line per warning. Invalid: one `error: ...` line per error, then the
/// warnings. Every line ends in a newline.
pub fn check_config_text(text: &str) -> (String, bool) {
    let result = parse_config_text(text);
    let mut out = String::new();
    match result {
        Ok(parsed) => {
            let c = &parsed.config;
            out.push_str(&format!(
                "OK: {} peers, {} pools",
                c.peers.len(),
                c.pools.len()
            ));
            if !c.pools.is_empty() {
                let pools: Vec<String> = c
                    .pools
                    .iter()
                    .map(|p| format!("{}: {}, {} addresses", p.name, p.protocol, p.size()))
                    .collect();
                out.push_str(&format!(" ({})", pools.join("; ")));
            }
            out.push('\n');
            for w in &parsed.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            (out, true)
        }
        Err(errs) => {
            for e in &errs.errors {
                out.push_str(&format!("error: {e}\n"));
            }
            for w in &errs.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            (out, false)
        }
    }
}

/// [`check_config_text`] on a file.
pub fn check_config_file(path: impl AsRef<Path>) -> (String, bool) {
    let path = path.as_ref();
    match std::fs::read_to_string(path) {
        Ok(text) => check_config_text(&text),
        Err(e) => (
            format!("error: cannot read {}: {e}\n", path.display()),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_block_detection() {
        let text = "data:\n  config: |\n    a: 1\n  other: |-  # c\n  third: >\n  q: \"x\"\n";
        assert_eq!(literal_block_offset(text, 2), Some(2));
        assert_eq!(literal_block_offset(text, 4), Some(4));
        assert_eq!(literal_block_offset(text, 5), None);
        assert_eq!(literal_block_offset(text, 6), None);
        assert_eq!(literal_block_offset(text, 0), None);
        assert_eq!(literal_block_offset(text, 99), None);
    }
}
