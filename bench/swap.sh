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
#   WASMHOUSE_COMPILATION=optimized bench/swap.sh   # no baseline code first
#
# Then, with the load still on, a large component (the Python seed,
# target/python/seed-py.wasm, which the test suite builds; BENCH_LARGE=path
# for another, BENCH_LARGE= to skip) is deployed never compiled to a second
# route, twice: how long until it answers, and until its optimised code
# serves (tiered compilation; the admin listing's `code`).
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
V1="$TARGET_DIR/wasm-test-v1/wasm32-wasip2/release/wasmhouse_test_guest.wasm"
V2="$TARGET_DIR/wasm-test-v2/wasm32-wasip2/release/wasmhouse_test_guest.wasm"
[ -f "$V1" ] && [ -f "$V2" ] || die "the test guest builds are missing ($V1, $V2)"
LARGE="${BENCH_LARGE-$TARGET_DIR/python/seed-py.wasm}"
[ -z "$LARGE" ] || [ -f "$LARGE" ] || { say "no $LARGE: skipping the large component"; LARGE=""; }
LARGE_SWAPS=$([ -n "$LARGE" ] && echo 2 || echo 0)
cp "$V1" "$WORK/app.wasm"
printf '[[route]]\nname = "app"\nprefix = "/"\ncomponent = "app.wasm"\n\n[[route]]\nname = "large"\nprefix = "/large"\ncomponent = "app.wasm"\n' > "$WORK/wasmhouse.toml"
CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT=9 RUST_LOG=warn WASMHOUSE_COMPILE_CACHE=off \
  WASMHOUSE_ADMIN_TOKEN="$TOKEN" WASMHOUSE_ADMIN_MAX_UPLOAD=64MiB \
  "$TARGET_DIR"/release/wasmhouse serve --listen 127.0.0.1:0 --manifest "$WORK/wasmhouse.toml" > "$WORK/out" 2>&1 &
WH_PID=$!
for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/out" && break; sleep 0.1; done
WH="$(sed -n 's/^wasmhouse listening on //p' "$WORK/out")"
[ -n "$WH" ] || { cat "$WORK/out"; die "wasmhouse did not start"; }

LOAD_SECONDS=$(( SWAPS * 6 + LARGE_SWAPS * 60 + 10 ))
wrk -t2 -c"$CONNECTIONS" -d"${LOAD_SECONDS}s" "$WH/version" > "$WORK/wrk" 2>&1 &
WRK_PID=$!
sleep 2
python3 - "$WH" "$TOKEN" "$V1" "$V2" "$SWAPS" "$SWAP_BY" "$WORK/app.wasm" "$LARGE" "$LARGE_SWAPS" <<'PY'
import http.client, json, os, statistics, sys, time, urllib.parse
base, token, v1_path, v2_path, swaps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
swap_by, watched = sys.argv[6], sys.argv[7]
large_path, large_swaps = sys.argv[8], int(sys.argv[9])
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

def code(route):
    status, data = request("GET", "/admin/components", headers={"Authorization": f"Bearer {token}"})
    for component in json.loads(data)["components"]:
        if component["name"] == route:
            return component.get("code", "optimized")

if large_swaps:
    large = open(large_path, "rb").read()
    for round_ in range(large_swaps):
        started = time.monotonic()
        status, data = request("PUT", "/admin/components/large", unique(large, f"{time.time_ns()}"),
                               {"Authorization": f"Bearer {token}"})
        if status != 200:
            sys.exit(f"deploy of the large component failed: {status} {data[:200]}")
        answered = time.monotonic()
        while request("GET", "/large/.well-known/openapi.json")[0] != 200:
            if time.monotonic() - started > 120:
                sys.exit("the large component never answered")
        serving = time.monotonic()
        first_code = json.loads(data).get("code", "optimized")
        while code("large") != "optimized":
            if time.monotonic() - started > 180:
                sys.exit("the large component's optimised code never served")
            time.sleep(0.05)
        optimised = time.monotonic()
        print(f"large component ({len(large) / 1e6:.1f} MB, never compiled) under load, round {round_ + 1}: "
              f"answering after {serving - started:.2f} s (upload call {answered - started:.2f} s, "
              f"{first_code} code), optimised code serving after {optimised - started:.1f} s")
PY
wait "$WRK_PID" || true
python3 - "$WORK/wrk" "$CONNECTIONS" <<'PY'
import sys
from benchlib import wrk_summary
rps, total, failed = wrk_summary(open(sys.argv[1]).read())
print(f"load: wrk -c{sys.argv[2]} on /version, {rps:.0f} req/s, {total} requests, {failed} failed")
PY
