//! Crash recovery: a log cut anywhere keeps exactly a prefix of the committed transactions; a
//! damaged record in the middle is reported, never skipped. (SIGKILL: see `sigkill.rs`.)

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MvccError, SyncPolicy};

fn open(dir: &Path, sync: SyncPolicy) -> Result<Arc<Db>, MvccError> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync,
        ..DbOptions::default()
    })
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

fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs
}

/// Commits transaction i as {"t<i>": i, "last": i}; returns how many committed.
fn write_history(dir: &Path, n: usize) {
    let db = open(dir, SyncPolicy::OffUnsafeNoDurability).unwrap();
    for i in 0..n {
        let mut t = db.begin(Isolation::ReadCommitted);
        t.put(format!("t{i:04}").as_bytes(), Bytes::from(i.to_string()))
            .unwrap();
        t.put(b"last", Bytes::from(i.to_string())).unwrap();
        t.commit().unwrap();
    }
}

/// How many transactions of the history are visible; asserts they form a prefix.
fn committed_prefix(db: &Arc<Db>, n: usize) -> usize {
    let t = db.begin(Isolation::RepeatableRead);
    let present: Vec<bool> = (0..n)
        .map(|i| t.get(format!("t{i:04}").as_bytes()).unwrap().is_some())
        .collect();
    let k = present.iter().take_while(|p| **p).count();
    assert!(
        present[k..].iter().all(|p| !p),
        "visible transactions are not a prefix: {present:?}"
    );
    let last = t
        .get(b"last")
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap());
    assert_eq!(
        last,
        k.checked_sub(1).map(|i| i.to_string()),
        "atomicity: `last` must match the prefix"
    );
    k
}

#[test]
fn cutting_the_log_at_every_offset_keeps_exactly_a_prefix() {
    const N: usize = 40;
    let base = tempfile::tempdir().unwrap();
    write_history(base.path(), N);
    let segs = wal_segments(base.path());
    let seg = segs.last().unwrap();
    let len = fs::metadata(seg).unwrap().len();
    // The last ~6 records, byte by byte.
    let from = len.saturating_sub(6 * 70);
    let mut previous = 0;
    for cut in from..=len {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(base.path(), scratch.path());
        let copy = wal_segments(scratch.path()).pop().unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let db = open(scratch.path(), SyncPolicy::OffUnsafeNoDurability)
            .unwrap_or_else(|e| panic!("cut at {cut}/{len}: recovery failed: {e}"));
        let k = committed_prefix(&db, N);
        assert!(
            k >= previous,
            "a longer log must not keep fewer transactions"
        );
        assert!(
            k >= N - 7,
            "cut at {cut} lost more than the cut records ({k} kept)"
        );
        previous = k;
        // The recovered log accepts new commits, and they survive another reopen.
        let mut t = db.begin(Isolation::ReadCommitted);
        t.put(b"after", Bytes::from_static(b"1")).unwrap();
        t.commit().unwrap();
        drop(db);
        let db = open(scratch.path(), SyncPolicy::OffUnsafeNoDurability).unwrap();
        assert_eq!(committed_prefix(&db, N), k);
        assert!(db
            .begin(Isolation::ReadCommitted)
            .get(b"after")
            .unwrap()
            .is_some());
    }
    assert_eq!(previous, N, "the uncut log keeps everything");
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_log_is_reported_as_corruption() {
    let base = tempfile::tempdir().unwrap();
    write_history(base.path(), 40);
    let seg = wal_segments(base.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    // The middle of the records: the file ends in zeros preallocated after the last one.
    let records_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let mid = records_end / 2;
    bytes[mid] ^= 0x5a;
    fs::write(&seg, bytes).unwrap();
    match open(base.path(), SyncPolicy::OffUnsafeNoDurability) {
        Err(MvccError::Wal(e)) => assert!(e.to_string().to_lowercase().contains("corrupt"), "{e}"),
        Err(other) => panic!("expected a WAL corruption error, got {other}"),
        Ok(_) => panic!("a damaged record followed by good ones must not be skipped"),
    }
}

fn checkpoint_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    files
}

/// Commits `t<i>` for i in `range` (see `write_history`) on an open database.
fn commit_range(db: &Arc<Db>, range: std::ops::Range<usize>) {
    for i in range {
        let mut t = db.begin(Isolation::ReadCommitted);
        t.put(format!("t{i:04}").as_bytes(), Bytes::from(i.to_string()))
            .unwrap();
        t.put(b"last", Bytes::from(i.to_string())).unwrap();
        t.commit().unwrap();
    }
}

fn flip_a_byte_in_the_middle(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

/// The checkpoint let the log's first segments go; when that checkpoint then fails to load
/// (a damaged disk, or a file from a newer build after a rollback), the transactions it held
/// exist nowhere else. Recovery must refuse, name the file, and keep it, rather than start
/// from the log's first remaining record without them.
#[test]
fn a_checkpoint_that_fails_to_load_after_the_log_was_trimmed_stops_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = {
        let db = Db::open(DbOptions {
            dir: dir.path().to_path_buf(),
            sync: SyncPolicy::OffUnsafeNoDurability,
            segment_size: 4096,
            ..DbOptions::default()
        })
        .unwrap();
        commit_range(&db, 0..200);
        db.checkpoint().unwrap();
        commit_range(&db, 200..210);
        let files = checkpoint_files(dir.path());
        assert_eq!(files.len(), 1);
        files[0].clone()
    };
    let first_segment = wal_segments(dir.path())[0].clone();
    assert_ne!(
        first_segment.file_stem().unwrap().to_str().unwrap(),
        format!("{:020}", 0),
        "the checkpoint must have removed the log's first segment"
    );
    flip_a_byte_in_the_middle(&checkpoint);

    for _ in 0..2 {
        match open(dir.path(), SyncPolicy::OffUnsafeNoDurability) {
            Err(MvccError::WalStartsAfterCheckpoint {
                checkpoint_lsn,
                wal_start,
                passed_over,
            }) => {
                assert_eq!(checkpoint_lsn, 0);
                assert!(wal_start > 0);
                let name = checkpoint.file_name().unwrap().to_str().unwrap();
                assert!(passed_over.contains(name), "{passed_over}");
                assert!(passed_over.contains("corrupt"), "{passed_over}");
            }
            Err(other) => panic!("expected WalStartsAfterCheckpoint, got {other}"),
            Ok(_) => panic!("recovery started without the checkpoint's transactions"),
        }
        assert!(
            checkpoint.exists(),
            "the passed-over checkpoint was deleted"
        );
    }
}

/// A damaged checkpoint whose log is still whole costs only replay time: every transaction
/// comes back from the log, and the damaged file stays on disk after the next checkpoint.
#[test]
fn a_damaged_checkpoint_with_the_whole_log_recovers_everything_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = {
        let db = open(dir.path(), SyncPolicy::OffUnsafeNoDurability).unwrap();
        commit_range(&db, 0..50);
        db.checkpoint().unwrap();
        commit_range(&db, 50..60);
        checkpoint_files(dir.path())[0].clone()
    };
    assert_eq!(wal_segments(dir.path()).len(), 1);
    flip_a_byte_in_the_middle(&checkpoint);

    let db = open(dir.path(), SyncPolicy::OffUnsafeNoDurability).unwrap();
    assert_eq!(committed_prefix(&db, 70), 60);
    assert_eq!(db.recovery_stats().checkpoint_lsn, 0);
    commit_range(&db, 60..61);
    db.checkpoint().unwrap();
    assert!(
        checkpoint.exists(),
        "the passed-over checkpoint was deleted"
    );
    assert_eq!(checkpoint_files(dir.path()).len(), 2);
    drop(db);

    let db = open(dir.path(), SyncPolicy::OffUnsafeNoDurability).unwrap();
    assert_eq!(committed_prefix(&db, 70), 61);
}
