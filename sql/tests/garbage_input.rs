//! Whatever text a client sends, the SQL layer answers with a result or an SQLSTATE error and the
//! session stays usable: statements cut at every position, and statements spliced together.

use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Session, SqlEngine, Value};

const CORPUS: &[&str] = &[
    "create table t (a int primary key, b text default 'x', c numeric(6,2) not null default 0, d timestamptz, e bool, f bytea, g varchar(3), h char(2), i float8, j date, k smallint, l bigint)",
    "insert into t (a, b, c, d, e, f, g, h, i, j, k, l) values (1, 'one', 1.25, '2024-01-01 00:00:00+00', true, '\\x00ff', 'abc', 'z', 1.5e3, '2024-02-29', 7, 9000000000) returning *",
    "insert into t (a) select x from generate_series(2, 20) as x",
    "select a, b || '!', c * 2, -c, d, e and not e, f, g, h, i / 3, j + 1, k % 3, l / 7 from t where a between 1 and 5 order by a desc nulls last limit 3 offset 1",
    "select count(*), sum(c), avg(a), min(b), max(j) from t group by a % 3 having count(*) > 1 order by 1",
    "update t set c = c + 1, b = upper(b) where a in (1, 2, 3) and b like 'o%' returning a, c",
    "delete from t where a = 5 or (a > 18 and b is not null) returning *",
    "select case when a < 3 then 'low' when a < 10 then 'mid' else 'high' end, coalesce(b, 'none'), nullif(a, 2) from t",
    "select cast('12' as int) + 1::int2, '1.5'::numeric(4,1), 2147483647 + 1, 1 / 0, 'x'::int, round(2.5), abs(-3)",
    "begin; savepoint s; insert into t (a) values (100); rollback to savepoint s; release s; commit",
    "select distinct e from t order by e nulls first",
    "set statement_timeout = '1s'; show statement_timeout; reset all",
    "alter table t add primary key (a)",
    "vacuum analyze t",
    "drop table if exists nosuch, t",
];

fn session(dir: &std::path::Path) -> Session {
    let db = Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    let engine: Arc<SqlEngine> = SqlEngine::open(db).expect("open sql");
    Session::new(engine, "gnomon", "gnomon").expect("session")
}

/// Runs `sql`, then checks the session still answers `select 1` (after ending whatever
/// transaction the garbage left open).
fn run_and_recover(s: &mut Session, sql: &str) {
    for r in s.execute_simple(sql) {
        if let Err(e) = r {
            let code = e.code.code();
            assert_eq!(code.len(), 5, "{sql:?}: malformed SQLSTATE {code}");
        }
    }
    s.execute_simple("ROLLBACK");
    let r = s.execute_simple("select 1");
    match r.as_slice() {
        [Ok(Outcome::Rows { rows, .. })] => assert_eq!(rows, &vec![vec![Value::Int4(1)]]),
        other => panic!("session unusable after {sql:?}: {other:?}"),
    }
}

#[test]
fn statements_cut_at_every_character_never_break_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = session(dir.path());
    for stmt in CORPUS {
        // Set the table up fresh so cut statements meet real data.
        s.execute_simple("drop table if exists t");
        run_and_recover(&mut s, CORPUS[0]);
        run_and_recover(&mut s, CORPUS[1]);
        run_and_recover(&mut s, CORPUS[2]);
        for (cut, _) in stmt.char_indices() {
            run_and_recover(&mut s, &stmt[..cut]);
        }
    }
}

#[test]
fn spliced_statements_never_break_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = session(dir.path());
    run_and_recover(&mut s, CORPUS[0]);
    run_and_recover(&mut s, CORPUS[2]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..3000 {
        let a = CORPUS[next(CORPUS.len())];
        let b = CORPUS[next(CORPUS.len())];
        let (i, j) = (next(a.len() + 1), next(b.len() + 1));
        if !a.is_char_boundary(i) || !b.is_char_boundary(j) {
            continue;
        }
        run_and_recover(&mut s, &format!("{}{}", &a[..i], &b[j..]));
    }
}
