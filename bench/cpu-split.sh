#!/usr/bin/env bash
# Where the two cores go: CPU time per request of each process (wasmhouse,
# clickhouse-server, wrk) for simple-query through wasmhouse, ClickHouse's
# `SELECT 1` queried directly, wasmhouse `/health` and a plain hyper server;
# read from /proc/<pid>/stat around each run, alternately, in one run.
#
#   bench/cpu-split.sh                           # 2 rounds of 5 s, c=32
#   BENCH_DURATION=10 BENCH_ROUNDS=3 BENCH_CONNECTIONS=8 bench/cpu-split.sh
#
# It explains the throughput ratios: on a machine whose cores are all busy,
# req/s ≈ cores / (CPU per request of everything on them). Builds in release
# mode; starts its own clickhouse-server and servers on free loopback ports;
# load goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WORK="$(mktemp -d /tmp/wasmhouse-cpu.XXXXXX)"
trap 'kill "${WH_PID:-}" "${HELLO_PID:-}" "${CH_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
ensure_wasm_target
cargo build --release -q -p wasmhouse -p wasmhouse-bench-hello
start_scratch_clickhouse "$WORK/ch"
CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=warn WASMHOUSE_COMPILE_CACHE=off \
  "$TARGET_DIR"/release/wasmhouse serve --listen 127.0.0.1:0 > "$WORK/wh" 2>&1 &
WH_PID=$!
"$TARGET_DIR"/release/wasmhouse-bench-hello 127.0.0.1:0 > "$WORK/hello" 2>&1 &
HELLO_PID=$!
for _ in $(seq 1 600); do
  grep -q "listening on" "$WORK/wh" && grep -q "listening on" "$WORK/hello" && break
  sleep 0.1
done
WH="$(grep -o 'http://[0-9.:]*' "$WORK/wh" | head -1)"
HELLO="$(grep -o 'http://[0-9.:]*' "$WORK/hello" | head -1)"
[ -n "$WH" ] && [ -n "$HELLO" ] || die "a server did not start: $(cat "$WORK/wh" "$WORK/hello")"
CH="http://127.0.0.1:$CH_PORT/?query=SELECT%201%20AS%20value%20FORMAT%20JSONEachRow"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"

# One run: "req/s host_us clickhouse_us wrk_us" (CPU µs per request).
measure() {
  local url="$1" host_pid="$2"
  local h0 c0 h1 c1
  h0="$(ticks "$host_pid")"; c0="$(ticks "$CH_PID")"
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$url" > "$WORK/wrk" 2>&1 &
  local wrk_pid=$!
  # wrk's own CPU: sampled just before it exits.
  local w=0
  while kill -0 "$wrk_pid" 2>/dev/null; do
    w="$(ticks "$wrk_pid" 2>/dev/null || echo "$w")"
    sleep 0.2
  done
  wait "$wrk_pid" || true
  h1="$(ticks "$host_pid")"; c1="$(ticks "$CH_PID")"
  python3 - "$WORK/wrk" "$((h1 - h0))" "$((c1 - c0))" "$w" "$HZ" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
host, ch, wrk, hz = (int(x) for x in sys.argv[2:6])
total = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
us = lambda t: t / hz * 1e6 / total
print(f"{rps:.0f} {us(host):.0f} {us(ch):.0f} {us(wrk):.0f}")
PY
}

say "warming up"
DURATION=1 measure "$WH/concurrent/simple-query" "$WH_PID" > /dev/null
DURATION=1 measure "$WH/health" "$WH_PID" > /dev/null

printf '| round | case | req/s | wasmhouse or hyper µs/req | ClickHouse µs/req | wrk µs/req |\n|---|---|---|---|---|---|\n' > "$WORK/table"
for round in $(seq 1 "$ROUNDS"); do
  for case in simple-query direct health hyper; do
    case "$case" in
      simple-query) read -r rps host ch wrk < <(measure "$WH/concurrent/simple-query" "$WH_PID") ;;
      direct) read -r rps host ch wrk < <(measure "$CH" "$WH_PID"); host="–" ;;
      health) read -r rps host ch wrk < <(measure "$WH/health" "$WH_PID") ;;
      hyper) read -r rps host ch wrk < <(measure "$HELLO/health" "$HELLO_PID") ;;
    esac
    say "round $round, $case: $rps req/s; CPU µs per request: host $host, ClickHouse $ch, wrk $wrk"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$round" "$case" "$rps" "$host" "$ch" "$wrk" >> "$WORK/table"
  done
done
echo
echo "CPU time per request, c=$CONNECTIONS, $DURATION s per run, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'):"
echo
cat "$WORK/table"
