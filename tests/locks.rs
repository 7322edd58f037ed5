//! Locking over the wire, with tokio-postgres against the real server: SELECT ... FOR UPDATE /
//! NO KEY UPDATE / SHARE / KEY SHARE with NOWAIT and SKIP LOCKED, LOCK TABLE, the table locks of
//! SELECT, DML and DDL, lock_timeout, statement_timeout, pg_locks, and deadlock errors (40P01).
//!
//! "Blocked" is never judged by elapsed time: a test waits until `pg_locks` shows the request
//! as not granted, then releases the holder and checks the outcome.

mod common;

use common::{col, sqlstate, Server};
use tokio_postgres::Client;

async fn setup() -> (tempfile::TempDir, Server, Client, Client) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int); \
         INSERT INTO t VALUES (1, 10), (2, 20), (3, 30), (4, 40)",
    )
    .await
    .unwrap();
    (dir, server, a, b)
}

/// Waits until some session waits for a lock (a not-granted row in pg_locks).
async fn until_someone_waits(c: &Client) {
    loop {
        let waiting = col(c, "SELECT mode FROM pg_locks WHERE NOT granted").await;
        if !waiting.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn for_update_blocks_a_writer_until_commit_and_it_sees_the_new_value() {
    let (_d, server, a, b) = setup().await;
    let c = server.connect().await;
    a.batch_execute("BEGIN").await.unwrap();
    let rows = col(&a, "SELECT v FROM t WHERE id = 1 FOR UPDATE").await;
    assert_eq!(rows, vec!["10"]);
    a.batch_execute("UPDATE t SET v = 11 WHERE id = 1")
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let r = b
            .query_one("UPDATE t SET v = v + 1 WHERE id = 1 RETURNING v", &[])
            .await
            .map(|r| r.get::<_, i32>(0));
        (r, b)
    });
    until_someone_waits(&c).await;
    a.batch_execute("COMMIT").await.unwrap();
    let (r, _b) = writer.await.unwrap();
    assert_eq!(
        r.unwrap(),
        12,
        "READ COMMITTED re-reads the row after the wait"
    );
}

#[tokio::test]
async fn nowait_fails_with_55p03_and_skip_locked_skips_rows() {
    let (_d, _server, a, b) = setup().await;
    a.batch_execute("BEGIN; SELECT * FROM t WHERE id IN (1, 2) FOR UPDATE")
        .await
        .unwrap();
    let err = b
        .simple_query("SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    let msg = err.as_db_error().unwrap().message().to_string();
    assert_eq!(msg, "could not obtain lock on row in relation \"t\"");
    // The queue pattern: the first free row, skipping locked ones.
    b.batch_execute("BEGIN").await.unwrap();
    let next = col(
        &b,
        "SELECT id FROM t ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .await;
    assert_eq!(next, vec!["3"]);
    let all = col(&b, "SELECT id FROM t ORDER BY id FOR SHARE SKIP LOCKED").await;
    assert_eq!(all, vec!["3", "4"]);
    b.batch_execute("COMMIT").await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        col(&b, "SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT").await,
        vec!["1"]
    );
}

#[tokio::test]
async fn row_lock_modes_conflict_as_in_postgresql() {
    let (_d, _server, a, b) = setup().await;
    a.batch_execute("BEGIN; SELECT * FROM t WHERE id = 1 FOR KEY SHARE")
        .await
        .unwrap();
    // FOR KEY SHARE lets a non-key UPDATE through (it takes FOR NO KEY UPDATE)...
    b.batch_execute("SET lock_timeout = '10s'").await.unwrap();
    b.batch_execute("UPDATE t SET v = 100 WHERE id = 1")
        .await
        .unwrap();
    // ... but not FOR UPDATE.
    let err = b
        .simple_query("SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    a.batch_execute("COMMIT; BEGIN; SELECT * FROM t WHERE id = 2 FOR SHARE")
        .await
        .unwrap();
    // FOR SHARE: other sharers are fine, FOR NO KEY UPDATE is not.
    assert_eq!(
        col(&b, "SELECT id FROM t WHERE id = 2 FOR SHARE NOWAIT").await,
        vec!["2"]
    );
    assert_eq!(
        col(&b, "SELECT id FROM t WHERE id = 2 FOR KEY SHARE NOWAIT").await,
        vec!["2"]
    );
    let err = b
        .simple_query("SELECT * FROM t WHERE id = 2 FOR NO KEY UPDATE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    a.batch_execute("COMMIT").await.unwrap();
    let err = b
        .simple_query("SELECT count(*) FROM t FOR UPDATE")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "0A000");
}

#[tokio::test]
async fn lock_table_modes_and_the_locks_of_select_dml_and_ddl() {
    let (_d, _server, a, b) = setup().await;
    let err = a.simple_query("LOCK TABLE t").await.unwrap_err();
    assert_eq!(sqlstate(&err), "25P01");
    a.batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE")
        .await
        .unwrap();
    // SHARE lets readers and other SHARE lockers in, not writers.
    assert_eq!(col(&b, "SELECT count(*) FROM t").await, vec!["4"]);
    b.batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE NOWAIT; COMMIT")
        .await
        .unwrap();
    let err = b
        .simple_query("BEGIN; LOCK TABLE t IN ROW EXCLUSIVE MODE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "could not obtain lock on relation \"t\""
    );
    b.batch_execute("ROLLBACK; SET lock_timeout = '30ms'")
        .await
        .unwrap();
    let err = b
        .simple_query("DELETE FROM t WHERE id = 4")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to lock timeout"
    );
    a.batch_execute("COMMIT").await.unwrap();
    // An open reader's ACCESS SHARE holds DROP TABLE back.
    a.batch_execute("BEGIN; SELECT * FROM t").await.unwrap();
    let err = b.simple_query("DROP TABLE t").await.unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    a.batch_execute("COMMIT").await.unwrap();
    // And an uncommitted ALTER/DROP holds readers back (ACCESS EXCLUSIVE).
    a.batch_execute("BEGIN; LOCK TABLE t").await.unwrap();
    let err = b.simple_query("SELECT * FROM t").await.unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(col(&b, "SELECT count(*) FROM t").await, vec!["4"]);
}

#[tokio::test]
async fn lock_timeout_and_statement_timeout_are_settings() {
    let (_d, _server, a, b) = setup().await;
    assert_eq!(col(&b, "SHOW lock_timeout").await, vec!["0"]);
    b.batch_execute("SET lock_timeout = '2s'").await.unwrap();
    assert_eq!(col(&b, "SHOW lock_timeout").await, vec!["2s"]);
    let err = b
        .simple_query("SET lock_timeout = 'soon'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    b.batch_execute("RESET lock_timeout; SET statement_timeout = '40ms'")
        .await
        .unwrap();
    a.batch_execute("BEGIN; UPDATE t SET v = 0 WHERE id = 3")
        .await
        .unwrap();
    let err = b
        .simple_query("UPDATE t SET v = 1 WHERE id = 3")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "57014");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to statement timeout"
    );
    a.batch_execute("COMMIT").await.unwrap();
    b.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert_eq!(
        col(&b, "UPDATE t SET v = 1 WHERE id = 3 RETURNING v").await,
        vec!["1"]
    );
}

#[tokio::test]
async fn pg_locks_shows_held_and_awaited_locks() {
    let (_d, server, a, b) = setup().await;
    let c = server.connect().await;
    let oid = a.prepare("SELECT v FROM t").await.unwrap().columns()[0]
        .table_oid()
        .unwrap();
    a.batch_execute("BEGIN; UPDATE t SET v = 5 WHERE id = 2")
        .await
        .unwrap();
    let held = c
        .query(
            "SELECT locktype, mode, granted FROM pg_locks WHERE relation = $1 ORDER BY locktype",
            &[&(oid as i64)],
        )
        .await
        .unwrap();
    let held: Vec<(String, String, bool)> = held
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        held,
        vec![
            ("partition".into(), "IntentExclusiveLock".into(), true),
            ("relation".into(), "RowExclusiveLock".into(), true),
            ("tuple".into(), "ExclusiveLock".into(), true),
        ]
    );
    let waiter = tokio::spawn(async move {
        let r = b.simple_query("DELETE FROM t WHERE id = 2").await;
        (r.is_ok(), b)
    });
    until_someone_waits(&c).await;
    let waiting = c
        .query(
            "SELECT locktype, mode, waitstart IS NOT NULL FROM pg_locks WHERE NOT granted",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].get::<_, String>(0), "tuple");
    assert_eq!(
        waiting[0].get::<_, String>(1),
        "AccessExclusiveLock",
        "DELETE: FOR UPDATE"
    );
    assert!(waiting[0].get::<_, bool>(2));
    a.batch_execute("COMMIT").await.unwrap();
    let (ok, _b) = waiter.await.unwrap();
    assert!(ok);
    assert_eq!(col(&c, "SELECT count(*) FROM pg_locks").await, vec!["0"]);
    let err = c.simple_query("DELETE FROM pg_locks").await.unwrap_err();
    assert_eq!(sqlstate(&err), "0A000");
}

#[tokio::test]
async fn a_deadlock_fails_the_youngest_with_40p01_naming_the_cycle() {
    let (_d, server, a, b) = setup().await;
    let c = server.connect().await;
    a.batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE t SET v = 2 WHERE id = 2")
        .await
        .unwrap();
    let older = tokio::spawn(async move {
        let r = a.simple_query("UPDATE t SET v = 1 WHERE id = 2").await;
        (r.is_ok(), a)
    });
    until_someone_waits(&c).await;
    let err = b
        .simple_query("UPDATE t SET v = 2 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "40P01");
    let db = err.as_db_error().unwrap();
    assert_eq!(db.message(), "deadlock detected");
    let detail = db.detail().unwrap_or_default().to_string();
    assert_eq!(detail.lines().count(), 2, "{detail}");
    assert!(detail.contains("blocked by transaction"), "{detail}");
    b.batch_execute("ROLLBACK").await.unwrap();
    let (ok, a) = older.await.unwrap();
    assert!(ok, "the older transaction goes on");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(col(&c, "SELECT v FROM t WHERE id = 2").await, vec!["1"]);
}

/// The lock manager's counters reach the admin listener's `/metrics`.
#[tokio::test]
async fn lock_counters_are_exported_as_metrics() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let http = server.http_port.expect("admin listener announced");
    let scrape = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    let before = scrape();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; SELECT * FROM t FOR UPDATE")
        .await
        .unwrap();
    b.simple_query("SELECT * FROM t FOR UPDATE NOWAIT")
        .await
        .unwrap_err();
    b.batch_execute("SET lock_timeout = '20ms'").await.unwrap();
    b.simple_query("DELETE FROM t").await.unwrap_err();
    a.batch_execute("COMMIT").await.unwrap();
    let after = scrape();
    for (name, at_least) in [
        ("gnomon_lock_not_available_total", 1.0),
        ("gnomon_lock_timeouts_total", 1.0),
        ("gnomon_lock_waits_total", 1.0),
    ] {
        assert!(
            value(&after, name) - value(&before, name) >= at_least,
            "{name} did not move"
        );
    }
    value(&after, "gnomon_lock_escalations_total");
    value(&after, "gnomon_lock_de_escalations_total");
}

#[tokio::test]
async fn lock_thresholds_and_timeout_defaults_come_from_flags_and_show() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(
        dir.path(),
        &[
            "--lock-escalation-partition-rows",
            "0",
            "--lock-escalation-table-rows=3",
            "--lock-hotspot-window",
            "250",
            "--lock-timeout",
            "150ms",
        ],
    );
    let a = server.connect().await;
    let b = server.connect().await;
    assert_eq!(col(&a, "SHOW lock_escalation_table_rows").await, vec!["3"]);
    assert_eq!(
        col(&a, "SHOW lock_escalation_partition_rows").await,
        vec!["0"]
    );
    assert_eq!(col(&a, "SHOW lock_hotspot_waits").await, vec!["200"]);
    assert_eq!(col(&a, "SHOW lock_hotspot_window").await, vec!["250ms"]);
    assert_eq!(col(&a, "SHOW lock_timeout").await, vec!["150ms"]);
    assert_eq!(col(&a, "SHOW statement_timeout").await, vec!["0"]);
    let e = a
        .batch_execute("SET lock_escalation_table_rows = 10")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P02");
    a.batch_execute("SET lock_timeout = '1s'").await.unwrap();
    assert_eq!(col(&a, "SHOW lock_timeout").await, vec!["1s"]);
    a.batch_execute("RESET lock_timeout").await.unwrap();
    assert_eq!(
        col(&a, "SHOW lock_timeout").await,
        vec!["150ms"],
        "RESET returns to the server's default"
    );

    // Past three row locks in one table the writer holds the table lock instead.
    a.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int); \
         INSERT INTO t VALUES (1, 10), (2, 20), (3, 30), (4, 40)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN; UPDATE t SET v = v + 1 WHERE id <= 2")
        .await
        .unwrap();
    let escalated = "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
                     AND mode = 'ExclusiveLock' AND escalated";
    assert_eq!(col(&b, escalated).await, vec!["0"]);
    a.batch_execute("UPDATE t SET v = v + 1").await.unwrap();
    assert_eq!(col(&b, escalated).await, vec!["1"]);
    // The default lock_timeout applies to a session that never set it.
    let e = b
        .batch_execute("UPDATE t SET v = 0 WHERE id = 3")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P03");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(col(&b, "SELECT sum(v) FROM t").await, vec!["106"]);
}
