//! Security over the wire with the real binary: roles in the catalog, SCRAM-SHA-256 logins
//! (tokio-postgres and psql), the trust and listen rules, the audit log, and passwords never
//! stored in clear.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use common::{find_pg_tool, sqlstate, Server};
use tokio_postgres::{Client, NoTls};

fn temp_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    (dir, server)
}

async fn connect_as(
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let mut conn = format!("host=127.0.0.1 port={port} user={user} dbname=gnomon");
    if let Some(p) = password {
        conn.push_str(&format!(" password='{p}'"));
    }
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn refused(port: u16, user: &str, password: Option<&str>) -> tokio_postgres::Error {
    match connect_as(port, user, password).await {
        Ok(_) => panic!("{user} with {password:?} was let in"),
        Err(e) => e,
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default()
}

async fn current_user(client: &Client) -> String {
    client
        .query_one("SELECT current_user", &[])
        .await
        .expect("current_user")
        .get(0)
}

async fn error_code(client: &Client, sql: &str) -> String {
    let e = client
        .batch_execute(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql} should fail"));
    sqlstate(&e)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn scram_login_succeeds_with_the_right_password_and_fails_with_28p01() {
    let (_dir, server) = temp_server();
    let admin = server.connect().await;
    admin
        .batch_execute(
            "CREATE ROLE alice LOGIN PASSWORD 'wonderland'; \
             CREATE USER bob WITH PASSWORD 'builder'; \
             CREATE ROLE carol NOLOGIN PASSWORD 'x'",
        )
        .await
        .expect("create roles");

    let alice = connect_as(server.port, "alice", Some("wonderland"))
        .await
        .expect("alice logs in with SCRAM");
    assert_eq!(current_user(&alice).await, "alice");
    let bob = connect_as(server.port, "bob", Some("builder"))
        .await
        .expect("CREATE USER implies LOGIN");
    assert_eq!(current_user(&bob).await, "bob");

    let wrong = refused(server.port, "alice", Some("looking-glass")).await;
    assert_eq!(sqlstate(&wrong), "28P01");
    assert_eq!(
        db_message(&wrong),
        "password authentication failed for user \"alice\""
    );
    let nologin = refused(server.port, "carol", Some("x")).await;
    assert_eq!(sqlstate(&nologin), "28000");
    assert_eq!(
        db_message(&nologin),
        "role \"carol\" is not permitted to log in"
    );

    // A role may change its own password; the old one stops working.
    alice
        .batch_execute("ALTER ROLE alice WITH PASSWORD 'rabbit'")
        .await
        .expect("own password");
    assert_eq!(
        sqlstate(&refused(server.port, "alice", Some("wonderland")).await),
        "28P01"
    );
    connect_as(server.port, "alice", Some("rabbit"))
        .await
        .expect("new password works");
}

#[tokio::test]
async fn role_statements_follow_postgres_errors_and_are_transactional_and_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let admin = server.connect().await;
    admin
        .batch_execute("CREATE ROLE dave LOGIN PASSWORD 'pw1'")
        .await
        .expect("create dave");
    assert_eq!(error_code(&admin, "CREATE ROLE dave").await, "42710");
    assert_eq!(error_code(&admin, "DROP ROLE nobody").await, "42704");
    assert_eq!(error_code(&admin, "ALTER ROLE nobody LOGIN").await, "42704");
    admin
        .batch_execute("DROP ROLE IF EXISTS nobody")
        .await
        .expect("IF EXISTS");
    assert_eq!(error_code(&admin, "DROP ROLE gnomon").await, "55006");
    assert_eq!(
        error_code(&admin, "ALTER ROLE gnomon NOSUPERUSER").await,
        "42501"
    );
    assert_eq!(error_code(&admin, "CREATE ROLE public").await, "42939");

    let dave = connect_as(server.port, "dave", Some("pw1"))
        .await
        .expect("dave");
    assert_eq!(error_code(&dave, "CREATE ROLE eve").await, "42501");
    assert_eq!(
        error_code(&dave, "ALTER ROLE dave SUPERUSER").await,
        "42501"
    );
    assert_eq!(error_code(&dave, "DROP ROLE dave").await, "42501");

    // Rolled back: the role never existed.
    admin
        .batch_execute("BEGIN; CREATE ROLE frank LOGIN PASSWORD 'f'; ROLLBACK")
        .await
        .expect("rollback");
    assert_eq!(error_code(&admin, "DROP ROLE frank").await, "42704");
    admin
        .batch_execute("CREATE ROLE gone LOGIN; DROP ROLE gone")
        .await
        .expect("create and drop");

    // Durable: a restart (after SIGKILL) keeps dave and his password.
    drop(dave);
    drop(admin);
    server.kill9();
    let server = Server::start(dir.path());
    let dave = connect_as(server.port, "dave", Some("pw1"))
        .await
        .expect("dave after restart");
    assert_eq!(current_user(&dave).await, "dave");
    assert_eq!(
        sqlstate(&refused(server.port, "dave", Some("pw2")).await),
        "28P01"
    );
}

#[tokio::test]
async fn trust_ends_when_the_superuser_gets_a_password() {
    let (_dir, server) = temp_server();
    let admin = server.connect().await;
    admin
        .batch_execute("CREATE ROLE nopw LOGIN; ALTER ROLE gnomon PASSWORD 'root-pw'")
        .await
        .expect("set superuser password");
    // No password: tokio-postgres cannot answer the SCRAM request.
    let e = refused(server.port, "gnomon", None).await;
    assert!(e.as_db_error().is_none(), "{e}");
    // A role without a password and an unknown role look exactly like a wrong password.
    for user in ["nopw", "mallory", "gnomon"] {
        let e = refused(server.port, user, Some("guess")).await;
        assert_eq!(sqlstate(&e), "28P01", "{user}");
        assert_eq!(
            db_message(&e),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let root = connect_as(server.port, "gnomon", Some("root-pw"))
        .await
        .expect("superuser with password");
    // Back to trust once the password is removed.
    root.batch_execute("ALTER ROLE gnomon PASSWORD NULL")
        .await
        .expect("clear password");
    connect_as(server.port, "nopw", None)
        .await
        .expect("trusted again on loopback");
}

#[tokio::test]
async fn psql_logs_in_with_pgpassword() {
    let Some(psql) = find_pg_tool("psql") else {
        panic!("psql is required for this test (see .ci/run)");
    };
    let (_dir, server) = temp_server();
    let admin = server.connect().await;
    admin
        .batch_execute("ALTER ROLE gnomon PASSWORD 'p$ql pass'")
        .await
        .expect("password");
    let run = |password: &str| {
        Command::new(&psql)
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "gnomon",
                "-d",
                "gnomon",
                "-c",
                "SELECT current_user",
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "20")
            .output()
            .expect("run psql")
    };
    let ok = run("p$ql pass");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "gnomon");
    let bad = run("wrong");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("password authentication failed for user \"gnomon\""),
        "{err}"
    );
}

#[tokio::test]
async fn non_loopback_listen_needs_a_superuser_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(["--data-dir", dir.path().to_str().expect("utf-8")])
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .expect("run gnomon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0") && err.contains("has no password"),
        "{err}"
    );

    let server = Server::start(dir.path());
    server
        .connect()
        .await
        .batch_execute("ALTER ROLE gnomon PASSWORD 'net-pw'")
        .await
        .expect("password");
    server.terminate();
    let args: Vec<OsString> = vec![
        "--data-dir".into(),
        dir.path().as_os_str().to_owned(),
        "--listen".into(),
        "0.0.0.0:0".into(),
    ];
    let server = Server::spawn(dir.path(), &args);
    // Only loopback traffic in tests: the wildcard listener is reached through 127.0.0.1.
    let e = refused(server.port, "gnomon", Some("nope")).await;
    assert_eq!(sqlstate(&e), "28P01");
    let client = connect_as(server.port, "gnomon", Some("net-pw"))
        .await
        .expect("password login on the wildcard listener");
    assert_eq!(current_user(&client).await, "gnomon");
}

#[tokio::test]
async fn audit_log_records_ddl_and_role_changes_without_passwords() {
    let (dir, server) = temp_server();
    let admin = server.connect().await;
    let secret = "Sup3r-Secret-Passw0rd";
    admin
        .batch_execute(&format!(
            "CREATE TABLE audited (id int PRIMARY KEY); \
             CREATE ROLE auditor LOGIN PASSWORD '{secret}'; \
             ALTER ROLE auditor PASSWORD '{secret}2'; \
             INSERT INTO audited VALUES (1); \
             DROP TABLE audited"
        ))
        .await
        .expect("statements");
    admin
        .batch_execute("CREATE TABLE t2 (id int); BEGIN; INSERT INTO t2 VALUES (1)")
        .await
        .expect("begin");
    admin
        .batch_execute("PREPARE TRANSACTION 'gid-1'")
        .await
        .expect("prepare");
    admin
        .batch_execute("COMMIT PREPARED 'gid-1'")
        .await
        .expect("commit prepared");
    let _ = refused(server.port, "auditor", Some("wrong")).await;
    drop(admin);
    // Everything is on disk once the server is stopped (the log is flushed per line).
    server.terminate();

    let log = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit.log");
    let lines: Vec<&str> = log.lines().collect();
    let events: Vec<&str> = lines
        .iter()
        .map(|l| {
            l.split("\"event\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(
        events,
        [
            "ddl",
            "role",
            "role",
            "ddl",
            "ddl",
            "two_phase",
            "two_phase",
            "auth_failure"
        ],
        "{log}"
    );
    for line in &lines {
        assert!(
            line.starts_with("{\"time\":\"") && line.ends_with('}'),
            "{line}"
        );
        assert!(line.contains("\"user\":\""), "{line}");
    }
    assert!(lines[1].contains("CREATE ROLE auditor"), "{log}");
    assert!(lines[1].contains("PASSWORD '********'"), "{log}");
    assert!(!log.contains("INSERT"), "DML is not audited: {log}");
    assert!(
        lines[5].contains("\"statement\":\"PREPARE TRANSACTION 'gid-1'\""),
        "{log}"
    );
    assert!(
        lines[6].contains("\"statement\":\"COMMIT PREPARED 'gid-1'\""),
        "{log}"
    );

    // No file of the data directory holds the password in clear.
    for file in files_under(dir.path()) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
}

#[tokio::test]
async fn grant_and_revoke_are_enforced_with_42501() {
    let (_dir, server) = temp_server();
    let admin = server.connect().await;
    admin
        .batch_execute(
            "CREATE ROLE reader LOGIN PASSWORD 'r'; \
             CREATE ROLE writer LOGIN PASSWORD 'w'; \
             CREATE TABLE accounts (id int PRIMARY KEY, balance int); \
             INSERT INTO accounts VALUES (1, 100), (2, 200)",
        )
        .await
        .expect("setup");
    let reader = connect_as(server.port, "reader", Some("r"))
        .await
        .expect("reader");
    let writer = connect_as(server.port, "writer", Some("w"))
        .await
        .expect("writer");

    // Nothing granted: every access is refused with PostgreSQL's message.
    let e = reader
        .query("SELECT * FROM accounts", &[])
        .await
        .expect_err("no SELECT yet");
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(db_message(&e), "permission denied for table accounts");
    assert_eq!(
        error_code(&writer, "INSERT INTO accounts VALUES (3, 0)").await,
        "42501"
    );

    admin
        .batch_execute(
            "GRANT SELECT ON accounts TO reader; \
             GRANT INSERT, UPDATE ON TABLE accounts TO writer",
        )
        .await
        .expect("grant");
    let total: i64 = reader
        .query_one("SELECT sum(balance) FROM accounts", &[])
        .await
        .expect("granted SELECT")
        .get(0);
    assert_eq!(total, 300);
    assert_eq!(error_code(&reader, "DELETE FROM accounts").await, "42501");
    writer
        .batch_execute("INSERT INTO accounts VALUES (3, 0); UPDATE accounts SET balance = 1")
        .await
        .expect("granted INSERT and UPDATE");
    // A WHERE reads the table: UPDATE with a WHERE also needs SELECT.
    assert_eq!(
        error_code(&writer, "UPDATE accounts SET balance = 2 WHERE id = 1").await,
        "42501"
    );
    // Only the owner (or a superuser) grants, drops or alters.
    assert_eq!(
        error_code(&writer, "GRANT SELECT ON accounts TO writer").await,
        "42501"
    );
    assert_eq!(error_code(&writer, "DROP TABLE accounts").await, "42501");
    assert_eq!(error_code(&reader, "TRUNCATE accounts").await, "42501");

    // A prepared statement is checked again after REVOKE (its cached plan is re-bound).
    let select = reader
        .prepare("SELECT count(*) FROM accounts")
        .await
        .expect("prepare");
    reader.query_one(&select, &[]).await.expect("still granted");
    admin
        .batch_execute("REVOKE ALL PRIVILEGES ON accounts FROM reader")
        .await
        .expect("revoke");
    let e = reader.query_one(&select, &[]).await.expect_err("revoked");
    assert_eq!(sqlstate(&e), "42501");

    // A table's creator owns it and needs no grant; a role that still holds privileges
    // cannot be dropped.
    admin
        .batch_execute("GRANT ALL ON accounts TO reader")
        .await
        .expect("grant all");
    reader
        .batch_execute("DELETE FROM accounts WHERE id = 3")
        .await
        .expect("ALL includes DELETE");
    assert_eq!(error_code(&admin, "DROP ROLE reader").await, "2BP01");
    writer
        .batch_execute("CREATE TABLE mine (a int); INSERT INTO mine VALUES (1); SELECT * FROM mine")
        .await
        .expect("the creator owns its table");
    assert_eq!(error_code(&reader, "SELECT * FROM mine").await, "42501");
    writer
        .batch_execute("GRANT SELECT ON mine TO reader")
        .await
        .expect("the owner grants");
    reader
        .batch_execute("SELECT * FROM mine")
        .await
        .expect("granted by the owner");
    assert_eq!(
        error_code(&admin, "GRANT SELECT ON accounts TO nobody").await,
        "42704"
    );
    assert_eq!(
        error_code(&admin, "GRANT SELECT ON nothere TO reader").await,
        "42P01"
    );
}

#[tokio::test]
async fn audit_log_has_a_line_for_every_kind_of_ddl_role_change_grant_and_2pc_decision() {
    let (dir, server) = temp_server();
    let admin = server.connect().await;
    // One statement per call (CREATE/DROP DATABASE refuse a multi-statement message), each
    // spelt as the log spells it (the parsed statement, printed again).
    let statements = [
        ("CREATE TABLE a1 (id INT PRIMARY KEY, v INT)", "ddl"),
        ("ALTER TABLE a1 ADD COLUMN w INT", "ddl"),
        ("CREATE INDEX a1_v ON a1(v)", "ddl"),
        ("DROP INDEX a1_v", "ddl"),
        ("CREATE SEQUENCE a1_seq", "ddl"),
        ("DROP SEQUENCE a1_seq", "ddl"),
        ("CREATE SCHEMA a_schema", "ddl"),
        ("DROP SCHEMA a_schema", "ddl"),
        ("CREATE DATABASE a_db", "ddl"),
        ("DROP DATABASE a_db", "ddl"),
        ("TRUNCATE a1", "ddl"),
        ("CREATE ROLE a_role LOGIN", "role"),
        ("ALTER ROLE a_role WITH SUPERUSER", "role"),
        ("GRANT SELECT ON a1 TO a_role", "grant"),
        ("REVOKE SELECT ON a1 FROM a_role", "grant"),
        ("DROP ROLE a_role", "role"),
        ("BEGIN", ""),
        ("INSERT INTO a1 VALUES (1, 1, 1)", ""),
        ("PREPARE TRANSACTION 'a_gid'", "two_phase"),
        ("ROLLBACK PREPARED 'a_gid'", "two_phase"),
        ("DROP TABLE a1", "ddl"),
    ];
    for (sql, _) in statements {
        admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // A refused statement is not audited.
    assert_eq!(error_code(&admin, "DROP TABLE nothere").await, "42P01");
    drop(admin);
    server.terminate();

    let log = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit.log");
    let got: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let field = |name: &str| {
                l.split(&format!("\"{name}\":\""))
                    .nth(1)
                    .and_then(|r| r.split("\"}").next())
                    .and_then(|r| r.split("\",\"").next())
                    .unwrap_or("?")
                    .to_string()
            };
            (field("event"), field("statement"))
        })
        .collect();
    let want: Vec<(String, String)> = statements
        .iter()
        .filter(|(_, event)| !event.is_empty())
        .map(|(sql, event)| (event.to_string(), sql.to_string()))
        .collect();
    assert_eq!(got, want, "{log}");
}
