//! Transform `select`: keeps or drops fields, renames them, and computes new ones from CEL
//! expressions (`compute`, see [`crate::expr`]). Without `compute` the arena is shared with the
//! input batch, so re-shaping costs one small copy of the value table, not of the text; computed
//! fields need a new batch. A record an expression cannot be evaluated on is rejected to
//! `<id>.errors` with the reason and counted as dropped.

use crate::expr::{Bound, Expression, Value};
use crate::record::{Batch, BatchBuilder, FieldRef, Schema};
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, EditRefusal, FieldUse, OptionDoc,
    OptionIssue, Rejects, Stage, StageConfig, StageError, StageKind, StageMetrics, StageResult,
    Transform, adopt_stateless, can_adopt_stateless,
};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `select` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SelectConfig, documented in OPTIONS {
        keep: Option<Vec<String>> => OptionDoc::of("[string]", "all fields", "fields to keep, in this order (missing ones become null)"),
        drop: Option<Vec<String>> => OptionDoc::of("[string]", "[]", "fields to remove (instead of keep)"),
        #[serde(default)]
        rename: BTreeMap<String, String> => OptionDoc::of("{ old = \"new\" }", "{}", "new names for fields"),
        #[serde(default)]
        compute: Computed => OptionDoc::of("{ name = \"expression\" }", "{}", "fields computed from CEL expressions over the input record, e.g. { band = \"int(age_range) / 2\" } (docs/expressions.md); added after the kept fields in the order written, or replacing a kept field of the same name"),
    }
}

/// The `select` transform type.
pub fn factory() -> Builtin<SelectConfig> {
    Builtin::new(
        StageKind::Transform,
        "select",
        "Keeps, drops, renames and computes fields",
        OPTIONS,
    )
}

impl BuiltinConfig for SelectConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if self.keep.is_some() && self.drop.is_some() {
            issues.push(OptionIssue::new(
                "drop",
                "use either keep or drop, not both",
            ));
        }
        if self.keep.is_none()
            && self.drop.is_none()
            && self.rename.is_empty()
            && self.compute.0.is_empty()
        {
            issues.push(
                OptionIssue::new("keep", "nothing to do")
                    .hint("give keep, drop, rename or compute"),
            );
        }
        for (name, text) in &self.compute.0 {
            if let Err(e) = Expression::parse(text) {
                issues.push(
                    OptionIssue::new(format!("compute.{name}"), e.message).within(e.span.start),
                );
            }
        }
        let mut targets: Vec<&String> = self.rename.values().collect();
        targets.sort();
        if let Some(w) = targets.windows(2).find(|w| w[0] == w[1]) {
            issues.push(OptionIssue::new(
                "rename",
                format!("two fields renamed to `{}`", w[0]),
            ));
        }
        issues
    }
}

impl StageConfig for SelectConfig {
    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let input = crate::stage::union_of_fields(inputs)?;
        let kept: Vec<&String> = match &self.keep {
            Some(keep) => keep.iter().collect(),
            None => {
                let drop = self.drop.as_deref().unwrap_or_default();
                input.iter().filter(|n| !drop.contains(n)).collect()
            }
        };
        let mut names: Vec<String> = kept
            .into_iter()
            .map(|n| self.rename.get(n).unwrap_or(n).clone())
            .collect();
        for (name, _) in &self.compute.0 {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Some(names)
    }

    fn fields_read(&self) -> Vec<FieldUse> {
        self.compute
            .0
            .iter()
            .flat_map(|(name, text)| super::fields_read_by(&format!("compute.{name}"), text))
            .collect()
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let compute = self
            .compute
            .0
            .iter()
            .map(|(name, text)| {
                Expression::parse(text)
                    .map(|e| (name.clone(), e))
                    .map_err(|e| StageError::Input(format!("compute.{name}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Stage::Transform(Box::new(Select {
            keep: self.keep.clone(),
            drop: self.drop.clone().unwrap_or_default(),
            rename: self.rename.clone(),
            compute,
            rejects: cx.rejects.clone(),
            metrics: Arc::clone(&cx.metrics),
            plan: None,
        })))
    }
}

/// `compute`: names and expressions in the order written.
#[derive(Debug, Default)]
pub struct Computed(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Computed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Computed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of field names and expressions")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Computed, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    fields.push(entry);
                }
                Ok(Computed(fields))
            }
        }
        d.deserialize_map(V)
    }
}

struct Select {
    keep: Option<Vec<String>>,
    drop: Vec<String>,
    rename: BTreeMap<String, String>,
    compute: Vec<(String, Expression)>,
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
    plan: Option<Projection>,
}

/// For one input schema: the output schema and where each output field comes from.
struct Projection {
    input: Arc<Schema>,
    output: Arc<Schema>,
    sources: Vec<Source>,
    /// The `compute` expressions bound to the input schema, in order.
    computed: Vec<Bound>,
    /// Without `compute`: the input position of each output field, for `Batch::project`.
    projected: Vec<Option<usize>>,
}

/// Where an output field comes from.
#[derive(Clone, Copy)]
enum Source {
    /// An input field (or null when the input has no such field).
    Input(Option<usize>),
    /// The `compute` expression of this position.
    Computed(usize),
}

impl Select {
    fn plan_for(&self, input: &Arc<Schema>) -> Projection {
        let (names, inputs) = self.projection(input);
        let mut names: Vec<String> = names;
        let mut sources: Vec<Source> = inputs.into_iter().map(Source::Input).collect();
        for (i, (name, _)) in self.compute.iter().enumerate() {
            match names.iter().position(|n| n == name) {
                Some(at) => sources[at] = Source::Computed(i),
                None => {
                    names.push(name.clone());
                    sources.push(Source::Computed(i));
                }
            }
        }
        Projection {
            input: Arc::clone(input),
            output: Arc::new(Schema::new(names.iter().map(String::as_str))),
            computed: self.compute.iter().map(|(_, e)| e.bind(input)).collect(),
            projected: sources
                .iter()
                .map(|s| match s {
                    Source::Input(i) => *i,
                    Source::Computed(_) => None,
                })
                .collect(),
            sources,
        }
    }

    /// The kept fields' output names and input positions.
    fn projection(&self, input: &Schema) -> (Vec<String>, Vec<Option<usize>>) {
        let chosen: Vec<(&str, Option<usize>)> = match &self.keep {
            Some(keep) => keep
                .iter()
                .map(|k| (k.as_str(), input.index_of(k)))
                .collect(),
            None => input
                .names()
                .enumerate()
                .filter(|(_, n)| !self.drop.iter().any(|d| d == n))
                .map(|(i, n)| (n, Some(i)))
                .collect(),
        };
        let names = chosen
            .iter()
            .map(|(n, _)| self.rename.get(*n).map_or(*n, String::as_str).to_string())
            .collect();
        (names, chosen.iter().map(|(_, i)| *i).collect())
    }

    /// `batch` with the computed fields: a new batch (the values are new); records an
    /// expression fails on are rejected.
    fn compute_rows(&self, plan: &Projection, mut batch: Batch) -> Batch {
        let mut builder = BatchBuilder::with_capacity(Arc::clone(&plan.output), batch.len());
        let mut failed: Vec<(usize, String)> = Vec::new();
        let mut values: Vec<Value<'_>> = Vec::with_capacity(plan.computed.len());
        'rows: for (index, row) in batch.rows().enumerate() {
            values.clear();
            for (i, bound) in plan.computed.iter().enumerate() {
                match bound.eval(&row) {
                    Ok(value) => values.push(value),
                    Err(e) => {
                        let (name, expression) = &self.compute[i];
                        failed.push((
                            index,
                            format!(
                                "compute.{name}: {} (at `{}`)",
                                e.message,
                                &expression.text()[e.span]
                            ),
                        ));
                        continue 'rows;
                    }
                }
            }
            for source in &plan.sources {
                match *source {
                    Source::Input(Some(i)) => builder.push(row.get(i)),
                    Source::Input(None) => builder.push(FieldRef::Null),
                    Source::Computed(i) => builder.push(match &values[i] {
                        Value::Null => FieldRef::Null,
                        Value::Bool(b) => FieldRef::Bool(*b),
                        Value::Int(n) => FieldRef::Int(*n),
                        Value::Double(d) => FieldRef::Float(*d),
                        Value::Str(s) => FieldRef::Str(s),
                    }),
                }
            }
            builder.end_row(row.event_time());
        }
        if !failed.is_empty() {
            self.metrics
                .add_dropped(DropReason::Invalid, failed.len() as u64);
            let rows: Vec<(usize, &str)> = failed.iter().map(|(i, r)| (*i, r.as_str())).collect();
            self.rejects.reject_rows(&batch, &rows);
        }
        builder.build().with_acks(batch.take_acks())
    }
}

impl Transform for Select {
    // Holds nothing between batches: an edit replaces it whole.
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), EditRefusal> {
        can_adopt_stateless::<Self>(edited)
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        adopt_stateless(self, edited);
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let fresh = !matches!(&self.plan, Some(p) if Arc::ptr_eq(&p.input, batch.schema()));
        if fresh {
            self.plan = Some(self.plan_for(batch.schema()));
        }
        let Some(plan) = self.plan.as_ref() else {
            return Ok(());
        };
        if plan.computed.is_empty() {
            out.push(batch.project(Arc::clone(&plan.output), &plan.projected));
        } else {
            let computed = self.compute_rows(plan, batch);
            if !computed.is_empty() {
                out.push(computed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::testing;

    fn run(options: &str) -> String {
        let mut t = testing::transform(&factory(), options);
        let lines = t.lines_of(testing::batch(&["a", "b", "c"], &[(0, &["1", "2", "3"])]));
        lines.concat()
    }

    #[test]
    fn keep_drop_and_rename() {
        assert_eq!(
            run("keep = [\"c\", \"a\", \"z\"]"),
            r#"{"c":"3","a":"1","z":null}"#
        );
        assert_eq!(
            run("drop = [\"b\"]\nrename = { a = \"x\" }"),
            r#"{"x":"1","c":"3"}"#
        );
        assert_eq!(
            run("rename = { b = \"gender\" }"),
            r#"{"a":"1","gender":"2","c":"3"}"#
        );
    }

    #[test]
    fn compute_adds_or_replaces_fields_from_expressions() {
        assert_eq!(
            run(
                "keep = [\"a\"]\ncompute = { sum = \"int(a) + int(b)\", a = \"a * 10\", label = \"c == '3' ? 'three' : 'other'\" }"
            ),
            r#"{"a":10,"sum":3,"label":"three"}"#
        );
        assert_eq!(
            run("compute = { joined = \"a + b + c\" }"),
            r#"{"a":"1","b":"2","c":"3","joined":"123"}"#
        );
    }

    #[test]
    fn a_record_a_computation_fails_on_is_dropped_as_invalid() {
        let mut t = testing::transform(&factory(), "compute = { n = \"int(a) * 2\" }");
        let batch = testing::batch(&["a"], &[(0, &["1"]), (0, &["x"]), (0, &["3"])]);
        assert_eq!(
            t.lines_of(batch),
            [r#"{"a":"1","n":2}"#, r#"{"a":"3","n":6}"#]
        );
        assert_eq!(t.metrics.figures().dropped, 1);
        let e = testing::option_errors(&factory(), "s", "compute = { n = \"a +\" }");
        assert!(
            e[0].starts_with("t.toml:1:21: error: s.compute.n: the expression ends too early"),
            "{e:?}"
        );
    }

    #[test]
    fn conflicting_options_are_errors() {
        let e = testing::option_errors(&factory(), "s", "keep = [\"a\"]\ndrop = [\"b\"]");
        assert!(e[0].contains("not both"), "{e:?}");
        let e = testing::option_errors(&factory(), "s", "rename = { a = \"x\", b = \"x\" }");
        assert!(e[0].contains("two fields renamed"), "{e:?}");
    }
}
