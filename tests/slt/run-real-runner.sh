#!/usr/bin/env bash
# Runs the sqllogictest files of this directory with the real sqllogictest runner
# (sqllogictest-bin 0.29.1) against a real gnomon server, in parallel mode (-j 2: one database
# per test file, created and dropped by the runner), once over the simple query protocol
# (--engine postgres) and once over the extended one (--engine postgres-extended).
#
# Usage: tests/slt/run-real-runner.sh [--release]
#   Builds gnomon (debug, or release with --release) unless GNOMON_BIN names a binary to use.
#   Installs the runner once into <target dir>/sqllogictest-bin (SLT_ROOT overrides the
#   directory; an `sqllogictest` 0.29.1 already there is reused).
# Starts the server on a free loopback port with a temporary data directory and stops it at
# the end; exits non-zero if either run fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

SLT_VERSION=0.29.1
profile=debug
build_flags=()
if [ "${1:-}" = "--release" ]; then
    profile=release
    build_flags=(--release)
fi

target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
slt_root=${SLT_ROOT:-$target_dir/sqllogictest-bin}
slt=$slt_root/bin/sqllogictest
if [ -x "$slt" ] && [ "$("$slt" --version 2>/dev/null)" = "sqllogictest-bin $SLT_VERSION" ]; then
    echo "slt: using $slt"
else
    echo "slt: installing sqllogictest-bin $SLT_VERSION into $slt_root"
    cargo install sqllogictest-bin --version "$SLT_VERSION" --locked --root "$slt_root"
fi

if [ -n "${GNOMON_BIN:-}" ]; then
    gnomon=$GNOMON_BIN
else
    cargo build "${build_flags[@]}" --bin gnomon
    gnomon=$target_dir/$profile/gnomon
fi

work=$(mktemp -d)
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the kernel picks a free port; the server logs the one it got.
"$gnomon" --data-dir "$work/data" --listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
port=
for _ in $(seq 1 600); do
    port=$(sed -n 's/.* gnomon_server: listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
    [ -n "$port" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "slt: gnomon did not start listening; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "slt: gnomon ($gnomon) listening on 127.0.0.1:$port"

status=0
for engine in postgres postgres-extended; do
    echo "== sqllogictest -j 2 --engine $engine"
    if ! "$slt" -j 2 --engine "$engine" --host 127.0.0.1 --port "$port" \
        --user gnomon --db gnomon tests/slt/select*.test; then
        echo "slt: FAILED with --engine $engine" >&2
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "slt: the server's log (last 50 lines):" >&2
    tail -n 50 "$work/server.log" >&2
fi
stop_server
exit "$status"
