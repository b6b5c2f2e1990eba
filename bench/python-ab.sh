#!/usr/bin/env bash
# Two (or more) wasmhouse binaries on the Python seed routes, one after the
# other against one scratch ClickHouse: for "what did this change do to a
# Python route". Per binary and path: req/s, p50, the host's CPU per request
# (utime + stime over the run / requests), page faults per request (minflt),
# peak RSS (VmHWM) and PSS at the end, mean instantiation time, non-2xx.
#
#   bench/python-ab.sh before=/tmp/wh-before after=target/release/wasmhouse
#   BENCH_DURATION=10 BENCH_CONNECTIONS=8 BENCH_PATHS="/concurrent/heavy-query" bench/python-ab.sh A=… B=…
#   BENCH_RUST=1 …   # also the built-in Rust route's /health, for "Rust kept its speed"
#
# The Python component is built from guest-python/ with componentize-py, or
# BENCH_COMPONENT names one. Each binary waits until it serves optimised
# code (one compile cache for all, so only the first compiles). Loopback
# only, bounded in time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
[ "$#" -ge 1 ] || die "usage: bench/python-ab.sh LABEL=BINARY [LABEL=BINARY ...]"
DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
PATHS="${BENCH_PATHS:-/health /concurrent/simple-query}"
WORK="$(mktemp -d /tmp/wasmhouse-python-ab.XXXXXX)"; PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"' EXIT
ensure_wrk
ensure_clickhouse_installed
COMPONENT="${BENCH_COMPONENT:-}"
if [ -z "$COMPONENT" ]; then
  ensure_componentize_py
  COMPONENT="$WORK/seed-py.wasm"
  "$TARGET_DIR"/python-tools/bin/componentize-py --wit-path wit --world route componentize app \
    --python-path guest-python --python-path sdk-python --output "$COMPONENT" > /dev/null
fi
start_scratch_clickhouse "$WORK/ch"; PIDS+=("$CH_PID")
HZ="$(getconf CLK_TCK)"
stat_field() { awk -v f="$2" '{print $f}' "/proc/$1/stat"; }
cpu_ticks() { echo $(( $(stat_field "$1" 14) + $(stat_field "$1" 15) )); }
run() { # label binary component path
  local label="$1" bin="$2" component="$3" path="$4" admin args=()
  admin="$(free_port)"
  [ "$component" = builtin ] || args=(--component "$component")
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=info WASMHOUSE_ADMIN_TOKEN=bench-token-0123456789 \
    WASMHOUSE_COMPILE_CACHE="$WORK/cache" "$bin" serve --listen 127.0.0.1:0 --admin-listen "127.0.0.1:$admin" "${args[@]}" \
    > "$WORK/out" 2> "$WORK/err" &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 1 1200); do grep -q "^wasmhouse listening on http://" "$WORK/out" && break; sleep 0.1; done
  local url; url="$(grep '^wasmhouse listening on http://' "$WORK/out" | grep -o 'http://[0-9.:]*' | head -1)"
  [ -n "$url" ] || die "$label did not start: $(tail -3 "$WORK/err")"
  for _ in $(seq 1 1800); do
    curl -fsS -H 'Authorization: Bearer bench-token-0123456789' "http://127.0.0.1:$admin/admin/components" 2>/dev/null \
      | grep -q '"code":"optimized"' && break
    sleep 0.1
  done
  wrk -t2 -c"$CONNECTIONS" -d2s "$url$path" > /dev/null 2>&1
  local t0 f0 t1 f1; t0="$(cpu_ticks "$pid")"; f0="$(stat_field "$pid" 10)"
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url$path" > "$WORK/wrk" 2>&1
  t1="$(cpu_ticks "$pid")"; f1="$(stat_field "$pid" 10)"
  local hwm pss rps total p50 non2xx inst
  hwm="$(awk '/^VmHWM:/ {print int($2/1024)}' "/proc/$pid/status")"
  pss="$(awk '/^Pss:/ {print int($2/1024); exit}' "/proc/$pid/smaps_rollup")"
  rps="$(awk '/Requests\/sec/ {print int($2)}' "$WORK/wrk")"
  total="$(awk '/requests in/ {print $1}' "$WORK/wrk")"
  p50="$(awk '$1=="50%" {print $2}' "$WORK/wrk")"
  non2xx="$(grep -o 'Non-2xx[^0-9]*[0-9]*' "$WORK/wrk" | grep -o '[0-9]*$' || true)"
  inst="$(curl -fsS "http://127.0.0.1:$admin/metrics" \
    | awk -F'[{}" ]+' '/^wasmhouse_instantiation_duration_seconds_sum/ {s=$NF} /^wasmhouse_instantiation_duration_seconds_count/ {c=$NF} END {if (c) printf "%.0f", s/c*1e6}')"
  echo "| $label | $([ "$component" = builtin ] && echo Rust || echo Python) \`$path\` | $rps | $p50 | $(awk "BEGIN {printf \"%.0f\", ($t1-$t0)/$HZ*1e6/$total}") | $(( (f1 - f0) / total )) | $hwm | $pss | ${inst:-–} | ${non2xx:-0} |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr); wrk -t2 -c$CONNECTIONS -d${DURATION}s."
echo
echo "| binary | route | req/s | p50 | host CPU µs/req | faults/req | peak RSS MiB | PSS MiB | instantiation mean µs | non-2xx |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for pair in "$@"; do
  label="${pair%%=*}"; bin="$(realpath "${pair#*=}")"
  for path in $PATHS; do run "$label" "$bin" "$COMPONENT" "$path"; done
  [ -n "${BENCH_RUST:-}" ] && run "$label" "$bin" builtin /health
done
