//! Snapshot range scans merged across all layers.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::key::{newest_at, Found, Probe, Source};
use crate::layers::Layers;
use crate::{Value, Version};

/// Where one layer's walk stands.
struct LayerWalk {
    /// An entry of the next user key this layer has not reported yet (any version).
    cursor: Option<Found>,
    /// The layer's current user key and its newest version <= the snapshot, if it has one.
    head: Option<(Bytes, Option<Found>)>,
}

/// A range scan at a snapshot: one `(key, value)` per user key whose newest version <= the
/// snapshot is not a tombstone, in key order (or reverse key order).
///
/// The scan holds the layer set it started with, so a concurrent checkpoint cannot pull data
/// out from under it. Keys written concurrently at versions <= the snapshot may or may not be
/// seen; readers that use a snapshot <= `Engine::visible()` are never affected by that.
pub struct Scan {
    layers: Arc<Layers>,
    walks: Vec<LayerWalk>,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    at: Version,
    reverse: bool,
}

impl Scan {
    pub(crate) fn new(
        layers: Arc<Layers>,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        at: Version,
        reverse: bool,
    ) -> Scan {
        let mut scan = Scan {
            walks: Vec::new(),
            layers,
            start,
            end,
            at,
            reverse,
        };
        for i in 0..scan.layers.count() {
            let cursor = scan.layers.source(i).and_then(|source| scan.first(source));
            let mut walk = LayerWalk { cursor, head: None };
            scan.refill(i, &mut walk);
            scan.walks.push(walk);
        }
        scan
    }

    /// The first entry of the range in this layer, in scan direction.
    fn first(&self, source: &dyn Source) -> Option<Found> {
        if self.reverse {
            match &self.end {
                Bound::Included(k) => {
                    source.upper_bound(Bound::Included(Probe::new(k, Version::MIN)))
                }
                Bound::Excluded(k) => {
                    source.upper_bound(Bound::Excluded(Probe::new(k, Version::MAX)))
                }
                Bound::Unbounded => source.upper_bound(Bound::Unbounded),
            }
        } else {
            match &self.start {
                Bound::Included(k) => {
                    source.lower_bound(Bound::Included(Probe::new(k, Version::MAX)))
                }
                Bound::Excluded(k) => {
                    source.lower_bound(Bound::Excluded(Probe::new(k, Version::MIN)))
                }
                Bound::Unbounded => source.lower_bound(Bound::Unbounded),
            }
        }
    }

    /// Whether `user` is still inside the range, looking in scan direction.
    fn in_range(&self, user: &[u8]) -> bool {
        if self.reverse {
            match &self.start {
                Bound::Included(k) => user >= k.as_slice(),
                Bound::Excluded(k) => user > k.as_slice(),
                Bound::Unbounded => true,
            }
        } else {
            match &self.end {
                Bound::Included(k) => user <= k.as_slice(),
                Bound::Excluded(k) => user < k.as_slice(),
                Bound::Unbounded => true,
            }
        }
    }

    /// Moves the layer's cursor to its next user key and computes that key's visible version.
    fn refill(&self, layer: usize, walk: &mut LayerWalk) {
        walk.head = None;
        let Some(source) = self.layers.source(layer) else {
            walk.cursor = None;
            return;
        };
        let Some(cursor) = walk.cursor.take() else {
            return;
        };
        if !self.in_range(&cursor.user) {
            return;
        }
        let user = cursor.user.clone();
        let next = if self.reverse {
            source.upper_bound(Bound::Excluded(Probe::new(&user, Version::MAX)))
        } else {
            source.next_user(&cursor)
        };
        let visible = if !self.reverse && cursor.version <= self.at {
            // Forward cursors sit on a key's newest version: often the answer already.
            Some(cursor)
        } else {
            newest_at(source, &user, self.at)
        };
        walk.cursor = next;
        walk.head = Some((user, visible));
    }
}

impl Iterator for Scan {
    type Item = (Vec<u8>, Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // The next user key in scan direction among all layers' heads.
            let mut next_user: Option<Bytes> = None;
            for walk in &self.walks {
                if let Some((user, _)) = &walk.head {
                    let better = match &next_user {
                        None => true,
                        Some(current) if self.reverse => user > current,
                        Some(current) => user < current,
                    };
                    if better {
                        next_user = Some(user.clone());
                    }
                }
            }
            let user = next_user?;
            let mut best: Option<Found> = None;
            let mut walks = std::mem::take(&mut self.walks);
            for (i, walk) in walks.iter_mut().enumerate() {
                let matches = matches!(&walk.head, Some((u, _)) if *u == user);
                if !matches {
                    continue;
                }
                if let Some((_, Some(found))) = walk.head.take() {
                    if best.as_ref().is_none_or(|b| found.version > b.version) {
                        best = Some(found);
                    }
                }
                self.refill(i, walk);
            }
            self.walks = walks;
            if let Some(Found {
                value: Some(value),
                version,
                ..
            }) = best
            {
                if self.layers.ranges.hiding(&user, version, self.at).is_none() {
                    return Some((user.to_vec(), value));
                }
            }
        }
    }
}
