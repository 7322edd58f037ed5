//! Sessions: transaction blocks, settings, prepared statements, DDL, and the engine handle.

mod twopc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gnomon_mvcc::{Db, Isolation, Savepoint, Txn};
use sqlparser::ast;

use crate::catalog::{Catalog, CATALOG_FORMAT_VERSION};
use crate::encoding::{DatabaseId, Key, KeyPrefix, TableId};
use crate::error::{Notice, SqlError, SqlResult, SqlState};
use crate::expr::StatementTimes;
use crate::query::{
    execute, ident_name, object_name, Binder, ExecContext, ExecStats, Plan, SessionInfo,
};
use crate::sequence::SessionSequences;
use crate::storage::Transaction;
use crate::types::{now_timestamp, DataType, Value};

/// A result column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name (`?column?` when PostgreSQL would use it).
    pub name: String,
    /// Type.
    pub ty: DataType,
    /// OID of the source table, 0 if computed.
    pub table_oid: u32,
    /// Attribute number in the source table (1-based), 0 if computed.
    pub column_id: i16,
}

/// What one statement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A statement that returns rows (SELECT, ... RETURNING, SHOW).
    Rows {
        /// Result shape (shared with the statement's plan: a result does not copy it).
        columns: Arc<[Column]>,
        /// All rows.
        rows: Vec<Vec<Value>>,
        /// Command tag, e.g. `SELECT 3`, `INSERT 0 1`.
        tag: String,
    },
    /// Any other statement: its command tag.
    Command {
        /// e.g. `CREATE TABLE`, `UPDATE 2`.
        tag: String,
    },
    /// Empty query string.
    Empty,
}

/// Transaction status as ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InBlock,
    /// 'E': in a failed transaction block.
    Failed,
}

/// Checks for cancellation and statement timeout inside row loops.
pub(crate) struct Interrupt {
    cancel: Arc<AtomicBool>,
    deadline: Option<Instant>,
    /// `lock_timeout` (None = wait as long as the statement may).
    lock_timeout: Option<Duration>,
}

impl Interrupt {
    /// The same bounds for the transaction's lock waits.
    pub(crate) fn wait_limits(&self) -> gnomon_mvcc::WaitLimits {
        gnomon_mvcc::WaitLimits {
            lock_timeout: self.lock_timeout,
            statement_deadline: self.deadline,
            cancel: Some(self.cancel.clone()),
        }
    }

    pub(crate) fn check(&self) -> SqlResult<()> {
        if self.cancel.swap(false, Ordering::AcqRel) {
            return Err(SqlError::new(
                SqlState::QUERY_CANCELED,
                "canceling statement due to user request",
            ));
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return Err(SqlError::new(
                    SqlState::QUERY_CANCELED,
                    "canceling statement due to statement timeout",
                ));
            }
        }
        Ok(())
    }
}

/// The server version string: `version()` returns it.
pub const VERSION_STRING: &str =
    "PostgreSQL 15.0 (Gnomon 0.1.0) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit";

/// The database created at bootstrap (the one sessions connect to by default).
pub const BOOTSTRAP_DATABASE: &str = "gnomon";

/// OID of [`BOOTSTRAP_DATABASE`] (PostgreSQL's `postgres` database has OID 5 too). Other
/// databases take OIDs from the catalog's id counter.
pub const BOOTSTRAP_DATABASE_OID: DatabaseId = DatabaseId(5);

/// The value of a [`Key::Database`] entry (catalog format 2): the OID, u32 BE.
pub(crate) fn encode_database_oid(oid: DatabaseId) -> Bytes {
    Bytes::copy_from_slice(&oid.0.to_be_bytes())
}

/// Decodes a [`Key::Database`] value written by [`encode_database_oid`].
pub(crate) fn decode_database_oid(v: &[u8]) -> SqlResult<DatabaseId> {
    let b: [u8; 4] = v
        .try_into()
        .map_err(|_| SqlError::corrupt("bad database entry"))?;
    Ok(DatabaseId(u32::from_be_bytes(b)))
}

/// Migrates a catalog of format 1 (names were cluster-wide) in `txn`: every name key
/// (table, sequence, index, schema) moves into the namespace of one database, which gets
/// [`BOOTSTRAP_DATABASE_OID`]: [`BOOTSTRAP_DATABASE`] if it exists, else the first database
/// by name. NB: under format 1 every database showed these objects; after the migration only
/// that one does (the others start empty). Returns its name. The caller gives the
/// `Database` entries their OIDs once the id counter is loaded.
fn migrate_v1(txn: &mut Txn) -> SqlResult<String> {
    // NB: a prepared transaction's write set keeps the keys it was prepared with: one that
    // writes a format-1 name key (prepared DDL) would write it unmigrated at COMMIT PREPARED.
    let db = txn.db().clone();
    for p in db.prepared_transactions() {
        let writes_names = db.with_prepared(&p.gid, |state| {
            state.writes.keys().any(|k| {
                k.first()
                    .is_some_and(|t| crate::encoding::NAME_KEY_TAGS.contains(t))
            })
        });
        if writes_names == Some(true) {
            return Err(SqlError::new(
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot migrate the catalog to format {CATALOG_FORMAT_VERSION}: prepared \
                     transaction \"{}\" holds DDL",
                    p.gid
                ),
            )
            .with_hint(
                "Finish it (COMMIT or ROLLBACK PREPARED) with the previous version first.",
            ));
        }
    }
    let mut names = Vec::new();
    for (k, _) in Transaction::scan(txn, KeyPrefix::Database.range(), false, None)? {
        if let Key::Database(n) = Key::decode(&k)? {
            names.push(n);
        }
    }
    let owner = if names.iter().any(|n| n == BOOTSTRAP_DATABASE) {
        BOOTSTRAP_DATABASE.to_string()
    } else {
        names
            .first()
            .cloned()
            .unwrap_or_else(|| BOOTSTRAP_DATABASE.to_string())
    };
    if !names.contains(&owner) {
        Transaction::put(txn, &Key::Database(owner.clone()).encode(), Bytes::new())?;
    }
    for tag in crate::encoding::NAME_KEY_TAGS {
        for (old, value) in
            Transaction::scan(txn, crate::encoding::prefix_range(&[tag]), false, None)?
        {
            let new = crate::encoding::qualify_v1_name_key(&old, BOOTSTRAP_DATABASE_OID);
            Transaction::put(txn, &new, value)?;
            Transaction::delete(txn, &old)?;
        }
    }
    Ok(owner)
}

/// One per database process. Owns the catalog cache; opens on an `Arc<gnomon_mvcc::Db>`.
pub struct SqlEngine {
    db: Arc<Db>,
    pub(crate) catalog: Catalog,
    /// Databases by name (CREATE / DROP DATABASE change them at once, outside transactions).
    /// A session registers in `sessions` under this lock's read side, and DROP DATABASE
    /// checks `sessions` and removes the database under its write side, so no session can
    /// join a database being dropped.
    pub(crate) databases: std::sync::RwLock<HashMap<String, DatabaseId>>,
    /// The audit log, set once by the server ([`SqlEngine::set_audit`]).
    audit: std::sync::OnceLock<crate::audit::Audit>,
    no_audit: crate::audit::Audit,
    /// The server accepts TLS (`SHOW ssl`), set by the server ([`SqlEngine::set_ssl`]).
    ssl: std::sync::atomic::AtomicBool,
    /// Open sessions per database: DROP DATABASE refuses a database in use (55006).
    pub(crate) sessions: std::sync::Mutex<HashMap<String, usize>>,
    /// Server-wide defaults of session settings ([`SqlEngine::set_session_default`]) over
    /// [`SETTINGS`]: what new sessions start with and RESET returns to.
    session_defaults: std::sync::RwLock<HashMap<String, String>>,
}

impl SqlEngine {
    /// Opens the SQL layer on `db`, bootstrapping the catalog on first open (database `gnomon`,
    /// superuser `gnomon`).
    pub fn open(db: Arc<Db>) -> Result<Arc<SqlEngine>, SqlError> {
        let hierarchy = crate::locking::install(&db);
        let mut txn = db.begin(Isolation::RepeatableRead);
        let format = Bytes::copy_from_slice(&CATALOG_FORMAT_VERSION.to_be_bytes());
        // The database that owns the objects of a format-1 data dir (see `migrate_v1`).
        let mut v1_owner = None;
        match Transaction::get(&txn, &Key::Meta.encode())? {
            None => {
                Transaction::put(&mut txn, &Key::Meta.encode(), format)?;
                Transaction::put(
                    &mut txn,
                    &Key::Database(BOOTSTRAP_DATABASE.into()).encode(),
                    encode_database_oid(BOOTSTRAP_DATABASE_OID),
                )?;
                Transaction::put(&mut txn, &Key::Role("gnomon".into()).encode(), Bytes::new())?;
            }
            Some(v) if v.as_ref() == 1u32.to_be_bytes() => {
                v1_owner = Some(migrate_v1(&mut txn)?);
                Transaction::put(&mut txn, &Key::Meta.encode(), format)?;
            }
            Some(v) => {
                if v.as_ref() != CATALOG_FORMAT_VERSION.to_be_bytes() {
                    return Err(SqlError::corrupt(format!(
                        "unsupported catalog format {:02x?}",
                        v.as_ref()
                    )));
                }
            }
        }
        let catalog = Catalog::load(&txn, db.clone(), hierarchy)?;
        let mut databases = HashMap::new();
        for (k, v) in Transaction::scan(&txn, KeyPrefix::Database.range(), false, None)? {
            let Key::Database(name) = Key::decode(&k)? else {
                continue;
            };
            let oid = if v.is_empty() && v1_owner.is_some() {
                // A format-1 entry: the owner of the old objects takes the bootstrap OID,
                // every other database a fresh one.
                let oid = if v1_owner.as_deref() == Some(name.as_str()) {
                    BOOTSTRAP_DATABASE_OID
                } else {
                    DatabaseId(catalog.allocate_id())
                };
                Transaction::put(&mut txn, &k, encode_database_oid(oid))?;
                oid
            } else {
                decode_database_oid(&v)?
            };
            databases.insert(name, oid);
        }
        txn.commit()?;
        Ok(Arc::new(SqlEngine {
            db,
            catalog,
            databases: std::sync::RwLock::new(databases),
            audit: std::sync::OnceLock::new(),
            no_audit: crate::audit::Audit::disabled(),
            ssl: std::sync::atomic::AtomicBool::new(false),
            sessions: Default::default(),
            session_defaults: Default::default(),
        }))
    }

    /// Sets the server-wide default of a session setting (the server's `lock_timeout` and
    /// `statement_timeout` config keys): sessions started from now on begin with it, and RESET
    /// returns to it, as PostgreSQL's postgresql.conf values. 22023 for a bad value, 42704 for
    /// another setting.
    pub fn set_session_default(&self, name: &str, value: &str) -> SqlResult<()> {
        let key = name.to_ascii_lowercase();
        let text = match key.as_str() {
            "lock_timeout" | "statement_timeout" => format_timeout(parse_duration_ms(&key, value)?),
            _ => {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("no server-wide default for parameter \"{key}\""),
                ))
            }
        };
        if let Ok(mut d) = self.session_defaults.write() {
            d.insert(key, text);
        }
        Ok(())
    }

    /// The value a session setting starts with and RESET returns to.
    fn session_default(&self, key: &str) -> Option<String> {
        if let Some(v) = self
            .session_defaults
            .read()
            .ok()
            .and_then(|d| d.get(key).cloned())
        {
            return Some(v);
        }
        SETTINGS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }

    /// Every session setting at its default.
    fn default_settings(&self) -> HashMap<String, String> {
        SETTINGS
            .iter()
            .map(|(k, _)| (k.to_string(), self.session_default(k).unwrap_or_default()))
            .collect()
    }

    /// Whether a database of this name exists.
    pub fn database_exists(&self, name: &str) -> bool {
        self.database_id(name).is_some()
    }

    /// The OID of the database called `name`, if it exists.
    pub fn database_id(&self, name: &str) -> Option<DatabaseId> {
        self.databases
            .read()
            .ok()
            .and_then(|d| d.get(name).copied())
    }

    /// Counts a new session of database `name` (false if it no longer exists): under the
    /// database list's read lock, so DROP DATABASE sees it.
    fn enter_database(&self, name: &str) -> bool {
        let Ok(dbs) = self.databases.read() else {
            return false;
        };
        if !dbs.contains_key(name) {
            return false;
        }
        if let Ok(mut open) = self.sessions.lock() {
            *open.entry(name.to_string()).or_default() += 1;
        }
        true
    }

    /// Whether a role of this name exists (committed).
    pub fn role_exists(&self, name: &str) -> bool {
        matches!(self.role(name), Ok(Some(_)))
    }

    /// The committed definition of role `name` (login checks read it at every login).
    pub fn role(&self, name: &str) -> SqlResult<Option<crate::roles::RoleDef>> {
        let txn = self.db.begin(Isolation::ReadCommitted);
        let r = crate::roles::lookup_role(&txn, name);
        txn.rollback();
        r
    }

    /// Every committed role, by name (catalog API for `pg_roles`/`pg_authid`-like views; inside
    /// a statement use [`crate::roles::list_roles`] on its transaction).
    pub fn roles(&self) -> SqlResult<Vec<crate::roles::RoleDef>> {
        let txn = self.db.begin(Isolation::ReadCommitted);
        let r = crate::roles::list_roles(&txn);
        txn.rollback();
        r
    }

    /// Sets the audit log (once; later calls are ignored).
    pub fn set_audit(&self, audit: crate::audit::Audit) {
        let _ = self.audit.set(audit);
    }

    /// The audit log (a disabled one until [`SqlEngine::set_audit`]).
    pub fn audit(&self) -> &crate::audit::Audit {
        self.audit.get().unwrap_or(&self.no_audit)
    }

    /// Records whether the server accepts TLS connections: `SHOW ssl` says `on` or `off`.
    pub fn set_ssl(&self, on: bool) {
        self.ssl.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Version of the catalog (changes whenever DDL commits).
    pub fn catalog_version(&self) -> u64 {
        self.catalog.version()
    }
}

/// A parsed, bound statement. `param_types()` are final (declared or inferred), `columns()`
/// the result shape.
///
/// A query or DML statement keeps its bound plan, tagged with the catalog version its
/// binding saw; executing it again under a snapshot of the same version skips parsing and
/// binding. Any committed DDL changes the version, and the statement is then re-bound
/// transparently (with the parameter types fixed at prepare), as PostgreSQL re-plans.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    statement: Option<ast::Statement>,
    param_types: Vec<DataType>,
    columns: Vec<Column>,
    /// The cached plan; shared by clones (they are the same statement).
    plan: Arc<Mutex<Option<CachedPlan>>>,
    /// A 2PC command (which sqlparser does not parse; `statement` is then None).
    twopc: Option<twopc::TwoPc>,
}

/// A plan bound under a snapshot that sees catalog version `version`.
#[derive(Debug, Clone)]
struct CachedPlan {
    version: u64,
    plan: Arc<Plan>,
}

impl Prepared {
    /// Parameter types: declared by the client or inferred (unknown ones default to text).
    pub fn param_types(&self) -> &[DataType] {
        &self.param_types
    }
    /// Result columns; empty when the statement returns no rows.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
    /// The statement text.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Autocommit transaction opened for the current statements (simple query message or
    /// extended-protocol messages up to Sync).
    Implicit,
    /// BEGIN ... COMMIT.
    Explicit,
}

/// The transaction a session is in.
pub(crate) struct ActiveTxn {
    pub(crate) txn: Txn,
    block: Block,
    failed: bool,
    savepoints: Vec<(String, Savepoint)>,
    /// Definition ids dropped or replaced by this transaction's DDL (evicted at commit).
    pub(crate) dropped: Vec<TableId>,
    /// The transaction has DDL of its own.
    pub(crate) ddl: bool,
    /// Tables ATTACHed to or DETACHed from a partitioned table: the lock manager learns
    /// their parent (or that they have none) when the transaction commits.
    pub(crate) partition_links: Vec<String>,
    statements: u64,
    /// Opened for a simple-query message of several statements ([`Session`]'s
    /// `multi_statement`).
    multi_statement: bool,
    /// When the transaction started (`now()`).
    started_at: i64,
    /// The catalog version the current snapshot sees ([`Catalog::tagged_snapshot`]); None when
    /// unknown. Cached plans of that version are valid while `ddl` is false.
    catalog_tag: Option<u64>,
}

impl ActiveTxn {
    /// Inside BEGIN ... COMMIT.
    pub(crate) fn in_explicit_block(&self) -> bool {
        self.block == Block::Explicit
    }

    /// Inside a transaction block as PostgreSQL's PreventInTransactionBlock sees it: BEGIN ...
    /// COMMIT or the implicit block of a simple-query message of several statements (CREATE /
    /// DROP DATABASE are refused there, 25001).
    pub(crate) fn in_transaction_block(&self) -> bool {
        self.block == Block::Explicit || self.multi_statement
    }

    /// The database this engine runs on (for statements that commit on their own).
    pub(crate) fn engine_db(engine: &SqlEngine) -> &Arc<Db> {
        &engine.db
    }

    /// The catalog version under which a plan bound now may be cached and a cached plan of
    /// that version may run: none once the transaction has DDL of its own.
    fn plan_version(&self) -> Option<u64> {
        self.catalog_tag.filter(|_| !self.ddl)
    }

    /// Starts the next statement: READ COMMITTED takes a fresh snapshot (whose catalog version
    /// is read again); the first statement of a BEGIN block takes the transaction's snapshot at
    /// every level, as in PostgreSQL (BEGIN itself does not fix it).
    fn next_statement(&mut self, catalog: &Catalog) {
        if self.statements > 0 && self.txn.state().isolation == Isolation::ReadCommitted {
            let txn = &mut self.txn;
            let ((), tag) = catalog.tagged_snapshot(|| txn.new_statement());
            self.catalog_tag = tag;
        } else if self.statements == 0 && self.block == Block::Explicit {
            let txn = &mut self.txn;
            let ((), tag) = catalog.tagged_snapshot(|| txn.retake_snapshot());
            self.catalog_tag = tag;
        }
        self.statements += 1;
    }
}

/// Settings shown by SHOW, with PostgreSQL's canonical names and defaults.
const SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("extra_float_digits", "1"),
    ("TimeZone", "UTC"),
    ("search_path", "\"$user\", public"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("default_transaction_isolation", "read committed"),
    ("server_version", "15.0"),
    ("server_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("lc_messages", "C"),
    ("max_identifier_length", "63"),
];

/// Server settings shown by SHOW and fixed while the server runs (the lock manager's
/// thresholds: the server's `lock_*` config keys; the WAL part size of bulk transactions).
const SERVER_SETTINGS: &[&str] = &[
    "lock_escalation_partition_rows",
    "lock_escalation_table_rows",
    "lock_hotspot_waits",
    "lock_hotspot_window",
    "write_set_part_size",
];

/// The value of a [`SERVER_SETTINGS`] entry.
fn server_setting(db: &Db, name: &str) -> Option<String> {
    let s = db.lock_manager().settings();
    Some(match name {
        "lock_escalation_partition_rows" => s.partition_escalation_rows.to_string(),
        "lock_escalation_table_rows" => s.table_escalation_rows.to_string(),
        "lock_hotspot_waits" => s.contention_threshold.to_string(),
        "lock_hotspot_window" => format_timeout(s.contention_window_ms.into()),
        "write_set_part_size" => format_size(db.write_set_part_size()),
        _ => return None,
    })
}

/// A size as PostgreSQL shows one: the largest of `TB`, `GB`, `MB`, `kB` that divides it.
fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TB", 40), ("GB", 30), ("MB", 20), ("kB", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

fn canonical_setting(name: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .map(|(n, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name))
}

fn isolation_name(i: Isolation) -> &'static str {
    match i {
        Isolation::ReadCommitted => "read committed",
        Isolation::RepeatableRead => "repeatable read",
        Isolation::Serializable => "serializable",
    }
}

fn parse_isolation(s: &str) -> SqlResult<Isolation> {
    match s.trim().to_ascii_lowercase().as_str() {
        "read committed" | "read uncommitted" => Ok(Isolation::ReadCommitted),
        "repeatable read" => Ok(Isolation::RepeatableRead),
        "serializable" => Ok(Isolation::Serializable),
        other => Err(SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"transaction_isolation\": \"{other}\""),
        )),
    }
}

fn ast_isolation(l: &ast::TransactionIsolationLevel) -> Isolation {
    match l {
        ast::TransactionIsolationLevel::ReadCommitted
        | ast::TransactionIsolationLevel::ReadUncommitted => Isolation::ReadCommitted,
        ast::TransactionIsolationLevel::RepeatableRead
        | ast::TransactionIsolationLevel::Snapshot => Isolation::RepeatableRead,
        ast::TransactionIsolationLevel::Serializable => Isolation::Serializable,
    }
}

/// Parses a statement_timeout value into milliseconds.
fn parse_timeout_ms(v: &str) -> SqlResult<u64> {
    parse_duration_ms("statement_timeout", v)
}

/// Parses a duration setting (`250`, `250ms`, `2s`, `1min`) into milliseconds.
fn parse_duration_ms(name: &str, v: &str) -> SqlResult<u64> {
    let t = v.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"{name}\": \"{v}\""),
        )
    })?;
    let mult = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"{name}\": \"{v}\""),
            ))
        }
    };
    Ok(n * mult)
}

/// PostgreSQL's DateStyle assignment: each of the two parts (output format, field order) may
/// be given alone and the other is kept, so `SET DateStyle = 'ISO'` yields `ISO, MDY`. Only the
/// ISO output format is implemented; others are refused rather than silently ignored.
fn merge_datestyle(current: &str, new: &str) -> SqlResult<String> {
    let mut parts = current.split(',').map(str::trim);
    let mut format = parts.next().unwrap_or("ISO").to_string();
    let mut order = parts.next().unwrap_or("MDY").to_string();
    for word in new
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        match word.to_ascii_uppercase().as_str() {
            "ISO" => format = "ISO".into(),
            "MDY" | "US" | "NONEUROPEAN" | "NON-EUROPEAN" => order = "MDY".into(),
            "DMY" | "EUROPEAN" | "EURO" => order = "DMY".into(),
            "YMD" => order = "YMD".into(),
            "DEFAULT" => {}
            "POSTGRES" | "SQL" | "GERMAN" => {
                return Err(SqlError::unsupported(format!(
                    "DateStyle output format {word}"
                )))
            }
            _ => {
                return Err(SqlError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("invalid value for parameter \"DateStyle\": \"{new}\""),
                )
                .with_detail(format!("Unrecognized key word: \"{word}\".")))
            }
        }
    }
    Ok(format!("{format}, {order}"))
}

fn format_timeout(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The open explicit transaction block, or 25P01 naming the statement that needs one.
fn explicit_block<'a>(
    txn: &'a mut Option<Box<ActiveTxn>>,
    what: &str,
) -> SqlResult<&'a mut ActiveTxn> {
    txn.as_deref_mut()
        .filter(|t| t.block == Block::Explicit)
        .ok_or_else(|| {
            SqlError::new(
                SqlState::NO_ACTIVE_SQL_TRANSACTION,
                format!("{what} can only be used in transaction blocks"),
            )
        })
}

/// Position of the newest savepoint called `name`, or 3B001.
fn find_savepoint(t: &ActiveTxn, name: &str) -> SqlResult<usize> {
    t.savepoints
        .iter()
        .rposition(|(n, _)| n == name)
        .ok_or_else(|| {
            SqlError::new(
                SqlState::INVALID_SAVEPOINT,
                format!("savepoint \"{name}\" does not exist"),
            )
        })
}

fn statement_kind(stmt: &ast::Statement) -> &'static str {
    match stmt {
        ast::Statement::StartTransaction { .. } => "begin",
        ast::Statement::Commit { .. } => "commit",
        ast::Statement::Rollback {
            savepoint: None, ..
        } => "rollback",
        ast::Statement::Rollback {
            savepoint: Some(_), ..
        } => "rollback_to",
        _ => "other",
    }
}

/// A session counts as connected to its database from [`Session::new`] until it is dropped.
impl Drop for Session {
    fn drop(&mut self) {
        LeaveDatabase(&self.engine, &self.info.database);
    }
}

/// Uncounts one session of a database when dropped.
struct LeaveDatabase<'a>(&'a SqlEngine, &'a str);

impl Drop for LeaveDatabase<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.sessions.lock() {
            if let Some(n) = open.get_mut(self.1) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Per connection: transaction state, settings (SET/SHOW), prepared statements.
pub struct Session {
    engine: Arc<SqlEngine>,
    info: SessionInfo,
    /// The OID of the connected database: every transaction of the session carries it
    /// (`Txn::set_namespace`), so names resolve in this database.
    database_id: DatabaseId,
    /// The simple-query message being run holds several statements (PostgreSQL's implicit
    /// transaction block: CREATE / DROP DATABASE are refused in it).
    multi_statement: bool,
    /// The open transaction, boxed: begin and commit move it in and out of `Option`s, and a
    /// `Txn` is ~600 bytes.
    txn: Option<Box<ActiveTxn>>,
    settings: HashMap<String, String>,
    default_isolation: Isolation,
    cancel: Arc<AtomicBool>,
    notices: Vec<Notice>,
    stats: ExecStats,
    sync_error: Option<SqlError>,
    /// statement_timeout in milliseconds (0 = none), kept in step with `settings`.
    statement_timeout_ms: u64,
    /// `lock_timeout` in milliseconds (0 = none), cached like `statement_timeout_ms`.
    lock_timeout_ms: u64,
    /// Sequence values and this session's `currval`s.
    sequences: Arc<SessionSequences>,
    /// Bumped by every SET and RESET (see [`Session::settings_generation`]).
    settings_generation: u64,
}

impl Session {
    /// A session for `user` on `database` (3D000 / 28000 if they do not exist).
    pub fn new(engine: Arc<SqlEngine>, user: &str, database: &str) -> Result<Session, SqlError> {
        let missing = || {
            SqlError::new(
                SqlState::INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist"),
            )
        };
        let database_id = engine.database_id(database).ok_or_else(missing)?;
        if !engine.role_exists(user) {
            return Err(SqlError::new(
                SqlState::INVALID_AUTHORIZATION,
                format!("role \"{user}\" does not exist"),
            ));
        }
        let sequences = Arc::new(SessionSequences::new(engine.catalog.sequences.clone()));
        // NB: a database dropped and created again in between gets another OID: refuse then.
        if !engine.enter_database(database) {
            return Err(missing());
        }
        if engine.database_id(database) != Some(database_id) {
            // Counted above under the name: the Drop below uncounts it.
            let _leave = LeaveDatabase(&engine, database);
            return Err(missing());
        }
        let settings = engine.default_settings();
        let mut session = Session {
            sequences,
            engine,
            info: SessionInfo {
                user: user.to_string(),
                database: database.to_string(),
            },
            database_id,
            multi_statement: false,
            txn: None,
            settings,
            default_isolation: Isolation::ReadCommitted,
            cancel: Arc::new(AtomicBool::new(false)),
            notices: Vec::new(),
            stats: ExecStats::default(),
            sync_error: None,
            statement_timeout_ms: 0,
            lock_timeout_ms: 0,
            settings_generation: 0,
        };
        session.refresh_timeouts();
        Ok(session)
    }

    /// A number that changes whenever a setting may have changed (every SET and RESET), so a
    /// server reporting settings to its client (ParameterStatus) compares values only after
    /// it moved. NB: a transaction's end changes no setting here (there is
    /// no SET LOCAL scope yet); whatever starts changing settings must bump it too.
    pub fn settings_generation(&self) -> u64 {
        self.settings_generation
    }

    /// Cancellation flag: the server sets it on CancelRequest; execution checks it in row
    /// loops and fails with 57014. It is cleared when a statement observes it and after each
    /// call that executes statements.
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Counters of rows and reads performed by this session (point gets vs scans).
    pub fn stats(&self) -> ExecStats {
        self.stats
    }

    /// Notices raised since the last call (drained).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Transaction status for ReadyForQuery.
    pub fn transaction_status(&self) -> TxnStatus {
        match &self.txn {
            None => TxnStatus::Idle,
            Some(t) if t.failed => TxnStatus::Failed,
            Some(t) if t.block == Block::Explicit => TxnStatus::InBlock,
            // An implicit transaction between extended-protocol messages is reported idle.
            Some(_) => TxnStatus::Idle,
        }
    }

    /// Current value of a runtime setting (for ParameterStatus after SET).
    pub fn setting(&self, name: &str) -> Option<String> {
        if name.eq_ignore_ascii_case("transaction_isolation") {
            let iso = self
                .txn
                .as_ref()
                .map(|t| t.txn.state().isolation)
                .unwrap_or(self.default_isolation);
            return Some(isolation_name(iso).into());
        }
        if name.eq_ignore_ascii_case("default_transaction_isolation") {
            return Some(isolation_name(self.default_isolation).into());
        }
        if name.eq_ignore_ascii_case("max_prepared_transactions") {
            return Some(self.engine.db.max_prepared_transactions().to_string());
        }
        if name.eq_ignore_ascii_case("ssl") {
            let on = self.engine.ssl.load(std::sync::atomic::Ordering::Relaxed);
            return Some(if on { "on" } else { "off" }.into());
        }
        let lower = name.to_ascii_lowercase();
        if let Some(v) = server_setting(&self.engine.db, &lower) {
            return Some(v);
        }
        let key = canonical_setting(name)
            .map(str::to_string)
            .unwrap_or_else(|| name.to_ascii_lowercase());
        self.settings.get(&key).cloned()
    }

    fn notice(&mut self, severity: &'static str, code: &'static str, message: impl Into<String>) {
        self.notices.push(Notice {
            code,
            message: message.into(),
            severity,
        });
    }

    /// Re-reads statement_timeout and lock_timeout after SET/RESET: statements read the cached
    /// numbers, not the text settings. Also bumps the settings generation.
    fn refresh_timeouts(&mut self) {
        self.settings_generation = self.settings_generation.wrapping_add(1);
        let ms = |name: &str| {
            self.settings
                .get(name)
                .and_then(|v| parse_duration_ms(name, v).ok())
                .unwrap_or(0)
        };
        self.statement_timeout_ms = ms("statement_timeout");
        self.lock_timeout_ms = ms("lock_timeout");
    }

    fn interrupt(&self) -> Interrupt {
        let ms = self.statement_timeout_ms;
        let lock_ms = self.lock_timeout_ms;
        Interrupt {
            lock_timeout: (lock_ms > 0).then(|| Duration::from_millis(lock_ms)),
            cancel: self.cancel.clone(),
            deadline: if ms > 0 {
                Some(Instant::now() + Duration::from_millis(ms))
            } else {
                None
            },
        }
    }

    /// Simple query protocol: one string, possibly several statements, with PostgreSQL's
    /// implicit-transaction rules. Returns one result per statement executed; stops at the
    /// first error (which is the last element).
    pub fn execute_simple(&mut self, sql: &str) -> Vec<Result<Outcome, SqlError>> {
        if let Some(vacuum) = parse_vacuum(sql) {
            let r = vacuum.and_then(|tables| self.run_vacuum(&tables));
            if r.is_err() {
                self.fail_current();
            }
            self.cancel.store(false, Ordering::Release);
            return vec![r];
        }
        let rewritten = crate::roles::rewrite_create_user(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        let stmts = match crate::locking::parse_sql(sql) {
            Ok(s) => s,
            Err(e) => {
                // sqlparser does not know the 2PC statements: only a refused message can hold one.
                if let Some(pieces) = twopc::split_message(sql) {
                    let results = match pieces {
                        Ok(pieces) => self.execute_pieces(pieces),
                        Err(e) => {
                            self.fail_current();
                            vec![Err(e)]
                        }
                    };
                    self.cancel.store(false, Ordering::Release);
                    return results;
                }
                let err = SqlError::syntax(e.to_string());
                self.fail_current();
                return vec![Err(err)];
            }
        };
        if stmts.is_empty() {
            return vec![Ok(Outcome::Empty)];
        }
        let mut results = Vec::with_capacity(stmts.len());
        let n = stmts.len();
        self.multi_statement = n > 1;
        for (i, stmt) in stmts.iter().enumerate() {
            let r = self.run_statement(stmt, &[]);
            let failed = r.is_err();
            results.push(r);
            if failed {
                self.fail_current();
                break;
            }
            // End of the message: an implicit transaction commits.
            if i + 1 == n {
                if let Err(e) = self.finish_implicit() {
                    results.push(Err(e));
                }
            }
        }
        self.multi_statement = false;
        self.cancel.store(false, Ordering::Release);
        results
    }

    /// After an error: an implicit transaction rolls back; an explicit one becomes failed.
    fn fail_current(&mut self) {
        match self.txn.as_mut() {
            Some(t) if t.block == Block::Explicit => t.failed = true,
            Some(_) => {
                if let Some(t) = self.txn.take() {
                    t.txn.rollback();
                }
            }
            None => {}
        }
    }

    fn finish_implicit(&mut self) -> SqlResult<()> {
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.block == Block::Implicit)
        {
            if let Some(t) = self.txn.take() {
                if t.failed {
                    t.txn.rollback();
                } else {
                    self.commit_txn(t)?;
                }
            }
        }
        Ok(())
    }

    fn commit_txn(&mut self, t: Box<ActiveTxn>) -> SqlResult<()> {
        if !t.ddl {
            t.txn.commit()?;
            return Ok(());
        }
        let catalog = &self.engine.catalog;
        let links = catalog.partition_links(&t.txn, &t.partition_links)?;
        catalog.ddl_commit_begins();
        match t.txn.commit() {
            Ok(_) => {
                catalog.ddl_committed(&t.dropped);
                catalog.link_partitions(&links);
                Ok(())
            }
            Err(e) => {
                catalog.ddl_commit_failed();
                Err(e.into())
            }
        }
    }

    fn begin_txn(&mut self, block: Block, iso: Option<Isolation>) -> &mut ActiveTxn {
        let iso = iso.unwrap_or(self.default_isolation);
        let db = &self.engine.db;
        let (mut txn, catalog_tag) = self.engine.catalog.tagged_snapshot(|| db.begin(iso));
        txn.set_namespace(self.database_id.0);
        self.txn.insert(Box::new(ActiveTxn {
            multi_statement: self.multi_statement,
            txn,
            block,
            failed: false,
            savepoints: vec![],
            dropped: vec![],
            ddl: false,
            partition_links: vec![],
            statements: 0,
            started_at: now_timestamp(),
            catalog_tag,
        }))
    }

    fn run_statement(&mut self, stmt: &ast::Statement, params: &[Value]) -> SqlResult<Outcome> {
        let kind = statement_kind(stmt);
        if self.txn.as_ref().is_some_and(|t| t.failed)
            && !matches!(kind, "commit" | "rollback" | "rollback_to")
        {
            return Err(SqlError::new(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        use ast::Statement as S;
        match stmt {
            S::StartTransaction { modes, begin, .. } => {
                let iso = modes.iter().find_map(|m| match m {
                    ast::TransactionMode::IsolationLevel(l) => Some(ast_isolation(l)),
                    _ => None,
                });
                match self.txn.as_mut() {
                    Some(t) if t.block == Block::Explicit => {
                        self.notice(
                            "WARNING",
                            "25001",
                            "there is already a transaction in progress",
                        );
                    }
                    Some(t) => {
                        t.block = Block::Explicit;
                        if let Some(i) = iso {
                            if t.statements == 0 && t.txn.state().isolation != i {
                                self.begin_txn(Block::Explicit, Some(i));
                            }
                        }
                    }
                    None => {
                        self.begin_txn(Block::Explicit, iso);
                    }
                }
                Ok(Outcome::Command {
                    tag: if *begin { "BEGIN" } else { "START TRANSACTION" }.into(),
                })
            }
            S::Commit { chain, .. } => {
                if *chain {
                    return Err(SqlError::unsupported("COMMIT AND CHAIN"));
                }
                match self.txn.take() {
                    None => {
                        self.notice("WARNING", "25P01", "there is no transaction in progress");
                        Ok(Outcome::Command {
                            tag: "COMMIT".into(),
                        })
                    }
                    Some(t) if t.failed => {
                        t.txn.rollback();
                        Ok(Outcome::Command {
                            tag: "ROLLBACK".into(),
                        })
                    }
                    Some(t) => {
                        if t.block == Block::Implicit && t.statements == 0 {
                            self.notice("WARNING", "25P01", "there is no transaction in progress");
                        }
                        self.commit_txn(t)?;
                        Ok(Outcome::Command {
                            tag: "COMMIT".into(),
                        })
                    }
                }
            }
            S::Rollback {
                savepoint: None,
                chain,
                ..
            } => {
                if *chain {
                    return Err(SqlError::unsupported("ROLLBACK AND CHAIN"));
                }
                match self.txn.take() {
                    None => self.notice("WARNING", "25P01", "there is no transaction in progress"),
                    Some(t) => t.txn.rollback(),
                }
                Ok(Outcome::Command {
                    tag: "ROLLBACK".into(),
                })
            }
            S::Rollback {
                savepoint: Some(name),
                ..
            } => {
                let name = ident_name(name);
                let t = explicit_block(&mut self.txn, "ROLLBACK TO SAVEPOINT")?;
                let pos = find_savepoint(t, &name)?;
                let sp = t.savepoints[pos].1;
                t.savepoints.truncate(pos + 1);
                t.txn.rollback_to(sp);
                t.failed = false;
                Ok(Outcome::Command {
                    tag: "ROLLBACK".into(),
                })
            }
            S::Savepoint { name } => {
                let name = ident_name(name);
                let t = explicit_block(&mut self.txn, "SAVEPOINT")?;
                let sp = t.txn.savepoint();
                t.savepoints.push((name, sp));
                Ok(Outcome::Command {
                    tag: "SAVEPOINT".into(),
                })
            }
            S::ReleaseSavepoint { name } => {
                let name = ident_name(name);
                let t = explicit_block(&mut self.txn, "RELEASE SAVEPOINT")?;
                let pos = find_savepoint(t, &name)?;
                t.savepoints.truncate(pos);
                Ok(Outcome::Command {
                    tag: "RELEASE".into(),
                })
            }
            S::Set(set) => {
                let r = self.run_set(set);
                self.refresh_timeouts();
                r
            }
            S::ShowVariable { variable } => self.run_show(variable),
            S::Reset(r) => {
                match &r.reset {
                    ast::Reset::ALL => {
                        self.settings = self.engine.default_settings();
                        self.default_isolation = Isolation::ReadCommitted;
                    }
                    ast::Reset::ConfigurationParameter(name) => {
                        let n = object_name(name)?;
                        self.set_setting(&n, None)?;
                    }
                    ast::Reset::SessionAuthorization => {}
                }
                self.refresh_timeouts();
                Ok(Outcome::Command {
                    tag: "RESET".into(),
                })
            }
            S::Deallocate { name, .. } => Ok(Outcome::Command {
                tag: if name.value.eq_ignore_ascii_case("all") && name.quote_style.is_none() {
                    "DEALLOCATE ALL"
                } else {
                    "DEALLOCATE"
                }
                .into(),
            }),
            S::Discard { object_type } => Ok(Outcome::Command {
                tag: match object_type {
                    ast::DiscardObject::ALL => "DISCARD ALL",
                    ast::DiscardObject::PLANS => "DISCARD PLANS",
                    ast::DiscardObject::SEQUENCES => "DISCARD SEQUENCES",
                    ast::DiscardObject::TEMP => "DISCARD TEMP",
                }
                .into(),
            }),
            _ => self.run_in_txn(stmt, params),
        }
    }

    /// VACUUM [ANALYZE] [tables]: checks the tables exist, then collects old versions (the
    /// engine's GC at the database's safe point). Refused inside a transaction block, as in
    /// PostgreSQL.
    fn run_vacuum(&mut self, tables: &[String]) -> SqlResult<Outcome> {
        if self.txn.is_some() {
            return Err(SqlError::new(
                SqlState::ACTIVE_SQL_TRANSACTION,
                "VACUUM cannot run inside a transaction block",
            ));
        }
        let mut txn = self.engine.db.begin(Isolation::ReadCommitted);
        txn.set_namespace(self.database_id.0);
        for t in tables {
            self.engine.catalog.require(&txn, t)?;
        }
        txn.rollback();
        self.engine
            .db
            .gc()
            .map_err(|e| SqlError::internal(format!("vacuum: {e}")))?;
        Ok(Outcome::Command {
            tag: "VACUUM".into(),
        })
    }

    fn run_set(&mut self, set: &ast::Set) -> SqlResult<Outcome> {
        match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable
                    .0
                    .iter()
                    .map(|p| match p {
                        ast::ObjectNamePart::Identifier(id) => id.value.clone(),
                        _ => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                let vals: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        ast::Expr::Identifier(id) => id.value.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                let is_default = vals.len() == 1
                    && vals[0].eq_ignore_ascii_case("default")
                    && matches!(values[0], ast::Expr::Identifier(_));
                let value = if is_default {
                    None
                } else {
                    Some(vals.join(", "))
                };
                self.set_setting(&name, value)?;
                Ok(Outcome::Command { tag: "SET".into() })
            }
            ast::Set::SetTimeZone { value, .. } => {
                let v = match value {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                };
                self.set_setting("TimeZone", Some(v))?;
                Ok(Outcome::Command { tag: "SET".into() })
            }
            ast::Set::SetTransaction { modes, session, .. } => {
                let iso = modes.iter().find_map(|m| match m {
                    ast::TransactionMode::IsolationLevel(l) => Some(ast_isolation(l)),
                    _ => None,
                });
                if let Some(i) = iso {
                    if *session {
                        self.default_isolation = i;
                    } else {
                        self.set_txn_isolation(i)?;
                    }
                }
                Ok(Outcome::Command { tag: "SET".into() })
            }
            ast::Set::SetNames { .. } | ast::Set::SetNamesDefault {} => {
                Ok(Outcome::Command { tag: "SET".into() })
            }
            _ => Err(SqlError::unsupported("this form of SET")),
        }
    }

    fn set_txn_isolation(&mut self, i: Isolation) -> SqlResult<()> {
        match self.txn.as_ref() {
            Some(t) if t.block == Block::Explicit => {
                if t.statements > 0 {
                    return Err(SqlError::new(
                        SqlState::ACTIVE_SQL_TRANSACTION,
                        "SET TRANSACTION ISOLATION LEVEL must be called before any query",
                    ));
                }
                if t.txn.state().isolation != i {
                    self.begin_txn(Block::Explicit, Some(i));
                }
                Ok(())
            }
            _ => {
                self.notice(
                    "WARNING",
                    "25P01",
                    "SET TRANSACTION can only be used in transaction blocks",
                );
                Ok(())
            }
        }
    }

    fn set_setting(&mut self, name: &str, value: Option<String>) -> SqlResult<()> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "transaction_isolation" => {
                if let Some(v) = value {
                    self.set_txn_isolation(parse_isolation(&v)?)?;
                }
                return Ok(());
            }
            "max_prepared_transactions" => {
                return Err(SqlError::new(
                    SqlState::CANT_CHANGE_RUNTIME_PARAM,
                    "parameter \"max_prepared_transactions\" cannot be changed without restarting the server",
                ));
            }
            "ssl" => {
                return Err(SqlError::new(
                    SqlState::CANT_CHANGE_RUNTIME_PARAM,
                    "parameter \"ssl\" cannot be changed now",
                ));
            }
            n if SERVER_SETTINGS.contains(&n) => {
                return Err(SqlError::new(
                    SqlState::CANT_CHANGE_RUNTIME_PARAM,
                    format!("parameter \"{n}\" cannot be changed without restarting the server"),
                ));
            }
            "default_transaction_isolation" => {
                self.default_isolation = match value {
                    Some(v) => parse_isolation(&v)?,
                    None => Isolation::ReadCommitted,
                };
                return Ok(());
            }
            "statement_timeout" | "lock_timeout" if value.is_none() => {
                if let Some(d) = self.engine.session_default(&lower) {
                    self.settings.insert(lower.clone(), d);
                }
                return Ok(());
            }
            "statement_timeout" => {
                if let Some(v) = &value {
                    let ms = parse_timeout_ms(v)?;
                    self.settings
                        .insert("statement_timeout".into(), format_timeout(ms));
                    return Ok(());
                }
            }
            "lock_timeout" => {
                if let Some(v) = &value {
                    let ms = parse_duration_ms("lock_timeout", v)?;
                    self.settings
                        .insert("lock_timeout".into(), format_timeout(ms));
                    return Ok(());
                }
            }
            "datestyle" => {
                if let Some(v) = &value {
                    let merged = merge_datestyle(
                        &self
                            .setting("DateStyle")
                            .unwrap_or_else(|| "ISO, MDY".into()),
                        v,
                    )?;
                    self.settings.insert("DateStyle".into(), merged);
                    return Ok(());
                }
            }
            "extra_float_digits" => {
                if let Some(v) = &value {
                    v.trim().parse::<i32>().map_err(|_| {
                        SqlError::new(
                            SqlState::INVALID_PARAMETER_VALUE,
                            format!("invalid value for parameter \"extra_float_digits\": \"{v}\""),
                        )
                    })?;
                }
            }
            "client_encoding" => {
                if let Some(v) = &value {
                    let norm = v.to_ascii_uppercase().replace(['-', '_'], "");
                    if norm != "UTF8" && norm != "UNICODE" {
                        return Err(SqlError::new(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            format!("conversion between {v} and UTF8 is not supported"),
                        ));
                    }
                    self.settings
                        .insert("client_encoding".into(), "UTF8".into());
                    return Ok(());
                }
            }
            _ => {}
        }
        let key = match canonical_setting(name) {
            Some(k) => k.to_string(),
            None if lower.contains('.') => lower.clone(),
            None => {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{lower}\""),
                ));
            }
        };
        if matches!(
            key.as_str(),
            "server_version"
                | "server_encoding"
                | "integer_datetimes"
                | "is_superuser"
                | "max_identifier_length"
        ) {
            return Err(SqlError::new(
                SqlState::CANT_CHANGE_RUNTIME_PARAM,
                format!("parameter \"{lower}\" cannot be changed"),
            ));
        }
        match value {
            Some(v) => self.settings.insert(key, v),
            None => {
                let default = SETTINGS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default();
                self.settings.insert(key, default)
            }
        };
        Ok(())
    }

    fn run_show(&mut self, variable: &[ast::Ident]) -> SqlResult<Outcome> {
        let name = variable
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join(" ");
        let text_col = |n: &str| Column {
            name: n.to_string(),
            ty: DataType::Text,
            table_oid: 0,
            column_id: 0,
        };
        if name.eq_ignore_ascii_case("all") {
            let mut rows: Vec<Vec<Value>> = SETTINGS
                .iter()
                .map(|(k, _)| {
                    vec![
                        Value::Text(k.to_string()),
                        Value::Text(self.setting(k).unwrap_or_default()),
                        Value::Text(String::new()),
                    ]
                })
                .collect();
            for k in SERVER_SETTINGS {
                rows.push(vec![
                    Value::Text(k.to_string()),
                    Value::Text(self.setting(k).unwrap_or_default()),
                    Value::Text(String::new()),
                ]);
            }
            rows.push(vec![
                Value::Text("transaction_isolation".into()),
                Value::Text(self.setting("transaction_isolation").unwrap_or_default()),
                Value::Text(String::new()),
            ]);
            let tag = format!("SHOW {}", rows.len());
            let _ = tag;
            return Ok(Outcome::Rows {
                columns: vec![
                    text_col("name"),
                    text_col("setting"),
                    text_col("description"),
                ]
                .into(),
                rows,
                tag: "SHOW".into(),
            });
        }
        let lower = name.to_ascii_lowercase();
        let (col, value) =
            if lower == "transaction isolation level" || lower == "transaction_isolation" {
                (
                    "transaction_isolation".to_string(),
                    self.setting("transaction_isolation"),
                )
            } else if lower == "time zone" {
                ("TimeZone".to_string(), self.setting("TimeZone"))
            } else {
                let canon = canonical_setting(&lower)
                    .map(str::to_string)
                    .unwrap_or(lower.clone());
                (canon.clone(), self.setting(&canon))
            };
        let Some(value) = value else {
            return Err(SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{lower}\""),
            ));
        };
        Ok(Outcome::Rows {
            columns: vec![text_col(&col)].into(),
            rows: vec![vec![Value::Text(value)]],
            tag: "SHOW".into(),
        })
    }

    /// Runs a data or DDL statement inside the current transaction, opening an implicit one if
    /// needed.
    fn run_in_txn(&mut self, stmt: &ast::Statement, params: &[Value]) -> SqlResult<Outcome> {
        if self.txn.is_none() {
            self.begin_txn(Block::Implicit, None);
        }
        let interrupt = self.interrupt();
        let engine = self.engine.clone();
        let info = self.info.clone();
        let Some(t) = self.txn.as_mut() else {
            return Err(SqlError::internal("no transaction"));
        };
        t.next_statement(&engine.catalog);
        t.txn.set_wait_limits(interrupt.wait_limits());
        let mut notices = Vec::new();
        let sequences = self.sequences.clone();
        let result = run_in(
            &engine,
            &info,
            t,
            stmt,
            params,
            &interrupt,
            &mut self.stats,
            &mut notices,
            &sequences,
        );
        self.notices.extend(notices);
        if result.is_ok() {
            if let (ast::Statement::CreateTable(ct), Some(t)) = (stmt, self.txn.as_mut()) {
                // The creator owns a table it created (privileges.rs).
                if let Ok(name) = object_name(&ct.name) {
                    let created = t
                        .txn
                        .wrote(&Key::TableName(t.txn.database(), name.clone()).encode());
                    let catalog = &engine.catalog;
                    crate::privileges::record_owner(
                        catalog, &mut t.txn, created, &name, &info.user,
                    )?;
                }
            }
            if let Some(event) = crate::security::audit_event(stmt) {
                engine.audit().record(&info.user, event, &stmt.to_string());
            }
        }
        result
    }

    /// Extended protocol: parses and binds one statement. `param_types` are the client-declared
    /// types (None = infer from context; still unknown ones become text).
    pub fn prepare(
        &mut self,
        sql: &str,
        param_types: &[Option<DataType>],
    ) -> Result<Prepared, SqlError> {
        let rewritten = crate::roles::rewrite_create_user(sql);
        let parsed = crate::locking::parse_sql(rewritten.as_deref().unwrap_or(sql));
        let mut stmts = match parsed {
            Ok(stmts) => stmts,
            Err(e) => match twopc::single(sql) {
                Some(cmd) => {
                    let cmd = cmd?;
                    return Ok(Prepared {
                        sql: sql.to_string(),
                        statement: None,
                        param_types: vec![],
                        columns: vec![],
                        plan: Arc::default(),
                        twopc: Some(cmd),
                    });
                }
                None => return Err(SqlError::syntax(e.to_string())),
            },
        };
        if stmts.len() > 1 {
            return Err(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = stmts.pop() else {
            return Ok(Prepared {
                sql: sql.to_string(),
                statement: None,
                param_types: vec![],
                columns: vec![],
                plan: Arc::default(),
                twopc: None,
            });
        };
        let declared: Vec<Option<DataType>> = param_types
            .iter()
            .map(|t| t.filter(|t| *t != DataType::Unknown))
            .collect();
        let mut cached = None;
        let (types, columns) = match &statement {
            ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Update(_)
            | ast::Statement::Delete(_)
            | ast::Statement::Merge(_) => {
                let engine = self.engine.clone();
                let bind = |txn: &dyn Transaction| -> SqlResult<(Vec<DataType>, Plan)> {
                    let mut binder =
                        Binder::new(&engine.catalog, txn, &self.info, declared.clone());
                    let plan = bind_plan(&mut binder, &statement)?;
                    Ok((binder.final_param_types(), plan))
                };
                let (types, plan, version) = match self.txn.as_ref() {
                    Some(t) => {
                        let (types, plan) = bind(&t.txn)?;
                        (types, plan, t.plan_version())
                    }
                    None => {
                        let db = &self.engine.db;
                        let (mut txn, version) = self
                            .engine
                            .catalog
                            .tagged_snapshot(|| db.begin(Isolation::ReadCommitted));
                        txn.set_namespace(self.database_id.0);
                        let r = bind(&txn);
                        txn.rollback();
                        let (types, plan) = r?;
                        (types, plan, version)
                    }
                };
                let columns = plan.columns();
                cached = version.map(|version| CachedPlan {
                    version,
                    plan: Arc::new(plan),
                });
                (types, columns)
            }
            ast::Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join(" ");
                let cols = if name.eq_ignore_ascii_case("all") {
                    ["name", "setting", "description"]
                        .iter()
                        .map(|n| Column {
                            name: n.to_string(),
                            ty: DataType::Text,
                            table_oid: 0,
                            column_id: 0,
                        })
                        .collect()
                } else {
                    let canon = canonical_setting(&name)
                        .map(str::to_string)
                        .unwrap_or(name.to_ascii_lowercase());
                    vec![Column {
                        name: canon,
                        ty: DataType::Text,
                        table_oid: 0,
                        column_id: 0,
                    }]
                };
                (
                    declared
                        .iter()
                        .map(|t| t.unwrap_or(DataType::Text))
                        .collect(),
                    cols,
                )
            }
            _ => (
                declared
                    .iter()
                    .map(|t| t.unwrap_or(DataType::Text))
                    .collect(),
                vec![],
            ),
        };
        Ok(Prepared {
            sql: sql.to_string(),
            statement: Some(statement),
            param_types: types,
            columns,
            plan: Arc::new(Mutex::new(cached)),
            twopc: None,
        })
    }

    /// Extended protocol: executes a prepared statement with parameters already decoded by
    /// their types. Outside an explicit block the statement runs in an implicit transaction
    /// that [`Session::sync`] ends.
    pub fn execute_prepared(
        &mut self,
        p: &Prepared,
        params: Vec<Value>,
    ) -> Result<Outcome, SqlError> {
        if let Some(cmd) = &p.twopc {
            let r = self.run_twopc(cmd, false);
            if r.is_err() {
                if let Some(t) = self.txn.as_mut() {
                    t.failed = true;
                }
            }
            return r;
        }
        let Some(stmt) = &p.statement else {
            return Ok(Outcome::Empty);
        };
        // Parameters sent as text for a typed slot are converted here.
        let mut params = params;
        for (v, ty) in params.iter_mut().zip(&p.param_types) {
            if let Value::Text(s) = v {
                if !ty.is_string() && *ty != DataType::Unknown {
                    *v = Value::from_text(s, ty)?;
                }
            }
        }
        let r = match stmt {
            ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Update(_)
            | ast::Statement::Delete(_)
            | ast::Statement::Merge(_) => self.run_prepared_plan(p, stmt, &params),
            _ => self.run_statement(stmt, &params),
        };
        if r.is_err() {
            if let Some(t) = self.txn.as_mut() {
                t.failed = true;
            }
        }
        self.cancel.store(false, Ordering::Release);
        r
    }

    /// Runs a prepared query or DML statement with its cached plan when the plan's catalog
    /// version is the one the current snapshot sees; otherwise binds it again (with the
    /// parameter types fixed at prepare) and caches the new plan when its version is known.
    fn run_prepared_plan(
        &mut self,
        p: &Prepared,
        stmt: &ast::Statement,
        params: &[Value],
    ) -> SqlResult<Outcome> {
        let (plan, interrupt) = self.start_prepared(p, stmt)?;
        let engine = &self.engine;
        let Some(t) = self.txn.as_mut() else {
            return Err(SqlError::internal("no transaction"));
        };
        let mut ctx = ExecContext {
            txn: &mut t.txn,
            catalog: &engine.catalog,
            params,
            interrupt: &interrupt,
            stats: &mut self.stats,
            times: StatementTimes {
                transaction: t.started_at,
                statement: now_timestamp(),
            },
            sequences: &self.sequences,
        };
        execute(&mut ctx, &plan)
    }

    /// Runs a prepared INSERT once per row of `rows` (its parameters), as ONE statement: one
    /// snapshot, one plan, one statement time; what `COPY ... FROM STDIN` does with each batch
    /// of lines. Returns the rows inserted, or the index of the row that failed with its
    /// error (the transaction is then failed, as after any error).
    pub fn execute_prepared_rows(
        &mut self,
        p: &Prepared,
        rows: &[Vec<Value>],
    ) -> Result<u64, (usize, SqlError)> {
        let r = self.run_prepared_rows(p, rows);
        if r.is_err() {
            if let Some(t) = self.txn.as_mut() {
                t.failed = true;
            }
        }
        self.cancel.store(false, Ordering::Release);
        r
    }

    fn run_prepared_rows(
        &mut self,
        p: &Prepared,
        rows: &[Vec<Value>],
    ) -> Result<u64, (usize, SqlError)> {
        let Some(stmt @ ast::Statement::Insert(_)) = &p.statement else {
            return Err((
                0,
                SqlError::internal("execute_prepared_rows needs a prepared INSERT"),
            ));
        };
        let (plan, interrupt) = self.start_prepared(p, stmt).map_err(|e| (0, e))?;
        let engine = &self.engine;
        let Some(t) = self.txn.as_mut() else {
            return Err((0, SqlError::internal("no transaction")));
        };
        let mut ctx = ExecContext {
            txn: &mut t.txn,
            catalog: &engine.catalog,
            params: &[],
            interrupt: &interrupt,
            stats: &mut self.stats,
            times: StatementTimes {
                transaction: t.started_at,
                statement: now_timestamp(),
            },
            sequences: &self.sequences,
        };
        crate::query::execute_insert_rows(&mut ctx, &plan, rows)
    }

    /// Starts a statement that runs a prepared plan: refuses a failed transaction (25P02),
    /// begins an implicit one, takes the statement's snapshot and wait limits, and returns the
    /// cached plan (or binds it again) with the statement's interrupt.
    fn start_prepared(
        &mut self,
        p: &Prepared,
        stmt: &ast::Statement,
    ) -> SqlResult<(Arc<Plan>, Interrupt)> {
        if self.txn.as_ref().is_some_and(|t| t.failed) {
            return Err(SqlError::new(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        if self.txn.is_none() {
            self.begin_txn(Block::Implicit, None);
        }
        let interrupt = self.interrupt();
        let engine = &self.engine;
        let Some(t) = self.txn.as_mut() else {
            return Err(SqlError::internal("no transaction"));
        };
        t.next_statement(&engine.catalog);
        t.txn.set_wait_limits(interrupt.wait_limits());
        let version = t.plan_version();
        let cached = {
            let guard = p
                .plan
                .lock()
                .map_err(|_| SqlError::internal("plan cache lock poisoned"))?;
            guard
                .as_ref()
                .filter(|c| Some(c.version) == version)
                .map(|c| c.plan.clone())
        };
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let mut binder = Binder::new(
                    &engine.catalog,
                    &t.txn,
                    &self.info,
                    p.param_types.iter().map(|&t| Some(t)).collect(),
                );
                let plan = Arc::new(bind_plan(&mut binder, stmt)?);
                self.stats.plans_bound += 1;
                // The client was told the result shape at prepare (RowDescription).
                let same_shape = plan.columns_match(&p.columns);
                if !same_shape {
                    return Err(SqlError::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        "cached plan must not change result type",
                    ));
                }
                if let Some(version) = version {
                    if let Ok(mut guard) = p.plan.lock() {
                        *guard = Some(CachedPlan {
                            version,
                            plan: plan.clone(),
                        });
                    }
                }
                plan
            }
        };
        Ok((plan, interrupt))
    }

    /// Marks the current transaction failed, as an error inside it would: for errors the server
    /// detects itself in the middle of a statement (a malformed COPY line). An explicit block
    /// then answers 25P02 until ROLLBACK; an implicit transaction is rolled back.
    pub fn fail_transaction(&mut self) {
        self.fail_current();
    }

    /// Extended protocol Sync: ends an implicit transaction (commit, or rollback if it
    /// failed). A commit failure is kept for [`Session::take_sync_error`].
    pub fn sync(&mut self) {
        if let Err(e) = self.sync_result() {
            self.sync_error = Some(e);
        }
    }

    /// Like [`Session::sync`] but returns a commit failure so the server can report it.
    pub fn sync_result(&mut self) -> Result<(), SqlError> {
        self.finish_implicit()
    }

    /// The commit error of the last [`Session::sync`], if any (drained).
    pub fn take_sync_error(&mut self) -> Option<SqlError> {
        self.sync_error.take()
    }
}

fn bind_plan(binder: &mut Binder<'_>, stmt: &ast::Statement) -> SqlResult<Plan> {
    crate::privileges::check_statement(binder.catalog, binder.txn, &binder.info.user, stmt)?;
    match stmt {
        ast::Statement::Query(q) => Ok(Plan::Select(Box::new(binder.bind_query(q)?))),
        ast::Statement::Insert(i) => binder.bind_insert(i),
        ast::Statement::Update(u) => binder.bind_update(u),
        ast::Statement::Delete(d) => binder.bind_delete(d),
        ast::Statement::Merge(m) => binder.bind_merge_plan(m),
        _ => Err(SqlError::unsupported("this statement")),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_in(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &mut ActiveTxn,
    stmt: &ast::Statement,
    params: &[Value],
    interrupt: &Interrupt,
    stats: &mut ExecStats,
    notices: &mut Vec<Notice>,
    sequences: &SessionSequences,
) -> SqlResult<Outcome> {
    use ast::Statement as S;
    let catalog = &engine.catalog;
    if !matches!(
        stmt,
        S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_)
    ) && t.txn.has_pending_increments()
    {
        // DDL, COPY, EXPLAIN ...: may read rows this transaction increments (plans decide
        // for themselves in `query::execute`).
        t.txn.observe_increments()?;
    }
    if let Some(r) =
        crate::security::run(catalog, &mut t.txn, &info.user, stmt, &mut t.ddl, notices)
    {
        return r;
    }
    match stmt {
        S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_) => {
            let mut binder = Binder::new(
                catalog,
                &t.txn,
                info,
                params
                    .iter()
                    .map(|v| Some(v.data_type()).filter(|t| *t != DataType::Unknown))
                    .collect(),
            );
            let plan = bind_plan(&mut binder, stmt)?;
            stats.plans_bound += 1;
            let mut ctx = ExecContext {
                txn: &mut t.txn,
                catalog,
                params,
                interrupt,
                stats,
                times: StatementTimes {
                    transaction: t.started_at,
                    statement: now_timestamp(),
                },
                sequences,
            };
            execute(&mut ctx, &plan)
        }
        S::Explain {
            statement, analyze, ..
        } => {
            let plan = bind_plan(&mut Binder::new(catalog, &t.txn, info, vec![]), statement)?;
            let mut ctx = ExecContext {
                txn: &mut t.txn,
                catalog,
                params,
                interrupt,
                stats,
                times: StatementTimes {
                    transaction: t.started_at,
                    statement: now_timestamp(),
                },
                sequences,
            };
            crate::explain::explain(&mut ctx, &plan, *analyze)
        }
        S::CreateTable(ct) => {
            crate::ddl::create_table(engine, info, t, ct, notices)?;
            Ok(Outcome::Command {
                tag: "CREATE TABLE".into(),
            })
        }
        S::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            match object_type {
                ast::ObjectType::Table => {}
                ast::ObjectType::Database => {
                    crate::ddl::drop_databases(engine, info, t, names, *if_exists, notices)?;
                    return Ok(Outcome::Command {
                        tag: "DROP DATABASE".into(),
                    });
                }
                ast::ObjectType::Schema => {
                    crate::ddl::drop_schemas(t, names, *if_exists, notices)?;
                    return Ok(Outcome::Command {
                        tag: "DROP SCHEMA".into(),
                    });
                }
                ast::ObjectType::Index => {
                    crate::ddl::drop_indexes(engine, t, names, *if_exists, notices)?;
                    return Ok(Outcome::Command {
                        tag: "DROP INDEX".into(),
                    });
                }
                ast::ObjectType::Sequence => {
                    crate::ddl::drop_sequences(t, names, *if_exists, notices)?;
                    return Ok(Outcome::Command {
                        tag: "DROP SEQUENCE".into(),
                    });
                }
                _ => return Err(SqlError::unsupported(format!("DROP {object_type}"))),
            }
            let mut defs = Vec::new();
            for n in names {
                let name = object_name(n)?;
                match catalog.lookup(&t.txn, &name)? {
                    Some(def) => defs.push(def),
                    None if *if_exists => notices.push(Notice {
                        code: "00000",
                        message: format!("table \"{name}\" does not exist, skipping"),
                        severity: "NOTICE",
                    }),
                    None => {
                        return Err(SqlError::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("table \"{name}\" does not exist"),
                        ));
                    }
                }
            }
            for def in &defs {
                crate::locking::lock_for_ddl(
                    &mut t.txn,
                    def,
                    gnomon_mvcc::TableMode::AccessExclusive,
                )?;
            }
            crate::ddl::drop_table_references(engine, t, &defs, *cascade, notices)?;
            let defs = crate::partition::expand_drop(engine, t, defs)?;
            for def in defs {
                // The foreign-key bookkeeping may have rewritten the definition.
                let def = catalog.require(&t.txn, &def.name)?;
                catalog.drop_table(&mut t.txn, &def)?;
                crate::ddl::drop_owned_sequences(t, &def)?;
                t.dropped.push(def.def_id);
                t.ddl = true;
            }
            Ok(Outcome::Command {
                tag: "DROP TABLE".into(),
            })
        }
        S::Truncate(tr) => {
            let mut defs = Vec::new();
            for target in &tr.table_names {
                let def = catalog.require(&t.txn, &object_name(&target.name)?)?;
                // A partitioned table is truncated through its partitions.
                let parts = crate::partition::partitions_of(catalog, &t.txn, &def)?;
                defs.push(def);
                defs.extend(parts);
            }
            for def in &defs {
                crate::locking::lock_for_ddl(
                    &mut t.txn,
                    def,
                    gnomon_mvcc::TableMode::AccessExclusive,
                )?;
            }
            crate::ddl::truncate_references(engine, &t.txn, &defs)?;
            for def in defs {
                interrupt.check()?;
                catalog.delete_rows(&mut t.txn, &def)?;
            }
            Ok(Outcome::Command {
                tag: "TRUNCATE TABLE".into(),
            })
        }
        S::Analyze(a) => {
            if let Some(name) = &a.table_name {
                catalog.require(&t.txn, &object_name(name)?)?;
            }
            Ok(Outcome::Command {
                tag: "ANALYZE".into(),
            })
        }
        S::AlterTable(at) => {
            crate::ddl::alter_table(engine, info, t, at, interrupt, sequences, notices)?;
            Ok(Outcome::Command {
                tag: "ALTER TABLE".into(),
            })
        }
        S::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        } => {
            crate::ddl::create_database(engine, t, db_name, *if_not_exists, notices)?;
            Ok(Outcome::Command {
                tag: "CREATE DATABASE".into(),
            })
        }
        S::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => {
            crate::ddl::create_schema(t, schema_name, *if_not_exists, notices)?;
            Ok(Outcome::Command {
                tag: "CREATE SCHEMA".into(),
            })
        }
        S::CreateIndex(ci) => {
            crate::ddl::create_index(engine, t, ci, interrupt, notices)?;
            Ok(Outcome::Command {
                tag: "CREATE INDEX".into(),
            })
        }
        S::CreateSequence {
            temporary,
            if_not_exists,
            name,
            sequence_options,
        } => {
            if *temporary {
                return Err(SqlError::unsupported("temporary sequences"));
            }
            crate::ddl::create_sequence(
                engine,
                t,
                name,
                *if_not_exists,
                sequence_options,
                notices,
            )?;
            Ok(Outcome::Command {
                tag: "CREATE SEQUENCE".into(),
            })
        }
        S::Lock(lock) => {
            if t.block != Block::Explicit {
                return Err(SqlError::new(
                    SqlState::NO_ACTIVE_SQL_TRANSACTION,
                    "LOCK TABLE can only be used in transaction blocks",
                ));
            }
            let mode = crate::locking::table_mode_of(lock.lock_mode.as_ref());
            let wait = if lock.nowait {
                gnomon_mvcc::LockWait::NoWait
            } else {
                gnomon_mvcc::LockWait::Block
            };
            let mut defs = Vec::new();
            for target in &lock.tables {
                defs.push(catalog.require(&t.txn, &object_name(&target.name)?)?);
            }
            for def in defs {
                t.txn
                    .lock_table(gnomon_mvcc::RelId(def.id.0), mode, wait)
                    .map_err(|e| crate::locking::lock_error(e, &def.name))?;
            }
            Ok(Outcome::Command {
                tag: "LOCK TABLE".into(),
            })
        }
        other => Err(SqlError::unsupported(format!(
            "statement \"{}\"",
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// Recognises PostgreSQL's `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [(options)] [table, ...]`
/// (sqlparser only knows Redshift's form). `None` if `sql` is not a VACUUM; otherwise the
/// table names, or a syntax error.
fn parse_vacuum(sql: &str) -> Option<SqlResult<Vec<String>>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let first = text.split_whitespace().next()?;
    if !first.eq_ignore_ascii_case("vacuum") {
        return None;
    }
    let mut rest = text[first.len()..].trim_start();
    if let Some(after) = rest.strip_prefix('(') {
        let Some(close) = after.find(')') else {
            return Some(Err(SqlError::syntax("syntax error at end of input")));
        };
        rest = after[close + 1..].trim_start();
    }
    let mut tables = Vec::new();
    for word in rest.split(',').flat_map(|w| w.split_whitespace()) {
        let lower = word.to_ascii_lowercase();
        if tables.is_empty()
            && matches!(
                lower.as_str(),
                "full" | "freeze" | "verbose" | "analyze" | "analyse"
            )
        {
            continue;
        }
        if word.contains(['(', ')', ';', '\'']) {
            return Some(Err(SqlError::unsupported("VACUUM with column lists")));
        }
        let name = match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => lower,
        };
        let name = name.rsplit('.').next().unwrap_or_default().to_string();
        tables.push(name);
    }
    Some(Ok(tables))
}
