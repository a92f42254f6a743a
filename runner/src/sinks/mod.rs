//! Built-in sinks.

pub mod blackhole;
pub mod console;
pub mod file;
pub mod format;
pub mod kafka;
pub mod prometheus;
pub mod serve;
pub mod socketio;
pub mod window_points;

use crate::registry::Registry;
use std::sync::Arc;

/// Registers every built-in sink.
pub fn register(registry: &mut Registry) {
    registry.register(Arc::new(blackhole::factory()));
    registry.register(Arc::new(console::factory()));
    registry.register(Arc::new(file::factory()));
    registry.register(Arc::new(kafka::factory()));
    registry.register(Arc::new(prometheus::factory()));
    registry.register(Arc::new(socketio::factory()));
}
