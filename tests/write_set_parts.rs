//! Bulk transactions write their write set to the WAL in parts (`--write-set-part-size`, the
//! mvcc essay's "Bulk work"), and stay atomic over the wire and across kill -9: a committed
//! COPY / INSERT ... SELECT is all there after a restart; a rolled back one, a failed COPY, and
//! one still open at the kill (with background checkpoints running while it was open) leave
//! nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{find_pg_tool, Server};

/// Tiny parts (every ~4 kB of writes), frequent checkpoints, and the admin listener to see them.
fn start(dir: &std::path::Path) -> Server {
    Server::start_with(
        dir,
        &[
            "--write-set-part-size",
            "4kB",
            "--checkpoint-wal-size",
            "1kB",
            "--checkpoint-timeout",
            "10ms",
            "--http",
            "127.0.0.1:0",
        ],
    )
}

fn checkpoints(http: u16) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", http)).expect("admin listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix("gnomon_checkpoints_total ")?.parse().ok())
        .unwrap_or_else(|| panic!("gnomon_checkpoints_total missing:\n{text}"))
}

/// Waits (bounded only by the test harness) until a checkpoint completes after this call.
fn wait_for_checkpoint(http: u16) {
    let before = checkpoints(http);
    while checkpoints(http) < before + 2.0 {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `COPY table FROM STDIN` through psql with `lines` on its stdin.
fn psql_copy(server: &Server, table: &str, lines: &str) -> std::process::Output {
    let psql = find_pg_tool("psql").expect("psql (PostgreSQL 15 client) is installed");
    let mut child = Command::new(psql)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &server.conn_str()])
        .args(["-c", &format!("COPY {table} FROM STDIN")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait_with_output().expect("psql")
}

fn rows(n: usize, tag: &str) -> String {
    (1..=n).map(|i| format!("{i}\t{tag} {i}\n")).collect()
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_transactions_in_parts_are_all_or_nothing_across_kill_9() {
    const N: usize = 3000; // ~90 kB of writes: some twenty parts
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let http = server.http_port.expect("admin listener announced");
    let client = server.connect().await;
    let part_size = client
        .query_one("SHOW write_set_part_size", &[])
        .await
        .unwrap();
    assert_eq!(part_size.get::<_, String>(0), "4kB");
    for t in ["copied", "failed", "rolled", "open", "spans", "small"] {
        client
            .batch_execute(&format!("CREATE TABLE {t} (id int PRIMARY KEY, note text)"))
            .await
            .unwrap();
    }

    // A committed COPY.
    let out = psql_copy(&server, "copied", &rows(N, "copied"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("COPY {N}")
    );

    // A COPY that fails at its last line (a duplicate key) leaves nothing.
    let mut bad = rows(N, "failed");
    bad.push_str("7\tduplicate\n");
    let out = psql_copy(&server, "failed", &bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("duplicate key"),
        "{out:?}"
    );
    assert_eq!(count(&client, "failed").await, 0);

    // ROLLBACK of an INSERT ... SELECT that wrote parts.
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO rolled SELECT g, 'rolled ' || g FROM generate_series(1, {N}) g; \
             ROLLBACK"
        ))
        .await
        .unwrap();
    assert_eq!(count(&client, "rolled").await, 0);

    // A transaction that spans checkpoints and commits.
    let spanning = server.connect().await;
    spanning
        .batch_execute(&format!(
            "BEGIN; INSERT INTO spans SELECT g, 'spans ' || g FROM generate_series(1, {N}) g"
        ))
        .await
        .unwrap();
    wait_for_checkpoint(http);
    spanning
        .batch_execute(&format!(
            "INSERT INTO spans SELECT g, 'more ' || g FROM generate_series({}, {}) g; COMMIT",
            N + 1,
            2 * N
        ))
        .await
        .unwrap();

    // One still open (parts written, checkpoints after them) when the server is killed.
    let open = server.connect().await;
    open.batch_execute(&format!(
        "BEGIN; INSERT INTO open SELECT g, 'open ' || g FROM generate_series(1, {N}) g"
    ))
    .await
    .unwrap();
    client
        .batch_execute("INSERT INTO small VALUES (1, 'after the open load')")
        .await
        .unwrap();
    wait_for_checkpoint(http);
    assert_eq!(count(&client, "open").await, 0, "not visible before COMMIT");
    server.kill9();

    let server = start(dir.path());
    let client = server.connect().await;
    assert_eq!(count(&client, "copied").await, N as i64);
    let last = client
        .query_one("SELECT note FROM copied WHERE id = $1", &[&(N as i32)])
        .await
        .unwrap();
    assert_eq!(last.get::<_, String>(0), format!("copied {N}"));
    assert_eq!(count(&client, "failed").await, 0);
    assert_eq!(count(&client, "rolled").await, 0);
    assert_eq!(count(&client, "spans").await, 2 * N as i64);
    assert_eq!(count(&client, "open").await, 0);
    assert_eq!(count(&client, "small").await, 1);
    // The tables take new rows after recovery.
    client
        .batch_execute("INSERT INTO open VALUES (1, 'after restart')")
        .await
        .unwrap();
    assert_eq!(count(&client, "open").await, 1);
}
