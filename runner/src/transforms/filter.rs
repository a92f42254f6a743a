//! Transform `filter`: keeps the records whose field equals a value, is in a list, or is not.

use crate::record::{Batch, FieldRef, Schema};
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, Stage, StageConfig, StageError,
    StageKind, StageResult, Transform, adopt_stateless, can_adopt_stateless,
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
        field: String => OptionDoc::of("string", "required", "field to test (a missing or null field equals nothing: equals/in drop it, not_equals/not_in keep it)"),
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
        "Keeps records whose field equals / is in / is not a value (exactly one test)",
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
    fn build(&self, _cx: &BuildContext) -> Result<Stage, StageError> {
        let (values, keep_matches) =
            match (&self.equals, &self.r#in, &self.not_equals, &self.not_in) {
                (Some(v), ..) => (vec![v.0.clone()], true),
                (_, Some(vs), ..) => (vs.iter().map(|v| v.0.clone()).collect(), true),
                (_, _, Some(v), _) => (vec![v.0.clone()], false),
                (_, _, _, Some(vs)) => (vs.iter().map(|v| v.0.clone()).collect(), false),
                _ => return Err(StageError::Input("filter has no test".into())),
            };
        Ok(Stage::Transform(Box::new(Filter {
            field: self.field.clone(),
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
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), String> {
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
