//! Built-in sinks: each module is one stage type (a config struct and its `factory`), listed in
//! `builtins`.

pub mod blackhole;
pub mod console;
pub mod file;
pub mod http;
pub mod kafka;
pub mod postgres;
pub mod prometheus;
pub mod socketio;
pub mod websocket;
