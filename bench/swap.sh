#!/usr/bin/env bash
# How long a swap to a component the host has never compiled takes to show
# under full load: wrk keeps `/version` busy on the test guest's v1 while a
# v2 (made unique, so no cache has it) is uploaded through the admin API;
# the time from the upload's start until answers are v2, and the failed
# requests of the whole run. Then the same swap back to a version compiled
# before (cached).
#
#   bench/swap.sh                     # 5 swaps each way, c=32
#   BENCH_SWAPS=10 BENCH_CONNECTIONS=64 bench/swap.sh
#   BENCH_SWAP_BY=file bench/swap.sh  # replace the watched file instead
#                                     # (an atomic rename) of uploading
#
# Builds in release mode; needs no ClickHouse (/version does not query).
# Load goes only to 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
# The embedded Python shares bench/benchlib.py.
export PYTHONPATH="$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}"

SWAPS="${BENCH_SWAPS:-5}"
SWAP_BY="${BENCH_SWAP_BY:-admin}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
TOKEN="bench-admin-token-0123456789"
WORK="$(mktemp -d /tmp/wasmhouse-swap.XXXXXX)"
trap 'kill "${WH_PID:-}" "${WRK_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
ensure_wasm_target
# With the two builds of the test guest (`/version` answers 1 or 2), which
# wasmhouse-test-programs' build script makes.
cargo build --release -q -p wasmhouse -p wasmhouse-test-programs
V1="$ROOT/target/wasm-test-v1/wasm32-wasip2/release/wasmhouse_test_guest.wasm"
V2="$ROOT/target/wasm-test-v2/wasm32-wasip2/release/wasmhouse_test_guest.wasm"
[ -f "$V1" ] && [ -f "$V2" ] || die "the test guest builds are missing ($V1, $V2)"
cp "$V1" "$WORK/app.wasm"
printf '[[route]]\nname = "app"\nprefix = "/"\ncomponent = "app.wasm"\n' > "$WORK/wasmhouse.toml"
CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT=9 RUST_LOG=warn WASMHOUSE_COMPILE_CACHE=off \
  WASMHOUSE_ADMIN_TOKEN="$TOKEN" WASMHOUSE_ADMIN_MAX_UPLOAD=16MiB \
  target/release/wasmhouse serve --listen 127.0.0.1:0 --manifest "$WORK/wasmhouse.toml" > "$WORK/out" 2>&1 &
WH_PID=$!
for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/out" && break; sleep 0.1; done
WH="$(sed -n 's/^wasmhouse listening on //p' "$WORK/out")"
[ -n "$WH" ] || { cat "$WORK/out"; die "wasmhouse did not start"; }

LOAD_SECONDS=$(( SWAPS * 6 + 10 ))
wrk -t2 -c"$CONNECTIONS" -d"${LOAD_SECONDS}s" "$WH/version" > "$WORK/wrk" 2>&1 &
WRK_PID=$!
sleep 2
python3 - "$WH" "$TOKEN" "$V1" "$V2" "$SWAPS" "$SWAP_BY" "$WORK/app.wasm" <<'PY'
import http.client, json, os, statistics, sys, time, urllib.parse
base, token, v1_path, v2_path, swaps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
swap_by, watched = sys.argv[6], sys.argv[7]
address = urllib.parse.urlparse(base)
v1, v2 = open(v1_path, "rb").read(), open(v2_path, "rb").read()

from benchlib import unique

def request(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data

def version():
    status, data = request("GET", "/version")
    return json.loads(data).get("version") if status == 200 else None

def swap(component, expected):
    started = time.monotonic()
    if swap_by == "file":
        # What a build script does: write beside, rename over.
        with open(watched + ".tmp", "wb") as out:
            out.write(component)
        os.rename(watched + ".tmp", watched)
    else:
        status, data = request("PUT", "/admin/components/app", component,
                               {"Authorization": f"Bearer {token}"})
        if status != 200:
            sys.exit(f"deploy failed: {status} {data[:200]}")
    answered = time.monotonic()
    while version() != expected:
        if time.monotonic() - started > 30:
            sys.exit("the new version never showed")
    shown = time.monotonic()
    return (answered - started) * 1000, (shown - started) * 1000

fresh, cached = [], []
for round_ in range(swaps):
    nonce = f"{time.time_ns()}-{round_}"
    fresh.append(swap(unique(v2, nonce), 2))
    time.sleep(1)
    cached.append(swap(v1, 1))  # compiled at start-up: the cache has it
    time.sleep(1)
for label, runs in (("never compiled", fresh), ("compiled before", cached)):
    calls = [call for call, _ in runs]
    shows = [show for _, show in runs]
    how = "replacing the file" if swap_by == "file" else "the admin API"
    print(f"swap ({how}) to a component {label}, under load: new version shown after median "
          f"{statistics.median(shows):.0f} ms (min {min(shows):.0f}, max {max(shows):.0f}); "
          f"the upload call took median {statistics.median(calls):.0f} ms")
PY
wait "$WRK_PID" || true
python3 - "$WORK/wrk" "$CONNECTIONS" <<'PY'
import sys
from benchlib import wrk_summary
rps, total, failed = wrk_summary(open(sys.argv[1]).read())
print(f"load: wrk -c{sys.argv[2]} on /version, {rps:.0f} req/s, {total} requests, {failed} failed")
PY
