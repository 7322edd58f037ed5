//! `Db::stats`: the counters `/metrics` exports move with what the database does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MvccError, SyncPolicy};

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Fsync,
        ..Default::default()
    })
    .expect("open")
}

#[test]
fn commits_rollbacks_and_wal_batches_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let before = db.stats();
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"k", Bytes::from_static(b"v")).unwrap();
    t.commit().unwrap();
    db.begin(Isolation::ReadCommitted).rollback();
    drop(db.begin(Isolation::RepeatableRead));
    let after = db.stats();
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.rollbacks - before.rollbacks, 2);
    assert_eq!(after.commit_failures, 0);
    assert_eq!(after.wal.records - before.wal.records, 1);
    assert_eq!(after.wal.batches - before.wal.batches, 1);
    assert!(after.wal.fsyncs > before.wal.fsyncs);
    assert!(after.wal.bytes > before.wal.bytes);
    assert_eq!(
        after.wal.batch_size_buckets[0] - before.wal.batch_size_buckets[0],
        1
    );
}

#[test]
fn lock_waits_and_deadlock_victims_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut t1 = db.begin(Isolation::ReadCommitted);
    let mut t2 = db.begin(Isolation::ReadCommitted);
    t1.put(b"a", Bytes::from_static(b"1")).unwrap();
    t2.put(b"b", Bytes::from_static(b"2")).unwrap();
    let db1 = Arc::clone(&db);
    // t1 waits for b (held by t2) ...
    let waiter = std::thread::spawn(move || {
        let r = t1.put(b"b", Bytes::from_static(b"1"));
        (r.is_ok(), t1)
    });
    while db1.stats().locks.waits == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // ... and t2 closes the cycle by waiting for a: the younger (t2) is the victim.
    let r = t2.put(b"a", Bytes::from_static(b"2"));
    assert!(matches!(r, Err(MvccError::Deadlock { .. })), "{r:?}");
    drop(t2);
    let (ok, t1) = waiter.join().unwrap();
    assert!(ok);
    t1.commit().unwrap();
    let s = db.stats();
    assert_eq!(s.locks.deadlocks, 1);
    assert_eq!(s.locks.waits, 2);
}
