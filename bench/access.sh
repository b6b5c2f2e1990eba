#!/usr/bin/env bash
# What API keys and rate limits cost: /health on a route with neither, next
# to /health on a route that checks a key and two rate limits (set high
# enough that nothing is refused), measured alternately in one run.
#
#   bench/access.sh                       # 3 rounds of 10 s each way
#   BENCH_DURATION=5 BENCH_ROUNDS=5 bench/access.sh
#
# Builds in release mode; needs no ClickHouse (/health does not query).
# Load goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WORK="$(mktemp -d /tmp/wasmhouse-access.XXXXXX)"
trap 'kill "$WH_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
ensure_wasm_target
cargo build --release -q -p wasmhouse
KEY="bench-$(date +%s%N)"
cat > "$WORK/wasmhouse.toml" <<TOML
[[route]]
name = "open"
prefix = "/"
component = "builtin"

[[route]]
name = "guarded"
prefix = "/guarded"
component = "builtin"
api_key = true
rate_limit_per_key = "10000000/s"
rate_limit_per_client = "10000000/s"
TOML
CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT=9 RUST_LOG=warn WASMHOUSE_API_KEYS="bench=$KEY" \
  "$TARGET_DIR"/release/wasmhouse serve --listen 127.0.0.1:0 --manifest "$WORK/wasmhouse.toml" > "$WORK/out" 2>&1 &
WH_PID=$!
for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/out" && break; sleep 0.1; done
WH="$(sed -n 's/^wasmhouse listening on //p' "$WORK/out")"
[ -n "$WH" ] || { cat "$WORK/out"; die "wasmhouse did not start"; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$WH/guarded/health")" = 401 ] || die "the guarded route let a request without a key in"

rps() { wrk_rps "$DURATION" "$CONNECTIONS" "$@"; }  # URL [header]

say "warming up"
DURATION_SAVED="$DURATION"; DURATION=2
rps "$WH/health" >/dev/null; rps "$WH/guarded/health" "X-API-Key: $KEY" >/dev/null
DURATION="$DURATION_SAVED"
OPEN=(); GUARDED=()
for round in $(seq 1 "$ROUNDS"); do
  read -r open open_bad < <(rps "$WH/health")
  read -r guarded guarded_bad < <(rps "$WH/guarded/health" "X-API-Key: $KEY")
  [ "$open_bad$guarded_bad" = 00 ] || die "refused or failed answers: open $open_bad, guarded $guarded_bad"
  say "round $round: open $open req/s, key + 2 rate limits $guarded req/s"
  OPEN+=("$open"); GUARDED+=("$guarded")
done
python3 - "${OPEN[*]}" "${GUARDED[*]}" <<'PY'
import statistics, sys
open_, guarded = ([float(x) for x in a.split()] for a in sys.argv[1:3])
a, b = statistics.median(open_), statistics.median(guarded)
print(f"/health, c=32, median of {len(open_)} rounds: open {a:.0f} req/s; "
      f"API key + per-key + per-client rate limits {b:.0f} req/s; ratio {b / a:.3f}")
PY
