//! # gnomon-engine: versioned key-value storage
//!
//! The engine stores, for every user key, a chain of versions. A version is an opaque
//! [`Version`] (`u128`, bigger = newer) chosen by the layer above (mvcc's HLC timestamps).
//! Reads happen *at a snapshot*: "the newest version <= `at`". The engine knows nothing of
//! transactions, SQL, or the WAL; the mvcc crate orchestrates the WAL and the engine.
//!
//! ## Guarantees
//!
//! - **Snapshot reads.** [`Engine::get`] and [`Engine::scan`] return, per key, the newest
//!   version <= the snapshot; tombstones (`None` values) hide older versions and are never
//!   returned.
//! - **Atomic, ordered visibility.** Batches are prepared in strictly increasing version
//!   order and may be applied in any order; [`Engine::visible`] is a watermark that only
//!   passes a version once every batch at or below it is completely applied (or abandoned).
//!   A reader whose snapshot is <= `visible()` sees every batch entirely or not at all.
//!   A batch may also be inserted first ([`Engine::insert_batch`]) and published later
//!   ([`Engine::publish_batch`]) or taken back ([`Engine::retract_batch`]): in between its
//!   versions are seen only by reads above the watermark (`Version::MAX`, `latest_version`),
//!   which the layer above uses to hand a row to its next writer before the batch is durable.
//! - **Readers never block on writers.** The memtable is a lock-free skiplist; the layer set
//!   is an `Arc` swapped under a lock that scans and writers hold only for a pointer copy and
//!   a point read for its one lookup (a layer swap, twice per checkpoint, waits for those).
//!   Checkpoints run alongside reads and writes.
//! - **Crash-safe checkpoints.** A checkpoint is written to a temp file, fsynced, renamed, and
//!   the directory fsynced; every block carries a CRC, which recovery checks (the checkpoint
//!   that just wrote a file installs it after checking only its structure: trailer, index and
//!   block layouts, not reading the blocks back). Recovery loads the newest checkpoint
//!   that validates and says which newer ones it skipped ([`Engine::recovery_report`]); a
//!   skipped file is never deleted, and the caller refuses to start when its log no longer
//!   reaches back to the loaded checkpoint (what the skipped file held would be lost).
//! - **Range deletes.** A batch may carry range deletes ([`Engine::insert_range_deletes`]):
//!   `[start, end)` at the batch's version hides every older version of every key in the
//!   range from readers at or after it (the batch's own writes stay). One entry, whatever the
//!   number of keys: TRUNCATE, DROP TABLE and table rewrites cost O(1) writes (`ranges.rs`).
//! - **One engine per directory.** An exclusive `flock` on `<dir>/LOCK` refuses a second
//!   engine, in this or another process ([`EngineError::Locked`]).
//!
//! ## Invariants
//!
//! 1. Entries are ordered by (user key ascending, version DESCENDING) everywhere: memtables,
//!    checkpoint files, merges. A point read at `at` is one seek to `(key, at)`.
//! 2. A batch is inserted entirely into one memtable; its writer is registered on that
//!    memtable (under the layer lock) until the last insert, so a frozen memtable is complete
//!    once its writer count reaches zero.
//! 3. `visible()` never decreases, and never passes a prepared batch that is still being
//!    applied.
//! 4. Every version not garbage-collected is in exactly one of: the active memtable, a frozen
//!    memtable, the checkpoint (duplicates across layers are allowed and are identical).
//! 5. A checkpoint file is never modified after its rename; a newer one replaces it whole.
//! 6. GC never removes the newest version <= the safe point of a key, even a tombstone.
//! 7. A memtable key carries its user key's first 16 bytes inline (zero-padded, big-endian
//!    `u128`) and orders by them first; this agrees with plain byte order (proof at `KeyHead`),
//!    so most skiplist comparisons never touch the key's heap bytes.
//! 8. A point read that finds a version in the active memtable stops there when there is no
//!    frozen memtable and the checkpoint's newest version is not newer: no older layer can
//!    hold a newer version of the key.
//! 9. A checkpoint copies only settled batches: after freezing, it waits until `visible()`
//!    passes every batch prepared so far, so each batch in the frozen memtables is published
//!    or was retracted (removed from the memtables before it was abandoned). An unpublished
//!    batch (inserted ahead of its durability) never reaches a checkpoint file, and the file's
//!    `max_version` bounds every version in it.
//! 10. Range deletes are never dropped (see `ranges.rs`): a checkpoint file holds every one
//!     at or below its settled version, and drops a version only if a range delete at or
//!     below both the GC safe point and that settled version hides it. A version WAL replay
//!     re-inserts under a range delete stays hidden by it.
//! 11. Every memtable carries a filter of the user keys ever inserted into it (a split-block
//!     Bloom filter, `filter.rs`). A key's bits are set before its version enters the
//!     skiplist and are never cleared (retraction and GC leave them: false positives only),
//!     so "absent" from the filter means the memtable holds no version of the key that the
//!     reader could otherwise have seen. Point reads ([`Engine::get`],
//!     [`Engine::get_versioned`], [`Engine::latest_version`]) consult it before the skiplist
//!     descent; scans do not. A frozen memtable keeps its
//!     filter until it is dropped. A filter's size is fixed when its memtable is made (from
//!     the options, more if the memtable frozen before it held more versions).
//! 12. Every memtable keeps a lower bound of the versions in it that stand above an older
//!     version of their key (an insert the filter says may find its key there lowers it;
//!     a GC pass resets it to what it leaves standing). A GC pass whose safe point is below
//!     the bound removes nothing and skips the walk (a bulk load of new keys, or one whose
//!     updates are younger than Δgc, costs VACUUM nothing).
//!
//! ## Data layout
//!
//! ```text
//!            readers/writers                       Engine::checkpoint (one at a time)
//!                  |                                         |
//!   RwLock<Arc<Layers>> (held to clone the Arc / for 1 get)  | 1. freeze: swap in a new active
//!                  |                                         | 2. merge frozen + old checkpoint
//!   +--------------+------------------+-------------------+  |    (+ GC) into a new file
//!   | active       | frozen...        | checkpoint        |  | 3. swap to (active, new ckpt)
//!   | SkipMap      | SkipMap (no new  | mmapped file,     |  | 4. delete older files
//!   | (all writes) |  writers)        | block index       |
//!   | + key filter | + key filter     |                   |
//!   +--------------+------------------+-------------------+
//!
//!   memtable key (skiplist node, inline):  head u128 = user[..16] zero-padded | user Bytes | version
//!   memtable key filter: 64-byte blocks, one per key (by hash), 8 bits set in it (filter.rs)
//!
//!   key order inside every layer:
//!     ("apple", v9) ("apple", v4) ("apple", v1 tombstone) ("pear", v7) ("pear", v2) ...
//!      newest ------------------------------> oldest      newest ------> oldest
//!
//!   range deletes (beside the layers, in the same swapped set):  [start, end) @ version
//!     ("t1/", "t10") @ v20 hides ("t1/a", v9) from readers at >= v20; ("t1/a", v25) stays
//!
//!   data dir:  LOCK   checkpoint-00000000000000000007.ckpt   (checkpoint-*.tmp while writing)
//! ```
//!
//! The checkpoint file format is documented byte by byte in `checkpoint.rs`, next to its
//! encoder.
//!
//! ## Deliberately left out
//!
//! - No WAL: durability of recent writes is the WAL's job (the mvcc crate replays it through
//!   [`Engine::apply_recovered`] from the LSN `open` returns).
//! - No LSM levels or compaction: a checkpoint rewrites every live version. Fine for the
//!   data sizes Gnomon targets now; incremental checkpoints are future work.
//! - No automatic checkpoints or GC: the caller decides when (the mvcc layer's maintenance
//!   thread does). [`Engine::stats`] gives the figures it reports.
//! - GC keeps a tombstone that is the newest version <= the safe point (see [`Engine::gc`]),
//!   so deleted keys cost one tombstone each until a later design drops them safely. The
//!   design, not built yet: a checkpoint merge may drop such a tombstone (and everything older
//!   of its key) when its version is at or below both the GC safe point and a watermark `W`
//!   the caller passes: `visible()` read *before* the WAL position the checkpoint is stamped
//!   with. Every published batch at or below `W` has its commit record durable before that
//!   position, so replay from it never re-inserts an older version of the key; no batch at or
//!   below `W` can be inserted after the freeze either. The mvcc layer must pass no watermark
//!   when the stamp was lowered below the log's end (an unresolved 2PC prepare record, or a
//!   failed log), since replay then starts earlier.
//! - Reads at snapshots below the last GC safe point are not guaranteed.

mod checkpoint;
mod dirlock;
mod engine;
mod error;
mod filter;
mod key;
mod layers;
mod memtable;
mod merge;
mod ranges;
mod scan;
mod visibility;

pub use engine::{
    BatchTicket, CheckpointInfo, Engine, EngineOptions, EngineStats, GcStats, RecoveryReport,
    SkippedCheckpoint, DEFAULT_MEMTABLE_FILTER_BYTES, MAX_MEMTABLE_FILTER_BYTES,
};
pub use error::EngineError;
pub use key::Version;
pub use scan::Scan;

/// A stored value: cheap to clone, shares memory with the memtable or the mapped checkpoint.
pub type Value = bytes::Bytes;
