//! Checkpoint merge cost (issue 4): a checkpoint rewrites the whole store, so on a server
//! taking pgbench TPC-B writes it costs CPU in proportion to every version kept, not only the
//! new ones. The store here is 1M pgbench-like rows (14-byte keys as `sql::encoding::row_key`
//! builds them for `pgbench_accounts`, 100-byte values) in a checkpoint, plus updates of
//! random rows in the memtable, as TPC-B leaves them.
//!
//! It prints the thread CPU time per version written of one checkpoint that keeps every
//! version (no GC: as within the 5-minute GC window, 1M base rows + 3 x 250K updates), then
//! criterion times checkpoints of a store that GC keeps at ~1.25M versions (250K new updates
//! each). Run: `cargo bench -p gnomon-engine --bench checkpoint_merge`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use gnomon_engine::{Engine, EngineOptions, Version};

mod common;
use common::{key, thread_cpu_ns, Lcg, ROWS};

const UPDATES: u64 = 250_000;
const BATCH: u64 = 10_000;

/// Writes `n` versions in batches of `BATCH`, the next versions after `next`.
fn write(engine: &Engine, next: &mut u128, n: u64, mut aid: impl FnMut(u64) -> u64) {
    let value = Bytes::from(vec![b' '; 100]);
    for batch in 0..n / BATCH {
        *next += 1;
        let ticket = engine
            .prepare_batch(Version(*next))
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        let mut writes: Vec<(Vec<u8>, Option<Bytes>)> = (0..BATCH)
            .map(|i| (key(aid(batch * BATCH + i)).to_vec(), Some(value.clone())))
            .collect();
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        writes.dedup_by(|a, b| a.0 == b.0);
        engine.apply_batch(ticket, writes);
    }
}

fn merges(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let opts = EngineOptions {
        fsync: false,
        ..EngineOptions::default()
    };
    let (engine, _) = Engine::open(dir.path(), opts).unwrap_or_else(|e| panic!("open: {e}"));
    let mut next = 0u128;
    write(&engine, &mut next, ROWS, |i| i + 1);
    engine
        .checkpoint(1)
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    let mut rng = Lcg(3);
    for round in 0..3 {
        write(&engine, &mut next, UPDATES, |_| rng.next_aid());
        if round < 2 {
            engine
                .checkpoint(1)
                .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        }
    }
    let start = thread_cpu_ns();
    let info = engine
        .checkpoint(1)
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    let spent = thread_cpu_ns() - start;
    eprintln!(
        "checkpoint_merge/keep_all: {} versions, {} bytes: {:.0} ms thread CPU, {:.0} ns per version",
        info.entries,
        info.bytes,
        spent as f64 / 1e6,
        spent as f64 / info.entries as f64
    );
    let mut group = c.benchmark_group("checkpoint_merge");
    group.bench_function("1M_rows_250K_updates", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                engine.gc(engine.visible());
                write(&engine, &mut next, UPDATES, |_| rng.next_aid());
                let start = Instant::now();
                black_box(engine.checkpoint(1).unwrap_or_else(|e| panic!("{e}")));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));
    targets = merges
}
criterion_main!(benches);
