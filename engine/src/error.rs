//! The engine's error type.

use std::io;
use std::path::PathBuf;

use crate::Version;

/// Everything that can go wrong inside the storage engine.
///
/// Variants keep their cause: a full disk (`Io`) and a damaged file (`CorruptCheckpoint`) need
/// different handling by the caller.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another `Engine` (in this or another process) holds the directory lock.
    #[error(
        "data directory {} is locked: another gnomon process is using it (lock file {})",
        dir.display(),
        lock_file.display()
    )]
    Locked {
        /// The data directory that could not be opened.
        dir: PathBuf,
        /// The lock file whose `flock` is held by someone else.
        lock_file: PathBuf,
    },
    /// A file system operation failed.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What the engine was doing (`"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A checkpoint file failed validation (bad magic, CRC mismatch, truncation, bad bounds).
    #[error("checkpoint {} is corrupt: {reason}", path.display())]
    CorruptCheckpoint {
        /// The damaged file.
        path: PathBuf,
        /// What the validator found.
        reason: String,
    },
    /// A checkpoint was written by a format this build does not read.
    #[error("checkpoint {} has format version {found}; this build reads version {expected}", path.display())]
    UnsupportedCheckpointFormat {
        /// The file.
        path: PathBuf,
        /// Format version found in the header.
        found: u32,
        /// Format version this build understands.
        expected: u32,
    },
    /// `prepare_batch` was called with a version not above every earlier prepared version.
    #[error("batch version {version} is not above the newest prepared version {max_prepared}")]
    VersionNotIncreasing {
        /// The rejected version.
        version: Version,
        /// The newest version prepared (or recovered) so far.
        max_prepared: Version,
    },
}

impl EngineError {
    /// Builds an [`EngineError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        EngineError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the same call could succeed (I/O trouble may be transient; a lock or a
    /// corrupt file will not go away by itself).
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Io { .. })
    }
}
