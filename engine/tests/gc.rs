//! Garbage collection keeps exactly what snapshots at or after the safe point can see.

use std::ops::Bound::Unbounded;

use bytes::Bytes;
use gnomon_engine::{Engine, EngineOptions, Version};

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, EngineOptions::default()).unwrap().0
}

fn put(engine: &Engine, version: u128, key: &str, value: Option<&str>) {
    let ticket = engine.prepare_batch(Version(version)).unwrap();
    engine.apply_batch(
        ticket,
        vec![(
            key.as_bytes().to_vec(),
            value.map(|v| Bytes::from(v.to_string())),
        )],
    );
}

/// What a reader sees for every key at every snapshot from `from` to `to`.
fn view(engine: &Engine, from: u128, to: u128) -> Vec<Vec<(Vec<u8>, Bytes)>> {
    (from..=to)
        .map(|at| {
            engine
                .scan(Unbounded, Unbounded, Version(at), false)
                .collect()
        })
        .collect()
}

/// a: 1,3,5,7   b: 2, deleted at 4, 6   c: 1, deleted at 2   d: 8
fn history(engine: &Engine) {
    put(engine, 1, "a", Some("a1"));
    put(engine, 2, "b", Some("b2"));
    put(engine, 3, "a", Some("a3"));
    put(engine, 4, "b", None);
    put(engine, 5, "a", Some("a5"));
    put(engine, 6, "b", Some("b6"));
    put(engine, 7, "a", Some("a7"));
    put(engine, 8, "d", Some("d8"));
    put(engine, 9, "c", Some("c9"));
    put(engine, 10, "c", None);
}

#[test]
fn gc_keeps_what_snapshots_at_or_after_the_safe_point_see() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    history(&engine);
    let before = view(&engine, 5, 12);
    let stats = engine.gc(Version(5));
    // a: drops 1 and 3 (5 is the newest <= 5). b: drops 2 (the tombstone at 4 is newest).
    assert_eq!(stats.versions_removed, 3);
    assert_eq!(view(&engine, 5, 12), before);
    assert_eq!(engine.get(b"a", Version(5)).as_deref(), Some(&b"a5"[..]));
    assert_eq!(
        engine.get(b"a", Version(4)),
        None,
        "history below the safe point is gone"
    );
}

#[test]
fn gc_keeps_the_newest_tombstone_at_or_below_the_safe_point() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    history(&engine);
    engine.gc(Version(11));
    assert_eq!(engine.latest_version(b"c"), Some(Version(10)));
    assert_eq!(engine.get(b"c", Version(11)), None);
    // A replayed older version (WAL replay after a crash) stays hidden behind it.
    engine.apply_recovered(Version(9), vec![(b"c".to_vec(), Some(Bytes::from("c9")))]);
    assert_eq!(engine.get(b"c", Version(11)), None);
}

#[test]
fn gc_applies_to_checkpoint_data_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    history(&engine);
    engine.checkpoint(1).unwrap();
    let before = view(&engine, 6, 12);
    assert_eq!(
        engine.gc(Version(6)).versions_removed,
        0,
        "nothing in the memtable"
    );
    put(&engine, 11, "a", Some("a11"));
    let info = engine.checkpoint(2).unwrap();
    // a: 1,3,5 dropped (7 > 6 kept, 5 newest <= 6 kept -> drops 1,3); b: 2,4 dropped (6 kept).
    assert_eq!(info.versions_dropped, 4);
    assert_eq!(info.entries, 11 - 4);
    assert_eq!(view(&engine, 6, 10), before[..5]);
    assert_eq!(engine.get(b"a", Version(11)).as_deref(), Some(&b"a11"[..]));
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(view(&engine, 6, 10), before[..5]);
}

/// A version at physical time `us` (the HLC layout: physical microseconds in the high half).
fn at_us(us: u128) -> u128 {
    us << 64
}

#[test]
fn gc_walks_a_memtable_only_when_a_version_stands_above_another_at_or_below_the_safe_point() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    // A load: every key written once. Nothing to collect, so nothing is examined.
    for i in 0..100u128 {
        put(&engine, at_us(1 + i), &format!("row{i:03}"), Some("v"));
    }
    let stats = engine.gc(Version(at_us(1_000)));
    assert_eq!((stats.versions_examined, stats.versions_removed), (0, 0));
    // x at 2000, 3000, 4000: at a safe point below 3000 nothing stands above an old version.
    put(&engine, at_us(2_000), "x", Some("x1"));
    put(&engine, at_us(3_000), "x", Some("x2"));
    put(&engine, at_us(4_000), "x", Some("x3"));
    let stats = engine.gc(Version(at_us(2_500)));
    assert_eq!((stats.versions_examined, stats.versions_removed), (0, 0));
    // At 3500: 2000 goes, 3000 (the newest at or below) and 4000 stay; a walk was needed.
    let stats = engine.gc(Version(at_us(3_500)));
    assert_eq!(stats.versions_removed, 1);
    assert!(stats.versions_examined >= 103, "{stats:?}");
    assert_eq!(
        engine.get(b"x", Version(at_us(3_500))).as_deref(),
        Some(&b"x2"[..])
    );
    // 4000 still stands above 3000: skipped below it, collected at it.
    let stats = engine.gc(Version(at_us(3_900)));
    assert_eq!((stats.versions_examined, stats.versions_removed), (0, 0));
    let stats = engine.gc(Version(at_us(4_000)));
    assert_eq!(stats.versions_removed, 1);
    assert_eq!(
        engine.get(b"x", Version(at_us(4_000))).as_deref(),
        Some(&b"x3"[..])
    );
    let stats = engine.gc(Version(at_us(9_000)));
    assert_eq!((stats.versions_examined, stats.versions_removed), (0, 0));
    // A replayed older version of a key (inserted below the newest) is collected too.
    engine.apply_recovered(
        Version(at_us(5)),
        vec![(b"row010".to_vec(), Some(Bytes::from("old")))],
    );
    let stats = engine.gc(Version(at_us(9_000)));
    assert_eq!(stats.versions_removed, 1);
    assert_eq!(
        engine.get(b"row010", Version(at_us(9_000))).as_deref(),
        Some(&b"v"[..])
    );
}
