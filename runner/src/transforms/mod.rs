//! Built-in transforms: each module is one stage type (a config struct and its `factory`), listed
//! in `builtins`.

pub mod filter;
pub mod select;
pub mod window;

use crate::expr::Expression;
use crate::stage::FieldUse;

/// The record fields the expression `text` of option `key` reads (none if it does not parse:
/// that is reported on its own).
fn fields_read_by(key: &str, text: &str) -> Vec<FieldUse> {
    Expression::parse(text)
        .map(|e| {
            e.fields()
                .into_iter()
                .map(|(name, span)| FieldUse {
                    key: key.to_string(),
                    name: name.to_string(),
                    at: span.start,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of records coming from all of `inputs`, when each is known: each name once, in
/// the order first seen.
fn union_of(inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
    let mut all: Vec<String> = Vec::new();
    for input in inputs {
        for name in input.as_ref()? {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
    }
    Some(all)
}
