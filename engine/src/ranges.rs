//! Range deletes: one tombstone for a whole key range at a version.
//!
//! A range delete `[start, end) @ v` hides, at every snapshot `>= v`, every version `< v` of
//! every key in the range; versions `>= v` (the same batch's own writes, later batches) are
//! untouched. It is what lets TRUNCATE, DROP TABLE and a table rewrite (ADD PRIMARY KEY)
//! drop a table's old rows in O(1) writes instead of one point tombstone per row.
//!
//! Range deletes live beside the layers (in [`crate::layers::Layers`]), not in the memtables:
//! they are few (one per TRUNCATE / DROP / rewrite), and a read checks them only when the
//! version it found is older than the newest range delete (one compare on the hot path).
//! A checkpoint drops every version a range delete at or below the GC safe point hides, and
//! keeps the range delete itself in the file (since format 2, see `checkpoint.rs`).
//!
//! NB (deliberate simplification): range deletes are never dropped. A WAL replay after a
//! crash may re-insert versions older than a range delete (from records past the checkpoint's
//! stamp), and only the range delete keeps them hidden; dropping one safely needs the same
//! watermark as dropping point tombstones (crate docs, "Deliberately left out"). Each costs
//! its two keys and a version in memory and in every checkpoint; a read that finds a version
//! older than the newest range delete pays a binary search over them (see [`RangeDeletes`]).

use std::sync::Arc;

use bytes::Bytes;

use crate::Version;

/// One range delete: `[start, end)` at `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeDelete {
    pub(crate) start: Bytes,
    pub(crate) end: Bytes,
    pub(crate) version: Version,
}

impl RangeDelete {
    fn covers(&self, key: &[u8]) -> bool {
        key >= self.start.as_ref() && key < self.end.as_ref()
    }
}

/// Every range delete the engine knows, immutable (a change builds a new set).
///
/// Sorted by start key, with the largest end key of each prefix of the list beside it, so a
/// look-up is a binary search for the last range starting at or before the key, then a walk
/// back that stops as soon as no earlier range reaches the key (at once for disjoint ranges,
/// such as tables' key ranges; one step per repeat of the same range, e.g. a table truncated
/// again and again).
#[derive(Clone, Debug, Default)]
pub(crate) struct RangeDeletes {
    list: Vec<RangeDelete>,
    /// `max_end[i]` = the largest `end` among `list[..=i]`.
    max_end: Vec<Bytes>,
    /// The newest `version` in `list` (`Version::MIN` when empty): a version at or above it is
    /// hidden by none.
    max_version: Version,
}

impl RangeDeletes {
    pub(crate) fn new(mut list: Vec<RangeDelete>) -> RangeDeletes {
        list.sort_by(|a, b| a.start.cmp(&b.start).then(a.version.cmp(&b.version)));
        let max_version = list.iter().map(|r| r.version).max().unwrap_or(Version::MIN);
        let mut max_end: Vec<Bytes> = Vec::with_capacity(list.len());
        for r in &list {
            let end = match max_end.last() {
                Some(prev) if *prev > r.end => prev.clone(),
                _ => r.end.clone(),
            };
            max_end.push(end);
        }
        RangeDeletes {
            list,
            max_end,
            max_version,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &RangeDelete> {
        self.list.iter()
    }

    /// The newest range delete that hides version `found` of `key` from a reader at `at`:
    /// one covering `key` with `found < version <= at`.
    #[inline]
    pub(crate) fn hiding(&self, key: &[u8], found: Version, at: Version) -> Option<Version> {
        if found >= self.max_version {
            return None;
        }
        let starting_before = self.list.partition_point(|r| r.start.as_ref() <= key);
        let mut hiding: Option<Version> = None;
        for i in (0..starting_before).rev() {
            if self.max_end.get(i).is_none_or(|end| end.as_ref() <= key) {
                break; // no range at or before i reaches the key
            }
            let Some(r) = self.list.get(i) else { break };
            if r.version > found && r.version <= at && r.covers(key) {
                hiding = hiding.max(Some(r.version));
            }
        }
        hiding
    }

    /// This set plus `added` (ones already present, as after a replay, are not repeated).
    pub(crate) fn with(&self, added: impl IntoIterator<Item = RangeDelete>) -> Arc<RangeDeletes> {
        let mut list = self.list.clone();
        for r in added {
            if !list.contains(&r) {
                list.push(r);
            }
        }
        Arc::new(RangeDeletes::new(list))
    }

    /// This set without the range deletes written at `version` (a retracted batch's).
    pub(crate) fn without(&self, version: Version) -> Arc<RangeDeletes> {
        Arc::new(RangeDeletes::new(
            self.list
                .iter()
                .filter(|r| r.version != version)
                .cloned()
                .collect(),
        ))
    }

    /// The range deletes at or below `version` (what a checkpoint settled up to it holds).
    pub(crate) fn at_or_below(&self, version: Version) -> RangeDeletes {
        RangeDeletes::new(
            self.list
                .iter()
                .filter(|r| r.version <= version)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(start: &'static [u8], end: &'static [u8], v: u128) -> RangeDelete {
        RangeDelete {
            start: Bytes::from_static(start),
            end: Bytes::from_static(end),
            version: Version(v),
        }
    }

    #[test]
    fn a_range_delete_hides_older_versions_in_its_range_from_readers_at_or_after_it() {
        let set = RangeDeletes::new(vec![rd(b"b", b"d", 10), rd(b"c", b"e", 20)]);
        // Inside [b, d), older than 10, read at 10 or later: hidden by 10.
        assert_eq!(set.hiding(b"b", Version(5), Version(10)), Some(Version(10)));
        // Read before the range delete: not hidden.
        assert_eq!(set.hiding(b"b", Version(5), Version(9)), None);
        // The range delete's own version and newer versions: not hidden.
        assert_eq!(set.hiding(b"b", Version(10), Version(30)), None);
        // End is exclusive; overlapping deletes: the newest one that applies.
        assert_eq!(set.hiding(b"d", Version(5), Version(15)), None);
        assert_eq!(set.hiding(b"c", Version(5), Version(25)), Some(Version(20)));
        assert_eq!(
            set.hiding(b"c", Version(15), Version(25)),
            Some(Version(20))
        );
        assert_eq!(set.hiding(b"a", Version(1), Version::MAX), None);
        // Adding is idempotent; retracting removes one version's deletes.
        let again = set.with([rd(b"b", b"d", 10)]);
        assert_eq!(again.iter().count(), 2);
        assert!(set
            .without(Version(20))
            .hiding(b"c", Version(15), Version::MAX)
            .is_none());
        assert_eq!(set.at_or_below(Version(10)).iter().count(), 1);
    }

    #[test]
    fn the_look_up_agrees_with_a_linear_walk_over_nested_and_disjoint_ranges() {
        let keys: Vec<Vec<u8>> = (0u8..40)
            .map(|i| vec![b'a' + i / 8, b'0' + i % 8])
            .collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut list = Vec::new();
        for v in 1..=30u128 {
            let a = keys[next(40) as usize].clone();
            let b = keys[next(40) as usize].clone();
            let (start, end) = if a <= b { (a, b) } else { (b, a) };
            // Some whole-prefix ranges, some repeats of the same range at a newer version.
            let (start, end) = match next(3) {
                0 => (start[..1].to_vec(), vec![start[0] + 1]),
                _ => (start, end),
            };
            list.push(RangeDelete {
                start: Bytes::from(start),
                end: Bytes::from(end),
                version: Version(v * 10),
            });
        }
        list.push(list[3].clone());
        list.last_mut().unwrap().version = Version(305);
        let set = RangeDeletes::new(list.clone());
        for key in &keys {
            for found in [0u128, 55, 150, 299] {
                for at in [60u128, 200, 310, u128::MAX] {
                    let linear = list
                        .iter()
                        .filter(|r| r.version > Version(found) && r.version <= Version(at))
                        .filter(|r| r.covers(key))
                        .map(|r| r.version)
                        .max();
                    assert_eq!(set.hiding(key, Version(found), Version(at)), linear);
                }
            }
        }
    }
}
