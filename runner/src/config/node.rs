//! The pipeline document as a tree of values that remember where they were written.
//!
//! Parsing keeps a byte span for every key and value (from `toml`'s `DeTable`); `--set`
//! overrides graft new values onto the tree with their own origin. Component configs are then
//! deserialized from this tree (see `de.rs`), so every error can point at its source.

use super::diagnostic::Origin;
use toml::de::{DeTable, DeValue};

/// A value plus where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the value was written.
    pub origin: Origin,
    /// The value.
    pub value: NodeValue,
}

/// A TOML value whose children are [`Node`]s.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date-time, kept in its TOML text form.
    Datetime(String),
    /// An array.
    Array(Vec<Node>),
    /// A table, entries in the order written.
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Where the key was written.
    pub key_origin: Origin,
    /// The value.
    pub node: Node,
}

impl NodeValue {
    /// A short name of the value's type for messages ("string", "table", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeValue::Str(_) => "string",
            NodeValue::Int(_) => "integer",
            NodeValue::Float(_) => "float",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Datetime(_) => "datetime",
            NodeValue::Array(_) => "array",
            NodeValue::Table(_) => "table",
        }
    }
}

impl Node {
    /// The entries when this is a table.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            NodeValue::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entry `key` when this is a table that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// The value at `key` when this is a table that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.node)
    }

    /// The text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The node at a key path relative to this one, like `size` or `aggregates[1].field`.
    pub fn find(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for part in path.split('.') {
            let mut pieces = part.split('[');
            let key = pieces.next().unwrap_or_default();
            if !key.is_empty() {
                node = node.get(key)?;
            }
            for index in pieces {
                let index: usize = index.strip_suffix(']')?.parse().ok()?;
                node = match &node.value {
                    NodeValue::Array(items) => items.get(index)?,
                    _ => return None,
                };
            }
        }
        Some(node)
    }

    /// An empty table with the given origin.
    pub fn empty_table(origin: Origin) -> Node {
        Node {
            origin,
            value: NodeValue::Table(Vec::new()),
        }
    }

    /// This table with every entry of `defaults` that it does not set itself; tables present
    /// in both merge key by key, this one winning. Inherited entries keep their own origin, so
    /// errors in them point at where they were written.
    pub fn with_defaults(&self, defaults: &Node) -> Node {
        let (NodeValue::Table(own), NodeValue::Table(inherited)) = (&self.value, &defaults.value)
        else {
            return self.clone();
        };
        let mut merged = own.clone();
        for default in inherited {
            match merged.iter_mut().find(|e| e.key == default.key) {
                Some(entry) => entry.node = entry.node.with_defaults(&default.node),
                None => merged.push(default.clone()),
            }
        }
        Node {
            origin: self.origin.clone(),
            value: NodeValue::Table(merged),
        }
    }

    /// The value as text, without where it was written: two nodes have the same text exactly
    /// when they hold the same value (tables in the order written).
    pub fn canonical(&self) -> String {
        match &self.value {
            NodeValue::Str(s) => format!("{s:?}"),
            NodeValue::Int(i) => i.to_string(),
            NodeValue::Float(f) => format!("{f:?}"),
            NodeValue::Bool(b) => b.to_string(),
            NodeValue::Datetime(d) => d.clone(),
            NodeValue::Array(items) => {
                let items: Vec<String> = items.iter().map(Node::canonical).collect();
                format!("[{}]", items.join(","))
            }
            NodeValue::Table(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|e| format!("{:?}={}", e.key, e.node.canonical()))
                    .collect();
                format!("{{{}}}", entries.join(","))
            }
        }
    }

    /// A table node with only the entries `keep` accepts.
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> Node {
        let entries = self
            .entries()
            .unwrap_or_default()
            .iter()
            .filter(|e| keep(&e.key))
            .cloned()
            .collect();
        Node {
            origin: self.origin.clone(),
            value: NodeValue::Table(entries),
        }
    }
}

/// Converts a parsed table into a node tree; `origin_of` turns a byte offset of the parsed text
/// into an origin.
pub fn from_table(table: &DeTable<'_>, start: usize, origin_of: &dyn Fn(usize) -> Origin) -> Node {
    let entries = table
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            key_origin: origin_of(key.span().start),
            node: from_value(value.get_ref(), value.span().start, origin_of),
        })
        .collect();
    Node {
        origin: origin_of(start),
        value: NodeValue::Table(entries),
    }
}

/// Converts a parsed value into a node tree (see [`from_table`]).
pub fn from_value(value: &DeValue<'_>, start: usize, origin_of: &dyn Fn(usize) -> Origin) -> Node {
    let value = match value {
        DeValue::String(s) => NodeValue::Str(s.to_string()),
        DeValue::Integer(i) => integer(i.as_str(), i.radix())
            .map(NodeValue::Int)
            .unwrap_or_else(|| NodeValue::Str(i.as_str().to_string())),
        DeValue::Float(f) => NodeValue::Float(float(f.as_str())),
        DeValue::Boolean(b) => NodeValue::Bool(*b),
        DeValue::Datetime(d) => NodeValue::Datetime(d.to_string()),
        DeValue::Array(items) => NodeValue::Array(
            items
                .iter()
                .map(|v| from_value(v.get_ref(), v.span().start, origin_of))
                .collect(),
        ),
        DeValue::Table(t) => return from_table(t, start, origin_of),
    };
    Node {
        origin: origin_of(start),
        value,
    }
}

fn integer(text: &str, radix: u32) -> Option<i64> {
    // `DeInteger::as_str` is already in `from_str_radix` form: no prefix, no underscores.
    i64::from_str_radix(text, radix).ok()
}

fn float(text: &str) -> f64 {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    match clean.as_str() {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" | "+nan" | "-nan" => f64::NAN,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_walks_keys_and_indices() {
        let root = crate::config::parse_document_for_tests("a = [{ b = 1 }, { b = 2, c = [7] }]");
        assert_eq!(root.find("a[1].b").unwrap().value, NodeValue::Int(2));
        assert_eq!(root.find("a[1].c[0]").unwrap().value, NodeValue::Int(7));
        assert!(root.find("a[2]").is_none());
        assert!(root.find("a.b").is_none());
    }

    #[test]
    fn integers_in_every_toml_form() {
        for (text, want) in [
            ("a = 1_000", 1000),
            ("a = -42", -42),
            ("a = 0xff", 255),
            ("a = 0b101", 5),
        ] {
            let parsed = DeTable::parse(text).unwrap();
            let value = parsed.get_ref().get("a").unwrap().get_ref();
            let DeValue::Integer(i) = value else {
                panic!("not an integer")
            };
            assert_eq!(integer(i.as_str(), i.radix()), Some(want), "{text}");
        }
        assert_eq!(integer("99999999999999999999", 10), None);
    }

    #[test]
    fn floats_in_every_toml_form() {
        assert_eq!(float("1_000.5"), 1000.5);
        assert_eq!(float("-inf"), f64::NEG_INFINITY);
        assert!(float("nan").is_nan());
    }
}
