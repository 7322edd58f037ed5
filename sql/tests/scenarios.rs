//! Scenario tests of the SQL layer against a real gnomon_mvcc::Db in a temporary directory.

use std::sync::atomic::Ordering;

use gnomon_sql::{DataType, Outcome, TxnStatus, Value};

mod common;
use common::{code, open, run, session, setup};

#[test]
fn select_without_from_has_postgres_types_and_names() {
    let (_d, _e, mut s) = setup();
    let r = s.execute_simple("SELECT 1, 3000000000, 1.50, 'x', 7/2, 7.0/2, true AS ok");
    let Some(Ok(Outcome::Rows { columns, rows, tag })) = r.into_iter().next() else {
        panic!("no rows")
    };
    assert_eq!(tag, "SELECT 1");
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["?column?", "?column?", "?column?", "?column?", "?column?", "?column?", "ok"]
    );
    let types: Vec<u32> = columns.iter().map(|c| c.ty.oid()).collect();
    assert_eq!(types, [23, 20, 1700, 25, 23, 1700, 16]);
    let texts: Vec<String> = rows[0]
        .iter()
        .map(|v| v.to_text().unwrap_or_default())
        .collect();
    assert_eq!(
        texts,
        [
            "1",
            "3000000000",
            "1.50",
            "x",
            "3",
            "3.5000000000000000",
            "t"
        ]
    );
}

#[test]
fn arithmetic_errors_carry_sqlstates() {
    let (_d, _e, mut s) = setup();
    assert_eq!(code(&mut s, "SELECT 2147483647 + 1"), "22003");
    assert_eq!(code(&mut s, "SELECT 1/0"), "22012");
    assert_eq!(code(&mut s, "SELECT 1.0/0"), "22012");
    assert_eq!(code(&mut s, "SELECT 'abc'::int"), "22P02");
    assert_eq!(code(&mut s, "SELEC 1"), "42601");
    assert_eq!(code(&mut s, "SELECT * FROM nope"), "42P01");
    assert_eq!(code(&mut s, "SELECT 1 + 'a'::text"), "42883");
    assert_eq!(code(&mut s, "SELECT nosuchfn(1)"), "42883");
    assert_eq!(
        run(&mut s, "SELECT 9223372036854775807::int8 + 0"),
        "9223372036854775807\nSELECT 1"
    );
}

#[test]
fn null_logic_is_three_valued() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(&mut s, "SELECT NULL AND false, NULL OR true, NULL AND true, NOT NULL::bool, NULL = NULL, NULL IS NULL, 1 IN (2, NULL), 1 IN (1, NULL)"),
        "f|t|NULL|NULL|NULL|t|NULL|t\nSELECT 1"
    );
    assert_eq!(run(&mut s, "SELECT coalesce(NULL, 2, 3), CASE WHEN NULL THEN 1 ELSE 2 END, 5 BETWEEN 1 AND 10, 'abc' LIKE 'a%'"), "2|2|t|t\nSELECT 1");
}

#[test]
fn casts_and_type_output_match_postgres() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(&mut s, "SELECT '2024-01-02'::date, '2024-01-02 03:04:05.123456'::timestamp, '2024-01-02 03:04:05+00'::timestamptz, 0.1::float8, '\\x0aff'::bytea, 1.005::numeric(5,2), true::text"),
        "2024-01-02|2024-01-02 03:04:05.123456|2024-01-02 03:04:05+00|0.1|\\x0aff|1.01|true\nSELECT 1"
    );
    assert!(run(&mut s, "SELECT version()").starts_with("PostgreSQL 15."));
    assert_eq!(
        run(
            &mut s,
            "SELECT current_database(), current_user, current_schema()"
        ),
        "gnomon|gnomon|public\nSELECT 1"
    );
}

#[test]
fn ddl_dml_and_constraint_errors() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(&mut s, "CREATE TABLE t (id int PRIMARY KEY, name varchar(5) NOT NULL DEFAULT 'x', score numeric(6,2)) WITH (fillfactor=90)"),
        "CREATE TABLE"
    );
    assert_eq!(code(&mut s, "CREATE TABLE t (a int)"), "42P07");
    assert_eq!(
        run(&mut s, "CREATE TABLE IF NOT EXISTS t (a int)"),
        "CREATE TABLE"
    );
    assert_eq!(
        run(&mut s, "INSERT INTO t VALUES (1, 'a', 1.5), (2, 'b', NULL)"),
        "INSERT 0 2"
    );
    assert_eq!(
        run(&mut s, "INSERT INTO t (id) VALUES (3) RETURNING id, name"),
        "3|x\nINSERT 0 1"
    );
    assert_eq!(code(&mut s, "INSERT INTO t VALUES (1, 'dup', 0)"), "23505");
    assert_eq!(code(&mut s, "INSERT INTO t VALUES (4, NULL, 0)"), "23502");
    assert_eq!(
        code(&mut s, "INSERT INTO t VALUES (5, 'toolong', 0)"),
        "22001"
    );
    assert_eq!(code(&mut s, "INSERT INTO t (nope) VALUES (1)"), "42703");
    assert_eq!(code(&mut s, "INSERT INTO t VALUES (true, 'a', 0)"), "42804");
    assert_eq!(
        run(
            &mut s,
            "UPDATE t SET score = score + 1 WHERE id <= 2 RETURNING id, score"
        ),
        "1|2.50\n2|NULL\nUPDATE 2"
    );
    assert_eq!(run(&mut s, "DELETE FROM t WHERE id = 3"), "DELETE 1");
    assert_eq!(
        run(&mut s, "SELECT id, name, score FROM t ORDER BY id"),
        "1|a|2.50\n2|b|NULL\nSELECT 2"
    );
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE u (a int); INSERT INTO u SELECT x FROM generate_series(1, 5) AS x"
        ),
        "CREATE TABLE\nINSERT 0 5"
    );
    assert_eq!(
        run(&mut s, "SELECT count(*), sum(a) FROM u"),
        "5|15\nSELECT 1"
    );
    assert_eq!(run(&mut s, "TRUNCATE t, u"), "TRUNCATE TABLE");
    assert_eq!(run(&mut s, "SELECT count(*) FROM u"), "0\nSELECT 1");
    assert_eq!(run(&mut s, "DROP TABLE IF EXISTS t, missing"), "DROP TABLE");
    let notices = s.take_notices();
    assert!(
        notices
            .iter()
            .any(|n| n.message == "table \"missing\" does not exist, skipping"),
        "{notices:?}"
    );
    assert_eq!(code(&mut s, "DROP TABLE t"), "42P01");
}

#[test]
fn aggregates_group_by_having_order_limit() {
    let (_d, _e, mut s) = setup();
    run(
        &mut s,
        "CREATE TABLE sales (id int PRIMARY KEY, region text, amount int)",
    );
    run(
        &mut s,
        "INSERT INTO sales VALUES (1,'n',10),(2,'s',20),(3,'n',30),(4,'e',NULL),(5,'s',5)",
    );
    assert_eq!(
        run(&mut s, "SELECT region, count(*), count(amount), sum(amount), avg(amount), min(amount), max(amount) FROM sales GROUP BY region HAVING count(*) > 0 ORDER BY region"),
        "e|1|0|NULL|NULL|NULL|NULL\nn|2|2|40|20.0000000000000000|10|30\ns|2|2|25|12.5000000000000000|5|20\nSELECT 3"
    );
    assert_eq!(
        run(&mut s, "SELECT amount FROM sales ORDER BY amount"),
        "5\n10\n20\n30\nNULL\nSELECT 5"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT amount FROM sales ORDER BY amount DESC LIMIT 2"
        ),
        "NULL\n30\nSELECT 2"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT amount FROM sales ORDER BY 1 NULLS FIRST LIMIT 2 OFFSET 1"
        ),
        "5\n10\nSELECT 2"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT DISTINCT region FROM sales ORDER BY region DESC"
        ),
        "s\nn\ne\nSELECT 3"
    );
    assert_eq!(
        code(&mut s, "SELECT region, amount FROM sales GROUP BY region"),
        "42803"
    );
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM sales WHERE false"),
        "0\nSELECT 1"
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT sum(x), count(*) AS n FROM generate_series(1, 10, 3) AS t(x)"
        ),
        "22|4\nSELECT 1"
    );
}

#[test]
fn full_primary_key_equality_is_a_point_get() {
    let (_d, _e, mut s) = setup();
    run(
        &mut s,
        "CREATE TABLE kv (a int, b text, v int, PRIMARY KEY (a, b))",
    );
    run(
        &mut s,
        "INSERT INTO kv SELECT x % 10, 'k' || x, x FROM generate_series(1, 100) AS x",
    );
    let before = s.stats();
    assert_eq!(
        run(&mut s, "SELECT v FROM kv WHERE a = 3 AND b = 'k13'"),
        "13\nSELECT 1"
    );
    let after = s.stats();
    assert_eq!(after.point_gets - before.point_gets, 1);
    assert_eq!(after.rows_read - before.rows_read, 1);
    assert_eq!(after.full_scans, before.full_scans);
    assert_eq!(
        run(&mut s, "EXPLAIN SELECT v FROM kv WHERE b = 'k13' AND 3 = a"),
        "Index Scan using kv_pkey on kv\n  Index Cond: point (a, b)\n  Filter: WHERE\nEXPLAIN"
    );
    assert_eq!(
        run(&mut s, "EXPLAIN SELECT v FROM kv WHERE a = 3"),
        "Index Scan using kv_pkey on kv\n  Index Cond: range (a, b), 1 leading column(s) fixed\n  Filter: WHERE\nEXPLAIN"
    );
    assert_eq!(
        run(&mut s, "EXPLAIN SELECT v FROM kv WHERE v = 3"),
        "Seq Scan on kv\n  Filter: WHERE\nEXPLAIN"
    );
    let before = s.stats();
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM kv WHERE a = 3"),
        "10\nSELECT 1"
    );
    assert_eq!(s.stats().rows_read - before.rows_read, 10);
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM kv WHERE a >= 2 AND a < 4"),
        "20\nSELECT 1"
    );
    // Prepared point query with an inferred parameter type.
    let p = s
        .prepare("SELECT v FROM kv WHERE a = $1 AND b = $2", &[None, None])
        .expect("prepare");
    assert_eq!(p.param_types(), &[DataType::Int4, DataType::Text]);
    let before = s.stats();
    let out = s
        .execute_prepared(&p, vec![Value::Int4(7), Value::Text("k97".into())])
        .expect("execute");
    s.sync();
    assert_eq!(s.stats().point_gets - before.point_gets, 1);
    let Outcome::Rows { rows, .. } = out else {
        panic!("rows")
    };
    assert_eq!(rows, vec![vec![Value::Int4(97)]]);
}

#[test]
fn point_gets_on_integer_keys_match_exactly_what_equality_would() {
    let (_d, _e, mut s) = setup();
    run(&mut s, "CREATE TABLE t (id int PRIMARY KEY, v int)");
    run(&mut s, "CREATE TABLE c (k char(4) PRIMARY KEY, v int)");
    run(&mut s, "INSERT INTO t VALUES (1, 10), (2, 20), (-3, 30)");
    run(&mut s, "INSERT INTO c VALUES ('ab', 1)");
    let cases = [
        ("SELECT v FROM t WHERE id = 2", "20\nSELECT 1"),
        ("SELECT v FROM t WHERE -3 = id", "30\nSELECT 1"),
        ("SELECT v FROM t WHERE id = 2::int8", "20\nSELECT 1"),
        ("SELECT v FROM t WHERE id = 2 AND id = 1", "SELECT 0"),
        ("SELECT v FROM t WHERE id = 2 AND v = 99", "SELECT 0"),
        ("SELECT v FROM t WHERE id = 3000000000", "SELECT 0"),
        ("SELECT v FROM t WHERE id = NULL", "SELECT 0"),
        ("SELECT v FROM t WHERE id = 2.0", "20\nSELECT 1"),
        ("SELECT v FROM t WHERE id = 1.5", "SELECT 0"),
        ("SELECT id, v FROM t WHERE id = 1", "1|10\nSELECT 1"),
        ("SELECT v FROM c WHERE k = 'ab  '", "1\nSELECT 1"),
        ("SELECT v FROM c WHERE k = 'ab'", "1\nSELECT 1"),
    ];
    for (sql, expected) in cases {
        assert_eq!(run(&mut s, sql), expected, "{sql}");
    }
    let p = s
        .prepare("SELECT v FROM t WHERE id = $1", &[None])
        .expect("prepare");
    for (param, expected) in [(Value::Int4(-3), Some(30)), (Value::Null, None)] {
        let Ok(Outcome::Rows { rows, .. }) = s.execute_prepared(&p, vec![param]) else {
            panic!("rows")
        };
        s.sync();
        assert_eq!(
            rows,
            expected
                .map(|v| vec![Value::Int4(v)])
                .into_iter()
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn transactions_savepoints_and_failed_blocks() {
    let (_d, e, mut s) = setup();
    run(&mut s, "CREATE TABLE t (id int PRIMARY KEY)");
    assert_eq!(run(&mut s, "BEGIN; INSERT INTO t VALUES (1); SAVEPOINT a; INSERT INTO t VALUES (2); ROLLBACK TO SAVEPOINT a; RELEASE a; COMMIT"), "BEGIN\nINSERT 0 1\nSAVEPOINT\nINSERT 0 1\nROLLBACK\nRELEASE\nCOMMIT");
    assert_eq!(run(&mut s, "SELECT id FROM t"), "1\nSELECT 1");
    // A failed block rejects everything until ROLLBACK; COMMIT answers ROLLBACK.
    assert_eq!(run(&mut s, "BEGIN"), "BEGIN");
    assert_eq!(code(&mut s, "INSERT INTO t VALUES (1)"), "23505");
    assert_eq!(s.transaction_status(), TxnStatus::Failed);
    assert_eq!(code(&mut s, "SELECT 1"), "25P02");
    assert_eq!(run(&mut s, "COMMIT"), "ROLLBACK");
    assert_eq!(s.transaction_status(), TxnStatus::Idle);
    // ROLLBACK TO SAVEPOINT recovers a failed block.
    assert_eq!(run(&mut s, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ; SAVEPOINT s; INSERT INTO t VALUES (1)"), "START TRANSACTION\nSAVEPOINT\nERROR 23505 duplicate key value violates unique constraint \"t_pkey\"");
    assert_eq!(
        run(
            &mut s,
            "ROLLBACK TO SAVEPOINT s; INSERT INTO t VALUES (5); END"
        ),
        "ROLLBACK\nINSERT 0 1\nCOMMIT"
    );
    // An error in a multi-statement implicit transaction rolls back the whole message.
    assert_eq!(
        code(&mut s, "INSERT INTO t VALUES (10); SELECT 1/0"),
        "22012"
    );
    assert_eq!(
        run(&mut s, "SELECT count(*) FROM t WHERE id = 10"),
        "0\nSELECT 1"
    );
    // Explicit COMMIT inside the message commits what came before.
    assert_eq!(
        code(
            &mut s,
            "INSERT INTO t VALUES (11); COMMIT; INSERT INTO t VALUES (12); SELECT 1/0"
        ),
        "22012"
    );
    assert_eq!(
        run(&mut s, "SELECT id FROM t WHERE id > 9 ORDER BY id"),
        "11\nSELECT 1"
    );
    // Rolled back DDL leaves no table; another session sees committed data.
    assert_eq!(
        run(&mut s, "BEGIN; CREATE TABLE gone (a int); ROLLBACK"),
        "BEGIN\nCREATE TABLE\nROLLBACK"
    );
    assert_eq!(code(&mut s, "SELECT * FROM gone"), "42P01");
    let mut other = session(&e);
    assert_eq!(run(&mut other, "SELECT count(*) FROM t"), "3\nSELECT 1");
}

#[test]
fn write_conflict_at_repeatable_read_is_40001() {
    let (_d, e, mut a) = setup();
    let mut b = session(&e);
    run(
        &mut a,
        "CREATE TABLE c (id int PRIMARY KEY, n int); INSERT INTO c VALUES (1, 0)",
    );
    run(
        &mut a,
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT n FROM c WHERE id = 1",
    );
    assert_eq!(run(&mut b, "UPDATE c SET n = 1 WHERE id = 1"), "UPDATE 1");
    assert_eq!(code(&mut a, "UPDATE c SET n = 2 WHERE id = 1"), "40001");
    assert_eq!(run(&mut a, "ROLLBACK"), "ROLLBACK");
}

#[test]
fn settings_set_show_reset() {
    let (_d, _e, mut s) = setup();
    assert_eq!(
        run(
            &mut s,
            "SET application_name = 'app'; SHOW application_name"
        ),
        "SET\napp\nSHOW"
    );
    assert_eq!(s.setting("application_name").as_deref(), Some("app"));
    assert_eq!(run(&mut s, "SET statement_timeout = 5000; SHOW statement_timeout; RESET statement_timeout; SHOW statement_timeout"), "SET\n5s\nSHOW\nRESET\n0\nSHOW");
    assert_eq!(
        run(&mut s, "SHOW TimeZone; SHOW transaction_isolation"),
        "UTC\nSHOW\nread committed\nSHOW"
    );
    assert_eq!(run(&mut s, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE; SHOW default_transaction_isolation"), "SET\nserializable\nSHOW");
    assert_eq!(code(&mut s, "SET no_such_setting = 1"), "42704");
    assert_eq!(
        run(&mut s, "SET my.custom = 'x'; DISCARD ALL; DEALLOCATE ALL"),
        "SET\nDISCARD ALL\nDEALLOCATE ALL"
    );
    assert_eq!(run(&mut s, ""), "EMPTY");
}

#[test]
fn cancel_flag_stops_a_long_query_with_57014() {
    let (_d, _e, mut s) = setup();
    s.cancel_handle().store(true, Ordering::Release);
    assert_eq!(
        code(&mut s, "SELECT count(*) FROM generate_series(1, 1000000)"),
        "57014"
    );
    // The flag is consumed: the next statement runs.
    assert_eq!(run(&mut s, "SELECT 1"), "1\nSELECT 1");
}

#[test]
fn text_and_binary_parameter_formats_round_trip() {
    for (text, ty) in [
        ("42", DataType::Int4),
        ("-7", DataType::Int2),
        ("9000000000", DataType::Int8),
        ("1.5", DataType::Float8),
        (
            "12.340",
            DataType::Numeric {
                precision: None,
                scale: None,
            },
        ),
        ("t", DataType::Bool),
        ("2024-02-29", DataType::Date),
        ("2024-01-02 03:04:05.5", DataType::Timestamp),
        ("2024-01-02 03:04:05.5+00", DataType::Timestamptz),
        ("\\x00ff", DataType::Bytea),
        ("hello", DataType::Text),
    ] {
        let v = Value::from_text(text, &ty).expect(text);
        assert_eq!(v.to_text().as_deref(), Some(text));
        let bin = v.to_binary().expect("binary");
        assert_eq!(Value::from_binary(&bin, &ty).expect("from binary"), v);
    }
}

#[test]
fn ddl_and_data_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let e = open(dir.path());
        let mut s = session(&e);
        assert_eq!(
            run(
                &mut s,
                "CREATE TABLE keep (id bigint PRIMARY KEY, note text DEFAULT 'n')"
            ),
            "CREATE TABLE"
        );
        assert_eq!(run(&mut s, "CREATE TABLE norow (x int)"), "CREATE TABLE");
        assert_eq!(
            run(
                &mut s,
                "INSERT INTO keep (id) VALUES (1), (2); INSERT INTO norow VALUES (1), (1)"
            ),
            "INSERT 0 2\nINSERT 0 2"
        );
    }
    let e = open(dir.path());
    let mut s = session(&e);
    assert_eq!(
        run(&mut s, "SELECT id, note FROM keep ORDER BY id DESC"),
        "2|n\n1|n\nSELECT 2"
    );
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO norow VALUES (2); SELECT count(*) FROM norow"
        ),
        "INSERT 0 1\n3\nSELECT 1"
    );
    assert_eq!(run(&mut s, "CREATE TABLE later (a int)"), "CREATE TABLE");
    assert_eq!(run(&mut s, "SELECT count(*) FROM later"), "0\nSELECT 1");
}

#[test]
fn concurrent_read_committed_updates_lose_nothing() {
    // TPC-B's `UPDATE ... SET balance = balance + delta` from many sessions at once: each
    // writer waits for the previous one and re-reads the row it committed.
    let (_dir, engine, mut s) = setup();
    run(
        &mut s,
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL)",
    );
    run(&mut s, "INSERT INTO acct VALUES (1, 0), (2, 0)");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut s = session(&engine);
                for _ in 0..50 {
                    assert_eq!(
                        run(&mut s, "BEGIN; UPDATE acct SET balance = balance + 1 WHERE id = 1; UPDATE acct SET balance = balance - 1 WHERE balance > -1000000 AND id = 2; COMMIT"),
                        "BEGIN\nUPDATE 1\nUPDATE 1\nCOMMIT"
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(
        run(&mut s, "SELECT id, balance FROM acct ORDER BY id"),
        "1|200\n2|-200\nSELECT 2"
    );
}

#[test]
fn concurrent_insert_of_the_same_key_waits_then_fails_with_23505() {
    let (_dir, engine, mut s) = setup();
    run(&mut s, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    let mut first = session(&engine);
    assert_eq!(
        run(&mut first, "BEGIN; INSERT INTO t VALUES (1, 'first')"),
        "BEGIN\nINSERT 0 1"
    );
    let second = std::thread::spawn(move || {
        let mut second = session(&engine);
        code(&mut second, "INSERT INTO t VALUES (1, 'second')")
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(run(&mut first, "COMMIT"), "COMMIT");
    assert_eq!(second.join().expect("second"), "23505");
    assert_eq!(run(&mut s, "SELECT v FROM t"), "first\nSELECT 1");
}

#[test]
fn pgbench_init_statements_vacuum_analyze_and_add_primary_key() {
    let (_dir, _engine, mut s) = setup();
    run(
        &mut s,
        "create table acc(aid int not null, bid int, filler char(10)) with (fillfactor=100)",
    );
    run(&mut s, "insert into acc(aid, bid, filler) select aid, (aid - 1) / 10 + 1, '' from generate_series(1, 50) as aid");
    assert_eq!(run(&mut s, "vacuum analyze acc"), "VACUUM");
    assert_eq!(run(&mut s, "VACUUM"), "VACUUM");
    assert_eq!(run(&mut s, "analyze acc"), "ANALYZE");
    assert_eq!(code(&mut s, "vacuum nosuch"), "42P01");
    assert_eq!(run(&mut s, "BEGIN"), "BEGIN");
    assert_eq!(code(&mut s, "vacuum acc"), "25001");
    run(&mut s, "ROLLBACK");
    assert_eq!(
        run(&mut s, "alter table acc add primary key (aid)"),
        "ALTER TABLE"
    );
    // The key is now a point seek, and enforced.
    assert_eq!(
        run(&mut s, "select bid from acc where aid = 42"),
        "5\nSELECT 1"
    );
    assert_eq!(s.stats().point_gets, 1);
    assert_eq!(code(&mut s, "insert into acc values (42, 1, '')"), "23505");
    assert_eq!(
        run(&mut s, "select count(*), sum(aid) from acc"),
        "50|1275\nSELECT 1"
    );
    assert_eq!(
        code(&mut s, "alter table acc add primary key (bid)"),
        "42P16"
    );
}

#[test]
fn add_primary_key_over_duplicates_fails_with_23505_and_changes_nothing() {
    let (_dir, _engine, mut s) = setup();
    run(&mut s, "create table t(a int, b int)");
    run(&mut s, "insert into t values (1, 1), (2, 1), (NULL, 3)");
    assert_eq!(code(&mut s, "alter table t add primary key (b)"), "23505");
    assert_eq!(code(&mut s, "alter table t add primary key (a)"), "23502");
    assert_eq!(run(&mut s, "select count(*) from t"), "3\nSELECT 1");
    run(&mut s, "delete from t where a is null");
    assert_eq!(
        run(&mut s, "alter table t add primary key (a)"),
        "ALTER TABLE"
    );
    assert_eq!(
        run(&mut s, "select a, b from t order by a"),
        "1|1\n2|1\nSELECT 2"
    );
}

#[test]
fn driver_settings_deallocate_and_datestyle_as_postgres_reports_them() {
    let (_dir, _engine, mut s) = setup();
    assert_eq!(run(&mut s, "DEALLOCATE ALL"), "DEALLOCATE ALL");
    assert_eq!(run(&mut s, "SET DateStyle = 'ISO'"), "SET");
    assert_eq!(run(&mut s, "SHOW DateStyle"), "ISO, MDY\nSHOW");
    assert_eq!(run(&mut s, "SET datestyle TO 'ymd'"), "SET");
    assert_eq!(s.setting("DateStyle").as_deref(), Some("ISO, YMD"));
    assert_eq!(code(&mut s, "SET DateStyle = 'bogus'"), "22023");
}

#[test]
fn pg_sleep_is_cancelled_by_the_cancel_flag_and_statement_timeout() {
    let (_dir, _engine, mut s) = setup();
    assert_eq!(run(&mut s, "select pg_sleep(0.01)"), "NULL\nSELECT 1");
    run(&mut s, "SET statement_timeout = 50");
    assert_eq!(code(&mut s, "select pg_sleep(30)"), "57014");
    run(&mut s, "SET statement_timeout = 0");
    let flag = s.cancel_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        flag.store(true, Ordering::SeqCst);
    });
    assert_eq!(code(&mut s, "select pg_sleep(30)"), "57014");
    t.join().expect("canceller");
    assert_eq!(
        run(&mut s, "select 1"),
        "1\nSELECT 1",
        "the session stays usable"
    );
}

#[test]
fn fail_transaction_turns_an_explicit_block_into_a_failed_one() {
    let (_dir, _engine, mut s) = setup();
    run(&mut s, "CREATE TABLE t (a int)");
    run(&mut s, "BEGIN; INSERT INTO t VALUES (1)");
    s.fail_transaction();
    assert_eq!(s.transaction_status(), TxnStatus::Failed);
    assert_eq!(code(&mut s, "SELECT 1"), "25P02");
    assert_eq!(run(&mut s, "COMMIT"), "ROLLBACK");
    assert_eq!(run(&mut s, "SELECT count(*) FROM t"), "0\nSELECT 1");
}

#[test]
fn char_padding_is_dropped_in_concatenation_and_huge_literals_fit_float_columns() {
    let (_dir, _engine, mut s) = setup();
    assert_eq!(
        run(&mut s, "select '  x  '::char(5) || '|'"),
        "  x|\nSELECT 1"
    );
    run(
        &mut s,
        "create table f (a int primary key, r real, d double precision)",
    );
    assert_eq!(
        run(&mut s, "insert into f values (1, 3.4028235e38, 1e100)"),
        "INSERT 0 1"
    );
    assert_eq!(
        run(&mut s, "select r, d from f"),
        "3.4028235e+38|1e+100\nSELECT 1"
    );
}

#[test]
fn concurrent_inserts_into_a_table_without_primary_key_keep_every_row() {
    // Hidden row ids are unique per process, so such inserts take no row locks; none may be lost.
    let (_dir, engine, mut s) = setup();
    run(&mut s, "CREATE TABLE log (who int, n int)");
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut s = session(&engine);
                for i in 0..50 {
                    assert_eq!(
                        run(
                            &mut s,
                            &format!("INSERT INTO log VALUES ({w}, {i}), ({w}, {i})")
                        ),
                        "INSERT 0 2"
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(
        run(&mut s, "SELECT count(*), sum(n) FROM log"),
        "400|9800\nSELECT 1"
    );
}
