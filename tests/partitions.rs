//! Partitioned tables over the wire, with tokio-postgres (and psql for COPY) against the real
//! server: routing, errors with PostgreSQL's SQLSTATE and DETAIL, pruning in EXPLAIN and with
//! prepared-statement parameters, key updates moving rows, the catalog (pg_class relkind 'p',
//! pg_inherits), a restart, and the lock hierarchy: rows of a partition lock under
//! (parent, partition), so writers of different partitions never wait for each other while
//! a LOCK TABLE on one partition holds back only that partition's writers; MERGE into a
//! partitioned table waits for, and re-checks, rows other writers hold.
//!
//! "Blocked" is never judged by elapsed time: the test waits until `pg_locks` shows the
//! request as not granted, then releases the holder and checks the outcome.

mod common;

use common::{sqlstate, Server};
use tokio_postgres::{Client, SimpleQueryMessage};

const SCHEMA: &str = "CREATE TABLE m (k int PRIMARY KEY, v text) PARTITION BY RANGE (k); \
     CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (MINVALUE) TO (10); \
     CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20); \
     CREATE TABLE md PARTITION OF m DEFAULT";

/// The rows of a simple query, columns joined by `|`.
async fn rows(c: &Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

async fn until_someone_waits(c: &Client) {
    loop {
        if !rows(c, "SELECT mode FROM pg_locks WHERE NOT granted")
            .await
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn routing_pruning_key_updates_and_errors_over_the_wire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let c = server.connect().await;
    c.batch_execute(SCHEMA).await.unwrap();
    c.batch_execute("INSERT INTO m VALUES (1, 'a'), (15, 'b'), (30, 'c')")
        .await
        .unwrap();
    assert_eq!(rows(&c, "SELECT k FROM m2").await, vec!["15"]);
    assert_eq!(
        rows(&c, "SELECT k FROM m ORDER BY k").await,
        vec!["1", "15", "30"]
    );

    // No partition: 23514 with the key in the DETAIL; the session goes on.
    c.batch_execute("DROP TABLE md").await.unwrap();
    let e = c
        .batch_execute("INSERT INTO m VALUES (40, 'x')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514");
    let db = e.as_db_error().expect("db error");
    assert_eq!(db.message(), "no partition of relation \"m\" found for row");
    assert_eq!(
        db.detail(),
        Some("Partition key of the failing row contains (k) = (40).")
    );
    let e = c
        .batch_execute("INSERT INTO m1 VALUES (12, 'x')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514");
    let e = c
        .batch_execute("CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (15) TO (30)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42P17");

    // EXPLAIN shows the partitions that survive pruning.
    let plan = rows(&c, "EXPLAIN SELECT * FROM m WHERE k = 3")
        .await
        .join("\n");
    assert!(plan.starts_with("Append"), "{plan}");
    assert!(plan.contains("on m1") && !plan.contains("on m2"), "{plan}");

    // Prepared statements (extended protocol) prune with their parameter values.
    let st = c.prepare("SELECT v FROM m WHERE k = $1").await.unwrap();
    for (k, v) in [(1, "a"), (15, "b")] {
        let r = c.query_one(&st, &[&k]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), v);
    }
    assert!(c.query(&st, &[&99i32]).await.unwrap().is_empty());

    // Updating the key moves the row.
    let moved = c
        .query_one("UPDATE m SET k = 11 WHERE k = 1 RETURNING k", &[])
        .await
        .unwrap();
    assert_eq!(moved.get::<_, i32>(0), 11);
    assert!(rows(&c, "SELECT k FROM m1").await.is_empty());
    assert_eq!(
        rows(&c, "SELECT k FROM m2 ORDER BY k").await,
        vec!["11", "15"]
    );

    // The catalog: relkind 'p' for the parent, pg_inherits links the partitions.
    assert_eq!(
        rows(
            &c,
            "SELECT relname, relkind, relispartition FROM pg_class \
             WHERE relname IN ('m', 'm1', 'm2') ORDER BY relname"
        )
        .await,
        vec!["m|p|f", "m1|r|t", "m2|r|t"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'm' ORDER BY 1"
        )
        .await,
        vec!["m1", "m2"]
    );

    // COPY into the parent routes every row (psql, when installed).
    if let Some(psql) = common::find_pg_tool("psql") {
        use std::io::Write;
        let mut child = std::process::Command::new(psql)
            .arg(server.conn_str())
            .args(["-X", "-q", "-c", "COPY m FROM STDIN"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"2\tc1\n3\tc2\n16\tc3\n")
            .expect("write COPY data");
        let out = child.wait_with_output().expect("psql");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            rows(&c, "SELECT k FROM m1 ORDER BY k").await,
            vec!["2", "3"]
        );
        assert_eq!(
            rows(&c, "SELECT k FROM m2 ORDER BY k").await,
            vec!["11", "15", "16"]
        );
    }

    // A restart keeps partitions and their rows.
    drop(c);
    server.terminate();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(
        rows(&c, "SELECT k FROM m2 ORDER BY k LIMIT 2").await,
        vec!["11", "15"]
    );
    c.batch_execute("INSERT INTO m VALUES (5, 'after')")
        .await
        .unwrap();
    assert!(rows(&c, "SELECT v FROM m1")
        .await
        .contains(&"after".to_string()));
}

#[tokio::test]
async fn writers_of_different_partitions_do_not_wait_and_lock_table_holds_one_partition() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    let b = server.connect().await;
    let watcher = server.connect().await;
    a.batch_execute(SCHEMA).await.unwrap();
    a.batch_execute("INSERT INTO m VALUES (1, 'a'), (2, 'b'), (15, 'c'), (16, 'd')")
        .await
        .unwrap();

    // A row lock in m1 is an intention lock on partition m1 of relation m.
    a.batch_execute("BEGIN; UPDATE m SET v = 'a2' WHERE k = 1")
        .await
        .unwrap();
    let oid = |name: &'static str| {
        let w = &watcher;
        async move {
            rows(
                w,
                &format!("SELECT oid FROM pg_class WHERE relname = '{name}'"),
            )
            .await
            .remove(0)
        }
    };
    let (m, m1) = (oid("m").await, oid("m1").await);
    let parts = rows(
        &watcher,
        "SELECT relation, page, mode FROM pg_locks WHERE locktype = 'partition'",
    )
    .await;
    assert_eq!(parts, vec![format!("{m}|{m1}|IntentExclusiveLock")]);
    // Another writer in m2 (and in m1 on another row) goes ahead.
    b.batch_execute("UPDATE m SET v = 'c2' WHERE k = 15")
        .await
        .unwrap();
    b.batch_execute("UPDATE m SET v = 'b2' WHERE k = 2")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();

    // LOCK TABLE on one partition holds back writers of that partition only.
    a.batch_execute("BEGIN; LOCK TABLE m1 IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    b.batch_execute("UPDATE m SET v = 'c3' WHERE k = 15")
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let r = b.batch_execute("UPDATE m SET v = 'a3' WHERE k = 1").await;
        (r, b)
    });
    until_someone_waits(&watcher).await;
    a.batch_execute("COMMIT").await.unwrap();
    let (r, _b) = writer.await.unwrap();
    r.unwrap();
    assert_eq!(
        rows(&watcher, "SELECT k, v FROM m ORDER BY k").await,
        vec!["1|a3", "2|b2", "15|c3", "16|d"]
    );
}

/// MERGE into a partitioned table under concurrency, as PostgreSQL 15: at READ COMMITTED a
/// matched row locked by another writer is waited for and the action applies to the version
/// that writer committed (in whichever partition); at REPEATABLE READ a matched row changed
/// since the snapshot fails the MERGE with 40001, and the session goes on.
#[tokio::test]
async fn merge_into_a_partitioned_table_rechecks_at_read_committed_and_fails_at_repeatable_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    let b = server.connect().await;
    let watcher = server.connect().await;
    a.batch_execute(SCHEMA).await.unwrap();
    a.batch_execute("INSERT INTO m VALUES (1, 'a'), (15, 'b')")
        .await
        .unwrap();
    const MERGE: &str = "MERGE INTO m USING (VALUES (1, 'x'), (15, 'y'), (25, 'z')) s(k, v) \
         ON m.k = s.k WHEN MATCHED THEN UPDATE SET v = m.v || s.v \
         WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.v)";

    a.batch_execute("BEGIN; UPDATE m SET v = 'b2' WHERE k = 15")
        .await
        .unwrap();
    let merge = tokio::spawn(async move {
        let r = b.simple_query(MERGE).await;
        (r, b)
    });
    until_someone_waits(&watcher).await;
    a.batch_execute("COMMIT").await.unwrap();
    let (r, b) = merge.await.unwrap();
    let tag = r.unwrap().into_iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(n),
        _ => None,
    });
    assert_eq!(tag, Some(3));
    assert_eq!(
        rows(&watcher, "SELECT k, v FROM m ORDER BY k").await,
        vec!["1|ax", "15|b2y", "25|z"]
    );
    assert_eq!(rows(&watcher, "SELECT k FROM md").await, vec!["25"]);

    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM m")
        .await
        .unwrap();
    a.batch_execute("UPDATE m SET v = 'c' WHERE k = 15")
        .await
        .unwrap();
    // Rows nobody changed are fine; the changed one is a serialization failure.
    b.batch_execute(
        "MERGE INTO m USING (VALUES (1)) s(k) ON m.k = s.k WHEN MATCHED THEN UPDATE SET v = 'rr'",
    )
    .await
    .unwrap();
    let e = b.batch_execute(MERGE).await.unwrap_err();
    assert_eq!(sqlstate(&e), "40001");
    assert_eq!(
        e.as_db_error().map(|d| d.message()),
        Some("could not serialize access due to concurrent update")
    );
    b.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        rows(&b, "SELECT k, v FROM m ORDER BY k").await,
        vec!["1|ax", "15|c", "25|z"]
    );
}

/// psql's `\d` and `\d+` of a partitioned table print what they print on PostgreSQL 15 (the
/// expected text is PostgreSQL 15.x's output of the same script).
#[test]
fn psql_describes_a_partitioned_table_like_postgres() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let script = "CREATE TABLE m (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);\n\
                  CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (1) TO (10);\n\
                  CREATE TABLE md PARTITION OF m DEFAULT;\n\
                  \\d m\n\\d+ m\n";
    let file = dir.path().join("d.sql");
    std::fs::write(&file, script).expect("write script");
    let out = std::process::Command::new(psql)
        .arg(server.conn_str())
        .args(["-X", "-q", "-f"])
        .arg(&file)
        .env("COLUMNS", "200")
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let expected = r#"           Partitioned table "public.m"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 k      | integer |           | not null | 
 v      | text    |           |          | 
Partition key: RANGE (k)
Indexes:
    "m_pkey" PRIMARY KEY, btree (k)
Number of partitions: 2 (Use \d+ to list them.)

                                      Partitioned table "public.m"
 Column |  Type   | Collation | Nullable | Default | Storage  | Compression | Stats target | Description 
--------+---------+-----------+----------+---------+----------+-------------+--------------+-------------
 k      | integer |           | not null |         | plain    |             |              | 
 v      | text    |           |          |         | extended |             |              | 
Partition key: RANGE (k)
Indexes:
    "m_pkey" PRIMARY KEY, btree (k)
Partitions: m1 FOR VALUES FROM (1) TO (10),
            md DEFAULT

"#;
    assert_eq!(
        stdout,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ATTACH / DETACH PARTITION over the wire: a prepared statement over the parent sees the new
/// shape at its next execution (re-planned, pruning included), and the lock manager places
/// an attached table's rows under the parent (in the partition that is the table) and a
/// detached one's back under its own relation, once the DDL has committed.
#[tokio::test]
async fn attach_and_detach_replan_prepared_statements_and_move_row_locks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    let watcher = server.connect().await;
    a.batch_execute(
        "CREATE TABLE p (k int, v text) PARTITION BY LIST (k);
         CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
         CREATE TABLE t (k int, v text);
         INSERT INTO p VALUES (1, 'a');
         INSERT INTO t VALUES (2, 'b'), (2, 'c');",
    )
    .await
    .unwrap();
    let count = a
        .prepare("SELECT count(*) FROM p WHERE k = $1")
        .await
        .unwrap();
    let insert = a.prepare("INSERT INTO p VALUES ($1, 'n')").await.unwrap();
    let n = |k: i32| {
        let (a, count) = (&a, &count);
        async move { a.query_one(count, &[&k]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(n(2).await, 0);
    let e = a.execute(&insert, &[&2i32]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "23514");

    a.batch_execute("ALTER TABLE p ATTACH PARTITION t FOR VALUES IN (2, 3)")
        .await
        .unwrap();
    assert_eq!(n(2).await, 2);
    a.execute(&insert, &[&3i32]).await.unwrap();
    assert_eq!(n(3).await, 1);

    let oid = |name: &'static str| {
        let w = &watcher;
        async move {
            rows(
                w,
                &format!("SELECT oid FROM pg_class WHERE relname = '{name}'"),
            )
            .await
            .remove(0)
        }
    };
    let (p, t) = (oid("p").await, oid("t").await);
    let partition_locks = || {
        rows(
            &watcher,
            "SELECT relation, page, mode FROM pg_locks WHERE locktype = 'partition'",
        )
    };
    a.batch_execute("BEGIN; UPDATE p SET v = 'x' WHERE k = 3")
        .await
        .unwrap();
    assert_eq!(
        partition_locks().await,
        vec![format!("{p}|{t}|IntentExclusiveLock")]
    );
    a.batch_execute("COMMIT").await.unwrap();

    a.batch_execute("ALTER TABLE p DETACH PARTITION t")
        .await
        .unwrap();
    assert_eq!(n(2).await, 0);
    let e = a.execute(&insert, &[&2i32]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "23514");
    assert_eq!(rows(&a, "SELECT count(*) FROM t").await, vec!["3"]);
    a.batch_execute("BEGIN; UPDATE t SET v = 'y' WHERE k = 3")
        .await
        .unwrap();
    // A plain table's rows lock in its own relation's hash partitions.
    assert_eq!(
        rows(
            &watcher,
            "SELECT relation FROM pg_locks WHERE locktype = 'partition'"
        )
        .await,
        vec![t.clone()]
    );
    a.batch_execute("COMMIT").await.unwrap();
}

/// psql's `\d` of a partitioned table with indexes and of its partitions (created before and
/// after the index, one with an equivalent index of its own, one attached) prints what
/// PostgreSQL 15 prints for the same script.
#[test]
fn psql_describes_indexes_of_a_partitioned_table_like_postgres() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let script = "CREATE TABLE p (k int, v text, w int) PARTITION BY RANGE (k);\n\
                  CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);\n\
                  CREATE INDEX ON p1 (v);\n\
                  CREATE INDEX ON p (v);\n\
                  CREATE UNIQUE INDEX pu ON p (k, v);\n\
                  CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20);\n\
                  CREATE TABLE t (k int, v text, w int);\n\
                  ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (20) TO (30);\n\
                  \\d p\n\\d p1\n\\d p2\n\\d t\n";
    let file = dir.path().join("d.sql");
    std::fs::write(&file, script).expect("write script");
    let out = std::process::Command::new(psql)
        .arg(server.conn_str())
        .args(["-X", "-q", "-f"])
        .arg(&file)
        .env("COLUMNS", "200")
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let expected = r#"           Partitioned table "public.p"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 k      | integer |           |          | 
 v      | text    |           |          | 
 w      | integer |           |          | 
Partition key: RANGE (k)
Indexes:
    "p_v_idx" btree (v)
    "pu" UNIQUE, btree (k, v)
Number of partitions: 3 (Use \d+ to list them.)

                 Table "public.p1"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 k      | integer |           |          | 
 v      | text    |           |          | 
 w      | integer |           |          | 
Partition of: p FOR VALUES FROM (0) TO (10)
Indexes:
    "p1_k_v_idx" UNIQUE, btree (k, v)
    "p1_v_idx" btree (v)

                 Table "public.p2"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 k      | integer |           |          | 
 v      | text    |           |          | 
 w      | integer |           |          | 
Partition of: p FOR VALUES FROM (10) TO (20)
Indexes:
    "p2_k_v_idx" UNIQUE, btree (k, v)
    "p2_v_idx" btree (v)

                 Table "public.t"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 k      | integer |           |          | 
 v      | text    |           |          | 
 w      | integer |           |          | 
Partition of: p FOR VALUES FROM (20) TO (30)
Indexes:
    "t_k_v_idx" UNIQUE, btree (k, v)
    "t_v_idx" btree (v)

"#;
    assert_eq!(
        stdout,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
