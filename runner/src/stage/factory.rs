//! How a stage type is described and built: its options' documentation ([`OptionDoc`]), the
//! checks on them ([`OptionIssue`]), the factory that reads a component's options
//! ([`StageFactory`]) into a config that builds the stage ([`StageConfig`]) with what the run
//! provides ([`BuildContext`]), and [`Builtin`], the factory of every built-in stage: a config
//! struct plus its documentation.

use super::error::StageError;
use super::kind::StageKind;
use super::metrics::StageMetrics;
use super::rejects::Rejects;
use super::runtime::Stage;
use crate::config::de::from_node;
use crate::config::{Diagnostic, Node, NodeValue, Origin};
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// One option of a stage type, for `weir list` and the docs.
#[derive(Clone, Copy, Debug)]
pub struct OptionDoc {
    /// Key name.
    pub name: &'static str,
    /// Value type, e.g. `string`, `integer | "max"`.
    pub ty: &'static str,
    /// Default, or `required`.
    pub default: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
}

impl OptionDoc {
    /// An option's documentation, its name left to [`stage_options!`](crate::stage_options),
    /// which takes it from the field: value type, default (or `required`) and one line.
    pub const fn of(ty: &'static str, default: &'static str, doc: &'static str) -> OptionDoc {
        OptionDoc {
            name: "",
            ty,
            default,
            doc,
        }
    }
}

/// A config field's key as written in a pipeline file: its name, without the `r#` of a raw
/// identifier (`r#loop` is the key `loop`, as serde reads it).
pub const fn option_key(field: &'static str) -> &'static str {
    match field.as_bytes() {
        [b'r', b'#', ..] => match std::str::from_utf8(field.as_bytes().split_at(2).1) {
            Ok(key) => key,
            Err(_) => field,
        },
        _ => field,
    }
}

/// Declares a stage's config struct and the documentation of its options in one list: each
/// field is followed by its [`OptionDoc`] (`OptionDoc::of(type, default, doc)`, or a shared
/// const), whose name is the field's. The macro writes the struct and `pub const OPTIONS_NAME:
/// &[OptionDoc]` in field order, so `weir list`, docs/stages.md and the schema read what the
/// struct reads (fields serde renames are the one thing to keep in step by hand: the
/// `builtins` test compares serde's keys with the documented ones).
#[macro_export]
macro_rules! stage_options {
    (
        $(#[$struct_meta:meta])*
        $vis:vis struct $name:ident, documented in $options:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident : $ty:ty => $doc:expr
            ),* $(,)?
        }
    ) => {
        $(#[$struct_meta])*
        $vis struct $name {
            $( $(#[$field_meta])* pub(crate) $field: $ty, )*
        }

        /// The documented options, in field order, for `weir list`, docs/stages.md and the
        /// schema.
        pub const $options: &[$crate::stage::OptionDoc] = &[
            $(
                $crate::stage::OptionDoc {
                    name: $crate::stage::option_key(stringify!($field)),
                    ..$doc
                },
            )*
        ];
    };
}

/// What the engine hands a stage config when building the stage.
#[derive(Clone)]
pub struct BuildContext {
    /// The pipeline's name: its file name without the extension, e.g. `shopping_gender`.
    pub pipeline: String,
    /// The component's key path, e.g. `sources.user_log`.
    pub path: String,
    /// The stage's counters.
    pub metrics: Arc<StageMetrics>,
    /// What the stages of this run share.
    pub resources: Arc<RunResources>,
    /// Where the stage sends the records it rejects (connected when a component reads
    /// `<id>.errors`).
    pub rejects: Rejects,
    /// The ids of the stage's inputs, in the order of its `inputs` (the ports batches come
    /// from).
    pub inputs: Vec<String>,
}

/// Things the stages of one run share, one value per type, created on first use (for example
/// the links between a Kafka sink and a Kafka source of the same topic).
#[derive(Default)]
pub struct RunResources(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl RunResources {
    /// The run's `T`, created with `T::default()` the first time it is asked for.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        Arc::clone(entry)
            .downcast::<T>()
            .expect("entries are stored under their own type id")
    }
}

/// A problem with one option, found after the options parsed (e.g. `slide` longer than `size`).
#[derive(Clone, Debug)]
pub struct OptionIssue {
    /// The option's key path relative to the component, e.g. `slide` or `aggregates[1].field`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// For an option whose value is a string (an expression): the byte of that string the issue
    /// is at, so the diagnostic points into it.
    pub within: Option<usize>,
}

impl OptionIssue {
    /// An issue with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        OptionIssue {
            key: key.into(),
            message: message.into(),
            hint: None,
            within: None,
        }
    }

    /// Points the issue at byte `at` of the option's string value.
    pub fn within(mut self, at: usize) -> Self {
        self.within = Some(at);
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// How a keyed transform runs as several instances: each record goes to the instance its key
/// (the values of `key_fields`) hashes to, so every key lives in exactly one instance, and the
/// instances' outputs are merged by event time. Built once per instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parallel {
    /// Instances (more than 1).
    pub instances: usize,
    /// The fields whose values decide a record's instance.
    pub key_fields: Vec<String>,
}

/// A record field named in an option's expression (see [`StageConfig::fields_read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldUse {
    /// The option's key path, e.g. `where` or `compute.band`.
    pub key: String,
    /// The field's name.
    pub name: String,
    /// Where the option's string names it (a byte offset into that string).
    pub at: usize,
    /// The input whose records must have it (a position in `inputs`), or `None` for any of
    /// them (the field is looked for among all the inputs' fields).
    pub input: Option<usize>,
}

/// The fields of records coming from all of `inputs` (see [`StageConfig::output_fields`]), when
/// each is known: each name once, in the order first seen.
pub fn union_of_fields(inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
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

/// A component's checked options, able to build the stage.
pub trait StageConfig: Send + Sync + Debug {
    /// Builds the stage. May open files or connections; `weir validate` never calls it.
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError>;

    /// The fields of the records the stage emits, in order, when the pipeline file says them
    /// (`inputs`: its inputs' fields, each `None` when not known before records flow). `None`,
    /// the default: not known (the stage's output depends on what it reads at run time).
    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let _ = inputs;
        None
    }

    /// The record fields its expressions read, checked against its inputs' fields where those
    /// are known (a misspelt field would read as null and silently change the result).
    fn fields_read(&self) -> Vec<FieldUse> {
        Vec::new()
    }

    /// How many inputs the stage reads when that number is fixed (a join reads two, its sides),
    /// with what each is for; `None`, the default: one or more, all alike.
    fn inputs_expected(&self) -> Option<(usize, &'static str)> {
        None
    }

    /// For a transform that keeps state per key and may run as several instances: how (see
    /// [`Parallel`]). `None`, the default: one instance.
    fn parallel(&self) -> Option<Parallel> {
        None
    }

    /// For a source: true when it reads only a share of its input, the rest going to other
    /// processes (a Kafka consumer-group member).
    fn reads_a_share(&self) -> bool {
        false
    }

    /// For a transform: true when its output depends on records it saw earlier (a window), so it
    /// needs every record of its input, not a share.
    fn keeps_state(&self) -> bool {
        false
    }

    /// True when the stage marks its output with how far it has emitted (`ack`), and a restarted
    /// run resumes from the mark committed with that output (a window, a csv source).
    fn marks_progress(&self) -> bool {
        false
    }

    /// For a sink: true when it commits, with what it writes, the progress marks that output
    /// carries (a Kafka sink writing exactly once, `postgres`).
    fn commits_progress(&self) -> bool {
        false
    }

    /// For a sink: false when a run may not finish it and build its replacement while the
    /// pipeline goes on (`weir run --watch`), e.g. because it hands state over to its successor
    /// that is not built yet (a Kafka sink's transactions).
    fn replaceable_while_running(&self) -> bool {
        true
    }
}

/// A stage type: its name, documentation and how to read its options.
pub trait StageFactory: Send + Sync {
    /// The role of stages of this type.
    fn kind(&self) -> StageKind;
    /// The `type` name.
    fn type_name(&self) -> &str;
    /// One line on what it does.
    fn summary(&self) -> &str;
    /// Its options.
    fn options(&self) -> &[OptionDoc];
    /// A top-level table whose keys every component of this type inherits unless it sets them
    /// itself (`kafka` for the Kafka stages), or `None`.
    fn inherits(&self) -> Option<&str> {
        None
    }
    /// Reads and checks the options of the component at `path`. Returns the config and any
    /// warnings, or every error found.
    fn configure(&self, options: &Node, path: &str) -> Result<Configured, Vec<Diagnostic>>;
    /// The keys its config type reads, as the type itself declares them (serde's field list), when
    /// it can say: what [`options`](Self::options) documents is checked against it.
    fn declared_keys(&self) -> Option<Vec<&'static str>> {
        None
    }
}

/// The field names serde's derive declares for `C` (`deserialize_struct`'s list), found by asking
/// `C` to deserialize itself from a deserializer that only listens; `None` for a config that
/// is not a plain struct (a map, a flattened one).
pub fn declared_fields<C: DeserializeOwned>() -> Option<&'static [&'static str]> {
    use serde::de::{Deserializer, Error as _, Visitor, value::Error};
    struct Listener(std::cell::Cell<Option<&'static [&'static str]>>);
    impl<'de> Deserializer<'de> for &Listener {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("only listening"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0.set(Some(fields));
            Err(Error::custom("only listening"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let listener = Listener(std::cell::Cell::new(None));
    let _ = C::deserialize(&listener);
    listener.0.get()
}

/// A component's options, read and checked.
#[derive(Debug)]
pub struct Configured {
    /// The config, ready to build.
    pub config: Box<dyn StageConfig>,
    /// Things that are allowed but probably wrong.
    pub warnings: Vec<Diagnostic>,
}

/// What a built-in stage's config struct provides on top of `Deserialize`.
pub trait BuiltinConfig: StageConfig + DeserializeOwned + 'static {
    /// Checks that need more than one option or more than the type, as errors.
    fn check(&self) -> Vec<OptionIssue> {
        Vec::new()
    }

    /// Checks that only warrant a warning (e.g. an input file that does not exist yet).
    fn warnings(&self) -> Vec<OptionIssue> {
        Vec::new()
    }
}

/// The factory of a built-in stage: a config struct plus its documentation.
pub struct Builtin<C> {
    kind: StageKind,
    name: &'static str,
    summary: &'static str,
    options: &'static [OptionDoc],
    inherits: Option<&'static str>,
    refused: &'static [&'static str],
    config: PhantomData<fn() -> C>,
}

impl<C: BuiltinConfig> Builtin<C> {
    /// A factory for `C`.
    pub const fn new(
        kind: StageKind,
        name: &'static str,
        summary: &'static str,
        options: &'static [OptionDoc],
    ) -> Self {
        Builtin {
            kind,
            name,
            summary,
            options,
            inherits: None,
            refused: &[],
            config: PhantomData,
        }
    }

    /// Components of this type inherit the keys of the top-level table `section`.
    pub const fn inheriting(mut self, section: &'static str) -> Self {
        self.inherits = Some(section);
        self
    }

    /// Keys the config type reads that this stage type refuses with an error (a config shared
    /// by a source and a sink); they are not documented for it.
    pub const fn refusing(mut self, keys: &'static [&'static str]) -> Self {
        self.refused = keys;
        self
    }
}

impl<C: BuiltinConfig> StageFactory for Builtin<C> {
    fn kind(&self) -> StageKind {
        self.kind
    }

    fn type_name(&self) -> &str {
        self.name
    }

    fn summary(&self) -> &str {
        self.summary
    }

    fn options(&self) -> &[OptionDoc] {
        self.options
    }

    fn inherits(&self) -> Option<&str> {
        self.inherits
    }

    fn declared_keys(&self) -> Option<Vec<&'static str>> {
        declared_fields::<C>().map(|fields| {
            fields
                .iter()
                .copied()
                .filter(|f| !self.refused.contains(f))
                .collect()
        })
    }

    fn configure(&self, options: &Node, path: &str) -> Result<Configured, Vec<Diagnostic>> {
        let config: C = from_node(options, path)?;
        // Each issue as a diagnostic of `severity` at the option it names.
        let diagnostics =
            |issues: Vec<OptionIssue>, severity: fn(Origin, String, String) -> Diagnostic| {
                issues
                    .into_iter()
                    .map(|issue| {
                        let origin = match options.find(&issue.key) {
                            None => options.origin.clone(),
                            Some(node) => match (&node.value, issue.within) {
                                (NodeValue::Str(text), Some(at)) => {
                                    node.origin.within_string(text, at)
                                }
                                _ => node.origin.clone(),
                            },
                        };
                        severity(origin, format!("{path}.{}", issue.key), issue.message)
                            .with_optional_hint(issue.hint)
                    })
                    .collect::<Vec<_>>()
            };
        let errors = diagnostics(config.check(), Diagnostic::error);
        if !errors.is_empty() {
            return Err(errors);
        }
        let warnings = diagnostics(config.warnings(), Diagnostic::warning);
        Ok(Configured {
            config: Box::new(config),
            warnings,
        })
    }
}
