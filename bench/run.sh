#!/usr/bin/env bash
# Benchmarks wasmhouse next to references measured in the same run, and writes
# the table into BENCHMARKS.md (between the results markers).
#
#   bench/run.sh                   # everything, 10 s per load case
#   BENCH_DURATION=5 bench/run.sh  # shorter
#   BENCH_CURVES=0 bench/run.sh    # without the curves (bench/curves.sh)
#
# Builds in release mode; starts its own clickhouse-server, wasmhouse and a
# plain hyper server on free loopback ports; drives them with wrk (installed
# with apt if missing). Everything is stopped at the end. Load only ever goes
# to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
STREAM_ROWS="${BENCH_STREAM_ROWS:-10000000}"
WORK="$(mktemp -d /tmp/wasmhouse-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Wait for a line starting with $2 in file $1; print the rest of it.
wait_for_line() {
  local file="$1" prefix="$2"
  for _ in $(seq 1 600); do
    local line; line="$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)"
    if [ -n "$line" ]; then echo "${line#"$prefix"}"; return; fi
    sleep 0.1
  done
  cat "$file" >&2; die "timed out waiting for '$prefix'"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Sample a process's RSS every 50 ms into $2 until $3 exists.
sample_rss() {
  local pid="$1" out="$2" stop="$3" peak=0
  while [ ! -e "$stop" ]; do
    local now; now="$(rss_kib "$pid")"
    [ "$now" -gt "$peak" ] && peak="$now"
    sleep 0.05
  done
  echo "$peak" > "$out"
}

# wrk against $1 (URL) with the process $2 sampled for RSS (0 for none).
# Prints: req/s p50_ms p99_ms peak_rss_mib non_2xx
load() {
  local url="$1" pid="${2:-0}" connections="${3:-$CONNECTIONS}" out="$WORK/wrk.out" stop="$WORK/stop" rss="$WORK/rss"
  rm -f "$stop" "$rss"
  if [ "$pid" != 0 ]; then sample_rss "$pid" "$rss" "$stop" & fi
  wrk -t"$THREADS" -c"$connections" -d"${DURATION}s" --latency "$url" > "$out" 2>&1 || true
  touch "$stop"; wait_rss=0
  if [ "$pid" != 0 ]; then while [ ! -e "$rss" ]; do sleep 0.05; done; wait_rss="$(cat "$rss")"; fi
  python3 - "$out" "$wait_rss" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
p50 = re.search(r"\s50%\s+(\S+)", text)
p99 = re.search(r"\s99%\s+(\S+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors:.*", text)
if not rps:
    sys.stderr.write(text); print("0 0 0 0 0"); sys.exit()
print(f"{float(rps.group(1)):.0f} {ms(p50.group(1)):.2f} {ms(p99.group(1)):.2f} "
      f"{int(sys.argv[2]) / 1024:.1f} {int(non2xx.group(1)) if non2xx else 0}")
EOF
}

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }

say "building (release)"
ensure_wasm_target
ensure_clickhouse_installed
ensure_wrk
cargo build --release -q -p wasmhouse -p wasmhouse-bench-hello
BIN="$TARGET_DIR/release/wasmhouse"

say "starting clickhouse-server"
start_scratch_clickhouse "$WORK/ch"
PIDS+=("$CH_PID")
CH="http://127.0.0.1:$CH_PORT"

start_wasmhouse() {
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:0 "$@" > "$WORK/wh.out" 2> "$WORK/wh.err" &
  WH_PID=$!
  PIDS+=("$WH_PID")
  WH="http://$(wait_for_line "$WORK/wh.out" "wasmhouse listening on http://")"
}

say "cold start (compile cache warmed by a first start)"
start_wasmhouse; kill "$WH_PID"; wait "$WH_PID" 2>/dev/null || true
COLD=()
for _ in 1 2 3; do
  port="$(free_port)"
  t0="$(date +%s%N)"
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$port" > /dev/null 2>&1 &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.002; done
  t1="$(date +%s%N)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  COLD+=("$(( (t1 - t0) / 1000000 ))")
done
COLD_MS="$(printf '%s\n' "${COLD[@]}" | sort -n | sed -n 2p)"

start_wasmhouse
say "wasmhouse on $WH, ClickHouse on $CH"
HELLO_LOG="$WORK/hello.out"
"$TARGET_DIR/release/wasmhouse-bench-hello" 127.0.0.1:0 > "$HELLO_LOG" 2>&1 &
PIDS+=($!)
HELLO="http://$(wait_for_line "$HELLO_LOG" "listening on http://")"

# Warm both paths (connections, caches) before measuring.
DURATION_SAVED="$DURATION"; DURATION=2
load "$WH/concurrent/simple-query" 0 > /dev/null
load "$CH/?query=SELECT%201" 0 > /dev/null
DURATION="$DURATION_SAVED"

say "simple query (${DURATION}s each)"
read -r CH_SIMPLE CH_SIMPLE_P50 CH_SIMPLE_P99 _ _ < <(load "$CH/?query=SELECT%201%20AS%20value%20FORMAT%20JSONEachRow")
read -r WH_SIMPLE WH_SIMPLE_P50 WH_SIMPLE_P99 WH_SIMPLE_RSS WH_SIMPLE_BAD < <(load "$WH/concurrent/simple-query" "$WH_PID")

say "heavy query"
HEAVY_SQL="SELECT%20count()%20AS%20c%2C%20sum(number)%20AS%20s%20FROM%20(SELECT%20number%20FROM%20system.numbers%20LIMIT%2010000000)%20FORMAT%20JSONEachRow"
read -r CH_HEAVY CH_HEAVY_P50 CH_HEAVY_P99 _ _ < <(load "$CH/?query=$HEAVY_SQL" 0 8)
read -r WH_HEAVY WH_HEAVY_P50 WH_HEAVY_P99 WH_HEAVY_RSS WH_HEAVY_BAD < <(load "$WH/concurrent/heavy-query" "$WH_PID" 8)

say "/health"
read -r HELLO_RPS HELLO_P50 HELLO_P99 _ _ < <(load "$HELLO/health")
read -r WH_HEALTH WH_HEALTH_P50 WH_HEALTH_P99 WH_HEALTH_RSS WH_HEALTH_BAD < <(load "$WH/health" "$WH_PID")
WT_LINE="| \`wasmtime serve\` (default flags), same guest composed | not installed (\`cargo install wasmtime-cli --version 48.0.8\`, ~17 min) | | | |"
if command -v wasmtime >/dev/null 2>&1 && wasmtime --version | grep -q '^wasmtime 48\.'; then
  "$BIN" compose -o "$WORK/composed.wasm" > /dev/null
  WT_PORT="$(free_port)"
  wasmtime serve -S cli --env CLICKHOUSE_URL="$CH" --addr "127.0.0.1:$WT_PORT" "$WORK/composed.wasm" > "$WORK/wt.log" 2>&1 &
  WT_PID=$!; PIDS+=("$WT_PID")
  for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$WT_PORT/health" && break; sleep 0.1; done
  read -r WT_RPS WT_P50 WT_P99 WT_RSS _ < <(load "http://127.0.0.1:$WT_PORT/health" "$WT_PID")
  WT_LINE="| \`wasmtime serve\` (default flags), same guest composed | $WT_RPS | $WT_P50 | $WT_P99 | $WT_RSS |"
  WT_RATIO="; **$(ratio "$WH_HEALTH" "$WT_RPS")×** \`wasmtime serve\`"
fi

say "20 x test-isolation?delay=1 at once"
ISOLATION_WALL="$("$BIN" load "$WH/concurrent/test-isolation?delay=1" -n 20 --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.3f %d" % (r["wall_s"], r["distinct_instance_ids"]))')"

say "streaming $STREAM_ROWS rows as JSONEachRow"
stream() {
  local url="$1" pid="${2:-0}" stop="$WORK/stop" rss="$WORK/rss"
  rm -f "$stop" "$rss"
  if [ "$pid" != 0 ]; then sample_rss "$pid" "$rss" "$stop" & fi
  local result; result="$(curl -fsS -o /dev/null -w '%{time_total} %{size_download}' "$url")"
  touch "$stop"; local peak=0
  if [ "$pid" != 0 ]; then while [ ! -e "$rss" ]; do sleep 0.05; done; peak="$(cat "$rss")"; fi
  python3 -c "import sys; t,b=float(sys.argv[1]),int(sys.argv[2]); print(f'{t:.2f} {b/t/1e6:.0f} {b} {int(sys.argv[3])/1024:.1f}')" $result "$peak"
}
STREAM_SQL="SELECT%20number%20FROM%20system.numbers%20LIMIT%20$STREAM_ROWS%20FORMAT%20JSONEachRow"
read -r CH_STREAM_S CH_STREAM_MBS CH_STREAM_BYTES _ < <(stream "$CH/?query=$STREAM_SQL")
IDLE_RSS="$(awk "BEGIN {print $(rss_kib "$WH_PID") / 1024}")"
read -r WH_STREAM_S WH_STREAM_MBS WH_STREAM_BYTES WH_STREAM_RSS < <(stream "$WH/stream/numbers?n=$STREAM_ROWS" "$WH_PID")

say "instantiate + empty handler (criterion)"
cargo bench -q -p wasmhouse --bench instantiate -- --noplot > "$WORK/criterion.out" 2>&1 || { cat "$WORK/criterion.out" >&2; die "criterion failed"; }
read -r MICRO_MEDIAN MICRO_MEAN < <(python3 - <<'EOF'
import json, glob, os
path = glob.glob(os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")+"/*/new/estimates.json")[0]
e = json.load(open(path))
print(f"{e['median']['point_estimate']/1000:.1f} {e['mean']['point_estimate']/1000:.1f}")
EOF
)

COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
CPU="$(awk -F: '/model name/ {gsub(/^ /,"",$2); print $2; exit}' /proc/cpuinfo)"
TABLE="$WORK/table.md"
cat > "$TABLE" <<EOF
Run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$COMMIT\`, $(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr).
Load: \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s\` (heavy query: 8 connections) on loopback; ClickHouse $(curl -s "$CH/?query=SELECT%20version()"), wrk and wasmhouse share the cores. RSS is the host's peak during the case. Latencies in ms.

| case | req/s | p50 | p99 | host RSS MiB | reference (same run) | ratio |
|---|---|---|---|---|---|---|
| \`/concurrent/simple-query\` | $WH_SIMPLE | $WH_SIMPLE_P50 | $WH_SIMPLE_P99 | $WH_SIMPLE_RSS | ClickHouse HTTP \`SELECT 1\`: $CH_SIMPLE req/s (p50 $CH_SIMPLE_P50, p99 $CH_SIMPLE_P99) | **$(ratio "$WH_SIMPLE" "$CH_SIMPLE")×** |
| \`/concurrent/heavy-query\` | $WH_HEAVY | $WH_HEAVY_P50 | $WH_HEAVY_P99 | $WH_HEAVY_RSS | same query to ClickHouse: $CH_HEAVY req/s (p50 $CH_HEAVY_P50, p99 $CH_HEAVY_P99) | **$(ratio "$WH_HEAVY" "$CH_HEAVY")×** |
| \`/health\` (no database) | $WH_HEALTH | $WH_HEALTH_P50 | $WH_HEALTH_P99 | $WH_HEALTH_RSS | plain hyper "hello": $HELLO_RPS req/s (p50 $HELLO_P50, p99 $HELLO_P99) | **$(ratio "$WH_HEALTH" "$HELLO_RPS")×** hyper${WT_RATIO:-} |
| 20 × \`test-isolation?delay=1\` at once | wall $(echo "$ISOLATION_WALL" | cut -d' ' -f1) s | | | | ideal 1.0 s; distinct instances: $(echo "$ISOLATION_WALL" | cut -d' ' -f2) | **$(ratio "$(echo "$ISOLATION_WALL" | cut -d' ' -f1)" 1)×** ideal |
| stream $STREAM_ROWS rows, JSONEachRow | $WH_STREAM_MBS MB/s ($WH_STREAM_S s) | | | $WH_STREAM_RSS (idle $IDLE_RSS) | ClickHouse directly: $CH_STREAM_MBS MB/s ($CH_STREAM_S s), $CH_STREAM_BYTES bytes | **$(ratio "$WH_STREAM_MBS" "$CH_STREAM_MBS")×** |
| instantiate + empty handler + response | median $MICRO_MEDIAN µs (mean $MICRO_MEAN µs) | | | | criterion, in-process | |
| cold start: process start → first 200 | $COLD_MS ms (median of 3, compile cache warm) | | | | | |

Other servers in this run:

| server | req/s | p50 | p99 | RSS MiB |
|---|---|---|---|---|
$WT_LINE

Non-2xx answers during the wasmhouse cases: simple $WH_SIMPLE_BAD, heavy $WH_HEAVY_BAD, health $WH_HEALTH_BAD.
EOF

python3 - "$TABLE" <<'EOF'
import sys, re, pathlib
table = pathlib.Path(sys.argv[1]).read_text()
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text() if path.exists() else "# Benchmarks\n\n<!-- results:start -->\n<!-- results:end -->\n"
start, end = "<!-- results:start -->", "<!-- results:end -->"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
path.write_text(before + start + "\n" + table + end + after)
EOF
say "results written to BENCHMARKS.md"
cat "$TABLE"

# The curves (throughput and latency against concurrency, memory against
# components loaded), once everything above is stopped; BENCH_CURVES=0 skips.
if [ "${BENCH_CURVES:-1}" != 0 ]; then
  cleanup
  trap - EXIT
  exec "$ROOT/bench/curves.sh"
fi
