//! tokio-postgres against the real server: simple and extended protocol, prepared statements,
//! binary parameters and results, SQLSTATEs, the failed-transaction rule, portals, cancel,
//! concurrent sessions.

mod common;

use std::time::Duration;

use common::{sqlstate, Server};
use tokio_postgres::types::Type;
use tokio_postgres::{NoTls, SimpleQueryMessage};

fn temp_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    (dir, server)
}

/// Rows and CommandComplete counts of a simple query, in order.
fn summarize(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(format!(
                "row {}",
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            SimpleQueryMessage::CommandComplete(n) => Some(format!("complete {n}")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn simple_query_runs_every_statement_of_a_string() {
    let (_dir, server) = temp_server();
    let client = server.connect().await;
    let messages = client
        .simple_query(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t VALUES (1, 'a'), (2, NULL); \
             SELECT id, v FROM t ORDER BY id",
        )
        .await
        .expect("simple query");
    assert_eq!(
        summarize(&messages),
        vec![
            "complete 0",
            "complete 2",
            "row 1,a",
            "row 2,NULL",
            "complete 2"
        ]
    );
    let empty = client.simple_query("").await.expect("empty query");
    assert!(
        !summarize(&empty).iter().any(|m| m.starts_with("row")),
        "an empty query returns no rows"
    );
}

#[tokio::test]
async fn extended_query_binds_binary_parameters_and_returns_binary_results() {
    let (_dir, server) = temp_server();
    let client = server.connect().await;
    let row = client
        .query_one("SELECT $1::int4 + 1, $2::text", &[&41i32, &"x"])
        .await
        .expect("query with parameters");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), "x");

    client
        .batch_execute(
            "CREATE TABLE kinds (id int8 PRIMARY KEY, s int2, f float8, b boolean, t text, by bytea)",
        )
        .await
        .expect("create table");
    let insert = client
        .prepare_typed(
            "INSERT INTO kinds VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Type::INT8,
                Type::INT2,
                Type::FLOAT8,
                Type::BOOL,
                Type::TEXT,
                Type::BYTEA,
            ],
        )
        .await
        .expect("prepare insert");
    let n = client
        .execute(
            &insert,
            &[&7i64, &-3i16, &2.5f64, &true, &"héllo", &vec![0u8, 255]],
        )
        .await
        .expect("insert");
    assert_eq!(n, 1);
    let n = client
        .execute(
            &insert,
            &[
                &8i64,
                &None::<i16>,
                &None::<f64>,
                &None::<bool>,
                &None::<&str>,
                &None::<Vec<u8>>,
            ],
        )
        .await
        .expect("insert nulls");
    assert_eq!(n, 1);

    let rows = client
        .query("SELECT id, s, f, b, t, by FROM kinds ORDER BY id", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, i64>(0), 7);
    assert_eq!(rows[0].get::<_, i16>(1), -3);
    assert_eq!(rows[0].get::<_, f64>(2), 2.5);
    assert!(rows[0].get::<_, bool>(3));
    assert_eq!(rows[0].get::<_, String>(4), "héllo");
    assert_eq!(rows[0].get::<_, Vec<u8>>(5), vec![0u8, 255]);
    assert_eq!(rows[1].get::<_, Option<i16>>(1), None);
    assert_eq!(rows[1].get::<_, Option<String>>(4), None);
}

#[tokio::test]
async fn prepared_statement_is_described_once_and_reused() {
    let (_dir, server) = temp_server();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE p (id int PRIMARY KEY, name varchar(20))")
        .await
        .expect("create");
    let insert = client
        .prepare("INSERT INTO p (id, name) VALUES ($1, $2)")
        .await
        .expect("prepare with inferred types");
    assert_eq!(insert.params(), &[Type::INT4, Type::VARCHAR]);
    for i in 0..5i32 {
        client
            .execute(&insert, &[&i, &format!("n{i}")])
            .await
            .expect("execute prepared");
    }
    let select = client
        .prepare("SELECT name FROM p WHERE id = $1")
        .await
        .expect("prepare select");
    assert_eq!(select.columns().len(), 1);
    assert_eq!(select.columns()[0].name(), "name");
    for i in 0..5i32 {
        let row = client.query_one(&select, &[&i]).await.expect("select");
        assert_eq!(row.get::<_, String>(0), format!("n{i}"));
    }
    let count: i64 = client
        .query_one("SELECT count(*) FROM p", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 5);
}

#[tokio::test]
async fn errors_carry_their_sqlstate_and_the_session_stays_usable() {
    let (_dir, server) = temp_server();
    let client = server.connect().await;
    let missing = client
        .simple_query("SELECT * FROM nowhere")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&missing), "42P01");
    let syntax = client.simple_query("SELEKT 1").await.unwrap_err();
    assert_eq!(sqlstate(&syntax), "42601");
    let div = client
        .query("SELECT 1 / $1::int4", &[&0i32])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&div), "22012");
    client
        .batch_execute("CREATE TABLE u (id int PRIMARY KEY)")
        .await
        .expect("create");
    client
        .batch_execute("INSERT INTO u VALUES (1)")
        .await
        .expect("insert");
    let dup = client
        .batch_execute("INSERT INTO u VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&dup), "23505");
    let prepare_error = client.prepare("SELECT nope FROM u").await.unwrap_err();
    assert_eq!(sqlstate(&prepare_error), "42703");
    let row = client
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("still usable");
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn failed_transaction_ignores_statements_and_commit_rolls_back() {
    let (_dir, server) = temp_server();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE f (id int PRIMARY KEY)")
        .await
        .expect("create");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("INSERT INTO f VALUES (1)")
        .await
        .expect("insert");
    let err = client
        .batch_execute("SELECT * FROM nowhere")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01");
    let ignored = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&ignored), "25P02");
    // The extended protocol obeys the same rule.
    let ignored = client.query("SELECT $1::int4", &[&1i32]).await.unwrap_err();
    assert_eq!(sqlstate(&ignored), "25P02");
    client
        .batch_execute("COMMIT")
        .await
        .expect("commit of a failed transaction");
    let count: i64 = client
        .query_one("SELECT count(*) FROM f", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0, "COMMIT of a failed transaction rolls back");
}

#[tokio::test]
async fn portal_with_a_row_limit_is_fetched_page_by_page() {
    let (_dir, server) = temp_server();
    let mut client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE r (id int PRIMARY KEY); \
             INSERT INTO r VALUES (1),(2),(3),(4),(5),(6),(7)",
        )
        .await
        .expect("setup");
    let tx = client.transaction().await.expect("begin");
    let stmt = tx
        .prepare("SELECT id FROM r ORDER BY id")
        .await
        .expect("prepare");
    let portal = tx.bind(&stmt, &[]).await.expect("bind");
    let mut pages = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 3).await.expect("fetch page");
        if rows.is_empty() {
            break;
        }
        pages.push(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>());
    }
    assert_eq!(pages, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn concurrent_sessions_see_only_committed_rows() {
    let (_dir, server) = temp_server();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE c (id int PRIMARY KEY, who text)")
        .await
        .expect("create");
    a.batch_execute("BEGIN; INSERT INTO c VALUES (0, 'a')")
        .await
        .expect("insert in open transaction");
    let seen: i64 = b
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(seen, 0, "uncommitted row is invisible to other sessions");
    a.batch_execute("COMMIT").await.expect("commit");
    let seen: i64 = b
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(seen, 1);

    let mut writers = Vec::new();
    for w in 0..4i32 {
        let client = server.connect().await;
        writers.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO c VALUES ($1, $2)")
                .await
                .expect("prepare");
            for i in 0..10i32 {
                client
                    .execute(&insert, &[&(1 + w * 10 + i), &format!("w{w}")])
                    .await
                    .expect("insert");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer task");
    }
    let total: i64 = b
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(total, 41);
}

#[tokio::test]
async fn unknown_role_and_database_are_refused_like_postgres() {
    let (_dir, server) = temp_server();
    let role = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=mallory dbname=gnomon",
            server.port
        ),
        NoTls,
    )
    .await
    .err()
    .expect("unknown role is refused");
    assert_eq!(sqlstate(&role), "28000");
    assert_eq!(
        role.as_db_error().map(|e| e.message()),
        Some("role \"mallory\" does not exist")
    );
    let db = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=gnomon dbname=nope",
            server.port
        ),
        NoTls,
    )
    .await
    .err()
    .expect("unknown database is refused");
    assert_eq!(sqlstate(&db), "3D000");
    assert_eq!(
        db.as_db_error().map(|e| e.message()),
        Some("database \"nope\" does not exist")
    );
}

#[tokio::test]
async fn cancel_request_interrupts_a_running_statement() {
    let (_dir, server) = temp_server();
    let client = server.connect().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        // Give the statement time to start; if the cancel arrives first it is ignored and the
        // statement would run its full length, failing the assertion below.
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await
    });
    let err = client
        .simple_query("SELECT pg_sleep(30)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "57014");
    canceller.await.expect("join").expect("cancel request sent");
    let row = client
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("usable after cancel");
    assert_eq!(row.get::<_, i32>(0), 1);
}
