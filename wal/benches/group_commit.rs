//! Durable appends per second with 1, 16 and 64 concurrent committers (fsync on, ~100-byte
//! records, on the real disk under the target dir), next to this machine's plain
//! `write` + `fdatasync` rate measured in the same run.
//!
//! Each criterion iteration is a fixed amount of work: one `write`+`fdatasync` for the
//! baseline, `COMMITS_PER_ITER` durable appends (split across the committer threads) for the
//! log. Throughput is reported in elements (= commits) per second; a summary with the ratio to
//! the baseline is printed at the end.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use gnomon_wal::{FileSystem, RealFs, RecordKind, Wal, WalOptions};

const RECORD_LEN: usize = 100;
const COMMITS_PER_ITER: u64 = 64;
const COMMITTERS: [usize; 3] = [1, 16, 64];

/// (name, commits, time) of every timed run, for the closing summary.
static TOTALS: Mutex<Vec<(String, u64, Duration)>> = Mutex::new(Vec::new());

fn record_total(name: &str, commits: u64, elapsed: Duration) {
    let mut totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    match totals.iter_mut().find(|(n, _, _)| n == name) {
        Some(entry) => {
            entry.1 += commits;
            entry.2 += elapsed;
        }
        None => totals.push((name.to_string(), commits, elapsed)),
    }
}

fn bench_dir() -> tempfile::TempDir {
    // NB: not /tmp, which may be tmpfs where fdatasync is free; the target dir is on the disk
    // the database would use.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("create bench dir");
    tempfile::Builder::new()
        .prefix("wal-group-commit")
        .tempdir_in(base)
        .expect("bench tempdir")
}

fn plain_fdatasync(c: &mut Criterion) {
    let dir = bench_dir();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("baseline"))
        .expect("open baseline file");
    let record = vec![0x5au8; RECORD_LEN + 9];

    let mut group = c.benchmark_group("baseline");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));
    group.bench_function("write+fdatasync", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                file.write_all(&record).expect("write");
                file.sync_data().expect("fdatasync");
            }
            let elapsed = start.elapsed();
            record_total("write+fdatasync", iters, elapsed);
            elapsed
        })
    });
    group.finish();
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_fsync");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(COMMITS_PER_ITER));
    for committers in COMMITTERS {
        let dir = bench_dir();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let wal = Arc::new(Wal::open(fs, dir.path(), WalOptions::default()).expect("open wal"));
        let payload = vec![0xa5u8; RECORD_LEN];
        let name = format!("{committers}_committers");
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let total = iters * COMMITS_PER_ITER;
                let per_thread = total.div_ceil(committers as u64);
                let barrier = Barrier::new(committers + 1);
                let elapsed = std::thread::scope(|scope| {
                    for _ in 0..committers {
                        let (wal, payload, barrier) = (&wal, &payload, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            for _ in 0..per_thread {
                                wal.append(RecordKind(1), payload).expect("durable append");
                            }
                        });
                    }
                    barrier.wait();
                    let start = Instant::now();
                    // Scope end joins every committer.
                    start
                })
                .elapsed();
                record_total(&name, per_thread * committers as u64, elapsed);
                elapsed
            })
        });
    }
    group.finish();
}

fn print_summary() {
    let totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    let rate = |commits: u64, time: Duration| commits as f64 / time.as_secs_f64().max(1e-9);
    let baseline = totals
        .iter()
        .find(|(n, _, _)| n == "write+fdatasync")
        .map(|(_, c, t)| rate(*c, *t));
    println!("\n== group commit summary (all timed iterations, warm-up included) ==");
    for (name, commits, time) in totals.iter() {
        let r = rate(*commits, *time);
        match baseline {
            Some(base) => println!(
                "{name:>20}: {r:>10.0} commits/s  ({:.1}x write+fdatasync)",
                r / base
            ),
            None => println!("{name:>20}: {r:>10.0} commits/s"),
        }
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    plain_fdatasync(&mut criterion);
    durable_appends(&mut criterion);
    criterion.final_summary();
    print_summary();
}
