//! Overlapped commit syncs (`WalOptions::max_syncs_in_flight`): a batch is written while the
//! previous one syncs, a sync publishes every batch written before it started, and a failed
//! sync leaves nothing after it reported durable. Observed through the fault-injecting file
//! system, which numbers, holds, releases and fails syncs one by one.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::thread;

use common::*;
use gnomon_wal::{FaultyFs, FileSystem, Lsn, Wal, WalError, WalOptions};

fn open_faulty_with(dir: &Path, options: WalOptions) -> (Arc<FaultyFs>, Arc<Wal>) {
    let fs = Arc::new(FaultyFs::new());
    let dyn_fs: Arc<dyn FileSystem> = fs.clone();
    let wal = Wal::open(dyn_fs, dir, options).expect("open");
    (fs, Arc::new(wal))
}

fn syncs_in_flight(max: usize) -> WalOptions {
    WalOptions {
        max_syncs_in_flight: max,
        ..WalOptions::default()
    }
}

/// Waits (without any timing assertion) until `done` holds.
fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Lets other threads run for a while (no assertion on how long anything takes).
fn let_others_run() {
    for _ in 0..20 {
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

const FRAME: u64 = 9 + 100;

/// Spawns a committer that appends `payload(i, 100)` and leads its own batch.
fn spawn_committer(wal: &Arc<Wal>, i: usize) -> thread::JoinHandle<Result<Lsn, WalError>> {
    let wal = Arc::clone(wal);
    thread::spawn(move || wal.append(KIND, &payload(i, 100)))
}

#[test]
fn a_batch_is_written_and_synced_while_the_previous_one_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty_with(dir.path(), syncs_in_flight(2));
    let at_start = fs.syncs();
    fs.hold_syncs();

    let first = spawn_committer(&wal, 0);
    wait_until(|| fs.held_syncs().len() == 1);
    // The first batch is written and its sync is in flight: the next committer takes the
    // second slot, writes its batch and syncs it too.
    let second = spawn_committer(&wal, 1);
    wait_until(|| fs.held_syncs().len() == 2);
    assert_eq!(fs.syncs(), at_start + 2);

    // Both slots busy: everybody arriving now queues for the third batch.
    let committers = 16;
    let rest: Vec<_> = (2..2 + committers)
        .map(|i| spawn_committer(&wal, i))
        .collect();
    wait_until(|| wal.end_lsn() == Lsn(FRAME * (committers as u64 + 2)));
    let_others_run();
    assert_eq!(
        fs.syncs(),
        at_start + 2,
        "no third sync while both are held"
    );
    assert_eq!(
        wal.durable_lsn(),
        Lsn(0),
        "nothing durable while its sync is held"
    );

    fs.release_syncs();
    let mut lsns = vec![
        first.join().expect("thread").expect("durable"),
        second.join().expect("thread").expect("durable"),
    ];
    for handle in rest {
        lsns.push(handle.join().expect("thread").expect("durable"));
    }
    lsns.sort();
    assert_eq!(
        lsns,
        (0..committers as u64 + 2)
            .map(|i| Lsn(i * FRAME))
            .collect::<Vec<_>>()
    );
    // Two overlapped syncs, then one for the batch that queued behind them.
    assert_eq!(fs.syncs(), at_start + 3);
    let stats = wal.stats();
    assert_eq!(stats.fsyncs, 3);
    assert!(stats.overlapped_syncs >= 1, "{stats:?}");
    assert_eq!(replay_all(&wal, Lsn(0)).len(), committers + 2);
}

#[test]
fn one_sync_in_flight_never_overlaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty_with(dir.path(), syncs_in_flight(1));
    fs.hold_syncs();
    let first = spawn_committer(&wal, 0);
    wait_until(|| fs.held_syncs().len() == 1);
    let second = spawn_committer(&wal, 1);
    wait_until(|| wal.end_lsn() == Lsn(2 * FRAME));
    let_others_run();
    assert_eq!(
        fs.held_syncs().len(),
        1,
        "the second batch waits for the slot"
    );
    fs.release_syncs();
    first.join().expect("thread").expect("durable");
    second.join().expect("thread").expect("durable");
    assert_eq!(wal.stats().overlapped_syncs, 0);
}

#[test]
fn a_later_sync_that_returns_first_makes_the_earlier_batch_durable_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty_with(dir.path(), syncs_in_flight(2));
    fs.hold_syncs();
    // Written and synced in the background by the writer thread: its sync stays held.
    let earlier = wal.submit(KIND, payload(0, 100));
    wait_until(|| fs.held_syncs().len() == 1);
    let earlier_sync = fs.held_syncs()[0];
    let later = spawn_committer(&wal, 1);
    wait_until(|| fs.held_syncs().len() == 2);
    let later_sync = fs.held_syncs()[1];

    // The later sync started after the earlier batch's write returned: when it returns Ok,
    // both batches are durable, while the earlier batch's own sync is still held.
    fs.release_sync_number(later_sync);
    assert_eq!(later.join().expect("thread").expect("durable"), Lsn(FRAME));
    assert_eq!(earlier.wait().expect("durable"), Lsn(0));
    assert_eq!(wal.durable_lsn(), Lsn(2 * FRAME));
    assert_eq!(fs.held_syncs(), vec![earlier_sync]);

    // The slower, earlier sync publishes nothing new when it returns.
    fs.release_syncs();
    wal.append(KIND, &payload(2, 100)).expect("append");
    assert_eq!(
        payloads(&replay_all(&wal, Lsn(0))),
        (0..3).map(|i| payload(i, 100)).collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_sync_fails_its_batch_and_the_batch_syncing_behind_it_is_never_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty_with(dir.path(), syncs_in_flight(2));
    wal.append(KIND, b"durable before the failure")
        .expect("append");
    let durable_before = wal.durable_lsn();

    fs.hold_syncs();
    let earlier = wal.submit(KIND, payload(0, 100));
    wait_until(|| fs.held_syncs().len() == 1);
    let earlier_sync = fs.held_syncs()[0];
    let later = spawn_committer(&wal, 1);
    wait_until(|| fs.held_syncs().len() == 2);
    let later_sync = fs.held_syncs()[1];

    fs.fail_sync_number(earlier_sync);
    fs.release_sync_number(earlier_sync);
    assert!(matches!(
        earlier.wait(),
        Err(WalError::WriteFailed { op: "fsync", .. })
    ));
    // The later sync then succeeds, but after a failure nothing more is published.
    fs.release_sync_number(later_sync);
    assert!(matches!(
        later.join().expect("thread"),
        Err(WalError::Poisoned { op: "fsync", .. })
    ));
    assert_eq!(wal.durable_lsn(), durable_before);
    fs.release_syncs();
    assert!(matches!(
        wal.append(KIND, b"later"),
        Err(WalError::Poisoned { .. })
    ));

    // Reopening re-validates what reached the disk; the acknowledged record is there.
    drop(wal);
    let wal = open(dir.path()).expect("reopen");
    assert_eq!(
        replay_all(&wal, Lsn(0))[0].payload,
        b"durable before the failure"
    );
    wal.append(KIND, b"after reopen")
        .expect("append after reopen");
}

#[test]
fn after_a_later_sync_failed_the_earlier_batch_is_not_reported_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fs, wal) = open_faulty_with(dir.path(), syncs_in_flight(2));
    fs.hold_syncs();
    let earlier = wal.submit(KIND, payload(0, 100));
    wait_until(|| fs.held_syncs().len() == 1);
    let later = spawn_committer(&wal, 1);
    wait_until(|| fs.held_syncs().len() == 2);
    let later_sync = fs.held_syncs()[1];

    fs.fail_sync_number(later_sync);
    fs.release_sync_number(later_sync);
    assert!(matches!(
        later.join().expect("thread"),
        Err(WalError::WriteFailed { op: "fsync", .. })
    ));
    // The earlier batch's own sync is still held: it is told at once that it is not known
    // durable, and its sync returning Ok later changes nothing.
    assert!(matches!(earlier.wait(), Err(WalError::Poisoned { .. })));
    fs.release_syncs();
    assert!(wal.append(KIND, b"later").is_err());
    assert_eq!(wal.durable_lsn(), Lsn(0));
}

/// Many committers, small segments and a small room (rolls and extensions under load): every
/// record acknowledged is synced by then (per the file system's model), and after a reopen
/// the log holds exactly the acknowledged records at their LSNs.
fn acknowledged_records_are_synced_and_survive_a_reopen(max_syncs_in_flight: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WalOptions {
        segment_size: 64 * 1024,
        preallocate: 8 * 1024,
        max_syncs_in_flight,
        ..WalOptions::default()
    };
    let (fs, wal) = open_faulty_with(dir.path(), options.clone());
    let (threads, per_thread, len) = (8, 60, 200);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (fs, wal) = (Arc::clone(&fs), Arc::clone(&wal));
            let log_dir = dir.path().to_path_buf();
            thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for n in 0..per_thread {
                    let i = t * per_thread + n;
                    let lsn = wal.append(KIND, &payload(i, len)).expect("append");
                    let end = lsn.0 + 9 + len as u64;
                    assert!(wal.durable_lsn().0 >= end, "acknowledged above durable_lsn");
                    // The record's segment: the last one starting at or before it.
                    let first = segment_paths(&log_dir)
                        .iter()
                        .filter_map(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
                        .filter(|&first| first <= lsn.0)
                        .max()
                        .expect("a segment holds the record");
                    assert!(
                        fs.is_synced(
                            &segment_path(&log_dir, first),
                            file_offset(first, lsn),
                            9 + len as u64
                        ),
                        "record at {lsn} acknowledged before a sync covered it"
                    );
                    acknowledged.push((lsn, i));
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged: Vec<(Lsn, usize)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    acknowledged.sort();
    let stats = wal.stats();
    assert!(stats.preallocations > 0, "{stats:?}");
    assert!(wal.segment_count() > 1, "the log rolled");
    if max_syncs_in_flight == 1 {
        assert_eq!(stats.overlapped_syncs, 0);
    }
    drop(wal);

    let wal = Wal::open(real_fs(), dir.path(), options).expect("reopen");
    let records = replay_all(&wal, Lsn(0));
    assert_eq!(records.len(), threads * per_thread);
    for (record, (lsn, i)) in records.iter().zip(&acknowledged) {
        assert_eq!(record.lsn, *lsn);
        assert_eq!(record.payload, payload(*i, len));
    }
}

#[test]
fn acknowledged_records_are_synced_and_survive_a_reopen_with_one_sync_in_flight() {
    acknowledged_records_are_synced_and_survive_a_reopen(1);
}

#[test]
fn acknowledged_records_are_synced_and_survive_a_reopen_with_two_syncs_in_flight() {
    acknowledged_records_are_synced_and_survive_a_reopen(2);
}

#[test]
fn acknowledged_records_are_synced_and_survive_a_reopen_with_four_syncs_in_flight() {
    acknowledged_records_are_synced_and_survive_a_reopen(4);
}

#[test]
fn a_roll_waits_for_the_syncs_in_flight_and_syncs_on_the_new_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for three 109-byte frames after the 32-byte header: the fourth rolls.
    let options = WalOptions {
        segment_size: 32 + 3 * FRAME,
        preallocate: 0,
        max_syncs_in_flight: 2,
        ..WalOptions::default()
    };
    let (fs, wal) = open_faulty_with(dir.path(), options);
    for i in 0..2 {
        wal.append(KIND, &payload(i, 100)).expect("append");
    }
    fs.hold_syncs();
    let third = wal.submit(KIND, payload(2, 100));
    wait_until(|| fs.held_syncs().len() == 1);
    // The fourth record needs a new segment: its writer waits for the sync in flight
    // before it cuts the old segment or creates the new one.
    let fourth = spawn_committer(&wal, 3);
    wait_until(|| wal.end_lsn() == Lsn(4 * FRAME));
    let_others_run();
    assert_eq!(fs.held_syncs().len(), 1);
    assert_eq!(
        segment_paths(dir.path()).len(),
        1,
        "no roll while a sync is in flight"
    );

    fs.release_syncs();
    assert_eq!(third.wait().expect("durable"), Lsn(2 * FRAME));
    assert_eq!(
        fourth.join().expect("thread").expect("durable"),
        Lsn(3 * FRAME)
    );
    assert_eq!(segment_paths(dir.path()).len(), 2);
    // The new segment's records are synced through the reopened slot files too.
    let more: Vec<_> = (4..8).map(|i| spawn_committer(&wal, i)).collect();
    for handle in more {
        let lsn = handle.join().expect("thread").expect("durable");
        // Segments hold three records each: [3, 6) and [6, 9) in frames.
        let first = lsn.0 / (3 * FRAME) * (3 * FRAME);
        let segment = segment_path(dir.path(), first);
        assert!(
            fs.is_synced(&segment, file_offset(first, lsn), FRAME),
            "{lsn}"
        );
    }
    drop(wal);
    let wal = open_faulty_with(dir.path(), WalOptions::default()).1;
    let mut replayed = payloads(&replay_all(&wal, Lsn(0)));
    // The last four committers ran at once, in any order.
    replayed[4..].sort();
    let mut expected: Vec<_> = (0..8).map(|i| payload(i, 100)).collect();
    expected[4..].sort();
    assert_eq!(replayed, expected);
}

#[test]
fn an_extension_waits_for_the_syncs_in_flight_and_no_commit_grows_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The room (4 KiB) runs low with the 19th frame of 109 bytes (less than 2 KiB left).
    let options = WalOptions {
        segment_size: 1 << 20,
        preallocate: 4096,
        max_syncs_in_flight: 2,
        ..WalOptions::default()
    };
    let (fs, wal) = open_faulty_with(dir.path(), options);
    let grown_at_open = fs.growing_writes();
    for i in 0..17 {
        wal.append(KIND, &payload(i, 100)).expect("append");
    }
    assert_eq!(wal.stats().preallocations, 0);
    fs.hold_syncs();
    let earlier = wal.submit(KIND, payload(17, 100));
    wait_until(|| fs.held_syncs().len() == 1);
    let later = spawn_committer(&wal, 18);
    wait_until(|| fs.held_syncs().len() == 2);
    // The room is low now, but the extension waits for both syncs; so does the next batch.
    let writes = fs.writes();
    let next = spawn_committer(&wal, 19);
    wait_until(|| wal.end_lsn() == Lsn(20 * FRAME));
    let_others_run();
    assert_eq!(
        fs.writes(),
        writes,
        "nothing written while the extension waits"
    );
    assert_eq!(wal.stats().preallocations, 0);

    fs.release_syncs();
    earlier.wait().expect("durable");
    later.join().expect("thread").expect("durable");
    next.join().expect("thread").expect("durable");
    let stats = wal.stats();
    assert_eq!(stats.preallocations, 1, "{stats:?}");
    assert_eq!(fs.growing_writes() - grown_at_open, stats.preallocations);

    // Under load: every write that grew the file was an extension.
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                for n in 0..40 {
                    wal.append(KIND, &payload(100 + t * 40 + n, 100))
                        .expect("append");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let stats = wal.stats();
    assert!(stats.preallocations > 1, "{stats:?}");
    assert_eq!(fs.growing_writes() - grown_at_open, stats.preallocations);
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 20 + 320);
}
