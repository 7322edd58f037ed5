//! What the database tells the operator's log: recovery progress, checkpoints, background
//! failures. The layer above chooses where it goes ([`DbOptions::events`](crate::DbOptions));
//! the mvcc crate itself has no logging dependency.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::MvccError;

/// Replays shorter than this report no intermediate progress (only [`DbEvent::RecoveryDone`]).
pub const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// One event for the log. `Display` gives a one-line message.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbEvent<'a> {
    /// WAL replay during open, at each further 10% of a replay of at least
    /// [`PROGRESS_MIN_BYTES`].
    RecoveryProgress {
        /// WAL bytes replayed so far.
        replayed_bytes: u64,
        /// WAL bytes to replay in all (from the checkpoint's position to the log's end).
        total_bytes: u64,
        /// Commit records applied so far.
        commits: u64,
    },
    /// Recovery finished; the database is about to open.
    RecoveryDone {
        /// WAL position of the checkpoint recovery started from (0 = none).
        checkpoint_lsn: u64,
        /// Commit records replayed.
        commits: u64,
        /// WAL bytes replayed.
        replayed_bytes: u64,
        /// Time from the start of `Db::open` to the end of replay.
        took: Duration,
    },
    /// A checkpoint was written.
    CheckpointDone {
        /// Its WAL position: recovery replays from here.
        lsn: u64,
        /// How long it took.
        took: Duration,
        /// Versions written.
        versions: u64,
        /// File size in bytes.
        bytes: u64,
        /// WAL segments deleted afterwards.
        segments_removed: u64,
    },
    /// A background checkpoint failed; the previous checkpoint and the WAL stay in charge.
    CheckpointFailed {
        /// Why.
        error: &'a MvccError,
    },
    /// A background GC pass failed.
    GcFailed {
        /// Why.
        error: &'a MvccError,
    },
}

impl DbEvent<'_> {
    /// Failures are warnings; everything else is information.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            DbEvent::CheckpointFailed { .. } | DbEvent::GcFailed { .. }
        )
    }
}

/// Where events go. Called on the thread that produced the event; keep it quick.
pub type EventSink = Arc<dyn Fn(&DbEvent<'_>) + Send + Sync>;

/// The sink used when none is configured: warnings, progress and long recoveries to stderr.
pub(crate) fn default_sink(event: &DbEvent<'_>) {
    let worth_printing = match event {
        DbEvent::RecoveryProgress { .. } => true,
        DbEvent::RecoveryDone { replayed_bytes, .. } => *replayed_bytes >= PROGRESS_MIN_BYTES,
        DbEvent::CheckpointDone { .. } => false,
        _ => event.is_warning(),
    };
    if worth_printing {
        eprintln!("gnomon-mvcc: {event}");
    }
}

const MIB: f64 = (1u64 << 20) as f64;

impl fmt::Display for DbEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbEvent::RecoveryProgress {
                replayed_bytes,
                total_bytes,
                commits,
            } => write!(
                f,
                "recovery: {}% of the WAL replayed ({:.1} of {:.1} MiB, {commits} commits)",
                percent(*replayed_bytes, *total_bytes),
                *replayed_bytes as f64 / MIB,
                *total_bytes as f64 / MIB,
            ),
            DbEvent::RecoveryDone {
                checkpoint_lsn,
                commits,
                replayed_bytes,
                took,
            } => write!(
                f,
                "recovery: checkpoint at WAL position {checkpoint_lsn}, then {commits} commits \
                 ({:.1} MiB of WAL) replayed; {} ms",
                *replayed_bytes as f64 / MIB,
                took.as_millis()
            ),
            DbEvent::CheckpointDone {
                lsn,
                took,
                versions,
                bytes,
                segments_removed,
            } => write!(
                f,
                "checkpoint at WAL position {lsn}: {versions} versions, {:.1} MiB, {} ms; \
                 {segments_removed} WAL segments removed",
                *bytes as f64 / MIB,
                took.as_millis()
            ),
            DbEvent::CheckpointFailed { error } => write!(f, "checkpoint failed: {error}"),
            DbEvent::GcFailed { error } => write!(f, "version GC failed: {error}"),
        }
    }
}

/// `part` of `whole` in whole percent (100 for an empty whole).
pub(crate) fn percent(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        100
    } else {
        (part.min(whole) as u128 * 100 / whole as u128) as u64
    }
}
