//! Point gets and 100-key range scans over 1M keys, served from the memtable and from a
//! checkpoint; and point gets over a checkpoint of 1M keys under a memtable of 400K versions
//! (every fifth key updated twice, as TPC-B leaves it between checkpoints), with the memtable's
//! key filter on and off. Run: `cargo bench -p gnomon-engine --bench engine`.

use std::hint::black_box;
use std::ops::Bound::{Included, Unbounded};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use gnomon_engine::{Engine, EngineOptions, Version};

const KEYS: u64 = 1_000_000;
const BATCH: u64 = 10_000;

fn key(i: u64) -> Vec<u8> {
    format!("user/{i:010}").into_bytes()
}

/// Deterministic pseudo-random key indexes (so runs are comparable).
struct Lcg(u64);
impl Lcg {
    fn next_index(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % KEYS
    }
}

fn load(engine: &Engine) {
    let value = Bytes::from(vec![b'v'; 32]);
    for batch in 0..KEYS / BATCH {
        let ticket = engine
            .prepare_batch(Version(u128::from(batch) + 1))
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        let writes = (batch * BATCH..(batch + 1) * BATCH)
            .map(|i| (key(i), Some(value.clone())))
            .collect();
        engine.apply_batch(ticket, writes);
    }
}

fn reads(c: &mut Criterion, engine: &Engine, layer: &str) {
    let at = engine.visible();
    let mut group = c.benchmark_group(layer);
    let mut rng = Lcg(7);
    group.bench_function("get", |b| {
        b.iter(|| black_box(engine.get(&key(rng.next_index()), at)))
    });
    group.bench_function("get_missing", |b| {
        b.iter(|| black_box(engine.get(b"user/absent", at)))
    });
    let mut rng = Lcg(11);
    group.bench_function("scan_100", |b| {
        b.iter(|| {
            let start = key(rng.next_index().min(KEYS - 100));
            let n = engine
                .scan(Included(start), Unbounded, at, false)
                .take(100)
                .count();
            black_box(n)
        })
    });
    let mut rng = Lcg(13);
    group.bench_function("scan_100_reverse", |b| {
        b.iter(|| {
            let end = key(rng.next_index().max(100));
            let n = engine
                .scan(Unbounded, Included(end), at, true)
                .take(100)
                .count();
            black_box(n)
        })
    });
    group.finish();
}

/// Reads of keys the memtable does not hold (they are in the checkpoint below it) and of keys
/// it does, over a memtable of 400K versions, with the key filter at `filter_bytes`.
fn memtable_over_checkpoint(c: &mut Criterion, name: &str, filter_bytes: usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let opts = EngineOptions {
        fsync: false,
        memtable_filter_bytes: filter_bytes,
        ..EngineOptions::default()
    };
    let (engine, _) = Engine::open(dir.path(), opts).unwrap_or_else(|e| panic!("open: {e}"));
    load(&engine);
    engine
        .checkpoint(1)
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    let value = Bytes::from(vec![b'u'; 32]);
    let mut version = engine.max_prepared().0;
    for _round in 0..2 {
        for batch in (0..KEYS).step_by(BATCH as usize) {
            version += 1;
            let ticket = engine
                .prepare_batch(Version(version))
                .unwrap_or_else(|e| panic!("prepare: {e}"));
            let writes = (batch..batch + BATCH)
                .filter(|i| i % 5 == 0)
                .map(|i| (key(i), Some(value.clone())))
                .collect();
            engine.apply_batch(ticket, writes);
        }
    }
    let at = engine.visible();
    let mut group = c.benchmark_group(name);
    let mut rng = Lcg(17);
    group.bench_function("get_not_in_memtable", |b| {
        b.iter(|| {
            // Any key but a multiple of 5 (those are in the memtable).
            let i = rng.next_index();
            let i = if i % 5 == 0 { i + 1 } else { i };
            black_box(engine.get(&key(i), at))
        })
    });
    let mut rng = Lcg(19);
    group.bench_function("get_in_memtable", |b| {
        b.iter(|| black_box(engine.get(&key(rng.next_index() / 5 * 5), at)))
    });
    group.finish();
}

fn engine_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let opts = EngineOptions {
        fsync: false,
        ..EngineOptions::default()
    };
    let (engine, _) = Engine::open(dir.path(), opts).unwrap_or_else(|e| panic!("open: {e}"));
    load(&engine);
    reads(c, &engine, "memtable_1M");
    let info = engine
        .checkpoint(1)
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    eprintln!(
        "checkpoint: {} entries, {} blocks, {} bytes",
        info.entries, info.blocks, info.bytes
    );
    reads(c, &engine, "checkpoint_1M");
    drop(engine);
    memtable_over_checkpoint(c, "memtable_400K_over_checkpoint_1M", 1 << 20);
    memtable_over_checkpoint(c, "memtable_400K_over_checkpoint_1M_no_filter", 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = engine_benches
}
criterion_main!(benches);
