#!/usr/bin/env bash
# A small, bounded smoke of `chorus-loadtest compare` for CI: installs the peers (setup.sh),
# builds Chorus and the harness (debug, as the tests do), and runs 2 groups x 50 members at
# 20 msg/s for 2 s against every target on loopback (the default --targets: chorus, nats29,
# nats, centrifugo, socketio). --strict makes it fail if any target could not be started or
# its run failed. About a minute once built (each target's start, run, drain and stop).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash loadtest/peers/setup.sh
cargo build --locked -p chorus -p chorus-loadtest
dir="${CARGO_TARGET_DIR:-target}/debug"
"$dir/chorus-loadtest" --server-bin "$dir/chorus" \
    --duration 2 --rate 20 --max-seconds 300 \
    compare --groups 2 --members 50 --strict
