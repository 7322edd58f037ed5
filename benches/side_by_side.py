#!/usr/bin/env python3
"""Side-by-side pgbench benchmark: Gnomon against PostgreSQL 15 on the same machine.

One run of this script:

  1. creates a throwaway PostgreSQL 15 cluster (initdb, fsync on, shared_buffers 512MB,
     listening on 127.0.0.1 on a free port, unix sockets inside the temp dir) and starts a
     Gnomon server (release build, fsync on, its own temp data dir, 127.0.0.1 on a free port);
  2. loads both with the same `pgbench -i -s SCALE`;
  3. runs every workload on both servers, alternating servers (and the order of the pair
     each round, so slow drift of the machine hits both alike), for several rounds;
  4. prints a table of median tps, average latency and P99 latency per workload and server,
     with the Gnomon/PostgreSQL ratios, and writes the same figures as markdown and as an
     SVG chart into benches/results/;
  5. always stops both servers and deletes the temp dirs (unless --keep), also on Ctrl-C.

Only 127.0.0.1 traffic. Python 3.11 standard library only. See benches/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
DEFAULT_GNOMON_BIN = REPO_ROOT / "target" / "release" / "gnomon"
DEFAULT_OUT_DIR = REPO_ROOT / "benches" / "results"
PG_SUPERUSER = "postgres"
PG_DATABASE = "postgres"
GNOMON_USER = "gnomon"
GNOMON_DATABASE = "gnomon"
BENCH_SYSTEM_USER = "gnomonbench"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

PG = "PostgreSQL"
GN = "Gnomon"

# Custom pgbench scripts. `:scale` is set by `-s` for custom scripts.
TRANSFER_SCRIPT = """\
\\set naccounts 100000 * :scale
\\set aid1 random(1, :naccounts)
\\set aid2 1 + (:aid1 + random(0, :naccounts - 2)) % :naccounts
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid1;
UPDATE pgbench_accounts SET abalance = abalance - :delta WHERE aid = :aid2;
END;
"""
# aid2 = 1 + (aid1 + k) % n with k in [0, n-2] is uniform over every account except aid1.

HOT_ROW_SCRIPT = """\
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1;
END;
"""


@dataclass(frozen=True)
class Workload:
    """One pgbench workload: a name, a client count and how to select the transaction script."""

    name: str
    description: str
    clients: int
    builtin: str | None = None  # "tpcb-like" or "select-only"
    script: str | None = None  # body of a custom script (-f)

    @property
    def threads(self) -> int:
        return min(self.clients, 2)


WORKLOADS = [
    Workload("tpcb-1", "TPC-B (builtin), 1 client", 1, builtin="tpcb-like"),
    Workload("tpcb-8", "TPC-B (builtin), 8 clients", 8, builtin="tpcb-like"),
    Workload("tpcb-32", "TPC-B (builtin), 32 clients", 32, builtin="tpcb-like"),
    Workload("select-8", "select-only (-S), 8 clients", 8, builtin="select-only"),
    Workload("transfer-16", "transfer: 2 UPDATEs on random accounts, 16 clients", 16, script=TRANSFER_SCRIPT),
    Workload("hotrow-16", "hot row: 16 clients UPDATE aid = 1", 16, script=HOT_ROW_SCRIPT),
]
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}


class BenchError(Exception):
    """A failure with a message meant for the person running the benchmark."""


class Interrupted(Exception):
    """SIGTERM arrived; unwinds like Ctrl-C so every `finally` runs."""


# --------------------------------------------------------------------------------------------
# Small helpers


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def tail(text: str, lines: int = 25) -> str:
    rows = text.rstrip().splitlines()
    return "\n".join("    " + r for r in rows[-lines:]) if rows else "    (empty)"


def file_tail(path: Path, lines: int = 25) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError as e:
        return f"    (cannot read {path}: {e})"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def clean_env() -> dict[str, str]:
    """The environment for client programs, without PG* variables that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def percentile(sorted_xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_xs:
        return None
    rank = max(1, -(-len(sorted_xs) * p // 100))  # ceil(n * p / 100)
    return sorted_xs[int(rank) - 1]


# --------------------------------------------------------------------------------------------
# Servers


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU (user + system) of process `pid`, of its exited and reaped children, and of its live
    children: a PostgreSQL postmaster's backends end up in its cutime/cstime once reaped."""
    st = proc_stat(pid)
    if st is None:
        return None
    # utime, stime, cutime, cstime are fields 14-17 of stat, [11..14] here.
    ticks = sum(int(x) for x in st[11:15])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        child = proc_stat(int(entry.name))
        if child is not None and child[1] == str(pid):
            ticks += int(child[11]) + int(child[12])
    return ticks / CLK_TCK


class Server:
    """A server under test: knows how to start, stop, and be reached by pgbench/psql."""

    label: str
    port: int
    user: str
    database: str

    def conn_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]

    def psql(self, sql: str, timeout: float = 30) -> subprocess.CompletedProcess:
        cmd = ["psql", *self.conn_args(), "-d", self.database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", f"psql timed out after {timeout}s")

    log_path: Path

    def alive(self) -> bool:
        raise NotImplementedError

    def cpu_seconds(self) -> float | None:
        """User + system CPU the server has used so far (all its threads and processes)."""
        raise NotImplementedError

    def exit_note(self) -> str:
        """How the server ended, if we know."""
        return ""

    def wait_ready(self) -> None:
        log_path = self.log_path
        deadline = time.monotonic() + START_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"{self.label} exited during startup{self.exit_note()}; "
                                 f"log tail ({log_path}):\n{file_tail(log_path)}")
            if port_open(self.port):
                r = self.psql("SELECT 1", timeout=10)
                if r.returncode == 0:
                    return
                last = r.stderr.strip()
            time.sleep(0.3)
        raise BenchError(
            f"{self.label} did not accept `SELECT 1` on 127.0.0.1:{self.port} within {START_TIMEOUT_S:.0f}s"
            + (f" (last psql error: {last})" if last else "")
            + f"; log tail ({log_path}):\n{file_tail(log_path)}"
        )


class PostgresServer(Server):
    label = PG

    def __init__(self, pg_bin: Path, root: Path, run_as: str | None):
        self.pg_bin = pg_bin
        self.root = root  # owned by run_as
        self.data = root / "data"
        self.sock = root / "sock"
        self.log_path = root / "postgres.log"
        self.run_as = run_as
        self.port = free_port()
        self.user = PG_SUPERUSER
        self.database = PG_DATABASE
        self.started = False
        self.settings = {
            "fsync": "on",
            "synchronous_commit": "on",
            "shared_buffers": "512MB",
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sock}'",
            "max_connections": "100",
        }

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def start(self) -> None:
        if not (self.pg_bin / "initdb").exists():
            raise BenchError(f"no initdb in {self.pg_bin} (install postgresql-15 or pass --pg-bin)")
        self.sock.mkdir(exist_ok=True)
        if self.run_as:
            shutil.chown(self.sock, user=self.run_as)
        log(f"{PG}: initdb in {self.data}")
        r = subprocess.run(
            self._cmd(str(self.pg_bin / "initdb"), "-D", str(self.data), "-U", PG_SUPERUSER,
                      "--auth=trust", "--encoding=UTF8", "--no-locale"),
            capture_output=True, text=True, env=clean_env(),
        )
        if r.returncode != 0:
            raise BenchError(f"{PG}: initdb failed (exit {r.returncode}):\n{tail(r.stdout + r.stderr)}")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# added by benches/side_by_side.py\n")
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")
        log(f"{PG}: starting on 127.0.0.1:{self.port}")
        self.started = True  # from here on, stop() must run even if start fails half-way
        r = subprocess.run(
            self._cmd(str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                      "-w", "-t", str(int(START_TIMEOUT_S)), "start"),
            capture_output=True, text=True, env=clean_env(), start_new_session=True,
        )
        if r.returncode != 0:
            raise BenchError(
                f"{PG}: pg_ctl start failed (exit {r.returncode}): {r.stderr.strip()}\n"
                f"log tail ({self.log_path}):\n{file_tail(self.log_path)}"
            )
        self.wait_ready()

    def alive(self) -> bool:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            # /proc/PID/stat is "pid (comm) state ..."; a killed, unreaped postmaster is a zombie (Z).
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
        except (OSError, ValueError, IndexError):
            return False

    def cpu_seconds(self) -> float | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return tree_cpu_seconds(pid)

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if not self.alive():
            log(f"{PG}: postmaster is not running; nothing to stop")
            return
        log(f"{PG}: stopping")
        try:
            r = subprocess.run(
                self._cmd(str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                          "-t", str(int(STOP_TIMEOUT_S)), "stop"),
                capture_output=True, text=True, env=clean_env(), start_new_session=True,
                timeout=STOP_TIMEOUT_S + 10,
            )
            if r.returncode != 0 and (self.data / "postmaster.pid").exists():
                log(f"{PG}: pg_ctl stop failed: {r.stderr.strip()}; sending SIGQUIT")
                self._kill_postmaster(signal.SIGQUIT)
        except subprocess.TimeoutExpired:
            self._kill_postmaster(signal.SIGKILL)

    def _kill_postmaster(self, sig: signal.Signals) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, sig)
        except (OSError, ValueError) as e:
            log(f"{PG}: could not signal postmaster: {e}")

    def describe(self) -> dict[str, str]:
        out = {"binary": str(self.pg_bin / "postgres"), "run as": self.run_as or pwd.getpwuid(os.getuid()).pw_name}
        r = self.psql("SHOW server_version")
        out["version"] = r.stdout.strip() if r.returncode == 0 else "?"
        for k in ("fsync", "synchronous_commit", "shared_buffers", "wal_sync_method", "max_wal_size",
                  "checkpoint_timeout", "wal_level", "max_connections"):
            r = self.psql(f"SHOW {k}")
            out[k] = r.stdout.strip() if r.returncode == 0 else "?"
        out["listen"] = f"127.0.0.1:{self.port} (unix sockets in {self.sock})"
        out["data dir"] = str(self.data)
        return out


class GnomonServer(Server):
    label = GN

    def __init__(self, binary: Path, root: Path):
        self.binary = binary
        self.root = root
        self.data = root / "data"
        self.config = root / "gnomon.toml"
        self.log_path = root / "gnomon.log"
        self.port = free_port()
        self.user = GNOMON_USER
        self.database = GNOMON_DATABASE
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def start(self) -> None:
        if not self.binary.exists():
            raise BenchError(f"{GN}: no binary at {self.binary}")
        # fsync is on by default; say so explicitly so a changed default cannot skew the comparison.
        self.config.write_text("fsync = true\n")
        log(f"{GN}: starting {self.binary} on 127.0.0.1:{self.port}")
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(self.binary), "--config", str(self.config), "--data-dir", str(self.data),
             "--listen", f"127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            env=clean_env(), start_new_session=True,
        )
        self.wait_ready()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float | None:
        return tree_cpu_seconds(self.proc.pid) if self.proc is not None else None

    def exit_note(self) -> str:
        return f" with status {self.proc.returncode}" if self.proc is not None and self.proc.poll() is not None else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            log(f"{GN}: stopping")
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"{GN}: did not exit after SIGTERM; sending SIGKILL")
                proc.kill()
                proc.wait()
        else:
            log(f"{GN}: had already exited with status {proc.returncode}")
        if self._log_file:
            self._log_file.close()

    def describe(self) -> dict[str, str]:
        out = {"binary": str(self.binary), "commit": git_commit(), "fsync": "true (gnomon.toml)",
               "listen": f"127.0.0.1:{self.port}", "data dir": str(self.data),
               "run as": pwd.getpwuid(os.getuid()).pw_name}
        r = self.psql("SHOW server_version")
        out["version"] = r.stdout.strip() if r.returncode == 0 else "?"
        return out


def git_commit() -> str:
    r = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "?"


def ensure_gnomon_binary(binary: Path, rebuild: bool) -> None:
    if binary.exists() and not rebuild:
        if "release" not in binary.parts:
            log(f"{GN}: warning: {binary} is not a release build; its figures say little about Gnomon")
        return
    if binary != DEFAULT_GNOMON_BIN:
        if not binary.exists():
            raise BenchError(f"{GN}: no binary at {binary}")
        return
    log(f"{GN}: building with `cargo build --release` in {REPO_ROOT} (this can take minutes)")
    r = subprocess.run(["cargo", "build", "--release", "--bin", "gnomon"], cwd=REPO_ROOT)
    if r.returncode != 0 or not binary.exists():
        raise BenchError(f"{GN}: `cargo build --release` failed (exit {r.returncode})")


def bench_system_user() -> str | None:
    """The unprivileged user that runs PostgreSQL when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in (BENCH_SYSTEM_USER, "postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    log(f"creating system user {BENCH_SYSTEM_USER} (useradd -r -M) to run PostgreSQL")
    r = subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", BENCH_SYSTEM_USER],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"useradd {BENCH_SYSTEM_USER} failed: {r.stderr.strip()}")
    return BENCH_SYSTEM_USER


# --------------------------------------------------------------------------------------------
# pgbench


@dataclass
class RunResult:
    """One pgbench run of one workload on one server."""

    tps: float | None = None
    latency_avg_ms: float | None = None
    latency_p99_ms: float | None = None
    transactions: int = 0
    failed: int = 0
    retried: int = 0
    # CPU seconds (user + system) of the server and of pgbench during the run.
    server_cpu_s: float | None = None
    pgbench_cpu_s: float | None = None
    error: str | None = None

    def per_txn_us(self, seconds: float | None) -> float | None:
        if seconds is None or not self.transactions:
            return None
        return seconds * 1e6 / self.transactions


@dataclass
class Cell:
    """All rounds of one workload on one server."""

    runs: list[RunResult] = field(default_factory=list)
    error: str | None = None

    def ok_runs(self) -> list[RunResult]:
        return [r for r in self.runs if r.error is None]

    def tps(self) -> float | None:
        return median([r.tps for r in self.ok_runs() if r.tps is not None])

    def latency_avg(self) -> float | None:
        return median([r.latency_avg_ms for r in self.ok_runs() if r.latency_avg_ms is not None])

    def p99(self) -> float | None:
        return median([r.latency_p99_ms for r in self.ok_runs() if r.latency_p99_ms is not None])

    def server_cpu_us(self) -> float | None:
        """Median server CPU per transaction, µs."""
        return median([v for r in self.ok_runs() if (v := r.per_txn_us(r.server_cpu_s)) is not None])

    def pgbench_cpu_us(self) -> float | None:
        """Median pgbench CPU per transaction, µs."""
        return median([v for r in self.ok_runs() if (v := r.per_txn_us(r.pgbench_cpu_s)) is not None])

    def failed(self) -> int:
        return sum(r.failed for r in self.runs)

    def retried(self) -> int:
        return sum(r.retried for r in self.runs)


def first_error(stderr: str) -> str:
    """The first line of pgbench's stderr that names an error, for one-line summaries."""
    return next((ln.strip() for ln in stderr.splitlines() if "error" in ln.lower()), "no error message")


def pgbench_supports(flag: str) -> bool:
    r = subprocess.run(["pgbench", "--help"], capture_output=True, text=True)
    return flag in r.stdout


def pgbench_init(server: Server, scale: int, init_steps: str, work: Path) -> float:
    """Runs `pgbench -i -I STEPS`; returns its wall time in seconds."""
    log(f"{server.label}: pgbench -i -I {init_steps} -s {scale}")
    t0 = time.monotonic()
    limit = 120 + 60 * scale
    try:
        r = subprocess.run(
            ["pgbench", *server.conn_args(), "-i", "-I", init_steps, "-s", str(scale), "-q", server.database],
            capture_output=True, text=True, env=clean_env(), cwd=work, timeout=limit,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{server.label}: pgbench -i did not finish within {limit}s") from None
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"{server.label}: pgbench -i failed (exit {r.returncode}): {first_error(r.stderr)}\n"
                         f"stderr tail:\n{tail(r.stderr)}")
    # pgbench -i keeps going after a failed VACUUM; say so rather than hide it.
    for line in r.stderr.splitlines():
        if "error" in line.lower() or "warning" in line.lower():
            log(f"{server.label}: pgbench -i: {line.strip()}")
    return elapsed


def parse_summary(out: str) -> dict[str, float]:
    patterns = {
        "tps": r"^tps = ([\d.]+) \(without initial connection time\)",
        "latency_avg_ms": r"^latency average = ([\d.]+) ms",
        "transactions": r"^number of transactions actually processed: (\d+)",
        "failed": r"^number of failed transactions: (\d+)",
        "retried": r"^number of transactions retried: (\d+)",
    }
    found = {}
    for key, pat in patterns.items():
        m = re.search(pat, out, re.MULTILINE)
        if m:
            found[key] = float(m.group(1))
    return found


def latencies_from_logs(prefix: Path) -> tuple[float | None, float | None]:
    """(mean, P99) latency in ms over the successful transactions in pgbench's per-transaction
    logs (`-l`), which are deleted after reading.

    Each line is `client_id transaction_no time script_no time_epoch time_us [...]` where
    `time` is the transaction's latency in microseconds, or `failed`/`skipped`."""
    latencies: list[float] = []
    for path in prefix.parent.glob(prefix.name + ".*"):
        with open(path) as f:
            for line in f:
                parts = line.split(maxsplit=3)
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]))
        path.unlink()
    if not latencies:
        return None, None
    latencies.sort()
    return sum(latencies) / len(latencies) / 1000.0, percentile(latencies, 99) / 1000.0


def run_pgbench(server: Server, w: Workload, args: argparse.Namespace, work: Path, tag: str,
                max_tries: bool) -> RunResult:
    cmd = ["pgbench", *server.conn_args(), "-M", "prepared", "-c", str(w.clients), "-j", str(w.threads),
           "-T", str(args.duration)]
    if max_tries:
        cmd.append("--max-tries=10")
    if w.builtin:
        cmd += ["-b", w.builtin]
    else:
        script = work / f"{w.name}.sql"
        script.write_text(w.script or "")
        cmd += ["-f", str(script), "-s", str(args.scale)]
    prefix = work / "txlog" / tag
    prefix.parent.mkdir(exist_ok=True)
    for stale in prefix.parent.glob(prefix.name + ".*"):
        stale.unlink()
    cmd += ["-l", f"--log-prefix={prefix}", server.database]
    cpu0 = server.cpu_seconds()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), cwd=work,
                           timeout=args.duration * 3 + 120)
    except subprocess.TimeoutExpired:
        return RunResult(error=f"pgbench did not finish within {args.duration * 3 + 120}s")
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # NB: PostgreSQL's backends exit with pgbench; give the postmaster a moment to reap them
    # (their CPU reaches its cutime/cstime then).
    time.sleep(0.5)
    cpu1 = server.cpu_seconds()
    server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    pgbench_cpu = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    summary = parse_summary(r.stdout)
    if r.returncode != 0 or "tps" not in summary:
        for stale in prefix.parent.glob(prefix.name + ".*"):
            stale.unlink()
        return RunResult(error=f"pgbench exit {r.returncode}: {first_error(r.stderr)}\n"
                               f"stderr tail:\n{tail(r.stderr, 15)}")
    avg, p99 = latencies_from_logs(prefix)
    return RunResult(
        tps=summary["tps"],
        # pgbench's own "latency average" of a -T run is duration * clients / transactions,
        # which counts time spent on failed tries; the log's mean is of completed transactions.
        latency_avg_ms=avg if avg is not None else summary.get("latency_avg_ms"),
        latency_p99_ms=p99,
        transactions=int(summary.get("transactions", 0)),
        failed=int(summary.get("failed", 0)),
        retried=int(summary.get("retried", 0)),
        server_cpu_s=server_cpu,
        pgbench_cpu_s=pgbench_cpu,
    )


# --------------------------------------------------------------------------------------------
# Machine description


def machine_info(path: Path) -> dict[str, str]:
    info = {"host": platform.node(), "cpus (nproc)": str(os.cpu_count())}
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
        info["cpu"] = model
    except OSError:
        pass
    try:
        kb = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal:"))
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        info["memory"] = "?"
    info["kernel"] = f"{platform.system()} {platform.release()}"
    info["disk"] = disk_info(path)
    r = subprocess.run(["pgbench", "--version"], capture_output=True, text=True)
    info["pgbench"] = r.stdout.strip()
    info["python"] = platform.python_version()
    return info


def disk_info(path: Path) -> str:
    r = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", str(path)], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.split():
        return "?"
    source, fstype = (r.stdout.split() + ["?"])[:2]
    desc = f"{source} ({fstype})"
    dev = os.path.basename(source)
    lb = subprocess.run(["lsblk", "-dn", "-o", "MODEL,ROTA,SIZE", source], capture_output=True, text=True)
    if lb.returncode == 0 and lb.stdout.strip():
        fields = lb.stdout.split()
        size, rota = fields[-1], fields[-2]
        model = " ".join(fields[:-2])
        kind = "rotational" if rota == "1" else "non-rotational"
        desc += f", {size}, {kind}" + (f", {model}" if model else "")
        if dev.startswith("vd") or dev.startswith("xvd"):
            desc += " (virtual disk)"
    return desc


# --------------------------------------------------------------------------------------------
# Report: text table, markdown, SVG


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def ratio(g: float | None, p: float | None) -> float | None:
    return g / p if g is not None and p else None


def cell_status(c: Cell | None) -> str | None:
    """None if the cell has figures, else a short word for the table."""
    if c is None:
        return "skipped"
    if c.error:
        return "error"
    if not c.ok_runs():
        return "not run"  # interrupted before its first run finished
    return None


def table_rows(workloads: list[Workload], cells: dict[tuple[str, str], Cell], servers: list[str]) -> list[list[str]]:
    header = ["workload", "clients"]
    for s in servers:
        header += [f"{s} tps", f"{s} avg ms", f"{s} p99 ms"]
    both = PG in servers and GN in servers
    if both:
        header += ["tps G/PG", "p99 G/PG"]
    header += ["failed/retried"]
    rows = [header]
    for w in workloads:
        row = [w.name, str(w.clients)]
        vals = {}
        notes = []
        for s in servers:
            c = cells.get((w.name, s))
            status = cell_status(c)
            if status:
                row += [status, "", ""]
            else:
                row += [fmt(c.tps()), fmt(c.latency_avg(), 2), fmt(c.p99(), 2)]
                vals[s] = c
            if c is not None and (c.failed() or c.retried()):
                notes.append(f"{s[0]}: {c.failed()}/{c.retried()}")
        if both:
            if PG in vals and GN in vals:
                row += [fmt(ratio(vals[GN].tps(), vals[PG].tps()), 2) + "x",
                        fmt(ratio(vals[GN].p99(), vals[PG].p99()), 2) + "x"]
            else:
                row += ["-", "-"]
        row.append(", ".join(notes) or "0")
        rows.append(row)
    return rows


def cpu_rows(workloads: list[Workload], cells: dict[tuple[str, str], Cell], servers: list[str]) -> list[list[str]]:
    """CPU per transaction (µs, medians): each server's and pgbench's against it."""
    header = ["workload", "clients"]
    for s in servers:
        header += [f"{s} server µs/txn", f"pgbench µs/txn ({s})"]
    rows = [header]
    for w in workloads:
        row = [w.name, str(w.clients)]
        for s in servers:
            c = cells.get((w.name, s))
            if cell_status(c):
                row += ["-", "-"]
            else:
                row += [fmt(c.server_cpu_us()), fmt(c.pgbench_cpu_us())]
        rows.append(row)
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(v.rjust(widths[i]) if i > 0 else v.ljust(widths[i]) for i, v in enumerate(r)))
        if n == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def md_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    out += ["| " + " | ".join(v.replace("|", "\\|") for v in r) + " |" for r in rows[1:]]
    return "\n".join(out)


def md_kv(d: dict[str, str]) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in d.items())


def svg_chart(workloads: list[Workload], cells: dict[tuple[str, str], Cell], servers: list[str], title: str) -> str:
    """Grouped bars of median tps: one panel per workload with its own linear axis from 0,
    so each PostgreSQL/Gnomon pair is compared by bar height, whatever its absolute tps."""
    colors = {PG: "#336791", GN: "#d9822b"}
    panel_w, panel_h, top, left, bottom = 150, 240, 70, 20, 60
    bar_w = 44
    width = left * 2 + panel_w * len(workloads)
    height = top + panel_h + bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    lx = left
    for s in servers:
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{colors[s]}"/>')
        out.append(f'<text x="{lx + 17}" y="42">{escape(s)} (median tps)</text>')
        lx += 220
    base_y = top + panel_h
    for i, w in enumerate(workloads):
        x0 = left + i * panel_w
        vals = {}
        for s in servers:
            c = cells.get((w.name, s))
            vals[s] = None if cell_status(c) else c.tps()
        vmax = max([v for v in vals.values() if v] or [1.0]) * 1.15
        out.append(f'<line x1="{x0 + 10}" y1="{base_y}" x2="{x0 + panel_w - 10}" y2="{base_y}" stroke="#444"/>')
        n = len(servers)
        gap = 8
        group_w = n * bar_w + (n - 1) * gap
        bx = x0 + (panel_w - group_w) / 2
        for s in servers:
            v = vals[s]
            if v is None:
                status = cell_status(cells.get((w.name, s))) or "error"
                out.append(f'<rect x="{bx:.1f}" y="{base_y - 30}" width="{bar_w}" height="30" fill="none" '
                           f'stroke="{colors[s]}" stroke-dasharray="4 3"/>')
                out.append(f'<text x="{bx + bar_w / 2:.1f}" y="{base_y - 11}" text-anchor="middle" '
                           f'fill="#b00" font-size="11">{status}</text>')
            else:
                h = panel_h * v / vmax
                out.append(f'<rect x="{bx:.1f}" y="{base_y - h:.1f}" width="{bar_w}" height="{h:.1f}" '
                           f'fill="{colors[s]}"><title>{escape(s)} {escape(w.name)}: {v:,.1f} tps</title></rect>')
                out.append(f'<text x="{bx + bar_w / 2:.1f}" y="{base_y - h - 4:.1f}" text-anchor="middle" '
                           f'font-size="10">{v:,.0f}</text>')
            bx += bar_w + gap
        out.append(f'<text x="{x0 + panel_w / 2}" y="{base_y + 18}" text-anchor="middle" '
                   f'font-weight="bold">{escape(w.name)}</text>')
        r = ratio(vals.get(GN), vals.get(PG)) if n == 2 else None
        if n == 2:
            label = f"Gnomon/PG {r:.2f}\u00d7" if r is not None else "Gnomon/PG -"
            out.append(f'<text x="{x0 + panel_w / 2}" y="{base_y + 36}" text-anchor="middle" '
                       f'fill="#333">{label}</text>')
    out.append(f'<text x="{left}" y="{height - 6}" font-size="10" fill="#666">Each panel has its own '
               f'linear tps axis starting at 0; compare bar heights within a panel.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = ", ".join(w.name for w in WORKLOADS)
    p = argparse.ArgumentParser(
        description="Run the same pgbench workloads against a throwaway PostgreSQL 15 cluster and a "
                    "Gnomon server, alternating between them, and report tps / latency side by side.",
        epilog=f"workloads: {names}. Results go to --out-dir as side_by_side-<date>.md and .svg.",
    )
    p.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor (default 10)")
    p.add_argument("--duration", type=int, default=20, help="seconds per pgbench run (default 20)")
    p.add_argument("--rounds", type=int, default=3,
                   help="runs per workload and server; medians are reported (default 3)")
    p.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS),
                   help=f"comma-separated subset of: {names} (default all)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--gnomon-only", action="store_true", help="benchmark only Gnomon")
    only.add_argument("--postgres-only", action="store_true", help="benchmark only PostgreSQL")
    p.add_argument("--init-steps", default="dtgvp",
                   help="pgbench -i -I steps, the same for both servers (default dtgvp, pgbench's own default: "
                        "drop, create tables, generate client-side with COPY, vacuum, primary keys); "
                        "e.g. dtgp skips VACUUM")
    p.add_argument("--keep", action="store_true", help="do not delete the temp dirs (data, logs, scripts)")
    p.add_argument("--pg-bin", type=Path, default=DEFAULT_PG_BIN, help=f"PostgreSQL bin dir (default {DEFAULT_PG_BIN})")
    p.add_argument("--gnomon-bin", type=Path, default=DEFAULT_GNOMON_BIN,
                   help="gnomon binary (default target/release/gnomon, built with cargo if missing)")
    p.add_argument("--rebuild", action="store_true", help="run `cargo build --release` even if the binary exists")
    p.add_argument("--tmp-dir", type=Path, default=None,
                   help="where to create the temp dirs (default: system temp dir); both servers share it")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where to write the .md and .svg")
    args = p.parse_args(argv)
    wanted = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in WORKLOADS_BY_NAME]
    if unknown or not wanted:
        p.error(f"unknown workload(s) {', '.join(unknown) or '(none given)'}; choose from {names}")
    args.selected = [WORKLOADS_BY_NAME[n] for n in dict.fromkeys(wanted)]
    args.gnomon_bin = args.gnomon_bin.resolve()
    for name in ("scale", "duration", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def on_sigterm(signum, frame):
    raise Interrupted()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    for tool in ("pgbench", "psql"):
        if shutil.which(tool) is None:
            print(f"error: `{tool}` not found on PATH (install postgresql-client)", file=sys.stderr)
            return 2

    server_names = [PG] if args.postgres_only else [GN] if args.gnomon_only else [PG, GN]
    started = dt.datetime.now()
    tmp_root = Path(tempfile.mkdtemp(prefix="gnomon-side-by-side-", dir=args.tmp_dir))
    servers: dict[str, Server] = {}
    cells: dict[tuple[str, str], Cell] = {}
    init_errors: dict[str, str] = {}
    init_times: dict[str, float] = {}
    descriptions: dict[str, dict[str, str]] = {}
    interrupted = False
    work = tmp_root / "client"
    try:
        work.mkdir()
        run_as = bench_system_user() if PG in server_names else None
        if run_as:
            os.chmod(tmp_root, 0o711)  # the PostgreSQL user must be able to reach its own subdir
        machine = machine_info(tmp_root)

        if PG in server_names:
            pg_root = tmp_root / "postgres"
            pg_root.mkdir(mode=0o700)
            if run_as:
                shutil.chown(pg_root, user=run_as)
            servers[PG] = PostgresServer(args.pg_bin, pg_root, run_as)
        if GN in server_names:
            try:
                ensure_gnomon_binary(args.gnomon_bin, args.rebuild)
            except BenchError as e:
                init_errors[GN] = str(e)
                log(str(e))
            gn_root = tmp_root / "gnomon"
            gn_root.mkdir()
            servers[GN] = GnomonServer(args.gnomon_bin, gn_root)

        for name, srv in servers.items():
            if name in init_errors:
                continue
            try:
                srv.start()
                descriptions[name] = srv.describe()
                init_times[name] = pgbench_init(srv, args.scale, args.init_steps, work)
                log(f"{name}: loaded scale {args.scale} in {init_times[name]:.1f}s")
            except BenchError as e:
                init_errors[name] = str(e)
                log(f"error: {e}")
                srv.stop()
        for name in server_names:
            descriptions.setdefault(name, {"status": "did not start / load", "error": init_errors.get(name, "?")})

        max_tries = pgbench_supports("--max-tries")
        if not max_tries:
            log("this pgbench has no --max-tries; serialization/deadlock failures will abort clients")
        live = [s for s in server_names if s not in init_errors]
        died: dict[str, str] = {}
        for w in args.selected:
            for s in server_names:
                cells[(w.name, s)] = Cell(error=init_errors.get(s) or died.get(s))
            for rnd in range(args.rounds):
                order = list(live) if rnd % 2 == 0 else list(reversed(live))
                for s in order:
                    cell = cells[(w.name, s)]
                    if cell.error:
                        continue
                    log(f"{w.name} round {rnd + 1}/{args.rounds} on {s} ({w.clients} clients, {args.duration}s)")
                    res = run_pgbench(servers[s], w, args, work, f"{s}-{w.name}-{rnd}", max_tries)
                    cell.runs.append(res)
                    if res.error:
                        if not servers[s].alive():
                            res.error += (f"\n{s} is no longer running{servers[s].exit_note()}; log tail "
                                          f"({servers[s].log_path}):\n{file_tail(servers[s].log_path)}")
                            died[s] = f"not run: {s} died during {w.name}"
                            live.remove(s)
                        cell.error = res.error
                        log(f"error: {s} {w.name}: {res.error}")
                    else:
                        log(f"  tps {res.tps:,.1f}  avg {fmt(res.latency_avg_ms, 2)} ms  "
                            f"p99 {fmt(res.latency_p99_ms, 2)} ms  failed {res.failed}  retried {res.retried}")
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        log("interrupted: stopping servers and cleaning up")
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        # A second Ctrl-C must not leave a server running: cleanup is bounded by its own timeouts.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for srv in servers.values():
            try:
                srv.stop()
            except Exception as e:  # cleanup must go on for the other server
                log(f"error stopping {srv.label}: {e}")
        if args.keep:
            log(f"kept temp dir {tmp_root}")
        else:
            shutil.rmtree(tmp_root, ignore_errors=True)

    if not cells:
        return 130 if interrupted else 1
    finished = dt.datetime.now()
    rows = table_rows(args.selected, cells, server_names)
    cpu = cpu_rows(args.selected, cells, server_names)
    print()
    print(text_table(rows))
    print()
    print(text_table(cpu))
    # A server that failed to start or load fails every workload the same way: report it once.
    errors = [(s, "start / pgbench -i", err) for s, err in init_errors.items()]
    errors += [(s, wn, c.error) for (wn, s), c in cells.items() if c.error and s not in init_errors]
    if errors:
        print("\nerrors:")
        for s, what, err in errors:
            print(f"  {s} {what}: {err.splitlines()[0]}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y-%m-%d-%H%M%S")
    md_path = args.out_dir / f"side_by_side-{stamp}.md"
    svg_path = args.out_dir / f"side_by_side-{stamp}.svg"
    title = f"pgbench side by side, scale {args.scale}, {args.duration}s x {args.rounds} rounds, {started:%Y-%m-%d}"
    svg_path.write_text(svg_chart(args.selected, cells, server_names, title), encoding="utf-8")
    md = [
        f"# Gnomon vs PostgreSQL: pgbench side by side ({started:%Y-%m-%d %H:%M})",
        "",
        f"![chart]({svg_path.name})",
        "",
        md_table(rows),
        "",
        f"Medians over {args.rounds} round(s) of {args.duration}s per workload and server, servers alternating; "
        f"all runs `-M prepared`{', `--max-tries=10`' if pgbench_supports('--max-tries') else ''}; "
        f"average and P99 latency from pgbench's per-transaction log. failed/retried: totals over all rounds "
        f"(P = PostgreSQL, G = Gnomon).{' Run was interrupted: figures are partial.' if interrupted else ''}",
        "",
        "CPU per transaction (user + system, µs; medians over the rounds): the server's (Gnomon's "
        "process; PostgreSQL's postmaster and every backend and helper process) and pgbench's, "
        "from /proc and getrusage around each run. On a machine where the runs are CPU-bound, "
        "tps is about cores / (server + pgbench CPU per transaction), so pgbench's share bounds "
        "the ratio any server can reach.",
        "",
        md_table(cpu),
        "",
        "## Run",
        "",
        md_kv({"started": f"{started:%Y-%m-%d %H:%M:%S}", "finished": f"{finished:%Y-%m-%d %H:%M:%S}",
               "command": " ".join(["python3", "benches/side_by_side.py", *argv]),
               "scale": str(args.scale), "pgbench -i steps": args.init_steps,
               "duration": f"{args.duration}s", "rounds": str(args.rounds),
               **{f"pgbench -i time ({s})": f"{t:.1f}s" for s, t in init_times.items()}}),
        "",
        "## Machine",
        "",
        md_kv(machine),
    ]
    for s in server_names:
        md += ["", f"## {s} settings", "", md_kv(descriptions.get(s, {}))]
    md += ["", "## Workloads", ""]
    for w in args.selected:
        how = f"`-b {w.builtin}`" if w.builtin else "custom script (`-f`)"
        md.append(f"- **{w.name}**: {w.description}; {how}, `-c {w.clients} -j {w.threads}`")
        if w.script:
            md += ["", "  ```", *("  " + ln for ln in w.script.splitlines()), "  ```"]
    md += ["", "## Per-round tps", ""]
    for w in args.selected:
        for s in server_names:
            c = cells.get((w.name, s))
            if c is None:
                continue
            runs = ", ".join("error" if r.error else f"{r.tps:,.1f}" for r in c.runs) or "-"
            md.append(f"- {w.name} / {s}: {runs}")
    if errors:
        md += ["", "## Errors", ""]
        for s, what, err in errors:
            md += [f"### {s}: {what}", "", "```", err.rstrip(), "```", ""]
    md_path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    print(f"\nwrote {md_path}\nwrote {svg_path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
