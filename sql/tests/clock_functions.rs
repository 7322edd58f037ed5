//! The logical-clock SQL functions: values, SQLSTATEs of bad input, and durability across a
//! reopen of the database (the end-to-end test over the wire is tests/admin.rs).

use std::path::Path;
use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Session, SqlEngine, Value};

fn open(dir: &Path) -> (Arc<SqlEngine>, Session) {
    let db = Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    let engine = SqlEngine::open(db).expect("open sql");
    let s = Session::new(engine.clone(), "gnomon", "gnomon").expect("session");
    (engine, s)
}

/// The single value `sql` returns, or its SQLSTATE.
fn value(s: &mut Session, sql: &str) -> Result<Value, String> {
    let mut results = s.execute_simple(sql);
    match results.pop() {
        Some(Ok(Outcome::Rows { rows, .. })) => Ok(rows[0][0].clone()),
        Some(Err(e)) => Err(e.code.code().to_string()),
        other => panic!("{sql}: {other:?}"),
    }
}

fn text(s: &mut Session, sql: &str) -> String {
    match value(s, sql) {
        Ok(Value::Text(t)) => t,
        other => panic!("{sql}: {other:?}"),
    }
}

fn int(s: &mut Session, sql: &str) -> i64 {
    match value(s, sql) {
        Ok(Value::Int8(n)) => n,
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn clock_functions_compute_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_engine, mut s) = open(dir.path());
        assert_eq!(int(&mut s, "SELECT gnomon_lamport_current()"), 0);
        assert_eq!(int(&mut s, "SELECT gnomon_lamport_tick()"), 1);
        assert_eq!(int(&mut s, "SELECT gnomon_lamport_sync(40)"), 41);
        // Called once per row, like nextval.
        s.execute_simple("CREATE TABLE t (a int PRIMARY KEY)");
        s.execute_simple("INSERT INTO t VALUES (1), (2), (3)");
        s.execute_simple("SELECT gnomon_lamport_tick() FROM t");
        assert_eq!(int(&mut s, "SELECT gnomon_lamport_current()"), 44);
        // Not transactional: a rolled-back tick stays.
        s.execute_simple("BEGIN; SELECT gnomon_vclock_tick(); ROLLBACK");
        assert_eq!(
            text(&mut s, "SELECT gnomon_vclock_current()"),
            r#"{"node1":1}"#
        );
        assert_eq!(
            text(&mut s, r#"SELECT gnomon_vclock_sync('{"node2": 7}')"#),
            r#"{"node1":2,"node2":7}"#
        );
        assert_eq!(
            text(&mut s, "SELECT gnomon_version_increment()"),
            r#"{"node1":1}"#
        );
        assert_eq!(
            text(&mut s, "SELECT gnomon_version_increment('replica-b')"),
            r#"{"node1":1,"replica-b":1}"#
        );
        assert_eq!(
            text(
                &mut s,
                r#"SELECT gnomon_version_merge('{"replica-b": 4, "c": 2}')"#
            ),
            r#"{"c":2,"node1":1,"replica-b":4}"#
        );
    }
    let (_engine, mut s) = open(dir.path());
    assert_eq!(int(&mut s, "SELECT gnomon_lamport_current()"), 44);
    assert_eq!(int(&mut s, "SELECT gnomon_lamport_tick()"), 45);
    assert_eq!(
        text(&mut s, "SELECT gnomon_vclock_current()"),
        r#"{"node1":2,"node2":7}"#
    );
    assert_eq!(
        text(&mut s, "SELECT gnomon_version_current()"),
        r#"{"c":2,"node1":1,"replica-b":4}"#
    );
}

#[test]
fn pure_functions_merge_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, mut s) = open(dir.path());
    assert_eq!(
        text(
            &mut s,
            r#"SELECT gnomon_version_merge('{"a":1,"b":5}', '{"a":3}')"#
        ),
        r#"{"a":3,"b":5}"#
    );
    for (a, b, want) in [
        (r#"{"a":1}"#, r#"{"a":2}"#, "BEFORE"),
        (r#"{"a":2}"#, r#"{"a":1}"#, "AFTER"),
        (r#"{"a":1,"b":0}"#, r#"{"a":1}"#, "EQUAL"),
        (r#"{"a":1}"#, r#"{"b":1}"#, "CONCURRENT"),
    ] {
        let sql = format!("SELECT gnomon_vclock_compare('{a}', '{b}')");
        assert_eq!(text(&mut s, &sql), want, "{sql}");
    }
    // A pure merge does not touch the node's version vector.
    assert_eq!(text(&mut s, "SELECT gnomon_version_current()"), "{}");
    assert_eq!(
        value(&mut s, "SELECT gnomon_vclock_compare(NULL, '{}')"),
        Ok(Value::Null)
    );
}

#[test]
fn bad_clock_arguments_get_sqlstates_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, mut s) = open(dir.path());
    s.execute_simple("SELECT gnomon_vclock_tick()");
    for (sql, code) in [
        ("SELECT gnomon_vclock_sync('not json')", "22P02"),
        ("SELECT gnomon_vclock_sync('[1]')", "22P02"),
        (r#"SELECT gnomon_vclock_sync('{"a": -1}')"#, "22003"),
        (
            r#"SELECT gnomon_vclock_compare('{"a": 1.5}', '{}')"#,
            "22P02",
        ),
        ("SELECT gnomon_version_increment('')", "22023"),
        ("SELECT gnomon_lamport_sync(-1)", "22003"),
        ("SELECT gnomon_lamport_sync(9223372036854775807)", "22003"),
        ("SELECT gnomon_lamport_tick(1)", "42883"),
    ] {
        assert_eq!(value(&mut s, sql), Err(code.to_string()), "{sql}");
    }
    assert_eq!(
        text(&mut s, "SELECT gnomon_vclock_current()"),
        r#"{"node1":1}"#
    );
    assert_eq!(int(&mut s, "SELECT gnomon_lamport_current()"), 0);
}
