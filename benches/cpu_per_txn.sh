#!/usr/bin/env bash
# Server cost per pgbench transaction, repeatably (issue #4): instructions under callgrind, or
# context switches / syscalls / futex / fdatasync calls under perf stat, plus group-commit fill
# from /metrics. Wall-clock figures on a shared machine mean nothing; these counts do.
#
#   benches/cpu_per_txn.sh cg     tpcb     8 250     # callgrind: instructions per transaction
#   benches/cpu_per_txn.sh native transfer 16 1000   # perf stat: switches, syscalls per transaction
#
# usage: cpu_per_txn.sh cg|native select|tpcb|transfer CLIENTS TXNS_PER_CLIENT
# env:   GNOMON_BIN (default target/release/gnomon), WORK (default /tmp/gnomon-cpu), SCALE (10),
#        PREFILL (default 0: none), CACHE_SIM (default 0; 1: callgrind also simulates the caches,
#        first level and a 2 MiB last level, and prints misses per transaction)
#
# The first run loads a scale-SCALE data dir (pgbench -i) into $WORK/data0 and keeps it; each
# run copies it, starts the server (under valgrind or perf), warms up with 20 transactions per
# client, then counts only the measured `pgbench -M prepared -t N` run (callgrind_control -z /
# -d around it; perf counts the server's whole life, the start-up being small against N).
# The server is killed with SIGKILL, so no shutdown checkpoint is counted. PREFILL=N first
# runs N TPC-B transactions (8 clients, native server) on a copy of data0 and kills it with
# SIGKILL, kept as $WORK/data-prefill-N: the measured server replays that WAL into its memtable,
# as a server that has been taking writes since its last checkpoint holds it (a TPC-B
# transaction writes ~295 WAL bytes and 4 versions: N = 100000 is ~30 MB, 400K versions, about
# half of what the default 64MB checkpoint_wal_size lets in). Needs valgrind,
# perf, pgbench, psql, curl; the callgrind file stays in $WORK/run for callgrind_annotate.
set -euo pipefail
MODE=$1 WL=$2 C=$3 N=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GNOMON_BIN:-$ROOT/target/release/gnomon}
WORK=${WORK:-/tmp/gnomon-cpu}
SCALE=${SCALE:-10}
mkdir -p "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 600); do psql -h 127.0.0.1 -p "$1" -U gnomon -c 'select 1' gnomon >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
echo 'fsync = true' > "$WORK/gnomon.toml"
cat > "$WORK/transfer.sql" <<'SQL'
\set naccounts 100000 * :scale
\set aid1 random(1, :naccounts)
\set aid2 1 + (:aid1 + random(0, :naccounts - 2)) % :naccounts
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid1;
UPDATE pgbench_accounts SET abalance = abalance - :delta WHERE aid = :aid2;
END;
SQL
if [ ! -d "$WORK/data0" ]; then
  PORT=$(free_port)
  "$BIN" --config "$WORK/gnomon.toml" --data-dir "$WORK/data0" --listen "127.0.0.1:$PORT" >"$WORK/load.log" 2>&1 &
  LOADER=$!
  wait_up "$PORT"
  pgbench -h 127.0.0.1 -p "$PORT" -U gnomon -i -I dtgvp -s "$SCALE" -q gnomon >/dev/null 2>&1
  kill -TERM "$LOADER"; wait "$LOADER" || true
fi
PREFILL=${PREFILL:-0}
DATA=$WORK/data0
if [ "$PREFILL" -gt 0 ]; then
  DATA=$WORK/data-prefill-$PREFILL
  if [ ! -d "$DATA" ]; then
    rm -rf "$DATA.tmp"; cp -a "$WORK/data0" "$DATA.tmp"
    PORT=$(free_port)
    "$BIN" --config "$WORK/gnomon.toml" --data-dir "$DATA.tmp" --listen "127.0.0.1:$PORT" >"$WORK/prefill.log" 2>&1 &
    FILLER=$!
    wait_up "$PORT"
    pgbench -h 127.0.0.1 -p "$PORT" -U gnomon -n -M prepared -c 8 -j 2 -t $((PREFILL / 8)) gnomon >/dev/null 2>&1
    kill -9 "$FILLER"; wait "$FILLER" || true
    mv "$DATA.tmp" "$DATA"
  fi
fi
RUN=$WORK/run; rm -rf "$RUN"; mkdir -p "$RUN"; cp -a "$DATA" "$RUN/data"
PORT=$(free_port); HPORT=$(free_port)
case $WL in
  select) ARGS=(-S) ;; tpcb) ARGS=() ;; transfer) ARGS=(-f "$WORK/transfer.sql") ;;
  *) echo "workload: select | tpcb | transfer" >&2; exit 2 ;;
esac
SRV=("$BIN" --config "$WORK/gnomon.toml" --data-dir "$RUN/data" --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HPORT")
if [ "$MODE" = native ]; then
  perf stat -x, -o "$RUN/perf.txt" -e context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_fdatasync -- "${SRV[@]}" >"$RUN/server.log" 2>&1 &
else
  CG=(--tool=callgrind --callgrind-out-file="$RUN/callgrind.out")
  [ "${CACHE_SIM:-0}" = 1 ] && CG+=(--cache-sim=yes --LL=2097152,16,64)
  valgrind "${CG[@]}" "${SRV[@]}" >"$RUN/server.log" 2>&1 &
fi
WRAP=$!
GPID=""
trap '[ -n "$GPID" ] && kill -9 "$GPID" 2>/dev/null; wait "$WRAP" 2>/dev/null || true' EXIT
wait_up "$PORT"
# NB: perf stat's child is the server; its process name is the binary's (at most 15 chars).
if [ "$MODE" = native ]; then GPID=$(pgrep -P "$WRAP" -x "$(basename "$BIN" | cut -c1-15)"); else GPID=$WRAP; fi
J=$(( C < 2 ? C : 2 ))
bench() { pgbench -h 127.0.0.1 -p "$PORT" -U gnomon -n -M prepared -s "$SCALE" -c "$C" -j "$J" -t "$1" "${ARGS[@]}" gnomon; }
bench 20 >/dev/null 2>&1
metric() { curl -s "http://127.0.0.1:$HPORT/metrics" | awk -v k="$1" '$1==k{print $2}'; }
R0=$(metric gnomon_wal_records_total); F0=$(metric gnomon_wal_fsyncs_total)
[ "$MODE" = cg ] && callgrind_control -z "$GPID" >/dev/null 2>&1
bench "$N" > "$RUN/pgbench.txt" 2>&1
[ "$MODE" = cg ] && callgrind_control -d "$GPID" >/dev/null 2>&1
R1=$(metric gnomon_wal_records_total); F1=$(metric gnomon_wal_fsyncs_total)
kill -9 "$GPID"; wait "$WRAP" 2>/dev/null || true; GPID=""
TX=$((C * N))
grep -E "actually processed|failed" "$RUN/pgbench.txt"
[ $((F1 - F0)) -gt 0 ] && echo "commit records per fdatasync: $(python3 -c "print(round(($R1-$R0)/($F1-$F0),2))")"
if [ "$MODE" = native ]; then
  grep -v '^#' "$RUN/perf.txt" | grep . | awk -F, -v tx="$TX" '{printf "%s per transaction: %.2f\n", $3, $1/tx}'
else
  OUT=$(ls "$RUN"/callgrind.out.* | tail -1)
  TOTAL=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  echo "server instructions per transaction: $((TOTAL / TX))   (profile: $OUT)"
  if [ "${CACHE_SIM:-0}" = 1 ]; then
    callgrind_annotate "$OUT" 2>/dev/null | awk -v tx="$TX" '
      /^Events shown:/ { for (i = 3; i <= NF; i++) name[i - 2] = $i }
      /PROGRAM TOTALS/ { n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9,]+$/) { gsub(",", "", $i); n++
                           if (name[n] ~ /mr|mw/) printf "%s per transaction: %.1f\n", name[n], $i / tx } }'
  fi
fi
