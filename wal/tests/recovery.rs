//! Crash recovery: torn tails are cut, corruption is refused, never skipped.

mod common;

use common::*;
use gnomon_wal::format::{FORMAT_VERSION, SEGMENT_HEADER_LEN};
use gnomon_wal::{Lsn, WalError};

/// Writes records into a fresh log and returns (their lsns, their payloads).
fn write_log(dir: &std::path::Path, segment_size: u64, lens: &[usize]) -> (Vec<Lsn>, Vec<Vec<u8>>) {
    let wal = open_with_segment_size(dir, segment_size).expect("open");
    let payloads: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i, n))
        .collect();
    let lsns = payloads
        .iter()
        .map(|p| wal.append(KIND, p).expect("append"))
        .collect();
    (lsns, payloads)
}

#[test]
fn crash_at_every_byte_of_the_tail_keeps_exactly_the_complete_records() {
    let original = tempfile::tempdir().expect("tempdir");
    // Small segments so the log has several; the cuts sweep all of the last one, header included.
    let lens = [5, 0, 12, 30, 7, 1, 25, 16, 3, 9];
    let segment_size = 120;
    let (lsns, payloads) = write_log(original.path(), segment_size, &lens);
    let paths = segment_paths(original.path());
    assert!(paths.len() >= 3);
    let last = paths.last().expect("a segment").clone();
    let last_name = last.file_name().expect("name").to_owned();
    let last_first: u64 = last_name
        .to_str()
        .and_then(|n| n.strip_suffix(".wal"))
        .and_then(|n| n.parse().ok())
        .expect("numeric name");
    let last_bytes = std::fs::read(&last).expect("read last segment");

    for cut in 0..=last_bytes.len() {
        let dir = tempfile::tempdir().expect("tempdir");
        for path in &paths[..paths.len() - 1] {
            std::fs::copy(path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
        std::fs::write(dir.path().join(&last_name), &last_bytes[..cut]).expect("write cut");

        let wal = open_with_segment_size(dir.path(), segment_size)
            .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        // A record survives iff its whole frame lies before the cut.
        let expected: Vec<Vec<u8>> = lsns
            .iter()
            .zip(&payloads)
            .filter(|(lsn, p)| {
                lsn.0 < last_first
                    || file_offset(last_first, **lsn) + 9 + p.len() as u64 <= cut as u64
            })
            .map(|(_, p)| p.clone())
            .collect();
        let records = replay_all(&wal, Lsn(0));
        assert_eq!(payloads_of(&records), expected, "cut at byte {cut}");

        // The log continues right after the kept prefix, and the new record survives a reopen.
        let expected_end = records
            .last()
            .map(|r| r.lsn.0 + 9 + r.payload.len() as u64)
            .unwrap_or(0)
            .max(last_first);
        assert_eq!(wal.end_lsn(), Lsn(expected_end), "cut at byte {cut}");
        let lsn = wal
            .append(KIND, b"after the crash")
            .expect("append after reopen");
        assert_eq!(lsn, Lsn(expected_end));
        drop(wal);
        let wal = open_with_segment_size(dir.path(), segment_size).expect("second reopen");
        let records = replay_all(&wal, Lsn(0));
        assert_eq!(records.len(), expected.len() + 1, "cut at byte {cut}");
        assert_eq!(
            records.last().map(|r| r.payload.as_slice()),
            Some(&b"after the crash"[..])
        );
    }
}

fn payloads_of(records: &[gnomon_wal::Record]) -> Vec<Vec<u8>> {
    payloads(records)
}

#[test]
fn zero_filled_tail_is_kept_as_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lsns, payloads) = write_log(dir.path(), 1 << 20, &[10, 10, 10]);
    let path = segment_path(dir.path(), 0);
    let len = std::fs::metadata(&path).expect("stat").len();
    // Like a file system that extended the file but never wrote the data.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(len + 4096).expect("extend");
    drop(file);

    let wal = open(dir.path()).expect("open");
    assert_eq!(payloads_of(&replay_all(&wal, Lsn(0))), payloads);
    assert_eq!(wal.end_lsn(), Lsn(lsns[2].0 + 9 + 10));
    // Neither cut nor re-zeroed: the zeros are room the next record is written into.
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), len + 4096);
    wal.append(KIND, b"into the room").expect("append");
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), len + 4096);
    drop(wal);
    let wal = open(dir.path()).expect("reopen");
    assert_eq!(replay_all(&wal, Lsn(0)).len(), 4);
}

#[test]
fn flipped_byte_in_a_middle_record_is_corruption() {
    for (what, delta) in [
        ("payload", 12u64),
        ("length field", 1),
        ("checksum", 5),
        ("type", 8),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lsns, _) = write_log(dir.path(), 1 << 20, &[20, 20, 20, 20, 20]);
        let path = segment_path(dir.path(), 0);
        let damaged = file_offset(0, lsns[2]);
        flip_byte(&path, damaged + delta);
        let evidence = std::fs::read(&path).expect("read segment");

        match open(dir.path()) {
            Err(WalError::Corruption {
                segment, offset, ..
            }) => {
                assert_eq!(segment, path, "{what}");
                assert_eq!(offset, damaged, "{what}");
            }
            other => panic!("flipped {what}: expected corruption, got {other:?}"),
        }
        // Refusing to open must not have truncated or zeroed the evidence.
        assert!(
            std::fs::read(&path).expect("read segment") == evidence,
            "{what}"
        );
    }
}

#[test]
fn flipped_byte_in_the_last_record_drops_it_and_zeroes_its_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lsns, payloads) = write_log(dir.path(), 1 << 20, &[20, 20, 20, 20, 20]);
    let path = segment_path(dir.path(), 0);
    let len = std::fs::metadata(&path).expect("stat").len();
    flip_byte(&path, file_offset(0, lsns[4]) + 15);

    let wal = open(dir.path()).expect("open");
    assert_eq!(payloads_of(&replay_all(&wal, Lsn(0))), payloads[..4]);
    assert_eq!(wal.end_lsn(), lsns[4]);
    // The damaged record's bytes are zeros now (so none can follow a later record); the file
    // keeps its length.
    let bytes = std::fs::read(&path).expect("read segment");
    assert_eq!(bytes.len() as u64, len);
    assert!(bytes[file_offset(0, lsns[4]) as usize..]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn damage_in_a_segment_that_is_not_the_last_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lsns, _) = write_log(dir.path(), 100, &[20; 10]);
    let paths = segment_paths(dir.path());
    assert!(paths.len() >= 3);
    // Damage the last record of the first segment: valid records follow in later segments.
    let second_first: u64 = paths[1]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("numeric name");
    let last_in_first = lsns
        .iter()
        .rfind(|l| l.0 < second_first)
        .copied()
        .expect("a record");
    flip_byte(&paths[0], file_offset(0, last_in_first) + 10);

    match open_with_segment_size(dir.path(), 100) {
        Err(WalError::Corruption {
            segment, offset, ..
        }) => {
            assert_eq!(segment, paths[0]);
            assert_eq!(offset, file_offset(0, last_in_first));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 100, &[20; 10]);
    let paths = segment_paths(dir.path());
    assert!(paths.len() >= 3);
    std::fs::remove_file(&paths[1]).expect("remove");
    assert!(matches!(
        open_with_segment_size(dir.path(), 100),
        Err(WalError::Corruption { .. })
    ));
}

#[test]
fn a_segment_of_an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 1 << 20, &[10]);
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32fast_hash(&bytes[0..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");

    match open(dir.path()) {
        Err(WalError::UnsupportedVersion { found, .. }) => assert_eq!(found, FORMAT_VERSION + 1),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn a_damaged_segment_header_with_records_after_it_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 1 << 20, &[10, 10]);
    let path = segment_path(dir.path(), 0);
    flip_byte(&path, 2);
    assert!(matches!(
        open(dir.path()),
        Err(WalError::Corruption { offset: 0, .. })
    ));
    assert!(std::fs::metadata(&path).expect("stat").len() > SEGMENT_HEADER_LEN as u64);
}

/// CRC-32 as the format uses it (IEEE), computed bit by bit so the test does not depend on
/// the crate's own helper.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
