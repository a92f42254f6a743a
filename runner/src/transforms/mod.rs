//! Built-in transforms.

pub mod filter;
pub mod select;
pub mod window;

use crate::registry::Registry;
use std::sync::Arc;

/// Registers every built-in transform.
pub fn register(registry: &mut Registry) {
    registry.register(Arc::new(filter::factory()));
    registry.register(Arc::new(select::factory()));
    registry.register(Arc::new(window::factory()));
}
