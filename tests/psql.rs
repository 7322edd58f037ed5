//! psql against the real server: a SQL script's output must match PostgreSQL 15's, byte for byte.

mod common;

use std::path::Path;

use common::Server;

#[test]
fn basic_script_output_matches_postgres() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let output = common::psql_script(&psql, &server, &sql_dir.join("basic.sql"));
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
    let output = common::psql_script(&psql, &server, &sql_dir.join("copy.sql"));
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

/// psql's `\d` family (`\d`, `\dt`, `\d TABLE`, `\d+ TABLE`, `\di`, `\l`, `\dn`, `\du`) over
/// a schema with a primary key, an index, NOT NULL, DEFAULT, CHECK, UNIQUE, a SERIAL column,
/// a sequence and a schema, foreign keys ("Foreign-key constraints" / "Referenced by", a
/// multi-column one with ON UPDATE/ON DELETE actions, a self-reference), generated columns
/// (`generated always as (...) stored`), plus the catalog
/// operators and functions those commands use:
/// the output equals PostgreSQL 15's byte for byte (so every catalog query psql sends works
/// and returns what PostgreSQL returns).
///
/// tests/sql/describe.out was produced by running tests/sql/describe.sql with psql 15 against
/// a fresh PostgreSQL 15.18 cluster made to look like a fresh Gnomon (as a non-root user):
/// `initdb -D DIR -U gnomon --locale=C.UTF-8 -E UTF8`, start it, `CREATE DATABASE gnomon`,
/// then `psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p PORT -U gnomon gnomon -f describe.sql`.
///
/// Where Gnomon's catalog differs from PostgreSQL's, the script stays clear of it:
/// - `\l` is given a pattern (`\l gnomon`): PostgreSQL also lists postgres, template0 and
///   template1, which Gnomon does not have.
/// - No `\d+` / `\dt+` / `\di+` listings: they show sizes (`pg_table_size`), not served.
/// - pg_class lists only user relations (no system catalogs), so queries over it filter on
///   the public schema as psql's do.
/// - Owners are the bootstrap superuser `gnomon` (Gnomon records no owner per object), and
///   every superuser shows PostgreSQL's superuser attributes (Create role, Create DB, ...).
#[test]
fn describe_meta_commands_match_postgres() {
    let Some(psql) = common::find_pg_tool("psql") else {
        eprintln!("SKIPPED: psql not found on PATH nor at /usr/lib/postgresql/15/bin/psql");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let output = common::psql_script(&psql, &server, &sql_dir.join("describe.sql"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stderr.is_empty(), "psql reported errors:\n{stderr}");
    let expected =
        std::fs::read_to_string(sql_dir.join("describe.out")).expect("read describe.out");
    assert_eq!(stdout, expected, "psql output differs from PostgreSQL's");
}
