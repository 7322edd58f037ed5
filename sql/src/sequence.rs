//! Sequences: CREATE SEQUENCE, `nextval` / `currval` / `setval`, and what SERIAL,
//! BIGSERIAL and GENERATED ... AS IDENTITY columns draw from.
//!
//! As in PostgreSQL, a sequence's *definition* is transactional (it lives under
//! [`Key::Sequence`] and is created and dropped with its transaction), but its *value* is not:
//! a `nextval` is never rolled back, so two transactions never get the same value and never
//! wait for each other.
//!
//! ```text
//!  nextval ── Sequences (one mutex) ── value in memory ──(every 32 values)──► autonomous
//!                                                              transaction writes the last
//!                                                              reserved value under
//!                                                              SequenceValue(id), commits
//! ```
//!
//! Invariants:
//! 1. No value is handed out before a committed `SequenceValue` covers it, so after a crash
//!    the sequence resumes after every value any transaction may have seen (a restart skips
//!    the rest of a reserved block: gaps, as in PostgreSQL after a crash).
//! 2. Only autonomous transactions write `SequenceValue` keys, and only while holding the
//!    `Sequences` mutex, so they never wait for a row lock held by a user transaction
//!    (DROP SEQUENCE leaves the key: ids are never reused).
//!
//! `currval` is per session (`SessionSequences`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gnomon_mvcc::{Db, Isolation};

use crate::encoding::{put_str, put_type, read_type, Key, KeyPrefix, Reader};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::storage::Transaction;
use crate::types::{DataType, Value};

/// Version byte of an encoded [`SequenceDef`].
pub const SEQUENCE_DEF_VERSION: u8 = 1; // FROZEN

/// How many values one persisted reservation covers (PostgreSQL's SEQ_LOG_VALS).
const RESERVE: i64 = 32;

/// A sequence definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceDef {
    /// Id (an OID, allocated like table ids).
    pub id: u32,
    /// Name (case-folded).
    pub name: String,
    /// Value type: int2, int4 or int8 (bounds the default MAXVALUE).
    pub ty: DataType,
    /// First value.
    pub start: i64,
    /// Step (never 0).
    pub increment: i64,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
    /// Wrap around at the bound instead of failing.
    pub cycle: bool,
    /// The table column this sequence belongs to (SERIAL / identity): dropped with the table.
    pub owned_by: Option<(u32, String)>,
}

impl SequenceDef {
    /// A sequence with PostgreSQL's defaults for `ty` (ascending from 1).
    pub fn with_defaults(id: u32, name: String, ty: DataType) -> SequenceDef {
        let max = match ty {
            DataType::Int2 => i16::MAX as i64,
            DataType::Int4 => i32::MAX as i64,
            _ => i64::MAX,
        };
        SequenceDef {
            id,
            name,
            ty,
            start: 1,
            increment: 1,
            min: 1,
            max,
            cycle: false,
            owned_by: None,
        }
    }

    /// Encoding:
    ///
    /// ```text
    /// version 1B | id u32 BE | name str | type | start i64 BE | increment i64 BE
    ///   | min i64 BE | max i64 BE | flags 1B: bit0 cycle, bit1 owned
    ///   | [owner table id u32 BE | owner column str]
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SEQUENCE_DEF_VERSION];
        out.extend_from_slice(&self.id.to_be_bytes());
        put_str(&mut out, &self.name);
        put_type(&mut out, &self.ty);
        for v in [self.start, self.increment, self.min, self.max] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.push(self.cycle as u8 | ((self.owned_by.is_some() as u8) << 1));
        if let Some((t, c)) = &self.owned_by {
            out.extend_from_slice(&t.to_be_bytes());
            put_str(&mut out, c);
        }
        out
    }

    /// Decodes [`SequenceDef::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> SqlResult<SequenceDef> {
        let mut r = Reader::new(bytes);
        if r.u8()? != SEQUENCE_DEF_VERSION {
            return Err(SqlError::corrupt("unknown sequence definition version"));
        }
        let id = u32::from_be_bytes(r.array()?);
        let name = r.string()?;
        let ty = read_type(&mut r)?;
        let mut nums = [0i64; 4];
        for n in &mut nums {
            *n = i64::from_be_bytes(r.array()?);
        }
        let flags = r.u8()?;
        let owned_by = if flags & 2 != 0 {
            let t = u32::from_be_bytes(r.array()?);
            Some((t, r.string()?))
        } else {
            None
        };
        if !r.is_empty() || nums[1] == 0 {
            return Err(SqlError::corrupt("bad sequence definition"));
        }
        Ok(SequenceDef {
            id,
            name,
            ty,
            start: nums[0],
            increment: nums[1],
            min: nums[2],
            max: nums[3],
            cycle: flags & 1 != 0,
            owned_by,
        })
    }
}

/// The sequence named `name` as `txn` sees it.
pub(crate) fn lookup(txn: &dyn Transaction, name: &str) -> SqlResult<Option<SequenceDef>> {
    match txn.get(&Key::Sequence(txn.database(), name.to_string()).encode())? {
        Some(b) => Ok(Some(SequenceDef::decode(&b)?)),
        None => Ok(None),
    }
}

/// Like [`lookup`], failing with 42P01 as PostgreSQL does for an unknown relation.
pub(crate) fn require(txn: &dyn Transaction, name: &str) -> SqlResult<SequenceDef> {
    lookup(txn, name)?.ok_or_else(|| {
        SqlError::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    })
}

/// Every sequence `txn` sees.
pub(crate) fn all(txn: &dyn Transaction) -> SqlResult<Vec<SequenceDef>> {
    txn.scan(KeyPrefix::Sequence(txn.database()).range(), false, None)?
        .into_iter()
        .map(|(_, v)| SequenceDef::decode(&v))
        .collect()
}

/// Writes a sequence definition in `txn`.
pub(crate) fn create(txn: &mut dyn Transaction, def: &SequenceDef) -> SqlResult<()> {
    txn.put(
        &Key::Sequence(txn.database(), def.name.clone()).encode(),
        Bytes::from(def.encode()),
    )
}

/// Deletes a sequence definition in `txn` (its value key stays: see invariant 2).
pub(crate) fn drop(txn: &mut dyn Transaction, name: &str) -> SqlResult<()> {
    txn.delete(&Key::Sequence(txn.database(), name.to_string()).encode())
}

#[derive(Debug, Clone, Copy)]
struct SeqState {
    /// PostgreSQL's `last_value`.
    last: i64,
    /// PostgreSQL's `is_called`: the next value is `last + increment` (else `last`).
    called: bool,
    /// Values up to here (in the direction of the increment) are covered by a committed
    /// reservation; None = nothing reserved yet.
    reserved: Option<i64>,
}

/// The process-wide values of all sequences (one per engine; no global state).
pub(crate) struct Sequences {
    db: Arc<Db>,
    state: Mutex<HashMap<u32, SeqState>>,
}

/// Stored value: `last i64 BE | is_called 1B`.
fn encode_value(last: i64, called: bool) -> Bytes {
    let mut v = last.to_be_bytes().to_vec();
    v.push(called as u8);
    Bytes::from(v)
}

fn decode_value(b: &[u8]) -> SqlResult<(i64, bool)> {
    let mut r = Reader::new(b);
    let last = i64::from_be_bytes(r.array()?);
    let called = r.u8()? != 0;
    Ok((last, called))
}

impl Sequences {
    pub(crate) fn new(db: Arc<Db>) -> Sequences {
        Sequences {
            db,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Commits `(last, called)` for `id` in a transaction of its own.
    fn persist(&self, id: u32, last: i64, called: bool) -> SqlResult<()> {
        let mut txn = self.db.begin(Isolation::ReadCommitted);
        Transaction::put(
            &mut txn,
            &Key::SequenceValue(id).encode(),
            encode_value(last, called),
        )?;
        txn.commit()?;
        Ok(())
    }

    fn state_of(&self, map: &mut HashMap<u32, SeqState>, def: &SequenceDef) -> SqlResult<SeqState> {
        if let Some(s) = map.get(&def.id) {
            return Ok(*s);
        }
        let txn = self.db.begin(Isolation::ReadCommitted);
        let stored = Transaction::get(&txn, &Key::SequenceValue(def.id).encode())?;
        txn.rollback();
        let st = match stored {
            Some(b) => {
                let (last, called) = decode_value(&b)?;
                SeqState {
                    last,
                    called,
                    // A stored called value is a reservation's end: nothing beyond it was
                    // handed out, and nothing up to it may be handed out again.
                    reserved: None,
                }
            }
            None => SeqState {
                last: def.start,
                called: false,
                reserved: None,
            },
        };
        map.insert(def.id, st);
        Ok(st)
    }

    /// The next value of `def` (never rolled back).
    pub(crate) fn nextval(&self, def: &SequenceDef) -> SqlResult<i64> {
        let mut map = self
            .state
            .lock()
            .map_err(|_| SqlError::internal("sequence lock poisoned"))?;
        let st = self.state_of(&mut map, def)?;
        let inc = def.increment;
        let next = if !st.called {
            st.last
        } else {
            match st.last.checked_add(inc) {
                Some(n) if n >= def.min && n <= def.max => n,
                _ if def.cycle => {
                    if inc > 0 {
                        def.min
                    } else {
                        def.max
                    }
                }
                _ => {
                    return Err(SqlError::new(
                        SqlState::SEQUENCE_LIMIT,
                        format!(
                            "nextval: reached {} value of sequence \"{}\" ({})",
                            if inc > 0 { "maximum" } else { "minimum" },
                            def.name,
                            if inc > 0 { def.max } else { def.min }
                        ),
                    ))
                }
            }
        };
        let covered = match st.reserved {
            Some(r) if inc > 0 => next <= r && next > st.last,
            Some(r) => next >= r && next < st.last,
            None => false,
        };
        let mut reserved = st.reserved;
        if !covered {
            let upto = next
                .saturating_add(inc.saturating_mul(RESERVE - 1))
                .clamp(def.min, def.max);
            self.persist(def.id, upto, true)?;
            reserved = Some(upto);
        }
        map.insert(
            def.id,
            SeqState {
                last: next,
                called: true,
                reserved,
            },
        );
        Ok(next)
    }

    /// `setval(seq, value, is_called)`: the next nextval returns `value + increment` (or
    /// `value` when not called). Persisted at once.
    pub(crate) fn setval(&self, def: &SequenceDef, value: i64, called: bool) -> SqlResult<()> {
        if value < def.min || value > def.max {
            return Err(SqlError::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    def.name, def.min, def.max
                ),
            ));
        }
        let mut map = self
            .state
            .lock()
            .map_err(|_| SqlError::internal("sequence lock poisoned"))?;
        self.persist(def.id, value, called)?;
        map.insert(
            def.id,
            SeqState {
                last: value,
                called,
                reserved: None,
            },
        );
        Ok(())
    }
}

/// One session's view of sequences: the engine's values plus this session's `currval`s.
pub(crate) struct SessionSequences {
    pub(crate) sequences: Arc<Sequences>,
    current: Mutex<HashMap<u32, i64>>,
}

impl SessionSequences {
    pub(crate) fn new(sequences: Arc<Sequences>) -> SessionSequences {
        SessionSequences {
            sequences,
            current: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, id: u32, v: i64) {
        if let Ok(mut c) = self.current.lock() {
            c.insert(id, v);
        }
    }

    /// Evaluates a sequence function call.
    pub(crate) fn call(&self, op: SeqOp, def: &SequenceDef, args: &[Value]) -> SqlResult<Value> {
        let out = Value::Int8;
        match op {
            SeqOp::Next => {
                let v = self.sequences.nextval(def)?;
                self.remember(def.id, v);
                Ok(out(v))
            }
            SeqOp::Curr => {
                let c = self
                    .current
                    .lock()
                    .map_err(|_| SqlError::internal("sequence lock poisoned"))?;
                match c.get(&def.id) {
                    Some(v) => Ok(out(*v)),
                    None => Err(SqlError::new(
                        SqlState::NOT_IN_PREREQUISITE_STATE,
                        format!(
                            "currval of sequence \"{}\" is not yet defined in this session",
                            def.name
                        ),
                    )),
                }
            }
            SeqOp::Set => {
                let value = match args.first() {
                    Some(Value::Null) | None => return Ok(Value::Null),
                    Some(v) => int_arg(v)?,
                };
                let called = match args.get(1) {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(Value::Null) => return Ok(Value::Null),
                    Some(_) => return Err(SqlError::internal("setval flag is not boolean")),
                };
                self.sequences.setval(def, value, called)?;
                if called {
                    self.remember(def.id, value);
                }
                Ok(out(value))
            }
        }
    }
}

fn int_arg(v: &Value) -> SqlResult<i64> {
    match v {
        Value::Int2(x) => Ok(*x as i64),
        Value::Int4(x) => Ok(*x as i64),
        Value::Int8(x) => Ok(*x),
        other => Err(SqlError::internal(format!(
            "setval value of type {} is not an integer",
            other.data_type().name()
        ))),
    }
}

/// Which sequence function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqOp {
    /// `nextval(seq)`.
    Next,
    /// `currval(seq)`.
    Curr,
    /// `setval(seq, value [, is_called])`.
    Set,
}

impl SeqOp {
    /// The function of this name, if it is a sequence function.
    pub(crate) fn from_name(name: &str) -> Option<SeqOp> {
        match name {
            "nextval" => Some(SeqOp::Next),
            "currval" => Some(SeqOp::Curr),
            "setval" => Some(SeqOp::Set),
            _ => None,
        }
    }
}

/// The sequence a `regclass`-like argument names: `'name'`, `'public.name'`, `'"Name"'`.
pub(crate) fn sequence_name_arg(text: &str) -> String {
    let last = text.rsplit('.').next().unwrap_or(text).trim();
    match last.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(q) => q.replace("\"\"", "\""),
        None => last.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_definitions_round_trip() {
        let mut def = SequenceDef::with_defaults(16400, "t_id_seq".into(), DataType::Int4);
        def.owned_by = Some((16384, "id".into()));
        def.cycle = true;
        def.increment = -3;
        assert_eq!(SequenceDef::decode(&def.encode()).unwrap(), def);
        let mut bytes = def.encode();
        bytes.push(1);
        assert!(SequenceDef::decode(&bytes).is_err());
    }

    #[test]
    fn regclass_text_names() {
        assert_eq!(sequence_name_arg("public.T_id_seq"), "t_id_seq");
        assert_eq!(sequence_name_arg("\"Odd\"\"Name\""), "Odd\"Name");
    }
}
