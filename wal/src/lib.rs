//! # gnomon-wal: the redo log
//!
//! An append-only, segmented, checksummed log of opaque records with group commit. It knows
//! bytes, segments, LSNs, fsync and replay; it knows nothing of keys, transactions or SQL.
//! The mvcc layer writes one record per commit and replays them after a crash.
//!
//! ## Guarantees
//!
//! - **Durable means synced.** [`Wal::append`] and [`Pending::wait`] return `Ok` only after the
//!   record's bytes (and every byte before them) were written and `fdatasync`ed, under
//!   [`SyncPolicy::Fsync`]. [`SyncPolicy::OffUnsafeNoDurability`] skips the syncs and is for
//!   tests and benchmarks only.
//! - **Prefix recovery.** After a crash, [`Wal::open`] keeps exactly the records that were fully
//!   written, a prefix of the submitted sequence; the bytes of a torn tail are overwritten with
//!   zeros (and that synced), a zero-filled tail is the end of the log and is kept as room.
//!   Every acknowledged record is in that prefix.
//! - **Commits sync data, not metadata.** Under [`SyncPolicy::Fsync`] the active segment keeps
//!   zero-filled room ahead of the write position ([`WalOptions::preallocate`]): zeros written
//!   *and synced* before any record goes there, so a commit overwrites allocated blocks inside
//!   the file and its `fdatasync` writes no inode (on ext4 without a journal, growing the file
//!   cost every commit batch a second, waited-for write). Only the first batch of a segment,
//!   a batch larger than the room, or a log whose extension failed grows the file.
//! - **Corruption is loud.** A damaged record with a valid record anywhere after it, or a
//!   damaged record in a segment that is not the last one, makes `open` fail with
//!   [`WalError::Corruption`]. The log never skips over damage.
//! - **Failures poison.** If a batch's write or fsync fails, every committer of that batch gets
//!   [`WalError::WriteFailed`], every other one not yet told `Ok` (an earlier batch whose own
//!   sync is still in flight included) [`WalError::Poisoned`], and no append succeeds
//!   until the log is reopened. An fsync is never retried (after a failed fsync Linux may have
//!   dropped the dirty pages, so a retry can "succeed" without the data). NB: an error means
//!   "not known to be durable", not "absent": a failed record may reappear after restart, so
//!   callers must treat such a commit as in doubt, not as rolled back.
//!
//! ## LSNs
//!
//! An [`Lsn`] is the logical byte offset of a record's frame in the *record stream*: the
//! concatenation of all frames of all segments, **excluding segment headers**. So LSNs are dense
//! (the next record's LSN is this one's plus its frame length, 9 + payload bytes), unaffected
//! by segment size, and a segment named `N` holds the records with LSN in `[N, next segment's N)`.
//!
//! ## Data layout
//!
//! ```text
//!  dir/
//!   00000000000000000000.wal   00000000000067108841.wal   00000000000134217690.wal (active)
//!  +--------+-----+-----+---+ +--------+-----+-----+---+ +--------+-----+-----+-------------+
//!  | header | rec | rec |...| | header | rec | rec |...| | header | rec | rec | 0 0 0 0 0 0 |
//!  +--------+-----+-----+---+ +--------+-----+-----+---+ +--------+-----+-----+-------------+
//!   32 bytes |   ends exactly at   first LSN = name        appends go here ^   room: zeros,
//!            |   its last record                           segment rolled when written + synced
//!            v                                             the next frame would ahead of use
//!                                                          pass segment_size
//!           +-----------+-----------+----------+---------------------+
//!           | len u32LE | crc u32LE | type u8  | payload (len bytes) |   crc = CRC-32(type ++ payload)
//!           +-----------+-----------+----------+---------------------+
//! ```
//!
//! Byte-by-byte formats are documented next to the encoders in [`format`](mod@format)
//! ([`format::encode_segment_header`], [`format::encode_record`]); their constants are frozen
//! and the header carries a format version the reader checks.
//!
//! ## Group commit
//!
//! ```text
//!  committer threads                  Queue (Mutex)                   one write at a time,
//!  encode + crc  --submit-->  frames[], next_lsn, open_batch  --take--> then up to N syncs:
//!                             (LSN assigned, joins open_batch)   all   write(k+1) | sync(k)
//!  wait: lead if nobody writes and a                                            | sync(k+1)
//!        sync slot is free, else sleep  <--  Durable | Failed | Poisoned  <--  publish
//! ```
//!
//! Committers encode and checksum their frame on their own thread, then take the queue lock
//! just long enough to get an LSN and push the frame. Whoever writes takes *everything*
//! queued as one batch together with a free *sync slot*, issues one `write`, clears
//! `writing` (so the next batch may be taken and written), and `fdatasync`s on its slot's own
//! open file description of the segment. Up to [`WalOptions::max_syncs_in_flight`] syncs run
//! at once (default 1, one batch at a time, as PostgreSQL; 2 or more overlap them): on a disk that completes concurrent
//! flushes faster than serial ones, a commit arriving during a sync no longer waits for that
//! sync *and then* its own (PostgreSQL serializes WAL flushes under `WALWriteLock`). When a
//! sync returns `Ok`, its batch's end becomes `durable_lsn` (if larger) and every batch ending
//! at or below it is finished: each batch has its own signal, which wakes exactly that
//! batch's committers. While syncs run, new committers pile up in the queue and form the next
//! batch, so batches grow with load without any timer.
//!
//! **Why a later sync covers earlier batches.** An `fdatasync` that *started after* batch
//! `k`'s `write` returned, and returned `Ok`, made batch `k` durable, and every batch before
//! it (their writes returned earlier still): it writes back every dirty page of the file and
//! waits for the pages that another sync already has under writeback, then flushes the
//! device cache. So a sync may publish batches whose own syncs are still running, and an
//! earlier batch's slower sync publishes nothing new when it returns.
//!
//! **Why one open per slot.** Linux reports a writeback error once per open file description
//! (`errseq`): two concurrent `fdatasync`s on one descriptor could see a single error once,
//! and the other return `Ok` for data that was lost. Each slot has its own `open` of the
//! segment (not a `dup`; slot 0 is the writer's own, so one slot issues exactly the calls it
//! did before slots existed), so each sees every error since it opened the file. Any failed
//! sync poisons the log; a sync that returns `Ok` after (or concurrently with) a failure
//! publishes nothing: the failure is checked under the queue lock before publishing.
//!
//! The writer is the first committer to wait ([`Pending::wait`]) for its still-open batch
//! while no batch is being written and a sync slot is free: it takes the open batch and
//! writes and syncs it on its own thread, the group-commit leader, so an uncontended commit
//! costs no thread hand-off (callgrind/perf, pgbench TPC-B with 1 client: 4 futex calls and
//! 2.4 context switches fewer per transaction than with a writer thread doing every write).
//! Whoever makes taking possible again (a writer whose `write` returned, a sync that freed a
//! slot) and finds records queued wakes one committer of the open batch to lead it. A
//! committer whose batch was taken and is syncing never leads the next one (it would only
//! wait longer). The writer thread remains for the rest: records submitted to be written in
//! the background ([`Wal::submit`], the write-set parts of a bulk transaction), a batch whose
//! committers are all asleep when it could be taken, extending the room, and draining the
//! queue when the log is dropped.
//!
//! ## Preallocation
//!
//! ```text
//!  active segment:  | header | records ... | room: zeros on disk (synced)     |
//!                                          ^ active_offset                    ^ room_end = file length
//!  a batch ends with room_end - active_offset < preallocate / 2 (and room_end < segment_size)
//!    -> extend_wanted: committers stop leading; once every sync in flight has returned, the
//!       writer thread takes `writing`, writes `preallocate` zeros at room_end (capped at
//!       segment_size), fdatasyncs them, moves room_end, releases `writing` and writes the
//!       batch that queued meanwhile.
//! ```
//!
//! The extension waits for the syncs in flight and holds `writing` because a commit's
//! `fdatasync` running while the zeros are dirty would write them (and the grown inode)
//! itself. A roll likewise waits, inside the batch that needs it, until no other sync is in
//! flight; it then syncs the finished segment's part of the batch, cuts and closes it, and
//! reopens the slots' files on the new segment. A roll cuts the finished segment to its
//! last record and syncs the cut before the next segment exists, so non-final segments have the
//! same bytes as without preallocation and the format version stays 1: a zero-filled tail of
//! the last segment was already "end of log" to every reader of version 1.
//!
//! ## Invariants
//!
//! 1. LSNs are assigned under the queue lock in submission order, and frames are written in
//!    that order: the file contents are exactly the frames in LSN order, without gaps. One
//!    batch is written at a time: whoever takes a batch sets `writing` under the queue lock
//!    and clears it only when the batch's `write` (and roll) returned. A batch holds a sync
//!    slot from being taken until its sync returned; at most `max_syncs_in_flight` do.
//! 2. `durable_lsn` only moves forward, and only to the end of a batch whose sync returned
//!    `Ok` and started after the write of every byte below that end returned, with no
//!    failure recorded. No committer is told `Ok` for a record ending above it.
//! 3. Once `failure` is set it is never cleared in this process: no record submitted before
//!    or after it that was not already durable will ever be reported durable.
//! 4. A segment is synced, and cut to its last record (the cut synced), before its successor
//!    is created, and the successor's creation is synced (file and directory) before any
//!    record goes into it. So if segment `k+1` exists on disk, segment `k` is complete and
//!    ends at its last record, and damage (zeros included) in a non-final segment is
//!    corruption.
//! 5. Segment `k+1`'s first LSN equals segment `k`'s end LSN; `open` checks this.
//! 6. The last segment is never removed; removal goes oldest first, so retained segments are
//!    always a contiguous suffix of the stream.
//! 7. Room is zeros that were written and synced: no record is written into bytes past
//!    `room_end` unless the file grows with that write (then that batch's `fdatasync` covers
//!    the inode), and no commit's `fdatasync` runs while an extension's zeros are unsynced
//!    (the extension starts with every sync slot free and holds `writing`).
//!
//! ## More than one stream (later)
//!
//! A [`Wal`] is one self-contained *stream*: its own directory, writer thread and LSN space; it
//! has no global state. A multi-stream log (one stream per core or per partition group, to get
//! past one device queue and one writer) is N `Wal`s in N directories, each committer routed to
//! one stream. Order across streams is not kept by LSNs (which are per stream) but by the
//! payload: every commit record carries its HLC commit timestamp, and recovery merges the
//! streams by that timestamp. A commit waits only for its own stream's fsync. A transaction that
//! depends on another (read its writes) has a larger timestamp and only commits after that one
//! is durable and visible, so the merge never applies a dependent without its dependency. Only
//! one stream exists now.
//!
//! ## Deliberately left out
//!
//! - Segment recycling (each roll creates a fresh file) and preparing the next segment ahead
//!   of the roll: the first batch of a segment grows the file. Recycled files would hold old
//!   valid frames, which the reader cannot tell from new ones without a format change.
//! - Extending the room without stopping commits: the zeros and the commits share one inode,
//!   so a commit's `fdatasync` would write them. Committers wait for an extension instead
//!   (about 4 ms per MiB on the reference VM, once per `preallocate` bytes of log).
//! - `fallocate`: unwritten extents need a metadata update when first written, the very cost
//!   the room avoids; the room is written zeros.
//! - Direct I/O and `O_DSYNC`; we use buffered `pwrite` + `fdatasync` (`File::sync_data`).
//! - Overlapping writes: batches are written one at a time, in LSN order; only the syncs
//!   overlap. Nor does a sync slot keep its own batch's pages apart: a sync flushes whatever
//!   is dirty in the file, which is what lets a later sync publish an earlier batch.
//! - Telling a writeback error of an extension's zeros from one of records: with more than
//!   one slot, a real error seen by the extension's sync is seen again by the other slots'
//!   files and poisons the log at the next commit sync (conservative, never a lost commit);
//!   with one slot the extension alone sees it and only turns preallocation off.
//! - Compression and encryption of records; records larger than a segment get a segment of
//!   their own rather than being split across segments.
//! - Telling apart an out-of-order torn write (a later page of an *unsynced* batch persisted,
//!   an earlier one not) from real corruption: both show valid data after damage and are
//!   reported as [`WalError::Corruption`]; an operator decides. Filesystems in ordered mode make
//!   this rare because the tail of a batch is written after its head.
//! - Replay concurrent with [`Wal::remove_segments_before`] of the segments being replayed:
//!   the replay then yields an I/O error.

mod error;
pub mod format;
mod fs;
mod log;
mod segment;

use std::fmt;

pub use error::WalError;
pub use format::MAX_PAYLOAD_LEN;
pub use fs::{FaultyFs, FileSystem, RealFs, WalFile};
pub use log::{Pending, Wal, WalStats, BATCH_SIZE_BOUNDS};
pub use segment::Replay;

/// Log sequence number: the logical byte offset of a record in the stream (segment headers
/// excluded). Bigger means later; the next record's LSN is the previous one's plus its frame
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a record is, chosen by the layer above. 0 is invalid (reserved, never written), so that
/// zero-filled bytes can never decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKind(pub u8);

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it is in the stream.
    pub lsn: Lsn,
    /// Its kind, as appended.
    pub kind: RecordKind,
    /// Its payload, as appended.
    pub payload: Vec<u8>,
}

/// When a record counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Durable = written and `fdatasync`ed. The default, and the only policy for real data.
    #[default]
    Fsync,
    /// "Durable" = handed to the OS, never synced: a power loss or kernel crash loses
    /// acknowledged records. Tests and benchmarks only.
    OffUnsafeNoDurability,
}

/// How a log is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is rolled when the next frame would make it larger than this many bytes
    /// (header included). A single record larger than this gets a segment of its own.
    pub segment_size: u64,
    /// When records count as durable.
    pub sync: SyncPolicy,
    /// Zero-filled room kept ahead of the write position in the active segment, in bytes: the
    /// writer thread writes (and syncs) this many zeros past the end of the room whenever less
    /// than half of it is left, never past `segment_size`, so that a commit's `fdatasync`
    /// overwrites allocated blocks and writes no metadata. 0 turns preallocation off: every
    /// batch then grows the file (and its `fdatasync` also writes the inode).
    pub preallocate: u64,
    /// Most commit `fdatasync`s running at once (see "Group commit"): once a batch's `write`
    /// returned, the next batch may be taken and written while this one syncs, each sync on
    /// its own open file description of the segment. 1 syncs one batch at a time (no overlap);
    /// 0 counts as 1.
    pub max_syncs_in_flight: usize,
}

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// Default [`WalOptions::preallocate`]: 1 MiB. NB: committers wait while the room is extended
/// (the zeros must not be flushed by a commit's `fdatasync`), so this bounds that wait: about
/// 4 ms for 1 MiB on the reference VM's disk against 12-15 ms for 4 MiB (2026-12-05, busy
/// machine), once per MiB of log.
pub const DEFAULT_PREALLOCATE: u64 = 1024 * 1024;

/// Default [`WalOptions::max_syncs_in_flight`]: 1 (serial syncs, as PostgreSQL). On the reference VM (virtio disk, ext4,
/// write-back cache) two concurrent write + `fdatasync` streams on one file complete more
/// syncs per second than one. NB: on a CPU-saturated machine it bought nothing: release
/// server, scale 10, pgbench -M prepared, 15 s runs alternating 1 and 2 (2026-12-05, load
/// average 6-11 from other builds, medians of 3-4 rounds): TPC-B 8 clients 6.3-6.4K vs
/// 6.1-6.2K tps and 0.40-0.42 vs 0.59-0.64 fdatasync per transaction (sys CPU 79 vs 86 us per
/// transaction); transfer 16 clients 9.9K vs 9.5-9.6K tps, 0.19-0.20 vs 0.28-0.30 fdatasync.
/// The differences in tps are within the rounds' spread. With more than one slot, a failed
/// sync of an extension's zeros also poisons the log at a later commit sync on another slot
/// (see "Deliberately left out"). So the default stays 1 until a quiet-machine side by side
/// shows 2 winning.
pub const DEFAULT_MAX_SYNCS_IN_FLIGHT: usize = 1;

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            sync: SyncPolicy::Fsync,
            preallocate: DEFAULT_PREALLOCATE,
            max_syncs_in_flight: DEFAULT_MAX_SYNCS_IN_FLIGHT,
        }
    }
}
