//! The Unix-domain socket (`--unix-socket-dir DIR`): psql, pgbench and tokio-postgres connect
//! through `DIR/.s.PGSQL.PORT` exactly as to PostgreSQL's; the access rules see it as `local`;
//! the file survives a crash only until the next start and is gone after a clean stop; a
//! second server cannot take a socket a live one answers on.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::Server;

/// `host=DIR`: libpq and tokio-postgres take a host starting with `/` as a socket directory.
async fn connect_unix(
    dir: &Path,
    port: u16,
    user: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn = format!(
        "host={} port={port} user={user} dbname=gnomon",
        dir.display()
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn socket_file(dir: &Path, port: u16) -> std::path::PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_connect_over_the_unix_socket_and_see_what_tcp_clients_see() {
    let data = tempfile::tempdir().unwrap();
    let sockets = tempfile::tempdir().unwrap();
    let dir = sockets.path().to_str().unwrap();
    let server = Server::start_with(data.path(), &["--unix-socket-dir", dir]);
    let file = socket_file(sockets.path(), server.port);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o777,
        "every local user may connect, like PostgreSQL's default"
    );

    let local = connect_unix(sockets.path(), server.port, "gnomon")
        .await
        .unwrap();
    local
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'over the socket')")
        .await
        .unwrap();
    let tcp = server.connect().await;
    assert_eq!(
        common::col(&tcp, "SELECT v FROM t WHERE k = 1").await,
        ["over the socket"]
    );
    // Errors leave the session usable, as over TCP.
    let e = local
        .simple_query("SELECT * FROM missing")
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e), "42P01");
    assert_eq!(common::col(&local, "SELECT count(*) FROM t").await, ["1"]);

    let Some(psql) = common::find_pg_tool("psql") else {
        if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
            panic!("psql is required in CI but was not found");
        }
        eprintln!("SKIPPED (psql part): psql not found");
        return;
    };
    let run_psql = |extra: &[&str]| {
        let out = Command::new(&psql)
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                dir,
                "-p",
                &server.port.to_string(),
                "-U",
                "gnomon",
            ])
            .args(extra)
            .env_remove("PGPASSWORD")
            .env_remove("PGSSLMODE")
            .output()
            .expect("run psql");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = run_psql(&["-c", "SELECT v FROM t", "gnomon"]);
    assert!(ok, "{err}");
    assert_eq!(out, "over the socket");
    // libpq never asks for TLS on a Unix socket; a client that does gets 'N', as from
    // PostgreSQL, even though this server has no certificate either way.
    let mut raw = std::os::unix::net::UnixStream::connect(&file).unwrap();
    raw.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut answer = [0u8; 1];
    raw.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N");

    let Some(pgbench) = common::find_pg_tool("pgbench") else {
        eprintln!("SKIPPED (pgbench part): pgbench not found");
        return;
    };
    let out = Command::new(&pgbench)
        .args([
            "-h",
            dir,
            "-p",
            &server.port.to_string(),
            "-U",
            "gnomon",
            "-i",
            "-s",
            "1",
            "-q",
            "gnomon",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&pgbench)
        .args(["-h", dir, "-p", &server.port.to_string(), "-U", "gnomon"])
        .args(["-M", "prepared", "-c", "4", "-j", "2", "-t", "50", "gnomon"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("number of transactions actually processed: 200/200"),
        "{text}"
    );
    assert_eq!(
        common::col(&tcp, "SELECT count(*) FROM pgbench_history").await,
        ["200"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_file_is_replaced_after_a_crash_removed_on_stop_and_never_stolen() {
    let data = tempfile::tempdir().unwrap();
    let sockets = tempfile::tempdir().unwrap();
    let dir = sockets.path().to_str().unwrap();
    let server = Server::start_with(data.path(), &["--unix-socket-dir", dir]);
    let port = server.port;
    let file = socket_file(sockets.path(), port);
    let c = connect_unix(sockets.path(), port, "gnomon").await.unwrap();
    c.batch_execute("CREATE TABLE t (k int); INSERT INTO t VALUES (7)")
        .await
        .unwrap();

    // A second server on another loopback address but the same port and directory must not
    // take the live server's socket.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(["--data-dir", other.path().to_str().unwrap()])
        .args([
            "--listen",
            &format!("127.0.0.2:{port}"),
            "--unix-socket-dir",
            dir,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("another server is listening on it"),
        "{stderr}"
    );
    assert_eq!(
        common::col(&c, "SELECT k FROM t").await,
        ["7"],
        "the live server still serves"
    );
    drop(c);

    // kill -9 leaves the file behind; the next start on the port replaces it.
    server.kill9();
    assert!(file.exists());
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with(
        data.path(),
        &["--listen", &listen, "--unix-socket-dir", dir],
    );
    let c = connect_unix(sockets.path(), port, "gnomon").await.unwrap();
    assert_eq!(
        common::col(&c, "SELECT k FROM t").await,
        ["7"],
        "committed before the crash"
    );
    drop(c);

    // A clean stop removes it.
    assert!(server.terminate().success());
    assert!(!file.exists(), "socket file removed at shutdown");

    // A directory that does not exist stops the server from starting, naming the file.
    let missing = sockets.path().join("no-such-dir");
    let out = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args([
            "--data-dir",
            data.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--unix-socket-dir", missing.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot listen on the Unix socket") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_access_rules_decide_for_unix_socket_clients() {
    let data = tempfile::tempdir().unwrap();
    let sockets = tempfile::tempdir().unwrap();
    let config = data.path().join("gnomon.toml");
    std::fs::write(
        &config,
        r#"
[[hba]]
type = "local"
database = "all"
user = "mallory"
method = "reject"

[[hba]]
type = "local"
database = "all"
user = "all"
method = "trust"

[[hba]]
type = "host"
database = "all"
user = "all"
address = "127.0.0.1"
method = "trust"
"#,
    )
    .unwrap();
    let dir = sockets.path().to_str().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--unix-socket-dir",
            dir,
        ],
    );
    let tcp = server.connect().await;
    tcp.batch_execute("CREATE ROLE mallory LOGIN")
        .await
        .unwrap();

    let Err(e) = connect_unix(sockets.path(), server.port, "mallory").await else {
        panic!("mallory logged in over the Unix socket despite the reject entry");
    };
    assert_eq!(common::sqlstate(&e), "28000");
    let message = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert_eq!(
        message,
        "pg_hba.conf rejects connection for host \"[local]\", user \"mallory\", database \"gnomon\", no encryption"
    );
    // The same role over TCP matches the host entry.
    let conn = format!(
        "host=127.0.0.1 port={} user=mallory dbname=gnomon",
        server.port
    );
    let (m, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(common::col(&m, "SELECT current_user").await, ["mallory"]);
    let g = connect_unix(sockets.path(), server.port, "gnomon")
        .await
        .unwrap();
    assert_eq!(common::col(&g, "SELECT current_user").await, ["gnomon"]);
}
