//! Group commit and failure handling, observed through the fault-injecting file system.

mod common;

use std::sync::Arc;
use std::thread;

use common::*;
use gnomon_wal::{FaultyFs, FileSystem, Lsn, SyncPolicy, Wal, WalError, WalOptions};

fn open_faulty(dir: &std::path::Path) -> (Arc<FaultyFs>, Arc<Wal>) {
    let fs = Arc::new(FaultyFs::new());
    let dyn_fs: Arc<dyn FileSystem> = fs.clone();
    let wal = Wal::open(dyn_fs, dir, WalOptions::default()).expect("open");
    (fs, Arc::new(wal))
}

/// Waits (without any timing assertion) until `done` holds.
fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn concurrent_committers_share_one_fsync_per_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One sync at a time: everybody arriving during it forms the next batch (with more sync
    // slots a second batch would be written and synced meanwhile: tests/sync_pipeline.rs).
    let fs = Arc::new(FaultyFs::new());
    let dyn_fs: Arc<dyn FileSystem> = fs.clone();
    let options = WalOptions {
        max_syncs_in_flight: 1,
        ..WalOptions::default()
    };
    let wal = Arc::new(Wal::open(dyn_fs, dir.path(), options).expect("open"));
    let syncs_at_start = fs.syncs();

    // The first committer's fsync is held, so everyone arriving meanwhile must queue.
    fs.hold_syncs();
    let first = {
        let wal = Arc::clone(&wal);
        thread::spawn(move || wal.append(KIND, &payload(0, 100)))
    };
    wait_until(|| fs.syncs() == syncs_at_start + 1);

    let committers = 32;
    let handles: Vec<_> = (1..=committers)
        .map(|i| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || wal.append(KIND, &payload(i, 100)))
        })
        .collect();
    let one_frame = (9 + 100) as u64;
    wait_until(|| wal.end_lsn() == Lsn(one_frame * (committers as u64 + 1)));
    assert_eq!(
        wal.durable_lsn(),
        Lsn(0),
        "nothing is durable while its fsync is held"
    );
    fs.release_syncs();

    first.join().expect("thread").expect("first commit durable");
    for handle in handles {
        handle.join().expect("thread").expect("commit durable");
    }
    // 33 records, 2 fsyncs: the held one, and one for everybody who queued behind it.
    assert_eq!(fs.syncs() - syncs_at_start, 2);
    assert_eq!(replay_all(&wal, Lsn(0)).len(), committers + 1);
}

#[test]
fn failed_fsync_fails_its_batch_and_poisons_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    let before = wal
        .append(KIND, b"durable before the failure")
        .expect("append");

    fs.hold_syncs();
    let syncs = fs.syncs();
    let failing = wal.submit(KIND, b"in the failing batch".to_vec());
    wait_until(|| fs.syncs() == syncs + 1);
    let queued_behind: Vec<_> = (0..8).map(|i| wal.submit(KIND, payload(i, 10))).collect();
    fs.fail_next_sync();
    fs.release_syncs();

    assert!(matches!(
        failing.wait(),
        Err(WalError::WriteFailed { op: "fsync", .. })
    ));
    for pending in queued_behind {
        assert!(
            pending.wait().is_err(),
            "a record behind a failed fsync was reported durable"
        );
    }
    for _ in 0..3 {
        assert!(matches!(
            wal.append(KIND, b"later"),
            Err(WalError::Poisoned { .. })
        ));
    }
    assert!(wal.durable_lsn() <= Lsn(before.0 + 9 + 26));

    // Reopening re-validates what reached the disk; the acknowledged record is there and the
    // log accepts appends again.
    drop(wal);
    let wal = open(dir.path()).expect("reopen");
    let records = replay_all(&wal, Lsn(0));
    assert_eq!(records[0].payload, b"durable before the failure");
    wal.append(KIND, b"after reopen")
        .expect("append after reopen");
}

#[test]
fn failed_fsync_under_concurrent_load_never_reports_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    fs.fail_next_sync();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || wal.append(KIND, &payload(i, 50)))
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert!(wal.append(KIND, b"later").is_err());
    assert_eq!(wal.durable_lsn(), Lsn(0));
}

#[test]
fn failed_write_fails_the_commit_and_poisons_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    wal.append(KIND, b"ok").expect("append");
    let syncs = fs.syncs();
    fs.fail_next_write();
    assert!(matches!(
        wal.append(KIND, b"lost"),
        Err(WalError::WriteFailed { op: "write", .. })
    ));
    assert_eq!(fs.syncs(), syncs, "no fsync after a failed write");
    assert!(matches!(
        wal.append(KIND, b"later"),
        Err(WalError::Poisoned { .. })
    ));
}

#[test]
fn every_durable_append_was_synced_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    let syncs = fs.syncs();
    for i in 0..5 {
        wal.append(KIND, &payload(i, 10)).expect("append");
        assert_eq!(fs.syncs(), syncs + i as u64 + 1);
    }
}

#[test]
fn sync_off_policy_never_calls_fsync_for_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Arc::new(FaultyFs::new());
    let dyn_fs: Arc<dyn FileSystem> = fs.clone();
    let wal = Wal::open(
        dyn_fs,
        dir.path(),
        WalOptions {
            sync: SyncPolicy::OffUnsafeNoDurability,
            ..WalOptions::default()
        },
    )
    .expect("open");
    let syncs = fs.syncs();
    for i in 0..5 {
        wal.append(KIND, &payload(i, 10)).expect("append");
    }
    assert_eq!(fs.syncs(), syncs);
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 5);
}

#[test]
fn a_committer_woken_by_someone_else_keeps_waiting_until_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    let syncs_at_start = fs.syncs();
    fs.hold_syncs();
    let (tx, rx) = std::sync::mpsc::channel();
    let committer = {
        let wal = Arc::clone(&wal);
        thread::spawn(move || {
            let result = wal.append(KIND, &payload(0, 100));
            // What the log said durable when append returned.
            tx.send(wal.durable_lsn()).expect("send");
            result
        })
    };
    wait_until(|| fs.syncs() == syncs_at_start + 1);
    // Unparks that are not the writer's (the lock manager parks the same threads) must not
    // end the wait: the committer is still in append, its record not yet synced.
    for _ in 0..100 {
        committer.thread().unpark();
        thread::yield_now();
    }
    assert!(
        rx.try_recv().is_err(),
        "append returned while its fsync was held"
    );
    assert_eq!(wal.durable_lsn(), Lsn(0));
    fs.release_syncs();
    let lsn = committer.join().expect("thread").expect("durable");
    assert_eq!(lsn, Lsn(0));
    assert_eq!(rx.recv().expect("durable lsn"), Lsn(9 + 100));
}

#[test]
fn a_committer_that_finds_the_log_idle_syncs_its_own_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    for (i, name) in ["committer-a", "committer-b"].into_iter().enumerate() {
        let wal = Arc::clone(&wal);
        let lsn = thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if i == 0 {
                    wal.append(KIND, &payload(0, 10))
                } else {
                    wal.submit_to_wait(KIND, payload(1, 10)).wait()
                }
            })
            .expect("spawn")
            .join()
            .expect("thread")
            .expect("durable");
        assert_eq!(lsn, Lsn(i as u64 * (9 + 10)));
        // No hand-off to the writer thread: the committer wrote and synced its record.
        assert_eq!(fs.last_sync_thread().as_deref(), Some(name));
    }
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 2);
}

#[test]
fn a_record_submitted_to_wait_but_never_waited_for_is_still_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty(dir.path());
    drop(wal.submit_to_wait(KIND, payload(0, 10)));
    wait_until(|| wal.durable_lsn() == Lsn(9 + 10));
    assert_eq!(fs.last_sync_thread().as_deref(), Some("gnomon-wal-writer"));
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 1);
}
