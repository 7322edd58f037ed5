//! Query breadth through a Session: joins, subqueries, set operations, CTEs, windows.
//! (A differential test that runs such queries on a live PostgreSQL 15 too does not exist
//! yet: issue 6.)

use gnomon_sql::Session;

mod common;
use common::{run, setup};

fn setup_tables(s: &mut Session) {
    run(
        s,
        "CREATE TABLE a (id int PRIMARY KEY, x int, name text);
         CREATE TABLE b (id int PRIMARY KEY, a_id int, v int);
         INSERT INTO a VALUES (1, 10, 'one'), (2, 20, 'two'), (3, NULL, 'three');
         INSERT INTO b VALUES (100, 1, 5), (101, 1, 6), (102, 2, 7), (103, 9, 8);",
    );
}

#[test]
fn outer_joins_pad_the_unmatched_side_with_nulls() {
    let (_d, _e, mut s) = setup();
    setup_tables(&mut s);
    assert_eq!(
        run(
            &mut s,
            "SELECT a.name, b.v FROM a LEFT JOIN b ON a.id = b.a_id ORDER BY 1, 2"
        ),
        "one|5\none|6\nthree|NULL\ntwo|7\nSELECT 4"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT a.name, b.v FROM a FULL JOIN b ON a.id = b.a_id ORDER BY 2, 1"
        ),
        "one|5\none|6\ntwo|7\nNULL|8\nthree|NULL\nSELECT 5"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT a.name, b.v FROM a RIGHT JOIN b ON a.id = b.a_id ORDER BY 2"
        ),
        "one|5\none|6\ntwo|7\nNULL|8\nSELECT 4"
    );
}

#[test]
fn join_methods_are_chosen_from_keys() {
    let (_d, _e, mut s) = setup();
    setup_tables(&mut s);
    // The primary key of the inner side: a seek per outer row.
    let plan = run(&mut s, "EXPLAIN SELECT * FROM b JOIN a ON a.id = b.a_id");
    assert!(plan.starts_with("Index Nested Loop\n"), "{plan}");
    assert!(plan.contains("Index Scan using a_pkey on a"), "{plan}");
    // A non-key equality: hash join; no equality: nested loop.
    let plan = run(&mut s, "EXPLAIN SELECT * FROM a JOIN b ON a.x = b.v");
    assert!(plan.starts_with("Hash Join\n"), "{plan}");
    let plan = run(&mut s, "EXPLAIN SELECT * FROM a JOIN b ON a.x < b.v");
    assert!(plan.starts_with("Nested Loop\n"), "{plan}");
    // Comma joins take their keys from WHERE; the result is the same either way.
    assert_eq!(
        run(
            &mut s,
            "SELECT a.name, b.id FROM a, b WHERE b.a_id = a.id AND b.v > 5 ORDER BY 2"
        ),
        "one|101\ntwo|102\nSELECT 2"
    );
    let analyzed = run(
        &mut s,
        "EXPLAIN ANALYZE SELECT * FROM b JOIN a ON a.id = b.a_id",
    );
    assert!(
        analyzed.contains("on a  (actual rows=3 loops=4)"),
        "{analyzed}"
    );
}

#[test]
fn subqueries_follow_sql_null_semantics() {
    let (_d, _e, mut s) = setup();
    setup_tables(&mut s);
    assert_eq!(
        run(
            &mut s,
            "SELECT name, (SELECT count(*) FROM b WHERE b.a_id = a.id) FROM a ORDER BY 1"
        ),
        "one|2\nthree|0\ntwo|1\nSELECT 3"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT name FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.a_id = a.id)"
        ),
        "three\nSELECT 1"
    );
    // a.x holds a NULL: NOT IN is never true.
    assert_eq!(
        run(&mut s, "SELECT 1 WHERE 1 NOT IN (SELECT x FROM a)"),
        "SELECT 0"
    );
    assert_eq!(
        run(&mut s, "SELECT 1 WHERE 10 IN (SELECT x FROM a)"),
        "1\nSELECT 1"
    );
    assert_eq!(
        run(&mut s, "SELECT (SELECT id FROM a)"),
        "ERROR 21000 more than one row returned by a subquery used as an expression"
    );
}

#[test]
fn set_operations_ctes_and_windows() {
    let (_d, _e, mut s) = setup();
    setup_tables(&mut s);
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM a UNION SELECT a_id FROM b ORDER BY 1"
        ),
        "1\n2\n3\n9\nSELECT 4"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT a_id FROM b EXCEPT ALL SELECT id FROM a ORDER BY 1"
        ),
        "1\n9\nSELECT 2"
    );
    assert_eq!(
        run(&mut s, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) FROM r"),
        "15\nSELECT 1"
    );
    assert_eq!(
        run(&mut s, "SELECT a_id, v, sum(v) OVER (PARTITION BY a_id), rank() OVER (ORDER BY a_id) FROM b ORDER BY b.id"),
        "1|5|11|1\n1|6|11|1\n2|7|7|3\n9|8|8|4\nSELECT 4"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT count(*) FILTER (WHERE v > 5), sum(v) FILTER (WHERE a_id = 1) FROM b"
        ),
        "3|11\nSELECT 1"
    );
}

#[test]
fn set_returning_functions_in_from_are_named_as_in_postgres() {
    let (_d, _e, mut s) = setup();
    // No alias: relation and column take the function's name; `AS r`: both `r`;
    // `AS r(c)`: relation r, column c (PostgreSQL 15's answers).
    assert_eq!(
        run(
            &mut s,
            "SELECT generate_series.generate_series FROM generate_series(1, 2)"
        ),
        "1\n2\nSELECT 2"
    );
    assert_eq!(
        run(&mut s, "SELECT g.g FROM generate_series(3, 3) g"),
        "3\nSELECT 1"
    );
    assert_eq!(
        run(&mut s, "SELECT t.c FROM generate_series(4, 4) AS t(c)"),
        "4\nSELECT 1"
    );
    assert_eq!(
        run(&mut s, "SELECT unnest.unnest FROM unnest(ARRAY['a', 'b'])"),
        "a\nb\nSELECT 2"
    );
    assert_eq!(
        run(&mut s, "SELECT u.v FROM unnest(ARRAY['c']) AS u(v)"),
        "c\nSELECT 1"
    );
    assert_eq!(
        run(&mut s, "SELECT x FROM generate_series(1, 1) AS t(c)"),
        "ERROR 42703 column \"x\" does not exist"
    );
}
