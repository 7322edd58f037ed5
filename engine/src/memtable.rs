//! The in-memory layer: a lock-free skiplist of versioned keys.

use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_skiplist::map::Entry;
use crossbeam_skiplist::SkipMap;

use crate::key::{Found, KeyView, Probe, Source, VersionedKey};
use crate::Version;

/// A skiplist of `(user key asc, version desc) -> Option<value>`; `None` is a tombstone.
///
/// Readers and writers never lock: `SkipMap` is concurrent. `writers` counts batches being
/// inserted right now so a checkpoint can wait for the last writer of a frozen memtable.
#[derive(Default)]
pub(crate) struct MemTable {
    map: SkipMap<VersionedKey, Option<Bytes>>,
    writers: AtomicUsize,
}

/// Result of garbage-collecting one memtable.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct MemGc {
    pub(crate) removed: u64,
    pub(crate) examined: u64,
}

impl MemTable {
    pub(crate) fn new() -> Self {
        MemTable::default()
    }

    /// Inserts one version. Inserting the same (key, version) again replaces it with the same
    /// content, which is what makes WAL replay idempotent.
    pub(crate) fn insert(&self, user: Bytes, version: Version, value: Option<Bytes>) {
        self.map.insert(VersionedKey::new(user, version), value);
    }

    /// Removes one version if present (a retracted batch).
    pub(crate) fn remove(&self, user: &Bytes, version: Version) {
        self.map.remove(&VersionedKey::new(user.clone(), version));
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every entry in key order (used by the checkpoint merge).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Found> + '_ {
        self.map.iter().map(|e| found(&e))
    }

    /// Registers a batch writer; the caller must call [`MemTable::end_write`].
    pub(crate) fn begin_write(&self) {
        self.writers.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn end_write(&self) {
        self.writers.fetch_sub(1, Ordering::AcqRel);
    }

    /// Blocks until no batch is being inserted. Only meaningful once the memtable is frozen
    /// (no new writer can start on it).
    pub(crate) fn wait_for_writers(&self) {
        let mut spins = 0u32;
        while self.writers.load(Ordering::Acquire) != 0 {
            // Batches insert in microseconds; back off to sleeping if one takes longer so the
            // checkpoint thread does not hog a core.
            if spins < 100 {
                std::thread::yield_now();
                spins += 1;
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    }

    /// For each user key: keeps every version > `safe_point` and the newest version <=
    /// `safe_point` (even a tombstone), removes the older ones.
    pub(crate) fn gc(&self, safe_point: Version) -> MemGc {
        let mut stats = MemGc::default();
        let mut current: Option<Bytes> = None;
        let mut kept_one_at_or_below = false;
        for entry in self.map.iter() {
            stats.examined += 1;
            let key = entry.key();
            if current.as_ref() != Some(&key.user) {
                current = Some(key.user.clone());
                kept_one_at_or_below = false;
            }
            if key.version > safe_point {
                continue;
            }
            if kept_one_at_or_below {
                if entry.remove() {
                    stats.removed += 1;
                }
            } else {
                kept_one_at_or_below = true;
            }
        }
        stats
    }
}

fn found(entry: &Entry<'_, VersionedKey, Option<Bytes>>) -> Found {
    Found {
        user: entry.key().user.clone(),
        version: entry.key().version,
        value: entry.value().clone(),
    }
}

fn as_view<'p>(bound: &'p Bound<Probe<'_>>) -> Bound<&'p (dyn KeyView + 'p)> {
    match bound {
        Bound::Included(p) => Bound::Included(p as &dyn KeyView),
        Bound::Excluded(p) => Bound::Excluded(p as &dyn KeyView),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The bound as a [`VersionedKey::short_probe`] when its key fits the inline head (or it is
/// unbounded): searched with static comparisons on (head, length, version), without the
/// dynamic dispatch of a [`KeyView`] per skiplist comparison. `None` for a longer key.
fn short_bound(bound: &Bound<Probe<'_>>) -> Option<Bound<VersionedKey>> {
    Some(match bound {
        Bound::Included(p) => Bound::Included(VersionedKey::short_probe(p.user, p.version)?),
        Bound::Excluded(p) => Bound::Excluded(VersionedKey::short_probe(p.user, p.version)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

impl Source for MemTable {
    fn lower_bound(&self, bound: Bound<Probe<'_>>) -> Option<Found> {
        match short_bound(&bound) {
            Some(short) => self.map.lower_bound(short.as_ref()),
            None => self.map.lower_bound(as_view(&bound)),
        }
        .map(|e| found(&e))
    }

    fn upper_bound(&self, bound: Bound<Probe<'_>>) -> Option<Found> {
        match short_bound(&bound) {
            Some(short) => self.map.upper_bound(short.as_ref()),
            None => self.map.upper_bound(as_view(&bound)),
        }
        .map(|e| found(&e))
    }

    fn newest_value_at(&self, user: &[u8], at: Version) -> Option<(Version, Option<Bytes>)> {
        let entry = match VersionedKey::short_probe(user, at) {
            Some(probe) => self.map.lower_bound(Bound::Included(&probe)),
            None => {
                let probe = Probe::new(user, at);
                self.map
                    .lower_bound(Bound::Included(&probe as &dyn KeyView))
            }
        }?;
        let key = entry.key();
        (key.user.as_ref() == user).then(|| (key.version, entry.value().clone()))
    }
}

/// RAII registration of a batch writer on a memtable (see [`MemTable::begin_write`]).
pub(crate) struct WriteGuard {
    pub(crate) mem: Arc<MemTable>,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.mem.end_write();
    }
}
