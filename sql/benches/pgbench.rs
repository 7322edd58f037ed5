//! The pgbench statements (TPC-B and select-only, `-M prepared`) and the per-row prepared
//! INSERT of `COPY FROM STDIN` (what `pgbench -i` spends its time in), executed through
//! [`Session::execute_prepared`] against a real [`Db`] (sync off) holding 100K accounts.
//!
//! `cargo bench -p gnomon-sql --bench pgbench` runs criterion. For repeatable instruction
//! counts, run the binary with `SQL_BENCH_ITERS=N` (no criterion; prints executions/s) under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_workload*'`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{DataType, Prepared, Session, SqlEngine, Value};

const ACCOUNTS: i32 = 100_000;
const TELLERS: i32 = 10;

/// A tiny deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i32) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i32
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    session: Session,
    select: Prepared,
    begin: Prepared,
    update_accounts: Prepared,
    select_balance: Prepared,
    update_tellers: Prepared,
    update_branches: Prepared,
    insert_history: Prepared,
    end: Prepared,
    copy_insert: Prepared,
    copy_rows: i32,
    rng: Rng,
}

fn simple(s: &mut Session, sql: &str) {
    for r in s.execute_simple(sql) {
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn prepare(s: &mut Session, sql: &str, n: usize) -> Prepared {
    s.prepare(sql, &vec![None; n])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir_in(".").unwrap();
        let db = Db::open(DbOptions {
            dir: dir.path().to_path_buf(),
            sync: SyncPolicy::OffUnsafeNoDurability,
            ..DbOptions::default()
        })
        .unwrap();
        let engine = SqlEngine::open(db).unwrap();
        let mut s = Session::new(engine, "gnomon", "gnomon").unwrap();
        simple(
            &mut s,
            "CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
             CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
             CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
             CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
             CREATE TABLE copy_target (aid int, bid int, abalance int, filler char(84));
             INSERT INTO pgbench_branches VALUES (1, 0, '')",
        );
        for t in 1..=TELLERS {
            simple(
                &mut s,
                &format!("INSERT INTO pgbench_tellers VALUES ({t}, 1, 0, '')"),
            );
        }
        // Load the accounts as COPY does: a prepared INSERT per row, one transaction per batch.
        let load = prepare(
            &mut s,
            "INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES ($1, $2, $3, $4)",
            4,
        );
        for batch in 0..ACCOUNTS / 10_000 {
            simple(&mut s, "BEGIN");
            for aid in batch * 10_000 + 1..=(batch + 1) * 10_000 {
                s.execute_prepared(&load, copy_values(aid)).unwrap();
            }
            simple(&mut s, "COMMIT");
        }
        Bench {
            select: prepare(&mut s, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", 1),
            begin: prepare(&mut s, "BEGIN", 0),
            update_accounts: prepare(
                &mut s,
                "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
                2,
            ),
            select_balance: prepare(&mut s, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", 1),
            update_tellers: prepare(
                &mut s,
                "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
                2,
            ),
            update_branches: prepare(
                &mut s,
                "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
                2,
            ),
            insert_history: prepare(
                &mut s,
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
                4,
            ),
            end: prepare(&mut s, "END", 0),
            copy_insert: prepare(
                &mut s,
                "INSERT INTO copy_target (aid, bid, abalance, filler) VALUES ($1, $2, $3, $4)",
                4,
            ),
            copy_rows: 0,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            session: s,
            _dir: dir,
        }
    }

    fn select_only(&mut self) {
        let aid = self.rng.below(ACCOUNTS) + 1;
        self.session
            .execute_prepared(&self.select, vec![Value::Int4(aid)])
            .unwrap();
        self.session.sync();
    }

    fn tpcb(&mut self) {
        let aid = self.rng.below(ACCOUNTS) + 1;
        let tid = self.rng.below(TELLERS) + 1;
        let delta = self.rng.below(10_001) - 5000;
        let s = &mut self.session;
        s.execute_prepared(&self.begin, vec![]).unwrap();
        s.execute_prepared(
            &self.update_accounts,
            vec![Value::Int4(delta), Value::Int4(aid)],
        )
        .unwrap();
        s.execute_prepared(&self.select_balance, vec![Value::Int4(aid)])
            .unwrap();
        s.execute_prepared(
            &self.update_tellers,
            vec![Value::Int4(delta), Value::Int4(tid)],
        )
        .unwrap();
        s.execute_prepared(
            &self.update_branches,
            vec![Value::Int4(delta), Value::Int4(1)],
        )
        .unwrap();
        s.execute_prepared(
            &self.insert_history,
            vec![
                Value::Int4(tid),
                Value::Int4(1),
                Value::Int4(aid),
                Value::Int4(delta),
            ],
        )
        .unwrap();
        s.execute_prepared(&self.end, vec![]).unwrap();
        s.sync();
    }

    /// One COPY row; a transaction commits every 1000 rows.
    fn copy_row(&mut self) {
        if self.copy_rows % 1000 == 0 {
            if self.copy_rows > 0 {
                simple(&mut self.session, "COMMIT");
            }
            simple(&mut self.session, "BEGIN");
        }
        self.copy_rows += 1;
        self.session
            .execute_prepared(&self.copy_insert, copy_values(self.copy_rows))
            .unwrap();
    }
}

/// A COPY line's fields after decoding by the prepared INSERT's parameter types, as the server
/// passes them.
fn copy_values(aid: i32) -> Vec<Value> {
    let filler = Value::from_text("", &DataType::Bpchar(Some(84))).unwrap();
    vec![
        Value::Int4(aid),
        Value::Int4((aid - 1) / ACCOUNTS + 1),
        Value::Int4(0),
        filler,
    ]
}

type Workload = (&'static str, fn(&mut Bench));

const WORKLOADS: [Workload; 3] = [
    ("select_only", Bench::select_only),
    ("tpcb", Bench::tpcb),
    ("copy_insert_row", Bench::copy_row),
];

/// The measured loop (a separate symbol for `callgrind --toggle-collect='*run_workload*'`).
#[inline(never)]
fn run_workload(b: &mut Bench, f: fn(&mut Bench), iters: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f(b);
    }
    start.elapsed().as_secs_f64()
}

fn manual(iters: u64, only: Option<&str>) {
    let mut b = Bench::new();
    for (name, f) in WORKLOADS {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let secs = run_workload(&mut b, f, iters);
        println!(
            "{name}: {iters} in {secs:.3}s = {:.0}/s",
            iters as f64 / secs
        );
    }
}

fn main() {
    if let Some(iters) = std::env::var("SQL_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let only = std::env::var("SQL_BENCH_ONLY").ok();
        manual(iters, only.as_deref());
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    let bench = Arc::new(std::sync::Mutex::new(Bench::new()));
    let mut group = c.benchmark_group("pgbench");
    group.throughput(Throughput::Elements(1));
    for (name, f) in WORKLOADS {
        let bench = bench.clone();
        group.bench_function(name, move |bch| {
            let mut b = bench.lock().unwrap();
            bch.iter(|| f(&mut b))
        });
    }
    group.finish();
    c.final_summary();
}
