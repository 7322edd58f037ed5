//! TRUNCATE and ADD PRIMARY KEY drop a table's old rows as range deletes: a REPEATABLE READ
//! snapshot taken before they commit keeps reading the old rows (the range delete is newer
//! than its snapshot), later snapshots see the new state, and a restart agrees.

mod common;

use common::{col, Server};

#[tokio::test(flavor = "multi_thread")]
async fn an_older_snapshot_keeps_the_rows_a_truncate_or_rewrite_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let reader = server.connect().await;
    let writer = server.connect().await;
    writer
        .batch_execute(
            "create table t (a int, b text); \
             insert into t select g, 'x' from generate_series(1, 1000) g; \
             create table u (a int); \
             insert into u select g from generate_series(1, 500) g",
        )
        .await
        .unwrap();
    reader
        .batch_execute("begin isolation level repeatable read; select 1")
        .await
        .unwrap();
    writer
        .batch_execute("alter table t add primary key (a); truncate u")
        .await
        .unwrap();
    assert_eq!(col(&writer, "select count(*) from t").await, ["1000"]);
    assert_eq!(col(&writer, "select count(*) from u").await, ["0"]);
    // The snapshot from before both commits still reads every old row.
    assert_eq!(col(&reader, "select count(*) from t").await, ["1000"]);
    assert_eq!(col(&reader, "select sum(a) from u").await, ["125250"]);
    reader.batch_execute("commit").await.unwrap();
    assert_eq!(col(&reader, "select count(*) from u").await, ["0"]);
    // The new key is in force, the truncated table takes rows again.
    let dup = writer
        .batch_execute("insert into t values (5, 'y')")
        .await
        .expect_err("duplicate key");
    assert_eq!(common::sqlstate(&dup), "23505");
    writer
        .batch_execute("insert into u values (7)")
        .await
        .unwrap();
    drop((reader, writer));
    server.kill9();
    let server = Server::start(dir.path());
    let client = server.connect().await;
    assert_eq!(col(&client, "select count(*) from t").await, ["1000"]);
    assert_eq!(col(&client, "select a from u").await, ["7"]);
}
