//! Snapshot reads: versions, tombstones, range bounds, reverse scans, across layers.

use std::ops::Bound::{self, Excluded, Included, Unbounded};

use bytes::Bytes;
use gnomon_engine::{Engine, EngineOptions, Version};

fn open(dir: &std::path::Path) -> Engine {
    match Engine::open(dir, EngineOptions::default()) {
        Ok((engine, _)) => engine,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn put(engine: &Engine, version: u128, writes: &[(&str, Option<&str>)]) {
    let ticket = engine
        .prepare_batch(Version(version))
        .unwrap_or_else(|e| panic!("prepare {version}: {e}"));
    engine.apply_batch(
        ticket,
        writes
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| Bytes::from(v.to_string()))))
            .collect(),
    );
}

fn get(engine: &Engine, key: &str, at: u128) -> Option<String> {
    engine
        .get(key.as_bytes(), Version(at))
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn scan(
    engine: &Engine,
    start: Bound<&str>,
    end: Bound<&str>,
    at: u128,
    reverse: bool,
) -> Vec<String> {
    let conv = |b: Bound<&str>| match b {
        Included(s) => Included(s.as_bytes().to_vec()),
        Excluded(s) => Excluded(s.as_bytes().to_vec()),
        Unbounded => Unbounded,
    };
    engine
        .scan(conv(start), conv(end), Version(at), reverse)
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )
        })
        .collect()
}

/// History used by several tests:
///   v10: a=a10 b=b10 c=c10
///   v20: a=a20, b deleted
///   v30: b=b30, d=d30
///   v40: a deleted
fn history(engine: &Engine) {
    put(
        engine,
        10,
        &[("a", Some("a10")), ("b", Some("b10")), ("c", Some("c10"))],
    );
    put(engine, 20, &[("a", Some("a20")), ("b", None)]);
    put(engine, 30, &[("b", Some("b30")), ("d", Some("d30"))]);
    put(engine, 40, &[("a", None)]);
}

fn check_history(engine: &Engine) {
    assert_eq!(get(engine, "a", 9), None);
    assert_eq!(get(engine, "a", 10).as_deref(), Some("a10"));
    assert_eq!(get(engine, "a", 15).as_deref(), Some("a10"));
    assert_eq!(get(engine, "a", 20).as_deref(), Some("a20"));
    assert_eq!(get(engine, "a", 39).as_deref(), Some("a20"));
    assert_eq!(get(engine, "a", 40), None, "tombstone hides older versions");
    assert_eq!(get(engine, "b", 25), None);
    assert_eq!(get(engine, "b", 30).as_deref(), Some("b30"));
    assert_eq!(get(engine, "zzz", u128::MAX), None);

    assert_eq!(
        scan(engine, Unbounded, Unbounded, 10, false),
        ["a=a10", "b=b10", "c=c10"]
    );
    assert_eq!(
        scan(engine, Unbounded, Unbounded, 20, false),
        ["a=a20", "c=c10"]
    );
    assert_eq!(
        scan(engine, Unbounded, Unbounded, 35, false),
        ["a=a20", "b=b30", "c=c10", "d=d30"]
    );
    assert_eq!(
        scan(engine, Unbounded, Unbounded, u128::MAX, false),
        ["b=b30", "c=c10", "d=d30"]
    );
    assert_eq!(
        scan(engine, Unbounded, Unbounded, 5, false),
        Vec::<String>::new()
    );

    // Reverse returns the newest version <= snapshot per key, not the oldest.
    assert_eq!(
        scan(engine, Unbounded, Unbounded, 35, true),
        ["d=d30", "c=c10", "b=b30", "a=a20"]
    );
    assert_eq!(
        scan(engine, Unbounded, Unbounded, 20, true),
        ["c=c10", "a=a20"]
    );

    // Bounds, both directions.
    assert_eq!(
        scan(engine, Included("b"), Included("c"), 35, false),
        ["b=b30", "c=c10"]
    );
    assert_eq!(
        scan(engine, Excluded("b"), Excluded("d"), 35, false),
        ["c=c10"]
    );
    assert_eq!(
        scan(engine, Included("b"), Excluded("d"), 35, true),
        ["c=c10", "b=b30"]
    );
    assert_eq!(
        scan(engine, Excluded("a"), Included("d"), 35, true),
        ["d=d30", "c=c10", "b=b30"]
    );
    assert_eq!(
        scan(engine, Included("bb"), Unbounded, 35, false),
        ["c=c10", "d=d30"]
    );
    assert_eq!(
        scan(engine, Unbounded, Excluded("bb"), 35, true),
        ["b=b30", "a=a20"]
    );
    assert_eq!(
        scan(engine, Included("d"), Included("a"), 35, false),
        Vec::<String>::new()
    );
    assert_eq!(
        scan(engine, Included("d"), Included("a"), 35, true),
        Vec::<String>::new()
    );

    assert_eq!(
        engine.latest_version(b"a"),
        Some(Version(40)),
        "tombstones count"
    );
    assert_eq!(engine.latest_version(b"c"), Some(Version(10)));
    assert_eq!(engine.latest_version(b"nope"), None);
}

#[test]
fn snapshot_reads_from_the_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    history(&engine);
    check_history(&engine);
}

#[test]
fn snapshot_reads_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    history(&engine);
    engine.checkpoint(1).unwrap();
    assert_eq!(engine.memtable_len(), 0);
    check_history(&engine);
}

#[test]
fn snapshot_reads_merge_checkpoint_and_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put(
        &engine,
        10,
        &[("a", Some("a10")), ("b", Some("b10")), ("c", Some("c10"))],
    );
    put(&engine, 20, &[("a", Some("a20")), ("b", None)]);
    engine.checkpoint(1).unwrap();
    put(&engine, 30, &[("b", Some("b30")), ("d", Some("d30"))]);
    put(&engine, 40, &[("a", None)]);
    check_history(&engine);
}

#[test]
fn keys_that_prefix_each_other_stay_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put(
        &engine,
        1,
        &[
            ("a", Some("1")),
            ("a\0", Some("2")),
            ("ab", Some("3")),
            ("", Some("e")),
        ],
    );
    put(&engine, 2, &[("a", None)]);
    assert_eq!(
        scan(&engine, Unbounded, Unbounded, 2, false),
        ["=e", "a\0=2", "ab=3"]
    );
    assert_eq!(
        scan(&engine, Unbounded, Unbounded, 2, true),
        ["ab=3", "a\0=2", "=e"]
    );
    assert_eq!(get(&engine, "", 2).as_deref(), Some("e"));
    engine.checkpoint(1).unwrap();
    assert_eq!(
        scan(&engine, Unbounded, Unbounded, 1, true),
        ["ab=3", "a\0=2", "a=1", "=e"]
    );
}

#[test]
fn many_keys_across_blocks_scan_in_order_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        checkpoint_block_size: 128,
        fsync: false,
        ..EngineOptions::default()
    };
    let (engine, _) = Engine::open(dir.path(), opts).unwrap();
    for round in 1..=3u128 {
        let ticket = engine.prepare_batch(Version(round)).unwrap();
        let writes = (0..500u32)
            .filter(|i| i % round as u32 == 0)
            .map(|i| {
                (
                    format!("k{i:05}").into_bytes(),
                    Some(Bytes::from(format!("{round}"))),
                )
            })
            .collect();
        engine.apply_batch(ticket, writes);
        if round == 2 {
            engine.checkpoint(7).unwrap();
        }
    }
    let forward: Vec<_> = engine
        .scan(Unbounded, Unbounded, Version(3), false)
        .collect();
    assert_eq!(forward.len(), 500);
    for (i, (k, v)) in forward.iter().enumerate() {
        assert_eq!(k, format!("k{i:05}").as_bytes());
        let expected = if i % 3 == 0 {
            "3"
        } else if i % 2 == 0 {
            "2"
        } else {
            "1"
        };
        assert_eq!(v.as_ref(), expected.as_bytes());
    }
    let mut reverse: Vec<_> = engine
        .scan(Unbounded, Unbounded, Version(3), true)
        .collect();
    reverse.reverse();
    assert_eq!(forward, reverse);
    let at_two: Vec<_> = engine
        .scan(
            Included(b"k00100".to_vec()),
            Excluded(b"k00110".to_vec()),
            Version(2),
            true,
        )
        .map(|(k, v)| {
            (
                String::from_utf8(k).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    let expected: Vec<_> = (100..110)
        .rev()
        .map(|i| {
            (
                format!("k{i:05}"),
                if i % 2 == 0 { "2" } else { "1" }.to_string(),
            )
        })
        .collect();
    assert_eq!(at_two, expected);
}
