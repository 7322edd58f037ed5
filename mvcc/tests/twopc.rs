//! Two-phase commit, participant side: a prepared transaction is durable, invisible and holds
//! its locks until COMMIT/ROLLBACK PREPARED, across restarts, checkpoints and log cuts.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use gnomon_mvcc::{
    Db, DbOptions, Isolation, LockWait, MvccError, RelId, SyncPolicy, TableMode, TxnId, TxnPhase,
    TxnStatus,
};

fn open_with(dir: &Path, max_prepared: usize) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        gc_window: Duration::ZERO,
        max_prepared_transactions: max_prepared,
        segment_size: 1 << 20,
        ..DbOptions::default()
    })
    .unwrap()
}

fn open(dir: &Path) -> Arc<Db> {
    open_with(dir, 10)
}

fn read(db: &Arc<Db>, key: &str) -> Option<String> {
    let t = db.begin(Isolation::ReadCommitted);
    t.get(key.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn commit_put(db: &Arc<Db>, key: &str, value: &str) {
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(key.as_bytes(), Bytes::from(value.to_string()))
        .unwrap();
    t.commit().unwrap();
}

/// Prepares {"k": "prepared", "locked-only" locked} under `gid`; returns the txn id.
fn prepare_one(db: &Arc<Db>, gid: &str) -> TxnId {
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"k", Bytes::from_static(b"prepared")).unwrap();
    t.get_for_update(b"locked-only").unwrap();
    let id = t.id();
    db.prepare(t, gid, "alice", "gnomon").unwrap();
    id
}

/// Starts a writer of `key` on another thread; it reports the value it read under the lock.
fn spawn_writer(db: &Arc<Db>, key: &'static str) -> mpsc::Receiver<Option<String>> {
    let (tx, rx) = mpsc::channel();
    let db = db.clone();
    std::thread::spawn(move || {
        let mut t = db.begin(Isolation::ReadCommitted);
        let seen = t
            .get_for_update(key.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v.to_vec()).unwrap());
        t.put(key.as_bytes(), Bytes::from_static(b"writer"))
            .unwrap();
        t.commit().unwrap();
        drop(db); // before reporting: the test may reopen the directory next
        let _ = tx.send(seen);
    });
    rx
}

/// Returns once `n` lock requests wait (the lock view shows them not granted); the writers
/// behind them cannot have finished. Never judged by elapsed time.
fn until_waiting(db: &Arc<Db>, n: usize) {
    loop {
        let t = db.begin(Isolation::ReadCommitted);
        let waiting = t
            .lock_manager()
            .view()
            .iter()
            .filter(|l| !l.granted)
            .count();
        drop(t);
        if waiting >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The writer has not finished (it reports only after its commit).
fn still_waiting(rx: &mpsc::Receiver<Option<String>>) -> bool {
    rx.try_recv().is_err()
}

#[test]
fn prepared_writes_are_invisible_locked_and_durable_until_commit_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    commit_put(&db, "k", "before");
    let id = prepare_one(&db, "g1");
    assert_eq!(read(&db, "k").as_deref(), Some("before"));
    let listed = db.prepared_transactions();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].txn,
            listed[0].gid.as_str(),
            listed[0].owner.as_str()
        ),
        (id, "g1", "alice")
    );
    assert_eq!(db.txn_status(id).unwrap().status, TxnPhase::Prepared);

    let writer = spawn_writer(&db, "k");
    until_waiting(&db, 1);
    assert!(still_waiting(&writer), "the prepared transaction holds k");
    let state = db.commit_prepared("g1").unwrap();
    assert!(matches!(state.status, TxnStatus::Committed(_)));
    // READ COMMITTED re-reads the newest committed version once it has the lock.
    assert_eq!(writer.recv().unwrap().as_deref(), Some("prepared"));
    assert_eq!(read(&db, "k").as_deref(), Some("writer"));
    assert!(db.prepared_transactions().is_empty());
    let info = db.txn_status(id).unwrap();
    assert_eq!(info.status, TxnPhase::Committed);
    assert_eq!(info.gid.as_deref(), Some("g1"));
    assert!(info.commit_ts.is_some());
}

#[test]
fn a_prepared_transaction_survives_restart_with_its_locks_and_commits_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let db = open(dir.path());
        commit_put(&db, "k", "before");
        prepare_one(&db, "g1")
    };
    let db = open(dir.path());
    assert_eq!(db.recovery_stats().prepared_restored, 1);
    assert_eq!(read(&db, "k").as_deref(), Some("before"), "still invisible");
    assert_eq!(db.prepared_transactions()[0].txn, id);
    assert_eq!(db.txn_status(id).unwrap().status, TxnPhase::Prepared);
    // New transactions get younger ids than the recovered one.
    assert!(db.begin(Isolation::ReadCommitted).id() > id);
    // Both the written row and the row it only locked are locked again.
    let on_k = spawn_writer(&db, "k");
    let on_locked = spawn_writer(&db, "locked-only");
    until_waiting(&db, 2);
    assert!(still_waiting(&on_k) && still_waiting(&on_locked));
    db.commit_prepared("g1").unwrap();
    assert_eq!(on_k.recv().unwrap().as_deref(), Some("prepared"));
    assert_eq!(on_locked.recv().unwrap(), None);
    drop(db);
    let db = open(dir.path());
    assert!(db.prepared_transactions().is_empty(), "resolved for good");
    assert_eq!(read(&db, "k").as_deref(), Some("writer"));
}

#[test]
fn rollback_prepared_discards_and_stays_discarded_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        commit_put(&db, "k", "before");
        let id = prepare_one(&db, "g1");
        let writer = spawn_writer(&db, "k");
        until_waiting(&db, 1);
        assert!(still_waiting(&writer));
        db.rollback_prepared("g1").unwrap();
        assert_eq!(writer.recv().unwrap().as_deref(), Some("before"));
        assert_eq!(db.txn_status(id).unwrap().status, TxnPhase::RolledBack);
    }
    let db = open(dir.path());
    assert!(db.prepared_transactions().is_empty());
    assert_eq!(read(&db, "k").as_deref(), Some("writer"));
}

#[test]
fn errors_follow_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(dir.path(), 1);
    prepare_one(&db, "g1");
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"other", Bytes::from_static(b"x")).unwrap();
    assert!(matches!(
        db.prepare(t, "g1", "", ""),
        Err(MvccError::DuplicateGid { .. })
    ));
    assert_eq!(read(&db, "other"), None, "a failed PREPARE rolls back");
    let t = db.begin(Isolation::ReadCommitted);
    assert!(matches!(
        db.prepare(t, "g2", "", ""),
        Err(MvccError::TooManyPrepared { max: 1 })
    ));
    let t = db.begin(Isolation::ReadCommitted);
    let long = "x".repeat(gnomon_mvcc::MAX_GID_LEN + 1);
    assert!(matches!(
        db.prepare(t, &long, "", ""),
        Err(MvccError::GidTooLong { .. })
    ));
    assert!(matches!(
        db.commit_prepared("nope"),
        Err(MvccError::UnknownGid { .. })
    ));
    assert!(matches!(
        db.rollback_prepared("nope"),
        Err(MvccError::UnknownGid { .. })
    ));
    // The refused transactions released their locks: "other" is writable.
    commit_put(&db, "other", "y");
    drop(db);
    let db = open_with(dir.path(), 0);
    let t = db.begin(Isolation::ReadCommitted);
    assert!(matches!(
        db.prepare(t, "g3", "", ""),
        Err(MvccError::PreparedTransactionsDisabled)
    ));
    // A transaction prepared before the limit was lowered can still be resolved.
    db.commit_prepared("g1").unwrap();
}

#[test]
fn a_checkpoint_keeps_unresolved_prepare_records_and_the_gc_spares_their_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        commit_put(&db, "k", "v1");
        prepare_one(&db, "g1");
        let prepare_lsn = db.oldest_unresolved_prepare_lsn().unwrap();
        for i in 0..50 {
            commit_put(&db, &format!("after{i}"), "x");
        }
        commit_put(&db, "k2", "v2");
        let replay_from = db.checkpoint().unwrap();
        assert!(replay_from <= prepare_lsn.0);
        // The prepared snapshot bounds the safe point (Δgc = 0 here).
        let snapshot = db.with_prepared("g1", |s| s.snapshot).unwrap();
        assert!(db.safe_point().unwrap() <= snapshot);
        db.gc().unwrap();
    }
    let db = open(dir.path());
    assert_eq!(db.prepared_transactions().len(), 1);
    assert_eq!(read(&db, "after49").as_deref(), Some("x"));
    assert_eq!(read(&db, "k2").as_deref(), Some("v2"));
    let snapshot = db.with_prepared("g1", |s| s.snapshot).unwrap();
    assert!(db.safe_point().unwrap() <= snapshot, "also after restart");
    db.commit_prepared("g1").unwrap();
    // Resolved: the next checkpoint may move past the prepare record.
    assert_eq!(db.oldest_unresolved_prepare_lsn(), None);
    let end = db.checkpoint().unwrap();
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.recovery_stats().checkpoint_lsn, end);
    assert!(db.prepared_transactions().is_empty());
    assert_eq!(read(&db, "k").as_deref(), Some("prepared"));
}

#[test]
fn read_only_transactions_are_not_tracked_but_prepared_read_only_ones_are() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = db.begin(Isolation::ReadCommitted);
    let reader = t.id();
    t.commit().unwrap();
    assert_eq!(db.txn_status(reader), None);
    let t = db.begin(Isolation::RepeatableRead);
    let id = t.id();
    db.prepare(t, "ro", "", "").unwrap();
    assert_eq!(db.txn_status(id).unwrap().gid.as_deref(), Some("ro"));
    db.commit_prepared("ro").unwrap();
    assert_eq!(db.txn_status(id).unwrap().status, TxnPhase::Committed);
    let mut w = db.begin(Isolation::ReadCommitted);
    w.put(b"a", Bytes::from_static(b"1")).unwrap();
    let wid = w.id();
    assert_eq!(db.txn_status(wid).unwrap().status, TxnPhase::Active);
    let listed: Vec<TxnId> = db.transactions().iter().map(|i| i.id).collect();
    assert!(listed.contains(&wid) && listed.contains(&id));
    w.rollback();
    assert_eq!(db.txn_status(wid).unwrap().status, TxnPhase::RolledBack);
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

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn a_log_cut_anywhere_in_the_prepare_and_commit_records_keeps_a_consistent_state() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    // File offset of the log's end in its only segment: the 32-byte header and every frame
    // written since this fresh open (the file is longer: zeros preallocated after the end).
    let log_end = |db: &Arc<Db>| 32 + db.stats().wal.bytes;
    let seg = {
        let db = open(&src);
        commit_put(&db, "k", "before");
        let seg = last_segment(&src);
        let start = log_end(&db);
        prepare_one(&db, "g1");
        let prepared_end = log_end(&db);
        db.commit_prepared("g1").unwrap();
        assert_eq!(last_segment(&src), seg);
        (seg, start, prepared_end, log_end(&db))
    };
    let (seg, start, prepared_end, end) = seg;
    let name = seg.file_name().unwrap().to_owned();
    for cut in start..=end {
        let dir = base.path().join(format!("cut{cut}"));
        copy_dir(&src, &dir);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("wal").join(&name))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let db = open(&dir);
        let prepared = db.prepared_transactions().len();
        let k = read(&db, "k");
        match (prepared, k.as_deref()) {
            // Before the prepare record is whole: as if it never happened.
            (0, Some("before")) => assert!(cut < prepared_end, "cut {cut}"),
            // Prepare record whole, commit record not: in doubt, locked, invisible.
            (1, Some("before")) => assert!(cut >= prepared_end && cut < end, "cut {cut}"),
            (0, Some("prepared")) => assert_eq!(cut, end),
            other => panic!("cut {cut}: impossible state {other:?}"),
        }
        drop(db);
        fs::remove_dir_all(&dir).unwrap();
    }
}

fn is_serialization_failure<T: std::fmt::Debug>(r: Result<T, MvccError>) -> bool {
    matches!(r, Err(MvccError::SerializationDependencies { .. }))
}

#[test]
fn table_locks_of_a_prepared_transaction_are_held_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut t = db.begin(Isolation::ReadCommitted);
        t.lock_table(RelId(7), TableMode::AccessExclusive, LockWait::Block)
            .unwrap();
        t.lock_table(RelId(8), TableMode::RowExclusive, LockWait::Block)
            .unwrap();
        t.put(b"k", Bytes::from_static(b"v")).unwrap();
        db.prepare(t, "g", "alice", "gnomon").unwrap();
    }
    let db = open(dir.path());
    let mut other = db.begin(Isolation::ReadCommitted);
    assert!(matches!(
        other.lock_table(RelId(7), TableMode::AccessShare, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    assert!(matches!(
        other.lock_table(RelId(8), TableMode::Share, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    // ROW EXCLUSIVE does not conflict with itself.
    other
        .lock_table(RelId(8), TableMode::RowExclusive, LockWait::NoWait)
        .unwrap();
    other.rollback();
    db.commit_prepared("g").unwrap();
    let mut after = db.begin(Isolation::ReadCommitted);
    after
        .lock_table(RelId(7), TableMode::AccessExclusive, LockWait::NoWait)
        .unwrap();
    after
        .lock_table(RelId(8), TableMode::AccessExclusive, LockWait::NoWait)
        .unwrap();
    after.commit().unwrap();
}

/// Write skew: each side reads both keys and writes one; A prepares.
fn skew_side(db: &Arc<Db>, write: &str) -> Result<gnomon_mvcc::Txn, MvccError> {
    let mut t = db.begin(Isolation::Serializable);
    t.get(b"x")?;
    t.get(b"y")?;
    t.put(write.as_bytes(), Bytes::from_static(b"0"))?;
    Ok(t)
}

#[test]
fn serializable_prepare_keeps_ssi_state_and_the_other_side_of_a_write_skew_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    commit_put(&db, "x", "1");
    commit_put(&db, "y", "1");
    let a = skew_side(&db, "x").unwrap();
    db.prepare(a, "a", "alice", "gnomon").unwrap();
    // B reads x (which the prepared A wrote) and y, then writes y (which A read): the
    // prepared transaction cannot be the victim, so B fails.
    assert!(is_serialization_failure(skew_side(&db, "y")));
    db.commit_prepared("a").unwrap();
    assert_eq!(read(&db, "x").as_deref(), Some("0"));
    assert_eq!(read(&db, "y").as_deref(), Some("1"));
    assert_eq!(db.ssi_stats().tracked, 0, "everything forgotten");

    // Without a conflict, a prepared serializable transaction commits like any other.
    let mut c = db.begin(Isolation::Serializable);
    c.put(b"z", Bytes::from_static(b"1")).unwrap();
    db.prepare(c, "c", "alice", "gnomon").unwrap();
    db.rollback_prepared("c").unwrap();
    assert_eq!(read(&db, "z"), None);
}

#[test]
fn a_prepared_pivot_is_never_doomed_the_committing_writer_fails_instead() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    commit_put(&db, "a", "1");
    commit_put(&db, "b", "1");
    // T1 -rw-> P: T1 reads a, which P writes. P -rw-> T3: P reads b, which T3 writes.
    let t1 = db.begin(Isolation::Serializable);
    t1.get(b"a").unwrap();
    let mut p = db.begin(Isolation::Serializable);
    p.get(b"b").unwrap();
    p.put(b"a", Bytes::from_static(b"p")).unwrap();
    db.prepare(p, "pivot", "alice", "gnomon").unwrap();
    let mut t3 = db.begin(Isolation::Serializable);
    t3.put(b"b", Bytes::from_static(b"t3")).unwrap();
    // T3 committing first would make the prepared P a pivot between two uncommitted ends:
    // PostgreSQL dooms the pivot, but a prepared one must commit, so T3 fails.
    assert!(is_serialization_failure(t3.commit()));
    t1.commit().unwrap();
    db.commit_prepared("pivot").unwrap();
    assert_eq!(read(&db, "a").as_deref(), Some("p"));
    assert_eq!(read(&db, "b").as_deref(), Some("1"));
}

#[test]
fn a_recovered_serializable_prepared_transaction_is_assumed_to_have_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        commit_put(&db, "x", "1");
        commit_put(&db, "y", "1");
        let a = skew_side(&db, "x").unwrap();
        db.prepare(a, "a", "alice", "gnomon").unwrap();
    }
    let db = open(dir.path());
    // Reading what the prepared transaction wrote fails at once (its conflict out is assumed),
    // as in PostgreSQL ("conflict out to old pivot").
    let b = db.begin(Isolation::Serializable);
    assert!(is_serialization_failure(b.get(b"x")));
    drop(b);
    // Its read set is back: a writer of y (which A read) meets A's SIREAD lock, and still
    // commits first: with no other prepared transaction, nothing uncommitted can be T1 of
    // `T1 -rw-> A -rw-> C` (PostgreSQL lets it commit too).
    let mut c = db.begin(Isolation::Serializable);
    c.get(b"y").unwrap();
    c.put(b"y", Bytes::from_static(b"c")).unwrap();
    c.commit().unwrap();
    db.commit_prepared("a").unwrap();
    assert_eq!(read(&db, "x").as_deref(), Some("0"));
    assert_eq!(read(&db, "y").as_deref(), Some("c"));
}

#[test]
fn two_recovered_serializable_prepared_transactions_protect_a_chain_between_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        commit_put(&db, "a", "1");
        commit_put(&db, "b", "1");
        // P1 -rw-> P2: P1 reads a, P2 writes a. P2 reads b.
        let mut p1 = db.begin(Isolation::Serializable);
        p1.get(b"a").unwrap();
        p1.put(b"p1", Bytes::from_static(b"1")).unwrap();
        let mut p2 = db.begin(Isolation::Serializable);
        p2.get(b"b").unwrap();
        p2.put(b"a", Bytes::from_static(b"p2")).unwrap();
        db.prepare(p1, "p1", "alice", "gnomon").unwrap();
        db.prepare(p2, "p2", "alice", "gnomon").unwrap();
    }
    let db = open(dir.path());
    // X writes b (read by P2) and would commit first: P1 -rw-> P2 -rw-> X with both P
    // uncommitted. The edge between them is not in any record; the conflict-in assumed for
    // each recovered transaction (two of them) makes X fail.
    let mut x = db.begin(Isolation::Serializable);
    x.put(b"b", Bytes::from_static(b"x")).unwrap();
    assert!(is_serialization_failure(x.commit()));
    db.commit_prepared("p1").unwrap();
    db.commit_prepared("p2").unwrap();
    assert_eq!(read(&db, "a").as_deref(), Some("p2"));
}

#[test]
fn row_locks_come_back_in_their_modes_after_restart() {
    use gnomon_mvcc::RowMode;
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        commit_put(&db, "shared", "1");
        commit_put(&db, "updated", "1");
        let mut t = db.begin(Isolation::ReadCommitted);
        t.lock_row(b"shared", RowMode::Share, LockWait::Block)
            .unwrap();
        t.lock_row(b"updated", RowMode::NoKeyUpdate, LockWait::Block)
            .unwrap();
        db.prepare(t, "g", "alice", "gnomon").unwrap();
    }
    let db = open(dir.path());
    let mut other = db.begin(Isolation::ReadCommitted);
    // FOR SHARE is compatible with FOR SHARE, FOR KEY SHARE with FOR NO KEY UPDATE (what a
    // foreign-key check takes), as before the restart...
    other
        .lock_row(b"shared", RowMode::Share, LockWait::NoWait)
        .unwrap();
    other
        .lock_row(b"updated", RowMode::KeyShare, LockWait::NoWait)
        .unwrap();
    // ...and the conflicting modes are still refused.
    assert!(matches!(
        other.lock_row(b"shared", RowMode::Update, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    assert!(matches!(
        other.lock_row(b"updated", RowMode::Share, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    other.rollback();
    db.commit_prepared("g").unwrap();
}
