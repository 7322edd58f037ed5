//! Visibility scenarios: what one transaction sees of another's work at each isolation level.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MvccError, SyncPolicy};

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..DbOptions::default()
    })
    .unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn seed(db: &Arc<Db>, pairs: &[(&str, &str)]) {
    let mut t = db.begin(Isolation::ReadCommitted);
    for (k, v) in pairs {
        t.put(k.as_bytes(), b(v)).unwrap();
    }
    t.commit().unwrap();
}

fn read(t: &gnomon_mvcc::Txn, k: &str) -> Option<String> {
    t.get(k.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[test]
fn no_dirty_reads_at_any_level() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("x", "1")]);
    let mut writer = db.begin(Isolation::ReadCommitted);
    writer.put(b"x", b("2")).unwrap();
    writer.put(b"new", b("n")).unwrap();
    for iso in [Isolation::ReadCommitted, Isolation::RepeatableRead] {
        let reader = db.begin(iso);
        assert_eq!(read(&reader, "x").as_deref(), Some("1"));
        assert_eq!(read(&reader, "new"), None);
        assert_eq!(
            reader
                .scan(
                    std::ops::Bound::Unbounded,
                    std::ops::Bound::Unbounded,
                    false
                )
                .unwrap()
                .len(),
            1
        );
    }
    // The writer sees its own writes, in gets and in scans.
    assert_eq!(read(&writer, "x").as_deref(), Some("2"));
    assert_eq!(
        writer
            .scan(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false
            )
            .unwrap()
            .len(),
        2
    );
    writer.rollback();
    assert_eq!(
        read(&db.begin(Isolation::ReadCommitted), "x").as_deref(),
        Some("1")
    );
}

#[test]
fn repeatable_read_snapshot_is_stable_and_read_committed_moves_per_statement() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("x", "1")]);
    let rr = db.begin(Isolation::RepeatableRead);
    let mut rc = db.begin(Isolation::ReadCommitted);
    assert_eq!(read(&rr, "x").as_deref(), Some("1"));
    seed(&db, &[("x", "2"), ("y", "new")]);
    assert_eq!(read(&rr, "x").as_deref(), Some("1"));
    assert_eq!(read(&rr, "y"), None);
    // Same statement: same snapshot. Next statement: sees the commit.
    assert_eq!(read(&rc, "x").as_deref(), Some("1"));
    rc.new_statement();
    assert_eq!(read(&rc, "x").as_deref(), Some("2"));
    assert_eq!(read(&rc, "y").as_deref(), Some("new"));
}

#[test]
fn a_commit_acknowledged_before_begin_is_always_visible() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for i in 0..200 {
        let mut t = db.begin(Isolation::ReadCommitted);
        t.put(b"k", b(&i.to_string())).unwrap();
        t.commit().unwrap();
        assert_eq!(
            read(&db.begin(Isolation::RepeatableRead), "k"),
            Some(i.to_string())
        );
    }
}

#[test]
fn lost_update_is_prevented_at_repeatable_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("counter", "0")]);
    let mut t1 = db.begin(Isolation::RepeatableRead);
    let mut t2 = db.begin(Isolation::RepeatableRead);
    // Both read 0 and want to write 1.
    assert_eq!(read(&t1, "counter").as_deref(), Some("0"));
    assert_eq!(read(&t2, "counter").as_deref(), Some("0"));
    t1.put(b"counter", b("1")).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let r = t2.put(b"counter", b("1"));
        tx.send(()).unwrap();
        r
    });
    // The second writer waits for the first ...
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    t1.commit().unwrap();
    // ... and fails with a retryable serialization error once the first commits.
    let err = waiter.join().unwrap().unwrap_err();
    assert!(matches!(err, MvccError::Serialization { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[test]
fn read_committed_writer_waits_then_rereads_the_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("counter", "0")]);
    let mut t1 = db.begin(Isolation::ReadCommitted);
    let mut t2 = db.begin(Isolation::ReadCommitted);
    t1.get_for_update(b"counter").unwrap();
    t1.put(b"counter", b("1")).unwrap();
    let waiter = std::thread::spawn(move || {
        let current = t2.get_for_update(b"counter").unwrap().unwrap();
        let n: i64 = std::str::from_utf8(&current).unwrap().parse().unwrap();
        t2.put(b"counter", b(&(n + 1).to_string())).unwrap();
        t2.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(20));
    t1.commit().unwrap();
    waiter.join().unwrap();
    assert_eq!(
        read(&db.begin(Isolation::ReadCommitted), "counter").as_deref(),
        Some("2")
    );
}

#[test]
fn second_writer_goes_on_when_the_first_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("x", "0")]);
    let mut t1 = db.begin(Isolation::RepeatableRead);
    let mut t2 = db.begin(Isolation::RepeatableRead);
    t1.put(b"x", b("t1")).unwrap();
    let waiter = std::thread::spawn(move || {
        t2.put(b"x", b("t2")).unwrap();
        t2.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(20));
    t1.rollback();
    waiter.join().unwrap();
    assert_eq!(
        read(&db.begin(Isolation::ReadCommitted), "x").as_deref(),
        Some("t2")
    );
}

#[test]
fn write_skew_is_allowed_at_repeatable_read() {
    // Two doctors on call; each checks that the other is on call and goes off. Snapshot
    // isolation lets both commit (SERIALIZABLE forbids it: tests/ssi.rs).
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("alice", "on"), ("bob", "on")]);
    let mut t1 = db.begin(Isolation::RepeatableRead);
    let mut t2 = db.begin(Isolation::RepeatableRead);
    assert_eq!(read(&t1, "bob").as_deref(), Some("on"));
    assert_eq!(read(&t2, "alice").as_deref(), Some("on"));
    t1.put(b"alice", b("off")).unwrap();
    t2.put(b"bob", b("off")).unwrap();
    t1.commit().unwrap();
    t2.commit().unwrap();
    let t = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        (read(&t, "alice").as_deref(), read(&t, "bob").as_deref()),
        (Some("off"), Some("off"))
    );
}

#[test]
fn deadlock_victim_is_the_youngest_and_the_older_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("a", "0"), ("b", "0")]);
    let mut older = db.begin(Isolation::ReadCommitted);
    let mut younger = db.begin(Isolation::ReadCommitted);
    older.put(b"a", b("older")).unwrap();
    younger.put(b"b", b("younger")).unwrap();
    let t = std::thread::spawn(move || {
        older.put(b"b", b("older")).unwrap();
        older.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(20));
    let err = younger.put(b"a", b("younger")).unwrap_err();
    assert!(matches!(err, MvccError::Deadlock { .. }), "{err:?}");
    younger.rollback();
    t.join().unwrap();
    let r = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        (read(&r, "a").as_deref(), read(&r, "b").as_deref()),
        (Some("older"), Some("older"))
    );
}

#[test]
fn rollback_to_savepoint_undoes_only_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"a", b("1")).unwrap();
    let sp = t.savepoint();
    t.put(b"a", b("2")).unwrap();
    t.put(b"b", b("2")).unwrap();
    t.rollback_to(sp);
    assert_eq!(read(&t, "a").as_deref(), Some("1"));
    assert_eq!(read(&t, "b"), None);
    t.commit().unwrap();
    let r = db.begin(Isolation::ReadCommitted);
    assert_eq!((read(&r, "a").as_deref(), read(&r, "b")), (Some("1"), None));
}

#[test]
fn scans_merge_own_writes_forward_and_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("a", "1"), ("c", "3"), ("e", "5")]);
    let mut t = db.begin(Isolation::RepeatableRead);
    t.put(b"b", b("2")).unwrap();
    t.delete(b"c").unwrap();
    t.put(b"e", b("five")).unwrap();
    let keys = |rev| {
        t.scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, rev)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(false), ["a=1", "b=2", "e=five"]);
    assert_eq!(keys(true), ["e=five", "b=2", "a=1"]);
}

#[test]
fn committed_state_and_ddl_like_data_survive_reopen_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        seed(&db, &[("a", "1"), ("b", "2")]);
        db.checkpoint().unwrap();
        seed(&db, &[("b", "3"), ("c", "4")]);
        let mut t = db.begin(Isolation::ReadCommitted);
        t.delete(b"a").unwrap();
        t.commit().unwrap();
    }
    let db = open(dir.path());
    let r = db.begin(Isolation::ReadCommitted);
    assert_eq!(read(&r, "a"), None);
    assert_eq!(read(&r, "b").as_deref(), Some("3"));
    assert_eq!(read(&r, "c").as_deref(), Some("4"));
    assert!(db.recovery_stats().checkpoint_lsn > 0);
    assert_eq!(db.recovery_stats().replayed_commits, 2);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _db = open(dir.path());
    let err = Db::open(DbOptions {
        dir: dir.path().to_path_buf(),
        ..DbOptions::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("another"),
        "message should say who holds it: {err}"
    );
}

#[test]
fn hot_row_increments_from_many_writers_are_all_kept() {
    // Every writer waits for the row, reads the newest (possibly not yet durable) version and
    // adds one: with early lock release and one-at-a-time wake-ups, nothing is lost or stuck.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("hot", "0")]);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let mut t = db.begin(Isolation::ReadCommitted);
                    let v = t.get_for_update(b"hot").unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                    t.put(b"hot", b(&(n + 1).to_string())).unwrap();
                    t.commit().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        read(&db.begin(Isolation::ReadCommitted), "hot").as_deref(),
        Some("800")
    );
}

/// A transaction reads its own writes through every way a key enters its write set (the
/// written-key filter in front of the write set must never miss one), and reads committed
/// data for keys it never wrote.
#[test]
fn own_writes_are_read_back_through_every_write_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(
        &db,
        &[
            ("a", "a0"),
            ("b", "b0"),
            ("c", "c0"),
            ("r1", "x"),
            ("r2", "y"),
        ],
    );
    let mut t = db.begin(Isolation::ReadCommitted);
    t.put(b"a", b("a1")).unwrap();
    t.delete(b"b").unwrap();
    assert!(!t.put_unlocked(b"n", b("n1")));
    t.delete_unlocked(b"c").unwrap();
    assert_eq!(read(&t, "a").as_deref(), Some("a1"));
    assert_eq!(read(&t, "b"), None);
    assert_eq!(read(&t, "c"), None);
    assert_eq!(read(&t, "n").as_deref(), Some("n1"));
    assert_eq!(t.get_for_update(b"a").unwrap(), Some(b("a1")));
    assert_eq!(t.get_for_update(b"r1").unwrap(), Some(b("x")));
    // Savepoints: a rolled-back write is gone, the one before it is back.
    let sp = t.savepoint();
    t.put(b"a", b("a2")).unwrap();
    t.put(b"s", b("s1")).unwrap();
    assert_eq!(read(&t, "a").as_deref(), Some("a2"));
    t.rollback_to(sp);
    assert_eq!(read(&t, "a").as_deref(), Some("a1"));
    assert_eq!(read(&t, "s"), None);
    assert_eq!(read(&t, "r2").as_deref(), Some("y"));
    t.commit().unwrap();
    let t = db.begin(Isolation::ReadCommitted);
    assert_eq!(read(&t, "a").as_deref(), Some("a1"));
    assert_eq!(read(&t, "b"), None);
    assert_eq!(read(&t, "n").as_deref(), Some("n1"));
    assert_eq!(read(&t, "s"), None);
}
