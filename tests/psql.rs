//! psql against the real server: a SQL script's output must match PostgreSQL 15's, byte for byte.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

fn run_script(psql: &Path, server: &Server, script: &Path) -> std::process::Output {
    Command::new(psql)
        // Scripts name their data files relative to the repository root.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(server.port.to_string())
        .args(["-U", "gnomon", "gnomon", "-f"])
        .arg(script)
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .expect("run psql")
}

#[test]
fn basic_script_output_matches_postgres() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let output = run_script(&psql, &server, &sql_dir.join("basic.sql"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let expected = std::fs::read_to_string(sql_dir.join("basic.out")).expect("read basic.out");
    if stdout != expected {
        let first_diff = stdout
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| stdout.lines().count().min(expected.lines().count()));
        panic!(
            "psql output differs from PostgreSQL's at line {}:\n--- got\n{stdout}\n--- expected\n{expected}",
            first_diff + 1
        );
    }
    assert!(
        stderr.contains("NOTICE:  table \"accounts\" does not exist, skipping"),
        "DROP TABLE IF EXISTS notice missing from stderr:\n{stderr}"
    );
}

/// COPY FROM STDIN / TO STDOUT in text and CSV with options, and psql's `\copy` from a file
/// (a quoted field with a newline, doubled quotes, NULLs): the output equals PostgreSQL 15's,
/// and a bad CSV line fails with PostgreSQL's error and its line number.
#[test]
fn copy_script_output_matches_postgres() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let output = run_script(&psql, &server, &sql_dir.join("copy.sql"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let expected = std::fs::read_to_string(sql_dir.join("copy.out")).expect("read copy.out");
    assert_eq!(stdout, expected, "psql output differs from PostgreSQL's");
    assert!(
        stderr.contains("ERROR:  invalid input syntax for type numeric: \"x\"\nCONTEXT:  COPY items, line 2, column price: \"x\""),
        "bad-line error or its context missing from stderr:\n{stderr}"
    );
}
