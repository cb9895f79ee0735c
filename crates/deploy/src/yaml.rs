//! A bounded YAML reader that keeps where every scalar sits in the text.
//!
//! Built on `saphyr-parser`'s event stream (a state machine: no recursion,
//! so deep nesting cannot exhaust the stack) rather than on a serde
//! deserializer, because rewriting needs each scalar's position, and
//! serde_yaml's maintained forks (serde_yaml_ng, serde_norway) give
//! positions only in errors. The tree is built here with explicit limits:
//!
//! - nesting deeper than [`MAX_DEPTH`] stops the file;
//! - more than [`MAX_NODES`] nodes stops the file;
//! - an alias is a second edge to the node it names, never a copy, so an
//!   alias bomb costs memory in proportion to its text; walking it is what
//!   could explode, and walkers count visits against [`MAX_VISITS`].
//!
//! An alias to an anchor whose node is not complete (a cycle) is refused.

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting of collections accepted. Kubernetes objects nest about
/// 15 levels; CRDs with embedded pod templates under 40.
pub const MAX_DEPTH: usize = 128;
/// Most nodes accepted in one file.
pub const MAX_NODES: usize = 2_000_000;
/// Most node visits a walk of one document may make (aliases visited again
/// count again).
pub const MAX_VISITS: usize = 2_000_000;

/// Index of a node in a [`Tree`].
pub(crate) type NodeId = usize;

/// How a scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Block,
}

/// A scalar and where its event starts and ends in the text (bytes).
#[derive(Debug)]
pub(crate) struct Scalar {
    pub value: String,
    pub style: Style,
    /// 1-based line of the scalar's start.
    pub line: usize,
    pub start: usize,
    pub end: usize,
}

/// One node.
#[derive(Debug)]
pub(crate) enum Node {
    Scalar(Scalar),
    Seq(Vec<NodeId>),
    /// Key and value pairs, in order.
    Map(Vec<(NodeId, NodeId)>),
}

/// Every document of one YAML stream.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    /// The root node of each document, in order.
    pub docs: Vec<NodeId>,
}

/// Why a text is not read: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Byte offsets of line starts, to turn (line, column in characters) into
/// byte offsets.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// Byte offset of 1-based `line`, 0-based character `col`.
    fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(col)
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

enum Frame {
    Seq(Vec<NodeId>, usize),
    Map(Vec<NodeId>, usize),
}

/// Parse every document of `text`.
pub(crate) fn parse(text: &str) -> Result<Tree, SyntaxError> {
    let lines = Lines::new(text);
    let mut tree = Tree::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, NodeId> = HashMap::new();
    let fail = |span: &Span, message: String| SyntaxError {
        line: span.start.line(),
        message,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
        let done: Option<(NodeId, usize)> = match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    _ => Style::Block,
                };
                let start = lines.offset(span.start.line(), span.start.col());
                let end = lines.offset(span.end.line(), span.end.col()).max(start);
                tree.nodes.push(Node::Scalar(Scalar {
                    value: value.into_owned(),
                    style,
                    line: span.start.line(),
                    start,
                    end,
                }));
                Some((tree.nodes.len() - 1, anchor))
            }
            Event::Alias(anchor) => {
                let id = *anchors.get(&anchor).ok_or_else(|| {
                    fail(
                        &span,
                        "an alias names an anchor that is not complete (a cycle) or not defined"
                            .into(),
                    )
                })?;
                Some((id, 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(fail(
                        &span,
                        format!("nested deeper than {MAX_DEPTH} levels (a YAML bomb?)"),
                    ));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(Vec::new(), anchor)
                } else {
                    Frame::Map(Vec::new(), anchor)
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => {
                    tree.nodes.push(Node::Seq(items));
                    Some((tree.nodes.len() - 1, anchor))
                }
                Some(Frame::Map(flat, anchor)) => {
                    let pairs = flat.chunks(2).map(|p| (p[0], p[1])).collect();
                    tree.nodes.push(Node::Map(pairs));
                    Some((tree.nodes.len() - 1, anchor))
                }
                None => return Err(fail(&span, "unbalanced collection end".into())),
            },
            Event::DocumentStart(_) => {
                anchors.clear();
                None
            }
            _ => None,
        };
        if tree.nodes.len() > MAX_NODES {
            return Err(fail(
                &span,
                format!("more than {MAX_NODES} nodes; not a deployment file?"),
            ));
        }
        if let Some((id, anchor)) = done {
            if anchor != 0 {
                anchors.insert(anchor, id);
            }
            match stack.last_mut() {
                Some(Frame::Seq(items, _)) | Some(Frame::Map(items, _)) => items.push(id),
                None => tree.docs.push(id),
            }
        }
    }
    Ok(tree)
}

impl Tree {
    /// The scalar at `id`, if it is one.
    pub fn scalar(&self, id: NodeId) -> Option<&Scalar> {
        match &self.nodes[id] {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` in the mapping `id`.
    pub fn get(&self, id: NodeId, key: &str) -> Option<NodeId> {
        match &self.nodes[id] {
            Node::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| self.scalar(*k).is_some_and(|s| s.value == key))
                .map(|(_, v)| *v),
            _ => None,
        }
    }

    /// The string value of `key` in the mapping `id`.
    pub fn get_str(&self, id: NodeId, key: &str) -> Option<&str> {
        self.get(id, key)
            .and_then(|v| self.scalar(v))
            .map(|s| s.value.as_str())
    }
}

impl Scalar {
    /// The byte range of the scalar's content in `text` (inside its
    /// quotes), when it is written on one line in a form a rewrite can
    /// replace: plain, single-quoted, or double-quoted without escapes.
    pub fn content_range(&self, text: &str) -> Option<Range<usize>> {
        let (token, skip) = match self.style {
            Style::Plain => (self.value.clone(), 0),
            Style::SingleQuoted => (format!("'{}'", self.value.replace('\'', "''")), 1),
            Style::DoubleQuoted if !self.value.contains(['"', '\\']) => {
                (format!("\"{}\"", self.value), 1)
            }
            _ => return None,
        };
        if self.value.is_empty() || self.value.contains(['\n', '\r']) {
            return None;
        }
        // The event's span starts at the scalar, or at its anchor or tag.
        let limit = (self.end.max(self.start + token.len()) + 256).min(text.len());
        let window = text.get(self.start..limit)?;
        let at = self.start + window.find(&token)?;
        Some(at + skip..at + token.len() - skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_content_range() {
        let text = "# c\na: &x \"nginx:1.25\" # c\nb:  'it''s'\nc: plain\nd: *x\ne: \"é\"\n";
        let tree = parse(text).unwrap();
        let root = tree.docs[0];
        let range = |key: &str| {
            let s = tree.scalar(tree.get(root, key).unwrap()).unwrap();
            s.content_range(text).map(|r| &text[r])
        };
        assert_eq!(range("a"), Some("nginx:1.25"));
        assert_eq!(range("b"), Some("it''s"));
        assert_eq!(range("c"), Some("plain"));
        assert_eq!(range("d"), Some("nginx:1.25"));
        assert_eq!(range("e"), Some("é"));
    }

    #[test]
    fn deep_nesting_is_refused_with_its_line() {
        let text = format!("a: {}x\n", "[".repeat(200));
        let err = parse(&text).unwrap_err();
        assert!(
            err.message.contains("nested") || err.message.contains("recursion"),
            "{err:?}"
        );
        let block: String = (0..300)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        let err = parse(&block).unwrap_err();
        assert!(err.message.contains("nested deeper than 128"), "{err:?}");
    }

    #[test]
    fn aliases_share_nodes_instead_of_copying() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let tree = parse(&text).unwrap();
        assert!(tree.nodes.len() < 200, "{}", tree.nodes.len());
    }

    #[test]
    fn multi_document_streams_have_a_root_each() {
        let tree = parse("a: 1\n---\nb: 2\n---\n- c\n").unwrap();
        assert_eq!(tree.docs.len(), 3);
    }
}
