//! MERGE through a Session: into partitioned tables (routing, rows moving between partitions,
//! matches in any partition, by primary key, index and scan), the join seeing the target as
//! the statement's snapshot did (21000 for a row changed twice, 23505 for a key inserted
//! twice), DEFAULT in WHEN NOT MATCHED THEN INSERT, and ALTER TABLE ... ADD PRIMARY KEY on a
//! partitioned table. Every expected line was checked on PostgreSQL 15.

use gnomon_sql::Session;

mod common;
use common::Errors;

/// [`common::run`] with an error's DETAIL on its line.
fn run(s: &mut Session, sql: &str) -> String {
    common::run_as(s, sql, Errors::InlineDetail)
}

fn partitioned(s: &mut Session) {
    assert_eq!(
        run(
            s,
            "CREATE TABLE acc (id int PRIMARY KEY, owner text, bal int DEFAULT 0) \
               PARTITION BY RANGE (id);
             CREATE TABLE acc_lo PARTITION OF acc FOR VALUES FROM (0) TO (100);
             CREATE TABLE acc_hi PARTITION OF acc FOR VALUES FROM (100) TO (200);
             INSERT INTO acc VALUES (1, 'ann', 10), (150, 'bob', 20), (160, 'cy', 30);"
        ),
        "CREATE TABLE\nCREATE TABLE\nCREATE TABLE\nINSERT 0 3"
    );
}

#[test]
fn merge_into_a_partitioned_table_routes_inserts_and_moves_updated_rows() {
    let (_dir, _engine, mut s) = common::setup();
    partitioned(&mut s);
    // One statement: an update in place, a delete, a move to the other partition, inserts
    // into both partitions.
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (1, 5, 'upd'), (150, 0, 'del'), (160, -150, 'move'),
                                          (2, 7, 'new'), (199, 9, 'new')) s(id, d, op)
               ON acc.id = s.id
             WHEN MATCHED AND s.op = 'del' THEN DELETE
             WHEN MATCHED AND s.op = 'move' THEN UPDATE SET id = acc.id + s.d
             WHEN MATCHED THEN UPDATE SET bal = bal + s.d
             WHEN NOT MATCHED THEN INSERT (id, bal) VALUES (s.id, s.d)"
        ),
        "MERGE 5"
    );
    assert_eq!(
        run(&mut s, "SELECT id, owner, bal FROM acc_lo ORDER BY id"),
        "1|ann|15\n2|NULL|7\n10|cy|30\nSELECT 3"
    );
    assert_eq!(
        run(&mut s, "SELECT id, owner, bal FROM acc_hi ORDER BY id"),
        "199|NULL|9\nSELECT 1"
    );
    // No partition for an inserted or moved row: 23514, nothing of the statement kept.
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (3), (500)) s(id) ON acc.id = s.id
             WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
        ),
        "ERROR 23514 no partition of relation \"acc\" found for row \
         DETAIL: Partition key of the failing row contains (id) = (500)."
    );
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (1)) s(id) ON acc.id = s.id
             WHEN MATCHED THEN UPDATE SET id = 1000"
        ),
        "ERROR 23514 no partition of relation \"acc\" found for row \
         DETAIL: Partition key of the failing row contains (id) = (1000)."
    );
    // Into a partition itself: its bound is checked.
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc_lo USING (VALUES (120)) s(id) ON acc_lo.id = s.id
             WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
        ),
        "ERROR 23514 new row for relation \"acc_lo\" violates partition constraint \
         DETAIL: Failing row contains (120, null, 0)."
    );
    // Index and scan joins find rows in every partition.
    assert_eq!(run(&mut s, "CREATE INDEX ON acc (owner)"), "CREATE INDEX");
    let plan = run(
        &mut s,
        "EXPLAIN MERGE INTO acc USING (VALUES ('ann')) s(o) ON acc.owner = s.o \
         WHEN MATCHED THEN DELETE",
    );
    assert!(plan.contains("Index Scan"), "{plan}");
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES ('ann', 'ANN'), ('cy', 'CY')) s(o, n)
               ON acc.owner = s.o WHEN MATCHED THEN UPDATE SET owner = s.n"
        ),
        "MERGE 2"
    );
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (7), (9)) s(b) ON acc.bal = s.b
             WHEN MATCHED THEN UPDATE SET bal = acc.bal * 10"
        ),
        "MERGE 2"
    );
    assert_eq!(
        run(&mut s, "SELECT id, owner, bal FROM acc ORDER BY id"),
        "1|ANN|15\n2|NULL|70\n10|CY|30\n199|NULL|90\nSELECT 4"
    );
    // Two source rows for one target row, in either partition: 21000.
    assert_eq!(
        common::code(
            &mut s,
            "MERGE INTO acc USING (VALUES (199), (199)) s(id) ON acc.id = s.id
             WHEN MATCHED THEN UPDATE SET bal = 0"
        ),
        "21000"
    );
}

#[test]
fn the_join_never_sees_rows_the_merge_wrote() {
    let (_dir, _engine, mut s) = common::setup();
    partitioned(&mut s);
    // A row moved from acc_hi to 5 is not matched again by the source row for 5: that one
    // is NOT MATCHED, and its INSERT collides with the moved row (as in PostgreSQL).
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (150, 5), (5, 6)) s(id, nid) ON acc.id = s.id
             WHEN MATCHED THEN UPDATE SET id = s.nid
             WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
        ),
        "ERROR 23505 duplicate key value violates unique constraint \"acc_lo_pkey\" \
         DETAIL: Key (id)=(5) already exists."
    );
    // Without the INSERT the second source row simply does not match.
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (150, 5), (5, 6)) s(id, nid) ON acc.id = s.id
             WHEN MATCHED THEN UPDATE SET id = s.nid"
        ),
        "MERGE 1"
    );
    // A deleted row matched again, also when the second action is DO NOTHING for it but
    // the first applies: 21000. DO NOTHING for the second match is fine.
    assert_eq!(
        common::code(
            &mut s,
            "MERGE INTO acc USING (VALUES (1), (1)) s(id) ON acc.id = s.id
             WHEN MATCHED THEN DELETE"
        ),
        "21000"
    );
    assert_eq!(
        run(
            &mut s,
            "MERGE INTO acc USING (VALUES (1, 'x'), (1, 'y')) s(id, o) ON acc.id = s.id
             WHEN MATCHED AND s.o = 'x' THEN UPDATE SET owner = s.o
             WHEN MATCHED THEN DO NOTHING"
        ),
        "MERGE 1"
    );
    // The second match is judged on the row as the snapshot saw it (owner 'x' is this
    // statement's own write): ON still holds for the old owner, so 21000.
    assert_eq!(
        common::code(
            &mut s,
            "MERGE INTO acc USING (VALUES (1, 'z'), (1, 'w')) s(id, o)
               ON acc.id = s.id AND acc.owner = 'x'
             WHEN MATCHED THEN UPDATE SET owner = s.o"
        ),
        "21000"
    );
    assert_eq!(
        run(&mut s, "SELECT id, owner, bal FROM acc ORDER BY id"),
        "1|x|10\n5|bob|20\n160|cy|30\nSELECT 3"
    );
}

#[test]
fn merge_insert_takes_defaults() {
    let (_dir, _engine, mut s) = common::setup();
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE d (id int PRIMARY KEY, a int DEFAULT 42, b text DEFAULT 'x',
                             g int GENERATED ALWAYS AS (a * 2) STORED);
             CREATE TABLE di (id int GENERATED ALWAYS AS IDENTITY, v int);"
        ),
        "CREATE TABLE\nCREATE TABLE"
    );
    let merge = |id: i32, insert: &str| {
        format!(
            "MERGE INTO d USING (VALUES ({id})) s(i) ON d.id = s.i \
             WHEN NOT MATCHED THEN INSERT {insert}"
        )
    };
    assert_eq!(
        run(&mut s, &merge(1, "VALUES (s.i, DEFAULT, 'y')")),
        "MERGE 1"
    );
    assert_eq!(run(&mut s, &merge(2, "VALUES (s.i)")), "MERGE 1");
    assert_eq!(
        run(&mut s, &merge(3, "(id, b) VALUES (s.i, DEFAULT)")),
        "MERGE 1"
    );
    assert_eq!(
        run(&mut s, &merge(4, "VALUES (s.i, 1, 'z', default)")),
        "MERGE 1"
    );
    assert_eq!(
        run(&mut s, &merge(5, "DEFAULT VALUES")),
        "ERROR 23502 null value in column \"id\" of relation \"d\" violates not-null constraint"
    );
    assert_eq!(
        common::code(&mut s, &merge(6, "VALUES (s.i, 1, 'z', 3)")),
        "428C9"
    );
    assert_eq!(
        run(&mut s, &merge(6, "(id, a) VALUES (s.i)")),
        "ERROR 42601 INSERT has more target columns than expressions"
    );
    assert_eq!(
        run(&mut s, "SELECT id, a, b, g FROM d ORDER BY id"),
        "1|42|y|84\n2|42|x|84\n3|42|x|84\n4|1|z|2\nSELECT 4"
    );
    let merge_i = |v: i32, insert: &str| {
        format!(
            "MERGE INTO di USING (VALUES ({v})) s(v) ON di.v = s.v \
             WHEN NOT MATCHED THEN INSERT {insert}"
        )
    };
    assert_eq!(
        common::code(&mut s, &merge_i(5, "VALUES (7, s.v)")),
        "428C9"
    );
    assert_eq!(run(&mut s, &merge_i(5, "VALUES (DEFAULT, s.v)")), "MERGE 1");
    assert_eq!(run(&mut s, &merge_i(6, "DEFAULT VALUES")), "MERGE 1");
    // The words in a string are left alone.
    assert_eq!(
        run(
            &mut s,
            &merge_i(7, "(v) VALUES (length('insert default values'))")
        ),
        "MERGE 1"
    );
    assert_eq!(
        run(&mut s, "SELECT id, v FROM di ORDER BY id"),
        "1|5\n2|NULL\n3|21\nSELECT 3"
    );
}

#[test]
fn add_primary_key_on_a_partitioned_table_keys_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = common::open(dir.path());
        let mut s = common::session(&engine);
        assert_eq!(
            run(
                &mut s,
                "CREATE TABLE p (k int, j int, v text) PARTITION BY LIST (k);
                 CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
                 INSERT INTO p VALUES (1, 1, 'a'), (1, 2, 'b');"
            ),
            "CREATE TABLE\nCREATE TABLE\nINSERT 0 2"
        );
        assert_eq!(
            run(&mut s, "ALTER TABLE p ADD PRIMARY KEY (j)"),
            "ERROR 0A000 unique constraint on partitioned table must include all partitioning \
             columns DETAIL: PRIMARY KEY constraint on table \"p\" lacks column \"k\" which is \
             part of the partition key."
        );
        assert_eq!(
            run(&mut s, "ALTER TABLE p ADD PRIMARY KEY (k)"),
            "ERROR 23505 could not create unique index \"p1_pkey\" DETAIL: Key (k)=(1) is duplicated."
        );
        // Rolled back with its transaction.
        assert_eq!(
            run(
                &mut s,
                "BEGIN; DELETE FROM p WHERE j = 2; ALTER TABLE p ADD PRIMARY KEY (k); ROLLBACK"
            ),
            "BEGIN\nDELETE 1\nALTER TABLE\nROLLBACK"
        );
        assert_eq!(
            run(&mut s, "INSERT INTO p VALUES (1, 1, 'c')"),
            "INSERT 0 1"
        );
        assert_eq!(run(&mut s, "DELETE FROM p WHERE v = 'c'"), "DELETE 1");
        assert_eq!(
            run(&mut s, "ALTER TABLE p ADD PRIMARY KEY (k, j)"),
            "ALTER TABLE"
        );
        assert_eq!(
            run(&mut s, "ALTER TABLE p ADD PRIMARY KEY (k, j)"),
            "ERROR 42P16 multiple primary keys for table \"p\" are not allowed"
        );
        // Later partitions get it too; a MERGE uses it as its point lookup.
        assert_eq!(
            run(&mut s, "CREATE TABLE p3 PARTITION OF p FOR VALUES IN (3)"),
            "CREATE TABLE"
        );
        let plan = run(
            &mut s,
            "EXPLAIN MERGE INTO p USING (VALUES (3, 1)) s(k, j) ON p.k = s.k AND p.j = s.j \
             WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.j)",
        );
        assert!(plan.contains("Point Get"), "{plan}");
        assert_eq!(
            run(
                &mut s,
                "MERGE INTO p USING (VALUES (3, 1, 'x'), (1, 2, 'y')) s(k, j, v)
                   ON p.k = s.k AND p.j = s.j
                 WHEN MATCHED THEN UPDATE SET v = s.v
                 WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.j, s.v)"
            ),
            "MERGE 2"
        );
    }
    // After a restart: the key holds in each partition, NOT NULL in the parent.
    let engine = common::open(dir.path());
    let mut s = common::session(&engine);
    assert_eq!(
        run(&mut s, "INSERT INTO p VALUES (3, 1, 'again')"),
        "ERROR 23505 duplicate key value violates unique constraint \"p3_pkey\" \
         DETAIL: Key (k, j)=(3, 1) already exists."
    );
    assert_eq!(
        run(&mut s, "INSERT INTO p VALUES (1, 2, 'again')"),
        "ERROR 23505 duplicate key value violates unique constraint \"p1_pkey\" \
         DETAIL: Key (k, j)=(1, 2) already exists."
    );
    // Routed first, then NOT NULL on the partition (as PostgreSQL orders the checks).
    assert_eq!(
        run(&mut s, "INSERT INTO p VALUES (1, NULL, 'n')"),
        "ERROR 23502 null value in column \"j\" of relation \"p1\" violates not-null constraint"
    );
    assert_eq!(
        run(&mut s, "INSERT INTO p VALUES (NULL, 1, 'n')"),
        "ERROR 23514 no partition of relation \"p\" found for row \
         DETAIL: Partition key of the failing row contains (k) = (null)."
    );
    assert_eq!(
        run(&mut s, "SELECT k, j, v FROM p ORDER BY k, j"),
        "1|1|a\n1|2|y\n3|1|x\nSELECT 3"
    );
    // A partition with another primary key: 42P16 naming it.
    assert_eq!(
        run(
            &mut s,
            "CREATE TABLE q (k int, j int) PARTITION BY LIST (k);
             CREATE TABLE q2 (k int, j int PRIMARY KEY);
             ALTER TABLE q ATTACH PARTITION q2 FOR VALUES IN (2);
             ALTER TABLE q ADD PRIMARY KEY (k, j)"
        ),
        "CREATE TABLE\nCREATE TABLE\nALTER TABLE\n\
         ERROR 42P16 multiple primary keys for table \"q2\" are not allowed"
    );
}
