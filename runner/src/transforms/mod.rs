//! Built-in transforms: each module is one stage type (a config struct and its `factory`), listed
//! in `builtins`.

pub mod dedupe;
pub mod filter;
pub mod join;
mod keys;
mod late;
pub mod lookup;
pub mod select;
pub mod top;
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
                    input: None,
                })
                .collect()
        })
        .unwrap_or_default()
}
