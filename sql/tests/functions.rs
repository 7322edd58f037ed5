//! Scalar functions and operators through a Session: PostgreSQL 15's results, result types,
//! NULL handling and SQLSTATEs. (tests/differential.rs runs a larger corpus against a live
//! PostgreSQL 15 over the wire.)

use gnomon_sql::{Outcome, Session};

mod common;
use common::{row_text, setup};

/// Runs `sql` and renders every result: rows as `a|b` (no command tags), errors as
/// `ERROR <code>`.
fn run(s: &mut Session, sql: &str) -> String {
    let mut out = Vec::new();
    for r in s.execute_simple(sql) {
        match r {
            Ok(Outcome::Rows { rows, .. }) => out.extend(rows.iter().map(|row| row_text(row))),
            Ok(Outcome::Command { tag }) => out.push(tag),
            Ok(Outcome::Empty) => out.push("EMPTY".into()),
            Err(e) => out.push(format!("ERROR {}", e.code.code())),
        }
    }
    out.join("\n")
}

#[test]
fn any_and_all_over_an_array_constructor() {
    let (_d, _e, mut s) = setup();
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

#[test]
fn math_and_string_functions_follow_postgres() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(
            &mut s,
            "SELECT floor(-1.5), ceil(1.2::float8), trunc(12.345, -1), round(1250, -2), 2 ^ 10, 2.0 ^ 3, sqrt(2::numeric), mod(-7, 3)"
        ),
        "-2|2|10|1300|1024|8.0000000000000000|1.414213562373095|-1"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT substring('hello' from 2 for 3), position('l' in 'hello'), trim(both 'x' from 'xxaxx'), \
             lpad('hi', 5, 'xy'), split_part('a,b,c', ',', -1), concat('a', NULL, 1), initcap('hello wORLD')"
        ),
        "ell|3|a|xyxhi|c|a1|Hello World"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT extract(epoch from timestamp '2020-01-01 12:34:56.789'), date_trunc('week', timestamp '2020-01-01 13:14'), \
             to_char(timestamp '2020-03-04 15:06:07', 'FMDDth Mon YYYY HH12:MI AM'), to_char(-1234.5, '9,999.99')"
        ),
        "1577882096.789000|2019-12-30 00:00:00|4th Mar 2020 03:06 PM|-1,234.50"
    );
    // SQLSTATEs: 2201F power, 2201E log, 22011 substring, 22023 split_part, 0A000 extract.
    for (sql, code) in [
        ("SELECT 0 ^ -1", "ERROR 2201F"),
        ("SELECT ln(0)", "ERROR 2201E"),
        ("SELECT substr('a', 1, -1)", "ERROR 22011"),
        ("SELECT split_part('a', ',', 0)", "ERROR 22023"),
        ("SELECT extract(hour from date '2020-01-01')", "ERROR 0A000"),
        ("SELECT make_date(2020, 2, 30)", "ERROR 22008"),
        ("SELECT length(1)", "ERROR 42883"),
    ] {
        assert_eq!(run(&mut s, sql), code, "{sql}");
    }
}

#[test]
fn intervals_do_calendar_arithmetic_and_survive_storage() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(
            &mut s,
            "SELECT timestamp '2020-01-31' + interval '1 month', timestamp '2020-01-02 01:00' - timestamp '2020-01-01', \
             interval '1 day' * 1.5, age(timestamp '2020-03-01', timestamp '2019-01-31'), interval '1 mon' = interval '30 days'"
        ),
        "2020-02-29 00:00:00|1 day 01:00:00|1 day 12:00:00|1 year 1 mon 1 day|t"
    );
    run(
        &mut s,
        "CREATE TABLE t (id interval PRIMARY KEY, v interval);
         INSERT INTO t VALUES (interval '1 day', interval '-1 day +02:00:00'), (interval '1 hour', NULL);",
    );
    assert_eq!(
        run(&mut s, "SELECT id, v FROM t ORDER BY id"),
        "01:00:00|NULL\n1 day|-1 days +02:00:00"
    );
    // '24 hours' equals '1 day': the primary key refuses it.
    assert_eq!(
        run(&mut s, "INSERT INTO t VALUES (interval '24 hours', NULL)"),
        "ERROR 23505"
    );
    assert_eq!(run(&mut s, "SELECT 'soon'::interval"), "ERROR 22007");
}

#[test]
fn round_follows_postgres_with_and_without_places() {
    let (_d, _e, mut s) = setup();
    // PostgreSQL 15's answers (checked on a live server). round(x, n) is bound by
    // functions.rs: numeric, half away from zero, a negative n rounds left of the point.
    assert_eq!(
        run(
            &mut s,
            "SELECT round(2.5::numeric, 0), round(-2.345, 2), round(1234.5678, -2), \
             round(0.5::numeric, 3), round(7, 1), round(NULL::numeric, 1), round('2.55', 1)"
        ),
        "3|-2.35|1200|0.500|7.0|NULL|2.6"
    );
    // round(x): numeric half away from zero; double precision (also for integers and
    // unknown literals) half to even.
    assert_eq!(
        run(
            &mut s,
            "SELECT round(2.5), round(-2.5), round(-0.5), round(2.5::float8), round(3.5::float4), \
             round('2.5'), round(7), round(-3::int8)"
        ),
        "3|-3|-1|2|4|2|7|-3"
    );
    let types = |s: &mut Session, sql: &str| match s.execute_simple(sql).pop() {
        Some(Ok(Outcome::Rows { columns, .. })) => {
            columns.iter().map(|c| c.ty.oid()).collect::<Vec<_>>()
        }
        other => panic!("{sql}: {other:?}"),
    };
    assert_eq!(
        types(
            &mut s,
            "SELECT round(2.5::numeric, 0), round(7, 1), round(2.5), round(2.5::float8), \
             round(1::int2), round(7), round('7')"
        ),
        [1700, 1700, 1700, 701, 701, 701, 701]
    );
    // No round(double precision, integer) in PostgreSQL; bad text is 22P02; the session goes on.
    assert_eq!(run(&mut s, "SELECT round(2.5::float8, 1)"), "ERROR 42883");
    assert_eq!(run(&mut s, "SELECT round('abc', 1)"), "ERROR 22P02");
    assert_eq!(run(&mut s, "SELECT round('abc')"), "ERROR 22P02");
    assert_eq!(run(&mut s, "SELECT round(true)"), "ERROR 42883");
    assert_eq!(
        run(
            &mut s,
            "SELECT round(1.5), round(NULL::numeric), round(NULL)"
        ),
        "2|NULL|NULL"
    );
}
