//! Expressions in pipeline files: conditions (`where` of `filter`) and computed fields
//! (`compute` of `select`) in CEL, the Common Expression Language — `action == '2' &&
//! int(age_range) >= 4`, `price * 2`, `brand.startsWith('A')`, `hour() < 6`.
//!
//! An expression is parsed and checked when the pipeline is (`weir validate` reports a mistake at
//! its line and column inside the string), bound to each input schema once, and evaluated per
//! record; a record it cannot be evaluated on (a text that is no number, a division by zero) is
//! rejected to the stage's `<stage>.errors` with the reason, and the others go on. The language
//! and its null rules are in `docs/expressions.md`; [`syntax`] has the grammar, [`eval`] the
//! values and operators, `functions` the functions. The `cel` crate was measured and not taken: it evaluates by a variable
//! map built per record, 41,676 records/s on this machine against weir's millions.

pub mod eval;
mod functions;
pub mod syntax;
mod value;

pub use eval::Bound;
pub use syntax::{ExprError, Span};
pub use value::{EvalError, Value};

use crate::record::Schema;
use std::sync::Arc;

/// A parsed and checked expression.
#[derive(Clone, Debug)]
pub struct Expression {
    text: Arc<str>,
    tree: syntax::Node,
}

impl Expression {
    /// Parses and checks `text` (syntax, functions and their arguments, regular expressions).
    pub fn parse(text: &str) -> Result<Expression, ExprError> {
        let tree = syntax::parse(text)?;
        eval::bind(&tree, &Schema::new(std::iter::empty::<&str>()))?;
        check_constants(&tree)?;
        Ok(Expression {
            text: Arc::from(text),
            tree,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The record fields it reads, each with where it names it.
    pub fn fields(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        collect_fields(&self.tree, &mut out);
        out
    }

    /// The expression bound to records of `schema`.
    pub fn bind(&self, schema: &Schema) -> Bound {
        // Checked by `parse`; binding to another schema only resolves field positions.
        eval::bind(&self.tree, schema).unwrap_or_else(|e| unreachable!("checked at parse: {e}"))
    }

    /// The whole expression's span.
    pub fn span(&self) -> Span {
        0..self.text.len()
    }
}

/// Evaluates the parts of `node` that read no field and no event time (`'a' * 2`, `int('x')`),
/// so a mistake that fails on every record is reported when the pipeline is checked, at its
/// place, instead of rejecting every record at run time.
fn check_constants(node: &syntax::Node) -> Result<(), ExprError> {
    use syntax::Kind;
    let children: Vec<&syntax::Node> = match &node.kind {
        Kind::List(items) => items.iter().collect(),
        Kind::Unary(_, x) => vec![x],
        Kind::Binary(_, a, b) => vec![a, b],
        Kind::Conditional(c, a, b) => vec![c, a, b],
        Kind::Call { target, args, .. } => target.iter().map(|t| t.as_ref()).chain(args).collect(),
        _ => Vec::new(),
    };
    if !is_constant(node) || matches!(node.kind, Kind::List(_)) {
        // Check the constant parts inside it.
        return children.into_iter().try_for_each(check_constants);
    }
    if children.is_empty() {
        return Ok(());
    }
    let schema = Arc::new(Schema::new(std::iter::empty::<&str>()));
    let bound = eval::bind(node, &schema)?;
    let mut builder = crate::record::BatchBuilder::with_capacity(Arc::clone(&schema), 1);
    builder.end_row(0);
    let batch = builder.build();
    match bound.eval(&batch.row(0)) {
        Ok(_) => Ok(()),
        Err(e) => Err(ExprError::new(e.span, e.message)),
    }
}

/// True when `node` reads no field and no event time.
fn is_constant(node: &syntax::Node) -> bool {
    use syntax::Kind;
    match &node.kind {
        Kind::Field(_) => false,
        Kind::Null | Kind::Bool(_) | Kind::Int(_) | Kind::Double(_) | Kind::Str(_) => true,
        Kind::List(items) => items.iter().all(is_constant),
        Kind::Unary(_, x) => is_constant(x),
        Kind::Binary(_, a, b) => is_constant(a) && is_constant(b),
        Kind::Conditional(c, a, b) => is_constant(c) && is_constant(a) && is_constant(b),
        Kind::Call { target, name, args } => {
            let reads_time = args.is_empty()
                && [
                    "event_time",
                    "year",
                    "month",
                    "day",
                    "weekday",
                    "hour",
                    "minute",
                ]
                .contains(&name.as_str());
            !reads_time && target.as_deref().is_none_or(is_constant) && args.iter().all(is_constant)
        }
    }
}

fn collect_fields<'a>(node: &'a syntax::Node, out: &mut Vec<(&'a str, Span)>) {
    use syntax::Kind;
    match &node.kind {
        Kind::Field(name) => out.push((name, node.span.clone())),
        Kind::List(items) => items.iter().for_each(|n| collect_fields(n, out)),
        Kind::Unary(_, x) => collect_fields(x, out),
        Kind::Binary(_, a, b) => {
            collect_fields(a, out);
            collect_fields(b, out);
        }
        Kind::Conditional(c, a, b) => {
            collect_fields(c, out);
            collect_fields(a, out);
            collect_fields(b, out);
        }
        Kind::Call { target, args, .. } => {
            target.iter().for_each(|t| collect_fields(t, out));
            args.iter().for_each(|n| collect_fields(n, out));
        }
        Kind::Null | Kind::Bool(_) | Kind::Int(_) | Kind::Double(_) | Kind::Str(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, FieldRef};

    /// Evaluates `text` on one record with these fields (text values) and event time.
    fn on(
        text: &str,
        fields: &[(&str, Option<&str>)],
        time: i64,
    ) -> Result<Value<'static>, String> {
        let expression = Expression::parse(text).map_err(|e| format!("parse: {e}"))?;
        let schema = Arc::new(Schema::new(fields.iter().map(|(n, _)| *n)));
        let mut builder = BatchBuilder::with_capacity(Arc::clone(&schema), 1);
        for (_, value) in fields {
            match value {
                Some(v) => builder.push_str(v),
                None => builder.push(FieldRef::Null),
            }
        }
        builder.end_row(time);
        let batch = builder.build();
        let bound = expression.bind(&schema);
        bound
            .eval(&batch.row(0))
            .map(Value::into_owned)
            .map_err(|e| e.message)
    }

    fn value(text: &str) -> Value<'static> {
        let fields = [
            ("action", Some("2")),
            ("age_range", Some("5")),
            ("brand", Some("Apple")),
            ("none", None),
        ];
        on(text, &fields, 1_796_653_800_000).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_operators_give_cel_values() {
        use Value::*;
        for (text, expected) in [
            ("action == '2' && int(age_range) >= 4", Bool(true)),
            ("action == 2", Bool(true)),
            ("age_range > 10", Bool(false)),
            ("age_range * 2 + 1", Int(11)),
            ("7 / 2", Int(3)),
            ("7.0 / 2", Double(3.5)),
            ("-7 % 3", Int(-1)),
            ("brand + '!'", Str("Apple!".into())),
            ("brand in ['Apple', 'Pear']", Bool(true)),
            ("action in [1, 3]", Bool(false)),
            (
                "brand.startsWith('Ap') && brand.endsWith('le') && brand.contains('ppl')",
                Bool(true),
            ),
            ("brand.matches('^A.*e$')", Bool(true)),
            ("matches(brand, 'x')", Bool(false)),
            ("size(brand) == brand.size()", Bool(true)),
            (
                "brand.lowerAscii() + brand.upperAscii()",
                Str("appleAPPLE".into()),
            ),
            ("string(age_range * 2)", Str("10".into())),
            ("double(age_range) / 2", Double(2.5)),
            ("action == '2' ? 'buy' : 'other'", Str("buy".into())),
            (
                "hour() == 14 && minute() == 30 && weekday() == 1",
                Bool(true),
            ),
            (
                "year(event_time()) * 10000 + month() * 100 + day()",
                Int(20_261_207),
            ),
            ("hour(0)", Int(0)),
            ("record['brand'] == record.brand", Bool(true)),
            ("has(brand) && !has(none) && !has(missing)", Bool(true)),
        ] {
            assert_eq!(value(text), expected, "{text}");
        }
    }

    #[test]
    fn null_follows_three_valued_logic() {
        use Value::*;
        for (text, expected) in [
            ("none == null", Bool(true)),
            ("missing == null", Bool(true)),
            ("none == '1'", Bool(false)),
            ("none != '1'", Bool(true)),
            ("none > 1", Null),
            ("none + 1", Null),
            ("!none", Null),
            ("none && false", Bool(false)),
            ("none && true", Null),
            ("none || true", Bool(true)),
            ("none || false", Null),
            ("none ? 1 : 2", Int(2)),
            ("int(none)", Null),
            ("none.startsWith('a')", Null),
            ("none in [null]", Bool(true)),
        ] {
            assert_eq!(value(text), expected, "{text}");
        }
    }

    #[test]
    fn a_record_that_does_not_fit_is_an_error_naming_why() {
        for (text, says) in [
            ("int(brand) > 1", "int('Apple'): not an integer"),
            ("brand * 2", "`*` needs numbers"),
            ("age_range / 0", "division by zero"),
            ("brand < 1", "cannot compare 'Apple'"),
            ("9223372036854775807 + age_range", "overflows"),
            ("brand && true", "`&&` needs true or false"),
            ("5.5 % 2", "`%` needs two ints"),
        ] {
            let fields = [("brand", Some("Apple")), ("age_range", Some("5"))];
            let error = on(text, &fields, 0).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn mistakes_are_found_when_parsed_with_their_place() {
        for (text, span, says) in [
            ("sise(brand) > 1", 0..11, "did you mean `size`"),
            ("brand.startsWith()", 0..18, "takes 1 argument(s), not 0"),
            ("startsWith(brand, 'a')", 0..22, "call it as a method"),
            ("brand.matches('(')", 14..17, "not a regular expression"),
            ("brand == ['a']", 9..14, "only follow `in`"),
            ("brand in 'a'", 9..12, "`in` needs a list"),
            ("has('x')", 4..7, "`has` takes a field"),
            ("a == 1 && 'a' * 2 > 1", 10..17, "`*` needs numbers"),
            ("int('x') + a", 0..8, "int('x'): not an integer"),
            ("a in [1, 2 / 0]", 9..14, "division by zero"),
        ] {
            let e = Expression::parse(text).unwrap_err();
            assert_eq!(e.span, span, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn fields_are_listed_with_where_they_are_named() {
        let e = Expression::parse("a == 1 && record['b c'] > size(d)").unwrap();
        let names: Vec<(&str, Span)> = e.fields();
        assert_eq!(names, vec![("a", 0..1), ("b c", 10..23), ("d", 31..32)]);
    }
}
