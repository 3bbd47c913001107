#!/usr/bin/env bash
# Installs what the tests need when it is missing: redis-server (Redis tests start their own
# processes on free ports), Debian chromium (browser test), a C compiler (linking, and AWS-LC's
# AES-GCM, which aws-lc-sys builds from C and assembly), and the npm dev packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/ws ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
