//! Background maintenance: automatic checkpoints and lazy version GC, and their figures.
//!
//! ```text
//!   Db::start_maintenance(opts) ──> Maintenance (handle; dropping it stops the thread)
//!                                        │
//!   thread "gnomon-maintenance" (holds a Weak<Db>), wakes every POLL or on stop:
//!     WAL written since the last checkpoint >= checkpoint_wal_size and a checkpoint
//!     can free half of that (not held back by an open bulk transaction or a prepare;
//!     held back: after 4 x checkpoint_wal_size more log),
//!     or something written and checkpoint_timeout passed      ──> Db::checkpoint()
//!     gc_interval passed                                      ──> Db::gc()
//!   every Db::checkpoint / Db::gc (background, VACUUM, tests) ──> Counters ──> MaintenanceStats
//! ```
//!
//! The thread holds only a `Weak<Db>` between passes, so it never keeps a database open: once
//! the last `Arc<Db>` is gone it exits by itself. Drop the handle before the database when a
//! prompt close matters (the server does): dropping it waits for a running pass to finish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::db::Db;
use crate::error::MvccError;
use crate::events::DbEvent;

/// While checkpoints are held back (an open bulk transaction, an unresolved prepare), one
/// comes anyway after this many times `checkpoint_wal_size` of log since the last attempt.
const HELD_BACK_VOLUMES: u64 = 4;

/// How often the maintenance thread looks at the WAL volume (at most; `gc_interval` may be
/// shorter). One mutex read of the log's end per wake-up.
const POLL: Duration = Duration::from_millis(100);

/// After a failed background checkpoint, the next attempt waits this long (a full disk should
/// not be hammered ten times a second).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// When the background thread checkpoints and collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceOptions {
    /// Checkpoint once this many bytes of WAL were written since the last checkpoint. Bounds
    /// both the replay work of a restart and the disk the WAL takes. Default 64 MiB.
    pub checkpoint_wal_size: u64,
    /// Checkpoint at least this often while anything was written. Default 5 minutes.
    pub checkpoint_timeout: Duration,
    /// How often a GC pass runs. Default: [`MaintenanceOptions::gc_interval_for`] of the
    /// default Δgc (10 s).
    pub gc_interval: Duration,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions {
            checkpoint_wal_size: DEFAULT_CHECKPOINT_WAL_SIZE,
            checkpoint_timeout: DEFAULT_CHECKPOINT_TIMEOUT,
            gc_interval: MaintenanceOptions::gc_interval_for(crate::db::DEFAULT_GC_WINDOW),
        }
    }
}

/// Default of [`MaintenanceOptions::checkpoint_wal_size`]: 64 MiB.
pub const DEFAULT_CHECKPOINT_WAL_SIZE: u64 = 64 << 20;
/// Default of [`MaintenanceOptions::checkpoint_timeout`]: 5 minutes (PostgreSQL's default).
pub const DEFAULT_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(300);

impl MaintenanceOptions {
    /// A GC interval that fits a Δgc of `gc_window`: a quarter of it, between 10 ms and 10 s.
    /// A version then waits at most about 1.25 Δgc (or 10 s more) before it is collected.
    pub fn gc_interval_for(gc_window: Duration) -> Duration {
        (gc_window / 4).clamp(Duration::from_millis(10), Duration::from_secs(10))
    }
}

/// A plain snapshot of the GC and checkpoint figures, from [`Db::maintenance_stats`]. Counters
/// count since the database was opened; they include passes run by the background thread,
/// by VACUUM and by explicit calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceStats {
    /// Versions (values and tombstones) in the engine's memtables now.
    pub versions_in_memtables: u64,
    /// Versions in the loaded checkpoint file now (a version may also be in a memtable).
    pub versions_in_checkpoint: u64,
    /// Versions removed by GC so far: from memtables by GC passes, from checkpoint data by
    /// checkpoint merges.
    pub versions_collected: u64,
    /// GC passes run.
    pub gc_passes: u64,
    /// The safe point of the last GC pass (zero before the first).
    pub gc_safe_point: Timestamp,
    /// How far the last pass's safe point was behind the clock: Δgc when no snapshot holds it
    /// back, more while an old snapshot (or prepared transaction) is in use.
    pub safe_point_lag: Duration,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Checkpoints that failed (the previous checkpoint and the WAL stay in charge).
    pub checkpoint_failures: u64,
    /// WAL position of the newest checkpoint: recovery replays from here (0 = none).
    pub last_checkpoint_lsn: u64,
    /// How long the last checkpoint took, wait for in-flight commits included.
    pub last_checkpoint_duration: Duration,
    /// Size of the newest checkpoint file in bytes.
    pub checkpoint_bytes: u64,
    /// WAL segment files deleted after checkpoints.
    pub wal_segments_removed: u64,
    /// WAL segment files on disk now (the active one included).
    pub wal_segments: u64,
    /// WAL bytes written after the newest checkpoint's position: what a restart replays.
    pub wal_bytes_since_checkpoint: u64,
}

/// Counters updated by `Db::checkpoint` and `Db::gc` (relaxed atomics: figures, not state).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    versions_collected: AtomicU64,
    gc_passes: AtomicU64,
    gc_safe_point: AtomicU128Cell,
    safe_point_lag_us: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_failures: AtomicU64,
    last_checkpoint_duration_us: AtomicU64,
    wal_segments_removed: AtomicU64,
}

/// A `u128` behind a mutex (std has no stable `AtomicU128`); written once per GC pass.
#[derive(Debug, Default)]
struct AtomicU128Cell(Mutex<u128>);

impl Counters {
    pub(crate) fn gc_pass(&self, safe_point: Timestamp, now: Timestamp, removed: u64) {
        self.gc_passes.fetch_add(1, Ordering::Relaxed);
        self.versions_collected
            .fetch_add(removed, Ordering::Relaxed);
        *self
            .gc_safe_point
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = safe_point.to_version().0;
        self.safe_point_lag_us.store(
            now.physical_us.saturating_sub(safe_point.physical_us),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn checkpoint_done(&self, took: Duration, dropped: u64, segments_removed: u64) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.versions_collected
            .fetch_add(dropped, Ordering::Relaxed);
        self.wal_segments_removed
            .fetch_add(segments_removed, Ordering::Relaxed);
        self.last_checkpoint_duration_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn checkpoint_failed(&self) {
        self.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The counter part of [`MaintenanceStats`]; the caller fills in the engine and WAL figures.
    pub(crate) fn snapshot(&self) -> MaintenanceStats {
        let safe_point = *self
            .gc_safe_point
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        MaintenanceStats {
            versions_collected: self.versions_collected.load(Ordering::Relaxed),
            gc_passes: self.gc_passes.load(Ordering::Relaxed),
            gc_safe_point: Timestamp::from_version(gnomon_engine::Version(safe_point)),
            safe_point_lag: Duration::from_micros(self.safe_point_lag_us.load(Ordering::Relaxed)),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: self.checkpoint_failures.load(Ordering::Relaxed),
            last_checkpoint_duration: Duration::from_micros(
                self.last_checkpoint_duration_us.load(Ordering::Relaxed),
            ),
            wal_segments_removed: self.wal_segments_removed.load(Ordering::Relaxed),
            ..MaintenanceStats::default()
        }
    }
}

/// The running background maintenance of one database. Dropping it stops the thread (after
/// the pass it may be running) and waits for it.
pub struct Maintenance {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Control {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        *self.control.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.control.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // NB: a panic inside a pass already ended the thread; nothing more to report.
            let _ = thread.join();
        }
    }
}

impl Db {
    /// Starts the background thread that checkpoints by WAL volume and time and runs GC passes
    /// (see the module docs). Checkpoints and GC run alongside readers and writers. At most one
    /// should run per database (a second one would only duplicate work).
    pub fn start_maintenance(
        self: &Arc<Self>,
        opts: MaintenanceOptions,
    ) -> Result<Maintenance, MvccError> {
        let control = Arc::new(Control::default());
        let weak = Arc::downgrade(self);
        let thread_control = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name("gnomon-maintenance".into())
            .spawn(move || run(weak, opts, &thread_control))
            .map_err(|source| MvccError::Io {
                path: self.dir().to_path_buf(),
                source,
            })?;
        Ok(Maintenance {
            control,
            thread: Some(thread),
        })
    }
}

/// The maintenance loop: sleeps until the next poll (or a stop), then runs whatever is due.
fn run(db: Weak<Db>, opts: MaintenanceOptions, control: &Control) {
    let tick = POLL.min(opts.gc_interval).max(Duration::from_millis(1));
    let mut last_checkpoint = Instant::now();
    let mut next_checkpoint_allowed = Instant::now();
    // The log's end when the last checkpoint started (0: none yet).
    let mut attempted_at_end = 0u64;
    let mut next_gc = Instant::now() + opts.gc_interval;
    loop {
        {
            let stop = control.stop.lock().unwrap_or_else(|p| p.into_inner());
            let (stop, _) = control
                .wake
                .wait_timeout_while(stop, tick, |stop| !*stop)
                .unwrap_or_else(|p| p.into_inner());
            if *stop {
                return;
            }
        }
        let Some(db) = db.upgrade() else {
            return; // the database was closed
        };
        let now = Instant::now();
        let progress = db.checkpoint_progress();
        let written = progress.end.saturating_sub(progress.stamp);
        let size = opts.checkpoint_wal_size;
        // By volume, a checkpoint is due when it can free at least half of checkpoint_wal_size
        // of log. One held back by an open bulk transaction or an unresolved prepare would
        // stamp at (or just past) where the last one did: it would rewrite the whole store
        // and free next to nothing, so it waits for the hold to end, or, to keep the
        // memtables bounded meanwhile, for HELD_BACK_VOLUMES x checkpoint_wal_size more log
        // since the last attempt. The timeout still applies.
        let advance = progress.reachable.saturating_sub(progress.stamp);
        let by_volume = written >= size
            && (advance >= size / 2
                || progress.end.saturating_sub(attempted_at_end)
                    >= size.saturating_mul(HELD_BACK_VOLUMES));
        let due = by_volume
            || (written > 0 && now.duration_since(last_checkpoint) >= opts.checkpoint_timeout);
        if due && now >= next_checkpoint_allowed {
            attempted_at_end = progress.end;
            match db.checkpoint() {
                Ok(_) => last_checkpoint = Instant::now(),
                Err(error) => {
                    db.emit(&DbEvent::CheckpointFailed { error: &error });
                    next_checkpoint_allowed = Instant::now() + RETRY_AFTER_FAILURE;
                }
            }
        }
        if Instant::now() >= next_gc {
            if let Err(error) = db.gc() {
                db.emit(&DbEvent::GcFailed { error: &error });
            }
            next_gc = Instant::now() + opts.gc_interval;
        }
    }
}
