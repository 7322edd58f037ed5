//! The file system seam.
//!
//! Every byte the log reads or writes, every `fdatasync`, every directory entry it creates or
//! removes goes through [`FileSystem`] and [`WalFile`]. Production uses [`RealFs`]; tests use
//! [`FaultyFs`], which wraps `RealFs`, counts writes and syncs, and can be told to fail the next
//! write or sync or to hold a sync until released. There is no `#[cfg(test)]` around any sync
//! call: the code path a test exercises is the code path production runs.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// An open file of the log. Positional I/O only: the log always knows the offset it means.
pub trait WalFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 = end of file).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length of the file in bytes.
    fn file_len(&self) -> io::Result<u64>;
}

/// All file access of the log. Implementations must be usable from several threads at once.
pub trait FileSystem: Send + Sync + 'static {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Creates a file for reading and writing, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Names (not paths) of the entries of `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, removals, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's file system (`std::fs`, `pread`/`pwrite`, `fdatasync`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// A [`WalFile`] backed by a real [`File`].
#[derive(Debug)]
struct RealFile {
    file: File,
}

impl WalFile for RealFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl FileSystem for RealFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            // NB: names that are not UTF-8 cannot be segment names; they are skipped.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A [`FileSystem`] over [`RealFs`] that counts and can fail or hold writes and syncs, and
/// tells writes that grow a file (whose `fdatasync` must also write the inode) from writes
/// inside it.
///
/// Sync calls are numbered in the order they are made, from 1 ([`FaultyFs::syncs`] is the
/// number of the latest), so a test can hold several, then release or fail one by number.
/// It also keeps a model of what a power loss would keep: a write is *synced* once a sync of
/// its file (through any open of it) that started after the write returned has returned `Ok`
/// ([`FaultyFs::is_synced`]).
///
/// Meant for tests and fault-injection runs; it is public so that other crates' tests can use
/// it too. Counters cover file data operations (`write_all_at`, `sync_data`) of files opened
/// through this instance; directory syncs are counted separately.
#[derive(Debug, Default)]
pub struct FaultyFs {
    state: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    writes: AtomicU64,
    growing_writes: AtomicU64,
    syncs: AtomicU64,
    dir_syncs: AtomicU64,
    fail_next_write: AtomicBool,
    fail_next_growing_write: AtomicBool,
    fail_next_sync: AtomicBool,
    /// Number of a sync call that fails (0 = none).
    fail_sync_number: AtomicU64,
    hold: Mutex<Hold>,
    syncs_released: Condvar,
    last_sync_thread: Mutex<Option<String>>,
    /// Per file, the writes that returned, oldest first.
    written: Mutex<HashMap<PathBuf, FileWrites>>,
    /// Numbers the writes as they return.
    write_seq: AtomicU64,
}

#[derive(Debug, Default)]
struct FileWrites {
    /// (start, end, number) of each write that returned, in the order they returned.
    writes: Vec<(u64, u64, u64)>,
    /// Writes numbered up to this one are synced: the largest number that had returned when
    /// a sync of the file started that then returned `Ok`.
    synced_through: u64,
}

#[derive(Debug, Default)]
struct Hold {
    /// Every sync call blocks unless released by number.
    all: bool,
    /// Sync calls let through while `all` is set.
    released: BTreeSet<u64>,
    /// Numbers of the sync calls blocked right now.
    waiting: BTreeSet<u64>,
}

impl FaultyFs {
    /// A fault-free wrapper around the real file system.
    pub fn new() -> FaultyFs {
        FaultyFs::default()
    }

    /// Number of successful or failed `write_all_at` calls so far.
    pub fn writes(&self) -> u64 {
        self.state.writes.load(Ordering::SeqCst)
    }

    /// Number of `write_all_at` calls so far that reached past the end of their file (counted
    /// whether they succeeded or not).
    pub fn growing_writes(&self) -> u64 {
        self.state.growing_writes.load(Ordering::SeqCst)
    }

    /// Number of `sync_data` calls on files so far (including failed and held ones).
    pub fn syncs(&self) -> u64 {
        self.state.syncs.load(Ordering::SeqCst)
    }

    /// The name of the thread that made the latest file `sync_data` call (`None` before the
    /// first, or for an unnamed thread): tells a committer leading its own batch from the
    /// writer thread.
    pub fn last_sync_thread(&self) -> Option<String> {
        lock(&self.state.last_sync_thread).clone()
    }

    /// Number of `sync_dir` calls so far.
    pub fn dir_syncs(&self) -> u64 {
        self.state.dir_syncs.load(Ordering::SeqCst)
    }

    /// The next `write_all_at` fails with an I/O error without writing anything.
    pub fn fail_next_write(&self) {
        self.state.fail_next_write.store(true, Ordering::SeqCst);
    }

    /// The next `write_all_at` that would reach past the end of its file fails with an I/O
    /// error without writing anything; writes inside files are not affected.
    pub fn fail_next_growing_write(&self) {
        self.state
            .fail_next_growing_write
            .store(true, Ordering::SeqCst);
    }

    /// The next file `sync_data` fails with an I/O error (after the data reached the OS, like a
    /// real `fdatasync` failure).
    pub fn fail_next_sync(&self) {
        self.state.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// The file `sync_data` call numbered `number` (see [`FaultyFs::syncs`]) fails with an I/O
    /// error after it is released (the data reached the OS, like a real `fdatasync` failure).
    pub fn fail_sync_number(&self, number: u64) {
        self.state.fail_sync_number.store(number, Ordering::SeqCst);
    }

    /// From now on every file `sync_data` blocks until [`FaultyFs::release_syncs`] is called
    /// (or it is released by number).
    pub fn hold_syncs(&self) {
        let mut hold = lock(&self.state.hold);
        hold.all = true;
        hold.released.clear();
    }

    /// Lets held and future syncs proceed.
    pub fn release_syncs(&self) {
        let mut hold = lock(&self.state.hold);
        hold.all = false;
        hold.released.clear();
        drop(hold);
        self.state.syncs_released.notify_all();
    }

    /// Lets the held sync call numbered `number` proceed (others stay held).
    pub fn release_sync_number(&self, number: u64) {
        lock(&self.state.hold).released.insert(number);
        self.state.syncs_released.notify_all();
    }

    /// Numbers of the sync calls held right now, in order.
    pub fn held_syncs(&self) -> Vec<u64> {
        lock(&self.state.hold).waiting.iter().copied().collect()
    }

    /// Whether the bytes `[offset, offset + len)` of `path` would survive a power loss: the
    /// latest write over them holds them all, returned before some sync of that file started,
    /// and that sync returned `Ok`.
    pub fn is_synced(&self, path: &Path, offset: u64, len: u64) -> bool {
        let end = offset + len;
        let written = lock(&self.state.written);
        let Some(file) = written.get(path) else {
            return false;
        };
        let latest = file
            .writes
            .iter()
            .rev()
            .find(|&&(start, stop, _)| start < end && offset < stop);
        latest.is_some_and(|&(start, stop, seq)| {
            seq <= file.synced_through && start <= offset && end <= stop
        })
    }
}

/// Locks a mutex, ignoring poisoning: the protected data here are plain flags and queues that
/// stay consistent even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure (FaultyFs)"))
}

struct FaultyFile {
    inner: Box<dyn WalFile>,
    state: Arc<FaultState>,
    path: PathBuf,
}

impl WalFile for FaultyFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.state.writes.fetch_add(1, Ordering::SeqCst);
        if self.state.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(injected("write"));
        }
        if offset + data.len() as u64 > self.inner.file_len()? {
            self.state.growing_writes.fetch_add(1, Ordering::SeqCst);
            if self
                .state
                .fail_next_growing_write
                .swap(false, Ordering::SeqCst)
            {
                return Err(injected("growing write"));
            }
        }
        self.inner.write_all_at(offset, data)?;
        // NB: numbered under the lock, so the list is in number order.
        let mut written = lock(&self.state.written);
        let seq = self.state.write_seq.fetch_add(1, Ordering::SeqCst) + 1;
        written.entry(self.path.clone()).or_default().writes.push((
            offset,
            offset + data.len() as u64,
            seq,
        ));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let number = self.state.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        *lock(&self.state.last_sync_thread) = std::thread::current().name().map(str::to_owned);
        // What this sync covers: every write that returned before it started.
        let covers = self.state.write_seq.load(Ordering::SeqCst);
        {
            let mut hold = lock(&self.state.hold);
            while hold.all && !hold.released.contains(&number) {
                hold.waiting.insert(number);
                hold = self
                    .state
                    .syncs_released
                    .wait(hold)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            hold.waiting.remove(&number);
        }
        let fail_this = self
            .state
            .fail_sync_number
            .compare_exchange(number, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if self.state.fail_next_sync.swap(false, Ordering::SeqCst) || fail_this {
            return Err(injected("fsync"));
        }
        self.inner.sync_data()?;
        if let Some(file) = lock(&self.state.written).get_mut(&self.path) {
            file.synced_through = file.synced_through.max(covers);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // NB: the model ignores cuts (a roll cuts only zeros past the last record).
        self.inner.set_len(len)
    }

    fn file_len(&self) -> io::Result<u64> {
        self.inner.file_len()
    }
}

impl FileSystem for FaultyFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let inner = RealFs.open(path)?;
        Ok(Box::new(FaultyFile {
            inner,
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let inner = RealFs.create(path)?;
        lock(&self.state.written).remove(path);
        Ok(Box::new(FaultyFile {
            inner,
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
        }))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.state.dir_syncs.fetch_add(1, Ordering::SeqCst);
        RealFs.sync_dir(dir)
    }
}

/// Writes zeros over `[from, to)` of `file` (extending it if `to` lies past its end), in
/// pieces of at most 1 MiB.
pub(crate) fn write_zeros(file: &dyn WalFile, from: u64, to: u64) -> io::Result<()> {
    const PIECE: u64 = 1024 * 1024;
    let zeros = vec![0u8; to.saturating_sub(from).min(PIECE) as usize];
    let mut pos = from;
    while pos < to {
        let len = (to - pos).min(PIECE) as usize;
        file.write_all_at(pos, &zeros[..len])?;
        pos += len as u64;
    }
    Ok(())
}

/// Joins a directory and a file name (helper so call sites read as intent).
pub(crate) fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
