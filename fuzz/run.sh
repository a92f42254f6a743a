#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) with libFuzzer, from seed corpora made of the
# repository's own fixtures; prints executions per target. Without a sanitizer: weir's code is
# safe Rust, so what a run hunts is panics, hangs (-timeout) and memory blow-ups (-rss_limit_mb),
# and it runs several times faster. Needs the nightly toolchain (present on
# these machines; `rustup toolchain install nightly` elsewhere) and cargo-fuzz (installed here from
# crates.io if missing). A crash stops the script with its input under fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(pipeline csv kafka_codecs plugin_descriptor socketio expression)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
# Builds outside the clone, kept between runs (CI starts from a fresh clone).
export CARGO_TARGET_DIR="${WEIR_FUZZ_TARGET_DIR:-$HOME/.cache/weir/fuzz-target}"

# Seed corpora from the repository's fixtures (rebuilt each run; libFuzzer adds what it finds).
seed() { # target files...
  local dir="corpus/$1"
  shift
  mkdir -p "$dir"
  for f in "$@"; do
    [ -f "$f" ] && cp "$f" "$dir/seed-$(basename "$f")"
  done
  return 0
}
seed pipeline ../pipelines/*.toml ../pipelines/cookbook/*.toml ../tests/fixtures/*.toml
seed csv ../tests/fixtures/*.csv
head -c 4000 ../data/user_log_sample.csv > corpus/csv/seed-sample-head.csv
mkdir -p corpus/kafka_codecs
printf '\x00\x00"0"' > corpus/kafka_codecs/seed-raw
printf '\x01\x00{"gender":"1","count":3}' > corpus/kafka_codecs/seed-json
printf '\x02\x00[{"0":1},{"2":3},{"1":6}]' > corpus/kafka_codecs/seed-seed
printf '\x08\x0e{"user":"u1"}{"gender":"2"}' > corpus/kafka_codecs/seed-json-key
mkdir -p corpus/expression
n=0
for e in "action == '2' && age_range != '' && int(age_range) >= 4" \
  "int(a) >= 6 ? '40+' : int(a) == 5 ? '35-39' : '30-34'" "b.matches('^[0-9]+$') || c in [1, 'x', null]" \
  "record['a'] + string(size(b)) + b.lowerAscii().trim()" "hour() < 6 && weekday(event_time()) != 0" \
  "-a * 2 / (c % 3) - double(b)" "!has(a) || !(a != null)"; do
  n=$((n + 1)); printf '%s' "$e" > "corpus/expression/seed-$n"
done
mkdir -p corpus/plugin_descriptor corpus/socketio
# ABI as built, a plugin `shop` 0.1 with a transform `count` and one option.
printf '\x00\x00\x00\x04shop\x030.1\x01\x02\x05count\x05count\x01\x03key\x06string\x02""\x03doc' \
  > corpus/plugin_descriptor/seed-shop
printf '\x00\x00\x00\x04sh.p\x00\x02\x04\x01a\x00\x00\x01\xffb\x00' > corpus/plugin_descriptor/seed-odd
printf '40' > corpus/socketio/seed-connect
printf '40{"token":"t0ken"}' > corpus/socketio/seed-token
printf '40{"token":"t0ken"}\x1e42["test_connect",{"data":"x"}]' > corpus/socketio/seed-tutorial
printf '40{"token":"t0ken"}\x1e42["other",1]\x1e421["ack",{}]' > corpus/socketio/seed-events
printf '40{"token":"t0ken"}\x1e451-["up",{"_placeholder":true,"num":0}]\x1ebAQID' > corpus/socketio/seed-binary

for target in "${targets[@]}"; do
  log="$(mktemp)"
  cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || { tail -40 "$log"; echo "fuzz/run.sh: $target failed" >&2; exit 1; }
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  peak=$(grep -E '^stat::peak_rss_mb' "$log" | awk '{print $2}')
  echo "$target: ${runs:-?} executions in ${seconds} s, peak RSS ${peak:-?} MB, no crash"
  rm -f "$log"
done
