//! Range deletes: one tombstone for a key range hides every older version in it, for readers
//! at or after it, through checkpoints (which drop what it hides once GC allows) and restarts.

use std::ops::Bound::{Excluded, Included, Unbounded};
use std::path::Path;

use bytes::Bytes;
use gnomon_engine::{Engine, EngineOptions, Version};

fn open(dir: &Path) -> Engine {
    let opts = EngineOptions {
        checkpoint_block_size: 256,
        fsync: false,
        ..EngineOptions::default()
    };
    Engine::open(dir, opts).expect("open").0
}

fn batch(engine: &Engine, version: u128, puts: &[(&str, &str)], ranges: &[(&str, &str)]) {
    let ticket = engine.prepare_batch(Version(version)).unwrap();
    engine.insert_range_deletes(
        &ticket,
        ranges
            .iter()
            .map(|(s, e)| (s.as_bytes().to_vec(), e.as_bytes().to_vec()))
            .collect(),
    );
    engine.insert_batch(
        &ticket,
        puts.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Some(Bytes::from(v.to_string())))),
    );
    engine.publish_batch(ticket);
}

fn keys(engine: &Engine, at: u128) -> Vec<String> {
    engine
        .scan(Unbounded, Unbounded, Version(at), false)
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect()
}

fn rows(n: usize, prefix: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i:04}"), format!("v{i}")))
        .collect()
}

fn put_rows(engine: &Engine, version: u128, rows: &[(String, String)]) {
    let puts: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    batch(engine, version, &puts, &[]);
}

#[test]
fn a_range_delete_hides_older_versions_from_later_snapshots_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_rows(&engine, 10, &rows(50, "t1/"));
    put_rows(
        &engine,
        11,
        &[("t0".into(), "x".into()), ("t2".into(), "y".into())],
    );
    // Drop t1/ and write one new key inside it in the same batch.
    batch(&engine, 20, &[("t1/new", "n")], &[("t1/", "t10")]);
    assert_eq!(keys(&engine, 20), ["t0", "t1/new", "t2"]);
    assert_eq!(
        keys(&engine, 19).len(),
        52,
        "a snapshot before the delete sees every row"
    );
    assert_eq!(engine.get(b"t1/0007", Version(20)), None);
    assert_eq!(engine.get(b"t1/0007", Version(19)), Some(Bytes::from("v7")));
    assert_eq!(engine.get(b"t1/new", Version::MAX), Some(Bytes::from("n")));
    // Reverse and bounded scans agree.
    let rev: Vec<_> = engine
        .scan(
            Included(b"t1/".to_vec()),
            Excluded(b"t3".to_vec()),
            Version(25),
            true,
        )
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect();
    assert_eq!(rev, ["t2", "t1/new"]);
    // A range delete counts as the newest version of the keys it covers (conflict checks).
    assert_eq!(engine.latest_version(b"t1/0003"), Some(Version(20)));
    // A later write in the range is visible again.
    batch(&engine, 30, &[("t1/0003", "back")], &[]);
    assert_eq!(
        engine.get(b"t1/0003", Version(30)),
        Some(Bytes::from("back"))
    );
}

#[test]
fn range_deletes_survive_checkpoints_and_restarts_and_gc_drops_what_they_hide() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        put_rows(&engine, 10, &rows(200, "a/"));
        put_rows(&engine, 11, &rows(20, "b/"));
        // A checkpoint holds the rows, then the range delete comes after it.
        engine.checkpoint(1).unwrap();
        batch(&engine, 20, &[], &[("a/", "a0")]);
        // Before GC passes the delete, the checkpoint keeps the old versions (a snapshot at
        // 15 may still read them).
        let info = engine.checkpoint(2).unwrap();
        assert_eq!(info.entries, 220);
        assert_eq!(keys(&engine, 15).len(), 220);
        assert_eq!(keys(&engine, 20).len(), 20);
        engine.gc(Version(25));
        let info = engine.checkpoint(3).unwrap();
        assert_eq!(info.entries, 20, "the 200 hidden versions are gone");
        assert_eq!(info.versions_dropped, 200);
        assert_eq!(keys(&engine, 30).len(), 20);
    }
    // Restart: the range delete comes back from the checkpoint file and keeps hiding a
    // version replay would re-insert (a record past the checkpoint's stamp).
    let engine = open(dir.path());
    assert_eq!(keys(&engine, u128::MAX).len(), 20);
    engine.apply_recovered(
        Version(10),
        vec![(b"a/0001".to_vec(), Some(Bytes::from("old")))],
    );
    assert_eq!(engine.get(b"a/0001", Version::MAX), None);
    // Replaying the delete again is harmless.
    engine.apply_recovered_range_deletes(Version(20), vec![(b"a/".to_vec(), b"a0".to_vec())]);
    engine.apply_recovered(Version(20), vec![]);
    assert_eq!(keys(&engine, u128::MAX).len(), 20);
}

#[test]
fn a_retracted_batch_takes_its_range_delete_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_rows(&engine, 10, &rows(5, "k"));
    let ticket = engine.prepare_batch(Version(20)).unwrap();
    engine.insert_range_deletes(&ticket, vec![(b"k".to_vec(), b"l".to_vec())]);
    assert_eq!(
        engine.get(b"k0001", Version::MAX),
        None,
        "seen above the watermark"
    );
    engine.retract_batch(ticket, Vec::<Vec<u8>>::new());
    assert_eq!(keys(&engine, u128::MAX).len(), 5);
    // The checkpoint after it holds no range delete: a restart reads every row.
    engine.checkpoint(1).unwrap();
    drop(engine);
    assert_eq!(keys(&open(dir.path()), u128::MAX).len(), 5);
}
