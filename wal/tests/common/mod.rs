//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gnomon_wal::format::{segment_file_name, SEGMENT_HEADER_LEN};
use gnomon_wal::{FileSystem, Lsn, RealFs, Record, RecordKind, Wal, WalError, WalOptions};

pub const KIND: RecordKind = RecordKind(7);

pub fn real_fs() -> Arc<dyn FileSystem> {
    Arc::new(RealFs)
}

pub fn open(dir: &Path) -> Result<Wal, WalError> {
    Wal::open(real_fs(), dir, WalOptions::default())
}

pub fn open_with_segment_size(dir: &Path, segment_size: u64) -> Result<Wal, WalError> {
    Wal::open(
        real_fs(),
        dir,
        WalOptions {
            segment_size,
            ..WalOptions::default()
        },
    )
}

/// A payload that differs per record and per length, so a misplaced byte is noticed.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7 + 1) as u8).collect()
}

pub fn replay_all(wal: &Wal, from: Lsn) -> Vec<Record> {
    wal.replay(from)
        .expect("replay starts")
        .collect::<Result<Vec<_>, _>>()
        .expect("replay reads every record")
}

pub fn payloads(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.clone()).collect()
}

/// Segment files of `dir`, oldest first.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read log dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    paths.sort();
    paths
}

/// The file offset of the record at `lsn` inside the segment starting at `first_lsn`.
pub fn file_offset(first_lsn: u64, lsn: Lsn) -> u64 {
    SEGMENT_HEADER_LEN as u64 + (lsn.0 - first_lsn)
}

pub fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(segment_file_name(first_lsn))
}

pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read segment");
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).expect("write segment");
}
