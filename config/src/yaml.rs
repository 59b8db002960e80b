//! A located YAML tree.
//!
//! serde-saphyr parses the text; instead of deserializing straight into the schema (which
//! stops at the first problem and loses track of where values were), we first build a small
//! generic tree in which every node remembers its line and, for scalars, its source text.
//! The schema decoder then walks this tree and can report *every* problem with its path and
//! line at once.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// One YAML node with its 1-based line in the parsed text (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub line: u32,
    /// The scalar's source text as written (quotes included), when the parser knows it.
    /// YAML 1.1 parsers (Go's yaml.v2, which MetalLB uses) hand a plain scalar such as
    /// `1234` to a string field as its original text, so string fields need it.
    pub raw: Option<String>,
}

/// The shape of a node. Scalars are typed the way the YAML core schema resolves them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A short human description of what this node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing (null)".to_string(),
            Kind::Bool(b) => format!("the boolean {b}"),
            Kind::Int(_) | Kind::Float(_) => format!("the number {}", self.text_or_debug()),
            Kind::Str(s) => format!("the string {s:?}"),
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
        }
    }

    /// The text of a scalar as Go's yaml.v2 would store it in a string field: the value of a
    /// string, the source spelling of any other scalar. `None` for null and collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Bool(_) | Kind::Int(_) | Kind::Float(_) => Some(self.text_or_debug()),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    fn text_or_debug(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.trim().to_string();
        }
        match &self.kind {
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Str(s) => s.clone(),
            Kind::Null => String::new(),
            Kind::Seq(_) | Kind::Map(_) => String::new(),
        }
    }
}

/// A YAML syntax error: the parser's reason and line (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: u32,
    pub message: String,
}

/// Parses every document of `text`. Empty documents (nothing, or only comments) are skipped,
/// as serde-saphyr does.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let options = serde_saphyr::options! {
        // Duplicate keys are forwarded so the decoder reports them with their path,
        // alongside every other problem.
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        // `.inf`/`.nan` are ordinary scalars to the schema (e.g. a string field's text);
        // the decoder rejects them where a number is needed, with a path.
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    match serde_saphyr::from_multiple_with_options::<Spanned<RawNode>>(text, options) {
        Ok(docs) => Ok(docs.into_iter().map(|d| convert(d, text)).collect()),
        Err(err) => Err(syntax_error(&err)),
    }
}

fn syntax_error(err: &serde_saphyr::Error) -> SyntaxError {
    let line = err
        .location()
        .map(|l| u32::try_from(l.line()).unwrap_or(0))
        .unwrap_or(0);
    let rendered = err.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    // The plain rendering ends in " at line N, column M"; the line is reported separately.
    let message = match rendered.rfind(" at line ") {
        Some(idx) if rendered[idx..].contains(", column ") => rendered[..idx].to_string(),
        _ => rendered,
    };
    let message = message.trim_start_matches("error: ").trim().to_string();
    SyntaxError { line, message }
}

fn convert(node: Spanned<RawNode>, text: &str) -> Node {
    let line = u32::try_from(node.referenced.line()).unwrap_or(0);
    let span = node.referenced.span();
    let raw = match (span.byte_offset(), span.byte_len()) {
        (Some(off), Some(len)) => usize::try_from(off)
            .ok()
            .zip(usize::try_from(off.saturating_add(len)).ok())
            .and_then(|(start, end)| text.get(start..end))
            .map(str::to_string),
        _ => None,
    };
    let kind = match node.value {
        RawNode::Null => Kind::Null,
        RawNode::Bool(b) => Kind::Bool(b),
        RawNode::Int(i) => Kind::Int(i),
        RawNode::Float(f) => Kind::Float(f),
        RawNode::Str(s) => Kind::Str(s),
        RawNode::Seq(items) => Kind::Seq(items.into_iter().map(|n| convert(n, text)).collect()),
        RawNode::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(k, text), convert(v, text)))
                .collect(),
        ),
    };
    let raw = match kind {
        // Only scalars carry source text; for collections it would be the whole block.
        Kind::Seq(_) | Kind::Map(_) | Kind::Null => None,
        _ => raw.filter(|r| !r.is_empty() && !r.starts_with('*')),
    };
    Node { kind, line, raw }
}

/// The tree as serde sees it; every child keeps its span.
enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawNode, E> {
        // Out-of-range values saturate; every schema field is far smaller anyway.
        Ok(RawNode::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<RawNode, E> {
        Ok(RawNode::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawNode>>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            entries.push((key, value));
        }
        Ok(RawNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_documents(text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn scalars_keep_line_and_source_text() {
        let doc = one("a: 64512:1\nb: \"64512\"\nc: 0x1F\nd: yes\n");
        let Kind::Map(entries) = &doc.kind else {
            panic!("expected map, got {doc:?}")
        };
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].1.kind, Kind::Str("64512:1".into()));
        assert_eq!(entries[1].1.kind, Kind::Str("64512".into()));
        assert_eq!(entries[2].1.kind, Kind::Int(31));
        assert_eq!(entries[2].1.scalar_text().as_deref(), Some("0x1F"));
        assert_eq!(entries[3].1.kind, Kind::Bool(true));
        assert_eq!(entries[3].1.scalar_text().as_deref(), Some("yes"));
        assert_eq!(entries[3].1.line, 4);
    }

    #[test]
    fn duplicate_keys_are_passed_through() {
        let doc = one("a: 1\na: 2\n");
        let Kind::Map(entries) = &doc.kind else {
            panic!("expected map")
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0.line, 2);
    }

    #[test]
    fn syntax_error_has_line_and_reason() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.message, "illegal placement of ':' indicator");
    }

    #[test]
    fn empty_and_comment_only_texts_have_no_documents() {
        assert!(parse_documents("").expect("parses").is_empty());
        assert!(parse_documents("# nothing\n").expect("parses").is_empty());
    }
}
