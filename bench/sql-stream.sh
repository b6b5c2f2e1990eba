#!/usr/bin/env bash
# A SQL route streaming a large answer: the host's memory while a `.sql`
# route sends N rows (NDJSON, then the default JSON array), next to the same
# query sent to ClickHouse directly. Reports bytes, seconds, MB/s and the
# host's peak RSS (VmHWM) against its RSS before the stream.
#
#   bench/sql-stream.sh                 # 10 million rows
#   BENCH_ROWS=50000000 bench/sql-stream.sh
#
# Builds in release mode; starts its own clickhouse-server on free loopback
# ports; load goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

ROWS="${BENCH_ROWS:-10000000}"
WORK="$(mktemp -d /tmp/wasmhouse-sql-stream.XXXXXX)"
trap 'kill "${WH_PID:-}" "${CH_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release -q --locked -p wasmhouse
start_scratch_clickhouse "$WORK/ch"
mkdir -p "$WORK/queries"
cat > "$WORK/queries/numbers.sql" <<'SQL'
-- Numbers, as many as asked.
-- @param n max=100000000
SELECT number, toString(number) AS text FROM system.numbers LIMIT {n:UInt64}
SQL
printf '[[route]]\nname = "api"\nprefix = "/"\nsql = "queries"\nmax_result_rows = 0\n' > "$WORK/wasmhouse.toml"
CLICKHOUSE_URL="http://127.0.0.1:$CH_PORT" RUST_LOG=warn \
  "$TARGET_DIR"/release/wasmhouse serve --listen 127.0.0.1:0 --manifest "$WORK/wasmhouse.toml" > "$WORK/out" 2>&1 &
WH_PID=$!
for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/out" && break; sleep 0.1; done
WH="$(sed -n 's/^wasmhouse listening on //p' "$WORK/out")"
[ -n "$WH" ] || { cat "$WORK/out"; die "wasmhouse did not start"; }
curl -sf "$WH/numbers?n=1" > /dev/null || die "the SQL route does not answer"

rss_kib() { awk -v f="$1" '$1 == f":" { print $2 }' "/proc/$WH_PID/status"; }
# Peak RSS from here on: writing 5 to clear_refs resets VmHWM.
reset_peak() { echo 5 > "/proc/$WH_PID/clear_refs" 2>/dev/null || true; }

measure() { # NAME URL [CURL ARGS]
  local name="$1" url="$2"; shift 2
  reset_peak
  local before; before="$(rss_kib VmRSS)"
  local out; out="$(curl -sf -o /dev/null -w '%{size_download} %{time_total}' "$@" "$url")" \
    || die "$name failed"
  local peak; peak="$(rss_kib VmHWM)"
  read -r bytes seconds <<<"$out"
  awk -v n="$name" -v b="$bytes" -v s="$seconds" -v r0="$before" -v r1="$peak" 'BEGIN {
    printf "| %s | %d | %.2f | %.0f | %.1f | %.1f |\n", n, b, s, b / s / 1e6, r0 / 1024, r1 / 1024 }'
}

say "streaming $ROWS rows"
echo "| case | bytes | seconds | MB/s | host RSS before MiB | host peak RSS MiB |"
echo "|---|---|---|---|---|---|"
measure "SQL route, format=ndjson" "$WH/numbers?n=$ROWS&format=ndjson"
measure "SQL route, JSON array" "$WH/numbers?n=$ROWS"
query="SELECT number, toString(number) AS text FROM system.numbers LIMIT $ROWS FORMAT JSONEachRow"
start=$(date +%s.%N)
bytes=$(curl -sf "http://127.0.0.1:$CH_PORT/" --data-binary "$query" | wc -c)
end=$(date +%s.%N)
awk -v b="$bytes" -v s0="$start" -v s1="$end" 'BEGIN {
  printf "| ClickHouse directly, JSONEachRow | %d | %.2f | %.0f | – | – |\n", b, s1 - s0, b / (s1 - s0) / 1e6 }'
