#!/bin/bash
# Server instructions per `pgbench -i` step (issue 4): runs a gnomon binary under callgrind,
# then `pgbench -i -I <step> -s SCALE` for each step d, t, g, v, p in turn, dumping the
# server's counters after each (callgrind_control), and prints instructions per step and per
# pgbench_accounts row. Instruction counts are repeatable on a busy machine; the wall-clock
# figures it prints are not (valgrind slows the server ~50x).
#
#   benches/init_steps.sh target/release/gnomon 1 /tmp/init-steps
#
# Needs valgrind (callgrind_control) and PostgreSQL 15's pgbench.
set -eu
BIN=$1; SCALE=${2:-1}; OUT=${3:-/tmp/gnomon-init-steps}
PGB=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
rm -rf "$OUT"; mkdir -p "$OUT/data"
PORT=$((20000 + RANDOM % 20000))
valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$OUT/cg.out.%p" "$BIN" --data-dir "$OUT/data" \
    --listen "127.0.0.1:$PORT" 2>"$OUT/server.log" &
VPID=$!
trap 'kill $VPID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    "$PGB" -h 127.0.0.1 -p "$PORT" -U gnomon -i -I d gnomon >/dev/null 2>&1 && break
    sleep 1
done
callgrind_control -z "$VPID" >/dev/null
rows=$((SCALE * 100000))
for step in d t g v p; do
    start=$(date +%s.%N)
    "$PGB" -h 127.0.0.1 -p "$PORT" -U gnomon -i -I "$step" -s "$SCALE" gnomon \
        >"$OUT/step-$step.log" 2>&1 || echo "step $step failed (see $OUT/step-$step.log)"
    end=$(date +%s.%N)
    callgrind_control -d "step-$step" "$VPID" >/dev/null
    dump=$(grep -l "^desc: Trigger: dump step-$step\$" "$OUT"/cg.out.* | head -1)
    ir=$(awk '/^summary:/ {print $2}' "$dump")
    printf '%s  %14d instructions  %8.0f per account row  (wall under valgrind %.1f s)\n' \
        "$step" "$ir" "$(echo "$ir / $rows" | bc -l)" "$(echo "$end - $start" | bc -l)"
done
