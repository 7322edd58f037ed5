//! Partitioned tables through a Session: DDL and its errors, routing, key updates that move
//! rows, pruning as EXPLAIN shows it, DROP, and durability of the partition metadata.

use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Session, SqlEngine, Value};

mod common;
use common::Errors;

/// Opens (or reopens) the database in `dir` and starts a session on it.
fn open(dir: &std::path::Path) -> Session {
    common::session(&common::open(dir))
}

/// [`common::run`] with an error's DETAIL on its line (` DETAIL: ...`).
fn run(s: &mut Session, sql: &str) -> String {
    common::run_as(s, sql, Errors::InlineDetail)
}

fn range_table(s: &mut Session) {
    let out = run(
        s,
        "CREATE TABLE m (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
         CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (MINVALUE) TO (10);
         CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20);
         CREATE TABLE md PARTITION OF m DEFAULT;",
    );
    assert_eq!(
        out,
        "CREATE TABLE\nCREATE TABLE\nCREATE TABLE\nCREATE TABLE"
    );
}

#[test]
fn rows_are_routed_to_their_partition_and_the_parent_sees_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    range_table(&mut s);
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO m VALUES (1, 'a'), (10, 'b'), (19, 'c'), (20, 'd'), (-5, 'e')"
        ),
        "INSERT 0 5"
    );
    assert_eq!(
        run(&mut s, "SELECT k FROM m1 ORDER BY k"),
        "-5\n1\nSELECT 2"
    );
    assert_eq!(
        run(&mut s, "SELECT k FROM m2 ORDER BY k"),
        "10\n19\nSELECT 2"
    );
    assert_eq!(run(&mut s, "SELECT k, v FROM md"), "20|d\nSELECT 1");
    assert_eq!(
        run(&mut s, "SELECT k, v FROM m ORDER BY k"),
        "-5|e\n1|a\n10|b\n19|c\n20|d\nSELECT 5"
    );
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM m WHERE k >= 10"),
        "3\nSELECT 1"
    );
    // A join reads the parent like any table.
    assert_eq!(
        run(
            &mut s,
            "SELECT a.k, b.k FROM m a JOIN m b ON a.k = b.k - 9 ORDER BY 1"
        ),
        "1|10\n10|19\nSELECT 2"
    );
    // The catalog as PostgreSQL 15 shows it (output of the same query there).
    assert_eq!(
        run(
            &mut s,
            "SELECT relname, relkind, relispartition, pg_get_expr(relpartbound, oid) \
             FROM pg_class WHERE relname IN ('m', 'm1', 'm2') ORDER BY 1"
        ),
        "m|p|f|NULL\nm1|r|t|FOR VALUES FROM (MINVALUE) TO (10)\n\
         m2|r|t|FOR VALUES FROM (10) TO (20)\nSELECT 3"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT c.relname FROM pg_partition_ancestors('m1') a \
             JOIN pg_class c ON c.oid = a.relid ORDER BY 1"
        ),
        "m\nm1\nSELECT 2"
    );
    // As in PostgreSQL 15: a name that is no relation is 42P01 (the argument is a regclass),
    // an OID that is none has no ancestors.
    assert_eq!(
        run(
            &mut s,
            "SELECT count(*) FROM pg_partition_ancestors('nope')"
        ),
        "ERROR 42P01 relation \"nope\" does not exist"
    );
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM pg_partition_ancestors(99999)"),
        "0\nSELECT 1"
    );
    // The primary key is unique per partition, and the key decides the partition.
    assert_eq!(
        run(&mut s, "INSERT INTO m VALUES (10, 'again')"),
        "ERROR 23505 duplicate key value violates unique constraint \"m2_pkey\" DETAIL: Key (k)=(10) already exists."
    );
}

#[test]
fn a_row_without_a_partition_is_refused_with_the_key_in_the_detail() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE l (region text, n int) PARTITION BY LIST (region);
             CREATE TABLE l_eu PARTITION OF l FOR VALUES IN ('de', 'fr');
             CREATE TABLE l_null PARTITION OF l FOR VALUES IN (NULL);"
        ),
        "CREATE TABLE\nCREATE TABLE\nCREATE TABLE"
    );
    assert_eq!(
        run(&mut s, "INSERT INTO l VALUES ('us', 1)"),
        "ERROR 23514 no partition of relation \"l\" found for row DETAIL: Partition key of the failing row contains (region) = (us)."
    );
    assert_eq!(
        run(&mut s, "INSERT INTO l VALUES (NULL, 2), ('fr', 3)"),
        "INSERT 0 2"
    );
    assert_eq!(run(&mut s, "SELECT n FROM l_null"), "2\nSELECT 1");
    // Writing a partition directly checks its bound.
    assert_eq!(
        run(&mut s, "INSERT INTO l_eu VALUES ('us', 4)"),
        "ERROR 23514 new row for relation \"l_eu\" violates partition constraint DETAIL: Failing row contains (us, 4)."
    );
    assert_eq!(
        run(&mut s, "UPDATE l_eu SET region = 'us'"),
        "ERROR 23514 new row for relation \"l_eu\" violates partition constraint DETAIL: Failing row contains (us, 3)."
    );
    // The session stays usable.
    assert_eq!(run(&mut s, "SELECT count(*) FROM l"), "2\nSELECT 1");
}

#[test]
fn updating_the_key_moves_the_row_to_its_new_partition() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    range_table(&mut s);
    run(&mut s, "INSERT INTO m VALUES (1, 'a'), (2, 'b'), (11, 'c')");
    assert_eq!(
        run(&mut s, "UPDATE m SET k = k + 10 WHERE k < 10 RETURNING k, v"),
        "ERROR 23505 duplicate key value violates unique constraint \"m2_pkey\" DETAIL: Key (k)=(11) already exists."
    );
    assert_eq!(
        run(
            &mut s,
            "UPDATE m SET k = k + 20 WHERE k < 10 RETURNING k, v"
        ),
        "21|a\n22|b\nUPDATE 2"
    );
    assert_eq!(run(&mut s, "SELECT count(*) FROM m1"), "0\nSELECT 1");
    assert_eq!(
        run(&mut s, "SELECT k FROM md ORDER BY k"),
        "21\n22\nSELECT 2"
    );
    assert_eq!(run(&mut s, "UPDATE m SET v = 'z' WHERE k = 11"), "UPDATE 1");
    assert_eq!(run(&mut s, "DELETE FROM m WHERE k > 20"), "DELETE 2");
    assert_eq!(run(&mut s, "SELECT k, v FROM m"), "11|z\nSELECT 1");
}

#[test]
fn explain_shows_only_the_partitions_that_can_match() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    range_table(&mut s);
    let plan = |s: &mut Session, q: &str| run(s, &format!("EXPLAIN {q}"));
    assert_eq!(
        plan(&mut s, "SELECT * FROM m WHERE k = 15"),
        "Append\n  ->  Index Scan using m2_pkey on m2\n        Index Cond: point (k)\n        Filter: WHERE\nEXPLAIN"
    );
    let p = plan(&mut s, "SELECT * FROM m WHERE k >= 10");
    assert!(!p.contains("on m1"), "{p}");
    assert!(p.contains("on m2") && p.contains("on md"), "{p}");
    let p = plan(&mut s, "SELECT * FROM m WHERE k IN (1, 2)");
    assert!(
        p.contains("on m1") && !p.contains("on m2") && !p.contains("on md"),
        "{p}"
    );
    let p = plan(&mut s, "SELECT * FROM m");
    assert!(
        p.contains("on m1") && p.contains("on m2") && p.contains("on md"),
        "{p}"
    );
    let p = plan(&mut s, "DELETE FROM m WHERE k = 3");
    assert!(
        p.starts_with("Delete on m\n") && p.contains("on m1") && !p.contains("on m2"),
        "{p}"
    );
}

#[test]
fn prepared_statements_prune_with_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    range_table(&mut s);
    run(
        &mut s,
        "INSERT INTO m VALUES (1, 'a'), (15, 'b'), (30, 'c')",
    );
    let p = s
        .prepare("SELECT v FROM m WHERE k = $1", &[None])
        .expect("prepare");
    for (k, want) in [(1, "a"), (15, "b"), (30, "c")] {
        let out = s
            .execute_prepared(&p, vec![Value::Int4(k)])
            .expect("execute");
        match out {
            Outcome::Rows { rows, .. } => {
                assert_eq!(rows, vec![vec![Value::Text(want.into())]]);
            }
            other => panic!("{other:?}"),
        }
    }
    let u = s
        .prepare("UPDATE m SET v = v || '!' WHERE k = $1", &[None])
        .expect("prepare");
    s.execute_prepared(&u, vec![Value::Int4(15)])
        .expect("update");
    assert_eq!(run(&mut s, "SELECT v FROM m2"), "b!\nSELECT 1");
}

#[test]
fn hash_partitions_split_the_rows_and_take_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE h (id bigint PRIMARY KEY, v int) PARTITION BY HASH (id);
             CREATE TABLE h0 PARTITION OF h FOR VALUES WITH (MODULUS 2, REMAINDER 0);
             CREATE TABLE h1 PARTITION OF h FOR VALUES WITH (MODULUS 4, REMAINDER 1);
             CREATE TABLE h3 PARTITION OF h FOR VALUES WITH (MODULUS 4, REMAINDER 3);"
        ),
        "CREATE TABLE\nCREATE TABLE\nCREATE TABLE\nCREATE TABLE"
    );
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO h SELECT g, g FROM generate_series(1, 200) g"
        ),
        "INSERT 0 200"
    );
    let count = |s: &mut Session, t: &str| -> i64 {
        run(s, &format!("SELECT count(*) FROM {t}"))
            .lines()
            .next()
            .and_then(|l| l.parse().ok())
            .expect("count")
    };
    let (c0, c1, c3) = (
        count(&mut s, "h0"),
        count(&mut s, "h1"),
        count(&mut s, "h3"),
    );
    assert_eq!(c0 + c1 + c3, 200);
    assert!(c0 > 0 && c1 > 0 && c3 > 0, "{c0} {c1} {c3}");
    // An equality prunes to exactly one partition, which holds the row.
    let p = run(&mut s, "EXPLAIN SELECT * FROM h WHERE id = 77");
    assert_eq!(p.matches("Index Scan").count(), 1, "{p}");
    assert_eq!(run(&mut s, "SELECT v FROM h WHERE id = 77"), "77\nSELECT 1");
    assert_eq!(
        run(&mut s, "CREATE TABLE hx PARTITION OF h FOR VALUES WITH (MODULUS 3, REMAINDER 0)"),
        "ERROR 42P17 every hash partition modulus must be a factor of the next larger modulus DETAIL: The new modulus 3 is not divisible by 2, the modulus of existing partition \"h0\"."
    );
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE hx PARTITION OF h FOR VALUES WITH (MODULUS 4, REMAINDER 2)"
        ),
        "ERROR 42P17 partition \"hx\" would overlap partition \"h0\""
    );
    assert_eq!(
        run(&mut s, "CREATE TABLE hx PARTITION OF h DEFAULT"),
        "ERROR 42P16 a hash-partitioned table may not have a default partition"
    );
}

#[test]
fn bad_partition_ddl_gets_postgres_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    range_table(&mut s);
    let cases = [
        (
            "CREATE TABLE x PARTITION OF m FOR VALUES FROM (15) TO (25)",
            "ERROR 42P17 partition \"x\" would overlap partition \"m2\"",
        ),
        (
            "CREATE TABLE x PARTITION OF m FOR VALUES FROM (30) TO (25)",
            "ERROR 42P17 empty range bound specified for partition \"x\" DETAIL: Specified lower bound (30) is greater than or equal to upper bound (25).",
        ),
        (
            "CREATE TABLE x PARTITION OF m DEFAULT",
            "ERROR 42P17 partition \"x\" conflicts with existing default partition \"md\"",
        ),
        (
            "CREATE TABLE x PARTITION OF m FOR VALUES IN (1)",
            "ERROR 42P16 invalid bound specification for a range partition",
        ),
        (
            "CREATE TABLE x (a int, b int, PRIMARY KEY (a)) PARTITION BY RANGE (b)",
            "ERROR 0A000 unique constraint on partitioned table must include all partitioning columns DETAIL: PRIMARY KEY constraint on table \"x\" lacks column \"b\" which is part of the partition key.",
        ),
        (
            "CREATE TABLE x (a int) PARTITION BY RANGE (nope)",
            "ERROR 42703 column \"nope\" named in partition key does not exist",
        ),
        (
            "CREATE TABLE x (a int, b int) PARTITION BY LIST (a, b)",
            "ERROR 42P17 cannot use \"list\" partition strategy with more than one column",
        ),
        (
            "CREATE TABLE x PARTITION OF m1 FOR VALUES FROM (1) TO (2)",
            "ERROR 42P17 \"m1\" is not partitioned",
        ),
        (
            "CREATE TABLE x (a int) PARTITION BY foo (a)",
            "ERROR 22023 unrecognized partitioning strategy \"foo\"",
        ),
        (
            "CREATE TABLE x PARTITION OF nope FOR VALUES FROM (1) TO (2)",
            "ERROR 42P01 relation \"nope\" does not exist",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(run(&mut s, sql), want, "{sql}");
    }
    // A row in the default partition blocks a new partition that would take it.
    run(&mut s, "INSERT INTO m VALUES (25, 'x')");
    assert_eq!(
        run(&mut s, "CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (20) TO (30)"),
        "ERROR 23514 updated partition constraint for default partition \"md\" would be violated by some row"
    );
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (30) TO (40)"
        ),
        "CREATE TABLE"
    );
    assert_eq!(run(&mut s, "INSERT INTO m VALUES (35, 'y')"), "INSERT 0 1");
    assert_eq!(run(&mut s, "SELECT k FROM m3"), "35\nSELECT 1");
}

#[test]
fn drop_of_the_parent_drops_its_partitions_and_a_dropped_partition_leaves_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    range_table(&mut s);
    run(
        &mut s,
        "INSERT INTO m VALUES (1, 'a'), (15, 'b'), (30, 'c')",
    );
    assert_eq!(run(&mut s, "DROP TABLE m2"), "DROP TABLE");
    assert_eq!(run(&mut s, "SELECT k FROM m ORDER BY k"), "1\n30\nSELECT 2");
    // Rows of the dropped range now go to the default partition.
    assert_eq!(run(&mut s, "INSERT INTO m VALUES (15, 'b')"), "INSERT 0 1");
    assert_eq!(
        run(&mut s, "SELECT k FROM md ORDER BY k"),
        "15\n30\nSELECT 2"
    );
    assert_eq!(run(&mut s, "TRUNCATE m"), "TRUNCATE TABLE");
    assert_eq!(run(&mut s, "SELECT count(*) FROM m"), "0\nSELECT 1");
    assert_eq!(run(&mut s, "DROP TABLE m"), "DROP TABLE");
    assert_eq!(
        run(&mut s, "SELECT * FROM m1"),
        "ERROR 42P01 relation \"m1\" does not exist"
    );
    // Names are free again.
    range_table(&mut s);
}

#[test]
fn partitions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path());
        range_table(&mut s);
        run(
            &mut s,
            "INSERT INTO m VALUES (1, 'a'), (15, 'b'), (30, 'c')",
        );
    }
    let mut s = open(dir.path());
    assert_eq!(run(&mut s, "SELECT k FROM m2"), "15\nSELECT 1");
    assert_eq!(run(&mut s, "INSERT INTO m VALUES (16, 'd')"), "INSERT 0 1");
    assert_eq!(
        run(&mut s, "SELECT k FROM m2 ORDER BY k"),
        "15\n16\nSELECT 2"
    );
    let p = run(&mut s, "EXPLAIN SELECT * FROM m WHERE k = 5");
    assert!(p.contains("on m1") && !p.contains("on m2"), "{p}");
}

#[test]
fn escalation_in_a_hot_partition_takes_that_partition_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    db.lock_manager().configure(gnomon_mvcc::LockSettings {
        partition_escalation_rows: 3,
        table_escalation_rows: 0,
        contention_threshold: 0,
        ..Default::default()
    });
    let engine: Arc<SqlEngine> = SqlEngine::open(db).expect("open sql");
    let mut a = Session::new(engine.clone(), "gnomon", "gnomon").expect("session");
    let mut b = Session::new(engine, "gnomon", "gnomon").expect("session");
    range_table(&mut a);
    run(
        &mut a,
        "INSERT INTO m SELECT g, 'v' FROM generate_series(1, 8) g;
         INSERT INTO m SELECT g, 'v' FROM generate_series(10, 15) g",
    );
    let oid = |s: &mut Session, name: &str| {
        run(
            s,
            &format!("SELECT oid FROM pg_class WHERE relname = '{name}'"),
        )
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
    };
    let (m, m1) = (oid(&mut a, "m"), oid(&mut a, "m1"));
    assert_eq!(run(&mut a, "BEGIN"), "BEGIN");
    assert_eq!(run(&mut a, "UPDATE m SET v = 'a' WHERE k < 10"), "UPDATE 8");
    assert_eq!(
        run(
            &mut a,
            "SELECT relation, page, mode, escalated FROM pg_locks \
             WHERE locktype = 'partition' AND mode = 'ExclusiveLock'"
        ),
        format!("{m}|{m1}|ExclusiveLock|t\nSELECT 1")
    );
    // The other partitions stay open to writers; rows of m1 are covered by the lock.
    assert_eq!(run(&mut b, "UPDATE m SET v = 'b' WHERE k = 12"), "UPDATE 1");
    assert_eq!(
        run(&mut b, "SELECT v FROM m1 WHERE k = 5 FOR UPDATE NOWAIT"),
        "ERROR 55P03 could not obtain lock on row in relation \"m1\""
    );
    assert_eq!(run(&mut a, "COMMIT"), "COMMIT");
    assert_eq!(
        run(&mut b, "SELECT v FROM m1 WHERE k = 5 FOR UPDATE NOWAIT"),
        "a\nSELECT 1"
    );
}

/// ATTACH / DETACH PARTITION with PostgreSQL 15's errors (each message and SQLSTATE below
/// was taken from a live PostgreSQL 15 running the same statements).
#[test]
fn attach_and_detach_partition_as_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = open(dir.path());
    let out = run(
        &mut s,
        "CREATE TABLE p (k int, v text) PARTITION BY RANGE (k);
         CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
         CREATE TABLE pd PARTITION OF p DEFAULT;
         INSERT INTO p VALUES (1,'a'),(15,'b'),(25,'x');
         CREATE TABLE t (k int, v text);
         INSERT INTO t VALUES (12,'c'),(13,'d');",
    );
    assert!(!out.contains("ERROR"), "{out}");
    let err = |s: &mut Session, sql: &str| run(s, sql);
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (5) TO (20)"
        ),
        "ERROR 42P17 partition \"t\" would overlap partition \"p1\""
    );
    // 15 sits in the DEFAULT partition and would belong to t.
    assert_eq!(
        err(&mut s, "ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (10) TO (20)"),
        "ERROR 23514 updated partition constraint for default partition \"pd\" would be violated by some row"
    );
    run(&mut s, "DELETE FROM pd WHERE k = 15");
    // t's own row 13 is outside [10, 13).
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (10) TO (13)"
        ),
        "ERROR 23514 partition constraint of relation \"t\" is violated by some row"
    );
    assert_eq!(
        run(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (10) TO (14)"
        ),
        "ALTER TABLE"
    );
    // Routing and pruning see t at once; writing t directly checks its new bound.
    assert_eq!(run(&mut s, "INSERT INTO p VALUES (11, 'e')"), "INSERT 0 1");
    assert_eq!(
        run(&mut s, "SELECT k FROM t ORDER BY k"),
        "11\n12\n13\nSELECT 3"
    );
    assert_eq!(run(&mut s, "SELECT k FROM p WHERE k = 12"), "12\nSELECT 1");
    assert!(run(&mut s, "INSERT INTO t VALUES (30, 'z')")
        .starts_with("ERROR 23514 new row for relation \"t\" violates partition constraint"));
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (50) TO (60)"
        ),
        "ERROR 42809 \"t\" is already a partition"
    );
    // Column checks, in PostgreSQL's order.
    run(
        &mut s,
        "CREATE TABLE t2 (k int, v text, extra int); CREATE TABLE t3 (k bigint, v text);
         CREATE TABLE t4 (k int); CREATE TABLE t5 (v text, k int); CREATE TABLE t6 (k int, v text)",
    );
    assert_eq!(
        err(&mut s, "ALTER TABLE p ATTACH PARTITION t2 FOR VALUES FROM (30) TO (40)"),
        "ERROR 42804 table \"t2\" contains column \"extra\" not found in parent \"p\" DETAIL: The new partition may contain only the columns present in parent."
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t3 FOR VALUES FROM (30) TO (40)"
        ),
        "ERROR 42804 child table \"t3\" has different type for column \"k\""
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t4 FOR VALUES FROM (30) TO (40)"
        ),
        "ERROR 42804 child table is missing column \"v\""
    );
    assert!(err(
        &mut s,
        "ALTER TABLE p ATTACH PARTITION t5 FOR VALUES FROM (30) TO (40)"
    )
    .starts_with("ERROR 0A000"));
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE t ATTACH PARTITION t6 FOR VALUES FROM (50) TO (60)"
        ),
        "ERROR 42P17 table \"t\" is not partitioned"
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION nope FOR VALUES FROM (50) TO (60)"
        ),
        "ERROR 42P01 relation \"nope\" does not exist"
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION p FOR VALUES FROM (50) TO (60)"
        ),
        "ERROR 42P07 circular inheritance not allowed DETAIL: \"p\" is already a child of \"p\"."
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t6 FOR VALUES IN (1)"
        ),
        "ERROR 42P16 invalid bound specification for a range partition"
    );
    assert_eq!(
        err(&mut s, "ALTER TABLE p ATTACH PARTITION t6 DEFAULT"),
        "ERROR 42P17 partition \"t6\" conflicts with existing default partition \"pd\""
    );
    assert_eq!(
        err(&mut s, "ALTER TABLE p DETACH PARTITION t6"),
        "ERROR 42P01 relation \"t6\" is not a partition of relation \"p\""
    );
    assert_eq!(
        err(&mut s, "ALTER TABLE p DETACH PARTITION p1 FINALIZE"),
        "ERROR 55000 cannot complete detaching partition \"p1\" DETAIL: There's no pending concurrent detach."
    );
    assert_eq!(
        err(&mut s, "BEGIN; ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY"),
        "BEGIN\nERROR 25001 ALTER TABLE ... DETACH CONCURRENTLY cannot run inside a transaction block"
    );
    run(&mut s, "ROLLBACK");

    // DETACH: t is a plain table with its rows; the parent no longer sees them.
    assert_eq!(
        run(&mut s, "ALTER TABLE p DETACH PARTITION t"),
        "ALTER TABLE"
    );
    assert_eq!(run(&mut s, "SELECT k FROM p ORDER BY k"), "1\n25\nSELECT 2");
    assert_eq!(run(&mut s, "INSERT INTO t VALUES (30, 'z')"), "INSERT 0 1");
    assert_eq!(run(&mut s, "SELECT count(*) FROM t"), "4\nSELECT 1");
    assert_eq!(
        err(&mut s, "ALTER TABLE p DETACH PARTITION t"),
        "ERROR 42P01 relation \"t\" is not a partition of relation \"p\""
    );
    // A rolled-back ATTACH leaves nothing behind.
    assert_eq!(
        run(
            &mut s,
            "BEGIN; DELETE FROM t WHERE k = 30; ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (10) TO (20); ROLLBACK"
        ),
        "BEGIN\nDELETE 1\nALTER TABLE\nROLLBACK"
    );
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM p WHERE k = 12"),
        "0\nSELECT 1"
    );

    // The DEFAULT partition's rows are checked against the other bounds.
    run(
        &mut s,
        "ALTER TABLE p DETACH PARTITION pd; DELETE FROM t WHERE k = 30",
    );
    assert_eq!(
        err(&mut s, "ALTER TABLE p ATTACH PARTITION pd DEFAULT"),
        "ALTER TABLE"
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE p ATTACH PARTITION t FOR VALUES FROM (10) TO (20)"
        ),
        "ALTER TABLE"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT 'p1', k FROM p1 UNION ALL SELECT 't', k FROM t UNION ALL SELECT 'pd', k FROM pd ORDER BY 2"
        ),
        "p1|1\nt|11\nt|12\nt|13\npd|25\nSELECT 5"
    );
    assert_eq!(
        run(&mut s, "SELECT k FROM p ORDER BY k"),
        "1\n11\n12\n13\n25\nSELECT 5"
    );

    // NOT NULL and CHECK constraints of the parent; its primary key is built on the table.
    let out = run(
        &mut s,
        "CREATE TABLE pk (k int PRIMARY KEY, v text CHECK (v <> '')) PARTITION BY LIST (k);
         CREATE TABLE n1 (k int, v text);
         CREATE TABLE n2 (k int NOT NULL, v text);
         CREATE TABLE n3 (k int NOT NULL, v text CONSTRAINT pk_v_check CHECK (v <> ''));
         INSERT INTO n3 VALUES (1, 'a'), (1, 'b');",
    );
    assert!(!out.contains("ERROR"), "{out}");
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE pk ATTACH PARTITION n1 FOR VALUES IN (1)"
        ),
        "ERROR 42804 column \"k\" in child table must be marked NOT NULL"
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE pk ATTACH PARTITION n2 FOR VALUES IN (1)"
        ),
        "ERROR 42804 child table is missing constraint \"pk_v_check\""
    );
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE pk ATTACH PARTITION n3 FOR VALUES IN (1)"
        ),
        "ERROR 23505 could not create unique index \"n3_pkey\" DETAIL: Key (k)=(1) is duplicated."
    );
    run(&mut s, "DELETE FROM n3 WHERE v = 'b'");
    assert_eq!(
        err(
            &mut s,
            "ALTER TABLE pk ATTACH PARTITION n3 FOR VALUES IN (1)"
        ),
        "ALTER TABLE"
    );
    assert!(run(&mut s, "INSERT INTO pk VALUES (1, 'c')")
        .starts_with("ERROR 23505 duplicate key value violates unique constraint \"n3_pkey\""));
    assert_eq!(run(&mut s, "SELECT k, v FROM pk"), "1|a\nSELECT 1");
}

/// An ATTACH / DETACH is durable: the shape survives a restart.
#[test]
fn attached_and_detached_partitions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut s = open(dir.path());
        let out = run(
            &mut s,
            "CREATE TABLE l (k int, v text) PARTITION BY LIST (k);
             CREATE TABLE l1 PARTITION OF l FOR VALUES IN (1);
             CREATE TABLE l2 (k int, v text);
             INSERT INTO l2 VALUES (2, 'b');
             INSERT INTO l VALUES (1, 'a');
             ALTER TABLE l ATTACH PARTITION l2 FOR VALUES IN (2, 3);
             ALTER TABLE l DETACH PARTITION l1;",
        );
        assert!(!out.contains("ERROR"), "{out}");
    }
    let mut s = open(dir.path());
    assert_eq!(run(&mut s, "SELECT k FROM l ORDER BY k"), "2\nSELECT 1");
    assert_eq!(run(&mut s, "INSERT INTO l VALUES (3, 'c')"), "INSERT 0 1");
    assert_eq!(run(&mut s, "SELECT k FROM l2 ORDER BY k"), "2\n3\nSELECT 2");
    assert_eq!(run(&mut s, "SELECT k FROM l1"), "1\nSELECT 1");
    assert!(run(&mut s, "INSERT INTO l VALUES (1, 'x')").starts_with("ERROR 23514"));
}
