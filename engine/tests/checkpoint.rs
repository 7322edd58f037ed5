//! Checkpoints: roundtrip through reopen, concurrency, corruption fallback, file lifecycle.

use std::fs;
use std::ops::Bound::Unbounded;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use gnomon_engine::{Engine, EngineError, EngineOptions, Version};

fn opts() -> EngineOptions {
    EngineOptions {
        checkpoint_block_size: 256,
        fsync: true,
        ..EngineOptions::default()
    }
}

fn open(dir: &Path) -> (Engine, u64) {
    Engine::open(dir, opts()).unwrap_or_else(|e| panic!("open failed: {e}"))
}

fn put(engine: &Engine, version: u128, writes: Vec<(String, Option<String>)>) {
    let ticket = engine.prepare_batch(Version(version)).unwrap();
    engine.apply_batch(
        ticket,
        writes
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.map(Bytes::from)))
            .collect(),
    );
}

fn checkpoint_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    files
}

fn all(engine: &Engine, at: Version) -> Vec<(String, String)> {
    engine
        .scan(Unbounded, Unbounded, at, false)
        .map(|(k, v)| {
            (
                String::from_utf8(k).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn empty_directory_opens_with_lsn_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 0);
    assert_eq!(engine.visible(), Version(0));
    assert!(engine.recovery_report().checkpoint.is_none());
}

#[test]
fn checkpoint_survives_reopen_with_versions_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (engine, _) = open(dir.path());
        for v in 1..=5u128 {
            let writes = (0..100)
                .map(|i| (format!("k{i:03}"), Some(format!("v{v}-{i}"))))
                .collect();
            put(&engine, v, writes);
        }
        put(&engine, 6, vec![("k007".into(), None)]);
        let info = engine.checkpoint(4242).unwrap();
        assert_eq!(info.wal_lsn, 4242);
        assert_eq!(info.entries, 501);
        assert!(info.blocks > 1);
    }
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 4242);
    assert_eq!(engine.visible(), Version(6), "recovered data is visible");
    assert_eq!(engine.max_prepared(), Version(6));
    assert!(engine.prepare_batch(Version(6)).is_err());
    assert_eq!(
        engine.get(b"k042", Version(3)).as_deref(),
        Some(&b"v3-42"[..])
    );
    assert_eq!(
        engine.get(b"k007", Version(5)).as_deref(),
        Some(&b"v5-7"[..])
    );
    assert_eq!(engine.get(b"k007", Version(6)), None);
    assert_eq!(engine.latest_version(b"k007"), Some(Version(6)));
    assert_eq!(all(&engine, Version(6)).len(), 99);
    assert_eq!(all(&engine, Version(1)).len(), 100);
}

#[test]
fn new_checkpoint_replaces_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    put(&engine, 1, vec![("a".into(), Some("1".into()))]);
    engine.checkpoint(10).unwrap();
    let first = checkpoint_files(dir.path());
    assert_eq!(first.len(), 1);
    put(&engine, 2, vec![("b".into(), Some("2".into()))]);
    let info = engine.checkpoint(20).unwrap();
    assert_eq!(info.files_removed, 1);
    assert_eq!(checkpoint_files(dir.path()), vec![info.path.clone()]);
    assert_eq!(
        info.entries, 2,
        "the new file holds the old checkpoint's data too"
    );
    drop(engine);
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 20);
    assert_eq!(
        all(&engine, Version::MAX),
        [("a".into(), "1".into()), ("b".into(), "2".into())]
    );
}

/// Writes a checkpoint at lsn 10 holding a=old, then one at lsn 20 holding a=new, keeping a
/// copy of the first file so both are on disk; returns the two paths (older, newer).
fn two_checkpoints(dir: &Path) -> (PathBuf, PathBuf) {
    let (engine, _) = open(dir);
    put(&engine, 1, vec![("a".into(), Some("old".into()))]);
    let older = engine.checkpoint(10).unwrap().path;
    let saved = fs::read(&older).unwrap();
    put(&engine, 2, vec![("a".into(), Some("new".into()))]);
    let newer = engine.checkpoint(20).unwrap().path;
    fs::write(&older, saved).unwrap();
    (older, newer)
}

#[test]
fn corrupt_newest_checkpoint_falls_back_to_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let (older, newer) = two_checkpoints(dir.path());
    // Flip one byte inside the first data block.
    let mut bytes = fs::read(&newer).unwrap();
    bytes[30] ^= 0xff;
    fs::write(&newer, bytes).unwrap();

    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 10);
    assert_eq!(engine.get(b"a", Version::MAX).as_deref(), Some(&b"old"[..]));
    let report = engine.recovery_report();
    assert_eq!(report.checkpoint.as_deref(), Some(older.as_path()));
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, newer);
    assert!(matches!(
        report.skipped[0].error,
        EngineError::CorruptCheckpoint { .. }
    ));
}

#[test]
fn truncated_newest_checkpoint_falls_back_to_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, newer) = two_checkpoints(dir.path());
    let len = fs::metadata(&newer).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&newer).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 10);
    assert_eq!(engine.get(b"a", Version::MAX).as_deref(), Some(&b"old"[..]));
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = {
        let (engine, _) = open(dir.path());
        put(
            &engine,
            1,
            vec![("a".into(), Some("x".into())), ("b".into(), None)],
        );
        engine.checkpoint(5).unwrap().path
    };
    let good = fs::read(&path).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let (engine, lsn) = open(dir.path());
        assert_eq!(lsn, 0, "flipped byte {at} went unnoticed");
        assert_eq!(engine.recovery_report().skipped.len(), 1);
    }
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        let (_, lsn) = open(dir.path());
        assert_eq!(lsn, 0, "truncation to {len} bytes went unnoticed");
    }
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = {
        let (engine, _) = open(dir.path());
        put(&engine, 1, vec![("a".into(), Some("x".into()))]);
        engine.checkpoint(5).unwrap().path
    };
    let mut bytes = fs::read(&path).unwrap();
    bytes[8] = 99;
    fs::write(&path, bytes).unwrap();
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 0);
    assert!(matches!(
        engine.recovery_report().skipped[0].error,
        EngineError::UnsupportedCheckpointFormat {
            found: 99,
            expected: 3,
            ..
        }
    ));
}

#[test]
fn leftover_temp_file_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("checkpoint-00000000000000000009.tmp"),
        b"half written",
    )
    .unwrap();
    let (_, lsn) = open(dir.path());
    assert_eq!(lsn, 0);
    assert!(!dir
        .path()
        .join("checkpoint-00000000000000000009.tmp")
        .exists());
}

/// Writers keep applying batches and readers keep reading while checkpoints run; nothing is
/// lost, every read sees whole batches, and a reopen finds everything checkpointed.
#[test]
fn reads_and_writes_continue_during_checkpoints() {
    const KEYS: usize = 50;
    const BATCHES: u128 = 300;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let engine = Arc::new(engine);
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || {
            for v in 1..=BATCHES {
                let value = Bytes::from(v.to_string());
                let writes = (0..KEYS)
                    .map(|i| (format!("k{i:03}").into_bytes(), Some(value.clone())))
                    .collect();
                let ticket = engine.prepare_batch(Version(v)).unwrap();
                engine.apply_batch(ticket, writes);
            }
        })
    };
    let reader = {
        let engine = Arc::clone(&engine);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                let at = engine.visible();
                let rows: Vec<_> = engine
                    .scan(Unbounded, Unbounded, at, reads % 2 == 0)
                    .collect();
                if at > Version(0) {
                    assert_eq!(rows.len(), KEYS);
                    let expected = Bytes::from(at.0.to_string());
                    assert!(
                        rows.iter().all(|(_, v)| *v == expected),
                        "mixed batches at {at}"
                    );
                    assert_eq!(engine.get(b"k017", at), Some(expected));
                }
                reads += 1;
            }
            reads
        })
    };
    let mut checkpoints = 0;
    while !writer.is_finished() || checkpoints < 3 {
        engine.checkpoint(checkpoints + 1).unwrap();
        checkpoints += 1;
    }
    writer.join().unwrap();
    let final_info = engine.checkpoint(1000).unwrap();
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(final_info.entries, KEYS as u64 * BATCHES as u64);
    assert_eq!(engine.memtable_len(), 0);
    drop(engine);

    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 1000);
    assert_eq!(engine.visible(), Version(BATCHES));
    let rows = all(&engine, Version(BATCHES));
    assert_eq!(rows.len(), KEYS);
    assert!(rows.iter().all(|(_, v)| *v == BATCHES.to_string()));
    assert_eq!(
        engine.get(b"k000", Version(123)).as_deref(),
        Some(&b"123"[..])
    );
}

#[test]
fn an_older_version_in_the_memtable_does_not_hide_a_newer_one_in_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    put(&engine, 5, vec![("k".into(), Some("new".into()))]);
    engine.checkpoint(1).unwrap();
    // A replayed older batch lands in the active memtable, below the checkpoint's versions.
    engine.apply_recovered(Version(3), vec![(b"k".to_vec(), Some(Bytes::from("old")))]);
    let get = |at: u128| engine.get(b"k", Version(at)).map(|v| v.to_vec());
    assert_eq!(get(u128::MAX), Some(b"new".to_vec()));
    assert_eq!(get(5), Some(b"new".to_vec()));
    assert_eq!(get(4), Some(b"old".to_vec()));
    assert_eq!(get(2), None);
    // A newer write in the memtable wins over the checkpoint.
    put(&engine, 9, vec![("k".into(), None)]);
    assert_eq!(get(u128::MAX), None);
    assert_eq!(get(8), Some(b"new".to_vec()));
}

/// A batch inserted before its commit record is durable (early lock release) is in the
/// memtable but unpublished. A checkpoint that freezes that memtable waits until the batch is
/// published or retracted, so a retracted batch never survives in a checkpoint file.
#[test]
fn a_checkpoint_waits_for_an_unpublished_batch_and_never_keeps_a_retracted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let engine = Arc::new(engine);
    put(&engine, 1, vec![("k".into(), Some("base".into()))]);
    let ticket = engine.prepare_batch(Version(2)).unwrap();
    engine.insert_batch(&ticket, vec![(b"k".to_vec(), Some(Bytes::from("failed")))]);

    let (done_tx, done) = std::sync::mpsc::channel();
    let checkpointer = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || {
            let info = engine.checkpoint(7).unwrap();
            done_tx.send(()).unwrap();
            info
        })
    };
    assert!(
        done.recv_timeout(std::time::Duration::from_millis(100))
            .is_err(),
        "the checkpoint finished while a batch in its memtable was unpublished"
    );
    engine.retract_batch(ticket, [b"k".to_vec()]);
    let info = checkpointer.join().unwrap();
    assert_eq!(info.entries, 1, "only the published version is written");
    // The retracted version is nowhere: not in the running engine...
    assert_eq!(
        engine.get(b"k", Version::MAX).as_deref(),
        Some(&b"base"[..])
    );
    drop(engine);
    // ...nor in the checkpoint file.
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 7);
    assert_eq!(
        engine.get(b"k", Version::MAX).as_deref(),
        Some(&b"base"[..])
    );
    assert_eq!(engine.stats().checkpoint_versions, 1);
}

/// The same wait when the batch is published instead: the checkpoint then includes it.
#[test]
fn a_checkpoint_includes_a_batch_published_while_it_waited() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let engine = Arc::new(engine);
    let ticket = engine.prepare_batch(Version(2)).unwrap();
    engine.insert_batch(&ticket, vec![(b"k".to_vec(), Some(Bytes::from("durable")))]);
    let checkpointer = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || engine.checkpoint(3).unwrap())
    };
    thread::sleep(std::time::Duration::from_millis(20));
    engine.publish_batch(ticket);
    assert_eq!(checkpointer.join().unwrap().entries, 1);
    drop(engine);
    let (engine, _) = open(dir.path());
    assert_eq!(engine.visible(), Version(2));
    assert_eq!(
        engine.get(b"k", Version(2)).as_deref(),
        Some(&b"durable"[..])
    );
}

/// The history stored in `tests/testdata/format2.ckpt` (a file written by the format-2 writer,
/// 256-byte blocks): 40 short keys and 10 keys sharing a 31-byte prefix, 1 to 3 versions each,
/// some tombstones, and (`with_range_delete`) a range delete over k030..k035 at version 4.
fn format2_history(engine: &Engine, with_range_delete: bool) {
    for v in 1..=3u128 {
        let ticket = engine.prepare_batch(Version(v)).unwrap();
        let mut writes = Vec::new();
        for i in 0..40u32 {
            if u128::from(i % 3 + 1) < v {
                continue;
            }
            let value = (u128::from(i) + v) % 5 != 0;
            let value = value.then(|| Bytes::from(format!("value {i}@{v}")));
            writes.push((format!("k{i:03}").into_bytes(), value.clone()));
            if i % 4 == 0 {
                let long = format!("a-common-prefix-longer-than-16/k{i:03}");
                writes.push((long.into_bytes(), value));
            }
        }
        engine.apply_batch(ticket, writes);
    }
    let ticket = engine.prepare_batch(Version(4)).unwrap();
    if with_range_delete {
        engine.insert_range_deletes(&ticket, vec![(b"k030".to_vec(), b"k035".to_vec())]);
    }
    engine.apply_batch(ticket, vec![(b"k031".to_vec(), Some(Bytes::from("after")))]);
}

/// Every read of `old` (opened on an old-format file) at versions 0..=5 answers what the
/// history replayed into a fresh memtable answers: scans, and point reads of every key and of
/// keys between, before and after them.
fn assert_reads_match(old: &Engine, with_range_delete: bool) {
    let fresh_dir = tempfile::tempdir().unwrap();
    let (fresh, _) = open(fresh_dir.path());
    format2_history(&fresh, with_range_delete);
    let mut keys: Vec<Vec<u8>> = fresh
        .scan(Unbounded, Unbounded, Version::MAX, false)
        .map(|(k, _)| k)
        .collect();
    keys.extend([&b"k031x"[..], b"k0", b"a", b"zzz", b"k"].map(<[u8]>::to_vec));
    for at in 0..=5 {
        let at = Version(at);
        assert_eq!(all(old, at), all(&fresh, at), "scan at {at}");
        for key in &keys {
            assert_eq!(old.get(key, at), fresh.get(key, at), "{key:?} at {at}");
            assert_eq!(old.latest_version(key), fresh.latest_version(key));
        }
    }
}

/// A file written by the format-2 writer (no in-block index: its entry offsets are collected
/// in memory at open) still opens and reads right; its next checkpoint is written in the
/// current format and reads the same.
#[test]
fn format2_files_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/format2.ckpt"),
        dir.path().join("checkpoint-00000000000000000001.ckpt"),
    )
    .unwrap();
    let (old, lsn) = open(dir.path());
    assert_eq!(lsn, 7);
    assert!(old.recovery_report().skipped.is_empty());
    assert_eq!(old.memtable_len(), 0);
    assert_reads_match(&old, true);
    let path = old.checkpoint(8).unwrap().path;
    drop(old);
    assert_eq!(fs::read(&path).unwrap()[8..12], 3u32.to_le_bytes());
    let (new, lsn) = open(dir.path());
    assert_eq!(lsn, 8);
    assert_reads_match(&new, true);
}

/// A format-1 file (format 2 without the range-delete section) is still read, as a file
/// without range deletes.
#[test]
fn format1_files_are_still_read() {
    let mut bytes =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/format2.ckpt"))
            .unwrap();
    let t = bytes.len() - 72;
    let field = |at: usize| u64::from_le_bytes(bytes[t + at..t + at + 8].try_into().unwrap());
    let index_end = (field(0) + field(8)) as usize;
    bytes.drain(index_end..t);
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("checkpoint-00000000000000000001.ckpt"),
        bytes,
    )
    .unwrap();
    let (old, lsn) = open(dir.path());
    assert_eq!(lsn, 7);
    assert!(old.recovery_report().skipped.is_empty());
    assert_reads_match(&old, false);
}

#[test]
fn a_skipped_checkpoint_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, newer) = two_checkpoints(dir.path());
    let mut bytes = fs::read(&newer).unwrap();
    bytes[8] = 99; // a format from a newer build
    fs::write(&newer, bytes).unwrap();
    let (engine, lsn) = open(dir.path());
    assert_eq!(lsn, 10);
    put(&engine, 3, vec![("b".into(), Some("x".into()))]);
    let info = engine.checkpoint(30).unwrap();
    assert!(newer.exists(), "the skipped checkpoint was deleted");
    assert_eq!(checkpoint_files(dir.path()), vec![newer, info.path]);
}
