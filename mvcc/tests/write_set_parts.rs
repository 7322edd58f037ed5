//! Bulk transactions write their write set to the log in parts (crate docs, "Bulk work";
//! formats in `record.rs`): a committed one is recovered whole, an unfinished one not at all,
//! a checkpoint never passes the parts of an open one, a cut anywhere in its records keeps all
//! or nothing, and savepoint rollbacks after a part are honoured.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, SyncPolicy, Txn};

/// A part every few writes: each row below is ~40 bytes of key + value + overhead.
const PART_SIZE: u64 = 256;

fn open(dir: &Path) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        write_set_part_size: PART_SIZE,
        ..DbOptions::default()
    })
    .unwrap()
}

/// A crash with `txn` still open: the data directory as it is now, in a copy (the open
/// transaction keeps the database, and its directory lock, alive). A later commit makes sure
/// the parts before it were written.
fn crash_copy(db: &Arc<Db>, txn: Txn, to: &Path) {
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"marker", Bytes::from_static(b"1")).unwrap();
    t.commit().unwrap();
    copy_dir(db.dir(), to);
    drop(txn);
}

fn key(i: usize) -> Vec<u8> {
    format!("row{i:05}").into_bytes()
}

fn load(t: &mut Txn, rows: std::ops::Range<usize>, tag: &str) {
    for i in rows {
        t.put(&key(i), Bytes::from(format!("{tag}-{i}"))).unwrap();
    }
}

fn read(db: &Arc<Db>, k: &[u8]) -> Option<String> {
    db.begin(Isolation::RepeatableRead)
        .get(k)
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn count(db: &Arc<Db>, n: usize) -> usize {
    let t = db.begin(Isolation::RepeatableRead);
    (0..n)
        .filter(|i| t.get(&key(*i)).unwrap().is_some())
        .count()
}

fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_committed_bulk_transaction_is_recovered_whole_from_its_parts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..200, "v");
        // Overwrite and delete keys that are already in parts: the last write wins.
        t.put(&key(3), Bytes::from_static(b"changed")).unwrap();
        t.delete(&key(4)).unwrap();
        t.commit().unwrap();
    }
    let db = open(dir.path());
    let stats = db.recovery_stats();
    assert!(stats.replayed_parts >= 5, "{stats:?}");
    assert_eq!(stats.replayed_commits, 1);
    assert_eq!(count(&db, 200), 199);
    assert_eq!(read(&db, &key(3)).as_deref(), Some("changed"));
    assert_eq!(read(&db, &key(4)), None);
    assert_eq!(read(&db, &key(199)).as_deref(), Some("v-199"));
}

#[test]
fn parts_of_a_transaction_that_never_committed_are_ignored() {
    let live = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(live.path());
        let mut before = db.begin(Isolation::ReadCommitted);
        before.put(b"before", Bytes::from_static(b"1")).unwrap();
        before.commit().unwrap();
        // Rolled back, and one still open when the database goes away (a crash: no record
        // of its end is written either way).
        let mut rolled = db.begin(Isolation::ReadCommitted);
        load(&mut rolled, 0..100, "r");
        rolled.rollback();
        let mut open_txn = db.begin(Isolation::ReadCommitted);
        load(&mut open_txn, 100..200, "o");
        crash_copy(&db, open_txn, dir.path());
    }
    let db = open(dir.path());
    let stats = db.recovery_stats();
    assert!(stats.ignored_parts >= 5, "{stats:?}");
    assert_eq!(stats.replayed_parts, 0);
    assert_eq!(count(&db, 200), 0);
    assert_eq!(read(&db, b"before").as_deref(), Some("1"));
}

#[test]
fn a_savepoint_rollback_after_parts_is_honoured_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut seed = db.begin(Isolation::ReadCommitted);
        seed.put(b"committed", Bytes::from_static(b"old")).unwrap();
        seed.commit().unwrap();

        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..100, "v");
        let sp = t.savepoint();
        t.put(&key(1), Bytes::from_static(b"undone")).unwrap();
        t.put(b"new-after-savepoint", Bytes::from_static(b"undone"))
            .unwrap();
        t.delete(b"committed").unwrap();
        load(&mut t, 100..150, "undone");
        t.rollback_to(sp);
        t.put(&key(2), Bytes::from_static(b"kept")).unwrap();
        load(&mut t, 150..160, "late");
        t.commit().unwrap();
        assert_eq!(read(&db, &key(1)).as_deref(), Some("v-1"));
    }
    let db = open(dir.path());
    assert!(db.recovery_stats().replayed_parts >= 2);
    assert_eq!(read(&db, &key(1)).as_deref(), Some("v-1"));
    assert_eq!(read(&db, &key(2)).as_deref(), Some("kept"));
    assert_eq!(read(&db, b"new-after-savepoint"), None);
    assert_eq!(read(&db, b"committed").as_deref(), Some("old"));
    assert_eq!(count(&db, 200), 110);
    assert_eq!(read(&db, &key(155)).as_deref(), Some("late-155"));
}

#[test]
fn a_checkpoint_never_passes_the_parts_of_an_open_transaction() {
    // Committed after the checkpoint: the parts before the stamp must still be replayed.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..100, "v");
        let mut other = db.begin(Isolation::ReadCommitted);
        other.put(b"other", Bytes::from_static(b"1")).unwrap();
        other.commit().unwrap();
        db.checkpoint().unwrap();
        load(&mut t, 100..200, "v");
        t.commit().unwrap();
    }
    let db = open(dir.path());
    assert_eq!(count(&db, 200), 200);
    assert_eq!(read(&db, b"other").as_deref(), Some("1"));

    // Still open at the checkpoint and never committed: nothing of it, everything else kept;
    // a checkpoint after it finished may pass its parts.
    let live = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(live.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..100, "v");
        let stamp_open = db.checkpoint().unwrap();
        let mut other = db.begin(Isolation::ReadCommitted);
        other.put(b"other", Bytes::from_static(b"1")).unwrap();
        other.commit().unwrap();
        let stamp_still_open = db.checkpoint().unwrap();
        assert_eq!(stamp_open, stamp_still_open, "held at the first part");
        load(&mut t, 100..150, "v");
        crash_copy(&db, t, dir.path());
    }
    let db = open(dir.path());
    assert_eq!(count(&db, 200), 0);
    assert_eq!(read(&db, b"other").as_deref(), Some("1"));

    // Committed before the checkpoint, whose stamp then passes the parts.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..200, "v");
        t.commit().unwrap();
        db.checkpoint().unwrap();
    }
    let db = open(dir.path());
    assert_eq!(db.recovery_stats().replayed_parts, 0);
    assert_eq!(count(&db, 200), 200);
}

#[test]
fn a_cut_anywhere_in_the_parts_keeps_all_of_the_transaction_or_nothing() {
    const N: usize = 60;
    let base = tempfile::tempdir().unwrap();
    // File offsets of the log's end in its only segment: the 32-byte header and every frame
    // written since this fresh open (the file is longer: zeros preallocated after the end).
    let (start, len);
    {
        let db = open(base.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        t.put(b"before", Bytes::from_static(b"1")).unwrap();
        t.commit().unwrap();
        start = 32 + db.stats().wal.bytes;
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..N, "v");
        t.commit().unwrap();
        len = 32 + db.stats().wal.bytes;
    }
    assert_eq!(wal_segments(base.path()).len(), 1);
    assert!(len - start > 3 * PART_SIZE, "several parts were written");
    // Every 13th byte (records are framed and CRC'd as a whole, so this hits every header,
    // payload and the commit record), and the very end.
    for cut in (start..len).step_by(13).chain([len]) {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(base.path(), scratch.path());
        let copy = wal_segments(scratch.path()).pop().unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let db = Db::open(DbOptions {
            dir: scratch.path().to_path_buf(),
            sync: SyncPolicy::OffUnsafeNoDurability,
            write_set_part_size: PART_SIZE,
            ..DbOptions::default()
        })
        .unwrap_or_else(|e| panic!("cut at {cut}/{len}: recovery failed: {e}"));
        let n = count(&db, N);
        assert!(
            n == 0 || (n == N && cut == len),
            "cut at {cut}/{len}: {n} of {N} rows visible"
        );
        assert_eq!(read(&db, b"before").as_deref(), Some("1"));
    }
}

#[test]
fn a_prepared_transaction_with_parts_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        load(&mut t, 0..100, "p");
        db.prepare(t, "bulk", "alice", "gnomon").unwrap();
        // Parts are no longer needed: the prepare record holds the write set.
        db.checkpoint().unwrap();
    }
    {
        let db = open(dir.path());
        assert_eq!(db.recovery_stats().prepared_restored, 1);
        assert_eq!(count(&db, 100), 0, "invisible until COMMIT PREPARED");
        db.commit_prepared("bulk").unwrap();
        assert_eq!(count(&db, 100), 100);
    }
    let db = open(dir.path());
    assert_eq!(count(&db, 100), 100);
    assert_eq!(read(&db, &key(42)).as_deref(), Some("p-42"));
}
