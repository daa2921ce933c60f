//! Node graph to `Value`, following `SaltYamlSafeLoader` (PyYAML's `SafeConstructor` with
//! Salt's `construct_mapping`, `flatten_mapping` and `construct_scalar` overrides).

use std::collections::HashSet;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use rmpv::Value;

use crate::compose::{Document, Node, NodeId, NodeKind};
use crate::py::{self, PyKey};
use crate::scalar::{construct_bool, construct_float, construct_int, Tag};
use crate::{YamlError, MAX_ALIAS_EXPANSION, MAX_DEPTH};

/// `sls`: the loader of Salt's `yaml` renderer (`dictclass=OrderedDict`), where `!!omap` is
/// constructed as a mapping; otherwise `safe_load`'s, where it is a list of pairs.
pub(crate) fn construct_document(doc: &Document, root: NodeId, sls: bool) -> Result<Value, YamlError> {
    let mut constructor = Constructor { doc, sls, budget: doc.nodes.len().saturating_add(MAX_ALIAS_EXPANSION) };
    constructor.construct(root, 0)
}

struct Constructor<'d> {
    doc: &'d Document,
    sls: bool,
    /// Values still allowed to be built; aliases are copied, so this bounds their expansion.
    budget: usize,
}

impl<'d> Constructor<'d> {
    fn node(&self, id: NodeId) -> &'d Node {
        &self.doc.nodes[id]
    }

    /// Charges `count` values to the budget, and checks the depth, before building them.
    fn charge(&mut self, id: NodeId, count: usize, depth: usize) -> Result<(), YamlError> {
        let mark = self.node(id).mark;
        if depth > MAX_DEPTH {
            return Err(mark.error(format!("aliases nest collections deeper than {MAX_DEPTH} levels")));
        }
        self.budget = self.budget.checked_sub(count).ok_or_else(|| {
            mark.error(format!("aliases expand the document by more than {MAX_ALIAS_EXPANSION} values"))
        })?;
        Ok(())
    }

    fn construct(&mut self, id: NodeId, depth: usize) -> Result<Value, YamlError> {
        self.charge(id, 1, depth)?;
        let node = self.node(id);
        let converted = |r: Result<Value, String>| r.map_err(|m| node.mark.error(m));
        match &node.tag {
            Tag::Null => self.scalar(node).map(|_| Value::Nil),
            Tag::Bool => converted(construct_bool(self.scalar(node)?).map(Value::Boolean)),
            Tag::Int => converted(construct_int(self.scalar(node)?)),
            Tag::Float => converted(construct_float(self.scalar(node)?).map(Value::F64)),
            // Salt registers the timestamp tag to plain `construct_scalar`: dates stay text.
            Tag::Str | Tag::PyUnicode | Tag::Timestamp => self.scalar(node).map(Value::from),
            Tag::Binary => converted(decode_binary(self.scalar(node)?)),
            Tag::Seq => {
                let NodeKind::Sequence(items) = &node.kind else {
                    return Err(expected(node, "a sequence node"));
                };
                let items = items.iter().map(|&item| self.construct(item, depth + 1)).collect::<Result<_, _>>()?;
                Ok(Value::Array(items))
            }
            Tag::Map => self.mapping(id, depth).map(Value::Map),
            Tag::Set => {
                let members = self.mapping(id, depth)?;
                Ok(Value::Map(members.into_iter().map(|(k, _)| (k, Value::Nil)).collect()))
            }
            Tag::Omap if self.sls => Ok(Value::Map(self.mapping(id, depth)?)),
            Tag::Omap | Tag::Pairs => self.pairs(node, depth),
            Tag::Merge | Tag::Value | Tag::Other(_) => Err(node
                .mark
                .error(format!("could not determine a constructor for the tag '{}'", node.tag.full_name()))),
        }
    }

    fn scalar(&self, node: &'d Node) -> Result<&'d str, YamlError> {
        match &node.kind {
            NodeKind::Scalar(text) => Ok(text),
            _ => Err(expected(node, "a scalar node")),
        }
    }

    /// `SaltYamlSafeLoader.construct_mapping`.
    fn mapping(&mut self, id: NodeId, depth: usize) -> Result<Vec<(Value, Value)>, YamlError> {
        let node = self.node(id);
        if !matches!(node.kind, NodeKind::Mapping(_)) {
            return Err(expected(node, "a mapping node"));
        }
        let pairs = self.flatten(id, depth)?;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(pairs.len());
        for (key_id, value_id) in pairs {
            let key_node = self.node(key_id);
            let key = if key_node.tag == Tag::Value {
                // `flatten_mapping` retags a `=` key as a string.
                self.charge(key_id, 1, depth + 1)?;
                Value::from(self.scalar(key_node)?)
            } else {
                self.construct(key_id, depth + 1)?
            };
            if matches!(key, Value::Array(_) | Value::Map(_)) {
                return Err(key_node.mark.error("found unacceptable key (Python cannot hash it)"));
            }
            let value = self.construct(value_id, depth + 1)?;
            if let Some(identity) = PyKey::of(&key) {
                if !seen.insert(identity) {
                    let shown = py::str(&key).unwrap_or_default();
                    return Err(key_node.mark.error(format!("found conflicting ID '{shown}'")));
                }
            }
            out.push((key, value));
        }
        Ok(out)
    }

    /// Salt's `flatten_mapping`: the mapping's pairs with `<<` merges expanded. Merged pairs
    /// come first; own keys drop merged pairs whose key has the same text; a sequence of
    /// merged mappings is taken last-first.
    fn flatten(&mut self, id: NodeId, depth: usize) -> Result<Vec<(NodeId, NodeId)>, YamlError> {
        let NodeKind::Mapping(pairs) = &self.node(id).kind else {
            return Ok(Vec::new());
        };
        let mut merged = Vec::new();
        let mut own = Vec::new();
        for &(key, value) in pairs {
            if self.node(key).tag != Tag::Merge {
                own.push((key, value));
                continue;
            }
            let value_node = self.node(value);
            match &value_node.kind {
                NodeKind::Mapping(_) => merged.extend(self.flatten(value, depth + 1)?),
                NodeKind::Sequence(items) => {
                    let mut parts = Vec::with_capacity(items.len());
                    for &item in items {
                        let item_node = self.node(item);
                        if !matches!(item_node.kind, NodeKind::Mapping(_)) {
                            return Err(item_node.mark.error(format!(
                                "expected a mapping for merging, but found {}",
                                item_node.kind.name()
                            )));
                        }
                        parts.push(self.flatten(item, depth + 1)?);
                    }
                    merged.extend(parts.into_iter().rev().flatten());
                }
                NodeKind::Scalar(_) => {
                    return Err(value_node
                        .mark
                        .error("expected a mapping or list of mappings for merging, but found scalar"))
                }
            }
        }
        if merged.is_empty() {
            return Ok(own);
        }
        self.charge(id, merged.len(), depth)?;
        let own_texts: HashSet<&str> = own.iter().filter_map(|&(k, _)| self.scalar(self.node(k)).ok()).collect();
        let mut out: Vec<_> = merged
            .into_iter()
            .filter(|&(k, _)| self.scalar(self.node(k)).map_or(true, |text| !own_texts.contains(text)))
            .collect();
        out.extend(own);
        Ok(out)
    }

    /// `construct_yaml_omap` / `construct_yaml_pairs`: a list of (key, value) tuples.
    fn pairs(&mut self, node: &'d Node, depth: usize) -> Result<Value, YamlError> {
        let NodeKind::Sequence(items) = &node.kind else {
            return Err(node.mark.error(format!(
                "while constructing an ordered map: expected a sequence, but found {}",
                node.kind.name()
            )));
        };
        let mut out = Vec::with_capacity(items.len());
        for &item in items {
            let item_node = self.node(item);
            let pair = match &item_node.kind {
                NodeKind::Mapping(pairs) if pairs.len() == 1 => pairs[0],
                NodeKind::Mapping(pairs) => {
                    return Err(item_node
                        .mark
                        .error(format!("expected a single mapping item, but found {} items", pairs.len())))
                }
                other => {
                    return Err(item_node
                        .mark
                        .error(format!("expected a mapping of length 1, but found {}", other.name())))
                }
            };
            let key = self.construct(pair.0, depth + 1)?;
            let value = self.construct(pair.1, depth + 1)?;
            out.push(Value::Array(vec![key, value]));
        }
        Ok(Value::Array(out))
    }
}

fn expected(node: &Node, what: &str) -> YamlError {
    node.mark.error(format!("expected {what}, but found {}", node.kind.name()))
}

/// `construct_yaml_binary`: ASCII only, then `base64.decodebytes`, which skips characters
/// outside the alphabet (line breaks, spaces) but insists on padding.
fn decode_binary(text: &str) -> Result<Value, String> {
    if !text.is_ascii() {
        return Err("failed to convert base64 data: not ASCII".to_owned());
    }
    let kept: String = text.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')).collect();
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(kept).map(Value::Binary).map_err(|e| format!("failed to decode base64 data: {e}"))
}
