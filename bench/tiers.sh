#!/usr/bin/env bash
# What tiered compilation buys: for the built-in Rust routes and the Python
# seed, how long each compiler takes on a component never compiled before
# (Winch, the baseline compiler, then Cranelift in the background; read from
# the host's log on an idle host), and what each tier's code costs per
# request (`--compilation baseline` against `--compilation optimized`:
# req/s and host CPU µs per request of `/health` and simple-query).
#
#   bench/tiers.sh                                 # 5 s per run, c=32
#   BENCH_DURATION=10 BENCH_CONNECTIONS=8 bench/tiers.sh
#   BENCH_BIN=target/release/wasmhouse bench/tiers.sh   # a binary built already
#
# The Python component is target/python/seed-py.wasm (the test suite builds
# it; `BENCH_PYTHON=path.wasm` for another, `BENCH_PYTHON=` to skip it).
# Starts its own clickhouse-server and hosts on free loopback ports; load
# goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
export PYTHONPATH="$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}"

DURATION="${BENCH_DURATION:-5}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
PYTHON_COMPONENT="${BENCH_PYTHON-$TARGET_DIR/python/seed-py.wasm}"
WORK="$(mktemp -d /tmp/wasmhouse-tiers.XXXXXX)"
trap 'kill "${WH_PID:-}" "${CH_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
ensure_wasm_target
if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$(realpath "$BENCH_BIN")"
else
  cargo build --release -q -p wasmhouse
  BIN="$TARGET_DIR/release/wasmhouse"
fi
start_scratch_clickhouse "$WORK/ch"

# Start a host serving component $1 (a path or `builtin`) with
# `--compilation $2` and an empty compile cache; sets WH and WH_PID.
start_host() {
  local cache="$WORK/cache-$RANDOM"
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" WASMHOUSE_COMPILE_CACHE="$cache" \
    RUST_LOG=warn,wasmhouse::runtime=info "$BIN" serve --listen 127.0.0.1:0 \
    --component "$1" --compilation "$2" > "$WORK/host.log" 2>&1 &
  WH_PID=$!
  for _ in $(seq 1 1200); do grep -q "^wasmhouse listening on" "$WORK/host.log" && break; sleep 0.05; done
  WH="$(sed -n 's/^wasmhouse listening on //p' "$WORK/host.log")"
  [ -n "$WH" ] || die "wasmhouse did not start: $(cat "$WORK/host.log")"
}
stop_host() { kill "$WH_PID"; wait "$WH_PID" 2>/dev/null || true; }
# The `seconds` field of the first log line saying $1.
seconds_of() { grep "$1" "$WORK/host.log" | head -1 | grep -oP 'seconds=\K[0-9.]+'; }

components=("Rust (built-in)|builtin")
if [ -n "$PYTHON_COMPONENT" ] && [ -f "$PYTHON_COMPONENT" ]; then
  components+=("Python seed|$PYTHON_COMPONENT")
fi

echo "| component | size | Winch compile s | Cranelift compile s (background, nice 10) |" > "$WORK/compile"
echo "|---|---|---|---|" >> "$WORK/compile"
echo "| component | code | path | req/s | host CPU µs/req | p50 ms |" > "$WORK/serve"
echo "|---|---|---|---|---|---|" >> "$WORK/serve"
for entry in "${components[@]}"; do
  label="${entry%%|*}"; component="${entry#*|}"
  # An idle host, tiered: both compile times.
  start_host "$component" tiered
  for _ in $(seq 1 1200); do grep -q "optimised code compiled" "$WORK/host.log" && break; sleep 0.1; done
  baseline_s="$(seconds_of 'baseline code compiled')"
  optimised_s="$(seconds_of 'optimised code compiled')"
  stop_host
  if [ "$component" = builtin ]; then size="built in"; else
    size="$(awk "BEGIN {printf \"%.1f MB\", $(stat -c %s "$component") / 1e6}")"; fi
  say "$label: Winch ${baseline_s:-?} s, Cranelift ${optimised_s:-?} s"
  echo "| $label | $size | ${baseline_s:-–} | ${optimised_s:-–} |" >> "$WORK/compile"
  for code in baseline optimized; do
    start_host "$component" "$code"
    for path in /health /concurrent/simple-query; do
      wrk_cpu 2 "$CONNECTIONS" "$WH$path" "" "$WH_PID" > /dev/null
      read -r rps bad cpu p50 < <(wrk_cpu "$DURATION" "$CONNECTIONS" "$WH$path" "" "$WH_PID")
      say "$label, $code code, $path: $rps req/s, $cpu µs CPU/req"
      [ "$bad" = 0 ] || say "warning: $bad answers were not 2xx"
      echo "| $label | $code | \`$path\` | $rps | $cpu | $p50 |" >> "$WORK/serve"
    done
    stop_host
  done
done

CPU="$(awk -F: '/model name/ {gsub(/^ /,"",$2); print $2; exit}' /proc/cpuinfo)"
echo
echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'), $(nproc) cores ($CPU), $(uname -sr)."
echo "Compile times on an idle host, never compiled before (host log); then wrk -t2 -c$CONNECTIONS -d${DURATION}s per row."
echo
cat "$WORK/compile"
echo
cat "$WORK/serve"
