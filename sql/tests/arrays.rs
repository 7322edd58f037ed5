//! Arrays through a Session: result types (PostgreSQL's array OIDs), the text form, casts,
//! the catalog rows of array types and columns, errors. Each expected line was checked on a
//! live PostgreSQL 15 (tests/differential/09_arrays.sql runs more of this against one).

use gnomon_sql::{DataType, Outcome, Session};

mod common;
use common::{open, run, run_as, session, setup, Errors};

/// The type OIDs of a query's result columns.
fn result_oids(s: &mut Session, sql: &str) -> Vec<u32> {
    match s.execute_simple(sql).pop() {
        Some(Ok(Outcome::Rows { columns, .. })) => columns.iter().map(|c| c.ty.oid()).collect(),
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn array_expressions_have_their_array_types() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        result_oids(
            &mut s,
            "SELECT ARRAY[1], ARRAY[1::int8], ARRAY[1::int2], ARRAY['a'], ARRAY[1.5], \
             ARRAY[true], ARRAY[1.5::float8], '{a}'::varchar[], ARRAY[ARRAY[1]], \
             ARRAY(SELECT 1), '{}'::text[]"
        ),
        vec![1007, 1016, 1005, 1009, 1231, 1000, 1022, 1015, 1007, 1007, 1009]
    );
    assert_eq!(
        DataType::array_of(DataType::Varchar(Some(5))).typmod(),
        9,
        "varchar(5)[] reports the element's modifier"
    );
    assert_eq!(
        DataType::array_of(DataType::Int4).name(),
        "integer[]".to_string()
    );
    assert_eq!(DataType::from_oid(1231).map(|t| t.oid()), Some(1231));
}

#[test]
fn array_columns_store_and_cast_their_elements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let mut s = session(&engine);
    run(
        &mut s,
        "CREATE TABLE t (id int PRIMARY KEY, a int[], v varchar(2)[], n numeric(4,1)[])",
    );
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO t VALUES (1, '{1,NULL,3}', '{ab,\"c \"}', '{1.25,2}'), \
             (2, ARRAY[ARRAY[1,2],ARRAY[3,4]], ARRAY['x'], ARRAY[9.99]); \
             SELECT * FROM t ORDER BY id"
        ),
        "INSERT 0 2\n1|{1,NULL,3}|{ab,\"c \"}|{1.3,2.0}\n2|{{1,2},{3,4}}|{x}|{10.0}\nSELECT 2"
    );
    // An assignment checks each element against the column's modifier; an explicit cast
    // truncates, as for varchar(n) itself.
    assert_eq!(
        run(&mut s, "INSERT INTO t (id, v) VALUES (3, '{abc}')"),
        "ERROR 22001 value too long for type character varying(2)"
    );
    assert_eq!(
        run(&mut s, "SELECT '{abc,de}'::varchar(2)[]"),
        "{ab,de}\nSELECT 1"
    );
    // Subscripts count from each dimension's lower bound; out of range is NULL.
    assert_eq!(
        run(
            &mut s,
            "SELECT a[1], a[2] IS NULL, a[0], ('[0:1]={7,8}'::int[])[0] FROM t WHERE id = 1"
        ),
        "1|t|NULL|7\nSELECT 1"
    );
    drop(s);
    drop(engine);
    // The column types and the values survive a reopen.
    let engine = open(dir.path());
    let mut s = session(&engine);
    assert_eq!(
        run(
            &mut s,
            "SELECT format_type(atttypid, atttypmod), attndims FROM pg_attribute \
             WHERE attrelid = 't'::regclass AND attnum > 1 ORDER BY attnum; \
             SELECT a FROM t WHERE a = '{{1,2},{3,4}}'"
        ),
        "integer[]|1\ncharacter varying(2)[]|1\nnumeric(4,1)[]|1\nSELECT 3\n{{1,2},{3,4}}\nSELECT 1"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT data_type FROM information_schema.columns WHERE table_name = 't' \
             AND column_name = 'a'"
        ),
        "ARRAY\nSELECT 1"
    );
}

#[test]
fn pg_type_lists_the_array_types() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(
            &mut s,
            "SELECT typname, typcategory, typelem, typarray, typlen FROM pg_type \
             WHERE typname IN ('int4', '_int4', '_varchar', '_numeric', '_bool') ORDER BY typname"
        ),
        "_bool|A|16|0|-1\n_int4|A|23|0|-1\n_numeric|A|1700|0|-1\n_varchar|A|1043|0|-1\n\
         int4|N|0|1007|4\nSELECT 5"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT '_int4'::regtype::text, format_type(1015, 14)"
        ),
        "integer[]|character varying(10)[]\nSELECT 1"
    );
}

#[test]
fn malformed_arrays_are_22p02_with_postgres_details() {
    let (_d, _e, mut s) = setup();
    let mut out = Vec::new();
    for sql in [
        "SELECT '{1,2'::int[]",
        "SELECT '{{1},{2,3}}'::int[]",
        "SELECT '{a}'::int[]",
        "SELECT ARRAY[ARRAY[1],ARRAY[1,2]]",
        "SELECT ARRAY[]",
        "SELECT 1 = ANY(ARRAY['a'])",
        "SELECT 1",
    ] {
        out.push(run_as(&mut s, sql, Errors::InlineDetail));
    }
    assert_eq!(
        out,
        vec![
            "ERROR 22P02 malformed array literal: \"{1,2\" DETAIL: Unexpected end of input.",
            "ERROR 22P02 malformed array literal: \"{{1},{2,3}}\" DETAIL: Multidimensional arrays must have sub-arrays with matching dimensions.",
            "ERROR 22P02 invalid input syntax for type integer: \"a\"",
            "ERROR 2202E multidimensional arrays must have array expressions with matching dimensions",
            "ERROR 42P18 cannot determine type of empty array",
            "ERROR 42883 operator does not exist: integer = text",
            "1\nSELECT 1",
        ]
    );
}

#[test]
fn index_columns_unnest_from_their_vectors_with_default_opclasses() {
    let (_d, _e, mut s) = setup();
    run(
        &mut s,
        "CREATE TABLE t (a int, b varchar(5), c int8, PRIMARY KEY (c, a)); \
         CREATE INDEX t_b_a ON t (b, a)",
    );
    // indkey / indclass / indcollation / indoption are int2vector / oidvector (22 / 30),
    // printed as PostgreSQL prints them.
    assert_eq!(
        result_oids(
            &mut s,
            "SELECT indkey, indclass, indcollation, indoption FROM pg_index"
        ),
        vec![22, 30, 30, 22]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT indkey, indclass, indcollation, indoption FROM pg_index \
             WHERE indexrelid = 't_b_a'::regclass"
        ),
        "2 1|3126 1978|100 0|0 0\nSELECT 1"
    );
    // What SQLAlchemy's get_indexes reads: the columns in index order (subscripts of an
    // int2vector start at 0), each with its default operator class.
    assert_eq!(
        run(
            &mut s,
            "SELECT c.relname, array_agg(a.attname::text ORDER BY x.ord), \
             bool_and(o.opcdefault), array_agg(o.opcname ORDER BY x.ord) \
             FROM (SELECT indexrelid, indrelid, unnest(indkey) AS attnum, \
                   unnest(indclass) AS opc, generate_subscripts(indkey, 1) AS ord \
                   FROM pg_index) x \
             JOIN pg_class c ON c.oid = x.indexrelid \
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.attnum \
             LEFT JOIN pg_opclass o ON o.oid = x.opc \
             GROUP BY c.relname ORDER BY 1"
        ),
        "t_b_a|{b,a}|t|{text_ops,int4_ops}\nt_pkey|{c,a}|t|{int8_ops,int4_ops}\nSELECT 2"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT min(x), max(x) FROM (SELECT generate_subscripts(indkey, 1) AS x FROM pg_index) s; \
             SELECT count(*) FROM pg_enum"
        ),
        "0|1\nSELECT 1\n0\nSELECT 1"
    );
}
