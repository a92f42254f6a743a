//! Built-in sources.

pub mod csv;
pub mod kafka;

use crate::registry::Registry;
use std::sync::Arc;

/// Registers every built-in source.
pub fn register(registry: &mut Registry) {
    registry.register(Arc::new(csv::factory()));
    registry.register(Arc::new(kafka::factory()));
}
