//! Hot-row increments over the wire (the INCREMENT row-lock mode, `mvcc/src/locks/README.md`
//! "Increments"): `UPDATE t SET c = c + e WHERE <primary key>` at READ COMMITTED lets several
//! transactions hold one row at once; each delta is applied at its COMMIT to the newest
//! version. These tests check what a client relies on: exact sums, crash durability of
//! acknowledged increments, a transaction reading its own value (and committing exactly it),
//! the waits of ordinary writers, deadlocks, range errors, savepoints, REPEATABLE READ, and
//! pgbench's TPC-B invariant at 16 clients.
//!
//! "Blocked" is never judged by elapsed time: a test waits until `pg_locks` shows the request
//! as not granted.

mod common;

use common::{col, pgbench, sqlstate, Server};
use tokio_postgres::Client;

async fn setup(server: &Server) -> Client {
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int, f float8, n numeric); \
         INSERT INTO t VALUES (1, 0, 0, 0), (2, 0, 0, 0), (3, 2147483645, 0, 0)",
    )
    .await
    .unwrap();
    c
}

async fn value(c: &Client, id: i32) -> i32 {
    c.query_one("SELECT v FROM t WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

/// Waits until `n` lock requests wait (not-granted rows in pg_locks).
async fn until_waiting(c: &Client, n: usize) -> Vec<String> {
    loop {
        let waiting = col(
            c,
            "SELECT mode FROM pg_locks WHERE NOT granted ORDER BY mode",
        )
        .await;
        if waiting.len() >= n {
            return waiting;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn granted_tuple_modes(c: &Client) -> Vec<String> {
    col(
        c,
        "SELECT mode FROM pg_locks WHERE locktype = 'tuple' AND granted ORDER BY mode",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_incrementers_share_the_row_and_the_sum_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    // Three open transactions hold the row at once.
    let mut open = Vec::new();
    for _ in 0..3 {
        let c = server.connect().await;
        c.batch_execute("BEGIN; UPDATE t SET v = v + 1, f = f + 0.5, n = n - 1.25 WHERE id = 1")
            .await
            .unwrap();
        open.push(c);
    }
    assert_eq!(
        granted_tuple_modes(&admin).await,
        vec!["IncrementLock"; 3],
        "three transactions hold INCREMENT on the row at once"
    );
    for c in &open {
        c.batch_execute("COMMIT").await.unwrap();
    }
    let row = admin
        .query_one("SELECT v, f, n::text FROM t WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(row.get::<_, f64>(1), 1.5);
    assert_eq!(row.get::<_, String>(2), "-3.75");

    // 8 sessions x 25 transactions, prepared statements with a parameter.
    let mut tasks = Vec::new();
    for s in 0..8 {
        let c = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let st = c
                .prepare("UPDATE t SET v = v + $1 WHERE id = 1")
                .await
                .unwrap();
            for _ in 0..25 {
                c.batch_execute("BEGIN").await.unwrap();
                let n = c.execute(&st, &[&(s + 1)]).await.unwrap();
                assert_eq!(n, 1);
                c.batch_execute("COMMIT").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected = 3 + 25 * (1..=8).sum::<i32>();
    assert_eq!(value(&admin, 1).await, expected);
    // A missing row is UPDATE 0.
    assert_eq!(
        admin
            .execute("UPDATE t SET v = v + 1 WHERE id = 99", &[])
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_increments_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = server.connect().await;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let r = c
                    .batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; COMMIT")
                    .await;
                if r.is_err() {
                    return;
                }
                acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(admin);
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    let server = Server::start(dir.path());
    let c = server.connect().await;
    let v = i64::from(value(&c, 1).await);
    // Every acknowledged commit is there; at most one unacknowledged one per client too.
    assert!(
        v >= acked && v <= acked + 4,
        "value {v} after restart, {acked} acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_reads_its_own_increment_and_others_commit_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE t SET v = v + 10 WHERE id = 1")
        .await
        .unwrap();
    // A reads: it becomes the row's observer and sees the committed value plus its own delta.
    assert_eq!(value(&a, 1).await, 1);
    // B's COMMIT waits for A (it will be ordered after it).
    let commit_b = tokio::spawn(async move {
        let r = b.batch_execute("COMMIT").await;
        (r, b)
    });
    assert_eq!(until_waiting(&admin, 1).await, vec!["IncrementCommitLock"]);
    // A goes on with ordinary writes of the row; it still sees exactly its own value.
    a.batch_execute("UPDATE t SET v = v * 2 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(value(&a, 1).await, 2);
    assert_eq!(value(&admin, 1).await, 0, "nothing committed yet");
    a.batch_execute("COMMIT").await.unwrap();
    let (r, _b) = commit_b.await.unwrap();
    r.unwrap();
    assert_eq!(value(&admin, 1).await, 12, "A's 2, then B's +10");

    // Increments of one row in one transaction add; a savepoint rollback drops its deltas;
    // a statement after the savepoint that observed the row is undone with it.
    a.batch_execute(
        "BEGIN; UPDATE t SET v = v + 1 WHERE id = 2; UPDATE t SET v = v + 2 WHERE id = 2; \
         SAVEPOINT s; UPDATE t SET v = v + 100 WHERE id = 2",
    )
    .await
    .unwrap();
    assert_eq!(value(&a, 2).await, 103);
    a.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    assert_eq!(value(&a, 2).await, 3);
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 2).await, 3);
    // A rolled-back transaction leaves nothing.
    a.batch_execute("BEGIN; UPDATE t SET v = v + 5 WHERE id = 2; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(value(&admin, 2).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_observer_sees_a_distinct_serial_value() {
    // The TPC-B pattern on one hot row: UPDATE ... + 1; SELECT the row. Observers are
    // serialised, so their SELECTs return exactly 1..=N in some order.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let c = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..20 {
                c.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
                    .await
                    .unwrap();
                seen.push(value(&c, 1).await);
                c.batch_execute("COMMIT").await.unwrap();
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=120).collect::<Vec<i32>>());
    assert_eq!(value(&admin, 1).await, 120);
}

#[tokio::test(flavor = "multi_thread")]
async fn ordinary_writers_wait_for_incrementers_and_increments_queue_behind_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let a = server.connect().await;
    let b = server.connect().await;
    let c = server.connect().await;
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    // A plain UPDATE waits for the incrementer and sees its value after.
    let plain = tokio::spawn(async move {
        let r = b
            .query_one("UPDATE t SET v = v * 10 WHERE id = 1 RETURNING v", &[])
            .await
            .map(|r| r.get::<_, i32>(0));
        (r, b)
    });
    assert_eq!(until_waiting(&admin, 1).await, vec!["ExclusiveLock"]);
    a.batch_execute("COMMIT").await.unwrap();
    let (r, b) = plain.await.unwrap();
    assert_eq!(r.unwrap(), 10);

    // SELECT ... FOR UPDATE waits too; an increment behind that waiting request queues (no
    // starvation of the exclusive locker).
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    let locker = tokio::spawn(async move {
        let r = b
            .batch_execute("BEGIN; SELECT * FROM t WHERE id = 1 FOR UPDATE")
            .await;
        (r, b)
    });
    until_waiting(&admin, 1).await;
    let inc = tokio::spawn(async move {
        let r = c.execute("UPDATE t SET v = v + 5 WHERE id = 1", &[]).await;
        (r, c)
    });
    assert_eq!(
        until_waiting(&admin, 2).await,
        vec!["AccessExclusiveLock", "IncrementLock"]
    );
    a.batch_execute("COMMIT").await.unwrap();
    let (r, b) = locker.await.unwrap();
    r.unwrap();
    // The locker now deletes the row: the queued increment finds none.
    b.batch_execute("DELETE FROM t WHERE id = 1; COMMIT")
        .await
        .unwrap();
    let (r, _c) = inc.await.unwrap();
    assert_eq!(r.unwrap(), 0, "UPDATE 0: the row was deleted first");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_observer_and_an_ordinary_locker_deadlock_and_the_youngest_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(value(&a, 1).await, 1); // A observes row 1
    b.batch_execute("BEGIN; UPDATE t SET v = 7 WHERE id = 2; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    // B's COMMIT waits for the observer A...
    let commit_b = tokio::spawn(async move {
        let r = b.batch_execute("COMMIT").await;
        (r, b)
    });
    until_waiting(&admin, 1).await;
    // ... and A now waits for B's row 2: a cycle. B is younger: its COMMIT fails.
    a.batch_execute("UPDATE t SET v = 8 WHERE id = 2")
        .await
        .unwrap();
    let (r, _b) = commit_b.await.unwrap();
    assert_eq!(sqlstate(&r.unwrap_err()), "40P01");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 1).await, 1);
    assert_eq!(value(&admin, 2).await, 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_fails_with_22003_at_the_update_or_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    // At the statement: the newest value plus the delta is out of range.
    let err = admin
        .execute("UPDATE t SET v = v + 10 WHERE id = 3", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22003");
    assert_eq!(err.as_db_error().unwrap().message(), "integer out of range");
    // Three concurrent +1 each fit alone; the third to commit overflows at its COMMIT.
    let mut open = Vec::new();
    for _ in 0..3 {
        let c = server.connect().await;
        c.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 3")
            .await
            .unwrap();
        open.push(c);
    }
    open[0].batch_execute("COMMIT").await.unwrap();
    open[1].batch_execute("COMMIT").await.unwrap();
    let err = open[2].batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "22003");
    assert_eq!(value(&admin, 3).await, i32::MAX);
    // The session is usable afterwards.
    assert_eq!(value(&open[2], 3).await, i32::MAX);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeatable_read_keeps_its_serialization_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .unwrap();
    let rr = tokio::spawn(async move {
        let r = b.execute("UPDATE t SET v = v + 1 WHERE id = 1", &[]).await;
        (r, b)
    });
    until_waiting(&admin, 1).await;
    a.batch_execute("COMMIT").await.unwrap();
    let (r, _b) = rr.await.unwrap();
    assert_eq!(sqlstate(&r.unwrap_err()), "40001");
    assert_eq!(value(&admin, 1).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn pgbench_tpcb_at_16_clients_keeps_the_balance_invariant() {
    let Some(bin) = common::find_pg_tool("pgbench") else {
        if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
            panic!("pgbench is required in CI but was not found");
        }
        eprintln!("SKIPPED: pgbench not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let run = |args: &[&str]| pgbench(&bin, &server, args);
    run(&["-i", "-I", "dtGvp", "-s", "1", "-q"]);
    let out = run(&[
        "-M",
        "prepared",
        "-n",
        "-c",
        "16",
        "-j",
        "2",
        "-t",
        "40",
        "--max-tries=10",
    ]);
    assert!(
        out.contains("number of transactions actually processed: 640/640"),
        "{out}"
    );
    let c = server.connect().await;
    let mut sums = Vec::new();
    for sql in [
        "select sum(abalance) from pgbench_accounts",
        "select sum(bbalance) from pgbench_branches",
        "select sum(tbalance) from pgbench_tellers",
        "select sum(delta) from pgbench_history",
        "select count(*) from pgbench_history",
    ] {
        sums.push(
            c.query_one(sql, &[])
                .await
                .unwrap()
                .get::<_, Option<i64>>(0),
        );
    }
    assert_eq!(sums[4], Some(640));
    assert_eq!((sums[0], sums[1], sums[2]), (sums[3], sums[3], sums[3]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_a_generated_column_takes_the_ordinary_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE g (id int PRIMARY KEY, v int, d int GENERATED ALWAYS AS (v * 2) STORED); \
             INSERT INTO g (id, v) VALUES (1, 10)",
        )
        .await
        .unwrap();
    let a = server.connect().await;
    a.batch_execute("BEGIN; UPDATE g SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    // An ordinary row lock, not INCREMENT: d must be computed from the row the UPDATE wrote.
    let modes = granted_tuple_modes(&admin).await;
    assert!(
        !modes.iter().any(|m| m.starts_with("Increment")),
        "{modes:?}"
    );
    let b = server.connect().await;
    let second =
        tokio::spawn(async move { b.batch_execute("UPDATE g SET v = v + 1 WHERE id = 1").await });
    until_waiting(&admin, 1).await;
    a.batch_execute("COMMIT").await.unwrap();
    second.await.unwrap().unwrap();
    let row = admin
        .query_one("SELECT v, d FROM g WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (12, 24));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_in_a_transaction_that_wrote_parts_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--write-set-part-size", "4kB"]);
    let admin = setup(&server).await;
    admin
        .batch_execute("CREATE TABLE big (id int PRIMARY KEY, pad text)")
        .await
        .unwrap();
    let bulk = server.connect().await;
    bulk.batch_execute(
        "BEGIN; INSERT INTO big SELECT i, repeat('x', 50) FROM generate_series(1, 3000) AS i; \
         UPDATE t SET v = v + 5 WHERE id = 1",
    )
    .await
    .unwrap();
    // Another incrementer commits first; the bulk transaction's final value is applied on top.
    let other = server.connect().await;
    other
        .batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; COMMIT")
        .await
        .unwrap();
    bulk.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 1).await, 6);
    drop((admin, bulk, other));
    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(
        value(&c, 1).await,
        6,
        "the increment's final value is in the parts-commit record"
    );
    assert_eq!(col(&c, "SELECT count(*) FROM big").await, vec!["3000"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_of_a_row_the_statement_cannot_see_locks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let a = server.connect().await;
    let b = server.connect().await;
    // A missing row: UPDATE 0, and A holds no row or partition lock for it (as PostgreSQL
    // takes none), so B's INSERT of that key does not wait for A.
    a.batch_execute("BEGIN").await.unwrap();
    let n = a
        .execute("UPDATE t SET v = v + 1 WHERE id = 50", &[])
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A is the only open transaction.
    let a_locks = col(
        &admin,
        "SELECT locktype || ' ' || mode FROM pg_locks WHERE locktype <> 'relation' ORDER BY 1",
    )
    .await;
    assert_eq!(
        a_locks,
        Vec::<String>::new(),
        "no row or partition lock for a missing row"
    );
    b.batch_execute("INSERT INTO t VALUES (50, 7, 0, 0)")
        .await
        .unwrap();
    // A row being inserted by an open transaction: not in the UPDATE's snapshot, so UPDATE 0
    // at once (no wait for the inserter), and no lock kept.
    b.batch_execute("BEGIN; INSERT INTO t VALUES (60, 1, 0, 0)")
        .await
        .unwrap();
    let n = a
        .execute("UPDATE t SET v = v + 1 WHERE id = 60", &[])
        .await
        .unwrap();
    assert_eq!(n, 0);
    b.batch_execute("COMMIT").await.unwrap();
    // Rows that exist are incremented, including the one B committed meanwhile.
    let n = a
        .execute("UPDATE t SET v = v + 1 WHERE id = 50", &[])
        .await
        .unwrap();
    assert_eq!(n, 1);
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 50).await, 8);
    assert_eq!(value(&admin, 60).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incrementer_that_read_the_row_alone_still_sees_a_later_committer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = setup(&server).await;
    let a = server.connect().await;
    let b = server.connect().await;
    // Undisturbed: A's increment read is the newest version at its SELECT and its COMMIT.
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(value(&a, 1).await, 1);
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 1).await, 1);
    // A holds the row alone when it increments; B increments and commits after that: A's
    // read, a moment later, and its commit must both build on B's version.
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    b.execute("UPDATE t SET v = v + 10 WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(value(&a, 1).await, 12, "A observes B's committed increment");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 1).await, 12);
    // The same without a read in between: the commit applies A's delta to B's version.
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id = 2")
        .await
        .unwrap();
    b.execute("UPDATE t SET v = v + 10 WHERE id = 2", &[])
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&admin, 2).await, 11);
}
