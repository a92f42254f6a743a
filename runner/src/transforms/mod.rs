//! Built-in transforms: each module is one stage type (a config struct and its `factory`), listed
//! in `builtins`.

pub mod filter;
pub mod select;
pub mod window;
