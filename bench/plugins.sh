#!/usr/bin/env bash
# Plugin ABI overhead: the built-in `filter` against the same filter as a plugin (selection and
# copying variants), at 1, 64 and 1024 rows per batch. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p weir-bench-plugin
cargo run --release --quiet -p weir --example plugin_overhead -- "$target/release/libweir_bench_plugin.so"
