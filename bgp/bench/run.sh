#!/bin/sh
# Announce-side benchmark: ferrolb-bgp vs gobgpd vs BIRD into one receiving gobgpd.
# Run as root from anywhere; extra arguments go to run.py (--sizes, --runs, --senders).
set -eu
cd "$(dirname "$0")/../.."
# gobgpd/gobgp and BIRD are the references; python3-grpcio lets run.py poll the receiving
# gobgpd over its API instead of starting a CLI process per poll.
if ! command -v gobgpd >/dev/null || ! command -v bird >/dev/null \
    || ! /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
    apt-get install -y gobgpd bird2 python3-grpcio
fi
cargo build --release -p ferrolb-bgp --bin ferrolb-bgp-bench
exec /usr/bin/python3 bgp/bench/run.py --binary target/release/ferrolb-bgp-bench "$@"
