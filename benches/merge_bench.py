#!/usr/bin/env python3
"""MERGE reconcile benchmark: Gnomon against PostgreSQL 15 on the same machine (issue 6).

The cluster's reconcile step after a partition, on an accounts table of --accounts rows
(default 1,000,000) from an actions table of --actions rows (default 100,000, ids spread over
the accounts):

    MERGE INTO accounts USING temp_actions ON accounts.id = temp_actions.id
    WHEN MATCHED THEN UPDATE SET balance = balance + delta

Both servers are loaded identically (PostgreSQL also gets ANALYZE), then the MERGE runs
--rounds times on each, alternating the servers, each run in its own autocommit statement
through psql; the wall time of the psql call is measured (connection set-up included, a few
ms). The script prints the median seconds and rows/s per server and the ratio, and checks that
both servers end with the same sum of balances.

Servers are started exactly as benches/side_by_side.py starts them (fsync on, throwaway dirs,
127.0.0.1 only). Python 3.11 standard library only.

    python3 benches/merge_bench.py --gnomon-bin target/release/gnomon
    python3 benches/merge_bench.py --accounts 100000 --actions 10000 --rounds 3   # quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import side_by_side as sbs  # noqa: E402

MERGE_SQL = (
    "MERGE INTO accounts USING temp_actions ON accounts.id = temp_actions.id "
    "WHEN MATCHED THEN UPDATE SET balance = balance + delta"
)


def run(server: sbs.Server, sql: str, timeout: float = 1800) -> str:
    r = server.psql(sql, timeout=timeout)
    if r.returncode != 0:
        raise sbs.BenchError(f"{server.label}: `{sql[:80]}` failed: {r.stderr.strip()}")
    return r.stdout.strip()


def load(server: sbs.Server, accounts: int, actions: int) -> None:
    sbs.log(f"{server.label}: loading {accounts} accounts and {actions} actions")
    run(server, "DROP TABLE IF EXISTS accounts")
    run(server, "DROP TABLE IF EXISTS temp_actions")
    run(server, "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
    run(server, "CREATE TABLE temp_actions (id int, delta bigint)")
    chunk = 100_000
    for lo in range(1, accounts + 1, chunk):
        hi = min(lo + chunk - 1, accounts)
        run(server, f"INSERT INTO accounts SELECT g, 0 FROM generate_series({lo}, {hi}) g")
    step = max(accounts // actions, 1)
    run(server, f"INSERT INTO temp_actions SELECT g * {step}, 1 + g % 7 "
                f"FROM generate_series(1, {actions}) g")
    if server.label == sbs.PG:
        run(server, "ANALYZE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--actions", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pg-bin", type=Path, default=sbs.DEFAULT_PG_BIN)
    ap.add_argument("--gnomon-bin", type=Path, default=sbs.DEFAULT_GNOMON_BIN)
    args = ap.parse_args()
    sbs.ensure_gnomon_binary(args.gnomon_bin, rebuild=False)
    servers: list[sbs.Server] = []
    with tempfile.TemporaryDirectory(prefix="gnomon-merge-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # PostgreSQL runs as another user and must reach its directory
        try:
            run_as = sbs.bench_system_user()
            pg_root = root / "pg"
            pg_root.mkdir()
            if run_as:
                import shutil
                shutil.chown(pg_root, user=run_as)
            pg = sbs.PostgresServer(args.pg_bin, pg_root, run_as)
            gn_root = root / "gn"
            gn_root.mkdir()
            gn = sbs.GnomonServer(args.gnomon_bin, gn_root)
            servers = [pg, gn]
            for s in servers:
                s.start()
                load(s, args.accounts, args.actions)
            times: dict[str, list[float]] = {s.label: [] for s in servers}
            for r in range(args.rounds):
                order = servers if r % 2 == 0 else list(reversed(servers))
                for s in order:
                    t0 = time.monotonic()
                    out = run(s, MERGE_SQL)
                    dt = time.monotonic() - t0
                    times[s.label].append(dt)
                    sbs.log(f"round {r + 1} {s.label}: {out or 'MERGE'} in {dt:.3f} s")
            sums = {s.label: run(s, "SELECT sum(balance) FROM accounts") for s in servers}
            print()
            print(f"MERGE of {args.actions} actions into {args.accounts} accounts, "
                  f"median of {args.rounds} rounds (wall time of one psql call, fsync on)")
            print(f"{'server':<12}{'median s':>10}{'rows/s':>12}   all runs (s)")
            med = {}
            for s in servers:
                m = statistics.median(times[s.label])
                med[s.label] = m
                runs = ", ".join(f"{t:.3f}" for t in times[s.label])
                print(f"{s.label:<12}{m:>10.3f}{args.actions / m:>12.0f}   {runs}")
            print(f"Gnomon/PostgreSQL throughput ratio: {med[sbs.PG] / med[sbs.GN]:.2f}x")
            print(f"sum(balance): PostgreSQL {sums[sbs.PG]}, Gnomon {sums[sbs.GN]}")
            if sums[sbs.PG] != sums[sbs.GN]:
                print("MISMATCH: the servers disagree on the result", file=sys.stderr)
                return 1
            return 0
        except sbs.BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        finally:
            for s in servers:
                try:
                    s.stop()
                except Exception as e:  # noqa: BLE001 (always try to stop the other one)
                    print(f"stopping {s.label}: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
