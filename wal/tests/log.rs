//! Appending, replaying, rolling, reopening and removing segments.

mod common;

use common::*;
use gnomon_wal::format::RECORD_HEADER_LEN;
use gnomon_wal::{Lsn, RecordKind, WalError};

#[test]
fn appended_records_replay_in_order_with_their_lsns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path()).expect("open");
    assert_eq!(wal.end_lsn(), Lsn(0));

    let mut lsns = Vec::new();
    for i in 0..10 {
        lsns.push(
            wal.append(RecordKind(1 + i as u8), &payload(i, i * 3))
                .expect("append"),
        );
    }
    // LSNs are dense byte offsets: each frame is 9 header bytes plus its payload.
    assert_eq!(lsns[0], Lsn(0));
    for i in 1..10 {
        assert_eq!(
            lsns[i].0,
            lsns[i - 1].0 + (RECORD_HEADER_LEN + (i - 1) * 3) as u64
        );
    }

    let records = replay_all(&wal, Lsn(0));
    assert_eq!(records.len(), 10);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.lsn, lsns[i]);
        assert_eq!(record.kind, RecordKind(1 + i as u8));
        assert_eq!(record.payload, payload(i, i * 3));
    }
    assert_eq!(wal.end_lsn(), wal.durable_lsn());
}

#[test]
fn replay_from_an_lsn_yields_that_record_and_everything_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path()).expect("open");
    let lsns: Vec<Lsn> = (0..6)
        .map(|i| wal.append(KIND, &payload(i, 10)).expect("append"))
        .collect();

    let from_third = replay_all(&wal, lsns[3]);
    assert_eq!(
        from_third.iter().map(|r| r.lsn).collect::<Vec<_>>(),
        lsns[3..]
    );

    // An LSN inside a record starts at the next record boundary.
    let from_inside = replay_all(&wal, Lsn(lsns[3].0 + 1));
    assert_eq!(
        from_inside.iter().map(|r| r.lsn).collect::<Vec<_>>(),
        lsns[4..]
    );

    assert!(replay_all(&wal, wal.end_lsn()).is_empty());
}

#[test]
fn segments_roll_at_the_configured_size_and_replay_crosses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open_with_segment_size(dir.path(), 200).expect("open");
    let lsns: Vec<Lsn> = (0..40)
        .map(|i| wal.append(KIND, &payload(i, 20)).expect("append"))
        .collect();

    let paths = segment_paths(dir.path());
    assert!(
        paths.len() > 5,
        "expected several segments, got {}",
        paths.len()
    );
    for path in &paths {
        let len = std::fs::metadata(path).expect("stat").len();
        assert!(len <= 200, "{path:?} is {len} bytes");
    }
    // Each segment is named by the LSN of its first record.
    let first_lsns: Vec<u64> = paths
        .iter()
        .map(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("numeric name")
        })
        .collect();
    assert_eq!(first_lsns[0], 0);
    for first in &first_lsns[1..] {
        assert!(
            lsns.contains(&Lsn(*first)),
            "segment {first} starts mid-record"
        );
    }

    let records = replay_all(&wal, Lsn(0));
    assert_eq!(
        payloads(&records),
        (0..40).map(|i| payload(i, 20)).collect::<Vec<_>>()
    );
    let tail = replay_all(&wal, lsns[25]);
    assert_eq!(tail.iter().map(|r| r.lsn).collect::<Vec<_>>(), lsns[25..]);
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open_with_segment_size(dir.path(), 100).expect("open");
    wal.append(KIND, &payload(0, 10)).expect("append small");
    wal.append(KIND, &payload(1, 500)).expect("append big");
    wal.append(KIND, &payload(2, 10)).expect("append small");
    let records = replay_all(&wal, Lsn(0));
    assert_eq!(
        payloads(&records),
        vec![payload(0, 10), payload(1, 500), payload(2, 10)]
    );
    assert_eq!(segment_paths(dir.path()).len(), 3);
}

#[test]
fn reopen_continues_at_the_end_of_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let end = {
        let wal = open_with_segment_size(dir.path(), 150).expect("open");
        for i in 0..12 {
            wal.append(KIND, &payload(i, 15)).expect("append");
        }
        wal.end_lsn()
    };
    let wal = open_with_segment_size(dir.path(), 150).expect("reopen");
    assert_eq!(wal.end_lsn(), end);
    assert_eq!(wal.append(KIND, &payload(12, 15)).expect("append"), end);
    drop(wal);

    let wal = open_with_segment_size(dir.path(), 150).expect("reopen again");
    let records = replay_all(&wal, Lsn(0));
    assert_eq!(
        payloads(&records),
        (0..13).map(|i| payload(i, 15)).collect::<Vec<_>>()
    );
}

#[test]
fn submit_returns_at_once_and_wait_reports_durability_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path()).expect("open");
    let pendings: Vec<_> = (0..20).map(|i| wal.submit(KIND, payload(i, 8))).collect();
    let lsns: Vec<Lsn> = pendings.iter().map(|p| p.lsn().expect("queued")).collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]));
    for (pending, lsn) in pendings.into_iter().zip(&lsns) {
        assert_eq!(pending.wait().expect("durable"), *lsn);
    }
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 20);
}

#[test]
fn kind_zero_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path()).expect("open");
    assert!(matches!(
        wal.append(RecordKind(0), b"x"),
        Err(WalError::InvalidKind)
    ));
    // The log is not poisoned by a refused record.
    wal.append(KIND, b"x").expect("append");
}

#[test]
fn remove_segments_before_deletes_only_segments_wholly_before_the_lsn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open_with_segment_size(dir.path(), 120).expect("open");
    let lsns: Vec<Lsn> = (0..30)
        .map(|i| wal.append(KIND, &payload(i, 20)).expect("append"))
        .collect();
    let before = segment_paths(dir.path());
    assert!(before.len() >= 4);

    // Nothing lies wholly before LSN 0.
    assert_eq!(wal.remove_segments_before(Lsn(0)).expect("remove"), 0);
    assert_eq!(wal.start_lsn(), Lsn(0));

    // Cut in the middle of the log: every record at or after the cut must survive.
    let cut = lsns[15];
    let removed = wal.remove_segments_before(cut).expect("remove");
    assert!(removed > 0);
    let after = segment_paths(dir.path());
    assert_eq!(after.len(), before.len() - removed);
    assert_eq!(wal.segment_count(), after.len());
    let records = replay_all(&wal, cut);
    assert_eq!(records.first().map(|r| r.lsn), Some(cut));
    assert_eq!(records.len(), 15);
    // The log now starts at or before the cut, after the first record: nothing earlier is
    // replayable, and start_lsn says so.
    let start = wal.start_lsn();
    assert!(lsns[0] < start && start <= cut, "{start:?} vs cut {cut:?}");
    assert_eq!(replay_all(&wal, Lsn(0)).first().map(|r| r.lsn), Some(start));

    // Even past the end, the active segment stays and appends continue.
    wal.remove_segments_before(Lsn(u64::MAX))
        .expect("remove all");
    assert_eq!(segment_paths(dir.path()).len(), 1);
    let next = wal.append(KIND, b"after").expect("append");
    drop(wal);

    let wal = open_with_segment_size(dir.path(), 120).expect("reopen");
    let records = replay_all(&wal, Lsn(0));
    assert_eq!(records.last().map(|r| r.lsn), Some(next));
}

#[test]
fn wal_and_pending_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<gnomon_wal::Wal>();
    assert_send::<gnomon_wal::Pending>();
    assert_send::<gnomon_wal::Replay>();
}

#[test]
fn replay_during_appends_sees_every_record_durable_when_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = std::sync::Arc::new(open_with_segment_size(dir.path(), 300).expect("open"));
    for i in 0..20 {
        wal.append(KIND, &payload(i, 20)).expect("append");
    }
    let durable = wal.durable_lsn();
    let writer = {
        let wal = std::sync::Arc::clone(&wal);
        std::thread::spawn(move || {
            for i in 20..60 {
                wal.append(KIND, &payload(i, 20)).expect("append");
            }
        })
    };
    let records = replay_all(&wal, Lsn(0));
    writer.join().expect("writer");
    assert!(records.len() >= 20);
    assert_eq!(
        payloads(&records),
        (0..records.len())
            .map(|i| payload(i, 20))
            .collect::<Vec<_>>()
    );
    assert!(records.iter().all(|r| r.lsn < wal.end_lsn()));
    assert!(records.last().map(|r| r.lsn) >= Some(Lsn(durable.0 - 29)));
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 60);
}
