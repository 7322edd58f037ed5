//! Real drivers against the real server: psycopg 3 (Python).

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
