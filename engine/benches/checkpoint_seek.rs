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

const ROWS: u64 = 1_000_000;
const BATCH: u64 = 10_000;

/// Row key of integer `aid`: a fixed 6-byte prefix (tag, table id, non-null marker) and the
/// integer with its sign bit flipped, big-endian; 14 bytes, as `sql::encoding::row_key` builds.
fn key(aid: u64) -> [u8; 14] {
    let mut k = [0u8; 14];
    k[0] = 0x10;
    k[1..5].copy_from_slice(&16384u32.to_be_bytes());
    k[5] = 0x01;
    k[6..].copy_from_slice(&(aid ^ (1 << 63)).to_be_bytes());
    k
}

/// Deterministic pseudo-random row numbers (so runs are comparable).
struct Lcg(u64);
impl Lcg {
    fn next_aid(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % ROWS + 1
    }
}

/// This thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

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
