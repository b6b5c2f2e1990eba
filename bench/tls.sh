#!/usr/bin/env bash
# What TLS to ClickHouse costs: one wasmhouse binary, two processes against
# the same clickhouse-server, one over its HTTP port and one over its HTTPS
# port (certificates made here with openssl, verified against the made CA as
# CLICKHOUSE_CA_CERT). Rounds alternate plain, TLS, plain, TLS…
#
#   bench/tls.sh                      # 3 rounds of 6 s, c=32 and c=1
#   BENCH_DURATION=10 BENCH_ROUNDS=5 bench/tls.sh
#
# The pool keeps connections (and their TLS sessions) open, so the figure is
# the steady-state cost: encryption, not handshakes. Builds in release mode;
# load goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-6}"
ROUNDS="${BENCH_ROUNDS:-3}"
WORK="$(mktemp -d /tmp/wasmhouse-tls.XXXXXX)"
PIDS=()
trap 'kill "${PIDS[@]}" "$CH_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
command -v openssl > /dev/null || as_root apt-get install -y openssl
# WASMHOUSE_BIN: an already-built binary to measure instead.
BIN="${WASMHOUSE_BIN:-target/release/wasmhouse}"
[ -n "${WASMHOUSE_BIN:-}" ] || cargo build --release -q -p wasmhouse

say "making a CA and a server certificate for 127.0.0.1"
(
  cd "$WORK"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=wasmhouse bench CA" \
    -keyout ca.key -out ca.crt 2> /dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2> /dev/null
  echo "subjectAltName=DNS:localhost,IP:127.0.0.1" > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile server.ext -out server.crt 2> /dev/null
)
HTTPS_PORT="$(free_port)"
start_scratch_clickhouse "$WORK/ch" --https_port="$HTTPS_PORT" \
  --openSSL.server.certificateFile="$WORK/server.crt" \
  --openSSL.server.privateKeyFile="$WORK/server.key" --openSSL.server.dhParamsFile=
for _ in $(seq 1 100); do
  curl -fsS --cacert "$WORK/ca.crt" "https://127.0.0.1:$HTTPS_PORT/ping" > /dev/null 2>&1 && break
  sleep 0.1
done

# start NAME VAR=VALUE…: serve the built-in routes; sets URL_<NAME>, PID_<NAME>.
start() {
  local name="$1"; shift
  env "$@" CLICKHOUSE_HOST=127.0.0.1 RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:0 > "$WORK/$name.out" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/$name.out" && break; sleep 0.1; done
  local url; url="$(sed -n 's/^wasmhouse listening on //p' "$WORK/$name.out")"
  [ -n "$url" ] || { cat "$WORK/$name.out"; die "wasmhouse ($name) did not start"; }
  printf -v "URL_$name" '%s' "$url"
  printf -v "PID_$name" '%s' "$pid"
}
start plain CLICKHOUSE_PORT="$CH_PORT"
start tls CLICKHOUSE_PORT="$HTTPS_PORT" CLICKHOUSE_SECURE=true CLICKHOUSE_CA_CERT="$WORK/ca.crt"
version="$(curl -fsS "$URL_tls/clickhouse-status")" || die "the TLS side cannot reach ClickHouse: $version"

PATH_="/concurrent/simple-query"
say "warming up"
for side in plain tls; do
  url="URL_$side"; pid="PID_$side"
  wrk_cpu 2 32 "${!url}$PATH_" "" "${!pid}" > /dev/null
done
RESULTS="$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  for connections in 32 1; do
    for side in plain tls; do
      url="URL_$side"; pid="PID_$side"
      read -r rps bad cpu p50 < <(wrk_cpu "$DURATION" "$connections" "${!url}$PATH_" "" "${!pid}")
      [ "$bad" = 0 ] || die "$side: $bad non-2xx answers"
      say "round $round c=$connections $side: $rps req/s, p50 $p50 ms, $cpu µs CPU/request"
      echo "$connections $side $rps $cpu $p50" >> "$RESULTS"
    done
  done
done

python3 - "$RESULTS" "$DURATION" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print(f"\n{'/concurrent/simple-query'}, wrk -t2 -d{sys.argv[2]}s, medians of the rounds\n")
print("| connections | plain req/s | TLS req/s | TLS/plain | plain p50 ms | TLS p50 ms | plain CPU µs/req | TLS CPU µs/req |")
print("|---|---|---|---|---|---|---|---|")
for c in dict.fromkeys(r[0] for r in rows):
    def med(side, col):
        return statistics.median(float(r[col]) for r in rows if r[0] == c and r[1] == side)
    p, t = med("plain", 2), med("tls", 2)
    print(f"| {c} | {p:.0f} | {t:.0f} | **{t / p:.2f}×** | {med('plain', 4):.2f} | {med('tls', 4):.2f} | {med('plain', 3):.1f} | {med('tls', 3):.1f} |")
PY
