//! Point reads served by a checkpoint of 1M pgbench-like rows (issue 4): keys are a row-key
//! prefix (tag, 4-byte table id, a non-null marker) and an 8-byte order-preserving integer,
//! 14 bytes in all, like `pgbench_accounts`' primary keys; values are 100 bytes. Rows have the
//! even integers 2..=2M, so `get_absent` reads the odd ones between them. The memtable
//! is empty (the checkpoint took it), so a read is the checkpoint's seek.
//! Run: `cargo bench -p gnomon-engine --bench checkpoint_seek` (it also prints thread CPU time
//! per read, steadier than wall-clock on a shared machine). Under
//! `valgrind --tool=callgrind --cache-sim=yes`, divide the inclusive cost of
//! `Checkpoint::newest_value_at` by its calls for instructions and misses per seek.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use gnomon_engine::{Engine, EngineOptions, Version};

mod common;
use common::{key, thread_cpu_ns, Lcg, ROWS};

const BATCH: u64 = 10_000;

fn seeks(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let opts = EngineOptions {
        fsync: false,
        ..EngineOptions::default()
    };
    let (engine, _) = Engine::open(dir.path(), opts).unwrap_or_else(|e| panic!("open: {e}"));
    let value = Bytes::from(vec![b' '; 100]);
    for batch in 0..ROWS / BATCH {
        let ticket = engine
            .prepare_batch(Version(u128::from(batch) + 1))
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        let writes = (batch * BATCH + 1..=(batch + 1) * BATCH)
            .map(|aid| (key(2 * aid).to_vec(), Some(value.clone())))
            .collect();
        engine.apply_batch(ticket, writes);
    }
    let info = engine
        .checkpoint(1)
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    eprintln!(
        "checkpoint: {} entries, {} blocks, {} bytes",
        info.entries, info.blocks, info.bytes
    );
    let at = engine.visible();
    // CPU time per read on this thread's clock: unlike criterion's wall-clock figures, it does
    // not count the time the thread waits for a core on a shared machine.
    for (name, offset) in [("get", 0), ("get_absent", 1)] {
        let mut rng = Lcg(5);
        let n = 2_000_000;
        let start = thread_cpu_ns();
        for _ in 0..n {
            black_box(engine.get(&key(2 * rng.next_aid() + offset), at));
        }
        let per = (thread_cpu_ns() - start) as f64 / n as f64;
        eprintln!("checkpoint_pgbench_1M/{name}: {per:.0} ns thread CPU time per read");
    }
    let mut group = c.benchmark_group("checkpoint_pgbench_1M");
    let mut rng = Lcg(7);
    group.bench_function("get", |b| {
        b.iter(|| black_box(engine.get(&key(2 * rng.next_aid()), at)))
    });
    let mut rng = Lcg(9);
    group.bench_function("get_absent", |b| {
        b.iter(|| black_box(engine.get(&key(2 * rng.next_aid() + 1), at)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = seeks
}
criterion_main!(benches);
