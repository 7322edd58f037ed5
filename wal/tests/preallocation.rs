//! Zero-filled room ahead of the write position: commits overwrite zeros that are already on
//! disk (their fdatasync writes no metadata), recovery treats the zeros as the end of the log
//! and keeps them, and rolled segments end exactly at their last record.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use gnomon_wal::format::SEGMENT_HEADER_LEN;
use gnomon_wal::{FaultyFs, FileSystem, Lsn, Wal, WalError, WalOptions};

fn options(segment_size: u64, preallocate: u64) -> WalOptions {
    WalOptions {
        segment_size,
        preallocate,
        ..WalOptions::default()
    }
}

fn open_with(dir: &Path, segment_size: u64, preallocate: u64) -> Wal {
    Wal::open(real_fs(), dir, options(segment_size, preallocate)).expect("open")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Appends `n` records of `len` bytes (record `i` gets `payload(first + i, len)`).
fn append_n(wal: &Wal, first: usize, n: usize, len: usize) -> Vec<Lsn> {
    (first..first + n)
        .map(|i| wal.append(KIND, &payload(i, len)).expect("append"))
        .collect()
}

fn first_lsn_of(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("numeric segment name")
}

#[test]
fn commits_inside_the_room_never_grow_the_file_and_the_writer_extends_it_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Arc::new(FaultyFs::new());
    let dyn_fs: Arc<dyn FileSystem> = fs.clone();
    let wal = Wal::open(dyn_fs, dir.path(), options(1 << 20, 4096)).expect("open");
    let path = segment_path(dir.path(), 0);
    // A fresh log starts with its room: header and zeros, synced at open.
    assert_eq!(file_len(&path), SEGMENT_HEADER_LEN as u64 + 4096);
    let grown_at_open = fs.growing_writes();

    // 100 commits of 109-byte frames: 10.9 KB, more than twice the room.
    append_n(&wal, 0, 100, 100);
    let stats = wal.stats();
    assert!(stats.preallocations >= 2, "{stats:?}");
    assert_eq!(stats.preallocated_bytes, stats.preallocations * 4096);
    // Every write that grew the file was an extension by the writer thread: no commit ever
    // wrote past the synced zeros (a committer arriving while the room is low waits for it).
    assert_eq!(fs.growing_writes() - grown_at_open, stats.preallocations);
    assert_eq!(stats.preallocation_failures, 0);
    assert_eq!(
        file_len(&path),
        SEGMENT_HEADER_LEN as u64 + 4096 * (1 + stats.preallocations)
    );
    assert_eq!(stats.fsyncs, 100, "extension syncs are not commit fsyncs");
    assert_eq!(
        payloads(&replay_all(&wal, Lsn(0))),
        (0..100).map(|i| payload(i, 100)).collect::<Vec<_>>()
    );
}

#[test]
fn records_survive_a_reopen_with_a_preallocated_zero_tail_and_appends_fill_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = segment_path(dir.path(), 0);
    let (lsns, len) = {
        let wal = open_with(dir.path(), 1 << 20, 8192);
        let lsns = append_n(&wal, 0, 10, 30);
        (lsns, file_len(&path))
    };
    assert!(
        len > file_offset(0, lsns[9]) + 39,
        "the log has room at its end"
    );

    let wal = open_with(dir.path(), 1 << 20, 8192);
    assert_eq!(wal.end_lsn(), Lsn(lsns[9].0 + 39));
    assert_eq!(file_len(&path), len, "open keeps the room");
    let more = append_n(&wal, 10, 5, 30);
    assert_eq!(more[0], Lsn(lsns[9].0 + 39));
    assert_eq!(file_len(&path), len, "the new records went into the room");
    drop(wal);

    let wal = open_with(dir.path(), 1 << 20, 8192);
    assert_eq!(
        payloads(&replay_all(&wal, Lsn(0))),
        (0..15).map(|i| payload(i, 30)).collect::<Vec<_>>()
    );
}

#[test]
fn a_torn_record_followed_by_zeros_is_dropped_at_every_cut() {
    let original = tempfile::tempdir().expect("tempdir");
    let path = segment_path(original.path(), 0);
    let lsns = {
        let wal = open_with(original.path(), 1 << 20, 4096);
        append_n(&wal, 0, 3, 40)
    };
    let bytes = std::fs::read(&path).expect("read segment");
    let torn_at = file_offset(0, lsns[2]) as usize;
    let frame_len = 9 + 40;

    // The last record's write reached the disk only up to `cut`: the rest is the room's zeros.
    for cut in 0..frame_len {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut torn = bytes.clone();
        torn[torn_at + cut..torn_at + frame_len].fill(0);
        let path = segment_path(dir.path(), 0);
        std::fs::write(&path, &torn).expect("write torn segment");

        let wal = open_with(dir.path(), 1 << 20, 4096);
        assert_eq!(
            payloads(&replay_all(&wal, Lsn(0))),
            vec![payload(0, 40), payload(1, 40)],
            "cut at {cut}"
        );
        assert_eq!(wal.end_lsn(), lsns[2], "cut at {cut}");
        let on_disk = std::fs::read(&path).expect("read segment");
        assert_eq!(
            on_disk.len(),
            bytes.len(),
            "cut at {cut}: the file keeps its room"
        );
        assert!(
            on_disk[torn_at..].iter().all(|&b| b == 0),
            "cut at {cut}: the torn bytes were zeroed"
        );
        // A shorter record written over the torn one is the end of the log after a reopen.
        assert_eq!(wal.append(KIND, b"short").expect("append"), lsns[2]);
        drop(wal);
        let wal = open_with(dir.path(), 1 << 20, 4096);
        let records = replay_all(&wal, Lsn(0));
        assert_eq!(records.len(), 3, "cut at {cut}");
        assert_eq!(records[2].payload, b"short");
    }
}

#[test]
fn a_crash_in_the_middle_of_an_extension_recovers() {
    // Today's format (no room), then an extension cut short at several lengths: the file is
    // longer by zeros that were never synced, or by a hole, or not longer at all.
    for extra in [0u64, 1, 8, 9, 100, 4095, 70_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = segment_path(dir.path(), 0);
        let lsns = {
            let wal = open_with(dir.path(), 1 << 20, 0);
            append_n(&wal, 0, 4, 25)
        };
        let end = file_offset(0, lsns[3]) + 34;
        assert_eq!(file_len(&path), end, "preallocate 0 leaves no room");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment");
        if extra % 2 == 0 {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&vec![0; extra as usize], end)
                .expect("write zeros");
        } else {
            file.set_len(end + extra).expect("extend with a hole");
        }
        drop(file);

        let wal = open_with(dir.path(), 1 << 20, 4096);
        assert_eq!(wal.end_lsn(), Lsn(lsns[3].0 + 34), "extra {extra}");
        assert_eq!(
            file_len(&path),
            end + extra,
            "extra {extra}: the zeros are kept"
        );
        append_n(&wal, 4, 50, 25);
        drop(wal);
        let wal = open_with(dir.path(), 1 << 20, 4096);
        assert_eq!(
            payloads(&replay_all(&wal, Lsn(0))),
            (0..54).map(|i| payload(i, 25)).collect::<Vec<_>>(),
            "extra {extra}"
        );
    }
}

#[test]
fn a_roll_cuts_the_old_segment_to_its_last_record_and_open_accepts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment_size = 400;
    let wal = open_with(dir.path(), segment_size, 256);
    append_n(&wal, 0, 60, 20);
    let stats = wal.stats();
    assert!(stats.preallocations > 0, "{stats:?}");
    drop(wal);

    let paths = segment_paths(dir.path());
    assert!(paths.len() >= 4, "{} segments", paths.len());
    for pair in paths.windows(2) {
        // A non-final segment holds exactly its frames: its length is the header plus the
        // LSN distance to the next segment, no zeros after its last record.
        let (first, next) = (first_lsn_of(&pair[0]), first_lsn_of(&pair[1]));
        assert_eq!(
            file_len(&pair[0]),
            SEGMENT_HEADER_LEN as u64 + (next - first),
            "{:?}",
            pair[0]
        );
    }
    let wal = open_with(dir.path(), segment_size, 256);
    assert_eq!(
        payloads(&replay_all(&wal, Lsn(0))),
        (0..60).map(|i| payload(i, 20)).collect::<Vec<_>>()
    );
    // The same log opens with preallocation off too (a build without it reads it).
    drop(wal);
    let wal = open_with(dir.path(), segment_size, 0);
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 60);
}

#[test]
fn a_log_written_without_room_opens_and_gets_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = open_with(dir.path(), 300, 0);
        append_n(&wal, 0, 30, 20);
    }
    let paths = segment_paths(dir.path());
    let last = paths.last().expect("a segment").clone();
    let last_len = file_len(&last);

    let wal = open_with(dir.path(), 300, 4096);
    assert_eq!(file_len(&last), last_len, "open adds nothing by itself");
    append_n(&wal, 30, 30, 20);
    assert!(wal.stats().preallocations > 0);
    drop(wal);
    let wal = open_with(dir.path(), 300, 4096);
    assert_eq!(
        payloads(&replay_all(&wal, Lsn(0))),
        (0..60).map(|i| payload(i, 20)).collect::<Vec<_>>()
    );
}

#[test]
fn a_valid_record_inside_the_room_is_corruption_not_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = segment_path(dir.path(), 0);
    let lsns = {
        let wal = open_with(dir.path(), 1 << 20, 4096);
        append_n(&wal, 0, 3, 20)
    };
    let end = file_offset(0, lsns[2]) + 29;
    // A valid frame far into the zeros, with zeros (not a torn record) before it.
    let stray = gnomon_wal::format::encode_record(KIND.0, b"stray");
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment");
        file.write_all_at(&stray, end + 1000).expect("write stray");
    }
    let evidence = std::fs::read(&path).expect("read");
    match Wal::open(real_fs(), dir.path(), options(1 << 20, 4096)) {
        Err(WalError::Corruption { offset, .. }) => assert_eq!(offset, end),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(
        std::fs::read(&path).expect("read") == evidence,
        "nothing changed"
    );
}

#[test]
fn a_failed_extension_turns_preallocation_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Arc::new(FaultyFs::new());
    let dyn_fs: Arc<dyn FileSystem> = fs.clone();
    let wal = Wal::open(dyn_fs, dir.path(), options(1 << 20, 1024)).expect("open");
    // Inside the room no write grows the file, so the first growing write is the extension.
    fs.fail_next_growing_write();
    append_n(&wal, 0, 40, 100);
    let stats = wal.stats();
    assert_eq!(stats.preallocation_failures, 1, "{stats:?}");
    assert_eq!(stats.preallocations, 0);
    assert_eq!(stats.records, 40, "every commit was durable");
    drop(wal);
    let wal = open_with(dir.path(), 1 << 20, 1024);
    assert_eq!(
        payloads(&replay_all(&wal, Lsn(0))),
        (0..40).map(|i| payload(i, 100)).collect::<Vec<_>>()
    );
}
