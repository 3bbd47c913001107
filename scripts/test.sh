#!/usr/bin/env bash
# The test command: installs what is missing, then runs the Rust tests (real sockets, real
# Redis processes), the Node tests (the JS client, the benchmark report) and the headless-Chromium
# end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --quiet --examples --bins
cargo test --quiet
node --test tests/js/
# The browser test against the chat example, then against the gateway (the README's run command).
node tests/browser/e2e.mjs
SEALCAST_CHAT_CMD="${CARGO_TARGET_DIR:-target}/debug/sealcast serve" node tests/browser/e2e.mjs
