#!/usr/bin/env bash
# Two wasmhouse binaries side by side, for "did this change cost anything":
# the same ClickHouse, the built-in routes, each binary serving in turn (never
# both under load at once), rounds alternating A, B, A, B… Reports req/s and
# the host's CPU per request (user + system time of the wasmhouse process over
# the run, divided by the requests it answered: the figure a busy machine
# cannot fake the way it fakes req/s).
#
#   bench/ab.sh /tmp/wh-before target/release/wasmhouse
#   BENCH_DURATION=6 BENCH_ROUNDS=5 bench/ab.sh A B
#   BENCH_ARGS_B=--access-log bench/ab.sh target/release/wasmhouse target/release/wasmhouse
#
# BENCH_ARGS_A and BENCH_ARGS_B are extra `serve` flags for each side (the
# cost of a flag: the same binary twice). The wasmhouse processes log at
# RUST_LOG=info to a file, as a server would.
#
# Build each binary in release mode first (a git worktree for the old commit).
# Starts its own clickhouse-server on free loopback ports; load goes only to
# 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

A="${1:?usage: bench/ab.sh BINARY_A BINARY_B}"
B="${2:?usage: bench/ab.sh BINARY_A BINARY_B}"
DURATION="${BENCH_DURATION:-6}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WORK="$(mktemp -d /tmp/wasmhouse-ab.XXXXXX)"
PIDS=()
trap 'kill "${PIDS[@]}" "$CH_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
start_scratch_clickhouse "$WORK/ch"

# start NAME BINARY [FLAGS]: serve the built-in routes; sets URL_<NAME> and PID_<NAME>.
start() {
  # shellcheck disable=SC2086 # the flags are words
  CLICKHOUSE_URL="http://127.0.0.1:$CH_PORT" RUST_LOG=info \
    "$2" serve --listen 127.0.0.1:0 ${3:-} > "$WORK/$1.out" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/$1.out" && break; sleep 0.1; done
  local url; url="$(sed -n 's/^wasmhouse listening on //p' "$WORK/$1.out")"
  [ -n "$url" ] || { cat "$WORK/$1.out"; die "$2 did not start"; }
  printf -v "URL_$1" '%s' "$url"
  printf -v "PID_$1" '%s' "$pid"
}
start A "$A" "${BENCH_ARGS_A:-}"
start B "$B" "${BENCH_ARGS_B:-}"

CASES=(/health /concurrent/simple-query)
say "warming up"
for side in A B; do
  url="URL_$side"; pid="PID_$side"
  for path in "${CASES[@]}"; do wrk_cpu 2 "$CONNECTIONS" "${!url}$path" "" "${!pid}" > /dev/null; done
done

RESULTS="$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  for path in "${CASES[@]}"; do
    for side in A B; do
      url="URL_$side"; pid="PID_$side"
      read -r rps bad cpu _ < <(wrk_cpu "$DURATION" "$CONNECTIONS" "${!url}$path" "" "${!pid}")
      [ "$bad" = 0 ] || die "$side $path: $bad non-2xx answers"
      say "round $round $path $side: $rps req/s, $cpu µs CPU/request"
      echo "$path $side $rps $cpu" >> "$RESULTS"
    done
  done
done

python3 - "$RESULTS" "$A" "$B" "$CONNECTIONS" "$DURATION" "${BENCH_ARGS_A:-}" "${BENCH_ARGS_B:-}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print(f"\nA = {sys.argv[2]} {sys.argv[6]}, B = {sys.argv[3]} {sys.argv[7]}; wrk -t2 -c{sys.argv[4]} -d{sys.argv[5]}s, rounds alternating\n")
print("| case | A req/s | B req/s | B/A | A CPU µs/req | B CPU µs/req | B/A |")
print("|---|---|---|---|---|---|---|")
for path in dict.fromkeys(r[0] for r in rows):
    def med(side, col):
        return statistics.median(float(r[col]) for r in rows if r[0] == path and r[1] == side)
    a_rps, b_rps, a_cpu, b_cpu = med("A", 2), med("B", 2), med("A", 3), med("B", 3)
    print(f"| `{path}` | {a_rps:.0f} | {b_rps:.0f} | {b_rps / a_rps:.2f}× | {a_cpu:.1f} | {b_cpu:.1f} | {b_cpu / a_cpu:.2f}× |")
print("\n(medians of the rounds)")
PY
