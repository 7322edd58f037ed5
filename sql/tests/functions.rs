//! Scalar functions and operators through a Session: PostgreSQL 15's results, result types,
//! NULL handling and SQLSTATEs. (tests/differential.rs runs a larger corpus against a live
//! PostgreSQL 15 over the wire.)

use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Session, SqlEngine};

fn setup() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    let engine: Arc<SqlEngine> = SqlEngine::open(db).expect("open sql");
    let s = Session::new(engine, "gnomon", "gnomon").expect("session");
    (dir, s)
}

/// Runs `sql` and renders every result: rows as `a|b`, errors as `ERROR <code>`.
fn run(s: &mut Session, sql: &str) -> String {
    let mut out = Vec::new();
    for r in s.execute_simple(sql) {
        match r {
            Ok(Outcome::Rows { rows, .. }) => {
                for row in rows {
                    out.push(
                        row.iter()
                            .map(|v| v.to_text().unwrap_or_else(|| "NULL".into()))
                            .collect::<Vec<_>>()
                            .join("|"),
                    );
                }
            }
            Ok(Outcome::Command { tag }) => out.push(tag),
            Ok(Outcome::Empty) => out.push("EMPTY".into()),
            Err(e) => out.push(format!("ERROR {}", e.code.code())),
        }
    }
    out.join("\n")
}

#[test]
fn any_and_all_over_an_array_constructor() {
    let (_d, mut s) = setup();
    run(
        &mut s,
        "CREATE TABLE t (id int PRIMARY KEY, k text);
         INSERT INTO t VALUES (1, 'r'), (2, 'p'), (3, 'v'), (4, NULL);",
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM t WHERE k = ANY(ARRAY['r', 'p']) ORDER BY id"
        ),
        "1\n2"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM t WHERE id <> ALL(ARRAY[1, 3]) ORDER BY id"
        ),
        "2\n4"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM t WHERE id > ANY(ARRAY[2, 3]) ORDER BY id"
        ),
        "3\n4"
    );
    // Three-valued: a NULL element makes a non-match unknown; no elements: ANY false, ALL true.
    assert_eq!(
        run(
            &mut s,
            "SELECT 1 = ANY(ARRAY[2, NULL]), 2 = ANY(ARRAY[2, NULL]), 1 <> ALL(ARRAY[2, NULL]),
                    NULL::int = ANY(ARRAY[1]), 1.5 = SOME(ARRAY[1, 1.5])"
        ),
        "NULL|t|NULL|NULL|t"
    );
    assert_eq!(run(&mut s, "SELECT 1 = ANY(ARRAY[])"), "ERROR 42P18");
    // ARRAY of untyped literals is text[], as in PostgreSQL: integer = text does not exist.
    assert_eq!(run(&mut s, "SELECT 1 = ANY(ARRAY['1'])"), "ERROR 42883");
    assert_eq!(run(&mut s, "SELECT 1"), "1");
}
