//! Checking what a component put out against a step's expectation, and saying how it differs:
//! expected records are matched to actual ones on the fields they name (and `_time`, the event
//! time), in any order; what is left on either side is the diff.

use super::spec::{Expectation, TIME_FIELD};
use crate::record::{Batch, FieldRef, Millis};
use crate::time::system_time_millis;

/// One record that came out: its fields and event time.
#[derive(Debug)]
pub struct Row {
    fields: Vec<(String, Owned)>,
    time: Millis,
}

#[derive(Debug)]
enum Owned {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Row {
    /// Every row of `batch`.
    pub fn all(batch: &Batch) -> impl Iterator<Item = Row> + '_ {
        batch.rows().map(|row| Row {
            fields: (0..row.schema().len())
                .map(|i| {
                    let value = match row.get(i) {
                        FieldRef::Null => Owned::Null,
                        FieldRef::Bool(b) => Owned::Bool(b),
                        FieldRef::Int(i) => Owned::Int(i),
                        FieldRef::Float(f) => Owned::Float(f),
                        FieldRef::Str(s) => Owned::Str(s.to_string()),
                    };
                    (row.schema().name(i).to_string(), value)
                })
                .collect(),
            time: row.event_time(),
        })
    }

    fn matches(&self, expected: &toml::Table) -> bool {
        expected.iter().all(|(key, want)| {
            if key == TIME_FIELD {
                return time_of(want) == Some(self.time);
            }
            self.fields
                .iter()
                .find(|(name, _)| name == key)
                .is_some_and(|(_, got)| equal(want, got))
        })
    }

    fn json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (name, value) in &self.fields {
            let value = match value {
                Owned::Null => serde_json::Value::Null,
                Owned::Bool(b) => (*b).into(),
                Owned::Int(i) => (*i).into(),
                Owned::Float(f) => (*f).into(),
                Owned::Str(s) => s.clone().into(),
            };
            map.insert(name.clone(), value);
        }
        map.insert(TIME_FIELD.into(), self.time.into());
        serde_json::Value::Object(map).to_string()
    }
}

/// Numbers compare by value (an expected `2` matches a count of `2` or `2.0`); everything else
/// by type and value.
fn equal(want: &toml::Value, got: &Owned) -> bool {
    match (want, got) {
        (toml::Value::String(w), Owned::Str(g)) => w == g,
        (toml::Value::Boolean(w), Owned::Bool(g)) => w == g,
        (toml::Value::Integer(w), Owned::Int(g)) => w == g,
        (toml::Value::Integer(w), Owned::Float(g)) => (*w as f64) == *g,
        (toml::Value::Float(w), Owned::Float(g)) => w == g,
        (toml::Value::Float(w), Owned::Int(g)) => *w == (*g as f64),
        _ => false,
    }
}

/// An event time written as epoch milliseconds, an RFC 3339 string or a TOML date-time.
pub fn time_of(value: &toml::Value) -> Option<Millis> {
    let text = match value {
        toml::Value::Integer(ms) => return Some(*ms),
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => return None,
    };
    humantime::parse_rfc3339_weak(text.trim())
        .ok()
        .map(system_time_millis)
}

/// Checks `rows` (what `component` put out since its last check) against `expectation`; the
/// error is a summary line, then `- expected` / `+ actual` lines for what did not match.
pub fn check(component: &str, expectation: &Expectation, rows: &[Row]) -> Result<(), String> {
    match expectation {
        Expectation::Nothing if rows.is_empty() => Ok(()),
        Expectation::Count(n) if rows.len() == *n => Ok(()),
        Expectation::Nothing | Expectation::Count(_) => {
            let wanted = match expectation {
                Expectation::Count(n) => format!("{n} record(s)"),
                _ => "no output".into(),
            };
            let mut message = format!(
                "expect {component}: wanted {wanted}, got {} record(s)",
                rows.len()
            );
            for row in rows.iter().take(20) {
                message.push_str(&format!("\n  + {}", row.json()));
            }
            Err(message)
        }
        Expectation::Records(expected) => {
            let mut used = vec![false; rows.len()];
            let mut missing = Vec::new();
            for want in expected {
                match (0..rows.len()).find(|&i| !used[i] && rows[i].matches(want)) {
                    Some(i) => used[i] = true,
                    None => missing.push(want),
                }
            }
            let unexpected: Vec<&Row> = rows
                .iter()
                .zip(&used)
                .filter(|(_, used)| !**used)
                .map(|(row, _)| row)
                .collect();
            if missing.is_empty() && unexpected.is_empty() {
                return Ok(());
            }
            let mut message = format!(
                "expect {component}: {} expected record(s) not found, {} unexpected (of {} out)",
                missing.len(),
                unexpected.len(),
                rows.len()
            );
            for want in missing {
                let json = serde_json::to_string(want).unwrap_or_default();
                message.push_str(&format!("\n  - {json}"));
            }
            for row in unexpected.iter().take(20) {
                message.push_str(&format!("\n  + {}", row.json()));
            }
            Err(message)
        }
    }
}
