//! The in-memory layer: a lock-free skiplist of versioned keys.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use crossbeam_epoch as epoch;
use crossbeam_skiplist::base::{Entry, SkipList};

use crate::filter::{KeyFilter, KeyHash};
use crate::key::{Found, KeyView, Probe, Source, VersionedKey};
use crate::merge::MemInput;
use crate::Version;

/// A skiplist of `(user key asc, version desc) -> Option<value>`; `None` is a tombstone.
///
/// Readers and writers never lock: the skiplist is concurrent. `writers` counts batches being
/// inserted right now so a checkpoint can wait for the last writer of a frozen memtable.
///
/// `filter` holds every user key ever inserted (removals leave their bits): a point read of a
/// key the memtable does not hold usually stops there, before the skiplist descent (see
/// `filter.rs` for the memory-ordering argument).
///
/// NB: the skiplist is crossbeam's `base::SkipList`, not its `SkipMap` wrapper: a read pins
/// the epoch once, searches, and copies the key and value out (their `Bytes` clones) while
/// pinned. `SkipMap` would also take and drop a reference count on the node it returns, two
/// atomic read-modify-writes on a cache line every reader of a hot row shares.
///
/// `oldest_superseding` lets a GC pass skip the walk when it cannot remove anything. A pass
/// at safe point S removes a version only if a newer version of its key is <= S, so it is
/// enough to know a lower bound of the versions that (may) stand above an older one: if
/// that bound is above S, the walk is skipped. The bound is kept as the physical
/// (high 64-bit) half of the version, rounded down, so an `AtomicU64` holds it:
///
/// - an insert whose key the filter may already hold lowers it to its own version after
///   the skiplist insert (its own version, not the one it supersedes: if it is the older
///   of the two, its version is lower still, so the bound stays a lower bound);
/// - a pass takes the bound (resetting it to "none"), walks, and gives back the lowest
///   version that still stands above another of its key. An insert the walk did not see
///   lowers the bound itself, after the pass took it, so nothing is lost.
///
/// NB: two first inserts of one key racing on the filter may both see the key as new, and
/// the older version then escapes the skipped passes until a later insert of the key or the
/// checkpoint merge, which drops it by the same rule (GC only reclaims space; readers pick
/// versions by snapshot either way).
pub(crate) struct MemTable {
    list: SkipList<VersionedKey, Option<Bytes>>,
    filter: KeyFilter,
    writers: AtomicUsize,
    oldest_superseding: AtomicU64,
    gc_pass: Mutex<()>,
}

/// `oldest_superseding` when no version stands above another of its key.
const NONE_SUPERSEDING: u64 = u64::MAX;

/// The high (physical) half of a version: rounding down keeps a lower bound a lower bound.
fn physical_half(version: Version) -> u64 {
    (version.0 >> 64) as u64
}

/// Result of garbage-collecting one memtable.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct MemGc {
    pub(crate) removed: u64,
    pub(crate) examined: u64,
}

impl MemTable {
    /// An empty memtable whose key filter takes `filter_bytes` (0: no filter).
    pub(crate) fn new(filter_bytes: usize) -> Self {
        MemTable {
            list: SkipList::new(epoch::default_collector().clone()),
            filter: KeyFilter::with_bytes(filter_bytes),
            writers: AtomicUsize::new(0),
            oldest_superseding: AtomicU64::new(NONE_SUPERSEDING),
            gc_pass: Mutex::new(()),
        }
    }

    /// Inserts one version. Inserting the same (key, version) again replaces it with the same
    /// content, which is what makes WAL replay idempotent. Every insert (commit, early-release
    /// batch, WAL replay) comes through here.
    pub(crate) fn insert(&self, user: Bytes, version: Version, value: Option<Bytes>) {
        // NB: the filter's bits first, then the skiplist node: whoever can reach the version
        // must find the bits set (filter.rs, invariant 2).
        let maybe_held = self.filter.insert(KeyHash::of(&user));
        let guard = &epoch::pin();
        self.list
            .insert(VersionedKey::new(user, version), value, guard)
            .release(guard);
        if maybe_held {
            // After the skiplist insert: a GC pass that took the bound before this line
            // started its walk after the node was reachable (see the struct docs).
            self.oldest_superseding
                .fetch_min(physical_half(version), Ordering::SeqCst);
        }
    }

    /// Removes one version if present (a retracted batch).
    pub(crate) fn remove(&self, user: &Bytes, version: Version) {
        let guard = &epoch::pin();
        if let Some(entry) = self
            .list
            .remove(&VersionedKey::new(user.clone(), version), guard)
        {
            entry.release(guard);
        }
    }

    /// Size of the key filter in bytes (0: none).
    pub(crate) fn filter_bytes(&self) -> usize {
        self.filter.bytes()
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Every entry in key order (used by the checkpoint merge). Pins the epoch per step, not
    /// for the whole walk (a long pin would hold back the reclamation of removed nodes).
    pub(crate) fn merge_input(&self) -> MemInput<'_> {
        MemInput::new(self.list.ref_iter())
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
    /// `safe_point` (even a tombstone), removes the older ones. Does not walk (examines
    /// nothing) when no version above another of its key can be <= `safe_point`.
    pub(crate) fn gc(&self, safe_point: Version) -> MemGc {
        let mut stats = MemGc::default();
        // One pass at a time: a second pass would take the bound while the first walks.
        let _pass = self.gc_pass.lock().unwrap_or_else(PoisonError::into_inner);
        let bound = self
            .oldest_superseding
            .swap(NONE_SUPERSEDING, Ordering::SeqCst);
        if bound > physical_half(safe_point) {
            self.oldest_superseding.fetch_min(bound, Ordering::SeqCst);
            return stats;
        }
        // The lowest version the walk leaves standing above another of its key.
        let mut still_superseding = NONE_SUPERSEDING;
        let mut newest_kept: Option<Version> = None;
        let mut current: Option<Bytes> = None;
        let mut kept_one_at_or_below = false;
        let mut walk = self.list.ref_iter();
        loop {
            let guard = &epoch::pin();
            let Some(entry) = walk.next(guard) else {
                break;
            };
            stats.examined += 1;
            let key = entry.key();
            if current.as_ref() != Some(&key.user) {
                current = Some(key.user.clone());
                kept_one_at_or_below = false;
                newest_kept = None;
            }
            if key.version <= safe_point && kept_one_at_or_below {
                if entry.remove(guard) {
                    stats.removed += 1;
                }
            } else {
                kept_one_at_or_below |= key.version <= safe_point;
                // Versions come newest first: the one kept before this stands above it.
                if let Some(above) = newest_kept {
                    still_superseding = still_superseding.min(physical_half(above));
                }
                newest_kept = Some(key.version);
            }
            entry.release(guard);
        }
        walk.drop_impl(&epoch::pin());
        self.oldest_superseding
            .fetch_min(still_superseding, Ordering::SeqCst);
        stats
    }
}

fn found(entry: &Entry<'_, '_, VersionedKey, Option<Bytes>>) -> Found {
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
        let guard = &epoch::pin();
        match short_bound(&bound) {
            Some(short) => self.list.lower_bound(short.as_ref(), guard),
            None => self.list.lower_bound(as_view(&bound), guard),
        }
        .map(|e| found(&e))
    }

    fn upper_bound(&self, bound: Bound<Probe<'_>>) -> Option<Found> {
        let guard = &epoch::pin();
        match short_bound(&bound) {
            Some(short) => self.list.upper_bound(short.as_ref(), guard),
            None => self.list.upper_bound(as_view(&bound), guard),
        }
        .map(|e| found(&e))
    }

    fn newest_value_at(&self, user: &[u8], at: Version) -> Option<(Version, Option<Bytes>)> {
        if !self.filter.may_contain(KeyHash::of(user)) {
            return None;
        }
        let guard = &epoch::pin();
        let entry = match VersionedKey::short_probe(user, at) {
            Some(probe) => self.list.lower_bound(Bound::Included(&probe), guard),
            None => {
                let probe = Probe::new(user, at);
                self.list
                    .lower_bound(Bound::Included(&probe as &dyn KeyView), guard)
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
