//! Commit throughput of small transactions (one 100-byte row each), with sync off and on, from
//! one thread and from 16 concurrent committers (where group commit shares fsyncs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gnomon_mvcc::{Db, DbOptions, Isolation, SyncPolicy};

fn bench_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvcc_commit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for (sync_name, sync) in [
        ("sync_off", SyncPolicy::OffUnsafeNoDurability),
        ("fsync", SyncPolicy::Fsync),
    ] {
        for threads in [1usize, 16] {
            // NB: in the working directory (a real disk), not /tmp, which may be tmpfs.
            let dir = tempfile::tempdir_in(".").unwrap();
            let db = Db::open(DbOptions {
                dir: dir.path().to_path_buf(),
                sync,
                ..DbOptions::default()
            })
            .unwrap();
            let counter = Arc::new(AtomicU64::new(0));
            let per_iter = 64u64;
            group.throughput(Throughput::Elements(per_iter));
            group.bench_function(format!("{sync_name}/{threads}_committers"), |b| {
                b.iter_custom(|iters| {
                    let total = iters * per_iter;
                    let next = Arc::new(AtomicU64::new(0));
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            let (db, next, counter) = (db.clone(), next.clone(), counter.clone());
                            s.spawn(move || {
                                while next.fetch_add(1, Ordering::Relaxed) < total {
                                    let k = counter.fetch_add(1, Ordering::Relaxed);
                                    let mut t = db.begin(Isolation::ReadCommitted);
                                    t.put(&k.to_be_bytes(), Bytes::from(vec![7u8; 100]))
                                        .unwrap();
                                    t.commit().unwrap();
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
