//! The crate's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the log. Each variant keeps its cause: a full disk, a
/// corrupt record and a poisoned log need different handling.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O operation outside the commit path failed (open, scan, truncate, remove, ...).
    #[error("WAL I/O error during {op} on {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A damaged record or header that is not a torn tail: valid data follows it, or it lies in
    /// a segment that is not the last one. The log refuses to open rather than skip it.
    #[error("WAL corruption in segment {segment} at file offset {offset}: {reason}")]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset within the segment file (not an LSN) of the damaged header or record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },

    /// A segment written in a format version this build cannot read.
    #[error("WAL segment {segment} has format version {found}; this build reads only version {supported}")]
    UnsupportedVersion {
        /// The segment file.
        segment: PathBuf,
        /// Version found in its header.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },

    /// The write or fsync of the batch carrying this record failed. The record is NOT known to
    /// be durable (it may or may not be present after a restart) and the log is now poisoned.
    #[error("WAL {op} failed, the record is not known to be durable and the log refuses further appends: {source}")]
    WriteFailed {
        /// `"write"`, `"fsync"`, or `"segment roll"`.
        op: &'static str,
        /// The error of the failed call, shared by every committer of the batch.
        #[source]
        source: Arc<io::Error>,
    },

    /// An earlier write or fsync failed; the log refuses appends until it is reopened (which
    /// re-validates what actually reached the disk).
    #[error(
        "WAL is poisoned by an earlier {op} failure and refuses appends until reopened: {source}"
    )]
    Poisoned {
        /// The operation that failed earlier.
        op: &'static str,
        /// Its error.
        #[source]
        source: Arc<io::Error>,
    },

    /// The payload is larger than [`crate::MAX_PAYLOAD_LEN`].
    #[error("WAL record payload of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload length asked for.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Record kind 0 is reserved (a zero-filled region must never decode as a record).
    #[error("WAL record kind 0 is reserved and cannot be written")]
    InvalidKind,

    /// The log's writer has shut down (the `Wal` was dropped or its writer thread stopped).
    #[error("WAL is closed")]
    Closed,
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        segment: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> WalError {
        WalError::Corruption {
            segment: segment.into(),
            offset,
            reason: reason.into(),
        }
    }
}
