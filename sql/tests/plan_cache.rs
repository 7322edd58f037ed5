//! Prepared statements keep their bound plan: executing one does no binding while the catalog
//! is unchanged, re-binds transparently after DDL (also DDL of another session, and the
//! transaction's own uncommitted DDL), and evaluates `now()` and friends at execution.

use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Prepared, Session, SqlEngine, Value};

fn setup() -> (tempfile::TempDir, Arc<SqlEngine>, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    let engine = SqlEngine::open(db).expect("open sql");
    let s = Session::new(engine.clone(), "gnomon", "gnomon").expect("session");
    (dir, engine, s)
}

fn simple(s: &mut Session, sql: &str) {
    for r in s.execute_simple(sql) {
        if let Err(e) = r {
            panic!("{sql}: {e}");
        }
    }
}

fn prepare(s: &mut Session, sql: &str, nparams: usize) -> Prepared {
    s.prepare(sql, &vec![None; nparams]).expect("prepare")
}

/// Executes `p` (then Sync, ending an implicit transaction) and returns its rows, or the
/// error's SQLSTATE.
fn exec(s: &mut Session, p: &Prepared, params: Vec<Value>) -> Result<Vec<Vec<Value>>, String> {
    let r = s.execute_prepared(p, params);
    s.sync();
    match r {
        Ok(Outcome::Rows { rows, .. }) => Ok(rows),
        Ok(_) => Ok(vec![]),
        Err(e) => Err(e.code.code().to_string()),
    }
}

fn one(s: &mut Session, p: &Prepared, params: Vec<Value>) -> Value {
    let rows = exec(s, p, params).expect("execute");
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][0].clone()
}

#[test]
fn executing_a_prepared_statement_binds_nothing_while_the_catalog_is_unchanged() {
    let (_dir, _engine, mut s) = setup();
    simple(&mut s, "CREATE TABLE t (a int PRIMARY KEY, b text)");
    simple(&mut s, "INSERT INTO t VALUES (1, 'x'), (2, 'y')");
    let select = prepare(&mut s, "SELECT b FROM t WHERE a = $1", 1);
    let update = prepare(&mut s, "UPDATE t SET b = b || $1 WHERE a = $2", 2);
    let before = s.stats().plans_bound;
    for _ in 0..3 {
        assert_eq!(
            one(&mut s, &select, vec![Value::Int4(1)]),
            Value::Text("x".into())
        );
        exec(
            &mut s,
            &update,
            vec![Value::Text("!".into()), Value::Int4(2)],
        )
        .expect("update");
    }
    simple(&mut s, "BEGIN");
    exec(
        &mut s,
        &update,
        vec![Value::Text("?".into()), Value::Int4(2)],
    )
    .expect("update");
    simple(&mut s, "COMMIT");
    assert_eq!(s.stats().plans_bound, before);
    assert_eq!(
        one(&mut s, &select, vec![Value::Int4(2)]),
        Value::Text("y!!!?".into())
    );
}

#[test]
fn a_cached_plan_reads_the_clock_of_each_transaction() {
    let (_dir, _engine, mut s) = setup();
    simple(
        &mut s,
        "CREATE TABLE history (id int PRIMARY KEY, mtime timestamp)",
    );
    let now = prepare(&mut s, "SELECT now()", 0);
    let statement = prepare(&mut s, "SELECT statement_timestamp()", 0);
    let insert = prepare(
        &mut s,
        "INSERT INTO history (id, mtime) VALUES ($1, CURRENT_TIMESTAMP)",
        1,
    );
    let ts = |v: Value| match v {
        Value::Timestamptz(t) => t,
        other => panic!("not a timestamptz: {other:?}"),
    };
    // Within a transaction, now() is its start time; statement_timestamp() moves on.
    simple(&mut s, "BEGIN");
    let t1 = ts(one(&mut s, &now, vec![]));
    let st1 = ts(one(&mut s, &statement, vec![]));
    exec(&mut s, &insert, vec![Value::Int4(1)]).expect("insert");
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(ts(one(&mut s, &now, vec![])), t1);
    assert!(ts(one(&mut s, &statement, vec![])) > st1);
    simple(&mut s, "COMMIT");
    std::thread::sleep(std::time::Duration::from_millis(2));
    // A later transaction (implicit, as Sync ends it) gets a later time from the same plan.
    let t2 = ts(one(&mut s, &now, vec![]));
    assert!(t2 > t1, "{t2} <= {t1}");
    exec(&mut s, &insert, vec![Value::Int4(2)]).expect("insert");
    let rows = s
        .execute_simple("SELECT mtime FROM history ORDER BY id")
        .pop()
        .expect("result");
    let Ok(Outcome::Rows { rows, .. }) = rows else {
        panic!("{rows:?}")
    };
    let (Value::Timestamp(m1), Value::Timestamp(m2)) = (&rows[0][0], &rows[1][0]) else {
        panic!("{rows:?}")
    };
    assert_eq!(*m1, t1);
    assert!(m2 > m1);
}

#[test]
fn a_prepared_statement_follows_its_table_through_drop_and_create() {
    let (_dir, engine, mut s) = setup();
    simple(&mut s, "CREATE TABLE t (a int PRIMARY KEY, b text)");
    simple(&mut s, "INSERT INTO t VALUES (1, 'old')");
    let select = prepare(&mut s, "SELECT b FROM t WHERE a = $1", 1);
    let insert = prepare(&mut s, "INSERT INTO t VALUES ($1, $2)", 2);
    assert_eq!(
        one(&mut s, &select, vec![Value::Int4(1)]),
        Value::Text("old".into())
    );

    // Another session replaces the table: the statement re-binds to the new one.
    let mut other = Session::new(engine.clone(), "gnomon", "gnomon").expect("session");
    simple(&mut other, "DROP TABLE t");
    assert_eq!(
        exec(&mut s, &select, vec![Value::Int4(1)]),
        Err("42P01".into())
    );
    simple(&mut other, "CREATE TABLE t (a int PRIMARY KEY, b text)");
    simple(&mut other, "INSERT INTO t VALUES (1, 'new')");
    assert_eq!(
        one(&mut s, &select, vec![Value::Int4(1)]),
        Value::Text("new".into())
    );
    exec(
        &mut s,
        &insert,
        vec![Value::Int4(2), Value::Text("two".into())],
    )
    .expect("insert");
    assert_eq!(
        one(&mut other, &select, vec![Value::Int4(2)]),
        Value::Text("two".into())
    );

    // The transaction's own uncommitted DDL is seen, and forgotten after ROLLBACK.
    simple(&mut s, "BEGIN");
    simple(&mut s, "DROP TABLE t");
    simple(&mut s, "CREATE TABLE t (a int PRIMARY KEY, b text)");
    assert_eq!(exec(&mut s, &select, vec![Value::Int4(1)]), Ok(vec![]));
    simple(&mut s, "ROLLBACK");
    assert_eq!(
        one(&mut s, &select, vec![Value::Int4(1)]),
        Value::Text("new".into())
    );

    // A new result type cannot be delivered under the old description (PostgreSQL: 0A000).
    simple(&mut other, "DROP TABLE t");
    simple(&mut other, "CREATE TABLE t (a int PRIMARY KEY, b int)");
    assert_eq!(
        exec(&mut s, &select, vec![Value::Int4(1)]),
        Err("0A000".into())
    );
}

#[test]
fn a_prepared_insert_survives_adding_a_primary_key() {
    // pgbench -i: COPY into a table without a key, then ALTER TABLE ... ADD PRIMARY KEY,
    // which moves the table to a new id.
    let (_dir, _engine, mut s) = setup();
    simple(&mut s, "CREATE TABLE acc (aid int, abalance int)");
    let insert = prepare(&mut s, "INSERT INTO acc (aid, abalance) VALUES ($1, $2)", 2);
    let count = prepare(&mut s, "SELECT count(*) FROM acc", 0);
    exec(&mut s, &insert, vec![Value::Int4(1), Value::Int4(0)]).expect("insert");
    simple(&mut s, "ALTER TABLE acc ADD PRIMARY KEY (aid)");
    exec(&mut s, &insert, vec![Value::Int4(2), Value::Int4(0)]).expect("insert");
    assert_eq!(one(&mut s, &count, vec![]), Value::Int8(2));
    assert_eq!(
        exec(&mut s, &insert, vec![Value::Int4(2), Value::Int4(0)]),
        Err("23505".into())
    );
}
