//! The pg_catalog views and functions clients read (psql's `\d` family, SQLAlchemy, pgjdbc),
//! against a real gnomon_mvcc::Db: OIDs agree across views and with RowDescription, the
//! views follow the reading transaction, and bad input to the catalog functions and
//! operators fails with PostgreSQL's SQLSTATE and leaves the session usable. The psql output
//! itself is compared with PostgreSQL 15's in tests/psql.rs.

use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Session, SqlEngine};

fn open(dir: &std::path::Path) -> Arc<SqlEngine> {
    let db = Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    SqlEngine::open(db).expect("open sql")
}

/// Runs `sql` and renders every result: rows as `a|b`, tags, errors as `ERROR <code> <msg>`.
fn run(s: &mut Session, sql: &str) -> String {
    let mut out = Vec::new();
    for r in s.execute_simple(sql) {
        match r {
            Ok(Outcome::Rows { rows, tag, .. }) => {
                for row in rows {
                    out.push(
                        row.iter()
                            .map(|v| v.to_text().unwrap_or_else(|| "NULL".into()))
                            .collect::<Vec<_>>()
                            .join("|"),
                    );
                }
                out.push(tag);
            }
            Ok(Outcome::Command { tag }) => out.push(tag),
            Ok(Outcome::Empty) => out.push("EMPTY".into()),
            Err(e) => out.push(format!("ERROR {} {}", e.code.code(), e.message)),
        }
    }
    out.join("\n")
}

fn setup() -> (tempfile::TempDir, Arc<SqlEngine>, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let s = Session::new(engine.clone(), "gnomon", "gnomon").expect("session");
    (dir, engine, s)
}

const SCHEMA: &str = "CREATE TABLE items (id integer PRIMARY KEY, name varchar(40) NOT NULL, \
     sku text UNIQUE, qty bigint DEFAULT 1 CHECK (qty > 0)); \
     CREATE INDEX items_name_idx ON items (name)";

#[test]
fn oids_agree_across_views_and_with_row_descriptions() {
    let (_d, _e, mut s) = setup();
    run(&mut s, SCHEMA);
    // Every index in pg_index is a pg_class row of kind i, on the table's OID, and every
    // p/u constraint names its index.
    assert_eq!(
        run(
            &mut s,
            "SELECT c2.relname, c2.relkind, i.indisprimary, i.indisunique, i.indkey, con.contype \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_class c2 ON c2.oid = i.indexrelid \
             LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid \
             WHERE c.relname = 'items' ORDER BY 1"
        ),
        "items_name_idx|i|f|f|2|NULL\nitems_pkey|i|t|t|1|p\nitems_sku_key|i|f|t|3|u\nSELECT 3"
    );
    // pg_attribute's columns are the table's, under its OID; the defaults are in pg_attrdef.
    assert_eq!(
        run(
            &mut s,
            "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
             (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
              WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             WHERE c.relname = 'items' ORDER BY a.attnum"
        ),
        "1|id|integer|t|NULL\n2|name|character varying(40)|t|NULL\n3|sku|text|f|NULL\n\
         4|qty|bigint|f|1\nSELECT 4"
    );
    // RowDescription names the same table OID and attribute numbers (pgjdbc relies on it).
    let oid = run(&mut s, "SELECT oid FROM pg_class WHERE relname = 'items'");
    let oid: u32 = oid.lines().next().unwrap().parse().unwrap();
    let r = s.execute_simple("SELECT qty, id, 1 AS computed FROM items");
    let Some(Ok(Outcome::Rows { columns, .. })) = r.into_iter().next() else {
        panic!("no rows")
    };
    let described: Vec<(u32, i16)> = columns.iter().map(|c| (c.table_oid, c.column_id)).collect();
    assert_eq!(described, vec![(oid, 4), (oid, 1), (0, 0)]);
    // 'name'::regclass resolves to the same OID; oid::regclass shows the name.
    assert_eq!(
        run(
            &mut s,
            &format!(
                "SELECT 'items'::regclass = {oid}, {oid}::regclass, \
                 'items_pkey'::pg_catalog.regclass::pg_catalog.text, \
                 pg_table_is_visible({oid}), pg_get_userbyid(relowner) FROM pg_class \
                 WHERE oid = 'public.items'::regclass"
            )
        ),
        "t|items|items_pkey|t|gnomon\nSELECT 1"
    );
}

#[test]
fn catalog_views_follow_the_reading_transaction() {
    let (_d, engine, mut s) = setup();
    let mut other = Session::new(engine.clone(), "gnomon", "gnomon").expect("session");
    run(&mut s, "BEGIN");
    run(&mut s, SCHEMA);
    let count = "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 WHERE c.relname = 'items'";
    assert_eq!(run(&mut s, count), "4\nSELECT 1");
    assert_eq!(run(&mut other, count), "0\nSELECT 1");
    assert_eq!(
        run(&mut other, "SELECT count(*) FROM pg_constraint"),
        "0\nSELECT 1"
    );
    run(&mut s, "COMMIT");
    assert_eq!(run(&mut other, count), "4\nSELECT 1");
    assert_eq!(
        run(
            &mut other,
            "SELECT conname, pg_get_constraintdef(oid, true) FROM pg_constraint \
             WHERE contype = 'c'"
        ),
        "items_qty_check|CHECK (qty > 0)\nSELECT 1"
    );
}

#[test]
fn bad_catalog_input_fails_with_postgres_sqlstates_and_the_session_goes_on() {
    let (_d, _e, mut s) = setup();
    run(&mut s, SCHEMA);
    for (sql, code) in [
        ("SELECT 'a' ~ '('", "2201B"),
        (
            "SELECT relname FROM pg_class WHERE relname ~ '[z-a]'",
            "2201B",
        ),
        ("SELECT 'a' COLLATE \"de_DE\"", "42704"),
        ("SELECT 'nosuch'::regclass", "42P01"),
        ("SELECT 'nosuch'::regnamespace", "3F000"),
        ("SELECT 'nosuch'::regtype", "42704"),
        ("SELECT 1 ~ 'x'", "42883"),
        ("SELECT array_to_string('{a', ',')", "22P02"),
        ("SELECT 'x' = ANY ('{{a},{b}}')", "0A000"),
        ("SELECT pg_get_serial_sequence('nosuch', 'id')", "42P01"),
        ("SELECT pg_get_serial_sequence('items', 'nosuch')", "42703"),
        (
            "SELECT relname FROM pg_class WHERE relname OPERATOR(myschema.~) 'x'",
            "42883",
        ),
    ] {
        let out = run(&mut s, sql);
        assert!(
            out.starts_with(&format!("ERROR {code} ")),
            "{sql}: expected {code}, got {out}"
        );
        assert_eq!(run(&mut s, "SELECT 1"), "1\nSELECT 1", "after {sql}");
    }
    // Unknown OIDs read as PostgreSQL shows them, not as errors.
    assert_eq!(
        run(
            &mut s,
            "SELECT pg_get_userbyid(99999), format_type(99999, -1), 99999::regclass, \
             pg_get_indexdef(99999), pg_table_is_visible(99999), 0::regclass"
        ),
        "unknown (OID=99999)|???|99999|NULL|NULL|-\nSELECT 1"
    );
}

#[test]
fn arrays_any_and_regex_operators_behave_as_in_postgres() {
    let (_d, _e, mut s) = setup();
    run(&mut s, SCHEMA);
    assert_eq!(
        run(
            &mut s,
            "SELECT 'r' = ANY (ARRAY['r', 'p']), 2 = ANY ('{1,2}'), 3 <> ALL (ARRAY[1, 2]), \
             'x' = ANY (ARRAY['a', NULL]), ARRAY['a b', NULL, ''], \
             array_upper(ARRAY['a', 'b'], 1), (ARRAY['a', 'b'])[2], \
             'Items' ~* '^items$', 'Items' !~ '^items$', 'items' !~* 'ITEMS'"
        ),
        "t|t|t|NULL|{\"a b\",NULL,\"\"}|2|b|t|t|f\nSELECT 1"
    );
    // ARRAY(subquery) and unnest round-trip; string_agg joins in row order.
    assert_eq!(
        run(
            &mut s,
            "SELECT x FROM unnest(ARRAY(SELECT relname FROM pg_class WHERE relkind = 'i' \
             ORDER BY relname)) x"
        ),
        "items_name_idx\nitems_pkey\nitems_sku_key\nSELECT 3"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT string_agg(attname, ', ') FROM (SELECT attname FROM pg_attribute \
             WHERE attrelid = 'items'::regclass ORDER BY attnum) a"
        ),
        "id, name, sku, qty\nSELECT 1"
    );
}
