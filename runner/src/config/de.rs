//! A serde `Deserializer` over the spanned [`Node`] tree that reports every error it can find,
//! each with its origin, key path and a hint.
//!
//! Two things go beyond what serde does on its own:
//! - keys that a struct does not declare are all reported (with "did you mean"), not just the
//!   first, and are then skipped so deserialization can go on;
//! - after a value fails, deserialization is retried with that key left out, so one component
//!   with several bad values reports all of them. A "missing field" caused by leaving a key out is
//!   not reported again.

use super::diagnostic::{Diagnostic, Origin, did_you_mean};
use super::node::{Entry, Node, NodeValue};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// Upper bound on retries for one config; each retry leaves out one more bad key.
const MAX_ATTEMPTS: usize = 32;

/// Deserializes `node` (found at key path `path`) into `T`, collecting all diagnostics.
pub fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, Vec<Diagnostic>> {
    let mut excluded: HashSet<String> = HashSet::new();
    let mut found: Vec<Diagnostic> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let cx = Context {
            excluded: &excluded,
            side_errors: RefCell::new(Vec::new()),
        };
        let result = T::deserialize(NodeDeserializer::new(node, path.to_string(), &cx));
        for d in cx.side_errors.into_inner() {
            if !found.contains(&d) {
                found.push(d);
            }
        }
        match result {
            Ok(value) if found.is_empty() => return Ok(value),
            Ok(_) => return Err(found),
            Err(e) => {
                let bad_path = e.path.clone().unwrap_or_else(|| path.to_string());
                let caused_by_exclusion = e.missing_field && excluded.contains(&bad_path);
                if !caused_by_exclusion {
                    let d = e.into_diagnostic(node, path);
                    if !found.contains(&d) {
                        found.push(d);
                    }
                }
                if caused_by_exclusion || bad_path == path || !excluded.insert(bad_path) {
                    return Err(found);
                }
            }
        }
    }
    Err(found)
}

struct Context<'a> {
    excluded: &'a HashSet<String>,
    side_errors: RefCell<Vec<Diagnostic>>,
}

/// An error from deserializing one value; located by the deserializer that saw it.
#[derive(Debug)]
pub struct DeError {
    message: String,
    hint: Option<String>,
    origin: Option<Origin>,
    path: Option<String>,
    missing_field: bool,
}

impl DeError {
    fn new(message: String) -> Self {
        DeError {
            message,
            hint: None,
            origin: None,
            path: None,
            missing_field: false,
        }
    }

    /// Attaches the position of the node being deserialized, unless a deeper one is known.
    fn locate(mut self, node: &Node, path: &str) -> Self {
        if self.origin.is_none() {
            self.origin = Some(node.origin.clone());
            self.path = Some(if self.missing_field {
                self.path
                    .take()
                    .map_or(path.to_string(), |f| join(path, &f))
            } else {
                path.to_string()
            });
        }
        self
    }

    fn into_diagnostic(self, root: &Node, root_path: &str) -> Diagnostic {
        let origin = self.origin.unwrap_or_else(|| root.origin.clone());
        let path = self.path.unwrap_or_else(|| root_path.to_string());
        Diagnostic::error(origin, path, self.message).with_optional_hint(self.hint)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        let mut e = DeError::new(format!("expected {expected}, found {unexpected}"));
        // One value where a list is wanted (`group_by = "gender"`): show the list.
        let wants_list = expected.to_string().contains("sequence");
        e.hint = match unexpected {
            de::Unexpected::Str(s) if wants_list => Some(format!("a list: [\"{s}\"]")),
            de::Unexpected::Signed(n) if wants_list => Some(format!("a list: [{n}]")),
            de::Unexpected::Unsigned(n) if wants_list => Some(format!("a list: [{n}]")),
            _ => None,
        };
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new(format!(
            "unknown value `{variant}`; expected one of {}",
            quoted_list(expected)
        ));
        e.hint = did_you_mean(variant, expected.iter().copied());
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::new(format!("missing required key `{field}`"));
        e.path = Some(field.to_string());
        e.missing_field = true;
        e
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

struct NodeDeserializer<'a> {
    node: &'a Node,
    path: String,
    cx: &'a Context<'a>,
}

impl<'a> NodeDeserializer<'a> {
    fn new(node: &'a Node, path: String, cx: &'a Context<'a>) -> Self {
        NodeDeserializer { node, path, cx }
    }

    fn located<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.locate(self.node, &self.path))
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            NodeValue::Str(s) | NodeValue::Datetime(s) => visitor.visit_str(s),
            NodeValue::Int(i) => visitor.visit_i64(*i),
            NodeValue::Float(f) => visitor.visit_f64(*f),
            NodeValue::Bool(b) => visitor.visit_bool(*b),
            NodeValue::Array(items) => visitor.visit_seq(SeqAccess {
                items: items.iter().enumerate(),
                path: &self.path,
                cx: self.cx,
            }),
            NodeValue::Table(entries) => visitor.visit_map(MapAccess::new(
                entries.iter().collect(),
                &self.path,
                self.cx,
            )),
        };
        self.located(result)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let NodeValue::Table(entries) = &self.node.value else {
            return self.deserialize_any(visitor);
        };
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            if fields.contains(&entry.key.as_str()) {
                known.push(entry);
            } else {
                let d = Diagnostic::error(
                    entry.key_origin.clone(),
                    join(&self.path, &entry.key),
                    format!("unknown key `{}`", entry.key),
                )
                .with_hint(
                    did_you_mean(&entry.key, fields.iter().copied())
                        .unwrap_or_else(|| format!("known keys here: {}", quoted_list(fields))),
                );
                self.cx.side_errors.borrow_mut().push(d);
            }
        }
        let result = visitor.visit_map(MapAccess::new(known, &self.path, self.cx));
        self.located(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            NodeValue::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(DeError::new(format!(
                "expected a string, found {}",
                other.type_name()
            ))),
        };
        self.located(result)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

struct SeqAccess<'a, I> {
    items: I,
    path: &'a str,
    cx: &'a Context<'a>,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for SeqAccess<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => {
                let path = format!("{}[{i}]", self.path);
                seed.deserialize(NodeDeserializer::new(node, path, self.cx))
                    .map(Some)
            }
            None => Ok(None),
        }
    }
}

struct MapAccess<'a> {
    entries: std::vec::IntoIter<&'a Entry>,
    pending: Option<&'a Entry>,
    path: &'a str,
    cx: &'a Context<'a>,
}

impl<'a> MapAccess<'a> {
    fn new(entries: Vec<&'a Entry>, path: &'a str, cx: &'a Context<'a>) -> Self {
        let entries: Vec<&Entry> = entries
            .into_iter()
            .filter(|e| !cx.excluded.contains(&join(path, &e.key)))
            .collect();
        MapAccess {
            entries: entries.into_iter(),
            pending: None,
            path,
            cx,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        seed.deserialize(entry.key.as_str().into_deserializer())
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = self
            .pending
            .take()
            .ok_or_else(|| DeError::new("value requested before key".into()))?;
        let path = join(self.path, &entry.key);
        seed.deserialize(NodeDeserializer::new(&entry.node, path, self.cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_document_for_tests as parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        op: Op,
        field: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Op {
        Count,
        Sum,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Config {
        size: u32,
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
    }

    fn errors(text: &str) -> Vec<String> {
        let node = parse(text);
        from_node::<Config>(&node, "c")
            .unwrap_err()
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn good_config_deserializes() {
        let node = parse("size = 3\nname = \"x\"\nitems = [{ op = \"sum\", field = \"f\" }]");
        let c: Config = from_node(&node, "c").unwrap();
        assert_eq!(c.size, 3);
        assert_eq!(c.items[0].op, Op::Sum);
    }

    #[test]
    fn reports_every_problem_with_position_and_path() {
        let e = errors("size = \"big\"\nnmae = \"x\"\nitems = [{ op = \"cnt\" }]\nextra = 1");
        // A missing `name` is only found once `size` parses: serde stops at the first absent
        // field, and `size` is left out after its error.
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e.contains(
                &"t.toml:2:1: error: c.nmae: unknown key `nmae`\n  hint: did you mean `name`?"
                    .to_string()
            ),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("t.toml:4:1: error: c.extra: unknown key"))
        );
        assert!(
            e.contains(
                &"t.toml:1:8: error: c.size: expected u32, found string \"big\"".to_string()
            ),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m
                .starts_with("t.toml:3:17: error: c.items[0].op: unknown value `cnt`")
                && m.contains("did you mean `count`?")),
            "{e:#?}"
        );
    }

    #[test]
    fn missing_required_key_is_reported_at_its_table() {
        let e = errors("size = 1");
        assert_eq!(
            e,
            vec!["t.toml:1:1: error: c.name: missing required key `name`"]
        );
    }

    #[test]
    fn a_left_out_bad_value_is_not_reported_missing() {
        let e = errors("size = -1\nname = \"x\"");
        assert_eq!(
            e,
            vec!["t.toml:1:8: error: c.size: invalid value: integer `-1`, expected u32"]
        );
    }
}
