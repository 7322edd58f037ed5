//! The mvcc layer's error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::txn::TxnId;

/// Everything a transaction or the database can fail with. Each variant keeps its cause;
/// [`MvccError::is_retryable`] says whether running the transaction again can succeed.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// A REPEATABLE READ transaction tried to write a row that a transaction invisible to its
    /// snapshot has written (PostgreSQL's "could not serialize access due to concurrent update").
    #[error("could not serialize access due to concurrent update")]
    Serialization {
        /// The contended key.
        key: Vec<u8>,
    },
    /// SERIALIZABLE: this transaction is part of a dangerous structure of read-write
    /// antidependencies (see [`crate::ssi`]) and must abort so the others can serialize.
    #[error("could not serialize access due to read/write dependencies among transactions")]
    SerializationDependencies {
        /// PostgreSQL's detail line: `Reason code: ...`.
        reason: String,
    },
    /// This transaction was chosen as the victim of a lock cycle.
    #[error("deadlock detected")]
    Deadlock {
        /// The transactions of the cycle, starting with the victim.
        cycle: Vec<TxnId>,
        /// One line per member of the cycle: what it waits for and who blocks it.
        detail: String,
    },
    /// A NOWAIT request found the lock held (PostgreSQL's 55P03).
    #[error("could not obtain lock")]
    LockNotAvailable {
        /// What was asked for.
        target: crate::locks::LockTarget,
    },
    /// A lock wait outlasted `lock_timeout` (55P03).
    #[error("canceling statement due to lock timeout")]
    LockTimeout,
    /// A lock wait outlasted the statement's `statement_timeout` (57014).
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    /// A lock wait was cancelled by the client (57014).
    #[error("canceling statement due to user request")]
    Canceled,
    /// A timestamp from another node was too far ahead of the local clock.
    #[error(
        "timestamp {received} is more than {max_offset:?} ahead of the local clock ({local_us} µs)"
    )]
    ClockOffset {
        /// The refused timestamp.
        received: Timestamp,
        /// The local wall clock when it arrived.
        local_us: u64,
        /// The configured limit.
        max_offset: Duration,
    },
    /// The redo log failed (I/O, corruption, or it refuses appends after a failed fsync).
    #[error("write-ahead log: {0}")]
    Wal(#[from] gnomon_wal::WalError),
    /// The storage engine failed.
    #[error("storage engine: {0}")]
    Engine(#[from] gnomon_engine::EngineError),
    /// A file of the mvcc layer itself (the clock ceiling) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The clock's ceiling file is unreadable: refusing to start rather than risk issuing
    /// timestamps below ones issued before.
    #[error("clock file {} is corrupt; refusing to start (timestamps could go backwards)", path.display())]
    CorruptClockFile {
        /// The file.
        path: PathBuf,
    },
    /// The WAL ends before the checkpoint's position: WAL segments were deleted by hand.
    #[error("write-ahead log ends at {wal_end}, before the checkpoint at {checkpoint_lsn}: WAL files are missing")]
    WalBehindCheckpoint {
        /// Where the log ends.
        wal_end: u64,
        /// Where the newest checkpoint says replay starts.
        checkpoint_lsn: u64,
    },
    /// The log's oldest segment begins after the loaded checkpoint's position: the records in
    /// between were removed after a newer checkpoint that now fails to load (damaged, or
    /// written by a newer build). Starting would silently lose them, so recovery stops.
    #[error(
        "write-ahead log starts at {wal_start}, after the checkpoint position {checkpoint_lsn}: \
         the records in between are only in a checkpoint this build passed over ({passed_over}); \
         restore that file or start the build that wrote it"
    )]
    WalStartsAfterCheckpoint {
        /// Where the oldest retained segment begins.
        wal_start: u64,
        /// Where the loaded checkpoint (0: none) says replay starts.
        checkpoint_lsn: u64,
        /// The checkpoints passed over and why, `path: reason; ...` ("none" if no file was).
        passed_over: String,
    },
    /// PREPARE TRANSACTION while `max_prepared_transactions` is 0.
    #[error("prepared transactions are disabled")]
    PreparedTransactionsDisabled,
    /// PREPARE TRANSACTION with `max_prepared_transactions` transactions already prepared.
    #[error("maximum number of prepared transactions reached")]
    TooManyPrepared {
        /// The configured limit.
        max: usize,
    },
    /// PREPARE TRANSACTION with a gid that is in use.
    #[error("transaction identifier \"{gid}\" is already in use")]
    DuplicateGid {
        /// The gid.
        gid: String,
    },
    /// PREPARE TRANSACTION with a gid longer than [`crate::MAX_GID_LEN`] bytes.
    #[error("transaction identifier \"{gid}\" is too long")]
    GidTooLong {
        /// The gid.
        gid: String,
    },
    /// COMMIT/ROLLBACK PREPARED of a gid no transaction is prepared under.
    #[error("prepared transaction with identifier \"{gid}\" does not exist")]
    UnknownGid {
        /// The gid.
        gid: String,
    },
    /// COMMIT/ROLLBACK PREPARED of a gid another session is preparing or resolving.
    #[error("prepared transaction with identifier \"{gid}\" is busy")]
    PreparedBusy {
        /// The gid.
        gid: String,
    },
    /// A WAL record passed its checksum but does not decode as the record its kind says.
    #[error("malformed WAL record at LSN {lsn}: {reason}")]
    MalformedRecord {
        /// Where it is.
        lsn: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Applying an increment ([`crate::Txn::increment`]) to a row failed: the result is out of
    /// the column's range (the SQL layer's 22003), or the row did not decode. At COMMIT this
    /// fails the transaction (PostgreSQL would have failed the UPDATE; see the locks README).
    #[error("{message}")]
    IncrementFailed {
        /// The SQL layer's message (`integer out of range`).
        message: String,
    },
}

impl MvccError {
    /// True for a commit whose outcome is unknown: the log failed after the commit record was
    /// handed to it, so the record may or may not be on disk (and may reappear after a restart).
    /// The client must not be told the transaction rolled back.
    pub fn is_commit_in_doubt(&self) -> bool {
        matches!(self, MvccError::Wal(_))
    }

    /// True when running the whole transaction again may succeed (serialization failures and
    /// deadlock victims); false for errors that will repeat.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MvccError::Serialization { .. }
                | MvccError::SerializationDependencies { .. }
                | MvccError::Deadlock { .. }
        )
    }
}
