#!/usr/bin/env bash
# How long a fleet takes to serve a pushed tag: a real registry
# (docker-registry) on loopback, two hosts serving `oci://…/app:live` and
# following it, wrk keeping `/version` busy on both; then pushes alternate
# between the test guest's v2 (made unique, so nothing has it compiled) and
# v1 (pushed and compiled before). For each: the time from the start of
# `wasmhouse push` until both hosts answer the new version, and the failed
# requests of the whole run.
#
#   bench/registry.sh                         # 5 pushes each way, follow 2s, c=16 per host
#   BENCH_PUSHES=10 BENCH_FOLLOW=10s bench/registry.sh
#   BENCH_PROFILE=debug bench/registry.sh     # the debug build (no release build needed)
#
# Needs no ClickHouse (/version does not query). Load goes only to
# 127.0.0.1, for a bounded time.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
# The embedded Python shares bench/benchlib.py.
export PYTHONPATH="$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}"

PUSHES="${BENCH_PUSHES:-5}"
FOLLOW="${BENCH_FOLLOW:-2s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
PROFILE="${BENCH_PROFILE:-release}"
WORK="$(mktemp -d /tmp/wasmhouse-registry.XXXXXX)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

ensure_wrk
ensure_wasm_target
ensure_registry
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p wasmhouse -p wasmhouse-test-programs
else
  cargo build -q -p wasmhouse -p wasmhouse-test-programs
fi
BIN="$TARGET_DIR/$PROFILE/wasmhouse"
V1="$TARGET_DIR/wasm-test-v1/wasm32-wasip2/release/wasmhouse_test_guest.wasm"
V2="$TARGET_DIR/wasm-test-v2/wasm32-wasip2/release/wasmhouse_test_guest.wasm"
[ -f "$V1" ] && [ -f "$V2" ] || die "the test guest builds are missing ($V1, $V2)"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
REGISTRY="127.0.0.1:$PORT"
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REGISTRY
EOF
docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://$REGISTRY/v2/" >/dev/null && break; sleep 0.1; done
export WASMHOUSE_INSECURE_REGISTRIES="$REGISTRY"
TAG="oci://$REGISTRY/app:live"
"$BIN" push "$V1" "$TAG" > /dev/null

HOSTS=()
for n in 1 2; do
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT=9 RUST_LOG=warn \
    WASMHOUSE_COMPILE_CACHE="$WORK/cache-$n" \
    "$BIN" serve --listen 127.0.0.1:0 --component "$TAG" --follow "$FOLLOW" > "$WORK/host-$n" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do grep -q "^wasmhouse listening on" "$WORK/host-$n" && break; sleep 0.1; done
  HOST="$(sed -n 's/^wasmhouse listening on //p' "$WORK/host-$n")"
  [ -n "$HOST" ] || { cat "$WORK/host-$n"; die "host $n did not start"; }
  HOSTS+=("$HOST")
done

FOLLOW_SECONDS="$(python3 -c "import re,sys; t='$FOLLOW'; m=re.fullmatch(r'(\d+)(ms|s|m)', t); v=int(m.group(1)); print({'ms':v/1000,'s':v,'m':v*60}[m.group(2)])")"
LOAD_SECONDS="$(python3 -c "print(int($PUSHES * 2 * ($FOLLOW_SECONDS * 1.2 + 4) + 10))")"
for n in 0 1; do
  wrk -t1 -c"$CONNECTIONS" -d"${LOAD_SECONDS}s" "${HOSTS[$n]}/version" > "$WORK/wrk-$n" 2>&1 &
  PIDS+=($!)
  eval "WRK_$n=$!"
done
sleep 2
python3 - "$BIN" "$TAG" "$V1" "$V2" "$PUSHES" "$FOLLOW" "$WORK" "${HOSTS[@]}" <<'PY'
import http.client, json, statistics, subprocess, sys, time, urllib.parse
binary, tag, v1_path, v2_path, pushes, follow, work = sys.argv[1:8]
hosts = [urllib.parse.urlparse(h) for h in sys.argv[8:]]
pushes = int(pushes)
v1, v2 = open(v1_path, "rb").read(), open(v2_path, "rb").read()

from benchlib import unique

def version(host):
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    connection.request("GET", "/version")
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return json.loads(data).get("version") if response.status == 200 else None

def push(component, expected):
    path = f"{work}/push.wasm"
    with open(path, "wb") as out:
        out.write(component)
    started = time.monotonic()
    subprocess.run([binary, "push", path, tag], check=True, stdout=subprocess.DEVNULL)
    pushed = time.monotonic()
    waiting = set(range(len(hosts)))
    while waiting:
        waiting = {n for n in waiting if version(hosts[n]) != expected}
        if time.monotonic() - started > 120:
            sys.exit("the pushed version never showed on every host")
    return (pushed - started) * 1000, (time.monotonic() - started) * 1000

fresh, known = [], []
for round_ in range(pushes):
    fresh.append(push(unique(v2, f"{time.time_ns()}-{round_}"), 2))
    time.sleep(1)
    known.append(push(v1, 1))  # pushed before: same digest, compiled at start
    time.sleep(1)
for label, runs in (("never compiled", fresh), ("compiled before", known)):
    calls = [call for call, _ in runs]
    shows = [show for _, show in runs]
    print(f"push of a component {label} (follow {follow}, 2 hosts, under load): every host "
          f"serving it after median {statistics.median(shows):.0f} ms (min {min(shows):.0f}, "
          f"max {max(shows):.0f}); `wasmhouse push` took median {statistics.median(calls):.0f} ms")
PY
for n in 0 1; do
  eval "wait \$WRK_$n" || true
  python3 - "$WORK/wrk-$n" "$CONNECTIONS" "$((n + 1))" <<'PY'
import sys
from benchlib import wrk_summary
rps, total, failed = wrk_summary(open(sys.argv[1]).read())
print(f"host {sys.argv[3]}: wrk -c{sys.argv[2]} on /version, {rps:.0f} req/s, "
      f"{total} requests, {failed} failed")
PY
done
