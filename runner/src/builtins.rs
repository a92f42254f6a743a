//! The built-in stage types: the one list that names them, at the top of the build layer. A new
//! built-in stage is its module plus one line here.

use crate::registry::Registry;
use crate::stage::StageFactory;
use crate::{sinks, sources, transforms};
use std::sync::Arc;

/// The factory of every built-in stage type.
pub fn factories() -> Vec<Arc<dyn StageFactory>> {
    vec![
        Arc::new(sources::csv::factory()),
        Arc::new(sources::kafka::factory()),
        Arc::new(transforms::dedupe::factory()),
        Arc::new(transforms::join::factory()),
        Arc::new(transforms::filter::factory()),
        Arc::new(transforms::lookup::factory()),
        Arc::new(transforms::select::factory()),
        Arc::new(transforms::top::factory()),
        Arc::new(transforms::window::session_factory()),
        Arc::new(transforms::window::factory()),
        Arc::new(sinks::blackhole::factory()),
        Arc::new(sinks::console::factory()),
        Arc::new(sinks::file::factory()),
        Arc::new(sinks::http::factory()),
        Arc::new(sinks::kafka::factory()),
        Arc::new(sinks::postgres::factory()),
        Arc::new(sinks::prometheus::factory()),
        Arc::new(sinks::socketio::factory()),
        Arc::new(sinks::websocket::factory()),
    ]
}

/// A registry of the built-in stage types.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    for factory in factories() {
        registry.register(factory);
    }
    registry
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `weir list`, docs/stages.md and the schema come from each stage's documented options;
    /// validation comes from its config struct. They must name the same keys.
    #[test]
    fn every_documented_option_is_a_key_the_config_reads_and_back() {
        let registry = super::registry();
        for factory in registry.all() {
            let documented: BTreeSet<&str> = factory.options().iter().map(|o| o.name).collect();
            let declared: BTreeSet<&str> = factory
                .declared_keys()
                .unwrap_or_else(|| panic!("{}: no field list", factory.type_name()))
                .iter()
                .copied()
                .collect();
            assert_eq!(
                documented,
                declared,
                "{} {}: documented options vs the keys its config reads",
                factory.kind().noun(),
                factory.type_name()
            );
        }
    }
}
