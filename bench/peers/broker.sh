#!/usr/bin/env bash
# Stands in for the peer rig's `tansu` binary: the rig starts
#   $TANSU broker --listener-url tcp://HOST:PORT --advertised-listener-url ... --storage-engine URL
# and this runs the same tansu 0.6.0 broker code as `weir broker` on that address, in memory.
set -euo pipefail
listen=
while [ $# -gt 0 ]; do
  case $1 in
    --listener-url) listen=${2#tcp://}; shift 2 ;;
    *) shift ;;
  esac
done
exec "${WEIR:?set WEIR to the weir binary}" -q broker --listen "${listen:?no --listener-url}"
