//! Two-phase commit over the wire with the real binary: PREPARE TRANSACTION, COMMIT PREPARED,
//! ROLLBACK PREPARED, pg_prepared_xacts and max_prepared_transactions, as in PostgreSQL 15; a
//! prepared transaction survives kill -9 with its locks held.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{sqlstate, Server};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The first column of every row `sql` returns, as text.
async fn column(client: &Client, sql: &str) -> Vec<Option<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

async fn one(client: &Client, sql: &str) -> Option<String> {
    column(client, sql).await.into_iter().next().flatten()
}

/// Runs `sql` (one or more statements); a failure fails the test, naming the statement.
async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `column`'s answer for rows that are all non-NULL `values`.
fn texts(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

/// The SQLSTATE and DETAIL of the error `sql` fails with.
async fn code_and_detail(client: &Client, sql: &str) -> (String, Option<String>) {
    let e = match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e,
    };
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    (
        db.code().code().to_string(),
        db.detail().map(str::to_string),
    )
}

async fn error_code(client: &Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => sqlstate(&e),
    }
}

#[tokio::test]
async fn a_prepared_transaction_survives_kill9_with_its_row_lock_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    exec(
        &a,
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)",
    )
    .await;
    exec(&a, "BEGIN; UPDATE t SET v = 20 WHERE id = 1").await;
    exec(&a, "PREPARE TRANSACTION 'g1'").await;
    // The session is out of its block: a new statement runs in a transaction of its own.
    assert_eq!(one(&a, "SELECT v FROM t").await.as_deref(), Some("10"));
    let b = server.connect().await;
    assert_eq!(one(&b, "SELECT v FROM t").await.as_deref(), Some("10"));
    assert_eq!(
        column(
            &b,
            "SELECT gid || '/' || owner || '/' || database FROM pg_prepared_xacts"
        )
        .await,
        texts(&["g1/gnomon/gnomon"])
    );
    drop((a, b));

    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(
        column(&c, "SELECT gid FROM pg_prepared_xacts").await,
        texts(&["g1"]),
        "the prepared transaction is back after kill -9"
    );
    assert_eq!(
        one(&c, "SELECT v FROM t").await.as_deref(),
        Some("10"),
        "still invisible"
    );
    // Another session's UPDATE of the row waits for the prepared transaction's lock.
    let b = server.connect().await;
    let updater = tokio::spawn(async move {
        b.simple_query("UPDATE t SET v = v + 1 WHERE id = 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    until_someone_waits(&c).await;
    assert!(!updater.is_finished(), "the UPDATE must wait for the lock");
    exec(&c, "COMMIT PREPARED 'g1'").await;
    updater.await.unwrap().unwrap();
    // 21, not 11: the UPDATE waited and then read the committed 20 (had it not waited, COMMIT
    // PREPARED would have overwritten its 11 with 20).
    assert_eq!(one(&c, "SELECT v FROM t").await.as_deref(), Some("21"));
    assert!(column(&c, "SELECT gid FROM pg_prepared_xacts")
        .await
        .is_empty());
    drop(c);

    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(one(&c, "SELECT v FROM t").await.as_deref(), Some("21"));
    assert!(column(&c, "SELECT gid FROM pg_prepared_xacts")
        .await
        .is_empty());
}

#[tokio::test]
async fn rollback_prepared_and_errors_follow_postgresql() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    let b = server.connect().await;
    exec(&a, "CREATE TABLE t (id int PRIMARY KEY, v int)").await;
    // A multi-statement message may end with PREPARE TRANSACTION (sqlparser does not parse it).
    a.simple_query("BEGIN; INSERT INTO t VALUES (1, 1); PREPARE TRANSACTION 'r1'")
        .await
        .unwrap();
    assert_eq!(
        one(&b, "SELECT count(*) FROM t").await.as_deref(),
        Some("0")
    );
    // Resolved from another session, over the extended protocol.
    b.execute("ROLLBACK PREPARED 'r1'", &[]).await.unwrap();
    assert_eq!(
        one(&a, "SELECT count(*) FROM t").await.as_deref(),
        Some("0")
    );
    assert_eq!(error_code(&a, "ROLLBACK PREPARED 'r1'").await, "42704");
    assert_eq!(error_code(&a, "COMMIT PREPARED 'nope'").await, "42704");

    // A duplicate gid fails with 42710 and rolls the transaction back, ending the block.
    exec(
        &a,
        "BEGIN; INSERT INTO t VALUES (2, 2); PREPARE TRANSACTION 'd'",
    )
    .await;
    exec(&a, "BEGIN; INSERT INTO t VALUES (3, 3)").await;
    assert_eq!(error_code(&a, "PREPARE TRANSACTION 'd'").await, "42710");
    assert_eq!(
        one(&a, "SELECT count(*) FROM t").await.as_deref(),
        Some("0"),
        "outside any block now, and row 3 was rolled back"
    );
    // Inside a block or a multi-statement message: 25001.
    exec(&a, "BEGIN").await;
    assert_eq!(error_code(&a, "COMMIT PREPARED 'd'").await, "25001");
    exec(&a, "ROLLBACK").await;
    assert_eq!(
        error_code(&a, "SELECT 1; COMMIT PREPARED 'd'").await,
        "25001"
    );
    // A failed block answers 25P02.
    exec(&a, "BEGIN").await;
    assert_eq!(error_code(&a, "SELECT 1/0").await, "22012");
    assert_eq!(error_code(&a, "COMMIT PREPARED 'd'").await, "25P02");
    exec(&a, "ROLLBACK").await;
    // Too long a gid: 22023. Bad syntax: 42601, the session stays usable.
    exec(&a, "BEGIN").await;
    let long = format!("PREPARE TRANSACTION '{}'", "x".repeat(200));
    assert_eq!(error_code(&a, &long).await, "22023");
    assert_eq!(error_code(&a, "COMMIT PREPARED d").await, "42601");
    assert_eq!(error_code(&a, "COMMIT PREPARED 'd' junk").await, "42601");
    assert_eq!(
        one(&a, "SHOW max_prepared_transactions").await.as_deref(),
        Some("100")
    );
    assert_eq!(
        error_code(&a, "SET max_prepared_transactions = 3").await,
        "55P02"
    );
    exec(&a, "COMMIT PREPARED 'd'").await;
    assert_eq!(column(&b, "SELECT id FROM t").await, texts(&["2"]));
    drop((a, b));
    drop(server);

    // max_prepared_transactions = 0 refuses PREPARE with 55000 and rolls back.
    let server = Server::start_with(dir.path(), &["--max-prepared-transactions", "0"]);
    let a = server.connect().await;
    assert_eq!(
        one(&a, "SHOW max_prepared_transactions").await.as_deref(),
        Some("0")
    );
    exec(&a, "BEGIN; INSERT INTO t VALUES (4, 4)").await;
    let err = a.simple_query("PREPARE TRANSACTION 'z'").await.unwrap_err();
    assert_eq!(sqlstate(&err), "55000");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        db.hint(),
        Some("Set max_prepared_transactions to a nonzero value.")
    );
    assert_eq!(
        one(&a, "SELECT count(*) FROM t").await.as_deref(),
        Some("1")
    );
}

#[test]
fn psql_shows_postgresql_tags_and_warnings() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let out = Command::new(psql)
        .args(["-X", "-h", "127.0.0.1", "-p"])
        .arg(server.port.to_string())
        .args(["-U", "gnomon", "gnomon"])
        .args(["-c", "CREATE TABLE t (id int PRIMARY KEY)"])
        .args(["-c", "PREPARE TRANSACTION 'none'"])
        .args(["-c", "BEGIN", "-c", "INSERT INTO t VALUES (1)"])
        .args(["-c", "PREPARE TRANSACTION 'p'", "-c", "COMMIT PREPARED 'p'"])
        .args(["-c", "BEGIN", "-c", "PREPARE TRANSACTION 'q'"])
        .args([
            "-c",
            "ROLLBACK PREPARED 'q'",
            "-c",
            "SELECT count(*) FROM t",
        ])
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout,
        "CREATE TABLE\nROLLBACK\nBEGIN\nINSERT 0 1\nPREPARE TRANSACTION\nCOMMIT PREPARED\n\
         BEGIN\nPREPARE TRANSACTION\nROLLBACK PREPARED\n count \n-------\n     1\n(1 row)\n\n",
        "stderr: {stderr}"
    );
    assert_eq!(stderr, "WARNING:  there is no transaction in progress\n");
}

#[tokio::test]
async fn transactions_view_status_lookup_and_commit_timestamps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    exec(
        &a,
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1), (2, 2)",
    )
    .await;
    let before = one(&a, "SELECT gnomon_hlc_now()").await.unwrap();
    exec(&a, "UPDATE t SET v = 20 WHERE id = 2").await;
    let after = one(&a, "SELECT gnomon_hlc_now()").await.unwrap();
    // The system column is not part of SELECT *, and orders rows by commit time.
    let star = a.simple_query("SELECT * FROM t").await.unwrap();
    let width = star.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.len()),
        _ => None,
    });
    assert_eq!(width, Some(2));
    let qualified = a.simple_query("SELECT t.* FROM t").await.unwrap();
    let width = qualified.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.len()),
        _ => None,
    });
    assert_eq!(width, Some(2), "nor of t.*");
    assert_eq!(
        column(
            &a,
            "SELECT rank() OVER (ORDER BY gnomon_mvcc_timestamp) FROM t ORDER BY id"
        )
        .await,
        texts(&["1", "2"])
    );
    assert_eq!(
        column(&a, "SELECT id FROM t ORDER BY gnomon_mvcc_timestamp DESC").await,
        texts(&["2", "1"])
    );
    let in_window = format!(
        "SELECT t.gnomon_mvcc_timestamp > {before} AND gnomon_mvcc_timestamp < {after} FROM t WHERE id = 2"
    );
    assert_eq!(one(&a, &in_window).await.as_deref(), Some("t"));
    // The transaction's own write has no commit timestamp yet.
    exec(&a, "BEGIN; UPDATE t SET v = 10 WHERE id = 1").await;
    assert_eq!(
        one(&a, "SELECT gnomon_mvcc_timestamp FROM t WHERE id = 1").await,
        None
    );
    let b = server.connect().await;
    let active: i64 = one(
        &b,
        "SELECT xid FROM gnomon_transactions WHERE status = 'active'",
    )
    .await
    .unwrap()
    .parse()
    .unwrap();
    exec(&a, "PREPARE TRANSACTION 'in-doubt'").await;
    let status = format!("SELECT gnomon_transaction_status({active})");
    assert_eq!(one(&b, &status).await.as_deref(), Some("prepared"));
    assert_eq!(
        one(
            &b,
            &format!("SELECT gid FROM gnomon_transactions WHERE xid = {active}")
        )
        .await,
        Some("in-doubt".to_string())
    );
    assert_eq!(
        one(&b, "SELECT transaction FROM pg_prepared_xacts").await,
        Some(active.to_string())
    );
    exec(&b, "COMMIT PREPARED 'in-doubt'").await;
    assert_eq!(one(&b, &status).await.as_deref(), Some("committed"));
    // The commit timestamp in the view is the row version's.
    let committed =
        format!("SELECT commit_timestamp FROM gnomon_transactions WHERE xid = {active}");
    assert_eq!(
        one(&b, &committed).await,
        one(&b, "SELECT gnomon_mvcc_timestamp FROM t WHERE id = 1").await
    );
    // Unknown and read-only transactions have no status.
    assert_eq!(one(&b, "SELECT gnomon_transaction_status(42)").await, None);
}

/// Connects as `user` to `database` (trust: the superuser has no password).
async fn connect_as(server: &Server, user: &str, database: &str) -> Client {
    let conn = format!(
        "host=127.0.0.1 port={} user={user} dbname={database}",
        server.port
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect as {user} to {database}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The SQLSTATE, message and hint of the error `sql` fails with.
async fn error_of(client: &Client, sql: &str) -> (String, String, Option<String>) {
    let e = match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e,
    };
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    (
        db.code().code().to_string(),
        db.message().to_string(),
        db.hint().map(str::to_string),
    )
}

#[tokio::test]
async fn only_the_preparing_role_or_a_superuser_finishes_a_prepared_transaction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let admin = server.connect().await;
    exec(
        &admin,
        "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; \
             CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1); \
             GRANT ALL ON t TO alice, bob",
    )
    .await;
    exec(&admin, "CREATE DATABASE other").await;
    let alice = connect_as(&server, "alice", "gnomon").await;
    let bob = connect_as(&server, "bob", "gnomon").await;
    exec(
        &alice,
        "BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; PREPARE TRANSACTION 'a1'",
    )
    .await;
    // PostgreSQL 15 (checked against the real server): another role gets 42501 with a hint,
    // for COMMIT and ROLLBACK PREPARED alike, and the transaction stays prepared.
    let denied = (
        "42501".to_string(),
        "permission denied to finish prepared transaction".to_string(),
        Some("Must be superuser or the user that prepared the transaction.".to_string()),
    );
    assert_eq!(error_of(&bob, "COMMIT PREPARED 'a1'").await, denied);
    assert_eq!(error_of(&bob, "ROLLBACK PREPARED 'a1'").await, denied);
    // The owner check comes before the database check, as in PostgreSQL.
    let bob_elsewhere = connect_as(&server, "bob", "other").await;
    assert_eq!(
        error_of(&bob_elsewhere, "COMMIT PREPARED 'a1'").await,
        denied
    );
    let alice_elsewhere = connect_as(&server, "alice", "other").await;
    assert_eq!(
        error_of(&alice_elsewhere, "COMMIT PREPARED 'a1'").await,
        (
            "0A000".to_string(),
            "prepared transaction belongs to another database".to_string(),
            Some(
                "Connect to the database where the transaction was prepared to finish it."
                    .to_string()
            ),
        )
    );
    assert_eq!(
        column(&admin, "SELECT gid || '/' || owner FROM pg_prepared_xacts").await,
        texts(&["a1/alice"]),
        "still prepared after the refusals"
    );
    // The owner finishes it from another session.
    let alice2 = connect_as(&server, "alice", "gnomon").await;
    exec(&alice2, "COMMIT PREPARED 'a1'").await;
    assert_eq!(one(&admin, "SELECT v FROM t").await.as_deref(), Some("2"));
    // A superuser finishes anyone's.
    exec(
        &alice,
        "BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; PREPARE TRANSACTION 'a2'",
    )
    .await;
    assert_eq!(error_of(&bob, "ROLLBACK PREPARED 'a2'").await, denied);
    exec(&admin, "ROLLBACK PREPARED 'a2'").await;
    assert_eq!(one(&bob, "SELECT v FROM t").await.as_deref(), Some("2"));
    // A role made superuser may finish others' (the role is read at the command).
    exec(
        &alice,
        "BEGIN; UPDATE t SET v = 10 WHERE id = 1; PREPARE TRANSACTION 'a3'",
    )
    .await;
    exec(&admin, "ALTER ROLE bob SUPERUSER").await;
    exec(&bob, "COMMIT PREPARED 'a3'").await;
    assert_eq!(one(&admin, "SELECT v FROM t").await.as_deref(), Some("10"));
}

/// Waits until some session waits for a lock (a not-granted row in pg_locks); never judged by
/// elapsed time.
async fn until_someone_waits(c: &Client) {
    while column(c, "SELECT mode FROM pg_locks WHERE NOT granted")
        .await
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn table_locks_of_a_prepared_transaction_are_held_again_after_kill9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    exec(
        &a,
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1); \
         CREATE TABLE s (id int PRIMARY KEY); INSERT INTO s VALUES (1); \
         CREATE TABLE x (id int PRIMARY KEY)",
    )
    .await;
    // g1 updated t (ROW EXCLUSIVE on t) and locked s in SHARE mode; g2 locked x outright.
    exec(
        &a,
        "BEGIN; UPDATE t SET v = 2 WHERE id = 1; LOCK TABLE s IN SHARE MODE; \
         PREPARE TRANSACTION 'g1'",
    )
    .await;
    exec(
        &a,
        "BEGIN; LOCK TABLE x IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'g2'",
    )
    .await;
    let held = "SELECT c.relname || ':' || l.mode FROM pg_locks l JOIN pg_class c \
                ON c.oid = l.relation WHERE l.locktype = 'relation' AND l.granted \
                ORDER BY 1";
    let before = column(&a, held).await;
    drop(a);

    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(
        column(&c, held).await,
        before,
        "the same table locks are held after the restart"
    );
    assert_eq!(
        before,
        texts(&["s:ShareLock", "t:RowExclusiveLock", "x:AccessExclusiveLock"])
    );
    // DDL and LOCK TABLE on t conflict with the ROW EXCLUSIVE lock: NOWAIT and lock_timeout
    // give up with 55P03.
    exec(&c, "BEGIN").await;
    assert_eq!(
        error_code(&c, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE NOWAIT").await,
        "55P03"
    );
    exec(&c, "ROLLBACK; SET lock_timeout = '50ms'").await;
    assert_eq!(error_code(&c, "DROP TABLE t").await, "55P03");
    assert_eq!(error_code(&c, "TRUNCATE t").await, "55P03");
    assert_eq!(
        error_code(&c, "ALTER TABLE t ADD COLUMN w int").await,
        "55P03"
    );
    // SHARE on s: writers wait, readers do not.
    assert_eq!(error_code(&c, "INSERT INTO s VALUES (2)").await, "55P03");
    assert_eq!(
        one(&c, "SELECT count(*) FROM s").await.as_deref(),
        Some("1")
    );
    // ACCESS EXCLUSIVE on x: even readers wait.
    assert_eq!(error_code(&c, "SELECT * FROM x").await, "55P03");
    // Row writers of t are compatible with ROW EXCLUSIVE (only the updated row is locked).
    exec(&c, "INSERT INTO t VALUES (2, 2)").await;

    // A DROP TABLE waits (seen in pg_locks) until COMMIT PREPARED, then goes through.
    exec(&c, "RESET lock_timeout").await;
    let d = server.connect().await;
    let dropper = tokio::spawn(async move { d.batch_execute("DROP TABLE t").await });
    until_someone_waits(&c).await;
    assert!(!dropper.is_finished());
    exec(&c, "COMMIT PREPARED 'g1'").await;
    dropper
        .await
        .unwrap()
        .expect("DROP TABLE after COMMIT PREPARED");
    assert_eq!(error_code(&c, "SELECT * FROM t").await, "42P01");
    exec(&c, "INSERT INTO s VALUES (2)").await;
    exec(&c, "ROLLBACK PREPARED 'g2'").await;
    assert!(column(&c, "SELECT * FROM x").await.is_empty());
    assert!(column(&c, held).await.is_empty(), "every lock released");
}

#[tokio::test]
async fn write_skew_with_one_side_prepared_fails_the_other_side_before_and_after_kill9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE doctors (id int PRIMARY KEY, on_call bool); \
         INSERT INTO doctors VALUES (1, true), (2, true)",
    )
    .await;
    let take_off = |id: i32| {
        format!(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; \
             SELECT count(*) FROM doctors WHERE on_call; \
             UPDATE doctors SET on_call = false WHERE id = {id}"
        )
    };
    // Before a restart: A prepares (PostgreSQL 15 allows PREPARE at SERIALIZABLE); B does
    // the same on the other row and fails at its UPDATE, as in PostgreSQL (the prepared
    // transaction can no longer be the one aborted).
    exec(&a, &take_off(1)).await;
    exec(&a, "PREPARE TRANSACTION 'skew1'").await;
    exec(
        &b,
        "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM doctors WHERE on_call",
    )
    .await;
    // The other side of the write skew fails, as in PostgreSQL 15.
    assert_eq!(
        code_and_detail(&b, "UPDATE doctors SET on_call = false WHERE id = 2").await,
        (
            "40001".to_string(),
            Some("Reason code: Canceled on identification as a pivot, during write.".to_string())
        ),
    );
    exec(&b, "ROLLBACK").await;
    exec(&a, "COMMIT PREPARED 'skew1'").await;
    assert_eq!(
        one(&a, "SELECT count(*) FROM doctors WHERE on_call")
            .await
            .as_deref(),
        Some("1")
    );

    // After kill -9: the recovered prepared transaction keeps its SIREAD set and is assumed to
    // have conflicts; B fails (at its read of the row A wrote, as in PostgreSQL) and the
    // prepared side commits.
    exec(&a, "UPDATE doctors SET on_call = true").await;
    exec(&a, &take_off(1)).await;
    exec(&a, "PREPARE TRANSACTION 'skew2'").await;
    drop((a, b));
    server.kill9();
    let server = Server::start(dir.path());
    let b = server.connect().await;
    exec(&b, "BEGIN ISOLATION LEVEL SERIALIZABLE").await;
    // The read of the prepared transaction's write fails, as in PostgreSQL 15 after a crash.
    assert_eq!(
        code_and_detail(&b, "SELECT count(*) FROM doctors WHERE on_call").await,
        (
            "40001".to_string(),
            Some("Reason code: Canceled on conflict out to old pivot.".to_string())
        ),
    );
    exec(&b, "ROLLBACK").await;
    // A transaction that never meets the prepared one's writes is not refused: it reads row 2
    // only (which the prepared one read, but did not write) and updates it.
    exec(
        &b,
        "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT on_call FROM doctors WHERE id = 2; \
         UPDATE doctors SET on_call = true WHERE id = 2; COMMIT",
    )
    .await;
    exec(&b, "COMMIT PREPARED 'skew2'").await;
    assert_eq!(
        column(&b, "SELECT id || ':' || on_call FROM doctors ORDER BY id").await,
        texts(&["1:false", "2:true"])
    );
}

#[tokio::test]
async fn partition_locks_of_a_prepared_transaction_are_held_again_after_kill9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    exec(
        &a,
        "CREATE TABLE m (k int PRIMARY KEY, v text) PARTITION BY RANGE (k); \
         CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (MINVALUE) TO (10); \
         CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20); \
         INSERT INTO m VALUES (1, 'a'), (15, 'b')",
    )
    .await;
    exec(
        &a,
        "BEGIN; UPDATE m SET v = 'p' WHERE k = 1; PREPARE TRANSACTION 'pm'",
    )
    .await;
    let parts = "SELECT p.relname || ':' || c.relname || ':' || l.mode FROM pg_locks l \
                 JOIN pg_class p ON p.oid = l.relation JOIN pg_class c ON c.oid = l.page \
                 WHERE l.locktype = 'partition' ORDER BY 1";
    let before = column(&a, parts).await;
    assert_eq!(before, texts(&["m:m1:IntentExclusiveLock"]));
    drop(a);

    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(
        column(&c, parts).await,
        before,
        "the partition lock is back"
    );
    // LOCK TABLE on the partition the prepared transaction wrote in conflicts with its IX;
    // the other partition is free.
    exec(&c, "BEGIN").await;
    assert_eq!(
        error_code(&c, "LOCK TABLE m1 IN ACCESS EXCLUSIVE MODE NOWAIT").await,
        "55P03"
    );
    exec(
        &c,
        "ROLLBACK; BEGIN; LOCK TABLE m2 IN ACCESS EXCLUSIVE MODE NOWAIT; ROLLBACK",
    )
    .await;
    exec(&c, "COMMIT PREPARED 'pm'").await;
    exec(
        &c,
        "BEGIN; LOCK TABLE m1 IN ACCESS EXCLUSIVE MODE NOWAIT; COMMIT",
    )
    .await;
    assert_eq!(
        one(&c, "SELECT v FROM m WHERE k = 1").await.as_deref(),
        Some("p")
    );
}

#[tokio::test]
async fn row_locks_of_a_prepared_transaction_keep_their_modes_after_kill9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let a = server.connect().await;
    exec(
        &a,
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1), (2, 2)",
    )
    .await;
    // Row 1 locked FOR SHARE, row 2 updated (FOR NO KEY UPDATE: no key column changes).
    exec(
        &a,
        "BEGIN; SELECT * FROM t WHERE id = 1 FOR SHARE; UPDATE t SET v = 20 WHERE id = 2; \
         PREPARE TRANSACTION 'modes'",
    )
    .await;
    drop(a);
    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    // As in PostgreSQL (where these locks live in the rows themselves): compatible modes
    // go ahead, conflicting ones get 55P03 with NOWAIT.
    c.batch_execute(
        "BEGIN; SELECT * FROM t WHERE id = 1 FOR SHARE NOWAIT; \
         SELECT * FROM t WHERE id = 2 FOR KEY SHARE NOWAIT; ROLLBACK",
    )
    .await
    .expect("FOR SHARE beside FOR SHARE, FOR KEY SHARE beside FOR NO KEY UPDATE");
    exec(&c, "BEGIN").await;
    assert_eq!(
        error_code(&c, "SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT").await,
        "55P03"
    );
    exec(&c, "ROLLBACK; BEGIN").await;
    assert_eq!(
        error_code(&c, "SELECT * FROM t WHERE id = 2 FOR SHARE NOWAIT").await,
        "55P03"
    );
    exec(&c, "ROLLBACK").await;
    exec(&c, "COMMIT PREPARED 'modes'").await;
    assert_eq!(
        column(&c, "SELECT v FROM t ORDER BY id").await,
        texts(&["1", "20"])
    );
}
