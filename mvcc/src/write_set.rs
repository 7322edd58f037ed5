//! A transaction's buffered writes: [`WriteSet`], key -> `Option<value>` (`None` deletes),
//! read and iterated in key order.
//!
//! Bulk work writes its keys in ascending order (COPY into a table keyed by a row id or by an
//! ascending primary key, a table rewrite such as ADD PRIMARY KEY). Such a write is appended
//! to a sorted run in O(1), its key bytes copied into a shared chunk (no allocation per key);
//! the commit hands the engine slices of those chunks, so the keys are not copied again. A
//! key that arrives out of order goes to a B-tree beside the run (an OLTP transaction's
//! handful of keys usually does; both paths cost about the same for a few keys).
//!
//! ```text
//!  run:    [k1 k2 k3 ... kn]   ascending: each key greater than every run key before it
//!            │ (chunk, offset, len): a slice of a key chunk; a taken-back entry stays as a hole
//!            ▼
//!  chunks: [Bytes ~64 KiB][Bytes ~64 KiB] ... [open Vec<u8>]
//!  tree:   BTreeMap<Vec<u8>, Option<Bytes>>    the keys that arrived out of order
//! ```
//!
//! Invariants:
//! 1. Run keys strictly ascend (holes included); a key is in the run or in the tree, never
//!    in both (the two interleave in key order). A write of a key that has a hole in the run
//!    fills the hole; a key after the run's last is appended unless the tree holds it; a key
//!    before at most `RUN_TAIL_MOVED` run keys moves them to the tree and is appended.
//! 2. `len` counts the live entries (run entries that are not holes, plus the tree).
//! 3. A frozen chunk is never modified; the open chunk only grows (entries name it by
//!    offset, so its reallocation moves nothing they refer to).

use std::cmp::Ordering;
use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// At most this many run entries after a key that arrives out of order move to the tree so
/// that the run continues from that key (else the key goes to the tree).
const RUN_TAIL_MOVED: usize = 8;

/// Bytes of keys after which the open chunk is frozen and a new one started.
const CHUNK_BYTES: usize = 64 * 1024;

/// One write of the run.
#[derive(Clone)]
struct RunEntry {
    /// Index of the key's chunk (`chunks.len()` = the open chunk).
    chunk: u32,
    offset: u32,
    len: u32,
    /// False for a hole: the write was taken back.
    live: bool,
    value: Option<Bytes>,
}

/// A transaction's buffered writes in key order (see the module docs).
#[derive(Clone, Default)]
pub struct WriteSet {
    run: Vec<RunEntry>,
    chunks: Vec<Bytes>,
    open: Vec<u8>,
    tree: BTreeMap<Vec<u8>, Option<Bytes>>,
    len: usize,
}

impl WriteSet {
    /// An empty write set.
    pub fn new() -> WriteSet {
        WriteSet::default()
    }

    /// Number of keys written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no key is written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn key_of<'a>(chunks: &'a [Bytes], open: &'a [u8], e: &RunEntry) -> &'a [u8] {
        let (start, end) = (e.offset as usize, e.offset as usize + e.len as usize);
        match chunks.get(e.chunk as usize) {
            Some(c) => &c[start..end],
            None => &open[start..end],
        }
    }

    fn run_key(&self, e: &RunEntry) -> &[u8] {
        Self::key_of(&self.chunks, &self.open, e)
    }

    /// Position of `key` in the run (`Err`: where it would go).
    fn run_search(&self, key: &[u8]) -> Result<usize, usize> {
        match self.run.last() {
            None => return Err(0),
            Some(last) => {
                if self.run_key(last) < key {
                    return Err(self.run.len());
                }
            }
        }
        self.run.binary_search_by(|e| self.run_key(e).cmp(key))
    }

    /// The write of `key`, if any: `Some(None)` for a delete.
    pub fn get(&self, key: &[u8]) -> Option<&Option<Bytes>> {
        if let Ok(i) = self.run_search(key) {
            let e = &self.run[i];
            return e.live.then_some(&e.value);
        }
        self.tree.get(key)
    }

    /// True if `key` is written (put or delete).
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Writes `key`; returns the write it replaced, if any.
    pub fn insert(&mut self, key: &[u8], value: Option<Bytes>) -> Option<Option<Bytes>> {
        if self.run.last().is_none_or(|e| self.run_key(e) < key) {
            // After the run: appended unless the tree has it (a transaction's first writes,
            // such as a catalog key, may sort after every row it then writes in order).
            if let Some(slot) = self.tree.get_mut(key) {
                return Some(std::mem::replace(slot, value));
            }
            self.append(key, value);
            return None;
        }
        let at = match self.run_search(key) {
            Ok(i) => {
                let e = &mut self.run[i];
                let previous = std::mem::replace(&mut e.value, value);
                if e.live {
                    return Some(previous);
                }
                e.live = true;
                self.len += 1;
                return None;
            }
            Err(at) => at,
        };
        if self.run.len() - at <= RUN_TAIL_MOVED && !self.tree.contains_key(key) {
            // Only a few run keys sort after it: they move to the tree and the run goes on
            // from this key (a COPY's first write may be a catalog key after all its rows).
            for e in self.run.drain(at..) {
                if e.live {
                    let moved = Self::key_of(&self.chunks, &self.open, &e).to_vec();
                    self.tree.insert(moved, e.value);
                }
            }
            self.append(key, value);
            return None;
        }
        let previous = self.tree.insert(key.to_vec(), value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Appends a key greater than every key written so far.
    fn append(&mut self, key: &[u8], value: Option<Bytes>) {
        if !self.open.is_empty() && self.open.len() + key.len() > CHUNK_BYTES {
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK_BYTES));
            self.chunks.push(Bytes::from(full));
        }
        let offset = self.open.len();
        self.open.extend_from_slice(key);
        self.run.push(RunEntry {
            chunk: self.chunks.len() as u32,
            offset: offset as u32,
            len: key.len() as u32,
            live: true,
            value,
        });
        self.len += 1;
    }

    /// Takes back the write of `key`; returns it, if there was one.
    pub fn remove(&mut self, key: &[u8]) -> Option<Option<Bytes>> {
        if let Ok(i) = self.run_search(key) {
            let e = &mut self.run[i];
            if !e.live {
                return None;
            }
            e.live = false;
            self.len -= 1;
            return Some(e.value.take());
        }
        let previous = self.tree.remove(key);
        if previous.is_some() {
            self.len -= 1;
        }
        previous
    }

    /// Every write in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            range: self.range((Bound::Unbounded, Bound::Unbounded), false),
            remaining: self.len,
        }
    }

    /// The keys written, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The writes with keys in `bounds`, in key order (`reverse`: descending). An empty or
    /// inverted range yields nothing.
    pub fn range<'a>(&'a self, bounds: (Bound<&[u8]>, Bound<&[u8]>), reverse: bool) -> Range<'a> {
        let empty = Range {
            set: self,
            lo: 0,
            hi: 0,
            tree: None,
            tree_head: None,
            reverse,
        };
        if !valid_range(bounds) {
            return empty;
        }
        let keys = |i: &RunEntry| self.run_key(i);
        let lo = match bounds.0 {
            Bound::Unbounded => 0,
            Bound::Included(s) => self.run.partition_point(|e| keys(e) < s),
            Bound::Excluded(s) => self.run.partition_point(|e| keys(e) <= s),
        };
        let hi = match bounds.1 {
            Bound::Unbounded => self.run.len(),
            Bound::Included(s) => self.run.partition_point(|e| keys(e) <= s),
            Bound::Excluded(s) => self.run.partition_point(|e| keys(e) < s),
        };
        let tree = (!self.tree.is_empty()).then(|| self.tree.range::<[u8], _>(bounds));
        let mut range = Range {
            lo,
            hi: hi.max(lo),
            tree,
            ..empty
        };
        range.advance_tree();
        range
    }

    /// The writes as the engine takes a batch, in key order: keys in frozen chunks are
    /// slices of them (no copy); the open chunk's and the tree's keys are copied.
    pub fn engine_batch(&self) -> Vec<(Bytes, Option<Bytes>)> {
        let mut out = Vec::with_capacity(self.len);
        let mut tree = self.tree.iter().peekable();
        for e in self.run.iter().filter(|e| e.live) {
            let key = self.run_key(e);
            while let Some((k, v)) = tree.next_if(|(k, _)| k.as_slice() < key) {
                out.push((Bytes::copy_from_slice(k), v.clone()));
            }
            let (start, end) = (e.offset as usize, e.offset as usize + e.len as usize);
            let bytes = match self.chunks.get(e.chunk as usize) {
                Some(c) => c.slice(start..end),
                None => Bytes::copy_from_slice(key),
            };
            out.push((bytes, e.value.clone()));
        }
        for (k, v) in tree {
            out.push((Bytes::copy_from_slice(k), v.clone()));
        }
        out
    }
}

/// Whether `BTreeMap::range` accepts `bounds` and they may hold a key (it panics on a start
/// after the end, or on equal excluded bounds).
fn valid_range((start, end): (Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s < e,
        _ => true,
    }
}

/// Writes of a key range, in key order or reversed ([`WriteSet::range`]).
pub struct Range<'a> {
    set: &'a WriteSet,
    /// Run entries not yet returned: `lo..hi`.
    lo: usize,
    hi: usize,
    tree: Option<btree_map::Range<'a, Vec<u8>, Option<Bytes>>>,
    /// The tree's next write in scan direction.
    tree_head: Option<(&'a Vec<u8>, &'a Option<Bytes>)>,
    reverse: bool,
}

impl<'a> Range<'a> {
    fn advance_tree(&mut self) {
        self.tree_head = match self.tree.as_mut() {
            Some(t) if self.reverse => t.next_back(),
            Some(t) => t.next(),
            None => None,
        };
    }

    /// The run's next live entry in scan direction (holes skipped), without taking it.
    fn run_head(&mut self) -> Option<&'a RunEntry> {
        let run = &self.set.run;
        while self.lo < self.hi {
            let i = if self.reverse { self.hi - 1 } else { self.lo };
            if run[i].live {
                return Some(&run[i]);
            }
            if self.reverse {
                self.hi -= 1;
            } else {
                self.lo += 1;
            }
        }
        None
    }

    fn take_run(&mut self) {
        if self.reverse {
            self.hi -= 1;
        } else {
            self.lo += 1;
        }
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = (&'a [u8], &'a Option<Bytes>);

    fn next(&mut self) -> Option<Self::Item> {
        let set = self.set;
        let run = self.run_head().map(|e| (set.run_key(e), &e.value));
        match (run, self.tree_head) {
            (None, None) => None,
            (Some(r), None) => {
                self.take_run();
                Some(r)
            }
            (None, Some((k, v))) => {
                self.advance_tree();
                Some((k.as_slice(), v))
            }
            (Some(r), Some((k, v))) => {
                // Keys are never in both (invariant 1).
                let run_first = (r.0.cmp(k.as_slice()) == Ordering::Less) != self.reverse;
                if run_first {
                    self.take_run();
                    Some(r)
                } else {
                    self.advance_tree();
                    Some((k.as_slice(), v))
                }
            }
        }
    }
}

/// Every write of a [`WriteSet`] in key order ([`WriteSet::iter`]); knows its length.
pub struct Iter<'a> {
    range: Range<'a>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a Option<Bytes>);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.range.next()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a WriteSet {
    type Item = (&'a [u8], &'a Option<Bytes>);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(Vec<u8>, Option<Bytes>)> for WriteSet {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Option<Bytes>)>>(iter: I) -> WriteSet {
        let mut set = WriteSet::new();
        for (k, v) in iter {
            set.insert(&k, v);
        }
        set
    }
}

impl PartialEq for WriteSet {
    fn eq(&self, other: &WriteSet) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for WriteSet {}

impl fmt::Debug for WriteSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Serialized as a map of key bytes to value, as the `BTreeMap` it replaced.
impl Serialize for WriteSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for WriteSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WriteSet, D::Error> {
        let map = BTreeMap::<Vec<u8>, Option<Bytes>>::deserialize(d)?;
        Ok(map.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Random operations against a `BTreeMap` model: every answer agrees.
    #[test]
    fn agrees_with_a_btree_map() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..40 {
            let mut set = WriteSet::new();
            let mut model: BTreeMap<Vec<u8>, Option<Bytes>> = BTreeMap::new();
            let mut next = 0u64;
            for step in 0..3000 {
                // Mostly ascending keys (a bulk load), with some out of order and repeats.
                let key = match rand(10) {
                    0..=5 => {
                        next += 1 + rand(3);
                        next
                    }
                    _ => rand(next + 2),
                };
                let key = if round % 2 == 0 {
                    format!("k{key:06}").into_bytes()
                } else {
                    // Long keys: chunks fill and freeze.
                    format!("{:0>200}", key).into_bytes()
                };
                match rand(8) {
                    0 => assert_eq!(set.remove(&key), model.remove(&key)),
                    1 => assert_eq!(set.insert(&key, None), model.insert(key.clone(), None)),
                    _ => {
                        let value = v(&format!("{round}-{step}"));
                        assert_eq!(set.insert(&key, value.clone()), model.insert(key, value));
                    }
                }
                let probe = format!("k{:06}", rand(next + 2)).into_bytes();
                assert_eq!(set.get(&probe), model.get(&probe));
            }
            assert_eq!(set.len(), model.len());
            let all: Vec<_> = set.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect();
            let expected: Vec<_> = model.clone().into_iter().collect();
            assert_eq!(all, expected);
            assert_eq!(set.iter().len(), model.len());
            let batch: Vec<_> = set
                .engine_batch()
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v))
                .collect();
            assert_eq!(batch, expected);
            for _ in 0..200 {
                let a = format!("k{:06}", rand(next + 2)).into_bytes();
                let b = format!("k{:06}", rand(next + 2)).into_bytes();
                let bounds = [
                    (Bound::Included(a.as_slice()), Bound::Excluded(b.as_slice())),
                    (Bound::Excluded(a.as_slice()), Bound::Included(b.as_slice())),
                    (Bound::Included(a.as_slice()), Bound::Unbounded),
                    (Bound::Unbounded, Bound::Excluded(b.as_slice())),
                    (Bound::Excluded(a.as_slice()), Bound::Excluded(b.as_slice())),
                ];
                for bounds in bounds {
                    let expected: Vec<_> = if valid_range(bounds) {
                        model.range::<[u8], _>(bounds).collect()
                    } else {
                        vec![]
                    };
                    let got: Vec<_> = set.range(bounds, false).collect();
                    assert_eq!(got.len(), expected.len());
                    for ((gk, gv), (ek, ev)) in got.iter().zip(&expected) {
                        assert_eq!((*gk, *gv), (ek.as_slice(), *ev));
                    }
                    let mut back: Vec<_> = set.range(bounds, true).collect();
                    back.reverse();
                    assert_eq!(back, got);
                }
            }
        }
    }

    #[test]
    fn ascending_keys_share_chunks_and_a_hole_is_refilled() {
        let mut set = WriteSet::new();
        // A key sorting after all the others comes first (as a catalog key before a COPY's
        // rows): the ascending keys after it still go to the run.
        assert_eq!(set.insert(b"\xff", v("last")), None);
        for i in 0..20_000u32 {
            assert_eq!(set.insert(&i.to_be_bytes(), v("x")), None);
        }
        assert_eq!(set.tree.len(), 1);
        assert!(!set.chunks.is_empty());
        assert_eq!(set.remove(&7u32.to_be_bytes()), Some(v("x")));
        assert_eq!(set.get(&7u32.to_be_bytes()), None);
        assert_eq!(set.len(), 20_000);
        assert_eq!(set.insert(&7u32.to_be_bytes(), None), None);
        assert_eq!(set.get(&7u32.to_be_bytes()), Some(&None));
        assert_eq!(set.tree.len(), 1);
        assert_eq!(set.len(), 20_001);
        assert_eq!(set.insert(b"\xff", None), Some(v("last")));
        let back: WriteSet = set.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect();
        assert_eq!(back, set);
    }
}
