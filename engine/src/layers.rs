//! The set of layers a reader consults: active memtable, frozen memtables, checkpoint.

use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::key::Source;
use crate::memtable::MemTable;
use crate::ranges::RangeDeletes;

/// An immutable snapshot of the layer structure. Swapped whole (under a brief write lock)
/// when a checkpoint freezes the memtable and when it installs the new file.
pub(crate) struct Layers {
    /// Takes all new writes.
    pub(crate) active: Arc<MemTable>,
    /// Frozen by a running (or failed) checkpoint; oldest first. Still read, no new writers.
    pub(crate) frozen: Vec<Arc<MemTable>>,
    /// The newest valid checkpoint file, if any.
    pub(crate) checkpoint: Option<Arc<Checkpoint>>,
    /// Every range delete (published or not, like the memtables' versions); see `ranges.rs`.
    pub(crate) ranges: Arc<RangeDeletes>,
}

impl Layers {
    /// Number of layers: active + frozen + (checkpoint?).
    pub(crate) fn count(&self) -> usize {
        1 + self.frozen.len() + usize::from(self.checkpoint.is_some())
    }

    /// Layer `i`: 0 = active, then frozen (oldest first), then the checkpoint.
    pub(crate) fn source(&self, i: usize) -> Option<&dyn Source> {
        if i == 0 {
            return Some(self.active.as_ref());
        }
        if let Some(frozen) = self.frozen.get(i - 1) {
            return Some(frozen.as_ref());
        }
        if i == 1 + self.frozen.len() {
            return self.checkpoint.as_deref().map(|c| c as &dyn Source);
        }
        None
    }
}
