//! CancelRequest routing: from a (pid, secret) pair to the session it may interrupt.
//!
//! A CancelRequest arrives on a fresh connection carrying the BackendKeyData the target session
//! was given. The registry maps that key to the session's cancel flag (owned by the sql layer,
//! which checks it while executing and fails the statement with 57014).
//!
//! Invariants:
//! 1. The flag is only ever raised while the session is running a statement (`running`), so a
//!    cancel that arrives between statements is ignored, as in PostgreSQL, instead of killing the
//!    next statement.
//! 2. Raising the flag and the start/end of a statement are serialized by the entry's mutex, so
//!    a cancel racing with the end of a statement cannot leak into the next one.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Key a client must present to cancel a session (sent in BackendKeyData).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    /// Connection number, presented as the "process id".
    pub pid: i32,
    /// Random secret.
    pub secret: i32,
}

/// One session's cancel state.
#[derive(Debug)]
pub struct CancelTarget {
    flag: Arc<AtomicBool>,
    running: Mutex<bool>,
}

impl CancelTarget {
    fn running(&self) -> MutexGuard<'_, bool> {
        // NB: the guarded bool stays meaningful even if a holder panicked.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the start of a statement: clears stale cancels, then allows new ones.
    pub fn begin_statement(&self) {
        let mut running = self.running();
        self.flag.store(false, Ordering::SeqCst);
        *running = true;
    }

    /// Marks the end of a statement: cancels arriving from now on are ignored.
    pub fn end_statement(&self) {
        let mut running = self.running();
        *running = false;
        self.flag.store(false, Ordering::SeqCst);
    }

    fn cancel(&self) -> bool {
        let running = self.running();
        if *running {
            self.flag.store(true, Ordering::SeqCst);
        }
        *running
    }
}

/// All live sessions' cancel keys. Shared by every connection task.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    next_pid: AtomicI32,
    sessions: Mutex<HashMap<CancelKey, Arc<CancelTarget>>>,
    random: RandomState,
}

impl CancelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        CancelRegistry {
            next_pid: AtomicI32::new(1),
            ..Default::default()
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<CancelKey, Arc<CancelTarget>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session's cancel flag under a fresh key; unregister with [`Self::remove`].
    pub fn register(&self, flag: Arc<AtomicBool>) -> (CancelKey, Arc<CancelTarget>) {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let mut hasher = self.random.build_hasher();
        hasher.write_i32(pid);
        // NB: truncation intended: the secret is 32 random bits.
        let secret = hasher.finish() as i32;
        let key = CancelKey { pid, secret };
        let target = Arc::new(CancelTarget {
            flag,
            running: Mutex::new(false),
        });
        self.sessions().insert(key, Arc::clone(&target));
        (key, target)
    }

    /// Forgets a session (its connection ended).
    pub fn remove(&self, key: CancelKey) {
        self.sessions().remove(&key);
    }

    /// Raises the cancel flag of the session with this key if it is running a statement.
    /// Returns whether a statement was interrupted; unknown keys are ignored (as PostgreSQL does).
    pub fn cancel(&self, key: CancelKey) -> bool {
        let target = self.sessions().get(&key).cloned();
        target.is_some_and(|t| t.cancel())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_only_reaches_a_running_statement_with_the_right_secret() {
        let registry = CancelRegistry::new();
        let flag = Arc::new(AtomicBool::new(false));
        let (key, target) = registry.register(Arc::clone(&flag));

        assert!(!registry.cancel(key), "idle session is not cancelled");
        assert!(!flag.load(Ordering::SeqCst));

        target.begin_statement();
        let wrong = CancelKey {
            secret: key.secret.wrapping_add(1),
            ..key
        };
        assert!(!registry.cancel(wrong));
        assert!(!flag.load(Ordering::SeqCst));
        assert!(registry.cancel(key));
        assert!(flag.load(Ordering::SeqCst));

        target.end_statement();
        assert!(
            !flag.load(Ordering::SeqCst),
            "cancel does not leak to the next statement"
        );
        registry.remove(key);
        target.begin_statement();
        assert!(
            !registry.cancel(key),
            "removed sessions cannot be cancelled"
        );
    }
}
