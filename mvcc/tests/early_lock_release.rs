//! Early lock release: a row's next writer goes on as soon as the previous writer's commit
//! record is queued in the log, yet nobody sees a result that could still be lost, and a failed
//! log takes back everything that depended on it.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MvccError, SyncPolicy};
use gnomon_wal::FaultyFs;

fn open(dir: &std::path::Path, fs: &Arc<FaultyFs>) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Fsync,
        wal_fs: fs.clone(),
        ..DbOptions::default()
    })
    .unwrap()
}

fn value(db: &Arc<Db>, key: &[u8]) -> Option<Bytes> {
    db.begin(Isolation::RepeatableRead).get(key).unwrap()
}

#[test]
fn next_writer_proceeds_before_the_fsync_but_nothing_is_visible_until_durable() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let db = open(dir.path(), &fs);
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"hot", Bytes::from_static(b"0")).unwrap();
    t.commit().unwrap();

    fs.hold_syncs();
    let mut t1 = db.begin(Isolation::ReadCommitted);
    t1.get_for_update(b"hot").unwrap();
    t1.put(b"hot", Bytes::from_static(b"1")).unwrap();
    let (acked_tx, acked) = mpsc::channel();
    let c1 = std::thread::spawn(move || {
        let r = t1.commit();
        acked_tx.send(()).unwrap();
        r
    });
    // T2 gets the row while T1's fsync is held, and reads T1's value.
    let mut t2 = db.begin(Isolation::ReadCommitted);
    let mut seen = None;
    for _ in 0..200 {
        // T1 may not have reached the log yet; retry until its lock is released.
        seen = t2.get_for_update(b"hot").unwrap();
        if seen.as_deref() == Some(b"1".as_slice()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        t2.rollback();
        t2 = db.begin(Isolation::ReadCommitted);
    }
    assert_eq!(
        seen.as_deref(),
        Some(b"1".as_slice()),
        "next writer reads the queued version"
    );
    t2.put(b"hot", Bytes::from_static(b"2")).unwrap();
    // Nobody was told about T1, and no snapshot sees it yet.
    assert!(acked.recv_timeout(Duration::from_millis(50)).is_err());
    assert_eq!(value(&db, b"hot").as_deref(), Some(b"0".as_slice()));

    fs.release_syncs();
    c1.join().unwrap().unwrap();
    t2.commit().unwrap();
    assert_eq!(value(&db, b"hot").as_deref(), Some(b"2".as_slice()));
    drop(db);
    let db = open(dir.path(), &Arc::new(FaultyFs::new()));
    assert_eq!(
        value(&db, b"hot").as_deref(),
        Some(b"2".as_slice()),
        "after recovery"
    );
}

#[test]
fn a_failed_fsync_takes_back_the_commit_and_everything_that_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let db = open(dir.path(), &fs);
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"k", Bytes::from_static(b"base")).unwrap();
    t.commit().unwrap();

    fs.hold_syncs();
    fs.fail_next_sync();
    let mut t1 = db.begin(Isolation::ReadCommitted);
    t1.put(b"k", Bytes::from_static(b"t1")).unwrap();
    let c1 = std::thread::spawn(move || t1.commit());
    let mut t2 = db.begin(Isolation::ReadCommitted);
    let mut seen = None;
    for _ in 0..200 {
        seen = t2.get_for_update(b"k").unwrap();
        if seen.as_deref() == Some(b"t1".as_slice()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        t2.rollback();
        t2 = db.begin(Isolation::ReadCommitted);
    }
    assert_eq!(seen.as_deref(), Some(b"t1".as_slice()));
    t2.put(b"k", Bytes::from_static(b"t2")).unwrap();
    let c2 = std::thread::spawn(move || t2.commit());
    std::thread::sleep(Duration::from_millis(20));
    fs.release_syncs();
    let e1 = c1.join().unwrap().unwrap_err();
    let e2 = c2.join().unwrap().unwrap_err();
    assert!(
        e1.is_commit_in_doubt() && e2.is_commit_in_doubt(),
        "{e1} / {e2}"
    );
    assert!(matches!(e2, MvccError::Wal(_)));
    // Neither became visible, and the retracted versions are gone from the engine.
    assert_eq!(value(&db, b"k").as_deref(), Some(b"base".as_slice()));
    let mut t3 = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        t3.get_for_update(b"k").unwrap().as_deref(),
        Some(b"base".as_slice())
    );
}

#[test]
fn a_whole_group_commit_batch_is_visible_to_each_committer_when_its_commit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let db = open(dir.path(), &fs);
    let syncs = fs.syncs();

    // The first commit's fsync is held, so the others queue up and share the next batch;
    // whichever of them learns it durable first publishes the batch for all of them.
    fs.hold_syncs();
    let spawn = |key: Vec<u8>| {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            let mut t = db.begin(Isolation::ReadCommitted);
            t.put(&key, Bytes::from(key.clone())).unwrap();
            t.commit().unwrap();
            // A snapshot taken after the commit returned sees it.
            value(&db, &key)
        })
    };
    let first = spawn(b"k-first".to_vec());
    while fs.syncs() == syncs {
        std::thread::sleep(Duration::from_millis(1));
    }
    let keys: Vec<Vec<u8>> = (0..16).map(|i| format!("k{i:02}").into_bytes()).collect();
    let others: Vec<_> = keys.iter().map(|k| spawn(k.clone())).collect();
    // Nothing of the queued batch is visible while the log is held.
    std::thread::sleep(Duration::from_millis(20));
    for k in &keys {
        assert_eq!(value(&db, k), None);
    }
    fs.release_syncs();
    assert_eq!(
        first.join().unwrap().as_deref(),
        Some(b"k-first".as_slice())
    );
    for (k, h) in keys.iter().zip(others) {
        assert_eq!(h.join().unwrap().as_deref(), Some(k.as_slice()));
    }
    // Each commit is durable: a reopened database has all of them.
    drop(db);
    let db = open(dir.path(), &Arc::new(FaultyFs::new()));
    for k in &keys {
        assert_eq!(value(&db, k).as_deref(), Some(k.as_slice()));
    }
}
