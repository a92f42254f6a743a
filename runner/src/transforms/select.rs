//! Transform `select`: keeps or drops fields and renames them. The arena is shared with the input
//! batch, so re-shaping costs one small copy of the value table, not of the text.

use crate::record::{Batch, Schema};
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, Stage, StageConfig, StageError,
    StageKind, StageResult, Transform, adopt_stateless, can_adopt_stateless,
};
use serde::Deserialize;
use std::collections::BTreeMap;
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
    }
}

/// The `select` transform type.
pub fn factory() -> Builtin<SelectConfig> {
    Builtin::new(
        StageKind::Transform,
        "select",
        "Keeps, drops and renames fields",
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
        if self.keep.is_none() && self.drop.is_none() && self.rename.is_empty() {
            issues
                .push(OptionIssue::new("keep", "nothing to do").hint("give keep, drop or rename"));
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
    fn build(&self, _cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Transform(Box::new(Select {
            keep: self.keep.clone(),
            drop: self.drop.clone().unwrap_or_default(),
            rename: self.rename.clone(),
            plan: None,
        })))
    }
}

struct Select {
    keep: Option<Vec<String>>,
    drop: Vec<String>,
    rename: BTreeMap<String, String>,
    plan: Option<Projection>,
}

/// For one input schema: the output schema and where each output field comes from.
struct Projection {
    input: Arc<Schema>,
    output: Arc<Schema>,
    sources: Vec<Option<usize>>,
}

impl Select {
    fn plan_for(&self, input: &Schema) -> (Arc<Schema>, Vec<Option<usize>>) {
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
            .map(|(n, _)| self.rename.get(*n).map_or(*n, String::as_str));
        let schema = Arc::new(Schema::new(names));
        (schema, chosen.iter().map(|(_, i)| *i).collect())
    }
}

impl Transform for Select {
    // Holds nothing between batches: an edit replaces it whole.
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), String> {
        can_adopt_stateless::<Self>(edited)
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        adopt_stateless(self, edited);
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let fresh = !matches!(&self.plan, Some(p) if Arc::ptr_eq(&p.input, batch.schema()));
        if fresh {
            let (output, sources) = self.plan_for(batch.schema());
            self.plan = Some(Projection {
                input: Arc::clone(batch.schema()),
                output,
                sources,
            });
        }
        let p = self.plan.as_ref().expect("planned above");
        out.push(batch.project(Arc::clone(&p.output), &p.sources));
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
    fn conflicting_options_are_errors() {
        let e = testing::option_errors(&factory(), "s", "keep = [\"a\"]\ndrop = [\"b\"]");
        assert!(e[0].contains("not both"), "{e:?}");
        let e = testing::option_errors(&factory(), "s", "rename = { a = \"x\", b = \"x\" }");
        assert!(e[0].contains("two fields renamed"), "{e:?}");
    }
}
