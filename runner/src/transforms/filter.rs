//! Transform `filter`: keeps the records for which a condition holds — a CEL expression
//! (`where`, see [`crate::expr`]), or one field tested against values (`field` with `equals`,
//! `in`, `not_equals` or `not_in`). A record the expression cannot be evaluated on is rejected to
//! `<id>.errors` with the reason and counted as dropped; the others go on.

use crate::expr::{Bound, Expression};
use crate::record::{Batch, FieldRef, Schema};
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, EditRefusal, FieldUse, OptionDoc,
    OptionIssue, Rejects, Stage, StageConfig, StageError, StageKind, StageMetrics, StageResult,
    Transform, adopt_stateless, can_adopt_stateless,
};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `filter` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FilterConfig, documented in OPTIONS {
        r#where: Option<String> => OptionDoc::of("expression", "-", "keep records for which this CEL expression is true, e.g. \"action == '2' && int(age_range) >= 4\" (docs/expressions.md); instead of field and a test"),
        field: Option<String> => OptionDoc::of("string", "-", "field to test with one of the four tests below (a missing or null field equals nothing: equals/in drop it, not_equals/not_in keep it)"),
        equals: Option<Scalar> => OptionDoc::of("scalar", "-", "keep records whose field equals this"),
        r#in: Option<Vec<Scalar>> => OptionDoc::of("[scalar]", "-", "keep records whose field is one of these"),
        not_equals: Option<Scalar> => OptionDoc::of("scalar", "-", "keep records whose field is not this"),
        not_in: Option<Vec<Scalar>> => OptionDoc::of("[scalar]", "-", "keep records whose field is none of these"),
    }
}

/// The `filter` transform type.
pub fn factory() -> Builtin<FilterConfig> {
    Builtin::new(
        StageKind::Transform,
        "filter",
        "Keeps records for which an expression holds, or whose field equals / is in / is not a value",
        OPTIONS,
    )
}

/// A string, number or boolean compared by its text form, so `equals = 1` matches the CSV text
/// `"1"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl FilterConfig {
    fn tests(&self) -> Vec<&'static str> {
        [
            ("equals", self.equals.is_some()),
            ("in", self.r#in.is_some()),
            ("not_equals", self.not_equals.is_some()),
            ("not_in", self.not_in.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

impl BuiltinConfig for FilterConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let tests = self.tests();
        if let Some(text) = &self.r#where {
            if let Some(other) = self
                .field
                .as_ref()
                .map(|_| "field")
                .or(tests.first().copied())
            {
                return vec![
                    OptionIssue::new(other, "`where` replaces field and its test")
                        .hint("give either `where` or `field` with a test"),
                ];
            }
            return match Expression::parse(text) {
                Ok(_) => Vec::new(),
                Err(e) => vec![OptionIssue::new("where", e.message).within(e.span.start)],
            };
        }
        if self.field.is_none() {
            return vec![OptionIssue::new("where", "no condition given").hint(
                "add `where = \"<expression>\"`, or `field` with equals, in, not_equals or not_in",
            )];
        }
        match tests.as_slice() {
            [_] => Vec::new(),
            [] => vec![
                OptionIssue::new("field", "no test given")
                    .hint("add one of equals, in, not_equals, not_in"),
            ],
            [_, second, ..] => vec![
                OptionIssue::new(
                    *second,
                    format!("only one test per filter; found {}", tests.join(", ")),
                )
                .hint("chain two filters to combine tests"),
            ],
        }
    }
}

impl StageConfig for FilterConfig {
    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        crate::stage::union_of_fields(inputs)
    }

    fn fields_read(&self) -> Vec<FieldUse> {
        self.r#where
            .as_deref()
            .map(|text| super::fields_read_by("where", text))
            .unwrap_or_default()
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        if let Some(text) = &self.r#where {
            let expression =
                Expression::parse(text).map_err(|e| StageError::Input(format!("where: {e}")))?;
            return Ok(Stage::Transform(Box::new(Condition {
                expression,
                bound: None,
                rejects: cx.rejects.clone(),
                metrics: Arc::clone(&cx.metrics),
            })));
        }
        let field = self.field.clone().unwrap_or_default();
        let (values, keep_matches) =
            match (&self.equals, &self.r#in, &self.not_equals, &self.not_in) {
                (Some(v), ..) => (vec![v.0.clone()], true),
                (_, Some(vs), ..) => (vs.iter().map(|v| v.0.clone()).collect(), true),
                (_, _, Some(v), _) => (vec![v.0.clone()], false),
                (_, _, _, Some(vs)) => (vs.iter().map(|v| v.0.clone()).collect(), false),
                _ => return Err(StageError::Input("filter has no test".into())),
            };
        Ok(Stage::Transform(Box::new(Filter {
            field,
            values,
            keep_matches,
            resolved: None,
            text: String::new(),
        })))
    }
}

struct Filter {
    field: String,
    values: Vec<String>,
    keep_matches: bool,
    resolved: Option<(Arc<Schema>, Option<usize>)>,
    text: String,
}

impl Transform for Filter {
    // Holds nothing between batches: an edit replaces it whole.
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), EditRefusal> {
        can_adopt_stateless::<Self>(edited)
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        adopt_stateless(self, edited);
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let index = match &self.resolved {
            Some((schema, i)) if Arc::ptr_eq(schema, batch.schema()) => *i,
            _ => {
                let i = batch.schema().index_of(&self.field);
                self.resolved = Some((Arc::clone(batch.schema()), i));
                i
            }
        };
        let kept = batch.retain(|row| {
            let matches = match index.map(|i| row.get(i)) {
                None | Some(FieldRef::Null) => false,
                Some(FieldRef::Str(s)) => self.values.iter().any(|v| v == s),
                Some(other) => {
                    self.text.clear();
                    other.write_text(&mut self.text);
                    self.values.contains(&self.text)
                }
            };
            matches == self.keep_matches
        });
        if !kept.is_empty() {
            out.push(kept);
        }
        Ok(())
    }
}

/// A filter by expression.
struct Condition {
    expression: Expression,
    /// The expression bound to the last input schema seen.
    bound: Option<(Arc<Schema>, Bound)>,
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
}

impl Transform for Condition {
    // Holds nothing between batches: an edit (a new expression) replaces it whole.
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), EditRefusal> {
        can_adopt_stateless::<Self>(edited)
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        adopt_stateless(self, edited);
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        if !matches!(&self.bound, Some((schema, _)) if Arc::ptr_eq(schema, batch.schema())) {
            let bound = self.expression.bind(batch.schema());
            self.bound = Some((Arc::clone(batch.schema()), bound));
        }
        let Some((_, bound)) = &self.bound else {
            return Ok(());
        };
        let whole = self.expression.span();
        let mut failed: Vec<(usize, String)> = Vec::new();
        let mut index = 0;
        let kept = batch.retain(|row| {
            let at = index;
            index += 1;
            match bound.holds(&row, &whole) {
                Ok(keep) => keep,
                Err(e) => {
                    failed.push((
                        at,
                        format!(
                            "where: {} (at `{}`)",
                            e.message,
                            &self.expression.text()[e.span]
                        ),
                    ));
                    false
                }
            }
        });
        if !failed.is_empty() {
            self.metrics
                .add_dropped(DropReason::Invalid, failed.len() as u64);
            let rows: Vec<(usize, &str)> = failed.iter().map(|(i, r)| (*i, r.as_str())).collect();
            self.rejects.reject_rows(&batch, &rows);
        }
        if !kept.is_empty() {
            out.push(kept);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, FieldRef};
    use crate::stage::testing;

    fn run(options: &str) -> Vec<String> {
        let mut t = testing::transform(&factory(), options);
        let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["g", "n"])), 4);
        for (g, n) in [("0", 1), ("1", 2), ("2", 3), ("", 4)] {
            b.push_str(g);
            b.push(FieldRef::Int(n));
            b.end_row(0);
        }
        let mut out = Vec::new();
        t.process(b.build(), &mut out).unwrap();
        out.iter()
            .flat_map(|b| {
                b.rows()
                    .map(|r| format!("{:?}", r.get(0)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn each_test_keeps_the_right_rows() {
        assert_eq!(run("field = \"g\"\nequals = 1"), ["Str(\"1\")"]);
        assert_eq!(
            run("field = \"g\"\nin = [\"0\", \"1\"]"),
            ["Str(\"0\")", "Str(\"1\")"]
        );
        assert_eq!(
            run("field = \"g\"\nnot_equals = \"2\""),
            ["Str(\"0\")", "Str(\"1\")", "Str(\"\")"]
        );
        assert_eq!(run("field = \"n\"\nnot_in = [1, 2, 3]"), ["Str(\"\")"]);
        assert!(run("field = \"missing\"\nequals = \"x\"").is_empty());
    }

    #[test]
    fn where_keeps_the_rows_its_expression_holds_for_and_rejects_those_it_fails_on() {
        assert_eq!(
            run("where = \"g == '1' || n >= 3\""),
            ["Str(\"1\")", "Str(\"2\")", "Str(\"\")"]
        );
        assert_eq!(run("where = \"g in [0, 2] && !(n > 2)\""), ["Str(\"0\")"]);
        // `int('')` fails on the fourth row only: it is dropped as invalid, the rest go on.
        let mut t = testing::transform(&factory(), "where = \"int(g) < 2\"");
        let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["g"])), 3);
        for g in ["0", "x", "5", "1"] {
            b.push_str(g);
            b.end_row(0);
        }
        assert_eq!(t.lines_of(b.build()), [r#"{"g":"0"}"#, r#"{"g":"1"}"#]);
        assert_eq!(t.metrics.figures().dropped, 1);
    }

    #[test]
    fn a_mistake_in_where_is_reported_at_its_column() {
        let e = testing::option_errors(&factory(), "f", "where = \"g == 1 && sise(g) > 2\"");
        assert!(
            e[0].starts_with(
                "t.toml:1:20: error: f.where: unknown function `sise` (did you mean `size`?)"
            ),
            "{e:?}"
        );
        let e = testing::option_errors(&factory(), "f", "where = \"g == 1\"\nfield = \"g\"");
        assert!(e[0].contains("`where` replaces field"), "{e:?}");
        let e = testing::option_errors(&factory(), "f", "equals = 1");
        assert!(e[0].contains("no condition given"), "{e:?}");
    }

    #[test]
    fn exactly_one_test_is_required() {
        let e = testing::option_errors(
            &factory(),
            "transforms.f",
            "field = \"g\"\nequals = 1\nnot_in = [2]",
        );
        assert!(e[0].contains("transforms.f.not_in: "), "{e:?}");
        assert!(e[0].contains("only one test"), "{e:?}");
        let e = testing::option_errors(&factory(), "f", "field = \"g\"");
        assert!(e[0].contains("no test"), "{e:?}");
    }
}
