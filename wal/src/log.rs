//! The log handle ([`Wal`]), the commit queue and the group-commit writer thread.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, Thread};

use crate::error::WalError;
use crate::format::{
    encode_record, encode_segment_header, parse_segment_file_name, segment_file_name,
    MAX_PAYLOAD_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs::{lock, path_in, write_zeros, FileSystem, WalFile};
use crate::segment::{validate_segment, Replay, SegmentMeta};
use crate::{Lsn, RecordKind, SyncPolicy, WalOptions};

/// One log stream: a directory of segments, one writer at a time (the writer thread or a
/// committer leading its own batch), up to [`WalOptions::max_syncs_in_flight`] batches
/// syncing at once, any number of committers.
///
/// `Send + Sync`; share it with `Arc<Wal>`. Dropping it lets the writer finish every record
/// already submitted, then stops the writer thread.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the handle, the committers' [`Pending`]s and the writer thread.
struct Shared {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: WalOptions,
    queue: Mutex<Queue>,
    /// The writer thread waits here for work.
    work_ready: Condvar,
    /// A segment roll waits here for the other syncs in flight to return.
    slot_freed: Condvar,
    /// [`WalOptions::max_syncs_in_flight`], at least 1: the number of sync slots.
    max_syncs: usize,
    /// The active segment and the write position. Locked only by whoever set
    /// [`Queue::writing`] (the writer thread or a leading committer), so never contended;
    /// a batch's sync runs without it, on a clone of its slot's file.
    file: Mutex<WriterFile>,
    /// Every segment, oldest first; the last one is the active segment.
    segments: Mutex<Vec<SegmentMeta>>,
    /// Written by whoever writes or syncs a batch; read by [`Wal::stats`].
    counters: Counters,
}

/// Upper bounds (inclusive) of the batch-size buckets in [`WalStats::batch_size_buckets`]; the
/// last bucket counts everything larger.
pub const BATCH_SIZE_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    fsyncs: AtomicU64,
    batch_sizes: [AtomicU64; BATCH_SIZE_BOUNDS.len() + 1],
    preallocations: AtomicU64,
    preallocated_bytes: AtomicU64,
    preallocation_failures: AtomicU64,
    overlapped_syncs: AtomicU64,
}

/// What the group-commit writer has done since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Batches written (one `write`, then one fsync per segment touched).
    pub batches: u64,
    /// Records written in those batches.
    pub records: u64,
    /// Bytes written in those batches.
    pub bytes: u64,
    /// fdatasync calls that made written records durable (zero with
    /// `SyncPolicy::OffUnsafeNoDurability`; the header syncs of a segment roll are not counted).
    pub fsyncs: u64,
    /// Commit syncs that started while another commit sync was in flight (always 0 with
    /// [`WalOptions::max_syncs_in_flight`] 1).
    pub overlapped_syncs: u64,
    /// Batches by record count: `batch_size_buckets[i]` counts batches of at most
    /// `BATCH_SIZE_BOUNDS[i]` records (and more than the previous bound); the last entry counts
    /// batches larger than every bound. Not cumulative.
    pub batch_size_buckets: [u64; BATCH_SIZE_BOUNDS.len() + 1],
    /// Extensions of the active segment's zero-filled room (each one `write` of zeros and, under
    /// `SyncPolicy::Fsync`, one `fdatasync`, not counted in `fsyncs`), and the bytes they added.
    pub preallocations: u64,
    /// Zero bytes written by those extensions.
    pub preallocated_bytes: u64,
    /// Extensions that failed (a write or sync error). The first one turns preallocation off
    /// for the rest of the process: batches then grow the file, as with `preallocate: 0`.
    pub preallocation_failures: u64,
}

/// The commit queue. One mutex guards it; a writer holds it only to take a batch and to
/// publish the batch's outcome, never across I/O.
struct Queue {
    /// Encoded frames handed in but not yet taken by the writer, in LSN order.
    frames: Vec<Vec<u8>>,
    /// The signal of the batch `frames` will form: its committers wait on it.
    open_batch: Arc<BatchSignal>,
    /// The writer thread is waiting on `work_ready` (so a submitter must wake it).
    writer_idle: bool,
    /// A batch is being taken and written (`write`, and a roll if it needs one), by the writer
    /// thread or a leading committer, or the room is being extended: nobody else may take a
    /// batch until this is cleared. Its sync runs after, without it.
    writing: bool,
    /// Sync slots not in use (indices into the writer's `sync_files`). A batch holds one from
    /// being taken until its sync returned and was published.
    free_slots: Vec<usize>,
    /// Batches written (their sync in flight) but not yet published, in LSN order, with the
    /// LSN each ends at.
    unpublished: VecDeque<(u64, Arc<BatchSignal>)>,
    /// A segment roll waits on `slot_freed` for the other syncs in flight.
    roll_waiting: bool,
    /// LSN the next submitted record gets.
    next_lsn: u64,
    /// Every record ending at or before this LSN is durable (per the sync policy).
    durable_lsn: u64,
    /// Set once a write or fsync fails; the log is poisoned from then on.
    failure: Option<Failure>,
    /// The active segment's zero-filled room ran low: the writer thread extends it before
    /// the next batch is written (committers do not lead meanwhile; the writer thread writes
    /// what queued up after the extension).
    extend_wanted: bool,
    /// The handle was dropped: the writer drains the queue and stops.
    closing: bool,
    /// The writer thread has exited (after closing, a failure, or a panic).
    writer_gone: bool,
}

#[derive(Clone)]
struct Failure {
    op: &'static str,
    source: Arc<io::Error>,
}

/// How a batch ended, as its committers learn it.
#[derive(Clone)]
enum BatchOutcome {
    /// Written and synced (per policy).
    Durable,
    /// This batch's write or sync failed.
    Failed(Failure),
    /// An earlier batch failed; this one was never written.
    Poisoned(Failure),
    /// The writer stopped before writing it.
    Closed,
}

/// One batch's completion. Each batch has its own, so finishing a batch wakes exactly its
/// committers, not those already queued for the next batch.
///
/// NB: the outcome is a write-once cell read without a lock, and each waiting committer is
/// unparked by the writer directly. A `Mutex` + `Condvar::notify_all` here woke the whole batch
/// at once onto one mutex (a thundering herd: the woken committers queued on it one after the
/// other, each a futex wait and wake more).
struct BatchSignal {
    outcome: OnceLock<BatchOutcome>,
    /// Committers parked until `outcome` is set; drained (and unparked) by `finish`.
    waiters: Mutex<Vec<Thread>>,
}

impl BatchSignal {
    fn new() -> Arc<BatchSignal> {
        Arc::new(BatchSignal {
            outcome: OnceLock::new(),
            waiters: Mutex::new(Vec::new()),
        })
    }

    /// Publishes the outcome (first one wins) and wakes every committer of the batch.
    fn finish(&self, outcome: BatchOutcome) {
        let _ = self.outcome.set(outcome);
        // NB: the outcome is set before the list is taken, and a waiter checks the outcome
        // with the list locked before it adds itself, so no waiter is missed.
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for thread in waiters {
            thread.unpark();
        }
    }

    /// Wakes every committer of the batch (its outcome is already set).
    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for thread in waiters {
            thread.unpark();
        }
    }

    /// Wakes one committer of this (still open) batch so that it leads the batch's write;
    /// false if none is parked on it yet.
    fn wake_leader(&self) -> bool {
        match lock(&self.waiters).first() {
            Some(thread) => {
                thread.unpark();
                true
            }
            None => false,
        }
    }

    /// Parks the calling thread until the batch has an outcome or it is woken to lead
    /// (`registered` says whether it is already on the waiter list); false if the outcome
    /// was set meanwhile.
    fn park(&self, registered: &mut bool) -> bool {
        if !*registered {
            let mut waiters = lock(&self.waiters);
            if self.outcome.get().is_some() {
                return false;
            }
            waiters.push(std::thread::current());
            *registered = true;
        }
        // NB: park may return spuriously (or for an earlier unpark); the caller re-checks.
        std::thread::park();
        true
    }
}

/// Held by the writer for the batch it is working on: if the writer unwinds without
/// finishing the batch, its committers learn `Closed` instead of waiting forever.
struct InFlight(Arc<BatchSignal>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finish(BatchOutcome::Closed);
    }
}

/// A record handed to the writer; [`Pending::wait`] blocks until it is durable.
#[must_use = "a submitted record is not known durable until Pending::wait returns Ok"]
pub struct Pending {
    state: PendingState,
}

enum PendingState {
    Queued {
        batch: Arc<BatchSignal>,
        lsn: u64,
        shared: Arc<Shared>,
    },
    /// Taken by `wait` (or refused at submission).
    Done,
    Refused(WalError),
}

impl Pending {
    /// The LSN the record was given, or `None` if it was refused at submission.
    pub fn lsn(&self) -> Option<Lsn> {
        match &self.state {
            PendingState::Queued { lsn, .. } => Some(Lsn(*lsn)),
            PendingState::Refused(_) | PendingState::Done => None,
        }
    }

    /// Blocks until the record is durable and returns its LSN, or returns the error that
    /// prevented it. `Ok` is never returned before the record's bytes were synced (under
    /// [`SyncPolicy::Fsync`]).
    ///
    /// If its batch is still open, no batch is being written and a sync slot is free when it
    /// is called (or once that becomes true), the calling thread writes and syncs the open
    /// batch itself, as the group-commit leader; otherwise it sleeps until a sync that covers
    /// its batch is published (or fails).
    pub fn wait(mut self) -> Result<Lsn, WalError> {
        let (batch, lsn, shared) = match std::mem::replace(&mut self.state, PendingState::Done) {
            PendingState::Queued { batch, lsn, shared } => (batch, lsn, shared),
            PendingState::Refused(err) => return Err(err),
            PendingState::Done => return Err(WalError::Closed),
        };
        let mut registered = false;
        let outcome = loop {
            if let Some(outcome) = batch.outcome.get() {
                break outcome;
            }
            let queue = lock(&shared.queue);
            // NB: only our own batch, while it is still open: a batch taken and syncing has
            // no outcome yet either, and its committers would only wait longer leading the
            // next one.
            if queue.may_lead() && Arc::ptr_eq(&queue.open_batch, &batch) {
                // We take it (with everything queued behind ours).
                shared.write_one_batch(queue);
                continue;
            }
            drop(queue);
            if !batch.park(&mut registered) {
                continue;
            }
        };
        match outcome {
            BatchOutcome::Durable => Ok(Lsn(lsn)),
            BatchOutcome::Failed(failure) => Err(WalError::WriteFailed {
                op: failure.op,
                source: Arc::clone(&failure.source),
            }),
            BatchOutcome::Poisoned(failure) => Err(WalError::Poisoned {
                op: failure.op,
                source: Arc::clone(&failure.source),
            }),
            BatchOutcome::Closed => Err(WalError::Closed),
        }
    }
}

impl Drop for Pending {
    /// A record submitted to be led by its waiter but never waited for: the writer thread
    /// takes it, so nothing queued is left without a writer.
    fn drop(&mut self) {
        if let PendingState::Queued { shared, .. } = &self.state {
            let queue = lock(&shared.queue);
            let wake = queue.writer_idle && !queue.writing && !queue.frames.is_empty();
            drop(queue);
            if wake {
                shared.work_ready.notify_one();
            }
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("lsn", &self.lsn()).finish()
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("opts", &self.shared.opts)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating) the log in `dir`. Validates all segments: a torn/bad tail of the last
    /// segment is overwritten with zeros, a bad record followed by valid ones is
    /// `Err(WalError::Corruption{..})`. A zero-filled tail is kept as the active segment's
    /// room; a fresh log starts with [`WalOptions::preallocate`] bytes of room.
    ///
    /// The zeroing (and the kept room) is synced before `open` returns, so a second crash
    /// cannot resurrect a torn record.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        fs.create_dir_all(dir)
            .map_err(|e| WalError::io("create log directory", dir, e))?;
        let names = fs
            .list_dir(dir)
            .map_err(|e| WalError::io("list log directory", dir, e))?;
        let mut firsts: Vec<u64> = names
            .iter()
            .filter_map(|name| parse_segment_file_name(name))
            .collect();
        firsts.sort_unstable();

        let mut segments = Vec::with_capacity(firsts.len().max(1));
        let mut active: Option<(Box<dyn WalFile>, PathBuf, u64, u64)> = None;
        let mut end_lsn = 0u64;
        for (i, &first) in firsts.iter().enumerate() {
            let path = path_in(dir, &segment_file_name(first));
            if i > 0 && first != end_lsn {
                return Err(WalError::corruption(
                    &path,
                    0,
                    format!("segment starts at LSN {first} but the previous one ends at {end_lsn}"),
                ));
            }
            let is_last = i + 1 == firsts.len();
            let validated = validate_segment(fs.as_ref(), &path, first, is_last)?;
            end_lsn = validated.end_lsn;
            segments.push(validated.meta);
            if is_last {
                if validated.room_end > validated.end_offset {
                    // NB: after a kill -9 (the machine still up) the room may be in the page
                    // cache only; sync it now so that the first commit's fdatasync is data-only.
                    validated
                        .file
                        .sync_data()
                        .map_err(|e| WalError::io("sync preallocated room", &path, e))?;
                }
                active = Some((
                    validated.file,
                    path,
                    validated.end_offset,
                    validated.room_end,
                ));
            }
        }
        let (active_file, active_path, active_offset, room_end) = match active {
            Some(active) => active,
            None => {
                let header_end = SEGMENT_HEADER_LEN as u64;
                let room_end =
                    (header_end + opts.preallocate).min(opts.segment_size.max(header_end));
                let (file, meta) = create_segment(fs.as_ref(), dir, 0, room_end)?;
                let path = meta.path.clone();
                segments.push(meta);
                (file, path, header_end, room_end)
            }
        };
        let active_file: Arc<dyn WalFile> = Arc::from(active_file);
        let max_syncs = opts.max_syncs_in_flight.max(1);
        let sync_files = open_sync_files(fs.as_ref(), &active_path, &active_file, max_syncs)
            .map_err(|e| WalError::io("open segment for syncing", &active_path, e))?;

        let preallocate = opts.preallocate;
        let shared = Arc::new(Shared {
            fs,
            dir: dir.to_path_buf(),
            opts,
            queue: Mutex::new(Queue {
                frames: Vec::new(),
                open_batch: BatchSignal::new(),
                writer_idle: false,
                writing: false,
                // NB: popped from the back, so slot 0 (the writer's own file) is used first.
                free_slots: (0..max_syncs).rev().collect(),
                unpublished: VecDeque::new(),
                roll_waiting: false,
                next_lsn: end_lsn,
                durable_lsn: end_lsn,
                failure: None,
                extend_wanted: false,
                closing: false,
                writer_gone: false,
            }),
            work_ready: Condvar::new(),
            slot_freed: Condvar::new(),
            max_syncs,
            file: Mutex::new(WriterFile {
                active: active_file,
                sync_files,
                active_offset,
                room_end,
                preallocate,
                written_lsn: end_lsn,
            }),
            segments: Mutex::new(segments),
            counters: Counters::default(),
        });
        let writer = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("gnomon-wal-writer".into())
            .spawn(move || run_writer_thread(writer))
            .map_err(|e| WalError::io("spawn writer thread", dir, e))?;
        // NB: return only once the writer thread waits for work (or is gone), so the first
        // committer finds the log idle and leads its own batch, as every later one that finds
        // it idle does; a writer still starting up would otherwise take that batch.
        while !{
            let queue = lock(&shared.queue);
            queue.writer_idle || queue.writer_gone
        } {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(Wal {
            shared,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Appends one record and blocks until it is durable (per SyncPolicy). Group commit inside:
    /// the caller writes and syncs the batch itself if no write is in progress.
    pub fn append(&self, kind: RecordKind, payload: &[u8]) -> Result<Lsn, WalError> {
        self.submit_slice(kind, payload, false).wait()
    }

    /// Hands a record to the writer thread and returns at once; `Pending::wait()` blocks until
    /// durable. For records written in the background while their submitter goes on.
    ///
    /// Records become durable in submission order: when a record is durable, so is every
    /// record submitted (on any thread) before it.
    pub fn submit(&self, kind: RecordKind, payload: Vec<u8>) -> Pending {
        self.submit_slice(kind, &payload, true)
    }

    /// Like [`Wal::submit`], for a caller that will call [`Pending::wait`] soon (a commit):
    /// the writer thread is not woken, so that the waiter can write and sync its batch itself
    /// (group-commit leader) and save the two thread hand-offs. A `Pending` dropped without
    /// `wait` hands its record to the writer thread.
    pub fn submit_to_wait(&self, kind: RecordKind, payload: Vec<u8>) -> Pending {
        self.submit_slice(kind, &payload, false)
    }

    fn submit_slice(&self, kind: RecordKind, payload: &[u8], background: bool) -> Pending {
        let refused = |err| Pending {
            state: PendingState::Refused(err),
        };
        if kind.0 == 0 {
            return refused(WalError::InvalidKind);
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return refused(WalError::RecordTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        // Encode and checksum on the committer's thread, outside the lock.
        let frame = encode_record(kind.0, payload);
        let mut queue = lock(&self.shared.queue);
        if let Some(failure) = &queue.failure {
            return refused(WalError::Poisoned {
                op: failure.op,
                source: Arc::clone(&failure.source),
            });
        }
        if queue.closing || queue.writer_gone {
            return refused(WalError::Closed);
        }
        let lsn = queue.next_lsn;
        queue.next_lsn = lsn + frame.len() as u64;
        queue.frames.push(frame);
        let batch = Arc::clone(&queue.open_batch);
        // NB: a busy writer re-checks the queue before sleeping, and whoever publishes a
        // batch hands what is queued on (`Shared::write_one_batch`), so only an idle writer
        // needs a wake-up, and only for a record nobody will wait for soon.
        let wake_writer = background && queue.writer_idle && !queue.writing;
        drop(queue);
        if wake_writer {
            self.shared.work_ready.notify_one();
        }
        Pending {
            state: PendingState::Queued {
                batch,
                lsn,
                shared: Arc::clone(&self.shared),
            },
        }
    }

    /// Every record with lsn >= from, in order.
    ///
    /// The iterator stops at the durable end of the log as of this call. If `from` lies before
    /// the oldest retained segment, replay starts at the oldest retained record: a caller that
    /// needs every record from `from` checks [`Wal::start_lsn`] first.
    pub fn replay(&self, from: Lsn) -> Result<Replay, WalError> {
        let stop = lock(&self.shared.queue).durable_lsn;
        // NB: durable_lsn is read before the segment list, so every segment holding a record
        // below `stop` is already in the list (the writer lists a segment before writing it).
        let segments = lock(&self.shared.segments).clone();
        let start = segments
            .iter()
            .rposition(|s| s.first_lsn <= from.0)
            .unwrap_or(0);
        Ok(Replay::new(
            Arc::clone(&self.shared.fs),
            segments[start..].to_vec(),
            from.0,
            stop,
        ))
    }

    /// What the group-commit writer has done since the log was opened (relaxed reads: each
    /// figure is exact, the set is not one instant).
    pub fn stats(&self) -> WalStats {
        let c = &self.shared.counters;
        let mut batch_size_buckets = [0; BATCH_SIZE_BOUNDS.len() + 1];
        for (out, n) in batch_size_buckets.iter_mut().zip(&c.batch_sizes) {
            *out = n.load(Ordering::Relaxed);
        }
        WalStats {
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            overlapped_syncs: c.overlapped_syncs.load(Ordering::Relaxed),
            batch_size_buckets,
            preallocations: c.preallocations.load(Ordering::Relaxed),
            preallocated_bytes: c.preallocated_bytes.load(Ordering::Relaxed),
            preallocation_failures: c.preallocation_failures.load(Ordering::Relaxed),
        }
    }

    /// LSN the next record will get (end of the log).
    pub fn end_lsn(&self) -> Lsn {
        Lsn(lock(&self.shared.queue).next_lsn)
    }

    /// Every record ending at or before this LSN is durable; equal to [`Wal::end_lsn`] when no
    /// record is in flight.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(lock(&self.shared.queue).durable_lsn)
    }

    /// Deletes whole segments whose records all lie before `lsn`; returns how many.
    ///
    /// The active (last) segment is never deleted. Removal goes oldest first and the directory
    /// is synced afterwards, so the remaining segments always form a contiguous suffix.
    pub fn remove_segments_before(&self, lsn: Lsn) -> Result<usize, WalError> {
        let mut segments = lock(&self.shared.segments);
        let mut removed = 0;
        let mut result = Ok(());
        while segments.len() > 1 && segments[1].first_lsn <= lsn.0 {
            if let Err(e) = self.shared.fs.remove_file(&segments[0].path) {
                result = Err(WalError::io("remove segment", &segments[0].path, e));
                break;
            }
            segments.remove(0);
            removed += 1;
        }
        drop(segments);
        if removed > 0 {
            self.shared
                .fs
                .sync_dir(&self.shared.dir)
                .map_err(|e| WalError::io("sync log directory", &self.shared.dir, e))?;
        }
        result.map(|()| removed)
    }

    /// The directory holding this log's segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Where the oldest retained segment begins: records below it were removed
    /// ([`Wal::remove_segments_before`]) and no replay can return them.
    pub fn start_lsn(&self) -> Lsn {
        Lsn(lock(&self.shared.segments)
            .first()
            .map_or(0, |segment| segment.first_lsn))
    }

    /// Number of segment files currently retained (including the active one).
    pub fn segment_count(&self) -> usize {
        lock(&self.shared.segments).len()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        lock(&self.shared.queue).closing = true;
        self.shared.work_ready.notify_all();
        if let Some(handle) = lock(&self.writer).take() {
            // A panicking writer already marked itself gone; nothing more to report here.
            let _ = handle.join();
        }
    }
}

/// Creates a segment file holding its header and zeros up to `room_end`, synced, and syncs the
/// directory entry.
fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    first_lsn: u64,
    room_end: u64,
) -> Result<(Box<dyn WalFile>, SegmentMeta), WalError> {
    let path = path_in(dir, &segment_file_name(first_lsn));
    let file = fs
        .create(&path)
        .map_err(|e| WalError::io("create segment", &path, e))?;
    file.write_all_at(0, &encode_segment_header(first_lsn))
        .and_then(|()| write_zeros(file.as_ref(), SEGMENT_HEADER_LEN as u64, room_end))
        .and_then(|()| file.sync_data())
        .map_err(|e| WalError::io("write segment header", &path, e))?;
    fs.sync_dir(dir)
        .map_err(|e| WalError::io("sync log directory", dir, e))?;
    Ok((file, SegmentMeta { first_lsn, path }))
}

/// The active segment and the write position, used by whoever writes the current batch.
struct WriterFile {
    /// The active segment, as the writer opened it: batches are written through it, and the
    /// syncs of a roll and of an extension (which run with no commit sync in flight) use it.
    active: Arc<dyn WalFile>,
    /// One open file description of the active segment per sync slot
    /// ([`WalOptions::max_syncs_in_flight`]): slot 0 is `active` itself, every other slot
    /// its own `open` of the segment (not a `dup`), so that each slot's `fdatasync` reports
    /// every writeback error since the slot opened the file (Linux reports such an error
    /// once per open file description). Reopened at each roll.
    sync_files: Vec<Arc<dyn WalFile>>,
    /// File offset in the active segment where the next frame goes.
    active_offset: u64,
    /// The active segment's bytes `[active_offset, room_end)` are zeros that were written and
    /// synced before any record goes there (`room_end` = the file's length, or less after a
    /// failed extension). `room_end >= active_offset`.
    room_end: u64,
    /// [`WalOptions::preallocate`]; 0 after a failed extension.
    preallocate: u64,
    /// LSN just past the last frame handed to the file system.
    written_lsn: u64,
}

/// The sync slots' files for a segment: `active` itself, then `slots - 1` more opens of
/// `path`.
fn open_sync_files(
    fs: &dyn FileSystem,
    path: &Path,
    active: &Arc<dyn WalFile>,
    slots: usize,
) -> io::Result<Vec<Arc<dyn WalFile>>> {
    let mut files = Vec::with_capacity(slots);
    files.push(Arc::clone(active));
    for _ in 1..slots {
        files.push(Arc::from(fs.open(path)?));
    }
    Ok(files)
}

/// Marks the writer thread gone when it exits for any reason, including a panic, so no
/// committer waits forever.
struct WriterExit(Arc<Shared>);

impl Drop for WriterExit {
    fn drop(&mut self) {
        let mut queue = lock(&self.0.queue);
        queue.writer_gone = true;
        let open = Arc::clone(&queue.open_batch);
        let failure = queue.failure.clone();
        drop(queue);
        // Records still queued were never written.
        open.finish(match failure {
            Some(failure) => BatchOutcome::Poisoned(failure),
            None => BatchOutcome::Closed,
        });
    }
}

/// Why a batch failed: which step, and the error.
type BatchError = (&'static str, io::Error);

impl Queue {
    /// The open batch may be taken and written now: it has records, nobody is writing, a
    /// sync slot is free, no extension is waiting for the syncs to drain, and the log has
    /// not failed. (The writer thread also takes batches while closing.)
    fn may_take(&self) -> bool {
        !self.writing
            && !self.free_slots.is_empty()
            && !self.frames.is_empty()
            && !self.extension_due()
            && self.failure.is_none()
            && !self.writer_gone
    }

    /// The room must be extended before the next batch is taken (unless the log is closing:
    /// then the writer thread drains the queue without extending).
    fn extension_due(&self) -> bool {
        self.extend_wanted && !self.closing
    }

    /// A committer may take the open batch and write it itself: [`Queue::may_take`], and the
    /// log is not closing (the writer thread drains it).
    fn may_lead(&self) -> bool {
        self.may_take() && !self.closing
    }

    /// After a failure (already in `failure`): every batch written but not yet published, and
    /// the records queued behind them, will never be reported durable; their batches end
    /// `Poisoned` (a batch whose outcome is already set keeps it). Returns the signals whose
    /// committers the caller must wake.
    fn poison_unpublished(&mut self) -> Vec<Arc<BatchSignal>> {
        let Some(failure) = self.failure.clone() else {
            return Vec::new();
        };
        self.frames.clear();
        let open = std::mem::replace(&mut self.open_batch, BatchSignal::new());
        let mut signals: Vec<Arc<BatchSignal>> = self
            .unpublished
            .drain(..)
            .map(|(_, signal)| signal)
            .collect();
        signals.push(open);
        for signal in &signals {
            let _ = signal.outcome.set(BatchOutcome::Poisoned(failure.clone()));
        }
        signals
    }

    /// What must happen now that a batch was written or a sync slot freed: computed under the
    /// queue lock, carried out by [`Shared::hand_on`] after it is released.
    fn next_step(&self, max_syncs: usize) -> NextStep {
        if self.failure.is_some() {
            return NextStep::WriterExits;
        }
        if self.writing {
            // Whoever writes hands on when its write returns.
            return NextStep::Nothing;
        }
        if self.extension_due() {
            // The last sync in flight to finish lets the writer thread extend the room.
            return if self.free_slots.len() == max_syncs {
                NextStep::Writer
            } else {
                NextStep::Nothing
            };
        }
        if !self.may_take() {
            NextStep::Nothing
        } else if self.closing {
            NextStep::Writer
        } else {
            NextStep::Leader {
                batch: Arc::clone(&self.open_batch),
                writer_idle: self.writer_idle,
            }
        }
    }
}

/// See [`Queue::next_step`].
enum NextStep {
    Nothing,
    /// Wake one committer of this open batch to lead it (the writer thread if none is parked
    /// and it is idle; a busy writer thread re-checks the queue before it sleeps).
    Leader {
        batch: Arc<BatchSignal>,
        writer_idle: bool,
    },
    /// Wake the writer thread (an extension is due, or the log is closing).
    Writer,
    /// The log failed: the writer thread exits, a roll waiting for the syncs gives up.
    WriterExits,
}

/// Held by whoever works on a batch (or an extension), from taking it to publishing it: if
/// that thread unwinds (a panic) first, the log is failed, since nothing after the batch can
/// be known durable, and the batch's sync slot is given back.
struct BatchGuard<'a> {
    shared: &'a Shared,
    /// The sync slot held, if any.
    slot: Option<usize>,
    /// `Queue::writing` is still set by this thread.
    writing: bool,
    done: bool,
}

impl Drop for BatchGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queue = lock(&self.shared.queue);
        if self.writing {
            queue.writing = false;
        }
        if let Some(slot) = self.slot {
            queue.free_slots.push(slot);
        }
        if queue.failure.is_none() {
            queue.failure = Some(Failure {
                op: "write",
                source: Arc::new(io::Error::other("the log writer panicked")),
            });
        }
        let signals = queue.poison_unpublished();
        drop(queue);
        for signal in signals {
            signal.wake_all();
        }
        self.shared.hand_on(NextStep::WriterExits);
    }
}

/// The writer thread: extends the active segment's zero-filled room when it runs low, writes
/// what is queued when no committer leads it (records submitted for the background, records
/// whose committers are all asleep, records queued during an extension), and drains the queue
/// at close.
fn run_writer_thread(shared: Arc<Shared>) {
    let _exit = WriterExit(Arc::clone(&shared));
    loop {
        let mut queue = lock(&shared.queue);
        loop {
            if queue.failure.is_some() {
                // Poisoned: WriterExit fails what is still queued (their batch ends
                // Poisoned), and submit refuses new records. Never retry an fsync: after a
                // failed fsync the kernel may have dropped the dirty pages.
                return;
            }
            if queue.extension_due() {
                // Extend once nobody writes and every commit sync has returned; committers
                // do not take batches meanwhile.
                if !queue.writing && queue.free_slots.len() == shared.max_syncs {
                    break;
                }
            } else if queue.may_take() {
                break;
            } else if queue.closing && !queue.writing && queue.frames.is_empty() {
                // Closing and drained. NB: syncs still in flight belong to committers, who
                // publish them themselves.
                return;
            }
            queue.writer_idle = true;
            queue = shared
                .work_ready
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.writer_idle = false;
        }
        if queue.extension_due() {
            shared.extend_room(queue);
        } else {
            shared.write_one_batch(queue);
        }
    }
}

impl Shared {
    /// Takes everything queued as one batch (the caller saw [`Queue::may_take`]) with a free
    /// sync slot, writes it with one `write`, then lets the next batch be taken while it
    /// `fdatasync`s this one on its slot's file, publishes the new durable LSN and wakes the
    /// committers of every batch that sync made durable.
    ///
    /// NB: an `fdatasync` that started after a batch's `write` returned, and returned `Ok`,
    /// made that batch and every earlier one durable (it writes back every dirty page of the
    /// file and waits for the pages another sync already has under writeback). So a sync may
    /// publish batches whose own syncs have not returned yet, and a slower sync of an earlier
    /// batch finishing later publishes nothing new.
    fn write_one_batch(&self, mut queue: MutexGuard<'_, Queue>) {
        let Some(slot) = queue.free_slots.pop() else {
            return; // NB: unreachable, the caller checked may_take
        };
        queue.writing = true;
        let frames = std::mem::take(&mut queue.frames);
        let batch = InFlight(std::mem::replace(&mut queue.open_batch, BatchSignal::new()));
        drop(queue);
        let mut guard = BatchGuard {
            shared: self,
            slot: Some(slot),
            writing: true,
            done: false,
        };

        // 1. Write, in LSN order (we hold `writing`); a roll inside waits for the syncs.
        let mut file = lock(&self.file);
        let before = file.written_lsn;
        let batch_end = before + frames.iter().map(|f| f.len() as u64).sum::<u64>();
        let written = file.write_batch(self, &frames);
        let sync_file = Arc::clone(&file.sync_files[slot]);
        let wants_room = written.is_ok() && file.wants_room(self);
        drop(file);

        // 2. Let the next batch be taken, unless this one or an earlier one failed.
        let mut queue = lock(&self.queue);
        queue.writing = false;
        guard.writing = false;
        let refused = match (written, &queue.failure) {
            (_, Some(failure)) => Some(BatchOutcome::Poisoned(failure.clone())),
            (Err((op, source)), None) => {
                let failure = Failure {
                    op,
                    source: Arc::new(source),
                };
                queue.failure = Some(failure.clone());
                Some(BatchOutcome::Failed(failure))
            }
            (Ok(()), None) => None,
        };
        if let Some(outcome) = refused {
            // Not synced: never retry after a failure, and never sync a batch behind one.
            let _ = batch.0.outcome.set(outcome);
            queue.free_slots.push(slot);
            guard.done = true;
            let signals = queue.poison_unpublished();
            drop(queue);
            batch.0.wake_all();
            for signal in signals {
                signal.wake_all();
            }
            self.hand_on(NextStep::WriterExits);
            return;
        }
        self.count_batch(frames.len() as u64, batch_end - before);
        if self.max_syncs - queue.free_slots.len() > 1 {
            self.counters
                .overlapped_syncs
                .fetch_add(1, Ordering::Relaxed);
        }
        queue
            .unpublished
            .push_back((batch_end, Arc::clone(&batch.0)));
        if wants_room {
            queue.extend_wanted = true;
        }
        let next = queue.next_step(self.max_syncs);
        drop(queue);
        self.hand_on(next);

        // 3. Sync on this slot's own file, with no lock held.
        let synced = match self.opts.sync {
            SyncPolicy::Fsync => sync_file.sync_data(),
            SyncPolicy::OffUnsafeNoDurability => Ok(()),
        };

        // 4. Publish.
        let mut queue = lock(&self.queue);
        queue.free_slots.push(slot);
        guard.done = true;
        let mut signals = Vec::new();
        match synced {
            Ok(()) => {
                if self.opts.sync == SyncPolicy::Fsync {
                    self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                // NB: checked under the queue lock: after a failure (ours or a concurrent
                // sync's) nothing more is published; whoever set it poisoned our batch.
                if queue.failure.is_none() {
                    queue.durable_lsn = queue.durable_lsn.max(batch_end);
                    while let Some((end, _)) = queue.unpublished.front() {
                        if *end > batch_end {
                            break;
                        }
                        if let Some((_, signal)) = queue.unpublished.pop_front() {
                            let _ = signal.outcome.set(BatchOutcome::Durable);
                            signals.push(signal);
                        }
                    }
                }
            }
            Err(source) => {
                if queue.failure.is_none() {
                    let failure = Failure {
                        op: "fsync",
                        source: Arc::new(source),
                    };
                    queue.failure = Some(failure.clone());
                    // NB: a later batch's successful sync may have published this one
                    // already (it covered it); that outcome stands.
                    let _ = batch.0.outcome.set(BatchOutcome::Failed(failure));
                }
                signals.extend(queue.poison_unpublished());
            }
        }
        let next = queue.next_step(self.max_syncs);
        let roll_waiting = queue.roll_waiting;
        drop(queue);
        // NB: our own batch has an outcome now (Durable, Failed or Poisoned).
        batch.0.wake_all();
        for signal in signals {
            signal.wake_all();
        }
        if roll_waiting {
            self.slot_freed.notify_all();
        }
        self.hand_on(next);
    }

    /// Carries out a [`NextStep`] (with the queue lock released).
    fn hand_on(&self, next: NextStep) {
        match next {
            NextStep::Nothing => {}
            NextStep::Leader { batch, writer_idle } => {
                if !batch.wake_leader() && writer_idle {
                    self.work_ready.notify_one();
                }
            }
            NextStep::Writer => self.work_ready.notify_one(),
            NextStep::WriterExits => {
                self.work_ready.notify_all();
                self.slot_freed.notify_all();
            }
        }
    }

    /// Waits until no commit sync is in flight but the caller's own slot (a roll: the
    /// caller holds `writing` and one slot). Fails if the log failed meanwhile.
    fn wait_for_other_syncs(&self) -> io::Result<()> {
        let mut queue = lock(&self.queue);
        queue.roll_waiting = true;
        while queue.free_slots.len() + 1 < self.max_syncs && queue.failure.is_none() {
            queue = self
                .slot_freed
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        queue.roll_waiting = false;
        match &queue.failure {
            Some(failure) => Err(io::Error::other(format!(
                "the log failed while a segment roll waited for the syncs in flight: {}",
                failure.source
            ))),
            None => Ok(()),
        }
    }

    /// Extends the active segment's zero-filled room (the caller saw [`Queue::extend_wanted`],
    /// nobody writing and no sync in flight). Holds `writing` meanwhile, so that no commit's
    /// `fdatasync` runs while the zeros are dirty: it would write them, and the inode, itself.
    fn extend_room(&self, mut queue: MutexGuard<'_, Queue>) {
        queue.writing = true;
        queue.extend_wanted = false;
        drop(queue);
        let mut guard = BatchGuard {
            shared: self,
            slot: None,
            writing: true,
            done: false,
        };
        lock(&self.file).extend_room(self);
        let mut queue = lock(&self.queue);
        queue.writing = false;
        guard.done = true;
        drop(queue);
    }

    fn count_batch(&self, records: u64, bytes: u64) {
        let c = &self.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.records.fetch_add(records, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        let bucket = BATCH_SIZE_BOUNDS
            .iter()
            .position(|&bound| records <= bound)
            .unwrap_or(BATCH_SIZE_BOUNDS.len());
        c.batch_sizes[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl WriterFile {
    /// Writes the batch's frames at the end of the log. The bytes of the last (usually the
    /// only) segment it touches are written, not synced: the caller syncs them on its slot.
    /// A roll on the way waits for the other syncs in flight, then syncs the finished segment
    /// itself before cutting it.
    fn write_batch(&mut self, shared: &Shared, frames: &[Vec<u8>]) -> Result<(), BatchError> {
        let segment_size = shared.opts.segment_size;
        let mut buf = Vec::with_capacity(frames.iter().map(Vec::len).sum());
        for frame in frames {
            let offset = self.active_offset + buf.len() as u64;
            let has_records = offset > SEGMENT_HEADER_LEN as u64;
            if has_records && offset + frame.len() as u64 > segment_size {
                self.write_out(&buf)?;
                shared
                    .wait_for_other_syncs()
                    .map_err(|e| ("segment roll", e))?;
                if !buf.is_empty() && shared.opts.sync == SyncPolicy::Fsync {
                    // NB: the earlier batches' syncs all returned Ok (else the wait failed),
                    // so only this batch's head is unsynced.
                    self.active.sync_data().map_err(|e| ("fsync", e))?;
                    shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                buf.clear();
                self.roll(shared)?;
            }
            buf.extend_from_slice(frame);
        }
        self.write_out(&buf)
    }

    /// Writes `buf` at the end of the active segment (not synced).
    fn write_out(&mut self, buf: &[u8]) -> Result<(), BatchError> {
        if buf.is_empty() {
            return Ok(());
        }
        // NB: inside the room this overwrites zeros already on disk, so the batch's fdatasync
        // writes data only; past it (the room ran out, preallocation is off, the first batch
        // of a segment) the file grows and the fdatasync writes the inode too.
        self.active
            .write_all_at(self.active_offset, buf)
            .map_err(|e| ("write", e))?;
        self.active_offset += buf.len() as u64;
        self.room_end = self.room_end.max(self.active_offset);
        self.written_lsn += buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment at `written_lsn` (no sync in flight: the caller waited). The old
    /// one was synced first and is cut to its last record (and the cut synced) if it had room
    /// left, so a later segment existing on disk implies every earlier one is complete and
    /// ends exactly at its last record. The new one holds only its header; the writer thread
    /// gives it room after the batch (so the roll costs the batch no zero-filling). The sync
    /// slots' files are reopened on the new segment.
    fn roll(&mut self, shared: &Shared) -> Result<(), BatchError> {
        let fs = shared.fs.as_ref();
        // NB: the file's length, not `room_end`: a failed extension may have left zeros
        // past the room, and a non-final segment must end exactly at its last record.
        let len = self.active.file_len().map_err(|e| ("segment roll", e))?;
        if len > self.active_offset {
            self.active
                .set_len(self.active_offset)
                .map_err(|e| ("segment roll", e))?;
            if shared.opts.sync == SyncPolicy::Fsync {
                self.active.sync_data().map_err(|e| ("segment roll", e))?;
            }
        }
        let path = path_in(&shared.dir, &segment_file_name(self.written_lsn));
        let file: Arc<dyn WalFile> = Arc::from(fs.create(&path).map_err(|e| ("segment roll", e))?);
        let header = encode_segment_header(self.written_lsn);
        file.write_all_at(0, &header)
            .map_err(|e| ("segment roll", e))?;
        if shared.opts.sync == SyncPolicy::Fsync {
            file.sync_data().map_err(|e| ("segment roll", e))?;
            fs.sync_dir(&shared.dir).map_err(|e| ("segment roll", e))?;
        }
        let sync_files =
            open_sync_files(fs, &path, &file, shared.max_syncs).map_err(|e| ("segment roll", e))?;
        lock(&shared.segments).push(SegmentMeta {
            first_lsn: self.written_lsn,
            path,
        });
        self.active = file;
        self.sync_files = sync_files;
        self.active_offset = SEGMENT_HEADER_LEN as u64;
        self.room_end = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    /// The room left is under half of [`WalOptions::preallocate`] and the segment may still
    /// grow (rooms never reach past `segment_size`).
    fn wants_room(&self, shared: &Shared) -> bool {
        self.preallocate > 0
            && self.room_end < shared.opts.segment_size
            && self.room_end - self.active_offset < self.preallocate / 2
    }

    /// Writes `preallocate` more zeros at the end of the room (not past `segment_size`) and
    /// syncs them (per policy); only then do they count as room. A failure turns
    /// preallocation off (counted in [`WalStats::preallocation_failures`]) instead of failing
    /// the log: no record is in the failed bytes, the next batches write past them, and their
    /// own fdatasync makes them durable as without preallocation. The failed sync is never
    /// retried.
    ///
    /// NB: a real writeback error here is also reported to the other sync slots' files (each
    /// open file description sees it once), so with more than one slot the next commit sync
    /// on one of them fails and poisons the log: conservative, never a lost commit.
    fn extend_room(&mut self, shared: &Shared) {
        let start = self.room_end;
        let end = (start + self.preallocate).min(shared.opts.segment_size);
        if self.preallocate == 0 || end <= start {
            return;
        }
        let written = write_zeros(self.active.as_ref(), start, end).and_then(|()| {
            if shared.opts.sync == SyncPolicy::Fsync {
                self.active.sync_data()
            } else {
                Ok(())
            }
        });
        let c = &shared.counters;
        match written {
            Ok(()) => {
                self.room_end = end;
                c.preallocations.fetch_add(1, Ordering::Relaxed);
                c.preallocated_bytes
                    .fetch_add(end - start, Ordering::Relaxed);
            }
            Err(_) => {
                self.preallocate = 0;
                c.preallocation_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
