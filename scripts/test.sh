#!/usr/bin/env bash
# The test command: installs what is missing, then runs the Rust tests (real sockets, real
# Redis processes), the Node tests of the JS client and the headless-Chromium end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --quiet --examples --bins
cargo test --quiet
node --test tests/js/
node tests/browser/e2e.mjs
