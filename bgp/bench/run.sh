#!/bin/sh
# Announce-side benchmark: ferrolb-bgp vs gobgpd vs BIRD into one receiving gobgpd.
# Run as root from anywhere; extra arguments go to run.py (--sizes, --runs, --senders).
set -eu
cd "$(dirname "$0")/../.."
cargo build --release -p ferrolb-bgp --bin ferrolb-bgp-bench
exec python3 bgp/bench/run.py --binary target/release/ferrolb-bgp-bench "$@"
