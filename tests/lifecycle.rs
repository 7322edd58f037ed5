//! The binary's life: command line, config file, the listen rule, clean shutdown on
//! SIGTERM, and no acknowledged commit lost to SIGKILL.

mod common;

use std::ffi::OsString;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::Server;

fn gnomon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(args)
        .output()
        .expect("run gnomon")
}

#[test]
fn help_prints_usage_and_bad_flags_are_refused() {
    let help = gnomon(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--data-dir", "--listen", "--config"] {
        assert!(text.contains(flag), "usage mentions {flag}:\n{text}");
    }
    let bad = gnomon(&["--frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn non_loopback_listen_is_refused_while_the_superuser_has_no_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = gnomon(&[
        "--data-dir",
        dir.path().to_str().expect("utf-8 path"),
        "--listen",
        "0.0.0.0:5433",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:5433"), "{err}");
}

#[tokio::test]
async fn config_file_supplies_data_dir_and_listen_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("from-config");
    let config = dir.path().join("gnomon.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nfsync = true\n",
            data.to_str().expect("utf-8 path")
        ),
    )
    .expect("write config");
    let server = Server::spawn(&data, &[OsString::from("--config"), config.into()]);
    let client = server.connect().await;
    client.simple_query("SELECT 1").await.expect("query");
    assert!(
        data.is_dir(),
        "the data directory from the config file is used"
    );
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_keeps_committed_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE k (id int PRIMARY KEY); INSERT INTO k VALUES (1), (2), (3)")
        .await
        .expect("setup");
    drop(client);
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    let server = Server::start(dir.path());
    let client = server.connect().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM k", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_insert() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE d (id int PRIMARY KEY, note text)")
        .await
        .expect("create");
    let acknowledged = Arc::new(Mutex::new(Vec::<i32>::new()));
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel();
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        tokio::spawn(async move {
            let mut enough_tx = Some(enough_tx);
            let insert = client
                .prepare("INSERT INTO d VALUES ($1, $2)")
                .await
                .expect("prepare");
            for id in 0..1_000_000i32 {
                if client.execute(&insert, &[&id, &"row"]).await.is_err() {
                    break; // the server is gone
                }
                let count = {
                    let mut acked = acknowledged.lock().expect("lock");
                    acked.push(id);
                    acked.len()
                };
                if count == 200 {
                    if let Some(tx) = enough_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        })
    };
    enough_rx
        .await
        .expect("writer reached 200 acknowledged inserts");
    // Kill while the writer is still inserting.
    server.kill9();
    writer.await.expect("writer task");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 200);

    let server = Server::start(dir.path());
    let client = server.connect().await;
    let rows = client
        .query("SELECT id FROM d ORDER BY id", &[])
        .await
        .expect("select after restart");
    let present: std::collections::HashSet<i32> = rows.iter().map(|r| r.get(0)).collect();
    let lost: Vec<i32> = acknowledged
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged rows lost after kill -9: {lost:?}"
    );
}
