//! The data directory's lock file: one `Engine` per directory, across processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::EngineError;

/// Name of the lock file inside the data directory (frozen: other tools look for it).
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

/// Holds an exclusive `flock` on `<dir>/LOCK` for as long as it lives.
///
/// NB: `flock` locks belong to the open file description, so a second `open` of the same
/// directory is refused even inside the same process. Closing the file (on drop, or when the
/// process dies) releases the lock; the file itself stays.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails at once with [`EngineError::Locked`]; never waits.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, EngineError> {
        let lock_file: PathBuf = dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_file)
            .map_err(|e| EngineError::io("open lock file", &lock_file, e))?;
        // SAFETY: flock on a valid, open descriptor owned by `file`; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(EngineError::Locked {
                    dir: dir.to_path_buf(),
                    lock_file,
                });
            }
            return Err(EngineError::io("flock", &lock_file, err));
        }
        Ok(DirLock { _file: file })
    }
}
