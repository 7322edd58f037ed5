//! Real drivers against the real server: psycopg 3 and psycopg2 (Python), node-postgres,
//! pgjdbc (Java). Each test installs its driver if it is missing (pip, npm, apt-get); with
//! `GNOMON_REQUIRE_DRIVERS` set (CI) a driver that cannot be had fails the test.

mod common;

use std::process::Command;

use common::Server;

fn python_imports(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Finds psycopg 3, installing the pinned wheel with pip if it is missing, so that the README's
/// one test command needs no other set-up. CI sets `GNOMON_REQUIRE_DRIVERS=1`: there a driver
/// that cannot be had is a failure, not a skip.
fn psycopg_available() -> bool {
    if python_imports("psycopg") {
        return true;
    }
    let _ = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "psycopg[binary]==3.2.13"])
        .status();
    let ok = python_imports("psycopg");
    if !ok && std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
        panic!("psycopg is required (GNOMON_REQUIRE_DRIVERS is set) but cannot be imported or installed");
    }
    ok
}

#[test]
fn psycopg_creates_loads_queries_and_handles_errors() {
    if !psycopg_available() {
        eprintln!("SKIPPED: python3 psycopg not installed (pip install 'psycopg[binary]')");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/psycopg_smoke.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(server.port.to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "psycopg script failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

/// True when `ok`; otherwise a skip (with a note) or, under `GNOMON_REQUIRE_DRIVERS`, a failure.
fn have(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
            panic!("{what} is required (GNOMON_REQUIRE_DRIVERS is set) but cannot be found or installed");
        }
        eprintln!("SKIPPED: {what} not available");
    }
    ok
}

/// Runs a client program against a fresh server; its last stdout line is printed.
fn run_client(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn psycopg2_parameters_transactions_errors_serial_and_upsert() {
    if !python_imports("psycopg2") {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "psycopg2-binary==2.9.13"])
            .status();
    }
    if !have("python3 psycopg2", python_imports("psycopg2")) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut cmd = Command::new("python3");
    cmd.arg(repo_file("tests/py/psycopg2_smoke.py"))
        .arg(server.port.to_string());
    run_client(cmd, "psycopg2 script");
}

#[test]
fn node_pg_prepared_statements_transactions_and_errors() {
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have("node", node_ok) {
        return;
    }
    // The pinned pg package lives in the test's own directory under the target dir.
    let prefix = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-pg");
    let modules = prefix.join("node_modules");
    if !modules.join("pg").exists() {
        let _ = std::fs::create_dir_all(&prefix);
        let _ = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("pg@8.16.3")
            .status();
    }
    if !have("node pg package", modules.join("pg").exists()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut cmd = Command::new("node");
    cmd.arg(repo_file("tests/js/pg_smoke.js"))
        .arg(server.port.to_string())
        .env("NODE_PATH", &modules);
    run_client(cmd, "node pg script");
}

#[test]
fn pgjdbc_batches_metadata_transactions_and_errors() {
    let jar = std::path::Path::new("/usr/share/java/postgresql.jar");
    if !jar.exists() {
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-q", "libpostgresql-jdbc-java"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !installed {
            let _ = Command::new("apt-get").args(["update", "-q"]).status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-q", "libpostgresql-jdbc-java"])
                .status();
        }
    }
    let java_ok = Command::new("java")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have(
        "pgjdbc (libpostgresql-jdbc-java) and a JDK",
        jar.exists() && java_ok,
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(jar)
        .arg(repo_file("tests/java/JdbcSmoke.java"))
        .arg(server.port.to_string());
    run_client(cmd, "pgjdbc program");
}

/// Installs a pinned pip package when `module` cannot be imported; true when it then can.
fn pip_module(module: &str, requirement: &str) -> bool {
    if !python_imports(module) {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", requirement])
            .status();
    }
    python_imports(module)
}

/// SQLAlchemy 2 over psycopg2 and over psycopg 3: first connect, create_all with a SERIAL
/// primary key (has_table reads pg_class / pg_namespace with pg_table_is_visible and
/// `= ANY (ARRAY[...])`; psycopg 3 also probes hstore with to_regtype), ORM insert, query,
/// update, delete and a unique violation through a Session (tests/py/sqlalchemy_orm.py).
#[test]
fn sqlalchemy_orm_round_trip_over_psycopg2_and_psycopg3() {
    run_sqlalchemy_script("sqlalchemy_orm.py", "SQLAlchemy");
}

/// SQLAlchemy 2 reflection over psycopg2 and psycopg 3 (tests/py/sqlalchemy_reflect.py):
/// get_columns / get_pk_constraint / get_foreign_keys / get_indexes /
/// get_unique_constraints, MetaData.reflect and Table(autoload_with=...) give what they give
/// against PostgreSQL 15 for a schema with SERIAL and composite primary keys, a foreign key,
/// unique constraints, plain and unique indexes, defaults, varchar(n), numeric(p,s),
/// timestamps and an array column.
#[test]
fn sqlalchemy_reflects_a_schema_as_against_postgres() {
    run_sqlalchemy_script("sqlalchemy_reflect.py", "SQLAlchemy reflection");
}

/// Runs `tests/py/<script> <port> <dialect>` against a fresh server once over psycopg2 and
/// once over psycopg 3 (each installed if missing, as the other driver tests).
fn run_sqlalchemy_script(script: &str, what: &str) {
    let sqlalchemy = pip_module("sqlalchemy", "sqlalchemy==2.0.54");
    if !have("python3 sqlalchemy", sqlalchemy) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    for (dialect, module, requirement) in [
        ("psycopg2", "psycopg2", "psycopg2-binary==2.9.13"),
        ("psycopg", "psycopg", "psycopg[binary]==3.2.13"),
    ] {
        if !have(
            &format!("python3 {module}"),
            pip_module(module, requirement),
        ) {
            continue;
        }
        let mut cmd = Command::new("python3");
        cmd.arg(repo_file(&format!("tests/py/{script}")))
            .arg(server.port.to_string())
            .arg(dialect);
        run_client(cmd, &format!("{what} over {dialect}"));
    }
}
