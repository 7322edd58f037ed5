//! `Engine`: the public face of the storage layer.

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;

use crate::checkpoint::{self, Checkpoint, CheckpointWriter};
use crate::dirlock::DirLock;
use crate::key::Source;
use crate::layers::Layers;
use crate::memtable::{MemTable, WriteGuard};
use crate::merge::{self, CheckpointInput, MergeInput};
use crate::ranges::{RangeDelete, RangeDeletes};
use crate::scan::Scan;
use crate::visibility::Visibility;
use crate::{EngineError, Value, Version};

/// Tuning knobs. `EngineOptions::default()` is what production uses.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Size of a checkpoint data block in bytes: blocks end on multiples of it in the file (a
    /// block closes before an entry that would cross the first multiple at least half a block
    /// past its start; a longer entry gets a block of its own), so with the default, the page
    /// size, a block's in-block index and nearly all its entries share one page. Smaller
    /// blocks make point reads from a checkpoint cheaper, larger ones make the index smaller.
    /// Default 4096.
    pub checkpoint_block_size: usize,
    /// fsync checkpoint files and the directory. Default `true`; turning it off loses
    /// crash safety and exists only for tests and benchmarks.
    pub fsync: bool,
    /// Size in bytes of each memtable's filter of user keys, which lets a point read skip a
    /// memtable that does not hold the key (rounded down to 64-byte blocks; 0 turns it off).
    /// The filter is made with the memtable and does not grow: past its sizing the
    /// false-positive rate climbs and reads cost what they would without it. The memtable a
    /// checkpoint's freeze starts gets more when the frozen one held more versions than this
    /// many bytes: one byte per version, rounded up to a power of two, at most
    /// [`MAX_MEMTABLE_FILTER_BYTES`] (a steady workload fills the next memtable alike).
    /// Default [`DEFAULT_MEMTABLE_FILTER_BYTES`].
    pub memtable_filter_bytes: usize,
}

/// Default of [`EngineOptions::memtable_filter_bytes`]: 1 MiB per memtable. A TPC-B memtable
/// filled up to the server's default 64 MiB `checkpoint_wal_size` (~295 WAL bytes and 4
/// versions per transaction: ~227K transactions) holds ~430K distinct keys (each transaction's
/// history row, ~200K distinct accounts, the tellers and branches): 19.5 bits per key, 0.03%
/// false positives. Twice that many keys still give 2.9%, four times 32% (`filter.rs`).
pub const DEFAULT_MEMTABLE_FILTER_BYTES: usize = 1 << 20;

/// The most a memtable's key filter grows to after a checkpoint of a big memtable: 64 MiB,
/// 8 bits per key for 64M keys.
pub const MAX_MEMTABLE_FILTER_BYTES: usize = 64 << 20;

/// Filter size for a memtable that follows one of `versions` versions (see
/// [`EngineOptions::memtable_filter_bytes`]): one byte (8 bits) per version, at least 8 bits
/// per distinct key, rounded up to a power of two; never below `configured`, 0 stays 0.
fn filter_bytes_after(configured: usize, versions: usize) -> usize {
    if configured == 0 {
        return 0;
    }
    configured.max(versions.next_power_of_two().min(MAX_MEMTABLE_FILTER_BYTES))
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            checkpoint_block_size: 4096,
            fsync: true,
            memtable_filter_bytes: DEFAULT_MEMTABLE_FILTER_BYTES,
        }
    }
}

/// A checkpoint file that `Engine::open` could not use.
#[derive(Debug)]
pub struct SkippedCheckpoint {
    /// The file.
    pub path: PathBuf,
    /// Why it was rejected (corruption, truncation, unknown format, I/O).
    pub error: EngineError,
}

/// What `Engine::open` found on disk.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// The checkpoint loaded, if any.
    pub checkpoint: Option<PathBuf>,
    /// The loaded checkpoint's WAL LSN (0 without one): replay the WAL from here.
    pub wal_lsn: u64,
    /// Newer checkpoints that failed validation and were passed over, newest first. Later
    /// checkpoints never delete them.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// Result of one `Engine::checkpoint`.
#[derive(Clone, Debug)]
pub struct CheckpointInfo {
    /// The new checkpoint file.
    pub path: PathBuf,
    /// The WAL LSN it is stamped with.
    pub wal_lsn: u64,
    /// Versions written (values and tombstones).
    pub entries: u64,
    /// Data blocks written.
    pub blocks: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Versions dropped during the merge because the GC safe point no longer needs them.
    pub versions_dropped: u64,
    /// Older checkpoint files deleted afterwards.
    pub files_removed: usize,
}

/// Result of one `Engine::gc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Versions removed from the memtables now.
    pub versions_removed: u64,
    /// Memtable versions looked at.
    pub versions_examined: u64,
}

/// A snapshot of what the engine holds, from [`Engine::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Versions (values and tombstones) in the active and frozen memtables.
    pub memtable_versions: u64,
    /// Memtables frozen by a running (or failed) checkpoint.
    pub frozen_memtables: usize,
    /// Versions in the loaded checkpoint file. NB: a version may be counted both here and in a
    /// memtable (layers may hold identical duplicates, e.g. after WAL replay).
    pub checkpoint_versions: u64,
    /// Size of the loaded checkpoint file in bytes.
    pub checkpoint_bytes: u64,
    /// WAL LSN the loaded checkpoint is stamped with (0 without one).
    pub checkpoint_wal_lsn: u64,
    /// The highest safe point [`Engine::gc`] was given so far.
    pub gc_safe_point: Version,
    /// Size of the active memtable's key filter in bytes (see
    /// [`EngineOptions::memtable_filter_bytes`]).
    pub memtable_filter_bytes: u64,
}

/// Permission to apply one batch, returned by [`Engine::prepare_batch`].
///
/// Pass it to [`Engine::apply_batch`] or [`Engine::abandon_batch`]. NB: dropping a ticket
/// without either abandons the batch, so a panicking or erroring caller cannot stall
/// visibility forever.
#[derive(Debug)]
pub struct BatchTicket {
    version: Version,
    visibility: Arc<Visibility>,
    settled: bool,
}

impl BatchTicket {
    /// The version this batch writes at.
    pub fn version(&self) -> Version {
        self.version
    }
}

impl Drop for BatchTicket {
    fn drop(&mut self) {
        if !self.settled {
            self.visibility.abandon(self.version);
        }
    }
}

/// Versioned key-value storage. `Send + Sync`; share it through `Arc<Engine>`.
pub struct Engine {
    dir: PathBuf,
    opts: EngineOptions,
    layers: RwLock<Arc<Layers>>,
    visibility: Arc<Visibility>,
    /// Serialises checkpoints; holds the next checkpoint sequence number.
    checkpoint_seq: Mutex<u64>,
    /// The highest safe point `gc` was given; applied to checkpoint data at the next merge.
    gc_safe_point: Mutex<Version>,
    recovery: RecoveryReport,
    _lock: DirLock,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.dir)
            .field("visible", &self.visible())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens `dir` (creating it), takes the directory lock file (a second engine on the same
    /// directory, in any process, gets [`EngineError::Locked`]), and loads the newest valid
    /// checkpoint. Newer checkpoints that fail validation are skipped, logged to stderr and
    /// listed in [`Engine::recovery_report`]; they are never deleted. The caller must check
    /// that its log still reaches back to the loaded checkpoint's LSN: a skipped checkpoint
    /// may have been the only copy of what came before the log's start. Returns the loaded checkpoint's WAL LSN (0 if
    /// none): the caller replays the WAL from there through [`Engine::apply_recovered`].
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<(Engine, u64), EngineError> {
        fs::create_dir_all(dir).map_err(|e| EngineError::io("create dir", dir, e))?;
        let lock = DirLock::acquire(dir)?;
        let files = checkpoint::list(dir)?;
        let next_seq = files.first().map_or(1, |(seq, _)| seq + 1);
        let mut report = RecoveryReport::default();
        let mut loaded = None;
        for (seq, path) in files {
            match Checkpoint::open(&path, seq) {
                Ok(found) => {
                    loaded = Some(Arc::new(found));
                    break;
                }
                Err(error) => {
                    eprintln!("gnomon-engine: skipping checkpoint: {error}");
                    report.skipped.push(SkippedCheckpoint { path, error });
                }
            }
        }
        let recovered_version = loaded.as_ref().map_or(Version::MIN, |c| c.max_version());
        report.wal_lsn = loaded.as_ref().map_or(0, |c| c.wal_lsn());
        report.checkpoint = loaded.as_ref().map(|c| c.path().to_path_buf());
        let wal_lsn = report.wal_lsn;
        let active = Arc::new(MemTable::new(opts.memtable_filter_bytes));
        let ranges = Arc::new(RangeDeletes::new(
            loaded
                .as_ref()
                .map_or_else(Vec::new, |c| c.range_deletes().to_vec()),
        ));
        let engine = Engine {
            dir: dir.to_path_buf(),
            opts,
            layers: RwLock::new(Arc::new(Layers {
                active,
                frozen: Vec::new(),
                checkpoint: loaded,
                ranges,
            })),
            visibility: Visibility::new(recovered_version),
            checkpoint_seq: Mutex::new(next_seq),
            gc_safe_point: Mutex::new(Version::MIN),
            recovery: report,
            _lock: lock,
        };
        Ok((engine, wal_lsn))
    }

    /// What `open` found on disk (loaded checkpoint, skipped corrupt ones).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current layer set. Held only for the Arc clone: readers never wait on writers.
    fn layers(&self) -> Arc<Layers> {
        self.layers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Newest version of `key` with version <= `at`: `None` if there is none or it is a
    /// tombstone. A snapshot `at <= visible()` gives a stable, batch-atomic answer.
    pub fn get(&self, key: &[u8], at: Version) -> Option<Value> {
        self.get_found(key, at).and_then(|(_, value)| value)
    }

    /// Like [`Engine::get`], with the version the value was written at (for system columns
    /// that show a row's commit timestamp). A separate entry point: plain reads do not carry
    /// the version out.
    pub fn get_versioned(&self, key: &[u8], at: Version) -> Option<(Version, Value)> {
        match self.get_found(key, at) {
            Some((version, Some(value))) => Some((version, value)),
            _ => None,
        }
    }

    /// The newest version of `key` at or below `at`, tombstone or not.
    #[inline(always)]
    fn get_found(&self, key: &[u8], at: Version) -> Option<(Version, Option<Value>)> {
        // The read lock is held for this one lookup instead of cloning the `Arc` (two fewer
        // atomic read-modify-writes on a line every reader shares); a layer swap waits for it.
        let layers = self.layers.read().unwrap_or_else(PoisonError::into_inner);
        let best = Self::newest_in_layers(&layers, key, at);
        match best {
            Some((version, _)) => match layers.ranges.hiding(key, version, at) {
                // Hidden by a range delete: it reads as a tombstone at the delete's version.
                Some(deleted) => Some((deleted, None)),
                None => best,
            },
            None => None,
        }
    }

    /// The newest version of `key` at or below `at` over the layers, range deletes aside.
    #[inline(always)]
    fn newest_in_layers(
        layers: &Layers,
        key: &[u8],
        at: Version,
    ) -> Option<(Version, Option<Value>)> {
        let mut best = layers.active.newest_value_at(key, at);
        if let Some((version, _)) = &best {
            // Nothing older can hold a newer version than the checkpoint's newest: with no
            // frozen memtable, an active hit at or above it is the answer.
            let done = layers.frozen.is_empty()
                && layers
                    .checkpoint
                    .as_ref()
                    .is_none_or(|c| c.max_version() <= *version);
            if done {
                return best;
            }
        }
        for i in 1..layers.count() {
            let Some(source) = layers.source(i) else {
                continue;
            };
            if let Some(found) = source.newest_value_at(key, at) {
                if best.as_ref().is_none_or(|b| found.0 > b.0) {
                    best = Some(found);
                }
            }
        }
        best
    }

    /// Newest version of `key` at any time, tombstones included (for write-conflict checks).
    /// A range delete covering the key counts as a version of it.
    pub fn latest_version(&self, key: &[u8]) -> Option<Version> {
        let layers = self.layers();
        let newest = (0..layers.count())
            .filter_map(|i| layers.source(i))
            .filter_map(|source| source.newest_value_at(key, Version::MAX))
            .map(|(version, _)| version)
            .max()?;
        Some(
            layers
                .ranges
                .hiding(key, newest, Version::MAX)
                .unwrap_or(newest),
        )
    }

    /// Range scan at snapshot `at`: per user key in `[start, end]` (per the bounds) its newest
    /// version <= `at`, tombstones skipped; ascending keys, or descending with `reverse`.
    pub fn scan(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        at: Version,
        reverse: bool,
    ) -> Scan {
        Scan::new(self.layers(), start, end, at, reverse)
    }

    /// Registers an in-flight batch at `version`. Versions must strictly increase across
    /// calls (and exceed everything recovered), else [`EngineError::VersionNotIncreasing`].
    /// Until the ticket is applied or abandoned, `visible()` stays below `version`.
    pub fn prepare_batch(&self, version: Version) -> Result<BatchTicket, EngineError> {
        self.visibility.prepare(version)?;
        Ok(BatchTicket {
            version,
            visibility: Arc::clone(&self.visibility),
            settled: false,
        })
    }

    /// Inserts the batch (`None` = tombstone) and publishes it: `visible()` passes its version
    /// once every earlier prepared batch is applied or abandoned too.
    pub fn apply_batch(&self, mut ticket: BatchTicket, writes: Vec<(Vec<u8>, Option<Value>)>) {
        self.insert_all(ticket.version, writes);
        ticket.settled = true;
        self.visibility.applied(ticket.version);
    }

    /// Inserts a prepared batch without publishing it: its versions are in the memtable, seen
    /// by reads at versions above `visible()` (`get(key, Version::MAX)`, `latest_version`) but by
    /// no snapshot reader, until [`Engine::publish_batch`]. This is what lets the layer above
    /// hand a row to the next writer before the batch is durable (early lock release).
    ///
    /// Keys may come as `Vec<u8>` or as `Bytes` (slices of a shared buffer are kept as they
    /// are, not copied).
    pub fn insert_batch<K: Into<Bytes>>(
        &self,
        ticket: &BatchTicket,
        writes: impl IntoIterator<Item = (K, Option<Value>)>,
    ) {
        self.insert_all(ticket.version, writes);
    }

    /// Adds range deletes to a prepared batch (before it is published, like
    /// [`Engine::insert_batch`]): each `[start, end)` hides, from readers at or after the
    /// batch's version, every older version of every key in it (see `ranges.rs`). The batch's
    /// own writes, at its version, stay visible. Retracting the batch takes them back.
    pub fn insert_range_deletes(&self, ticket: &BatchTicket, ranges: Vec<(Vec<u8>, Vec<u8>)>) {
        self.add_range_deletes(ticket.version, ranges);
    }

    /// Recovery only (WAL replay): range deletes of a batch at `version`, idempotently. Call
    /// before [`Engine::apply_recovered`] of the same batch (which moves visibility).
    pub fn apply_recovered_range_deletes(&self, version: Version, ranges: Vec<(Vec<u8>, Vec<u8>)>) {
        self.add_range_deletes(version, ranges);
    }

    fn add_range_deletes(&self, version: Version, ranges: Vec<(Vec<u8>, Vec<u8>)>) {
        if ranges.is_empty() {
            return;
        }
        let added = ranges.into_iter().map(|(start, end)| RangeDelete {
            start: Bytes::from(start),
            end: Bytes::from(end),
            version,
        });
        let mut slot = self.layers.write().unwrap_or_else(PoisonError::into_inner);
        let ranges = slot.ranges.with(added);
        *slot = Arc::new(Layers {
            active: Arc::clone(&slot.active),
            frozen: slot.frozen.clone(),
            checkpoint: slot.checkpoint.clone(),
            ranges,
        });
    }

    /// Publishes a batch inserted by [`Engine::insert_batch`]: `visible()` passes its version
    /// once every earlier prepared batch is published or abandoned too.
    pub fn publish_batch(&self, mut ticket: BatchTicket) {
        ticket.settled = true;
        self.visibility.applied(ticket.version);
    }

    /// Takes back a batch inserted by [`Engine::insert_batch`] that will never be published
    /// (its WAL write failed): removes its versions from every memtable, then abandons it.
    /// Its range deletes, if any, are removed too.
    pub fn retract_batch<K: Into<Bytes>>(
        &self,
        mut ticket: BatchTicket,
        keys: impl IntoIterator<Item = K>,
    ) {
        {
            let mut slot = self.layers.write().unwrap_or_else(PoisonError::into_inner);
            if slot.ranges.iter().any(|r| r.version == ticket.version) {
                let ranges = slot.ranges.without(ticket.version);
                *slot = Arc::new(Layers {
                    active: Arc::clone(&slot.active),
                    frozen: slot.frozen.clone(),
                    checkpoint: slot.checkpoint.clone(),
                    ranges,
                });
            }
        }
        let layers = self.layers();
        for key in keys {
            let user: Bytes = key.into();
            layers.active.remove(&user, ticket.version);
            for frozen in &layers.frozen {
                frozen.remove(&user, ticket.version);
            }
        }
        ticket.settled = true;
        self.visibility.abandon(ticket.version);
    }

    /// Abandons a prepared batch (e.g. its WAL write failed) so visibility can move on.
    pub fn abandon_batch(&self, mut ticket: BatchTicket) {
        ticket.settled = true;
        self.visibility.abandon(ticket.version);
    }

    /// Recovery only (WAL replay): applies a batch at any version, idempotently and in any
    /// order. Afterwards `max_prepared() >= version`, and `visible() >= version` provided no
    /// prepared batch is in flight (there is none during recovery).
    pub fn apply_recovered(&self, version: Version, writes: Vec<(Vec<u8>, Option<Value>)>) {
        self.insert_all(version, writes);
        self.visibility.recovered(version);
    }

    /// Inserts a whole batch into one memtable, registered as a writer so that a checkpoint
    /// freezing that memtable waits until the batch is completely in it.
    fn insert_all<K: Into<Bytes>>(
        &self,
        version: Version,
        writes: impl IntoIterator<Item = (K, Option<Value>)>,
    ) {
        let guard = {
            let layers = self.layers.read().unwrap_or_else(PoisonError::into_inner);
            // NB: registering under the read lock is what makes the freeze safe: once the
            // checkpoint has swapped the layer set, every writer of the old memtable is counted.
            layers.active.begin_write();
            WriteGuard {
                mem: Arc::clone(&layers.active),
            }
        };
        for (key, value) in writes {
            guard.mem.insert(key.into(), version, value);
        }
        drop(guard);
    }

    /// Every batch with version <= `visible()` is completely applied (and no batch still in
    /// flight has a version <= it). Readers use this as their snapshot.
    pub fn visible(&self) -> Version {
        self.visibility.visible()
    }

    /// The newest version prepared or recovered so far.
    pub fn max_prepared(&self) -> Version {
        self.visibility.max_prepared()
    }

    /// Blocks until `visible() >= version`.
    pub fn wait_visible(&self, version: Version) {
        self.visibility.wait_visible(version)
    }

    /// Writes a full checkpoint stamped with `wal_lsn` (the caller guarantees every WAL record
    /// before `wal_lsn` is applied), without stopping readers or writers, then removes older
    /// checkpoint files. After freezing the memtable it waits until every batch prepared so far
    /// is published or retracted (invariant 9): a batch whose ticket is never settled stalls it. Versions below the last GC safe point that no snapshot at or after it
    /// can see are dropped in the merge. Checkpoints run one at a time.
    pub fn checkpoint(&self, wal_lsn: u64) -> Result<CheckpointInfo, EngineError> {
        let mut next_seq = self
            .checkpoint_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // 1. Freeze: new writes go to a fresh memtable from here on. It is made (its filter
        // zeroed) before the layer lock, which readers wait on; only checkpoints, serialised
        // here, replace the active memtable, so the one sized from is the one frozen.
        let next = Arc::new(MemTable::new(filter_bytes_after(
            self.opts.memtable_filter_bytes,
            self.layers().active.len(),
        )));
        let frozen_set = {
            let mut slot = self.layers.write().unwrap_or_else(PoisonError::into_inner);
            let mut frozen = slot.frozen.clone();
            frozen.push(Arc::clone(&slot.active));
            *slot = Arc::new(Layers {
                active: next,
                frozen,
                checkpoint: slot.checkpoint.clone(),
                ranges: slot.ranges.clone(),
            });
            Arc::clone(&slot)
        };
        for mem in &frozen_set.frozen {
            mem.wait_for_writers();
        }
        // Every batch in the frozen memtables was prepared before its insert, so before the
        // freeze: its version is <= `settled`. Once `visible()` passes `settled`, each of them
        // is published or was retracted (taken back out of the memtable before it was
        // abandoned), so the merge copies only published versions. NB: without this wait an
        // unpublished batch (inserted before its commit record is durable, for early lock
        // release) could be copied into the file and, if its log write then failed, outlive
        // its retraction there.
        let settled = self.visibility.max_prepared();
        self.visibility.wait_visible(settled);

        // 2. Merge frozen memtables and the previous checkpoint into a new file.
        let seq = *next_seq;
        *next_seq += 1;
        let final_path = self.dir.join(checkpoint::file_name(seq));
        let temp_path = final_path.with_extension("tmp");
        let safe_point = *self
            .gc_safe_point
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut writer = CheckpointWriter::create(&temp_path, self.opts.checkpoint_block_size)?;
        let mut versions_dropped = 0u64;
        let mut inputs: Vec<Box<dyn MergeInput + '_>> = Vec::new();
        for mem in frozen_set.frozen.iter().rev() {
            inputs.push(Box::new(mem.merge_input()));
        }
        if let Some(old) = &frozen_set.checkpoint {
            inputs.push(Box::new(CheckpointInput::new(old)));
        }
        // Range deletes of settled batches only: published ones (a retracted batch's were
        // taken out of the layer set before it was abandoned, so before the wait ended).
        let ranges = self.layers().ranges.at_or_below(settled);
        let hidden_at = safe_point.min(settled);
        let mut gc = GcFilter::new(safe_point);
        merge::merge(&mut inputs, |found| {
            // A version a range delete at or below the safe point hides is seen by no snapshot
            // GC still serves; the range delete stays in the file and keeps hiding it should
            // the WAL replay re-insert it.
            if ranges
                .hiding(found.user, found.version, hidden_at)
                .is_some()
            {
                versions_dropped += 1;
                return Ok(());
            }
            if gc.keep(found.user, found.version) {
                writer.add(found.user, found.version, found.value)
            } else {
                versions_dropped += 1;
                Ok(())
            }
        })?;
        drop(inputs);
        let base_max = frozen_set
            .checkpoint
            .as_ref()
            .map_or(Version::MIN, |c| c.max_version());
        let stats = writer.finish(wal_lsn, settled.max(base_max), &ranges, self.opts.fsync)?;
        fs::rename(&temp_path, &final_path)
            .map_err(|e| EngineError::io("rename", &final_path, e))?;
        if self.opts.fsync {
            checkpoint::sync_dir(&self.dir)?;
        }
        let installed = Arc::new(Checkpoint::open_written(&final_path, seq)?);

        // 3. Install: readers switch to (active, newer frozen, new checkpoint).
        {
            let mut slot = self.layers.write().unwrap_or_else(PoisonError::into_inner);
            let still_frozen = slot
                .frozen
                .iter()
                .filter(|mem| !frozen_set.frozen.iter().any(|m| Arc::ptr_eq(m, mem)))
                .cloned()
                .collect();
            *slot = Arc::new(Layers {
                active: Arc::clone(&slot.active),
                frozen: still_frozen,
                checkpoint: Some(Arc::clone(&installed)),
                ranges: slot.ranges.clone(),
            });
        }

        // 4. Older checkpoint files are no longer needed, except one `open` passed over: it
        //    may be the only copy of data (a newer format, a damaged disk) and stays for the
        //    operator.
        let mut files_removed = 0;
        for (old_seq, path) in checkpoint::list(&self.dir)? {
            let passed_over = self.recovery.skipped.iter().any(|s| s.path == path);
            if old_seq < installed.seq() && !passed_over {
                fs::remove_file(&path).map_err(|e| EngineError::io("remove", &path, e))?;
                files_removed += 1;
            }
        }
        if files_removed > 0 && self.opts.fsync {
            checkpoint::sync_dir(&self.dir)?;
        }
        Ok(CheckpointInfo {
            path: final_path,
            wal_lsn,
            entries: stats.entries,
            blocks: stats.blocks,
            bytes: stats.bytes,
            versions_dropped,
            files_removed,
        })
    }

    /// Drops versions no snapshot >= `safe_point` can see. Rule, per user key: keep every
    /// version > `safe_point` and the newest version <= `safe_point`, drop the older ones.
    /// Memtable versions go now; checkpoint versions at the next checkpoint merge.
    ///
    /// NB: the newest version <= `safe_point` is kept even when it is a tombstone. WAL replay
    /// after a crash may re-insert an older version of the key (from a record past the
    /// checkpoint's LSN), and only the tombstone keeps that resurrected version hidden.
    /// Reads at snapshots < `safe_point` are no longer guaranteed afterwards.
    ///
    /// A memtable where no version at or below `safe_point` stands above an older one of its
    /// key is not walked (invariant 12); its `versions_examined` is 0.
    pub fn gc(&self, safe_point: Version) -> GcStats {
        {
            let mut remembered = self
                .gc_safe_point
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *remembered = (*remembered).max(safe_point);
        }
        let layers = self.layers();
        let mut stats = GcStats::default();
        for mem in std::iter::once(&layers.active).chain(layers.frozen.iter()) {
            let one = mem.gc(safe_point);
            stats.versions_removed += one.removed;
            stats.versions_examined += one.examined;
        }
        stats
    }

    /// Number of versions in the memtables (active + frozen); for tests and metrics.
    pub fn memtable_len(&self) -> usize {
        let layers = self.layers();
        layers.active.len() + layers.frozen.iter().map(|m| m.len()).sum::<usize>()
    }

    /// What the engine holds right now (for metrics and tests; a consistent read of one layer
    /// set, cheap: no scan).
    pub fn stats(&self) -> EngineStats {
        let layers = self.layers();
        let checkpoint = layers.checkpoint.as_deref();
        EngineStats {
            memtable_versions: (layers.active.len()
                + layers.frozen.iter().map(|m| m.len()).sum::<usize>())
                as u64,
            frozen_memtables: layers.frozen.len(),
            checkpoint_versions: checkpoint.map_or(0, |c| c.entry_count()),
            checkpoint_bytes: checkpoint.map_or(0, |c| c.byte_len()),
            checkpoint_wal_lsn: checkpoint.map_or(0, |c| c.wal_lsn()),
            memtable_filter_bytes: layers.active.filter_bytes() as u64,
            gc_safe_point: *self
                .gc_safe_point
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// Applies the GC rule to a stream in (key asc, version desc) order.
struct GcFilter {
    safe_point: Version,
    /// The user key of the versions seen last (a reused buffer).
    user: Vec<u8>,
    seen_any: bool,
    kept_one_at_or_below: bool,
}

impl GcFilter {
    fn new(safe_point: Version) -> Self {
        GcFilter {
            safe_point,
            user: Vec::new(),
            seen_any: false,
            kept_one_at_or_below: false,
        }
    }

    fn keep(&mut self, user: &[u8], version: Version) -> bool {
        if !self.seen_any || self.user != user {
            self.seen_any = true;
            self.user.clear();
            self.user.extend_from_slice(user);
            self.kept_one_at_or_below = false;
        }
        if version > self.safe_point {
            return true;
        }
        !std::mem::replace(&mut self.kept_one_at_or_below, true)
    }
}

// Compile-time check of the contract: the engine is shared across threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<BatchTicket>();
};
