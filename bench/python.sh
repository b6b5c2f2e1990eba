#!/usr/bin/env bash
# Python routes side by side, in one run: the seed routes in Python
# (guest-python/) on wasmhouse, the same routes in Rust (the built-in guest)
# on wasmhouse, and the FastAPI service they replace (../shared/fastapi-seed,
# uvicorn workers), all against one scratch ClickHouse. Then the first deploy
# of a never-compiled Python component while another route is under load.
#
#   bench/python.sh                                   # 10 s per case, c=32, 2 uvicorn workers
#   BENCH_DURATION=5 BENCH_SEED_WORKERS=4 bench/python.sh
#   BENCH_BIN=target/x86_64-unknown-linux-musl/release/wasmhouse bench/python.sh   # a binary built already
#
# Per case: req/s, p50/p99, CPU per request of the server's processes
# (utime + stime from /proc, all uvicorn processes summed), their peak RSS
# (summed likewise), and for wasmhouse the instantiation p50 read from its
# own histogram (wasmhouse_instantiation_duration_seconds) over the run.
# Builds in release mode; everything listens on 127.0.0.1 and is stopped at
# the end.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
SEED_WORKERS="${BENCH_SEED_WORKERS:-2}"
SEED_DIR="${FASTAPI_SEED_DIR:-$ROOT/../shared/fastapi-seed}"
WORK="$(mktemp -d /tmp/wasmhouse-python.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ensure_wrk
ensure_wasm_target
ensure_clickhouse_installed
ensure_componentize_py
[ -d "$SEED_DIR" ] || die "the FastAPI seed is not at $SEED_DIR (set FASTAPI_SEED_DIR)"
say "building (release) and the Python guest"
if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$(realpath "$BENCH_BIN")"
else
  cargo build --release -q -p wasmhouse
  BIN="$TARGET_DIR/release/wasmhouse"
fi
build_python() { # $1: output; $2: a nonce, so the bytes (and hash) are new
  local src="$WORK/src-$2"
  mkdir -p "$src" && cp guest-python/app.py "$src/app.py"
  echo "BUILD_NONCE = '$2'" >> "$src/app.py"
  "$TARGET_DIR"/python-tools/bin/componentize-py --wit-path wit --world route componentize app \
    --python-path "$src" --python-path sdk-python --output "$1" > /dev/null
}
t0="$(date +%s%N)"; build_python "$WORK/seed-py.wasm" first; t1="$(date +%s%N)"
BUILD_S="$(awk "BEGIN {printf \"%.1f\", ($t1 - $t0) / 1e9}")"
PY_SIZE_MB="$(awk "BEGIN {printf \"%.1f\", $(stat -c %s "$WORK/seed-py.wasm") / 1e6}")"

SEED_VENV="$TARGET_DIR/fastapi-seed-venv"
if ! "$SEED_VENV/bin/uvicorn" --version > /dev/null 2>&1; then
  say "installing the FastAPI seed's requirements into $SEED_VENV"
  python3 -m venv "$SEED_VENV"
  "$SEED_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$SEED_DIR/requirements.txt"
fi

say "starting clickhouse-server"
start_scratch_clickhouse "$WORK/ch"
PIDS+=("$CH_PID")

# wasmhouse serving $1 (a component, or "builtin"); sets WH, WH_PID, WH_ADMIN.
start_wasmhouse() {
  local component=() admin_port; admin_port="$(free_port)"
  [ "$1" = builtin ] || component=(--component "$1")
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=warn WASMHOUSE_ADMIN_TOKEN=bench-token-0123456789 \
    WASMHOUSE_COMPILE_CACHE="$WORK/cache" \
    "$BIN" serve --listen 127.0.0.1:0 --admin-listen "127.0.0.1:$admin_port" "${component[@]}" "${@:2}" \
    > "$WORK/wh.out" 2> "$WORK/wh.err" &
  WH_PID=$!; PIDS+=("$WH_PID")
  for _ in $(seq 1 1200); do grep -q "^wasmhouse listening on http://" "$WORK/wh.out" && break; sleep 0.1; done
  WH="$(grep '^wasmhouse listening on http://' "$WORK/wh.out" | grep -o 'http://[0-9.:]*' | head -1)"
  [ -n "$WH" ] || die "wasmhouse did not start: $(cat "$WORK/wh.err")"
  WH_ADMIN="http://127.0.0.1:$admin_port"
}

# The process and its descendants.
tree() { echo "$1"; for child in $(cat "/proc/$1/task/"*/children 2>/dev/null); do tree "$child"; done; }
ticks() { local sum=0 pid; for pid in $(tree "$1"); do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$sum"; }
# RSS counts a page once per mapping of it (the pool maps one memory image
# into every instance's slot); PSS shares each page among its mappings, so a
# page counts once in all: both are sampled, as "rss pss" in KiB.
mem_kib() {
  local rss=0 pss=0 pid
  for pid in $(tree "$1"); do
    rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
    pss=$((pss + $(awk '/^Pss:/ {print $2; exit}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
  done
  echo "$rss $pss"
}
sample_rss() { # pid out stop
  local peak=0 peak_pss=0 rss pss
  while [ ! -e "$3" ]; do
    read -r rss pss < <(mem_kib "$1")
    [ "$rss" -gt "$peak" ] && peak="$rss"; [ "$pss" -gt "$peak_pss" ] && peak_pss="$pss"
    sleep 0.1
  done
  echo "$peak $peak_pss" > "$2"
}
HZ="$(getconf CLK_TCK)"

# "req/s p50_ms p99_ms cpu_us_per_req peak_rss_mib peak_pss_mib failed" for wrk on $1 with process tree $2.
measure() {
  local url="$1" pid="$2" stop="$WORK/stop" rss="$WORK/rss" c0 c1
  rm -f "$stop" "$rss"
  sample_rss "$pid" "$rss" "$stop" &
  c0="$(ticks "$pid")"
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" > "$WORK/wrk" 2>&1 || true
  c1="$(ticks "$pid")"
  touch "$stop"; while [ ! -e "$rss" ]; do sleep 0.05; done
  PYTHONPATH="$ROOT/bench" python3 - "$WORK/wrk" "$((c1 - c0))" "$HZ" $(cat "$rss") <<'PY'
import re, sys
from benchlib import wrk_summary
text = open(sys.argv[1]).read()
ticks, hz, rss, pss = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rps, total, failed = wrk_summary(text)
def ms(label):
    m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", text)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
print(f"{rps:.0f} {ms(50):.2f} {ms(99):.2f} {ticks / hz * 1e6 / total:.0f} {rss / 1024:.0f} {pss / 1024:.0f} {failed}")
PY
}

# Instantiation histogram from the admin /metrics: "le count" lines.
histogram() {
  curl -fsS "$WH_ADMIN/metrics" | awk -F'[{}" ]+' '/^wasmhouse_instantiation_duration_seconds_bucket/ {for (i=1;i<=NF;i++) if ($i=="le=") print $(i+1), $NF}'
}
# p50 in µs of the instantiations between two histogram snapshots.
p50_between() {
  python3 - "$1" "$2" <<'PY'
import sys
def load(path):
    rows = [line.split() for line in open(path) if line.strip()]
    return [(float("inf") if le == "+Inf" else float(le), float(n)) for le, n in rows]
before, after = load(sys.argv[1]), load(sys.argv[2])
delta = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
total = delta[-1][1]
if total == 0:
    print("n/a"); sys.exit()
prev_le, prev_n = 0.0, 0.0
for le, n in delta:
    if n >= total / 2:
        share = (total / 2 - prev_n) / (n - prev_n) if n > prev_n else 0
        print(f"{(prev_le + (le - prev_le) * share) * 1e6:.0f}"); break
    prev_le, prev_n = le, n
PY
}

run_wasmhouse() { # label component path -> appends a table row
  local label="$1" component="$2" path="$3"
  start_wasmhouse "$component"
  DURATION=2 measure "$WH$path" "$WH_PID" > /dev/null
  histogram > "$WORK/h0"
  read -r rps p50 p99 cpu rss pss failed < <(measure "$WH$path" "$WH_PID")
  histogram > "$WORK/h1"
  local inst; inst="$(p50_between "$WORK/h0" "$WORK/h1")"
  say "$label $path: $rps req/s, $cpu µs CPU/req, RSS $rss MiB (PSS $pss), instantiation p50 $inst µs"
  [ "$failed" = 0 ] || say "warning: $failed requests failed"
  echo "$label|$path|$rps|$p50|$p99|$cpu|$rss|$pss|$inst|$failed" >> "$WORK/rows"
  kill "$WH_PID"; wait "$WH_PID" 2>/dev/null || true
}

for path in /concurrent/simple-query /health; do
  run_wasmhouse "wasmhouse, Python guest" "$WORK/seed-py.wasm" "$path"
  run_wasmhouse "wasmhouse, Rust guest" builtin "$path"
done

say "FastAPI seed, $SEED_WORKERS uvicorn workers"
SEED_PORT="$(free_port)"
(cd "$SEED_DIR" && CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" exec "$SEED_VENV/bin/uvicorn" app.main:app \
  --host 127.0.0.1 --port "$SEED_PORT" --workers "$SEED_WORKERS" --log-level warning --no-access-log) > "$WORK/seed.log" 2>&1 &
SEED_PID=$!; PIDS+=("$SEED_PID")
for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$SEED_PORT/health" && break; sleep 0.1; done
for path in /concurrent/simple-query /health; do
  DURATION=2 measure "http://127.0.0.1:$SEED_PORT$path" "$SEED_PID" > /dev/null
  read -r rps p50 p99 cpu rss pss failed < <(measure "http://127.0.0.1:$SEED_PORT$path" "$SEED_PID")
  say "FastAPI $path: $rps req/s, $cpu µs CPU/req, RSS $rss MiB (PSS $pss)"
  echo "FastAPI seed, $SEED_WORKERS uvicorn workers|$path|$rps|$p50|$p99|$cpu|$rss|$pss|–|$failed" >> "$WORK/rows"
done
kill "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true

say "first deploy of a never-compiled Python component while the Rust route is under load"
build_python "$WORK/seed-py-new.wasm" "deploy-$(date +%s)"
MANIFEST="$WORK/wasmhouse.toml"
printf '[[route]]\nname = "rust"\nprefix = "/"\ncomponent = "builtin"\n\n[[route]]\nname = "py"\nprefix = "/py"\ncomponent = "%s"\n' "$WORK/seed-py.wasm" > "$MANIFEST"
start_wasmhouse builtin --manifest "$MANIFEST"
wrk -t2 -c"$CONNECTIONS" -d"$((DURATION + 30))s" --latency "$WH/health" > "$WORK/deploy-wrk" 2>&1 &
WRK_PID=$!
sleep 2
t0="$(date +%s%N)"
curl -fsS -X PUT -H "Authorization: Bearer bench-token-0123456789" --data-binary @"$WORK/seed-py-new.wasm" \
  "$WH_ADMIN/admin/components/py" > "$WORK/deploy.json"
t1="$(date +%s%N)"
until curl -fsS "$WH/py/concurrent/simple-query" > /dev/null 2>&1; do sleep 0.01; done
t2="$(date +%s%N)"
DEPLOY_S="$(awk "BEGIN {printf \"%.1f\", ($t1 - $t0) / 1e9}")"
SERVES_S="$(awk "BEGIN {printf \"%.1f\", ($t2 - $t0) / 1e9}")"
wait "$WRK_PID" || true
read -r DEPLOY_RPS DEPLOY_TOTAL DEPLOY_FAILED < <(PYTHONPATH="$ROOT/bench" python3 -c 'import sys; from benchlib import wrk_summary; r = wrk_summary(open(sys.argv[1]).read()); print(f"{r[0]:.0f} {r[1]} {r[2]}")' "$WORK/deploy-wrk")
DEPLOY_MAX="$(grep -oP 'Latency\s+\S+\s+\S+\s+\K\S+' "$WORK/deploy-wrk")"
DEPLOY_P99="$(grep -oP '^\s+99%\s+\K\S+' "$WORK/deploy-wrk")"

CPU="$(awk -F: '/model name/ {gsub(/^ /,"",$2); print $2; exit}' /proc/cpuinfo)"
echo
echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'), $(nproc) cores ($CPU), $(uname -sr)."
echo "Load: wrk -t2 -c$CONNECTIONS -d${DURATION}s on loopback, ClickHouse $(curl -s "http://127.0.0.1:$CH_PORT/?query=SELECT%20version()"); the Python component: $PY_SIZE_MB MB, built in $BUILD_S s."
echo
echo "| server | path | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | peak PSS MiB | instantiation p50 µs | failed |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk -F'|' '{printf "| %s | `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$WORK/rows"
echo
echo "First deploy of a never-compiled Python component (PUT answered after $DEPLOY_S s, serving $SERVES_S s after the PUT began) while \`/health\` of the Rust route was under \`wrk -c$CONNECTIONS\`: $DEPLOY_RPS req/s over the run, $DEPLOY_TOTAL requests, $DEPLOY_FAILED failed, p99 $DEPLOY_P99, max $DEPLOY_MAX."
