//! Databases over the wire: psql's `\c` and `\dt` show each database's own tables (output
//! equal to PostgreSQL 15's), and every database keeps its objects separate across a
//! checkpoint, a clean restart and kill -9.

mod common;

use std::path::Path;

use common::Server;

/// `\c` between two databases that both have a `t1`, `\dt` in each, DROP DATABASE: the
/// output is PostgreSQL 15's byte for byte (tests/sql/databases.out was made by PG 15.18 with
/// a superuser `gnomon` and a database `gnomon`).
#[test]
fn psql_connect_and_dt_show_each_databases_own_tables() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let output = common::psql_script(&psql, &server, &sql_dir.join("databases.sql"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let expected = std::fs::read_to_string(sql_dir.join("databases.out")).expect("read .out");
    assert_eq!(stdout, expected, "psql output differs from PostgreSQL's");
}

async fn connect(server: &Server, db: &str) -> tokio_postgres::Client {
    let conn = format!(
        "host=127.0.0.1 port={} user=gnomon dbname={db}",
        server.port
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// What `t` holds in database `db`: row count and the distinct tags.
async fn contents(server: &Server, db: &str) -> (i64, Vec<String>) {
    let c = connect(server, db).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    let tags = c
        .query("SELECT DISTINCT tag FROM t ORDER BY 1", &[])
        .await
        .expect("tags")
        .iter()
        .map(|r| r.get(0))
        .collect();
    (n, tags)
}

const DATABASES: [&str; 3] = ["gnomon", "db1", "db2"];

#[tokio::test]
async fn databases_stay_separate_across_checkpoints_restart_and_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Small checkpoint threshold: the rows below are checkpointed several times over.
    let args = ["--checkpoint-wal-size", "32kB"];
    let server = Server::start_with(dir.path(), &args);
    let admin = connect(&server, "gnomon").await;
    admin
        .batch_execute("CREATE DATABASE db1")
        .await
        .expect("db1");
    admin
        .batch_execute("CREATE DATABASE db2")
        .await
        .expect("db2");
    // The same table and index names in every database, different rows.
    for (i, db) in DATABASES.iter().enumerate() {
        let c = connect(&server, db).await;
        c.batch_execute(&format!(
            "CREATE TABLE t (id serial PRIMARY KEY, tag text, pad text);
             CREATE INDEX t_tag ON t (tag);
             INSERT INTO t (tag, pad) SELECT '{db}', repeat('x', 100)
               FROM generate_series(1, {})",
            1000 * (i + 1)
        ))
        .await
        .expect("fill");
    }
    drop(admin);
    // Clean shutdown (a final checkpoint), restart, more rows, kill -9, restart.
    server.terminate();
    let server = Server::start_with(dir.path(), &args);
    for db in DATABASES {
        let c = connect(&server, db).await;
        c.batch_execute(&format!(
            "INSERT INTO t (tag) SELECT '{db}-after' FROM generate_series(1, 10)"
        ))
        .await
        .expect("insert after restart");
    }
    let c = connect(&server, "db2").await;
    c.batch_execute("DROP TABLE t; CREATE TABLE t (tag text); INSERT INTO t VALUES ('db2-new')")
        .await
        .expect("replace t in db2");
    drop(c);
    server.kill9();
    let server = Server::start_with(dir.path(), &args);
    assert_eq!(
        contents(&server, "gnomon").await,
        (1010, vec!["gnomon".to_string(), "gnomon-after".to_string()])
    );
    assert_eq!(
        contents(&server, "db1").await,
        (2010, vec!["db1".to_string(), "db1-after".to_string()])
    );
    assert_eq!(
        contents(&server, "db2").await,
        (1, vec!["db2-new".to_string()])
    );
    // Each index is its database's own: an index scan by tag finds only local rows.
    let c = connect(&server, "db1").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM t WHERE tag = 'gnomon'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
}
