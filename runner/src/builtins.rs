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
        Arc::new(transforms::filter::factory()),
        Arc::new(transforms::select::factory()),
        Arc::new(transforms::window::factory()),
        Arc::new(sinks::blackhole::factory()),
        Arc::new(sinks::console::factory()),
        Arc::new(sinks::file::factory()),
        Arc::new(sinks::kafka::factory()),
        Arc::new(sinks::prometheus::factory()),
        Arc::new(sinks::socketio::factory()),
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
