//! The visibility watermark: which versions readers may use as a snapshot.
//!
//! ```text
//!   prepared:   3      5      8      9        (versions strictly increase at prepare)
//!   state:    done   done  applying done
//!                        ^
//!                        visible = 7: every batch <= 7 is complete; 9 is done but waits for 8
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::{EngineError, Version};

/// Tracks in-flight batches and publishes the watermark in version order.
#[derive(Debug)]
pub(crate) struct Visibility {
    state: Mutex<State>,
    advanced: Condvar,
}

#[derive(Debug)]
struct State {
    /// Prepared batches not yet published: version -> fully applied?
    in_flight: BTreeMap<Version, bool>,
    max_prepared: Version,
    visible: Version,
    /// Threads sleeping in `wait_visible`. NB: `Condvar::notify_all` is a futex syscall even
    /// with nobody waiting, and most commits find the watermark already past their version,
    /// so an advance wakes only when somebody sleeps.
    sleepers: usize,
}

impl Visibility {
    /// Starts with everything up to `recovered` visible (the checkpoint's newest version).
    pub(crate) fn new(recovered: Version) -> Arc<Self> {
        Arc::new(Visibility {
            state: Mutex::new(State {
                in_flight: BTreeMap::new(),
                max_prepared: recovered,
                visible: recovered,
                sleepers: 0,
            }),
            advanced: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // NB: the state is consistent after every statement, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn prepare(&self, version: Version) -> Result<(), EngineError> {
        let mut state = self.lock();
        if version <= state.max_prepared {
            return Err(EngineError::VersionNotIncreasing {
                version,
                max_prepared: state.max_prepared,
            });
        }
        state.max_prepared = version;
        state.in_flight.insert(version, false);
        Ok(())
    }

    /// Marks a prepared batch completely applied and advances the watermark if it can.
    pub(crate) fn applied(&self, version: Version) {
        let mut state = self.lock();
        if let Some(done) = state.in_flight.get_mut(&version) {
            *done = true;
        }
        self.advance(&mut state);
    }

    /// Forgets a prepared batch that will never be applied.
    pub(crate) fn abandon(&self, version: Version) {
        let mut state = self.lock();
        state.in_flight.remove(&version);
        self.advance(&mut state);
    }

    /// Recovery: a batch at `version` is applied outside the prepare protocol.
    pub(crate) fn recovered(&self, version: Version) {
        let mut state = self.lock();
        if version > state.max_prepared {
            state.max_prepared = version;
        }
        self.advance(&mut state);
    }

    fn advance(&self, state: &mut State) {
        while let Some(entry) = state.in_flight.first_entry() {
            if !*entry.get() {
                break;
            }
            entry.remove();
        }
        let candidate = match state.in_flight.keys().next() {
            // Nothing can be prepared between the last published batch and the first
            // unfinished one any more (prepare only accepts versions > max_prepared), so the
            // watermark may stand just below it.
            Some(first_unfinished) => Version(first_unfinished.0.saturating_sub(1)),
            None => state.max_prepared,
        };
        if candidate > state.visible {
            state.visible = candidate;
            if state.sleepers > 0 {
                self.advanced.notify_all();
            }
        }
    }

    pub(crate) fn visible(&self) -> Version {
        self.lock().visible
    }

    pub(crate) fn max_prepared(&self) -> Version {
        self.lock().max_prepared
    }

    pub(crate) fn wait_visible(&self, version: Version) {
        let mut state = self.lock();
        while state.visible < version {
            // NB: counted under the mutex, so `advance` (also under it) cannot miss a sleeper.
            state.sleepers += 1;
            state = self
                .advanced
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.sleepers -= 1;
        }
    }
}
