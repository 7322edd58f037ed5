//! The checkpoint merge's inputs: every layer's versions in key order, handed out as borrowed
//! views.
//!
//! A checkpoint rewrites every version the store keeps, so this loop runs once per version
//! (millions per checkpoint). The read path's [`Found`](crate::key::Found) holds `Bytes`
//! handles, and each handle is an atomic reference-count update; a checkpoint's handles all
//! share the file mapping's one count, which the connection threads' point reads update too.
//! `benches/checkpoint_merge.rs` measured the merge at 380 ns per version with `Found`s
//! (clone and drop were its top entries in `perf`); views borrow instead, and the merge
//! copies only the current user key, into a buffer it reuses.

use std::cmp::Ordering;

use bytes::Bytes;
use crossbeam_epoch as epoch;
use crossbeam_skiplist::base::{RefEntry, RefIter};

use crate::checkpoint::Checkpoint;
use crate::key::{cmp_versioned, VersionedKey};
use crate::Version;

/// One version, borrowed from the layer that holds it. `value: None` = tombstone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub(crate) user: &'a [u8],
    pub(crate) version: Version,
    pub(crate) value: Option<&'a [u8]>,
}

/// A layer walked in (user key ascending, version descending) order.
pub(crate) trait MergeInput {
    /// The entry the walk stands on; `None` once it is past the last.
    fn head(&self) -> Option<View<'_>>;
    /// Steps to the next entry.
    fn advance(&mut self);
}

/// Merges `inputs` (each sorted), calling `each` once per distinct (user key, version) in
/// order; on equal (key, version) the earlier input's entry is the one passed (the same batch
/// replayed twice has the same content) and the others are skipped.
pub(crate) fn merge<E>(
    inputs: &mut [Box<dyn MergeInput + '_>],
    mut each: impl FnMut(View<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut user = Vec::new();
    loop {
        let mut winner: Option<(usize, View<'_>)> = None;
        for (i, input) in inputs.iter().enumerate() {
            if let Some(head) = input.head() {
                let smaller = winner.is_none_or(|(_, w)| {
                    cmp_versioned(head.user, head.version, w.user, w.version) == Ordering::Less
                });
                if smaller {
                    winner = Some((i, head));
                }
            }
        }
        let Some((_, head)) = winner else {
            return Ok(());
        };
        each(head)?;
        let version = head.version;
        user.clear();
        user.extend_from_slice(head.user);
        for input in inputs.iter_mut() {
            while input
                .head()
                .is_some_and(|h| h.version == version && h.user == user.as_slice())
            {
                input.advance();
            }
        }
    }
}

/// A memtable's walk: a reference-counted skiplist iterator standing on one node.
pub(crate) struct MemInput<'a> {
    walk: RefIter<'a, VersionedKey, Option<Bytes>>,
    current: Option<RefEntry<'a, VersionedKey, Option<Bytes>>>,
}

impl<'a> MemInput<'a> {
    pub(crate) fn new(mut walk: RefIter<'a, VersionedKey, Option<Bytes>>) -> Self {
        let current = walk.next(&epoch::pin());
        MemInput { walk, current }
    }
}

impl MergeInput for MemInput<'_> {
    fn head(&self) -> Option<View<'_>> {
        let entry = self.current.as_ref()?;
        Some(View {
            user: &entry.key().user,
            version: entry.key().version,
            value: entry.value().as_deref(),
        })
    }

    fn advance(&mut self) {
        let guard = &epoch::pin();
        if let Some(entry) = self.current.take() {
            entry.release(guard);
        }
        self.current = self.walk.next(guard);
    }
}

impl Drop for MemInput<'_> {
    fn drop(&mut self) {
        // The entry and the walk each hold a reference on a node; give them back.
        let guard = &epoch::pin();
        if let Some(entry) = self.current.take() {
            entry.release(guard);
        }
        self.walk.drop_impl(guard);
    }
}

/// A checkpoint file's walk, block by block; views are slices of the mapping.
pub(crate) struct CheckpointInput<'a> {
    file: &'a Checkpoint,
    block: usize,
    /// The current entry (ranges into the mapping) and where the next one starts.
    current: Option<(crate::checkpoint::RawEntry, usize)>,
}

impl<'a> CheckpointInput<'a> {
    pub(crate) fn new(file: &'a Checkpoint) -> Self {
        let (block, current) = match file.entry_at_or_after(0, None) {
            Some((block, entry, next)) => (block, Some((entry, next))),
            None => (0, None),
        };
        CheckpointInput {
            file,
            block,
            current,
        }
    }
}

impl MergeInput for CheckpointInput<'_> {
    fn head(&self) -> Option<View<'_>> {
        let (raw, _) = self.current.as_ref()?;
        Some(self.file.view(raw))
    }

    fn advance(&mut self) {
        let Some((_, next)) = self.current.take() else {
            return;
        };
        if let Some((block, entry, after)) = self.file.entry_at_or_after(self.block, Some(next)) {
            self.block = block;
            self.current = Some((entry, after));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checkpoint::{file_name, CheckpointWriter};
    use crate::key::Found;
    use crate::memtable::MemTable;
    use crate::ranges::RangeDeletes;

    /// Every entry of a walk, as owned `Found`s.
    pub(crate) fn collect(input: &mut dyn MergeInput) -> Vec<Found> {
        let mut all = Vec::new();
        while let Some(v) = input.head() {
            all.push(Found {
                user: Bytes::copy_from_slice(v.user),
                version: v.version,
                value: v.value.map(Bytes::copy_from_slice),
            });
            input.advance();
        }
        all
    }

    type Entry = (&'static str, u128, Option<&'static str>);

    fn memtable(entries: &[Entry]) -> MemTable {
        let mem = MemTable::new(1 << 10);
        for &(user, version, value) in entries {
            mem.insert(
                Bytes::from_static(user.as_bytes()),
                Version(version),
                value.map(|v| Bytes::from_static(v.as_bytes())),
            );
        }
        mem
    }

    /// The merge hands out every (key, version) once, in (key ascending, version descending)
    /// order across memtables and a checkpoint file, the earlier input's copy on a tie (a
    /// batch replayed into two layers), tombstones included; an empty input changes nothing.
    #[test]
    fn the_merge_orders_every_version_once_and_the_earlier_input_wins_ties() {
        let newer = memtable(&[
            ("b", 9, Some("b9")),
            ("a", 7, None),
            ("c", 5, Some("c5 new")),
        ]);
        let older = memtable(&[("a", 3, Some("a3")), ("c", 5, Some("c5 old"))]);
        let empty = memtable(&[]);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(1));
        let mut writer = CheckpointWriter::create(&path, 64).expect("create");
        for (user, version, value) in [
            ("a", 3, Some("a3")),
            ("a", 1, Some("a1")),
            ("b", 2, Some("b2")),
            ("d", 4, None),
        ] {
            writer
                .add(user.as_bytes(), Version(version), value.map(str::as_bytes))
                .expect("add");
        }
        writer
            .finish(0, Version(4), &RangeDeletes::default(), false)
            .expect("finish");
        let file = Checkpoint::open(&path, 1).expect("open");
        let mut inputs: Vec<Box<dyn MergeInput + '_>> = vec![
            Box::new(newer.merge_input()),
            Box::new(empty.merge_input()),
            Box::new(older.merge_input()),
            Box::new(CheckpointInput::new(&file)),
        ];
        let mut seen: Vec<(String, u128, Option<String>)> = Vec::new();
        merge::<()>(&mut inputs, |v| {
            seen.push((
                String::from_utf8(v.user.to_vec()).expect("utf8"),
                v.version.0,
                v.value
                    .map(|b| String::from_utf8(b.to_vec()).expect("utf8")),
            ));
            Ok(())
        })
        .expect("merge");
        let want: Vec<(String, u128, Option<String>)> = [
            ("a", 7, None),
            ("a", 3, Some("a3")),
            ("a", 1, Some("a1")),
            ("b", 9, Some("b9")),
            ("b", 2, Some("b2")),
            ("c", 5, Some("c5 new")),
            ("d", 4, None),
        ]
        .iter()
        .map(|&(u, v, val): &Entry| (u.to_string(), v, val.map(str::to_string)))
        .collect();
        assert_eq!(seen, want);
        // The file's own walk, alone: every entry, across its blocks (64-byte target).
        let walked = collect(&mut CheckpointInput::new(&file));
        let versions: Vec<u128> = walked.iter().map(|f| f.version.0).collect();
        assert_eq!(versions, vec![3, 1, 2, 4]);
    }

    /// A merge stops at the first error its callback returns.
    #[test]
    fn a_failing_callback_ends_the_merge() {
        let mem = memtable(&[("a", 1, Some("x")), ("b", 1, Some("y"))]);
        let mut inputs: Vec<Box<dyn MergeInput + '_>> = vec![Box::new(mem.merge_input())];
        let mut calls = 0;
        let result = merge(&mut inputs, |_| {
            calls += 1;
            Err("disk full")
        });
        assert_eq!((result, calls), (Err("disk full"), 1));
    }
}
