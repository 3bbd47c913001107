#!/usr/bin/env bash
# sealcast vs raw Bun pub/sub: runs both servers through the same scenarios with the same load
# generator (examples/loadgen.rs) and prints one table with both and the ratios.
#
#   bench/run.sh           # quick: 1 repetition, smaller idle/steady runs (about 2 minutes)
#   bench/run.sh full      # the documented run: 3 repetitions (medians), 19,000 idle clients
#
# Every size can be overridden through the environment (see the defaults below), e.g.
#   IDLE_CLIENTS=5000 REPEAT=3 bench/run.sh
#
# It builds the release examples (into $CARGO_TARGET_DIR, default ./target), installs the Bun
# binary from npm (@oven/bun-linux-x64, bench/package.json) when missing, starts a private
# redis-server on a free port, and for each scenario and repetition starts a fresh server,
# runs the generator, and stops the server. sealcast and Bun alternate within a repetition so
# their numbers are taken side by side. Raw RESULT lines go to $OUT (default
# target/bench-results.txt); the table is printed by bench/table.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${1:-quick}
case "$MODE" in
quick)
  : "${REPEAT:=1}" "${IDLE_CLIENTS:=5000}" "${STEADY_MESSAGES:=1000}" ;;
full)
  : "${REPEAT:=3}" "${IDLE_CLIENTS:=19000}" "${STEADY_MESSAGES:=2000}" ;;
*)
  echo "usage: bench/run.sh [quick|full]" >&2
  exit 2 ;;
esac
: "${CLIENTS_1K:=1000}" "${MESSAGES_1K:=2000}" "${WINDOW_1K:=256}"
: "${CLIENTS_10K:=10000}" "${MESSAGES_10K:=200}" "${WINDOW_10K:=100}"
: "${SMALL_CLIENTS:=4}" "${SMALL_MESSAGES:=200000}" "${WINDOW_SMALL:=512}"
: "${STEADY_CLIENTS:=1000}" "${STEADY_RATE:=200}"
export STEADY_RATE # bench/table.mjs labels the steady rows with it
: "${ENC_CLIENTS:=1000}" "${ENC_MESSAGES:=2000}" "${MIXED_MESSAGES:=4000}"
: "${PACED_CYCLES:=12}" "${PACED_MESSAGES:=1000}"
: "${ISOLATED_RATE:=150}" "${ISOLATED_CYCLES:=5}" "${ISOLATED_MESSAGES:=150}"
export ISOLATED_RATE # bench/table.mjs labels the isolated mixed-room rows with it
: "${PAYLOAD:=64}" "${GEN_THREADS:=2}"
: "${SCENARIOS:=fanout_1k steady fanout_10k small_room idle encrypted encrypted_v2 encrypted_v2_single mixed mixed_paced mixed_isolated}"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/bench-results.txt}

# Up to 19,000 sockets in one process; the machine's hard limit is 20,000.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CLIENTS + 200)) ]; then
  echo "warning: ulimit -n is $(ulimit -n), below IDLE_CLIENTS=$IDLE_CLIENTS + 200" >&2
fi

echo "== building (release) =="
cargo build --release --quiet --example bench_server --example loadgen
SEALCAST="$TARGET_DIR/release/examples/bench_server"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
BUN="$ROOT/bench/node_modules/@oven/bun-linux-x64/bin/bun"
if [ ! -x "$BUN" ] || [ ! -d "$ROOT/bench/node_modules/ioredis" ]; then
  (cd bench && npm ci --no-audit --no-fund --silent)
fi
command -v redis-server >/dev/null || { echo "redis-server is required (apt-get install redis-server)" >&2; exit 1; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A private redis-server on a free port below the ephemeral range (the generator's outgoing
# connections take ports from 32768 up).
REDIS_PORT=
for _ in $(seq 20); do
  p=$((20000 + RANDOM % 12000))
  port_free "$p" || continue
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
    --loglevel warning >"$TARGET_DIR/bench-redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do
    if redis-cli -p "$p" ping >/dev/null 2>&1; then REDIS_PORT=$p; break; fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -n "$REDIS_PORT" ]; then PIDS+=("$REDIS_PID"); break; fi
  kill "$REDIS_PID" 2>/dev/null || true
done
[ -n "$REDIS_PORT" ] || { echo "redis-server did not start:" >&2; cat "$TARGET_DIR/bench-redis.log" >&2; exit 1; }
REDIS="redis://127.0.0.1:$REDIS_PORT"

SERVER_PID=
SERVER_URL=
# start_server NAME CMD... : starts a server, waits for its "listening on http://ADDR" line.
start_server() {
  local log="$TARGET_DIR/bench-server-$1.log"
  shift
  # Emptied here, not only by the server's redirection: that runs in the background child,
  # and the wait below could otherwise find the previous repetition's address in the file.
  : >"$log"
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 200); do
    if grep -q "listening on http://" "$log" 2>/dev/null; then
      SERVER_URL="ws://$(grep -o 'listening on http://[^ ]*' "$log" | head -1 | sed 's|listening on http://||')/ws"
      sleep 0.2 # let the process settle before its RSS baseline is taken
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start:" >&2
  cat "$log" >&2
  exit 1
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# can_pin SCENARIO: whether the server and the generator can have a core each (else says so).
can_pin() {
  [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null && return 0
  echo "$1 needs 2 cores and taskset; skipped" >&2
  return 1
}

# run SCENARIO SERVER REP [loadgen args...]
run() {
  local scenario=$1 server=$2 rep=$3
  shift 3
  case "$server" in
  sealcast) start_server "$server" "$SEALCAST" --redis "$REDIS" ;;
  # The reference's pattern subscriptions, as the Bun baseline subscribes (no SUBSCRIBE per user).
  sealcast_pattern) start_server "$server" "$SEALCAST" --redis "$REDIS" --subscription pattern ;;
  sealcast_v1) start_server "$server" "$SEALCAST" --redis "$REDIS" --encryption v1 ;;
  sealcast_v2) start_server "$server" "$SEALCAST" --redis "$REDIS" --encryption v2 ;;
  # Server and generator on a core each, one thread each (taskset execs, so the pid stays).
  sealcast_v1_pinned) start_server "$server" taskset -c 0 "$SEALCAST" --redis "$REDIS" --encryption v1 --threads 1 ;;
  bun) start_server "$server" "$BUN" bench/bun/server.js --redis "$REDIS" ;;
  esac
  local line log="$TARGET_DIR/bench-loadgen.log" gen=("$LOADGEN") threads=$GEN_THREADS
  if [ "$server" = sealcast_v1_pinned ]; then
    gen=(taskset -c 1 "$LOADGEN")
    threads=1
  fi
  "${gen[@]}" --url "$SERVER_URL" --redis "$REDIS" --server-pid "$SERVER_PID" \
    --label "$scenario/$server/$rep" --payload "$PAYLOAD" --threads "$threads" "$@" \
    >"$log" 2>&1 || true
  grep -v '^RESULT ' "$log" || true
  line=$(grep '^RESULT ' "$log" || true)
  stop_server
  if [ -n "$line" ]; then
    echo "scenario=$scenario server=$server rep=$rep ${line#RESULT }" >>"$OUT"
  else
    echo "scenario=$scenario server=$server rep=$rep failed=1" >>"$OUT"
  fi
}

# alternating NAME REP [loadgen args...]: with the server and the generator on a core each
# (so the generator's decrypting does not slow the server's core), ENC_CLIENTS / 2 each of
# sealed, plaintext and decoy clients in one server run, and loadgen --alternate: cycles of a
# room of the sealed clients, the same with the plaintext ones (the mixed room), a room of the
# decoys, the same with the plaintext ones. Per cycle, each room with the plaintext clients
# minus the room without them is what they add next to sealed receivers, and next to decoys.
alternating() {
  local name=$1 rep=$2
  shift 2
  # A third of 3 × ENC_CLIENTS / 2 clients each (loadgen rounds each share).
  run "${name}_alternating" sealcast_v1_pinned "$rep" --clients $((ENC_CLIENTS * 3 / 2)) \
    --encrypted 0.3334 --decoy 0.3334 "$@"
}

{
  echo "# $(date -u +%FT%TZ) mode=$MODE nproc=$(nproc) cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
} >"$OUT"

for rep in $(seq "$REPEAT"); do
  for scenario in $SCENARIOS; do
    echo "== $scenario (repetition $rep of $REPEAT) =="
    case "$scenario" in
    fanout_1k)
      for s in sealcast bun; do
        run "$scenario" "$s" "$rep" --clients "$CLIENTS_1K" --messages "$MESSAGES_1K" --window "$WINDOW_1K"
      done ;;
    steady)
      for s in sealcast bun; do
        run "$scenario" "$s" "$rep" --clients "$STEADY_CLIENTS" --messages "$STEADY_MESSAGES" --rate "$STEADY_RATE"
      done ;;
    fanout_10k)
      for s in sealcast bun; do
        run "$scenario" "$s" "$rep" --clients "$CLIENTS_10K" --messages "$MESSAGES_10K" --window "$WINDOW_10K"
      done ;;
    small_room)
      # Many messages to a room of a few: the cost of each message's way in from Redis.
      for s in sealcast bun; do
        run "$scenario" "$s" "$rep" --clients "$SMALL_CLIENTS" --messages "$SMALL_MESSAGES" --window "$WINDOW_SMALL"
      done ;;
    idle)
      for s in sealcast sealcast_pattern bun; do
        run "$scenario" "$s" "$rep" --clients "$IDLE_CLIENTS" --messages 0
      done ;;
    encrypted)
      run "$scenario" sealcast_v1 "$rep" --clients "$ENC_CLIENTS" --messages "$ENC_MESSAGES" --window "$WINDOW_1K" --encrypted 1 ;;
    encrypted_v2)
      run "$scenario" sealcast_v2 "$rep" --clients "$ENC_CLIENTS" --messages "$ENC_MESSAGES" --window "$WINDOW_1K" --encrypted 1 --profile v2 ;;
    encrypted_v2_single)
      # v2 clients that do not offer batched records: one seal per message (info).
      run "$scenario" sealcast_v2 "$rep" --clients "$ENC_CLIENTS" --messages "$ENC_MESSAGES" --window "$WINDOW_1K" --encrypted 1 --profile v2-single ;;
    mixed)
      # The mixed room, then its sealed half alone (same messages, same decrypting load on
      # the generator): the difference is what the plaintext half costs.
      run "$scenario" sealcast_v1 "$rep" --clients "$ENC_CLIENTS" --messages "$MIXED_MESSAGES" --window "$WINDOW_1K" --encrypted 0.5
      run mixed_sealed_half sealcast_v1 "$rep" --clients $((ENC_CLIENTS / 2)) --messages "$MIXED_MESSAGES" --window "$WINDOW_1K" --encrypted 1 ;;
    mixed_paced)
      # The windowed mixed room, against a plaintext room whose other half are decoys:
      # plaintext receivers that spend a v1 decryption's CPU on every delivery (loadgen
      # --decoy), so the generator reads both rooms at one pace.
      can_pin mixed_paced && alternating mixed_paced "$rep" --alternate "$PACED_CYCLES" \
        --messages "$PACED_MESSAGES" --window "$WINDOW_1K" ;;
    mixed_isolated)
      # The same comparison at one fixed rate, so messages arrive alike.
      can_pin mixed_isolated && alternating mixed_isolated "$rep" --alternate "$ISOLATED_CYCLES" \
        --messages "$ISOLATED_MESSAGES" --rate "$ISOLATED_RATE" ;;
    *)
      echo "unknown scenario $scenario" >&2 ;;
    esac
  done
done

echo
"$BUN" bench/table.mjs "$OUT"
