//! The plugin crates of the repository, built once per test binary in a target directory of their
//! own (the outer `cargo test` holds the lock on its own).

use super::repo;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the plugin crates once per test run, in a target directory of their own (the outer
/// `cargo test` holds the lock on its own), and returns where the libraries are.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let packages = [
            "weir-shop",
            "weir-test-faulty",
            "weir-test-future-abi",
            "weir-test-not-a-plugin",
            "weir-plugin-template",
        ];
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo())
            .args(["build", "--quiet", "--locked", "--target-dir"])
            .arg(&target);
        for p in packages {
            cmd.args(["-p", p]);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the plugins failed");
        target.join("debug")
    })
}

pub fn lib(name: &str) -> PathBuf {
    plugin_dir().join(format!("lib{name}.{}", std::env::consts::DLL_EXTENSION))
}
