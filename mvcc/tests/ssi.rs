//! SERIALIZABLE is serializable: scenarios of serializable snapshot isolation (`crate::ssi`).
//! Each test names the anomaly, runs its schedule step by step on one thread, and checks
//! which transaction fails (40001, retryable) and that the others commit.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MvccError, SyncPolicy, Txn};

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

fn read(t: &Txn, k: &str) -> Option<String> {
    t.get(k.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

/// Keys in `[prefix, prefix + 0xff)`, as a predicate read.
fn scan_prefix(t: &Txn, prefix: &str) -> Vec<String> {
    let start = prefix.as_bytes().to_vec();
    let mut end = start.clone();
    end.push(0xff);
    t.scan(Bound::Included(start), Bound::Excluded(end), false)
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect()
}

fn assert_dependency_failure(r: Result<impl std::fmt::Debug, MvccError>) {
    match r {
        Err(e @ MvccError::SerializationDependencies { .. }) => {
            assert!(e.is_retryable());
            assert_eq!(
                e.to_string(),
                "could not serialize access due to read/write dependencies among transactions"
            );
        }
        other => panic!("expected a read/write dependency failure, got {other:?}"),
    }
}

#[test]
fn write_skew_is_aborted_at_serializable() {
    // G2-item: each doctor checks the other is on call and goes off.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("alice", "on"), ("bob", "on")]);
    let mut t1 = db.begin(Isolation::Serializable);
    let mut t2 = db.begin(Isolation::Serializable);
    assert_eq!(read(&t1, "bob").as_deref(), Some("on"));
    assert_eq!(read(&t2, "alice").as_deref(), Some("on"));
    t1.put(b"alice", b("off")).unwrap();
    t2.put(b"bob", b("off")).unwrap();
    t1.commit().unwrap();
    assert_dependency_failure(t2.commit());
    let t = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        (read(&t, "alice").as_deref(), read(&t, "bob").as_deref()),
        (Some("off"), Some("on"))
    );
}

#[test]
fn write_skew_across_a_predicate_is_aborted() {
    // G2 with phantoms: each transaction counts the rows under a prefix and inserts one when it
    // finds fewer than two; serially only one insert could happen.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("shift/1", "alice"), ("other", "x")]);
    let mut t1 = db.begin(Isolation::Serializable);
    let mut t2 = db.begin(Isolation::Serializable);
    assert_eq!(scan_prefix(&t1, "shift/").len(), 1);
    assert_eq!(scan_prefix(&t2, "shift/").len(), 1);
    t1.put(b"shift/2", b("bob")).unwrap();
    t2.put(b"shift/3", b("carol")).unwrap();
    t1.commit().unwrap();
    assert_dependency_failure(t2.commit());
}

#[test]
fn a_read_after_the_conflicting_commit_fails_the_reader() {
    // Write skew where one edge is found on the read side: T1 reads y, writes x and commits;
    // only then does T2 read x (the old version) and write y.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("x", "0"), ("y", "0")]);
    let mut t1 = db.begin(Isolation::Serializable);
    let mut t2 = db.begin(Isolation::Serializable);
    assert_eq!(read(&t1, "y").as_deref(), Some("0"));
    t1.put(b"x", b("1")).unwrap();
    t1.commit().unwrap();
    // T2 -rw-> T1 found on T2's read of x (T1's write is newer than T2's snapshot).
    assert_eq!(read(&t2, "x").as_deref(), Some("0"));
    // T1 -rw-> T2 found at T2's write of y (T1 read it): a cycle with T1 committed first.
    assert_dependency_failure(t2.put(b"y", b("2")));
}

#[test]
fn read_only_anomaly_is_aborted() {
    // Fekete, O'Neil and O'Neil's read-only anomaly (the batch-processing example PostgreSQL's
    // README-SSI uses): a receipt joins the current batch, a batch closes, a report of the
    // closed batch runs. Only the read-only report makes the schedule non-serializable.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("batch", "1")]);
    // T1 (new receipt) reads the current batch number.
    let mut receipt = db.begin(Isolation::Serializable);
    assert_eq!(read(&receipt, "batch").as_deref(), Some("1"));
    // T2 closes batch 1 and commits.
    let mut close = db.begin(Isolation::Serializable);
    assert_eq!(read(&close, "batch").as_deref(), Some("1"));
    close.put(b"batch", b("2")).unwrap();
    close.commit().unwrap();
    // T3 (read-only report) sees batch 2 open, so batch 1 is final; it lists batch 1's
    // receipts: none.
    let report = db.begin(Isolation::Serializable);
    assert_eq!(read(&report, "batch").as_deref(), Some("2"));
    assert!(scan_prefix(&report, "receipt/1/").is_empty());
    report.commit().unwrap();
    // T1 now inserts into batch 1, which the report showed as final and empty.
    // As in PostgreSQL, the insert that completes the structure fails.
    assert_dependency_failure(receipt.put(b"receipt/1/a", b("100")));
}

#[test]
fn read_only_transaction_from_before_the_first_commit_is_no_anomaly() {
    // The same three transactions, but the report takes its snapshot before the batch closes:
    // it serializes first, and nothing needs to fail.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("batch", "1")]);
    let mut receipt = db.begin(Isolation::Serializable);
    assert_eq!(read(&receipt, "batch").as_deref(), Some("1"));
    let report = db.begin(Isolation::Serializable);
    let mut close = db.begin(Isolation::Serializable);
    assert_eq!(read(&close, "batch").as_deref(), Some("1"));
    close.put(b"batch", b("2")).unwrap();
    close.commit().unwrap();
    assert_eq!(read(&report, "batch").as_deref(), Some("1"));
    assert!(scan_prefix(&report, "receipt/1/").is_empty());
    report.commit().unwrap();
    receipt.put(b"receipt/1/a", b("100")).unwrap();
    receipt.commit().unwrap();
}

#[test]
fn disjoint_serializable_transactions_all_commit() {
    // No false positives: concurrent transactions that read and write their own keys (and
    // scan their own ranges) never conflict.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let names: Vec<String> = (0..8).map(|i| format!("acct{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "100")).collect();
    seed(&db, &pairs);
    for round in 0..5 {
        let mut txns: Vec<Txn> = (0..8).map(|_| db.begin(Isolation::Serializable)).collect();
        for (i, t) in txns.iter_mut().enumerate() {
            let key = format!("acct{i}");
            let balance: i64 = read(t, &key).unwrap().parse().unwrap();
            assert_eq!(scan_prefix(t, &format!("log/{i}/")).len(), round);
            t.put(key.as_bytes(), b(&(balance + 1).to_string()))
                .unwrap();
            t.put(format!("log/{i}/{round}").as_bytes(), b("+1"))
                .unwrap();
        }
        // Commit in reverse order of start, so each commit overlaps all the others.
        while let Some(t) = txns.pop() {
            t.commit().unwrap();
        }
    }
    assert_eq!(db.ssi_stats().failures, 0);
}

#[test]
fn rw_dependency_without_a_cycle_commits() {
    // T1 reads x which T2 overwrites: T1 -rw-> T2 only, a serial order exists (T1, T2).
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("x", "0"), ("y", "0")]);
    let mut t1 = db.begin(Isolation::Serializable);
    let mut t2 = db.begin(Isolation::Serializable);
    assert_eq!(read(&t1, "x").as_deref(), Some("0"));
    t2.put(b"x", b("2")).unwrap();
    t2.commit().unwrap();
    t1.put(b"y", b("1")).unwrap();
    t1.commit().unwrap();
    assert!(db.ssi_stats().rw_conflicts >= 1);
}

#[test]
fn only_serializable_transactions_are_tracked() {
    // A REPEATABLE READ transaction in the same write skew is not tracked, as in PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("alice", "on"), ("bob", "on")]);
    let mut t1 = db.begin(Isolation::Serializable);
    let mut t2 = db.begin(Isolation::RepeatableRead);
    assert_eq!(read(&t1, "bob").as_deref(), Some("on"));
    assert_eq!(read(&t2, "alice").as_deref(), Some("on"));
    t1.put(b"alice", b("off")).unwrap();
    t2.put(b"bob", b("off")).unwrap();
    t1.commit().unwrap();
    t2.commit().unwrap();
}

#[test]
fn committed_state_is_kept_only_while_overlapping_transactions_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("x", "0")]);
    let long = db.begin(Isolation::Serializable);
    for i in 0..50 {
        let mut t = db.begin(Isolation::Serializable);
        read(&t, "x");
        t.put(format!("k{i}").as_bytes(), b("v")).unwrap();
        t.commit().unwrap();
    }
    // Every one of them overlaps `long`: kept (their reads may still matter).
    let stats = db.ssi_stats();
    assert_eq!(stats.tracked, 51);
    assert_eq!(stats.retained_committed, 50);
    drop(long);
    let stats = db.ssi_stats();
    assert_eq!(
        (stats.tracked, stats.siread_points, stats.siread_ranges),
        (0, 0, 0)
    );
    // Aborted and read-only transactions leave nothing behind either.
    let t = db.begin(Isolation::Serializable);
    read(&t, "x");
    t.rollback();
    let t = db.begin(Isolation::Serializable);
    scan_prefix(&t, "k");
    t.commit().unwrap();
    assert_eq!(db.ssi_stats().tracked, 0);
}

#[test]
fn serial_retries_of_a_write_skew_loop_keep_the_invariant() {
    // Two threads repeatedly run "if both doctors are on, take mine off; else put mine on",
    // retrying serialization failures. At SERIALIZABLE, at least one doctor is always on.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("d0", "on"), ("d1", "on")]);
    let threads: Vec<_> = (0..2)
        .map(|me| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mine = format!("d{me}");
                let mut failures = 0u32;
                for _ in 0..200 {
                    loop {
                        let mut t = db.begin(Isolation::Serializable);
                        let on = ["d0", "d1"]
                            .iter()
                            .filter(|k| read(&t, k).as_deref() == Some("on"))
                            .count();
                        let value = if on == 2 { "off" } else { "on" };
                        let r = t
                            .put(mine.as_bytes(), b(value))
                            .and_then(|()| t.commit().map(|_| ()));
                        match r {
                            Ok(()) => break,
                            Err(e) if e.is_retryable() => failures += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    let check = db.begin(Isolation::Serializable);
                    let on = ["d0", "d1"]
                        .iter()
                        .filter(|k| read(&check, k).as_deref() == Some("on"))
                        .count();
                    assert!(on >= 1, "both doctors off");
                    check.commit().unwrap();
                }
                failures
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(db.ssi_stats().tracked, 0);
}

#[test]
fn a_reader_between_the_write_and_the_commit_is_found_at_commit() {
    // T2 reads alice after T1 wrote it (not yet committed): the write's early check could not
    // see that read; T1's commit finds it and dooms the pivot T2.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    seed(&db, &[("alice", "on"), ("bob", "on")]);
    let mut t1 = db.begin(Isolation::Serializable);
    let mut t2 = db.begin(Isolation::Serializable);
    assert_eq!(read(&t1, "bob").as_deref(), Some("on"));
    t1.put(b"alice", b("off")).unwrap();
    assert_eq!(read(&t2, "alice").as_deref(), Some("on"));
    t2.put(b"bob", b("off")).unwrap();
    t1.commit().unwrap();
    assert_dependency_failure(t2.commit());
}
