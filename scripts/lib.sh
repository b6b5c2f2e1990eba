# Shared helpers for scripts/serve and scripts/test. Source, don't run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The build's target directory, absolute: CARGO_TARGET_DIR when set (CI keeps
# one outside the clone), target/ otherwise. Exported, so build scripts and
# tests find the same one.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac
  export CARGO_TARGET_DIR
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# Where the time goes: `phase NAME COMMAND...` runs COMMAND, says how long it
# took and, when WASMHOUSE_PHASES names a file, records it there for
# `phase_summary`, with its depth (a phase inside another, in a script the
# outer phase runs, is one deeper). A failing command fails the phase and the
# script.
phase() {
  local name="$1" start=$SECONDS status=0 depth="${WASMHOUSE_PHASE_DEPTH:-0}"
  shift
  say "$name"
  WASMHOUSE_PHASE_DEPTH=$((depth + 1)) "$@" || status=$?
  local took=$((SECONDS - start))
  phase_record "$depth" "$took" "$name$([ "$status" -eq 0 ] || echo " (failed: exit $status)")"
  say "$name: ${took} s$([ "$status" -eq 0 ] || echo ", failed (exit $status)")"
  return "$status"
}

# Record phase NAME ($3) of depth $1 that took $2 seconds.
phase_record() {
  [ -n "${WASMHOUSE_PHASES:-}" ] || return 0
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$WASMHOUSE_PHASES"
}

# The table of phases recorded in WASMHOUSE_PHASES, in the order they ended:
# inner ones indented, just above the phase they ran in; and the wall time since
# WASMHOUSE_STARTED (seconds since the epoch) when that is set.
phase_summary() {
  [ -s "${WASMHOUSE_PHASES:-}" ] || return 0
  awk -F '\t' '{ printf "%6d s  %*s%s\n", $2, $1 * 2, "", $3 }' "$WASMHOUSE_PHASES" >&2
  if [ -n "${WASMHOUSE_STARTED:-}" ]; then
    local wall=$(($(date +%s) - WASMHOUSE_STARTED))
    printf '%6d s  in all, wall time (%d min %02d s)\n' "$wall" $((wall / 60)) $((wall % 60)) >&2
  fi
}

# Every Debian package the suite uses that is not installed yet, in one
# apt-get run (each apt-get update alone costs seconds). Required packages
# failing is fatal; the optional ones (chromium, docker.io, systemd, strace,
# nginx), whose tests say they skipped without them, are tried one by one
# after.
ensure_system_packages() {
  local required=() optional=()
  clickhouse_server_bin >/dev/null || required+=(clickhouse-server)
  command -v curl >/dev/null 2>&1 || required+=(curl)
  command -v npm >/dev/null 2>&1 || required+=(nodejs npm)
  command -v docker-registry >/dev/null 2>&1 || required+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || required+=(apache2-utils)
  command -v musl-gcc >/dev/null 2>&1 || required+=(musl-tools)
  command -v file >/dev/null 2>&1 || required+=(file)
  command -v chromium >/dev/null 2>&1 || optional+=(chromium)
  if [ "${WASMHOUSE_NO_DOCKER:-0}" != 1 ] && ! command -v docker >/dev/null 2>&1; then optional+=(docker.io); fi
  command -v systemd-analyze >/dev/null 2>&1 || optional+=(systemd)
  command -v strace >/dev/null 2>&1 || optional+=(strace)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || optional+=(nginx)
  [ "${#required[@]}" -eq 0 ] && [ "${#optional[@]}" -eq 0 ] && return 0
  if [ "${WASMHOUSE_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
    [ "${#required[@]}" -eq 0 ] || die "missing ${required[*]} (and no apt-get, or WASMHOUSE_NO_APT=1): install them"
    say "not installing ${optional[*]}: their tests will say they skipped"
    return 0
  fi
  say "installing with apt-get: ${required[*]} ${optional[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${required[@]}" "${optional[@]}" >/dev/null; then
    return 0
  fi
  if [ "${#required[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${required[@]}" >/dev/null \
      || die "apt-get could not install ${required[*]}"
  fi
  local package
  for package in "${optional[@]}"; do
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
      || say "could not install $package: the tests that need it will say they skipped"
  done
}

# The target the test suite is built for: static musl, the container image's
# own, so the image is made from the binary the tests ran rather than from a
# second build of everything.
TEST_TARGET=x86_64-unknown-linux-musl

# The Rust targets the build needs: wasm32-wasip2 for the guests and
# $TEST_TARGET for the suite.
ensure_rust_targets() {
  ensure_wasm_target
  if ! rustup target list --installed 2>/dev/null | grep -qx "$TEST_TARGET"; then
    say "adding the $TEST_TARGET Rust target"
    rustup target add "$TEST_TARGET"
  fi
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install it yourself, or run as root)"
  fi
}

ensure_wasm_target() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    say "adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
  fi
}

clickhouse_server_bin() {
  if [ -n "${CLICKHOUSE_SERVER_BIN:-}" ]; then echo "$CLICKHOUSE_SERVER_BIN"; return; fi
  command -v clickhouse-server 2>/dev/null && return
  for candidate in /usr/bin/clickhouse-server /usr/sbin/clickhouse-server; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  return 1
}

ensure_clickhouse_installed() {
  clickhouse_server_bin >/dev/null && return
  [ "${WASMHOUSE_NO_APT:-0}" = 1 ] && die "clickhouse-server is not installed (and WASMHOUSE_NO_APT=1)"
  command -v apt-get >/dev/null 2>&1 || die "clickhouse-server is not installed and apt-get is not available"
  say "installing clickhouse-server with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >/dev/null
  clickhouse_server_bin >/dev/null || die "clickhouse-server still not found after installing it"
}

# Is a ClickHouse configured in the environment or in .env?
clickhouse_configured() {
  [ -n "${CLICKHOUSE_URL:-}" ] || [ -n "${CLICKHOUSE_HOST:-}" ] && return 0
  [ -f "$ROOT/.env" ] && grep -Eq '^[[:space:]]*(CLICKHOUSE_URL|CLICKHOUSE_HOST)=.+' "$ROOT/.env"
}

ping_clickhouse() { curl -fsS --max-time 1 "http://127.0.0.1:$1/ping" 2>/dev/null | grep -q '^Ok\.'; }

# Start a ClickHouse for development on 127.0.0.1:$1, data under .wasmhouse/.
start_local_clickhouse() {
  local port="$1" dir="$ROOT/.wasmhouse/clickhouse"
  if ping_clickhouse "$port"; then
    say "using the ClickHouse already answering on 127.0.0.1:$port"
    return
  fi
  ensure_clickhouse_installed
  mkdir -p "$dir"
  say "starting a local ClickHouse on 127.0.0.1:$port (data in .wasmhouse/clickhouse, log in .wasmhouse/clickhouse.log)"
  (cd "$dir" && exec "$(clickhouse_server_bin)" --config-file=/etc/clickhouse-server/config.xml -- \
      --path="$dir/data/" --tmp_path="$dir/tmp/" --user_files_path="$dir/user_files/" \
      --format_schema_path="$dir/format_schemas/" --http_port="$port" \
      --tcp_port="${WASMHOUSE_DEV_TCP_PORT:-19000}" --interserver_http_port="${WASMHOUSE_DEV_INTERSERVER_PORT:-19009}" \
      --listen_host=127.0.0.1 --logger.console=1 --logger.log="$dir/clickhouse.log" \
      --logger.errorlog="$dir/clickhouse.err.log") >"$ROOT/.wasmhouse/clickhouse.log" 2>&1 &
  LOCAL_CLICKHOUSE_PID=$!
  trap 'kill "$LOCAL_CLICKHOUSE_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    ping_clickhouse "$port" && return
    kill -0 "$LOCAL_CLICKHOUSE_PID" 2>/dev/null || { tail -20 "$ROOT/.wasmhouse/clickhouse.log" >&2; die "ClickHouse exited during start-up"; }
    sleep 0.1
  done
  die "ClickHouse did not answer on port $port within 30 s (see .wasmhouse/clickhouse.log)"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The load generator the benchmarks drive (Debian's package).
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return
  say "installing wrk"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

# wrk for $1 seconds with $2 connections against URL $3 (optional header
# $4): prints requests per second and the count of non-2xx answers.
wrk_rps() {
  local out; out="$(mktemp)"
  wrk -t2 -c"$2" -d"$1s" ${4:+-H "$4"} "$3" > "$out" 2>&1 || true
  python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
print(f"{float(rps.group(1)) if rps else 0:.0f} {bad.group(1) if bad else 0}")
PY
  rm -f "$out"
}

# wrk against $3 for $1 s with $2 connections (optional header $4) while
# process $5 serves it: prints "req/s non-2xx cpu-µs-per-request p50-ms", the CPU
# being that process's user + system time over the run (/proc/PID/stat).
wrk_cpu() {
  local out; out="$(mktemp)"
  local before; before="$(proc_cpu_ticks "$5")"
  wrk -t"$(( $2 < 2 ? 1 : 2 ))" -c"$2" -d"$1s" --latency ${4:+-H "$4"} "$3" > "$out" 2>&1 || true
  local after; after="$(proc_cpu_ticks "$5")"
  python3 - "$out" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
total = re.search(r"(\d+) requests in", text)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
ticks = int(sys.argv[3]) - int(sys.argv[2])
count = int(total.group(1)) if total else 0
cpu_us = ticks / int(sys.argv[4]) * 1e6 / count if count else 0
p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)\b", text)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
p50_ms = float(p50.group(1)) * scale[p50.group(2)] if p50 else 0
print(f"{float(rps.group(1)) if rps else 0:.0f} {bad.group(1) if bad else 0} {cpu_us:.1f} {p50_ms:.3f}")
PY
  rm -f "$out"
}

# utime + stime of process $1, in clock ticks.
proc_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Start a throwaway ClickHouse (benchmarks) with everything under $1, on free
# loopback ports; sets CH_PORT and CH_PID. The caller stops it.
start_scratch_clickhouse() {
  local dir="$1"; shift  # further arguments: more server settings (--https_port=…)
  ensure_clickhouse_installed
  CH_PORT="$(free_port)"
  mkdir -p "$dir"
  (cd "$dir" && exec "$(clickhouse_server_bin)" --config-file=/etc/clickhouse-server/config.xml -- \
    --path="$dir/data/" --tmp_path="$dir/tmp/" --user_files_path="$dir/uf/" \
    --format_schema_path="$dir/fs/" --http_port="$CH_PORT" --tcp_port="$(free_port)" \
    --interserver_http_port="$(free_port)" --listen_host=127.0.0.1 --logger.console=1 \
    --logger.log="$dir/log" --logger.errorlog="$dir/err" "$@") > "$dir.log" 2>&1 &
  CH_PID=$!
  for _ in $(seq 1 300); do ping_clickhouse "$CH_PORT" && return; sleep 0.1; done
  die "ClickHouse did not start (see $dir.log)"
}

# The npm packages the portability tests run (jco), pinned by package-lock.json.
ensure_node_packages() {
  local dir="$ROOT/tests/portability"
  if ! command -v npm >/dev/null 2>&1; then
    [ "${WASMHOUSE_NO_APT:-0}" = 1 ] && die "npm is not installed (and WASMHOUSE_NO_APT=1)"
    say "installing Node.js and npm with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -x "$dir/node_modules/.bin/jco" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "installing the portability tests' npm packages (jco)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
}

# cargo-nextest, which runs the suite's tests side by side (machines of this
# project's kind have it; elsewhere it is built once, beside the suite).
ensure_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  say "installing cargo-nextest (once; a few minutes)"
  # Its own target directory: the suite's build holds the shared one.
  env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked --quiet \
    || say "could not install cargo-nextest: the tests will run one binary at a time"
  return 0
}

# The tools of the /docs and /openapi.json tests: Debian's chromium (driven
# headless over the DevTools protocol) and the reference OpenAPI validator.
ensure_docs_tools() {
  if ! command -v chromium >/dev/null 2>&1 && [ "${WASMHOUSE_NO_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium with apt-get (for the /docs browser test)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || say "chromium could not be installed: the /docs browser test will say it skipped"
  fi
  if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
    say "installing openapi-spec-validator with pip"
    python3 -m pip install --quiet --disable-pip-version-check openapi-spec-validator==0.7.2 \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages openapi-spec-validator==0.7.2
  fi
}

# ClickHouse 26.9 in-process (chdb-core, from PyPI), so the tests check the
# host's SQL on current ClickHouse too, not only on Debian's 18.16 server.
ensure_chdb() {
  command -v python3 >/dev/null 2>&1 || die "python3 is needed for the current-ClickHouse tests"
  if ! python3 -c 'import chdb' >/dev/null 2>&1; then
    say "installing chdb-core (ClickHouse 26.9 in-process) with pip"
    python3 -m pip install --quiet --disable-pip-version-check chdb-core==26.9.0 \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages chdb-core==26.9.0
  fi
}

# componentize-py, at the version sdk-python/pyproject.toml pins, in a virtual
# environment in the target directory (the Python guest and SDK tests build
# with it).
ensure_componentize_py() {
  command -v python3 >/dev/null 2>&1 || die "python3 (3.11 or later) is needed for the Python route tests"
  local venv="$TARGET_DIR/python-tools" version
  version="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["tool"]["wasmhouse"]["componentize-py"])' "$ROOT/sdk-python/pyproject.toml")"
  # A venv's scripts name its interpreter by absolute path: one moved with
  # the target directory (a new cache key) is there but does not run.
  if [ "$(cat "$venv/componentize-py.version" 2>/dev/null)" != "$version" ] \
    || ! "$venv/bin/componentize-py" --version > /dev/null 2>&1; then
    say "installing componentize-py $version with pip (for the Python route tests)"
    python3 -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$version"
    echo -n "$version" > "$venv/componentize-py.version"
  fi
}

# Docker for the container test: started when installed and not running.
# Never fatal: without docker the container test reports itself skipped.
# WASMHOUSE_NO_DOCKER=1 opts out.
ensure_docker_daemon() {
  if [ "${WASMHOUSE_NO_DOCKER:-0}" = 1 ]; then
    say "WASMHOUSE_NO_DOCKER=1: the container test will be skipped"
    return 0
  fi
  if ! command -v docker >/dev/null 2>&1; then
    say "docker is not available: the container test will be skipped"
    return 0
  fi
  docker info >/dev/null 2>&1 && return 0
  if command -v dockerd >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
    say "starting dockerd (log in .wasmhouse/dockerd.log)"
    mkdir -p "$ROOT/.wasmhouse"
    as_root sh -c 'nohup dockerd >"$1" 2>&1 &' sh "$ROOT/.wasmhouse/dockerd.log" || true
    for _ in $(seq 1 30); do
      docker info >/dev/null 2>&1 && return 0
      sleep 1
    done
  fi
  say "the docker daemon does not answer (see .wasmhouse/dockerd.log): the container test will be skipped"
  return 0
}

# Whether the container test can run: docker answers and it is not opted out.
docker_available() {
  [ "${WASMHOUSE_NO_DOCKER:-0}" != 1 ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# The OCI registry the registry tests push to and pull from (distribution's
# docker-registry, Debian's package) and htpasswd for its login.
ensure_registry() {
  local missing=()
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and apt-get is not available (the registry tests need them)"
  say "installing ${missing[*]} with apt-get (for the registry tests)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# systemd-analyze and strace, to check deploy/systemd/wasmhouse.service and
# that its system call filter fits what the host calls (not fatal).
ensure_systemd_analyze() {
  local missing=()
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v strace >/dev/null 2>&1 || missing+=(strace)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "${WASMHOUSE_NO_APT:-0}" = 1 ] && return 0
  command -v apt-get >/dev/null 2>&1 || return 0
  { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; } || return 0
  say "installing ${missing[*]} (to check the systemd unit) with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || say "could not install ${missing[*]}: those unit checks will be skipped"
  return 0
}
