#!/usr/bin/env bash
# What the result cache buys: /concurrent/simple-query on a route whose reads
# go to ClickHouse every time, next to the same route with `cache_ttl`, and
# ClickHouse's own HTTP interface answering the same query as a reference;
# measured alternately, in one run.
#
#   bench/cache.sh                          # 3 rounds of 10 s each
#   BENCH_DURATION=5 BENCH_ROUNDS=5 bench/cache.sh
#
# Builds in release mode; starts its own clickhouse-server and wasmhouse on
# free loopback ports. Load goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WORK="$(mktemp -d /tmp/wasmhouse-cache.XXXXXX)"
trap 'kill "${WH_PID:-}" "${CH_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
ensure_wasm_target
cargo build --release -q -p wasmhouse
start_scratch_clickhouse "$WORK/ch"
cat > "$WORK/wasmhouse.toml" <<TOML
[[route]]
name = "uncached"
prefix = "/"
component = "builtin"

[[route]]
name = "cached"
prefix = "/cached"
component = "builtin"
cache_ttl = "10s"
cache_stale = "60s"
TOML
CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=warn \
  "$TARGET_DIR"/release/wasmhouse serve --listen 127.0.0.1:0 --manifest "$WORK/wasmhouse.toml" > "$WORK/out" 2>&1 &
WH_PID=$!
for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/out" && break; sleep 0.1; done
WH="$(sed -n 's/^wasmhouse listening on //p' "$WORK/out")"
[ -n "$WH" ] || { cat "$WORK/out"; die "wasmhouse did not start"; }
[ "$(curl -s -D - -o /dev/null "$WH/cached/concurrent/simple-query" | tr -d '\r' | sed -n 's/^x-cache: //Ip')" = miss ] \
  || die "the cached route does not answer through the cache"
DIRECT="http://127.0.0.1:$CH_PORT/?query=SELECT%201%20AS%20value%20FORMAT%20JSONEachRow"

rps() { wrk_rps "$DURATION" "$CONNECTIONS" "$1"; }

say "warming up"
SAVED="$DURATION"; DURATION=2
rps "$WH/concurrent/simple-query" >/dev/null; rps "$WH/cached/concurrent/simple-query" >/dev/null
DURATION="$SAVED"
UNCACHED=(); CACHED=(); DIRECT_RPS=()
for round in $(seq 1 "$ROUNDS"); do
  read -r uncached uncached_bad < <(rps "$WH/concurrent/simple-query")
  read -r cached cached_bad < <(rps "$WH/cached/concurrent/simple-query")
  read -r direct direct_bad < <(rps "$DIRECT")
  [ "$uncached_bad$cached_bad$direct_bad" = 000 ] || die "failed answers: uncached $uncached_bad, cached $cached_bad, direct $direct_bad"
  say "round $round: uncached $uncached req/s, cached $cached req/s, ClickHouse direct $direct req/s"
  UNCACHED+=("$uncached"); CACHED+=("$cached"); DIRECT_RPS+=("$direct")
done
QUERIES="$(curl -fsS "$WH/metrics" | sed -n 's/^wasmhouse_clickhouse_cache_lookups_total{outcome="miss"} //p')"
python3 - "${UNCACHED[*]}" "${CACHED[*]}" "${DIRECT_RPS[*]}" "${QUERIES:-?}" "$CONNECTIONS" <<'PY'
import statistics, sys
uncached, cached, direct = ([float(x) for x in a.split()] for a in sys.argv[1:4])
u, c, d = (statistics.median(x) for x in (uncached, cached, direct))
print(f"/concurrent/simple-query, c={sys.argv[5]}, median of {len(cached)} rounds: "
      f"uncached {u:.0f} req/s, cached {c:.0f} req/s ({c / u:.2f}x), "
      f"ClickHouse direct {d:.0f} req/s; cached/direct {c / d:.2f}; "
      f"reads that missed the cache over the whole run: {sys.argv[4]} (refreshes of stale entries run in the background)")
PY
