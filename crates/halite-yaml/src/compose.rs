//! Parser events to a node graph, as PyYAML's composer builds it: tags resolved, anchors
//! shared (an alias is the same node id, not a copy), one document only.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag as EventTag};
use yaml_rust2::scanner::{Scanner, TScalarStyle, TokenType};

use crate::block_eof;
use crate::scalar::{resolve_plain, Tag};
use crate::{Mark, YamlError, MAX_DEPTH};

pub(crate) type NodeId = usize;

pub(crate) enum NodeKind {
    Scalar(String),
    Sequence(Vec<NodeId>),
    Mapping(Vec<(NodeId, NodeId)>),
}

impl NodeKind {
    /// The name PyYAML gives the node kind in its messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            NodeKind::Scalar(_) => "scalar",
            NodeKind::Sequence(_) => "sequence",
            NodeKind::Mapping(_) => "mapping",
        }
    }
}

pub(crate) struct Node {
    pub kind: NodeKind,
    pub tag: Tag,
    pub mark: Mark,
}

pub(crate) struct Document {
    pub nodes: Vec<Node>,
    /// `None` for a stream without any document.
    pub root: Option<NodeId>,
}

/// A collection whose end event has not arrived yet.
struct Open {
    id: NodeId,
    /// A mapping's key waiting for its value.
    pending_key: Option<NodeId>,
}

struct Composer {
    nodes: Vec<Node>,
    root: Option<NodeId>,
    open: Vec<Open>,
    /// yaml-rust2 anchor id → node.
    anchors: HashMap<usize, NodeId>,
    /// Anchor names in the order the scanner met them; yaml-rust2 numbers anchors in that same
    /// order from 1 but does not report their names, which duplicate detection needs.
    anchor_names: Vec<String>,
    /// Anchor name → where it was first defined.
    defined: HashMap<String, Mark>,
}

/// Why composing stopped.
pub(crate) enum ComposeError {
    Yaml(YamlError),
    /// yaml-rust2 refuses a tab right after a `:` indicator, which libyaml takes as the
    /// separating blank; `at` is the char index just past the tabs.
    TabAfterColon {
        at: usize,
        error: YamlError,
    },
}

impl From<YamlError> for ComposeError {
    fn from(e: YamlError) -> Self {
        ComposeError::Yaml(e)
    }
}

/// yaml-rust2's message for a `:` followed by a tab (yaml-rust2 is pinned by Cargo.lock, and
/// the Salt differential test covers the case).
const TAB_AFTER_COLON: &str = "':' must be followed by a valid YAML whitespace";

/// The last block scalar seen, while nothing but end events has followed it.
struct LastBlock {
    id: NodeId,
    mark_index: usize,
    /// Its tag came from resolution (`!`), so a corrected value must be resolved again.
    resolved: bool,
}

pub(crate) fn compose(text: &str) -> Result<Document, ComposeError> {
    let mut composer = Composer {
        nodes: Vec::new(),
        root: None,
        open: Vec::new(),
        anchors: HashMap::new(),
        anchor_names: anchor_names(text),
        defined: HashMap::new(),
    };
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0usize;
    let mut last_block: Option<LastBlock> = None;
    loop {
        // `next_token` rather than `Parser::load`: `load` asserts on event order, and halite
        // must not panic on any input.
        let (event, marker) = parser.next_token().map_err(|e| scan_error(&e))?;
        let mark = Mark::from_marker(&marker);
        if !matches!(
            event,
            Event::SequenceEnd | Event::MappingEnd | Event::DocumentEnd | Event::StreamEnd | Event::Nothing
        ) {
            last_block = None;
        }
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                if documents == 1 {
                    return Err(mark
                        .error("expected a single document in the stream, but found another document")
                        .into());
                }
                documents += 1;
            }
            Event::Scalar(value, style, anchor, tag) => {
                // Block scalars are never plain: only the `!` tag sends them to resolution.
                let resolved = tag.as_ref().is_some_and(|t| full_tag(t) == "!");
                let block = matches!(style, TScalarStyle::Literal | TScalarStyle::Folded);
                let id = composer.scalar(value, &style, tag.as_ref(), mark);
                composer.anchor(anchor, id, mark)?;
                composer.attach(id);
                if block {
                    last_block = Some(LastBlock { id, mark_index: marker.index(), resolved });
                }
            }
            Event::Alias(anchor) => {
                let id = composer.alias(anchor, mark)?;
                composer.attach(id);
            }
            Event::SequenceStart(anchor, tag) => {
                let tag = collection_tag(tag.as_ref(), Tag::Seq);
                composer.open(NodeKind::Sequence(Vec::new()), tag, anchor, mark)?;
            }
            Event::MappingStart(anchor, tag) => {
                let tag = collection_tag(tag.as_ref(), Tag::Map);
                composer.open(NodeKind::Mapping(Vec::new()), tag, anchor, mark)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = composer.open.pop() {
                    composer.attach(done.id);
                }
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    if let Some(last) = last_block {
        composer.fix_block_at_eof(text, &last);
    }
    Ok(Document { nodes: composer.nodes, root: composer.root })
}

impl Composer {
    fn push(&mut self, kind: NodeKind, tag: Tag, mark: Mark) -> NodeId {
        self.nodes.push(Node { kind, tag, mark });
        self.nodes.len() - 1
    }

    fn scalar(&mut self, value: String, style: &TScalarStyle, tag: Option<&EventTag>, mark: Mark) -> NodeId {
        let tag = match tag.map(full_tag) {
            // libyaml marks a scalar tagged `!` as plain-implicit whatever its style, so even
            // `! "12"` goes through resolution.
            Some(t) if t == "!" => resolve_plain(&value),
            Some(t) => Tag::from_full(&t),
            None if matches!(style, TScalarStyle::Plain) => resolve_plain(&value),
            None => Tag::Str,
        };
        self.push(NodeKind::Scalar(value), tag, mark)
    }

    fn fix_block_at_eof(&mut self, text: &str, last: &LastBlock) {
        let node = &mut self.nodes[last.id];
        let NodeKind::Scalar(value) = &node.kind else {
            return;
        };
        let Some(fixed) = block_eof::libyaml_value(text, last.mark_index, value) else {
            return;
        };
        if last.resolved {
            node.tag = resolve_plain(&fixed);
        }
        node.kind = NodeKind::Scalar(fixed);
    }

    fn open(&mut self, kind: NodeKind, tag: Tag, anchor: usize, mark: Mark) -> Result<(), YamlError> {
        if self.open.len() >= MAX_DEPTH {
            return Err(mark.error(format!("collections nested deeper than {MAX_DEPTH} levels")));
        }
        let id = self.push(kind, tag, mark);
        // Registered before the children exist, so an alias inside refers back to it; that is
        // caught as recursion in `alias`.
        self.anchor(anchor, id, mark)?;
        self.open.push(Open { id, pending_key: None });
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, id: NodeId, mark: Mark) -> Result<(), YamlError> {
        if anchor == 0 {
            return Ok(());
        }
        if let Some(name) = self.anchor_names.get(anchor - 1) {
            if let Some(first) = self.defined.get(name) {
                return Err(mark.error(format!(
                    "found duplicate anchor '{name}'; first occurrence at line {}, column {}",
                    first.line, first.column
                )));
            }
            self.defined.insert(name.clone(), mark);
        }
        self.anchors.insert(anchor, id);
        Ok(())
    }

    fn alias(&self, anchor: usize, mark: Mark) -> Result<NodeId, YamlError> {
        let id = *self.anchors.get(&anchor).ok_or_else(|| mark.error("found undefined alias"))?;
        if self.open.iter().any(|o| o.id == id) {
            // Python builds a self-containing object here; a Value tree cannot hold one.
            return Err(mark.error("found a recursive alias (an alias inside its own anchor)"));
        }
        Ok(id)
    }

    fn attach(&mut self, id: NodeId) {
        let Some(top) = self.open.last_mut() else {
            self.root = Some(id);
            return;
        };
        match &mut self.nodes[top.id].kind {
            NodeKind::Sequence(items) => items.push(id),
            NodeKind::Mapping(pairs) => match top.pending_key.take() {
                None => top.pending_key = Some(id),
                Some(key) => pairs.push((key, id)),
            },
            NodeKind::Scalar(_) => {}
        }
    }
}

fn full_tag(tag: &EventTag) -> String {
    // yaml-rust2 splits a tag into its expanded handle and suffix: `!!int` is
    // ("tag:yaml.org,2002:", "int"), `!foo` is ("!", "foo"), `!` and `!<!>` are ("", "!").
    format!("{}{}", tag.handle, tag.suffix)
}

fn collection_tag(tag: Option<&EventTag>, default: Tag) -> Tag {
    match tag.map(full_tag) {
        Some(t) if t != "!" => Tag::from_full(&t),
        _ => default,
    }
}

fn anchor_names(text: &str) -> Vec<String> {
    // A scan error stops the iterator; the parser reports that error itself.
    Scanner::new(text.chars())
        .filter_map(|token| match token.1 {
            TokenType::Anchor(name) => Some(name),
            _ => None,
        })
        .collect()
}

fn scan_error(e: &yaml_rust2::ScanError) -> ComposeError {
    let error = Mark::from_marker(e.marker()).error(e.info());
    if e.info() == TAB_AFTER_COLON {
        ComposeError::TabAfterColon { at: e.marker().index(), error }
    } else {
        ComposeError::Yaml(error)
    }
}
