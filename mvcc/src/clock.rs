//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! A [`Timestamp`] is ⟨physical µs, logical, node⟩. The physical part follows the wall clock
//! when it moves forward; the logical counter orders events that share a physical value; the
//! node id breaks the remaining ties so that timestamps from different nodes never compare
//! equal. The order is lexicographic over the three fields.
//!
//! Monotonicity across restarts: the clock persists a *ceiling*, a physical value it promises
//! not to reach without first writing a higher ceiling to disk. On open, the clock starts at
//! the persisted ceiling, so even if the wall clock jumped backwards while the process was down,
//! no timestamp issued after the restart is below one issued before it.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::MvccError;

/// Identifies a node of the cluster; part of every timestamp it issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// A hybrid logical clock timestamp ⟨physical µs since the Unix epoch, logical, node⟩.
///
/// Totally ordered by (physical, logical, node). Encodes to 16 bytes big-endian
/// ([`Timestamp::encode`]) so that byte order equals timestamp order, and maps one-to-one onto
/// the engine's opaque [`gnomon_engine::Version`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Wall-clock microseconds since the Unix epoch (as observed by the HLC).
    pub physical_us: u64,
    /// Orders events that share a physical value.
    pub logical: u32,
    /// The node that issued the timestamp.
    pub node: u32,
}

impl Timestamp {
    /// The smallest timestamp; sees nothing.
    pub const ZERO: Timestamp = Timestamp {
        physical_us: 0,
        logical: 0,
        node: 0,
    };
    /// The largest timestamp; sees everything.
    pub const MAX: Timestamp = Timestamp {
        physical_us: u64::MAX,
        logical: u32::MAX,
        node: u32::MAX,
    };
    /// Length of [`Timestamp::encode`]'s output. Frozen: part of the WAL record format.
    pub const ENCODED_LEN: usize = 16;

    /// 16 bytes: physical (u64 BE) | logical (u32 BE) | node (u32 BE). Byte order = timestamp order.
    pub fn encode(&self) -> [u8; 16] {
        self.to_version().0.to_be_bytes()
    }

    /// Inverse of [`Timestamp::encode`].
    pub fn decode(bytes: [u8; 16]) -> Timestamp {
        Timestamp::from_version(gnomon_engine::Version(u128::from_be_bytes(bytes)))
    }

    /// The engine version with the same order as this timestamp.
    pub fn to_version(&self) -> gnomon_engine::Version {
        gnomon_engine::Version(
            (u128::from(self.physical_us) << 64)
                | (u128::from(self.logical) << 32)
                | u128::from(self.node),
        )
    }

    /// Inverse of [`Timestamp::to_version`].
    pub fn from_version(v: gnomon_engine::Version) -> Timestamp {
        Timestamp {
            physical_us: (v.0 >> 64) as u64,
            logical: (v.0 >> 32) as u32,
            node: v.0 as u32,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.physical_us, self.logical, self.node)
    }
}

/// Where the clock reads physical time. A trait so tests can make the wall clock jump.
pub trait WallClock: Send + Sync + 'static {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// How far ahead of the last ceiling a new one is written: one fsync per this much time.
const CEILING_WINDOW_US: u64 = 1_000_000;

#[derive(Debug)]
struct HlcState {
    physical_us: u64,
    logical: u32,
    /// No timestamp with a physical part at or above this is issued before a higher ceiling is durable.
    ceiling_us: u64,
}

/// A hybrid logical clock with a persisted high-water mark. Shared by all transactions of a node.
pub struct Clock {
    node: NodeId,
    wall: Box<dyn WallClock>,
    max_offset: Duration,
    ceiling_path: Option<PathBuf>,
    state: Mutex<HlcState>,
    max_observed_offset_us: AtomicU64,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Clock {
    /// Opens the clock, reading the persisted ceiling from `ceiling_path` (if given) so that no
    /// timestamp issued now is below any issued before the restart.
    pub fn open(
        node: NodeId,
        wall: Box<dyn WallClock>,
        max_offset: Duration,
        ceiling_path: Option<PathBuf>,
    ) -> Result<Clock, MvccError> {
        let ceiling = match &ceiling_path {
            Some(path) => read_ceiling(path)?,
            None => 0,
        };
        Ok(Clock {
            node,
            wall,
            max_offset,
            ceiling_path,
            // Start at the ceiling: everything issued before the restart was below it.
            state: Mutex::new(HlcState {
                physical_us: ceiling,
                logical: 0,
                ceiling_us: ceiling,
            }),
            max_observed_offset_us: AtomicU64::new(0),
        })
    }

    /// This clock's node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The wall clock's reading (µs since the Unix epoch), without touching the HLC: for
    /// display times such as a transaction's start.
    pub fn wall_now_us(&self) -> u64 {
        self.wall.now_us()
    }

    /// A timestamp for a local event (send or commit): strictly greater than every timestamp this
    /// clock issued or observed before.
    pub fn now(&self) -> Result<Timestamp, MvccError> {
        let pt = self.wall.now_us();
        let mut s = self.lock_state();
        if pt > s.physical_us {
            s.physical_us = pt;
            s.logical = 0;
        } else {
            self.bump_logical(&mut s);
        }
        self.ensure_ceiling(&mut s)?;
        Ok(Timestamp {
            physical_us: s.physical_us,
            logical: s.logical,
            node: self.node.0,
        })
    }

    /// Merges a timestamp received from another node (the HLC receive rule). A timestamp more
    /// than `max_offset` ahead of the local wall clock is refused with
    /// [`MvccError::ClockOffset`] and leaves the clock unchanged.
    pub fn update(&self, received: Timestamp) -> Result<Timestamp, MvccError> {
        let pt = self.wall.now_us();
        let ahead = received.physical_us.saturating_sub(pt);
        self.max_observed_offset_us
            .fetch_max(ahead, Ordering::Relaxed);
        if ahead > self.max_offset.as_micros() as u64 {
            return Err(MvccError::ClockOffset {
                received,
                local_us: pt,
                max_offset: self.max_offset,
            });
        }
        let mut s = self.lock_state();
        let l_old = s.physical_us;
        let l_new = l_old.max(received.physical_us).max(pt);
        if l_new == l_old && l_new == received.physical_us {
            s.logical = s.logical.max(received.logical);
            self.bump_logical(&mut s);
        } else if l_new == l_old {
            self.bump_logical(&mut s);
        } else if l_new == received.physical_us {
            s.physical_us = l_new;
            s.logical = received.logical;
            self.bump_logical(&mut s);
        } else {
            s.physical_us = l_new;
            s.logical = 0;
        }
        self.ensure_ceiling(&mut s)?;
        Ok(Timestamp {
            physical_us: s.physical_us,
            logical: s.logical,
            node: self.node.0,
        })
    }

    /// Raises the clock to at least `ts` without an offset check: used by recovery for
    /// timestamps this node wrote itself.
    pub fn observe_recovered(&self, ts: Timestamp) -> Result<(), MvccError> {
        let mut s = self.lock_state();
        if (ts.physical_us, ts.logical) > (s.physical_us, s.logical) {
            s.physical_us = ts.physical_us;
            s.logical = ts.logical;
        }
        self.ensure_ceiling(&mut s)
    }

    /// The largest amount (µs) by which a received timestamp was ahead of the local wall clock.
    pub fn max_observed_offset_us(&self) -> u64 {
        self.max_observed_offset_us.load(Ordering::Relaxed)
    }

    /// The configured maximum clock offset.
    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, HlcState> {
        // NB: the state is two integers updated together; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump_logical(&self, s: &mut HlcState) {
        match s.logical.checked_add(1) {
            Some(l) => s.logical = l,
            None => {
                // 4 billion events within one microsecond: borrow from the physical part.
                s.physical_us += 1;
                s.logical = 0;
            }
        }
    }

    fn ensure_ceiling(&self, s: &mut HlcState) -> Result<(), MvccError> {
        if s.physical_us < s.ceiling_us {
            return Ok(());
        }
        let new_ceiling = s.physical_us.saturating_add(CEILING_WINDOW_US);
        if let Some(path) = &self.ceiling_path {
            write_ceiling(path, new_ceiling)?;
        }
        s.ceiling_us = new_ceiling;
        Ok(())
    }
}

/// Ceiling file format (frozen): 8 bytes magic `GNOMCLK1`, u64 LE ceiling µs, u32 LE crc32 of the
/// previous 16 bytes. Written to a temporary file, fsynced, renamed over the old one.
const CEILING_MAGIC: &[u8; 8] = b"GNOMCLK1";

fn read_ceiling(path: &Path) -> Result<u64, MvccError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(MvccError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = || MvccError::CorruptClockFile {
        path: path.to_path_buf(),
    };
    if bytes.len() != 20 || &bytes[..8] != CEILING_MAGIC {
        return Err(corrupt());
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().map_err(|_| corrupt())?);
    if crc != crc32(&bytes[..16]) {
        return Err(corrupt());
    }
    Ok(u64::from_le_bytes(
        bytes[8..16].try_into().map_err(|_| corrupt())?,
    ))
}

fn write_ceiling(path: &Path, ceiling: u64) -> Result<(), MvccError> {
    let io = |source| MvccError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::with_capacity(20);
    buf.extend_from_slice(CEILING_MAGIC);
    buf.extend_from_slice(&ceiling.to_le_bytes());
    let crc = crc32(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(&buf).map_err(io)?;
    f.sync_data().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A wall clock the test can set.
    #[derive(Clone, Default)]
    struct ManualClock(Arc<AtomicU64>);
    impl WallClock for ManualClock {
        fn now_us(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn clock(wall: &ManualClock, path: Option<PathBuf>) -> Clock {
        Clock::open(
            NodeId(7),
            Box::new(wall.clone()),
            Duration::from_millis(500),
            path,
        )
        .unwrap()
    }

    #[test]
    fn encoding_preserves_order_and_roundtrips() {
        let a = Timestamp {
            physical_us: 5,
            logical: 9,
            node: 3,
        };
        let b = Timestamp {
            physical_us: 6,
            logical: 0,
            node: 1,
        };
        assert!(a < b);
        assert!(a.encode() < b.encode());
        assert_eq!(Timestamp::decode(a.encode()), a);
        assert_eq!(Timestamp::from_version(b.to_version()), b);
    }

    #[test]
    fn local_events_are_strictly_increasing_when_wall_clock_stalls_or_goes_back() {
        let wall = ManualClock::default();
        wall.0.store(1_000, Ordering::SeqCst);
        let c = clock(&wall, None);
        let t1 = c.now().unwrap();
        let t2 = c.now().unwrap();
        wall.0.store(500, Ordering::SeqCst);
        let t3 = c.now().unwrap();
        assert!(t1 < t2 && t2 < t3);
        assert_eq!(t3.physical_us, 1_000);
        assert_eq!(t3.node, 7);
    }

    #[test]
    fn receive_follows_the_hlc_rule_and_refuses_far_future() {
        let wall = ManualClock::default();
        wall.0.store(10_000_000, Ordering::SeqCst);
        let c = clock(&wall, None);
        let remote = Timestamp {
            physical_us: 10_200_000,
            logical: 4,
            node: 2,
        };
        let t = c.update(remote).unwrap();
        assert_eq!((t.physical_us, t.logical), (10_200_000, 5));
        assert!(c.now().unwrap() > remote);
        let far = Timestamp {
            physical_us: 11_000_000,
            logical: 0,
            node: 2,
        };
        assert!(matches!(c.update(far), Err(MvccError::ClockOffset { .. })));
        assert_eq!(c.max_observed_offset_us(), 1_000_000);
        // The refused timestamp did not move the clock.
        assert!(c.now().unwrap().physical_us < 11_000_000);
    }

    #[test]
    fn timestamps_never_go_back_across_restart_after_wall_clock_jump() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        let wall = ManualClock::default();
        const HOUR_US: u64 = 3_600_000_000;
        wall.0.store(2 * HOUR_US, Ordering::SeqCst);
        let before = clock(&wall, Some(path.clone())).now().unwrap();
        // The machine restarts with its wall clock an hour behind.
        wall.0.store(HOUR_US, Ordering::SeqCst);
        let after = clock(&wall, Some(path)).now().unwrap();
        assert!(after > before, "{after} must be after {before}");
    }

    #[test]
    fn corrupt_ceiling_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        fs::write(&path, b"garbage").unwrap();
        let wall = ManualClock::default();
        assert!(matches!(
            Clock::open(
                NodeId(1),
                Box::new(wall),
                Duration::from_millis(500),
                Some(path)
            ),
            Err(MvccError::CorruptClockFile { .. })
        ));
    }
}
