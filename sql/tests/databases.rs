//! Databases are namespaces: each has its own tables, indexes, sequences and schemas; roles
//! are shared. CREATE / DROP DATABASE errors and DROP's waiting as PostgreSQL 15 (each error
//! line checked on a live PG 15); a data dir of catalog format 1 is migrated at open.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{open, run, run_as, session, setup, Errors};
use gnomon_mvcc::{Db, DbOptions, Isolation, SyncPolicy};
use gnomon_sql::encoding::{Key, KeyPrefix, TableId};
use gnomon_sql::storage::Transaction;
use gnomon_sql::{Session, SqlEngine};

fn connect(e: &Arc<SqlEngine>, db: &str) -> Session {
    Session::new(e.clone(), "gnomon", db).expect("session")
}

/// The objects of the current database as psql's `\dt`-like queries and the views see them.
fn objects(s: &mut Session) -> String {
    run(
        s,
        "SELECT relname, relkind FROM pg_class WHERE relnamespace = 2200 ORDER BY relname;
         SELECT tablename, hasindexes FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;
         SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1;
         SELECT nspname FROM pg_namespace WHERE nspname = 's'",
    )
}

#[test]
fn two_databases_each_have_their_own_names() {
    let (_d, e, mut g) = setup();
    run(&mut g, "CREATE DATABASE db1");
    let mut a = connect(&e, "db1");
    // The same names in both databases, with different shapes and rows.
    assert_eq!(
        run(
            &mut g,
            "CREATE TABLE t1 (id serial PRIMARY KEY, v int); CREATE INDEX t1_v_idx ON t1 (v);
             CREATE SCHEMA s; INSERT INTO t1 (v) VALUES (1), (2)"
        ),
        "CREATE TABLE\nCREATE INDEX\nCREATE SCHEMA\nINSERT 0 2"
    );
    assert_eq!(
        run(
            &mut a,
            "CREATE TABLE t1 (id serial PRIMARY KEY, w text); CREATE INDEX t1_v_idx ON t1 (w);
             CREATE SCHEMA s; INSERT INTO t1 (w) VALUES ('x')"
        ),
        "CREATE TABLE\nCREATE INDEX\nCREATE SCHEMA\nINSERT 0 1"
    );
    assert_eq!(
        run(&mut g, "SELECT id, v FROM t1 ORDER BY id"),
        "1|1\n2|2\nSELECT 2"
    );
    assert_eq!(run(&mut a, "SELECT id, w FROM t1"), "1|x\nSELECT 1");
    // Sequences of the same name are two sequences.
    assert_eq!(run(&mut a, "SELECT nextval('t1_id_seq')"), "2\nSELECT 1");
    assert_eq!(run(&mut g, "SELECT nextval('t1_id_seq')"), "3\nSELECT 1");
    // A name only one database has is unknown in the other.
    run(&mut a, "CREATE TABLE only_a (x int)");
    assert_eq!(
        run(&mut g, "SELECT * FROM only_a"),
        "ERROR 42P01 relation \"only_a\" does not exist"
    );
    assert_eq!(run(&mut g, "CREATE TABLE only_a (y int)"), "CREATE TABLE");
    // The catalog views list the current database's objects only.
    let catalog_g = "only_a|r\nt1|r\nt1_id_seq|S\nt1_pkey|i\nt1_v_idx|i\nSELECT 5\n\
                     only_a|f\nt1|t\nSELECT 2\nonly_a\nt1\nSELECT 2\ns\nSELECT 1";
    assert_eq!(objects(&mut g), catalog_g);
    assert_eq!(objects(&mut a), catalog_g);
    run(&mut a, "DROP TABLE only_a; DROP SCHEMA s");
    assert_eq!(
        objects(&mut a),
        "t1|r\nt1_id_seq|S\nt1_pkey|i\nt1_v_idx|i\nSELECT 4\nt1|t\nSELECT 1\nt1\nSELECT 1\nSELECT 0"
    );
    assert_eq!(objects(&mut g), catalog_g);
    // DROP TABLE in one database leaves the other's table of that name and its rows.
    assert_eq!(run(&mut a, "DROP TABLE t1"), "DROP TABLE");
    assert_eq!(run(&mut g, "SELECT count(*) FROM t1"), "2\nSELECT 1");
    // Roles are shared by every database.
    run(&mut a, "CREATE ROLE shared_role LOGIN");
    assert_eq!(
        run(
            &mut g,
            "SELECT rolname FROM pg_roles WHERE rolname = 'shared_role'"
        ),
        "shared_role\nSELECT 1"
    );
    // pg_locks names the database of each locked table, whichever database asks.
    run(&mut g, "BEGIN; LOCK TABLE t1 IN SHARE MODE");
    let t1_g = oid_of(&mut g, "t1");
    let locks = format!(
        "SELECT d.datname FROM pg_locks l JOIN pg_database d ON d.oid = l.database
          WHERE l.relation = {t1_g}"
    );
    assert_eq!(run(&mut a, &locks), "gnomon\nSELECT 1");
    run(&mut g, "COMMIT");
    // information_schema names the current database as the tables' catalog.
    assert_eq!(
        run(
            &mut g,
            "SELECT DISTINCT table_catalog FROM information_schema.tables;
             SELECT DISTINCT table_catalog FROM information_schema.columns"
        ),
        "gnomon\nSELECT 1\ngnomon\nSELECT 1"
    );
    run(&mut a, "CREATE TABLE in_a (x int)");
    assert_eq!(
        run(
            &mut a,
            "SELECT table_catalog, table_name FROM information_schema.columns"
        ),
        "db1|in_a\nSELECT 1"
    );
    // current_database() and pg_database.oid agree on who is who.
    assert_eq!(
        run(
            &mut a,
            "SELECT current_database(), (SELECT count(DISTINCT oid) FROM pg_database)"
        ),
        "db1|2\nSELECT 1"
    );
}

#[test]
fn create_and_drop_database_errors_as_postgresql() {
    let (_d, _e, mut s) = setup();
    let in_block = "ERROR 25001 CREATE DATABASE cannot run inside a transaction block";
    assert_eq!(
        run(&mut s, "BEGIN; CREATE DATABASE x"),
        format!("BEGIN\n{in_block}")
    );
    run(&mut s, "ROLLBACK");
    // A simple-query message of several statements is an implicit block.
    assert_eq!(run(&mut s, "CREATE DATABASE x; SELECT 1"), in_block);
    assert_eq!(
        run(&mut s, "SELECT 1; DROP DATABASE x"),
        "1\nSELECT 1\nERROR 25001 DROP DATABASE cannot run inside a transaction block"
    );
    assert_eq!(run(&mut s, "CREATE DATABASE x"), "CREATE DATABASE");
    assert_eq!(
        run(&mut s, "CREATE DATABASE x"),
        "ERROR 42P04 database \"x\" already exists"
    );
    assert_eq!(
        run(&mut s, "BEGIN; DROP DATABASE x"),
        "BEGIN\nERROR 25001 DROP DATABASE cannot run inside a transaction block"
    );
    run(&mut s, "ROLLBACK");
    assert_eq!(
        run(&mut s, "DROP DATABASE gnomon"),
        "ERROR 55006 cannot drop the currently open database"
    );
    assert_eq!(
        run(&mut s, "DROP DATABASE nope"),
        "ERROR 3D000 database \"nope\" does not exist"
    );
    assert_eq!(run(&mut s, "DROP DATABASE IF EXISTS nope"), "DROP DATABASE");
    assert_eq!(
        s.take_notices()
            .iter()
            .map(|n| format!("{} {}", n.code, n.message))
            .collect::<Vec<_>>(),
        ["00000 database \"nope\" does not exist, skipping"]
    );
    assert_eq!(run(&mut s, "DROP DATABASE x"), "DROP DATABASE");
    // The session is still usable after every error above.
    assert_eq!(run(&mut s, "SELECT 1"), "1\nSELECT 1");
}

/// Keys under `prefix` that a fresh transaction sees.
fn keys(db: &Arc<Db>, prefix: KeyPrefix) -> usize {
    let txn = db.begin(Isolation::ReadCommitted);
    let n = Transaction::scan(&txn, prefix.range(), false, None)
        .expect("scan")
        .len();
    txn.rollback();
    n
}

fn oid_of(s: &mut Session, rel: &str) -> u32 {
    let out = run(
        s,
        &format!("SELECT oid FROM pg_class WHERE relname = '{rel}'"),
    );
    out.lines()
        .next()
        .and_then(|l| l.parse().ok())
        .expect("oid")
}

#[test]
fn drop_database_deletes_its_objects_and_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        // Old versions are collectable at once (the GC step below).
        gc_window: Duration::ZERO,
        ..Default::default()
    })
    .expect("open db");
    let e = SqlEngine::open(db.clone()).expect("open sql");
    let mut g = session(&e);
    run(
        &mut g,
        "CREATE TABLE keep (k int PRIMARY KEY); INSERT INTO keep VALUES (7)",
    );
    run(&mut g, "CREATE DATABASE doomed");
    let mut d = connect(&e, "doomed");
    assert_eq!(
        run(
            &mut d,
            "CREATE TABLE t (id bigserial PRIMARY KEY, v text UNIQUE);
             INSERT INTO t (v) SELECT 'v' || g FROM generate_series(1, 500) g;
             CREATE TABLE nopk (x int); INSERT INTO nopk VALUES (1), (2);
             CREATE SEQUENCE s; CREATE SCHEMA sch"
        ),
        "CREATE TABLE\nINSERT 0 500\nCREATE TABLE\nINSERT 0 2\nCREATE SEQUENCE\nCREATE SCHEMA"
    );
    assert_eq!(
        run(
            &mut d,
            "CREATE TABLE p (k int) PARTITION BY RANGE (k);
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
             INSERT INTO p VALUES (1)"
        ),
        "CREATE TABLE\nCREATE TABLE\nINSERT 0 1"
    );
    let p1 = TableId(oid_of(&mut d, "p1"));
    let t = TableId(oid_of(&mut d, "t"));
    let nopk = TableId(oid_of(&mut d, "nopk"));
    let doomed = e.database_id("doomed").expect("oid");
    assert_eq!(keys(&db, KeyPrefix::Rows(t)), 500);
    assert_eq!(keys(&db, KeyPrefix::Indexes(t)), 500);
    drop(d);
    db.gc().expect("gc");
    db.checkpoint().expect("checkpoint");
    let before = db.maintenance_stats().versions_in_checkpoint;
    assert_eq!(run(&mut g, "DROP DATABASE doomed"), "DROP DATABASE");
    // Rows, index entries and every name are gone (deleted: GC reclaims the space).
    assert_eq!(keys(&db, KeyPrefix::Rows(t)), 0);
    assert_eq!(keys(&db, KeyPrefix::Indexes(t)), 0);
    assert_eq!(keys(&db, KeyPrefix::Rows(nopk)), 0);
    assert_eq!(keys(&db, KeyPrefix::Rows(p1)), 0);
    for p in [
        KeyPrefix::TableName(doomed),
        KeyPrefix::Sequence(doomed),
        KeyPrefix::IndexName(doomed),
        KeyPrefix::Schema(doomed),
    ] {
        assert_eq!(keys(&db, p), 0, "{p:?}");
    }
    assert!(Session::new(e.clone(), "gnomon", "doomed").is_err());
    // A database created again under the name starts empty, with another OID.
    run(&mut g, "CREATE DATABASE doomed");
    assert_ne!(e.database_id("doomed"), Some(doomed));
    let mut d = connect(&e, "doomed");
    assert_eq!(
        run(&mut d, "SELECT * FROM t"),
        "ERROR 42P01 relation \"t\" does not exist"
    );
    assert_eq!(objects(&mut d), "SELECT 0\nSELECT 0\nSELECT 0\nSELECT 0");
    assert_eq!(run(&mut g, "SELECT k FROM keep"), "7\nSELECT 1");
    // The space is reclaimed: once GC's safe point passes the DROP, a checkpoint keeps no
    // version of the dropped rows and index entries.
    db.gc().expect("gc");
    db.checkpoint().expect("checkpoint");
    let after = db.maintenance_stats().versions_in_checkpoint;
    // 500 rows + 500 index entries + 3 rows were dropped (1029 -> 26 when written).
    assert!(
        after + 1000 <= before,
        "checkpoint versions {before} before DROP DATABASE, {after} after GC + checkpoint"
    );
    assert_eq!(keys(&db, KeyPrefix::Rows(t)), 0);
}

#[test]
fn drop_database_waits_for_sessions_to_end_then_refuses() {
    let (_d, e, mut s) = setup();
    run(&mut s, "CREATE DATABASE busy");
    // A session that ends within the 5 s: DROP waits for it and succeeds.
    let leaving = connect(&e, "busy");
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(leaving);
    });
    assert_eq!(run(&mut s, "DROP DATABASE busy"), "DROP DATABASE");
    t.join().expect("thread");
    // Sessions that stay: 55006 after the wait, with PostgreSQL's DETAIL.
    run(&mut s, "CREATE DATABASE busy");
    let a = connect(&e, "busy");
    assert_eq!(
        run_as(&mut s, "DROP DATABASE busy", Errors::InlineDetail),
        "ERROR 55006 database \"busy\" is being accessed by other users \
         DETAIL: There is 1 other session using the database."
    );
    let b = connect(&e, "busy");
    assert_eq!(
        run_as(&mut s, "DROP DATABASE busy", Errors::InlineDetail),
        "ERROR 55006 database \"busy\" is being accessed by other users \
         DETAIL: There are 2 other sessions using the database."
    );
    drop((a, b));
    assert_eq!(run(&mut s, "DROP DATABASE busy"), "DROP DATABASE");
}

#[test]
fn a_prepared_transaction_keeps_its_database() {
    let (_d, e, mut s) = setup();
    run(&mut s, "CREATE DATABASE twopc");
    let mut a = connect(&e, "twopc");
    run(&mut a, "CREATE TABLE t (x int)");
    assert_eq!(
        run(
            &mut a,
            "BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'g1'"
        ),
        "BEGIN\nINSERT 0 1\nPREPARE TRANSACTION"
    );
    // pg_locks shows the prepared transaction's table lock under its database's OID, from
    // any database.
    let t = oid_of(&mut a, "t");
    drop(a);
    let locks = format!(
        "SELECT DISTINCT database = (SELECT oid FROM pg_database WHERE datname = 'twopc'),
                database IS NOT NULL
           FROM pg_locks WHERE relation = {t}"
    );
    assert_eq!(run(&mut s, &locks), "t|t\nSELECT 1");
    assert_eq!(
        run_as(&mut s, "DROP DATABASE twopc", Errors::InlineDetail),
        "ERROR 55006 database \"twopc\" is being accessed by other users \
         DETAIL: There is 1 prepared transaction using the database."
    );
    assert_eq!(
        run(&mut s, "COMMIT PREPARED 'g1'"),
        "ERROR 0A000 prepared transaction belongs to another database"
    );
    let mut a = connect(&e, "twopc");
    assert_eq!(run(&mut a, "COMMIT PREPARED 'g1'"), "COMMIT PREPARED");
    assert_eq!(run(&mut a, "SELECT x FROM t"), "1\nSELECT 1");
    drop(a);
    assert_eq!(run(&mut s, "DROP DATABASE twopc"), "DROP DATABASE");
}

#[test]
fn each_database_keeps_its_objects_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let e = open(dir.path());
        let mut g = session(&e);
        run(&mut g, "CREATE DATABASE other");
        run(&mut g, "CREATE TABLE t (v text)");
        run(&mut g, "INSERT INTO t VALUES ('gnomon')");
        let mut o = connect(&e, "other");
        run(
            &mut o,
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('other')",
        );
        run(&mut o, "CREATE TABLE p (k int) PARTITION BY RANGE (k)");
        run(
            &mut o,
            "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
        );
        run(&mut o, "INSERT INTO p VALUES (5)");
    }
    let e = open(dir.path());
    let mut g = session(&e);
    let mut o = connect(&e, "other");
    assert_eq!(run(&mut g, "SELECT v FROM t"), "gnomon\nSELECT 1");
    assert_eq!(run(&mut o, "SELECT v FROM t"), "other\nSELECT 1");
    assert_eq!(run(&mut o, "SELECT k FROM p"), "5\nSELECT 1");
    assert_eq!(
        run(&mut g, "SELECT * FROM p"),
        "ERROR 42P01 relation \"p\" does not exist"
    );
    // New objects never reuse an id or OID handed out before the restart.
    run(&mut g, "CREATE DATABASE third");
    let oids = run(
        &mut o,
        "SELECT count(DISTINCT oid) = count(*) FROM pg_database",
    );
    assert_eq!(oids, "t\nSELECT 1");
}

/// Rewrites the catalog of `db` back to format 1: name keys without their database, empty
/// database entries, Meta = 1 (what a data dir written before namespaces holds).
fn downgrade_to_format_1(db: &Arc<Db>) {
    let mut txn = db.begin(Isolation::ReadCommitted);
    for tag in [0x04u8, 0x06, 0x08, 0x09] {
        let keys = Transaction::scan(
            &txn,
            gnomon_sql::encoding::prefix_range(&[tag]),
            false,
            None,
        )
        .expect("scan");
        for (k, v) in keys {
            let mut old = vec![tag];
            old.extend_from_slice(&k[5..]);
            Transaction::delete(&mut txn, &k).expect("delete");
            Transaction::put(&mut txn, &old, v).expect("put");
        }
    }
    for (k, _) in Transaction::scan(&txn, KeyPrefix::Database.range(), false, None).expect("scan") {
        Transaction::put(&mut txn, &k, Bytes::new()).expect("put");
    }
    Transaction::put(
        &mut txn,
        &Key::Meta.encode(),
        Bytes::copy_from_slice(&1u32.to_be_bytes()),
    )
    .expect("meta");
    txn.commit().expect("commit");
}

#[test]
fn a_format_1_data_dir_is_migrated_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Db::open(DbOptions {
            dir: dir.path().to_path_buf(),
            sync: SyncPolicy::OffUnsafeNoDurability,
            ..Default::default()
        })
        .expect("open db");
        let e = SqlEngine::open(db.clone()).expect("open sql");
        let mut g = session(&e);
        run(
            &mut g,
            "CREATE TABLE accounts (id serial PRIMARY KEY, name text UNIQUE);
             INSERT INTO accounts (name) VALUES ('a'), ('b');
             CREATE SCHEMA app",
        );
        run(&mut g, "CREATE DATABASE old_other");
        drop(g);
        drop(e);
        downgrade_to_format_1(&db);
    }
    let e = open(dir.path());
    let mut g = session(&e);
    // The old objects belong to database gnomon, with their rows, indexes and sequences.
    assert_eq!(
        run(
            &mut g,
            "SELECT id, name FROM accounts WHERE name = 'b';
             INSERT INTO accounts (name) VALUES ('c') RETURNING id > 2;
             SELECT nspname FROM pg_namespace WHERE nspname = 'app'"
        ),
        "2|b\nSELECT 1\nt\nINSERT 0 1\napp\nSELECT 1"
    );
    assert_eq!(
        run(&mut g, "INSERT INTO accounts (name) VALUES ('a')"),
        "ERROR 23505 duplicate key value violates unique constraint \"accounts_name_key\""
    );
    // The other database exists, with an OID of its own, and starts empty.
    assert_eq!(e.database_id("gnomon").map(|d| d.0), Some(5));
    assert!(e.database_id("old_other").is_some_and(|d| d.0 >= 16384));
    let mut o = connect(&e, "old_other");
    assert_eq!(
        run(&mut o, "SELECT * FROM accounts"),
        "ERROR 42P01 relation \"accounts\" does not exist"
    );
    run(&mut o, "CREATE TABLE accounts (x int)");
    drop((g, o, e));
    // Reopened: format 2 now, nothing migrated twice.
    let e = open(dir.path());
    let mut g = session(&e);
    assert_eq!(run(&mut g, "SELECT count(*) FROM accounts"), "3\nSELECT 1");
    let mut o = connect(&e, "old_other");
    assert_eq!(run(&mut o, "SELECT count(*) FROM accounts"), "0\nSELECT 1");
}

#[test]
fn the_migration_refuses_a_prepared_transaction_holding_ddl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    };
    {
        let db = Db::open(options()).expect("open db");
        let e = SqlEngine::open(db.clone()).expect("open sql");
        let mut g = session(&e);
        run(&mut g, "CREATE TABLE kept (x int)");
        assert_eq!(
            run(
                &mut g,
                "BEGIN; CREATE TABLE pending (y int); PREPARE TRANSACTION 'ddl'"
            ),
            "BEGIN\nCREATE TABLE\nPREPARE TRANSACTION"
        );
        drop((g, e));
        downgrade_to_format_1(&db);
    }
    // Its CREATE TABLE would write a name key of the old layout at COMMIT PREPARED.
    let db = Db::open(options()).expect("open db");
    let err = SqlEngine::open(db).err().expect("the migration is refused");
    assert_eq!(
        (err.code.code(), err.message.as_str()),
        (
            "55000",
            "cannot migrate the catalog to format 2: prepared transaction \"ddl\" holds DDL"
        )
    );
}
