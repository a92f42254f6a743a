//! The stage types known to a run: a list of factories, looked up by role and `type` name.
//! Built-in stages come from `builtins`, plugin stages from `plugins`; both implement
//! [`StageFactory`], so the topology never knows the difference.

use crate::config::{Diagnostic, Origin, did_you_mean};
use crate::stage::{StageFactory, StageKind};
use std::sync::Arc;

/// All stage types known to a run.
#[derive(Clone, Default)]
pub struct Registry {
    factories: Vec<Arc<dyn StageFactory>>,
}

impl Registry {
    /// Adds a stage type.
    pub fn register(&mut self, factory: Arc<dyn StageFactory>) {
        self.factories.push(factory);
    }

    /// The factory for `type_name` in role `kind`.
    pub fn find(&self, kind: StageKind, type_name: &str) -> Option<&Arc<dyn StageFactory>> {
        self.factories
            .iter()
            .find(|f| f.kind() == kind && f.type_name() == type_name)
    }

    /// Every factory, sources first.
    pub fn all(&self) -> Vec<&Arc<dyn StageFactory>> {
        let mut all: Vec<_> = self.factories.iter().collect();
        all.sort_by_key(|f| (f.kind(), f.type_name().to_string()));
        all
    }

    /// Explains why `type_name` is not a stage of `kind`, with a suggestion when possible.
    pub fn unknown_type(
        &self,
        kind: StageKind,
        type_name: &str,
        origin: Origin,
        path: &str,
    ) -> Diagnostic {
        let same_kind = self
            .factories
            .iter()
            .filter(|f| f.kind() == kind)
            .map(|f| f.type_name());
        let other_kind = self
            .factories
            .iter()
            .find(|f| f.kind() != kind && f.type_name() == type_name);
        let hint = match (did_you_mean(type_name, same_kind.clone()), other_kind) {
            (Some(h), _) => h,
            (None, Some(f)) => format!("`{type_name}` is a {}, not a {kind}", f.kind()),
            (None, None) => format!(
                "{} types: {}",
                kind,
                same_kind
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Diagnostic::error(origin, path, format!("unknown {kind} type `{type_name}`"))
            .with_hint(hint)
    }
}
