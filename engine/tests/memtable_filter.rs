//! The memtable's key filter changes how fast a point read gives up, never what it answers:
//! engines with the filter off, saturated (one 64-byte block) and at its default size agree
//! on every point read through commits, early-release batches, retractions, GC and
//! checkpoints; and a reader racing the writer finds every key the watermark says is there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gnomon_engine::{Engine, EngineOptions, Version};

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Keys short enough for the inline head and longer than it, from a space much larger than
/// what gets written, so most probes are for absent keys.
fn random_key(rng: &mut Lcg) -> Vec<u8> {
    let n = rng.below(400);
    if rng.below(2) == 0 {
        format!("k{n}").into_bytes()
    } else {
        format!("a-rather-long-table-prefix/{n}").into_bytes()
    }
}

fn open(dir: &std::path::Path, memtable_filter_bytes: usize) -> Engine {
    let opts = EngineOptions {
        checkpoint_block_size: 256,
        fsync: false,
        memtable_filter_bytes,
    };
    Engine::open(dir, opts).expect("open").0
}

#[test]
fn point_reads_agree_with_and_without_the_filter() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // Off, one block (every bit set after a few dozen keys: nearly always "maybe", until the
    // first checkpoint sizes the next memtable's filter from the frozen one), default.
    let engines = [
        open(dirs[0].path(), 0),
        open(dirs[1].path(), 64),
        open(
            dirs[2].path(),
            EngineOptions::default().memtable_filter_bytes,
        ),
    ];
    let mut rng = Lcg(7);
    let mut version = 0u128;
    let mut safe_point = 0u128;
    for step in 0..600u64 {
        version += 1;
        let writes: Vec<(Vec<u8>, Option<Bytes>)> = (0..1 + rng.below(4))
            .map(|_| {
                let value = (rng.below(5) != 0).then(|| Bytes::from(format!("{version}")));
                (random_key(&mut rng), value)
            })
            .collect();
        match rng.below(10) {
            // Early release, then retracted: the versions go, the filter bits stay.
            0 => {
                for engine in &engines {
                    let ticket = engine.prepare_batch(Version(version)).expect("prepare");
                    engine.insert_batch(&ticket, writes.clone());
                    for (key, _) in &writes {
                        assert_eq!(engine.latest_version(key), Some(Version(version)));
                    }
                    engine.retract_batch(ticket, writes.iter().map(|(k, _)| k.clone()));
                }
            }
            // Early release, then published.
            1 => {
                for engine in &engines {
                    let ticket = engine.prepare_batch(Version(version)).expect("prepare");
                    engine.insert_batch(&ticket, writes.clone());
                    engine.publish_batch(ticket);
                }
            }
            _ => {
                for engine in &engines {
                    let ticket = engine.prepare_batch(Version(version)).expect("prepare");
                    engine.apply_batch(ticket, writes.clone());
                }
            }
        }
        if step % 50 == 25 {
            safe_point = version - 20;
            for engine in &engines {
                engine.gc(Version(safe_point));
            }
        }
        if step % 200 == 199 {
            for engine in &engines {
                engine.checkpoint(step).expect("checkpoint");
            }
        }
        for _ in 0..20 {
            let key = random_key(&mut rng);
            let at = if rng.below(4) == 0 {
                Version::MAX
            } else {
                Version(safe_point + u128::from(rng.below((version - safe_point) as u64 + 2)))
            };
            let expected = (
                engines[0].get(&key, at),
                engines[0].get_versioned(&key, at),
                engines[0].latest_version(&key),
            );
            for engine in &engines[1..] {
                let got = (
                    engine.get(&key, at),
                    engine.get_versioned(&key, at),
                    engine.latest_version(&key),
                );
                assert_eq!(got, expected, "step {step}: {key:?} at {at:?}");
            }
        }
    }
    // Something was actually read back, not just absences agreed on.
    let present = (0..400)
        .filter(|n| {
            engines[2]
                .get(format!("k{n}").as_bytes(), Version::MAX)
                .is_some()
        })
        .count();
    assert!(present > 100, "{present} keys present");
}

#[test]
fn a_racing_reader_finds_every_key_at_or_below_the_watermark() {
    const BATCHES: u64 = 3000;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(open(
        dir.path(),
        EngineOptions::default().memtable_filter_bytes,
    ));
    let key = |v: u64| format!("row/{v}").into_bytes();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (engine, done) = (engine.clone(), done.clone());
            std::thread::spawn(move || {
                let mut rng = Lcg(r + 1);
                let mut found = 0u64;
                while !done.load(Ordering::Acquire) {
                    let visible = engine.visible();
                    let newest = visible.0 as u64;
                    if newest == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    // The newest batch (just published, its filter bits set moments ago) and
                    // one picked at random; both through the filter of whichever memtable
                    // holds them (a checkpoint may be freezing it right now).
                    for v in [newest, 1 + rng.below(newest)] {
                        let got = engine.get(&key(v), visible);
                        assert_eq!(got, Some(Bytes::from(v.to_string())), "row {v} at {newest}");
                        found += 1;
                    }
                }
                found
            })
        })
        .collect();
    for v in 1..=BATCHES {
        let ticket = engine
            .prepare_batch(Version(u128::from(v)))
            .expect("prepare");
        engine.apply_batch(ticket, vec![(key(v), Some(Bytes::from(v.to_string())))]);
        if v % 1000 == 0 {
            engine.checkpoint(v).expect("checkpoint");
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().expect("reader panicked");
    }
    for v in 1..=BATCHES {
        assert_eq!(
            engine.get(&key(v), engine.visible()),
            Some(Bytes::from(v.to_string()))
        );
    }
}

#[test]
fn the_filter_after_a_checkpoint_is_sized_from_the_memtable_it_froze() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), 4096);
    assert_eq!(engine.stats().memtable_filter_bytes, 4096);
    let key = |i: u64| format!("key/{i}").into_bytes();
    // 20000 versions of 10000 keys: the next memtable gets one byte per version, rounded up.
    for round in 0..2u64 {
        let ticket = engine
            .prepare_batch(Version(u128::from(round) + 1))
            .expect("prepare");
        engine.apply_batch(
            ticket,
            (0..10_000)
                .map(|i| (key(i), Some(Bytes::from_static(b"v"))))
                .collect(),
        );
    }
    engine.checkpoint(1).expect("checkpoint");
    assert_eq!(engine.stats().memtable_filter_bytes, 32 << 10);
    let ticket = engine.prepare_batch(Version(3)).expect("prepare");
    engine.apply_batch(ticket, vec![(key(0), Some(Bytes::from_static(b"new")))]);
    assert_eq!(
        engine.get(&key(0), engine.visible()),
        Some(Bytes::from_static(b"new"))
    );
    assert_eq!(
        engine.get(&key(1), engine.visible()),
        Some(Bytes::from_static(b"v"))
    );
    // A small memtable next: back to the configured size, never below it.
    engine.checkpoint(2).expect("checkpoint");
    assert_eq!(engine.stats().memtable_filter_bytes, 4096);
    // Off stays off.
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), 0);
    let ticket = engine.prepare_batch(Version(1)).expect("prepare");
    engine.apply_batch(
        ticket,
        (0..10_000)
            .map(|i| (key(i), Some(Bytes::from_static(b"v"))))
            .collect(),
    );
    engine.checkpoint(1).expect("checkpoint");
    assert_eq!(engine.stats().memtable_filter_bytes, 0);
}
