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
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; UPDATE t SET v = 20 WHERE id = 1")
        .await
        .unwrap();
    a.batch_execute("PREPARE TRANSACTION 'g1'").await.unwrap();
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
        vec![Some("g1/gnomon/gnomon".to_string())]
    );
    drop((a, b));

    server.kill9();
    let server = Server::start(dir.path());
    let c = server.connect().await;
    assert_eq!(
        column(&c, "SELECT gid FROM pg_prepared_xacts").await,
        vec![Some("g1".to_string())],
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!updater.is_finished(), "the UPDATE must wait for the lock");
    c.batch_execute("COMMIT PREPARED 'g1'").await.unwrap();
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
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
        .await
        .unwrap();
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
    a.batch_execute("BEGIN; INSERT INTO t VALUES (2, 2); PREPARE TRANSACTION 'd'")
        .await
        .unwrap();
    a.batch_execute("BEGIN; INSERT INTO t VALUES (3, 3)")
        .await
        .unwrap();
    assert_eq!(error_code(&a, "PREPARE TRANSACTION 'd'").await, "42710");
    assert_eq!(
        one(&a, "SELECT count(*) FROM t").await.as_deref(),
        Some("0"),
        "outside any block now, and row 3 was rolled back"
    );
    // Inside a block or a multi-statement message: 25001.
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(error_code(&a, "COMMIT PREPARED 'd'").await, "25001");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        error_code(&a, "SELECT 1; COMMIT PREPARED 'd'").await,
        "25001"
    );
    // A failed block answers 25P02.
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(error_code(&a, "SELECT 1/0").await, "22012");
    assert_eq!(error_code(&a, "COMMIT PREPARED 'd'").await, "25P02");
    a.batch_execute("ROLLBACK").await.unwrap();
    // Too long a gid: 22023. Bad syntax: 42601, the session stays usable.
    a.batch_execute("BEGIN").await.unwrap();
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
    a.batch_execute("COMMIT PREPARED 'd'").await.unwrap();
    assert_eq!(
        column(&b, "SELECT id FROM t").await,
        vec![Some("2".to_string())]
    );
    drop((a, b));
    drop(server);

    // max_prepared_transactions = 0 refuses PREPARE with 55000 and rolls back.
    let server = Server::start_with(dir.path(), &["--max-prepared-transactions", "0"]);
    let a = server.connect().await;
    assert_eq!(
        one(&a, "SHOW max_prepared_transactions").await.as_deref(),
        Some("0")
    );
    a.batch_execute("BEGIN; INSERT INTO t VALUES (4, 4)")
        .await
        .unwrap();
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
    a.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1), (2, 2)",
    )
    .await
    .unwrap();
    let before = one(&a, "SELECT gnomon_hlc_now()").await.unwrap();
    a.batch_execute("UPDATE t SET v = 20 WHERE id = 2")
        .await
        .unwrap();
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
        vec![Some("1".to_string()), Some("2".to_string())]
    );
    assert_eq!(
        column(&a, "SELECT id FROM t ORDER BY gnomon_mvcc_timestamp DESC").await,
        vec![Some("2".to_string()), Some("1".to_string())]
    );
    let in_window = format!(
        "SELECT t.gnomon_mvcc_timestamp > {before} AND gnomon_mvcc_timestamp < {after} FROM t WHERE id = 2"
    );
    assert_eq!(one(&a, &in_window).await.as_deref(), Some("t"));
    // The transaction's own write has no commit timestamp yet.
    a.batch_execute("BEGIN; UPDATE t SET v = 10 WHERE id = 1")
        .await
        .unwrap();
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
    a.batch_execute("PREPARE TRANSACTION 'in-doubt'")
        .await
        .unwrap();
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
    b.batch_execute("COMMIT PREPARED 'in-doubt'").await.unwrap();
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
