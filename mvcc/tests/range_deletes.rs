//! Range deletes of a transaction (`Txn::delete_range`, what TRUNCATE and DROP TABLE use):
//! its own reads stop seeing the range at once, other snapshots see it only after the commit
//! (one taken before keeps the old rows), and the delete survives a restart, with and without
//! write-set parts, and through PREPARE (where it becomes point deletes).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, SyncPolicy, Txn};

fn open(dir: &Path, part_size: u64) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        write_set_part_size: part_size,
        ..DbOptions::default()
    })
    .unwrap()
}

fn key(table: u8, i: usize) -> Vec<u8> {
    let mut k = vec![b't', table];
    k.extend_from_slice(format!("{i:05}").as_bytes());
    k
}

fn load(t: &mut Txn, table: u8, rows: std::ops::Range<usize>, tag: &str) {
    for i in rows {
        t.put(&key(table, i), Bytes::from(format!("{tag}-{i}")))
            .unwrap();
    }
}

fn rows(t: &Txn, table: u8) -> Vec<String> {
    t.scan(
        std::ops::Bound::Included(vec![b't', table]),
        std::ops::Bound::Excluded(vec![b't', table + 1]),
        false,
    )
    .unwrap()
    .into_iter()
    .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
    .collect()
}

fn drop_table(t: &mut Txn, table: u8) {
    t.delete_range(&[b't', table], &[b't', table + 1]).unwrap();
}

#[test]
fn a_range_delete_is_seen_by_its_transaction_at_once_and_by_others_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path(), 0);
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 1, 0..100, "old");
        load(&mut t, 2, 0..10, "keep");
        t.commit().unwrap();

        let before = db.begin(Isolation::RepeatableRead);
        assert_eq!(rows(&before, 1).len(), 100);
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 1, 0..5, "mine-before");
        drop_table(&mut t, 1);
        assert!(rows(&t, 1).is_empty(), "own reads see the delete at once");
        assert_eq!(t.get(&key(1, 7)).unwrap(), None);
        load(&mut t, 1, 3..5, "new");
        assert_eq!(rows(&t, 1), ["new-3", "new-4"]);
        assert_eq!(rows(&db.begin(Isolation::ReadCommitted), 1).len(), 100);
        t.commit().unwrap();
        assert_eq!(
            rows(&before, 1).len(),
            100,
            "an older snapshot keeps the old rows"
        );
        let after = db.begin(Isolation::ReadCommitted);
        assert_eq!(rows(&after, 1), ["new-3", "new-4"]);
        assert_eq!(rows(&after, 2).len(), 10, "the next table is untouched");
    }
    let db = open(dir.path(), 0);
    let t = db.begin(Isolation::ReadCommitted);
    assert_eq!(rows(&t, 1), ["new-3", "new-4"]);
    assert_eq!(rows(&t, 2).len(), 10);
    // And through a checkpoint and another restart.
    db.checkpoint().unwrap();
    drop(t);
    drop(db);
    let db = open(dir.path(), 0);
    assert_eq!(
        rows(&db.begin(Isolation::ReadCommitted), 1),
        ["new-3", "new-4"]
    );
}

#[test]
fn a_range_delete_in_a_transaction_writing_parts_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path(), 256);
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 1, 0..50, "committed");
        t.commit().unwrap();
        // Delete, then load past several parts, delete again (own part writes become point
        // deletes), load a little more.
        let mut t = db.begin(Isolation::ReadCommitted);
        drop_table(&mut t, 1);
        load(&mut t, 1, 0..40, "first");
        drop_table(&mut t, 1);
        load(&mut t, 1, 100..103, "second");
        assert_eq!(rows(&t, 1).len(), 3);
        t.commit().unwrap();
    }
    let db = open(dir.path(), 256);
    assert_eq!(
        rows(&db.begin(Isolation::ReadCommitted), 1),
        ["second-100", "second-101", "second-102"]
    );
}

#[test]
fn a_prepared_range_delete_commits_as_point_deletes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path(), 0);
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 1, 0..20, "old");
        t.commit().unwrap();
        let mut t = db.begin(Isolation::ReadCommitted);
        drop_table(&mut t, 1);
        load(&mut t, 1, 5..6, "new");
        db.prepare(t, "g1", "owner", "db").unwrap();
        assert_eq!(rows(&db.begin(Isolation::ReadCommitted), 1).len(), 20);
    }
    // The prepared transaction survives the restart and commits there.
    let db = open(dir.path(), 0);
    db.commit_prepared("g1").unwrap();
    assert_eq!(rows(&db.begin(Isolation::ReadCommitted), 1), ["new-5"]);
}
