#!/usr/bin/env bash
# Curves rather than points: throughput and p99 latency against concurrency
# (1, 8, 32, 128, 512) for /health and simple-query, next to a plain hyper
# server and ClickHouse queried directly (and `wasmtime serve` with the same
# composed guest when it is installed); then memory and /health throughput
# against the number of distinct components loaded (1, 10, 100).
#
#   bench/curves.sh                       # 5 s per point
#   BENCH_CURVE_DURATION=10 bench/curves.sh
#   BENCH_CURVE_ROUNDS=5 bench/curves.sh    # rounds of the components comparison (3)
#
# Writes the tables into BENCHMARKS.md (between the curves markers) and the
# plots to bench/curves-*.svg. Builds in release mode; starts its own
# clickhouse-server and servers on free loopback ports; load goes only to
# 127.0.0.1, for a bounded time. `bench/run.sh` runs it at the end.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${BENCH_CURVE_DURATION:-5}"
LEVELS=(${BENCH_CURVE_LEVELS:-1 8 32 128 512})
COMPONENTS=(${BENCH_CURVE_COMPONENTS:-1 10 100})
COMPONENT_ROUNDS="${BENCH_CURVE_ROUNDS:-3}"
declare -A READY HOST_URL HOST_PID IDLE RPS P99
WORK="$(mktemp -d /tmp/wasmhouse-curves.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ensure_wrk
ensure_wasm_target
say "building (release)"
cargo build --release -q -p wasmhouse -p wasmhouse-bench-hello
BIN="$TARGET_DIR/release/wasmhouse"
GUEST="$TARGET_DIR/wasm/wasm32-wasip2/release/wasmhouse_guest.wasm"
[ -f "$GUEST" ] || die "the built-in guest is not at $GUEST"
start_scratch_clickhouse "$WORK/ch"
PIDS+=("$CH_PID")
CH="http://127.0.0.1:$CH_PORT"

# Wait (up to 5 min: 100 components compile) for a line starting with $2 in
# file $1; print the rest of it.
wait_for_line() {
  for _ in $(seq 1 3000); do
    local line; line="$(grep -m1 "^$2" "$1" 2>/dev/null || true)"
    if [ -n "$line" ]; then echo "${line#"$2"}"; return; fi
    sleep 0.1
  done
  cat "$1" >&2; die "timed out waiting for '$2'"
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The private part of RSS (anonymous and shared-memory pages): what the host
# itself holds, as opposed to file pages the kernel can drop and read again.
private_mib() { awk '/^(RssAnon|RssShmem):/ {kib += $2} END {printf "%.1f", kib / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

# wrk at concurrency $2 against $1: "req/s p50_ms p99_ms non_2xx errors".
point() {
  local threads=2; [ "$2" -lt 2 ] && threads=1
  wrk -t"$threads" -c"$2" -d"${DURATION}s" --latency "$1" > "$WORK/wrk" 2>&1 || true
  python3 - "$WORK/wrk" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return 0.0
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
print(f"{float(rps.group(1)) if rps else 0:.0f} {ms(50):.2f} {ms(99):.2f} "
      f"{bad.group(1) if bad else 0} {sum(map(int, errors.groups())) if errors else 0}")
PY
}

start_wasmhouse() {  # extra flags; sets WH and WH_PID (logs in $WORK/$WH_LOG.*)
  local log="$WORK/${WH_LOG:-wh}"
  CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT="$CH_PORT" RUST_LOG=warn WASMHOUSE_COMPILE_CACHE="${WASMHOUSE_COMPILE_CACHE:-off}" \
    "$BIN" serve --listen 127.0.0.1:0 "$@" > "$log.out" 2> "$log.err" &
  WH_PID=$!
  PIDS+=("$WH_PID")
  WH="http://$(wait_for_line "$log.out" "wasmhouse listening on http://")"
}

# --- against concurrency ---------------------------------------------------
# Optimised code from the start: these curves are about serving.
start_wasmhouse --max-instances 1024 --compilation optimized
"$TARGET_DIR/release/wasmhouse-bench-hello" 127.0.0.1:0 > "$WORK/hello.out" 2>&1 &
PIDS+=($!)
HELLO="http://$(wait_for_line "$WORK/hello.out" "listening on http://")"
declare -A TARGETS=(
  ["wasmhouse /health"]="$WH/health"
  ["plain hyper"]="$HELLO/health"
  ["wasmhouse simple-query"]="$WH/concurrent/simple-query"
  ["ClickHouse SELECT 1"]="$CH/?query=SELECT%201%20AS%20value%20FORMAT%20JSONEachRow"
)
ORDER=("wasmhouse /health" "plain hyper" "wasmhouse simple-query" "ClickHouse SELECT 1")
if command -v wasmtime >/dev/null 2>&1 && wasmtime --version | grep -q '^wasmtime 48\.'; then
  "$BIN" compose -o "$WORK/composed.wasm" > /dev/null
  WT_PORT="$(free_port)"
  wasmtime serve -S cli --env CLICKHOUSE_URL="$CH" --addr "127.0.0.1:$WT_PORT" "$WORK/composed.wasm" > "$WORK/wt.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$WT_PORT/health" && break; sleep 0.1; done
  TARGETS["wasmtime serve /health"]="http://127.0.0.1:$WT_PORT/health"
  ORDER+=("wasmtime serve /health")
else
  say "wasmtime 48 is not installed: its curve is left out (cargo install wasmtime-cli --version 48.0.8)"
fi
command -v spin >/dev/null 2>&1 || say "spin is not installed: its curve is left out"

say "warming up"
for name in "${ORDER[@]}"; do DURATION=1 point "${TARGETS[$name]}" 32 > /dev/null; done
: > "$WORK/concurrency.tsv"
for name in "${ORDER[@]}"; do
  for level in "${LEVELS[@]}"; do
    read -r rps p50 p99 bad errors < <(point "${TARGETS[$name]}" "$level")
    say "$name, c=$level: $rps req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $bad, socket errors $errors"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$level" "$rps" "$p50" "$p99" "$bad" "$errors" >> "$WORK/concurrency.tsv"
  done
done
kill "$WH_PID"; wait "$WH_PID" 2>/dev/null || true

# --- against components loaded ---------------------------------------------
# Distinct components: the built-in guest with a custom section naming its
# copy, so each is compiled and kept on its own.
: > "$WORK/components.tsv"
for count in "${COMPONENTS[@]}"; do
  mkdir -p "$WORK/c$count"
  python3 - "$GUEST" "$WORK/c$count" "$count" <<'PY'
import pathlib, sys
guest, out, count = pathlib.Path(sys.argv[1]).read_bytes(), pathlib.Path(sys.argv[2]), int(sys.argv[3])
def leb(n):
    bytes_ = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        bytes_.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(bytes_)
routes = []
for i in range(count):
    name = b"wasmhouse-bench-copy"
    payload = str(i).encode()
    body = leb(len(name)) + name + payload
    (out / f"r{i}.wasm").write_bytes(guest + b"\x00" + leb(len(body)) + body)
    routes.append(f'[[route]]\nname = "r{i}"\nprefix = "/r{i}"\ncomponent = "r{i}.wasm"\n')
(out / "wasmhouse.toml").write_text("\n".join(routes))
PY
  # The first start compiles (into a compile cache of this run), the second
  # loads: memory is measured as a host restarted with the default cache.
  started="$(date +%s%N)"
  WH_LOG="c$count" WASMHOUSE_COMPILE_CACHE="$WORK/cc" start_wasmhouse --compilation optimized --manifest "$WORK/c$count/wasmhouse.toml"
  READY[$count]="$(( ($(date +%s%N) - started) / 1000000 ))"
  kill "$WH_PID"; wait "$WH_PID" 2>/dev/null || true
  WH_LOG="c$count" WASMHOUSE_COMPILE_CACHE="$WORK/cc" start_wasmhouse --compilation optimized --manifest "$WORK/c$count/wasmhouse.toml"
  for i in $(seq 0 $(( count > 10 ? 9 : count - 1 ))); do curl -fs -o /dev/null "$WH/r$i/health"; done
  HOST_URL[$count]="$WH"; HOST_PID[$count]="$WH_PID"; IDLE[$count]="$(rss_mib "$WH_PID")"
done
# Every host stays up (idle ones cost no CPU) and they take turns, so each
# ratio compares hosts measured in the same minutes of this noisy machine.
for count in "${COMPONENTS[@]}"; do DURATION=1 point "${HOST_URL[$count]}/r0/health" 32 > /dev/null; done
for round in $(seq 1 "$COMPONENT_ROUNDS"); do
  for count in "${COMPONENTS[@]}"; do
    read -r rps p50 p99 bad errors < <(point "${HOST_URL[$count]}/r0/health" 32)
    say "$count components, round $round: /health $rps req/s (p99 $p99 ms)"
    RPS[$count]="${RPS[$count]:-} $rps"; P99[$count]="${P99[$count]:-} $p99"
  done
done
for count in "${COMPONENTS[@]}"; do
  pid="${HOST_PID[$count]}"
  rps="$(tr ' ' '\n' <<<"${RPS[$count]}" | awk 'NF {sum += $1; n++} END {printf "%.0f", sum / n}')"
  p99="$(tr ' ' '\n' <<<"${P99[$count]}" | awk 'NF && $1 > max {max = $1} END {printf "%g", max}')"
  loaded="$(rss_mib "$pid")"; private="$(private_mib "$pid")"
  say "$count components: ready in ${READY[$count]} ms, RSS ${IDLE[$count]} MiB idle, $loaded MiB after load ($private MiB private); /health $rps req/s mean of $COMPONENT_ROUNDS (worst p99 $p99 ms)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$count" "${READY[$count]}" "${IDLE[$count]}" "$loaded" "$rps" "$p99" "$private" >> "$WORK/components.tsv"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# --- tables and plots ------------------------------------------------------
awk -F'\t' '{print $1 "\t" $2 "\t" $3}' "$WORK/concurrency.tsv" > "$WORK/throughput.tsv"
awk -F'\t' '{print $1 "\t" $2 "\t" $5}' "$WORK/concurrency.tsv" > "$WORK/p99.tsv"
awk -F'\t' '{print "RSS after load (MiB)\t" $1 "\t" $4}' "$WORK/components.tsv" > "$WORK/memory.tsv"
awk -F'\t' '{print "private (MiB)\t" $1 "\t" $7}' "$WORK/components.tsv" >> "$WORK/memory.tsv"
awk -F'\t' '{print "/health (k req/s)\t" $1 "\t" $5 / 1000}' "$WORK/components.tsv" >> "$WORK/memory.tsv"
python3 bench/plot.py bench/curves-throughput.svg "Throughput against concurrency" "connections" "requests/s" --logx "$WORK/throughput.tsv"
python3 bench/plot.py bench/curves-p99.svg "p99 latency against concurrency" "connections" "p99 (ms)" --logx --logy "$WORK/p99.tsv"
python3 bench/plot.py bench/curves-components.svg "Memory and /health throughput against components loaded" "components" "MiB / k req/s" --logx "$WORK/memory.tsv"

COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
python3 - "$WORK/concurrency.tsv" "$WORK/components.tsv" "$COMMIT" "$DURATION" "$(nproc)" <<'PY'
import collections, pathlib, sys, time
rows = [line.split("\t") for line in pathlib.Path(sys.argv[1]).read_text().splitlines()]
comps = [line.split("\t") for line in pathlib.Path(sys.argv[2]).read_text().splitlines()]
commit, duration, cores = sys.argv[3], sys.argv[4], sys.argv[5]
by = collections.OrderedDict()
for name, level, rps, p50, p99, bad, errors in rows:
    by.setdefault(name, {})[int(level)] = (float(rps), float(p50), float(p99), int(bad), int(errors))
levels = sorted({int(r[1]) for r in rows})
out = [f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{commit}`, {cores} cores; "
       f"`wrk --latency`, {duration} s per point, everything on loopback and sharing the cores.", ""]
out += ["Throughput (req/s) and p99 (ms) against concurrent connections:", ""]
out.append("| server | " + " | ".join(f"c={l}" for l in levels) + " |")
out.append("|---|" + "---|" * len(levels))
for name, points in by.items():
    cells = []
    for l in levels:
        rps, p50, p99, bad, errors = points[l]
        note = f" ({bad + errors} failed)" if bad + errors else ""
        cells.append(f"{rps:,.0f} / {p99:g} ms{note}")
    out.append(f"| {name} | " + " | ".join(cells) + " |")
def ratio(a, b, level):
    if a in by and b in by and by[b][level][0]:
        return by[a][level][0] / by[b][level][0]
out += ["", "| ratio | " + " | ".join(f"c={l}" for l in levels) + " |", "|---|" + "---|" * len(levels)]
for a, b in (("wasmhouse /health", "plain hyper"), ("wasmhouse simple-query", "ClickHouse SELECT 1")):
    cells = [f"{ratio(a, b, l):.2f}×" if ratio(a, b, l) is not None else "" for l in levels]
    out.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
if 1 in levels:
    health = by["wasmhouse /health"][1][1] - by["plain hyper"][1][1]
    query = by["wasmhouse simple-query"][1][1] - by["ClickHouse SELECT 1"][1][1]
    out += ["", f"Single request at c=1 (p50): `/health` costs {health * 1000:.0f} µs more than plain hyper; "
            f"simple-query {query * 1000:.0f} µs more than ClickHouse directly."]
out += ["", "Components loaded (distinct, each compiled on its own; RSS of a host restarted with its compile "
        "cache warm; private: its anonymous and shared-memory pages, without the compiled files the kernel "
        "maps and can drop; `/health` of one of them, c=32, the hosts taking turns, the mean of its rounds (each as long as a "
        "point above) and the worst p99:", "",
        "| components | first start (compiling) | RSS idle MiB | RSS after load MiB | private after load MiB | /health req/s | p99 ms |",
        "|---|---|---|---|---|---|---|"]
base = comps[0]
for count, ready, idle, loaded, rps, p99, private in comps:
    out.append(f"| {count} | {int(ready) / 1000:.1f} s | {idle} | {loaded} | {private} | {float(rps):,.0f} "
               f"({float(rps) / float(base[4]):.2f}×) | {p99} |")
last = comps[-1]
out += ["", f"{last[0]} components against {base[0]}: RSS after load {float(last[3]) / float(base[3]):.2f}×, "
        f"private memory {float(last[6]) / float(base[6]):.2f}×, "
        f"/health throughput {float(last[4]) / float(base[4]):.2f}×.", "",
        "![throughput](bench/curves-throughput.svg) ![p99](bench/curves-p99.svg) ![components](bench/curves-components.svg)"]
table = "\n".join(out) + "\n"
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
start, end = "<!-- curves:start -->", "<!-- curves:end -->"
if start not in text:
    text += f"\n## Curves\n\n{start}\n{end}\n"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
path.write_text(before + start + "\n" + table + end + after)
print(table)
PY
say "curves written to BENCHMARKS.md and bench/curves-*.svg"
