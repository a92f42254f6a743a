//! Built-in sources.

pub mod csv;

use crate::registry::Registry;
use std::sync::Arc;

/// Registers every built-in source.
pub fn register(registry: &mut Registry) {
    registry.register(Arc::new(csv::factory()));
}
