//! Durable logical clocks of a node: a Lamport clock, a version vector and a vector clock.
//!
//! These are the timestamp service's building blocks for applications and for the cluster
//! phase; they are independent of the HLC that stamps commits ([`crate::clock`]).
//!
//! - **Lamport clock** (Lamport 1978): one counter. `tick` is a local event (+1); `sync(r)`
//!   receives a message stamped `r` and moves to `max(local, r) + 1`. If event a happened
//!   before event b, then L(a) < L(b).
//! - **Version vector**: a map node -> counter of updates that node made to a replica.
//!   `increment(node)` records one update by `node`; `merge(a, b)` is the pointwise maximum
//!   (what a replica knows after reconciling with another).
//! - **Vector clock** (Fidge, Mattern 1988): a map node -> events seen from that node. `tick`
//!   increments this node's own entry; `sync(r)` takes the pointwise maximum with `r` and then
//!   ticks; `compare(a, b)` tells `Before` (a happened before b), `After`, `Equal` or
//!   `Concurrent`. A missing entry counts as 0.
//!
//! ## Guarantees
//!
//! 1. **Per node, no global state**: one [`LogicalClocks`] per [`crate::Db`]; this node's own
//!    entry in the vectors is named `node<id>` (e.g. `node1`) after its [`NodeId`].
//! 2. **Durable before returned**: every operation that changes a clock writes the new state
//!    of all three clocks to the `logical_clocks` file (temporary file, fsync, rename, fsync of
//!    the directory) *before* the new value is returned or kept in memory. A failed write
//!    leaves the clocks as they were and returns the error.
//! 3. **Monotonic across restarts**: the state read at open is exactly the last state returned
//!    to anyone, so no value is ever handed out twice or goes backwards.
//! 4. Operations are serialized by one mutex (each costs two fsyncs; these are not hot-path
//!    operations). They are not transactional: like `nextval`, a tick inside a transaction
//!    that rolls back stays ticked.
//!
//! ## Values as text
//!
//! A vector is a JSON object of node name -> non-negative integer, printed with keys in
//! ascending byte order and no spaces: `{"node1":3,"node2":5}`. Names are 1 to
//! [`MAX_NODE_NAME`] bytes of UTF-8; a vector has at most [`MAX_ENTRIES`] entries; counters
//! are 0 ..= 2^63-1 (so they fit SQL `bigint`). Entries equal to 0 are kept as given.
//! Lamport times are plain integers in the same range.
//!
//! ## File format (`<data dir>/logical_clocks`, frozen, version 1)
//!
//! ```text
//!  offset  size  field
//!  0       8     magic "GNOMLGC1" (the trailing 1 is the format version)
//!  8       4     payload length N, u32 little-endian
//!  12      N     payload
//!  12+N    4     crc32 (IEEE) of bytes 0 .. 12+N, u32 little-endian
//!
//!  payload:
//!    u64 LE          Lamport time
//!    vector          version vector
//!    vector          vector clock
//!  vector:
//!    u32 LE          entry count E (<= MAX_ENTRIES)
//!    E times, names in ascending byte order:
//!      u16 LE        name length K (1 ..= MAX_NODE_NAME)
//!      K bytes       name, UTF-8
//!      u64 LE        counter (<= i64::MAX)
//! ```
//!
//! A missing file is a fresh node (all clocks zero). A file that fails any check (magic,
//! length, checksum, bounds, UTF-8, order) is an error at open, never a silent reset: a reset
//! would hand out old values again. The temporary file is `logical_clocks.tmp`; a crash before
//! the rename leaves the previous complete file in place.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::clock::NodeId;
use crate::error::MvccError;

/// Longest node name in a vector, in bytes.
pub const MAX_NODE_NAME: usize = 128;
/// Most entries in one vector.
pub const MAX_ENTRIES: usize = 1024;
/// Largest counter or Lamport time (fits a SQL `bigint`).
pub const MAX_COUNTER: u64 = i64::MAX as u64;

/// File format constants (frozen).
const MAGIC: &[u8; 8] = b"GNOMLGC1";
const FILE_NAME: &str = "logical_clocks";

/// Why a clock value given by a client is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockValueError {
    /// The text is not a JSON object of names to non-negative integers.
    #[error("invalid vector {text:?}: {reason}")]
    BadVector {
        /// The offending text (cut to 200 characters).
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A node name is empty or longer than [`MAX_NODE_NAME`] bytes.
    #[error("invalid node name {0:?}: must be 1 to {MAX_NODE_NAME} bytes")]
    BadNodeName(String),
    /// A vector would have more than [`MAX_ENTRIES`] entries.
    #[error("a vector has at most {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// A counter or Lamport time is negative or would pass [`MAX_COUNTER`].
    #[error("clock value out of range (0 to {MAX_COUNTER})")]
    OutOfRange,
}

/// How two vector clocks are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Every entry of a is <= b's, and they differ: a happened before b.
    Before,
    /// b happened before a.
    After,
    /// Same entries (missing = 0).
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

impl Causality {
    /// `BEFORE`, `AFTER`, `EQUAL` or `CONCURRENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Causality::Before => "BEFORE",
            Causality::After => "AFTER",
            Causality::Equal => "EQUAL",
            Causality::Concurrent => "CONCURRENT",
        }
    }
}

/// A vector of node name -> counter: a version vector or a vector clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorTime(BTreeMap<String, u64>);

impl VectorTime {
    /// Parses the JSON text form (see the module docs).
    pub fn parse(text: &str) -> Result<VectorTime, ClockValueError> {
        let bad = |reason: String| ClockValueError::BadVector {
            text: text.chars().take(200).collect(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(bad("expected a JSON object".into()));
        };
        if map.len() > MAX_ENTRIES {
            return Err(ClockValueError::TooManyEntries);
        }
        let mut entries = BTreeMap::new();
        for (name, v) in map {
            check_name(&name)?;
            let n = match v.as_u64() {
                Some(n) if n <= MAX_COUNTER => n,
                Some(_) => return Err(ClockValueError::OutOfRange),
                None if v.as_i64().is_some() => return Err(ClockValueError::OutOfRange),
                None => {
                    return Err(bad(format!(
                        "value of {name:?} is not a non-negative integer"
                    )))
                }
            };
            entries.insert(name, n);
        }
        Ok(VectorTime(entries))
    }

    /// The JSON text form: keys ascending, no spaces.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (name, n)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // NB: serde_json escapes the name exactly as JSON requires.
            out.push_str(&serde_json::Value::String(name.clone()).to_string());
            out.push(':');
            out.push_str(&n.to_string());
        }
        out.push('}');
        out
    }

    /// The counter of `node` (0 if absent).
    pub fn get(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// Entries, names ascending.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Pointwise maximum.
    pub fn merge(&self, other: &VectorTime) -> Result<VectorTime, ClockValueError> {
        let mut out = self.0.clone();
        for (name, n) in &other.0 {
            let e = out.entry(name.clone()).or_insert(0);
            *e = (*e).max(*n);
        }
        if out.len() > MAX_ENTRIES {
            return Err(ClockValueError::TooManyEntries);
        }
        Ok(VectorTime(out))
    }

    /// How `self` relates to `other` in happened-before order (missing entries are 0).
    pub fn compare(&self, other: &VectorTime) -> Causality {
        let mut less = false;
        let mut greater = false;
        let names = self.0.keys().chain(other.0.keys());
        for name in names {
            match self.get(name).cmp(&other.get(name)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// A copy with `node`'s counter one higher.
    fn incremented(&self, node: &str) -> Result<VectorTime, ClockValueError> {
        check_name(node)?;
        let mut out = self.0.clone();
        let e = out.entry(node.to_string()).or_insert(0);
        *e = e
            .checked_add(1)
            .filter(|n| *n <= MAX_COUNTER)
            .ok_or(ClockValueError::OutOfRange)?;
        if out.len() > MAX_ENTRIES {
            return Err(ClockValueError::TooManyEntries);
        }
        Ok(VectorTime(out))
    }
}

impl fmt::Display for VectorTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

fn check_name(name: &str) -> Result<(), ClockValueError> {
    if name.is_empty() || name.len() > MAX_NODE_NAME {
        return Err(ClockValueError::BadNodeName(
            name.chars().take(200).collect(),
        ));
    }
    Ok(())
}

/// The three clocks' values, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    lamport: u64,
    version: VectorTime,
    vclock: VectorTime,
}

/// What a clock operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogicalClockError {
    /// The client's value is unusable; nothing changed.
    #[error(transparent)]
    Value(#[from] ClockValueError),
    /// The new state could not be made durable; nothing changed.
    #[error(transparent)]
    Storage(#[from] MvccError),
}

/// This node's Lamport clock, version vector and vector clock, persisted in the data
/// directory. Shared by every session of the node (it lives in the [`crate::Db`]).
pub struct LogicalClocks {
    own: String,
    path: Option<PathBuf>,
    state: Mutex<State>,
}

impl fmt::Debug for LogicalClocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogicalClocks")
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

impl LogicalClocks {
    /// Opens the clocks of `node` stored in `dir` (None: in memory only, for tests).
    pub fn open(node: NodeId, dir: Option<&Path>) -> Result<LogicalClocks, MvccError> {
        let path = dir.map(|d| d.join(FILE_NAME));
        let state = match &path {
            Some(p) => read_state(p)?,
            None => State::default(),
        };
        Ok(LogicalClocks {
            own: format!("node{}", node.0),
            path,
            state: Mutex::new(state),
        })
    }

    /// This node's name in vectors (`node<id>`).
    pub fn own_name(&self) -> &str {
        &self.own
    }

    /// The Lamport time of the last event.
    pub fn lamport_current(&self) -> u64 {
        self.lock().lamport
    }

    /// A local event: the Lamport time + 1, durable before it is returned.
    pub fn lamport_tick(&self) -> Result<u64, LogicalClockError> {
        self.update(|s| {
            s.lamport = next(s.lamport)?;
            Ok(s.lamport)
        })
    }

    /// Receipt of a message stamped `received`: max(local, received) + 1.
    pub fn lamport_sync(&self, received: u64) -> Result<u64, LogicalClockError> {
        if received > MAX_COUNTER {
            return Err(ClockValueError::OutOfRange.into());
        }
        self.update(|s| {
            s.lamport = next(s.lamport.max(received))?;
            Ok(s.lamport)
        })
    }

    /// The version vector.
    pub fn version_current(&self) -> VectorTime {
        self.lock().version.clone()
    }

    /// Records one update by `node` (this node when None) in the version vector.
    pub fn version_increment(&self, node: Option<&str>) -> Result<VectorTime, LogicalClockError> {
        let node = node.unwrap_or(&self.own).to_string();
        self.update(|s| {
            s.version = s.version.incremented(&node)?;
            Ok(s.version.clone())
        })
    }

    /// Merges `other` into the version vector (pointwise maximum).
    pub fn version_merge_into(&self, other: &VectorTime) -> Result<VectorTime, LogicalClockError> {
        self.update(|s| {
            s.version = s.version.merge(other)?;
            Ok(s.version.clone())
        })
    }

    /// The vector clock.
    pub fn vclock_current(&self) -> VectorTime {
        self.lock().vclock.clone()
    }

    /// A local event: this node's entry + 1.
    pub fn vclock_tick(&self) -> Result<VectorTime, LogicalClockError> {
        let own = self.own.clone();
        self.update(|s| {
            s.vclock = s.vclock.incremented(&own)?;
            Ok(s.vclock.clone())
        })
    }

    /// Receipt of a message stamped `received`: pointwise maximum, then a local tick.
    pub fn vclock_sync(&self, received: &VectorTime) -> Result<VectorTime, LogicalClockError> {
        let own = self.own.clone();
        self.update(|s| {
            s.vclock = s.vclock.merge(received)?.incremented(&own)?;
            Ok(s.vclock.clone())
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // NB: the state is replaced whole, after the write succeeded; a panic cannot tear it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to a copy of the state, makes the copy durable, then installs it
    /// (guarantee 2). The mutex is held across the write so states reach the file in order.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, ClockValueError>,
    ) -> Result<T, LogicalClockError> {
        let mut guard = self.lock();
        let mut next_state = guard.clone();
        let out = change(&mut next_state)?;
        if let Some(path) = &self.path {
            write_state(path, &next_state)?;
        }
        *guard = next_state;
        Ok(out)
    }
}

fn next(n: u64) -> Result<u64, ClockValueError> {
    n.checked_add(1)
        .filter(|n| *n <= MAX_COUNTER)
        .ok_or(ClockValueError::OutOfRange)
}

fn encode_state(s: &State) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&s.lamport.to_le_bytes());
    for v in [&s.version, &s.vclock] {
        payload.extend_from_slice(&(v.0.len() as u32).to_le_bytes());
        for (name, n) in &v.0 {
            payload.extend_from_slice(&(name.len() as u16).to_le_bytes());
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(&n.to_le_bytes());
        }
    }
    let mut buf = Vec::with_capacity(16 + payload.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&payload);
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Reads bytes off the front of a slice; None when too short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn vector(&mut self) -> Option<VectorTime> {
        let count = self.u32()? as usize;
        if count > MAX_ENTRIES {
            return None;
        }
        let mut map = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let len = self.u16()? as usize;
            if len == 0 || len > MAX_NODE_NAME {
                return None;
            }
            let name = std::str::from_utf8(self.take(len)?).ok()?.to_string();
            if last.as_ref().is_some_and(|l| *l >= name) {
                return None;
            }
            let n = self.u64()?;
            if n > MAX_COUNTER {
                return None;
            }
            last = Some(name.clone());
            map.insert(name, n);
        }
        Some(VectorTime(map))
    }
}

fn decode_state(bytes: &[u8]) -> Option<State> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().ok()?) as usize;
    if bytes.len() != 16usize.checked_add(len)? {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[12 + len..].try_into().ok()?);
    if crc != crc32fast::hash(&bytes[..12 + len]) {
        return None;
    }
    let mut r = Reader(&bytes[12..12 + len]);
    let lamport = r.u64()?;
    if lamport > MAX_COUNTER {
        return None;
    }
    let version = r.vector()?;
    let vclock = r.vector()?;
    if !r.0.is_empty() {
        return None;
    }
    Some(State {
        lamport,
        version,
        vclock,
    })
}

fn read_state(path: &Path) -> Result<State, MvccError> {
    match fs::read(path) {
        Ok(bytes) => decode_state(&bytes).ok_or_else(|| MvccError::CorruptClockFile {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(MvccError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_state(path: &Path, s: &State) -> Result<(), MvccError> {
    let io = |source| MvccError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(&encode_state(s)).map_err(io)?;
    f.sync_data().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> VectorTime {
        VectorTime::parse(text).unwrap()
    }

    #[test]
    fn lamport_ticks_and_syncs_past_received_times() {
        let c = LogicalClocks::open(NodeId(1), None).unwrap();
        assert_eq!(c.lamport_tick().unwrap(), 1);
        assert_eq!(c.lamport_tick().unwrap(), 2);
        assert_eq!(c.lamport_sync(10).unwrap(), 11);
        // A message from the past still counts as an event.
        assert_eq!(c.lamport_sync(3).unwrap(), 12);
        assert_eq!(c.lamport_current(), 12);
        assert!(matches!(
            c.lamport_sync(MAX_COUNTER),
            Err(LogicalClockError::Value(ClockValueError::OutOfRange))
        ));
        assert_eq!(c.lamport_current(), 12, "a refused sync changes nothing");
    }

    #[test]
    fn version_vector_increments_named_nodes_and_merges_pointwise() {
        let c = LogicalClocks::open(NodeId(2), None).unwrap();
        c.version_increment(None).unwrap();
        c.version_increment(Some("node7")).unwrap();
        let now = c.version_increment(None).unwrap();
        assert_eq!(now.to_json(), r#"{"node2":2,"node7":1}"#);
        let merged = v(r#"{"a":3,"b":1}"#).merge(&v(r#"{"b":4,"c":0}"#)).unwrap();
        assert_eq!(merged.to_json(), r#"{"a":3,"b":4,"c":0}"#);
        let into = c.version_merge_into(&v(r#"{"node7":5}"#)).unwrap();
        assert_eq!(into.to_json(), r#"{"node2":2,"node7":5}"#);
    }

    #[test]
    fn vector_clock_compare_tells_the_four_orders() {
        let a = v(r#"{"n1":1,"n2":2}"#);
        assert_eq!(a.compare(&v(r#"{"n1":1,"n2":3}"#)), Causality::Before);
        assert_eq!(a.compare(&v(r#"{"n1":1}"#)), Causality::After);
        assert_eq!(a.compare(&v(r#"{"n2":2,"n1":1,"n3":0}"#)), Causality::Equal);
        assert_eq!(a.compare(&v(r#"{"n1":2,"n2":1}"#)), Causality::Concurrent);
        assert_eq!(v("{}").compare(&v("{}")), Causality::Equal);
    }

    #[test]
    fn vector_clock_sync_is_max_then_tick() {
        let c = LogicalClocks::open(NodeId(1), None).unwrap();
        let t = c.vclock_tick().unwrap();
        assert_eq!(t.to_json(), r#"{"node1":1}"#);
        let s = c.vclock_sync(&v(r#"{"node1":0,"node3":4}"#)).unwrap();
        assert_eq!(s.to_json(), r#"{"node1":2,"node3":4}"#);
        assert_eq!(t.compare(&s), Causality::Before);
    }

    #[test]
    fn bad_vectors_are_refused_with_a_reason() {
        for bad in [
            "",
            "[1,2]",
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":"1"}"#,
            r#"{"a":1"#,
            r#"{"":1}"#,
            r#"{"a":9223372036854775808}"#,
        ] {
            assert!(VectorTime::parse(bad).is_err(), "{bad:?} parsed");
        }
        let long = format!(r#"{{"{}":1}}"#, "x".repeat(MAX_NODE_NAME + 1));
        assert!(matches!(
            VectorTime::parse(&long),
            Err(ClockValueError::BadNodeName(_))
        ));
        // Names that need escaping survive the round trip.
        let odd = v(r#"{"a\"b\\c\n":1,"ü":2}"#);
        assert_eq!(VectorTime::parse(&odd.to_json()).unwrap(), odd);
    }

    #[test]
    fn clocks_survive_restart_exactly() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = LogicalClocks::open(NodeId(4), Some(dir.path())).unwrap();
            c.lamport_sync(41).unwrap();
            c.version_increment(Some("peer")).unwrap();
            c.vclock_sync(&v(r#"{"node9":7}"#)).unwrap();
        }
        let c = LogicalClocks::open(NodeId(4), Some(dir.path())).unwrap();
        assert_eq!(c.lamport_current(), 42);
        assert_eq!(c.lamport_tick().unwrap(), 43);
        assert_eq!(c.version_current().to_json(), r#"{"peer":1}"#);
        assert_eq!(c.vclock_current().to_json(), r#"{"node4":1,"node9":7}"#);
        assert_eq!(
            c.vclock_tick().unwrap().to_json(),
            r#"{"node4":2,"node9":7}"#
        );
    }

    #[test]
    fn every_truncation_or_flipped_byte_of_the_file_is_refused() {
        let s = State {
            lamport: 5,
            version: v(r#"{"a":1,"bb":2}"#),
            vclock: v(r#"{"node1":3}"#),
        };
        let bytes = encode_state(&s);
        assert_eq!(decode_state(&bytes), Some(s));
        for cut in 0..bytes.len() {
            assert_eq!(decode_state(&bytes[..cut]), None, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert_eq!(decode_state(&b), None, "flip at {i}");
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            LogicalClocks::open(NodeId(1), Some(dir.path())),
            Err(MvccError::CorruptClockFile { .. })
        ));
    }
}
