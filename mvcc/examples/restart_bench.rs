//! Restart time after many small committed transactions, with automatic checkpoints on and off.
//!
//! ```text
//! cargo run --release -p gnomon-mvcc --example restart_bench -- [--txns 1000000]
//!     [--committers 64] [--reopens 5] [--mode both|on|off] [--dir PATH]
//! ```
//!
//! For each mode, in a fresh directory (under the working directory by default: a real disk,
//! not a tmpfs): `--committers` threads commit `--txns` one-row transactions (a 16-byte key
//! and a 100-byte value, fsync on, so group commit shares the fsyncs); with `on`, the
//! background maintenance of `MaintenanceOptions::default()` runs meanwhile. Then the database
//! is closed and reopened `--reopens` times; the report gives the median and range of
//! `Db::open` (recovery included) and what recovery replayed. The files are in the page cache
//! by then, as after a process crash (not after a reboot).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MaintenanceOptions, SyncPolicy};

struct Args {
    txns: u64,
    committers: u64,
    reopens: usize,
    modes: Vec<bool>,
    dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        txns: 1_000_000,
        committers: 64,
        reopens: 5,
        modes: vec![false, true],
        dir: PathBuf::from("."),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--txns" => args.txns = value()?.parse().map_err(|e| format!("--txns: {e}"))?,
            "--committers" => {
                args.committers = value()?.parse().map_err(|e| format!("--committers: {e}"))?
            }
            "--reopens" => {
                args.reopens = value()?.parse().map_err(|e| format!("--reopens: {e}"))?
            }
            "--mode" => {
                args.modes = match value()?.as_str() {
                    "both" => vec![false, true],
                    "on" => vec![true],
                    "off" => vec![false],
                    other => return Err(format!("--mode: on, off or both, not {other}")),
                }
            }
            "--dir" => args.dir = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Fsync,
        ..DbOptions::default()
    })
    .expect("open")
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("restart_bench: {e}");
            std::process::exit(2);
        }
    };
    for checkpoints in args.modes.clone() {
        run(&args, checkpoints);
    }
}

fn run(args: &Args, checkpoints: bool) {
    let dir = tempfile::tempdir_in(&args.dir).expect("temp dir");
    let db = open(dir.path());
    let maintenance =
        checkpoints.then(|| db.start_maintenance(MaintenanceOptions::default()).unwrap());
    let next = Arc::new(AtomicU64::new(0));
    let value = Bytes::from(vec![b'v'; 100]);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.committers {
            let (db, next, value) = (db.clone(), next.clone(), value.clone());
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.txns {
                    break;
                }
                let mut t = db.begin(Isolation::ReadCommitted);
                t.put(format!("key{i:013}").as_bytes(), value.clone())
                    .unwrap();
                t.commit().unwrap();
            });
        }
    });
    let load = started.elapsed();
    let stats = db.maintenance_stats();
    drop(maintenance);
    drop(db);
    let mode = if checkpoints { "on" } else { "off" };
    println!(
        "checkpoints {mode}: {} txns by {} committers in {:.1} s ({:.0} commits/s); \
         {} checkpoints, {} WAL segments removed, {:.1} MiB of WAL after the last checkpoint",
        args.txns,
        args.committers,
        load.as_secs_f64(),
        args.txns as f64 / load.as_secs_f64(),
        stats.checkpoints,
        stats.wal_segments_removed,
        stats.wal_bytes_since_checkpoint as f64 / f64::from(1 << 20),
    );
    let mut times: Vec<Duration> = Vec::new();
    let mut replayed = 0;
    for _ in 0..args.reopens {
        let started = Instant::now();
        let db = open(dir.path());
        times.push(started.elapsed());
        replayed = db.recovery_stats().replayed_commits;
        // Check the data is all there, outside the timing.
        let t = db.begin(Isolation::RepeatableRead);
        let last = format!("key{:013}", args.txns - 1);
        assert!(t.get(last.as_bytes()).unwrap().is_some(), "lost a commit");
    }
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "checkpoints {mode}: reopen median {:.0} ms (min {:.0}, max {:.0}, {} reopens); \
         {replayed} commits replayed",
        ms(&times[times.len() / 2]),
        ms(&times[0]),
        ms(&times[times.len() - 1]),
        times.len(),
    );
}
