//! Built-in sources: each module is one stage type (a config struct and its `factory`), listed in
//! `builtins`.

pub mod checkpoint;
pub mod csv;
pub mod kafka;
