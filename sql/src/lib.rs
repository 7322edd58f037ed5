//! # gnomon-sql: parse, bind, plan, execute, catalog
//!
//! The SQL layer turns PostgreSQL-dialect statements (parsed by `sqlparser` with
//! `PostgreSqlDialect`) into reads and writes of the MVCC key space, and keeps per-connection
//! state (transaction blocks, settings) in a [`Session`]. The server calls it only through
//! [`SqlEngine`], [`Session`], [`Prepared`], [`Value`] and [`DataType`].
//!
//! ## Guarantees
//!
//! - Every statement runs inside one MVCC transaction: autocommit (implicit) outside a block,
//!   the block's transaction inside BEGIN ... COMMIT. Statements of one simple-query message
//!   share one implicit transaction unless BEGIN/COMMIT appear inside it, and an error aborts
//!   the rest of the message, as in PostgreSQL. A BEGIN block's snapshot is taken by its first
//!   statement, not by BEGIN (PostgreSQL's rule; `tests/isolation.rs` depends on it).
//! - UPDATE and DELETE judge each scanned row on the statement's snapshot first; only rows that
//!   match are locked and re-checked on their newest version (PostgreSQL's EvalPlanQual), so
//!   the isolation anomalies come out exactly as in PostgreSQL at every level
//!   (`tests/isolation.rs`). SERIALIZABLE is serializable through the mvcc layer's SSI: every
//!   read through [`storage::Transaction`] is a SIREAD lock (a scan locks its whole range).
//! - DDL is transactional: the catalog lives in the same key space as the rows, so CREATE
//!   and DROP commit, roll back (also to a savepoint) and recover exactly like data.
//! - Every error a client can cause is a [`SqlError`] with a SQLSTATE; nothing a client sends
//!   can panic the layer.
//! - Two-phase commit statements (`PREPARE TRANSACTION`, `COMMIT/ROLLBACK PREPARED`) behave as
//!   in PostgreSQL 15 (`session/twopc.rs`); system views and functions over the transaction
//!   machinery (`pg_prepared_xacts`, `gnomon_transactions`, `gnomon_transaction_status`,
//!   `gnomon_hlc_now`) are read at execution, never cached in a plan (`system.rs`).
//! - Roles ([`roles`]) live in the catalog like tables: transactional and durable, passwords
//!   only as SCRAM-SHA-256 verifiers ([`scram`]). Table privileges ([`privileges`]: owner
//!   and GRANT/REVOKE, in the catalog too) are checked when a statement is bound (42501).
//!   DDL, role statements, GRANT/REVOKE and 2PC decisions are recorded in the engine's
//!   [`Audit`] log once they have executed.
//! - A SELECT from one table can name the system column `gnomon_mvcc_timestamp`: the commit
//!   HLC timestamp of each row version it reads (NULL for the transaction's own writes), not
//!   part of `SELECT *`. Only a query that names it pays for it (one versioned engine lookup
//!   per row); UPDATE/DELETE, joins and MERGE do not offer it, FOR UPDATE/SHARE refuses it
//!   (0A000). See `plan::add_mvcc_timestamp_column`.
//!
//! - Partitioned tables (`PARTITION BY RANGE | LIST | HASH`, `PARTITION OF ... FOR VALUES`)
//!   follow PostgreSQL 15: rows are routed to the partition whose bound takes them (23514
//!   otherwise), an UPDATE of the key moves the row, WHERE on the key prunes partitions at
//!   plan time and, with parameters, at execution; each partition is the lock manager's
//!   partition level of its parent; ATTACH / DETACH PARTITION, indexes of a partitioned
//!   table (one per partition), ADD PRIMARY KEY on it (every partition gets the key) and
//!   MERGE into it (routed inserts, moving updates) as PostgreSQL (see [`partition`]).
//!
//! ## Invariants
//!
//! 1. Every key starts with one prefix tag ([`encoding::KeyPrefix`]); all rows of a table are
//!    one contiguous key range, ordered by primary key.
//! 2. Primary-key encodings are memcomparable and prefix-free per value, so a key prefix
//!    selects exactly the rows whose leading key columns are equal.
//! 3. A stored row holds every column (key columns included); keys are only for order and
//!    lookup and are never decoded back into values (except the hidden rowid).
//! 4. A table definition never changes under its definition id: ALTER TABLE, CREATE INDEX
//!    and friends write a new definition under a fresh id (the table id, which prefixes the
//!    rows, stays). Object ids (tables, definitions, indexes, sequences) come from one
//!    counter and a dropped id is never reused.
//! 5. A WHERE clause is re-evaluated on the rows read: the access path only narrows what is
//!    read, never decides what matches. The one exception is a point read whose WHERE is
//!    exactly `integer key column = constant` per key column: there, finding the key is the
//!    SQL equality (see `query.rs`).
//! 6. A cached plan runs only under a snapshot that sees the catalog version it was bound
//!    under, in a transaction without DDL of its own (see "Plan cache" below).
//! 7. Plans hold no clock readings: `now()` and friends are evaluated at execution from the
//!    transaction's (statement's) start time.
//! 8. Every write takes the row's lock, except writes of keys no other transaction can reach
//!    ([`storage::Transaction::put_new`]): a fresh hidden rowid (unique in the process and above
//!    every stored one) and the rows of a table created by the writing transaction (the
//!    rewrite of ADD PRIMARY KEY), and index entries that end with their row's key (only
//!    the holder of that row's lock can write them).
//! 9. Every row has exactly one entry per secondary index, written in the row's
//!    transaction; a unique index's entry for non-NULL values is one key whose row lock
//!    serializes concurrent inserters of the value (see `index.rs`).
//! 10. Sequence values are not transactional: a value handed out is never handed out again,
//!     also after a crash (see [`sequence`]).
//! 11. Every statement takes PostgreSQL's table lock before it reads or writes (SELECT ACCESS
//!     SHARE, `FOR <row mode>` ROW SHARE, DML ROW EXCLUSIVE, DDL ACCESS EXCLUSIVE), held to the
//!     end of the transaction; see `locking.rs` and `mvcc/src/locks/README.md`.
//! 12. A foreign key is recorded on both sides in one transaction: the referencing table's
//!     definition holds it (naming the referenced table and columns), the referenced table's
//!     `referenced_by` names the referencing table. Every DDL that renames, drops or re-keys
//!     either side rewrites both (see `foreign_key.rs`).
//!
//! ## Databases
//!
//! Databases and roles are cluster-wide; everything named (tables, indexes, sequences,
//! schemas) is named within one database: the name keys carry the database's OID (catalog
//! format 2, see `encoding.rs`), so two databases can each have a `t1`. A session's database
//! reaches storage through the transaction handle: the session labels every transaction it
//! begins with its database's OID (`gnomon_mvcc::Txn::set_namespace`) and every name key is
//! built from `Transaction::database()`, so there is no global "current database". Ids
//! (tables, definitions, indexes, sequences, database OIDs) come from one counter and are
//! never reused, so rows, index entries and definitions need no database in their keys, and
//! pg_class and friends list only the current database's names. CREATE / DROP DATABASE
//! commit on their own and are refused in a transaction block or a multi-statement message
//! (25001); DROP DATABASE deletes the database's objects and rows in one transaction (GC
//! reclaims the space) after waiting up to 5 s for its other sessions to end (55006 after,
//! as PostgreSQL; also while prepared transactions of it exist). A data dir of catalog
//! format 1 (names were cluster-wide) is migrated at open: its objects go to database
//! `gnomon`.
//!
//! ## Data layout
//!
//! ```text
//!  0x01                         Meta       catalog format version (2)
//!  0x02 "gnomon"\0\1            Database   -> OID 5 (u32 BE)
//!  0x03 "gnomon"\0\1            Role       -> RoleDef (flags, SCRAM verifier)
//!  0x04 00 00 00 05 "accounts"\0\1   TableName  -> 16385 (definition id)
//!       ^database OID: names are per database, ids are cluster-wide
//!  0x05 00 00 40 01             Table      -> TableDef(16384 def 16385: id int8 PK,
//!                                             balance numeric, index 16386 on balance)
//!  0x06 00 00 00 05 "s"\0\1     Sequence   -> SequenceDef
//!  0x07 00 00 40 03             SequenceValue -> last reserved value
//!  0x08 00 00 00 05 "accounts_balance_idx"..  IndexName -> 16384
//!  0x10 00 00 40 00 01 80..01   Row        -> [v1][2][tag int8][..][tag numeric][..]
//!  0x10 00 00 40 00 01 80..02   Row
//!       ^table id   ^pk value (tag 0x01 + sign-flipped big-endian)
//!  0x11 00 00 40 00 00 00 40 02 <balance> <pk>   IndexEntry -> row key
//! ```
//! Byte-level formats are documented in [`encoding`] and [`catalog::TableDef::encode`].
//!
//! ## Layers
//!
//! ```text
//!  Session ── parse (sqlparser) ── Binder (names, types, params) ── Plan (access path)
//!     │                                 plan.rs: FROM/joins,          │  query.rs: DML,
//!     │                                 subqueries, CTEs, set ops     │  exec.rs: SELECT
//!     └── transaction control, SET/SHOW                 execute ── storage::Transaction
//!                                                                    │ (narrow trait)
//!                                                           gnomon_mvcc::Txn
//! ```
//!
//! A SELECT's FROM clause is a tree of sources (tables, joins, derived tables, set
//! operations, recursive CTEs, VALUES); WHERE and ON conjuncts are pushed down that tree
//! and each join picks index nested loop (primary-key seek per outer row), hash, or nested
//! loop (see `plan.rs`). Subquery expressions run from inside expression evaluation through
//! a read-only `exec::Reader`; uncorrelated ones run once per statement. Window functions
//! run after grouping (`window.rs`); EXPLAIN \[ANALYZE\] prints the tree (`explain.rs`).
//!
//! Arrays are values of their own type ([`types::ArrayValue`], `integer[]` = oid 1007, ...):
//! any number of dimensions with lower bounds, PostgreSQL's text and binary forms, ordering
//! and key encoding, array columns (`array.rs`). `unnest` / `generate_subscripts` may stand
//! as select-list items (one row per element, sets side by side, as PostgreSQL 10+), and
//! aggregates take an ORDER BY (`array_agg(x ORDER BY y)`).
//!
//! Scalar functions (math, string, date/time: `floor`, `^`, `substring`, `to_char`,
//! `date_trunc`, `extract`, ...) are one library, `functions.rs`: the binder asks it for the
//! overload PostgreSQL would pick (argument coercions and result type), evaluation calls it
//! with the coerced values. Intervals and their calendar arithmetic are in [`interval`].
//! `tests/differential.rs` runs a query corpus on a live PostgreSQL 15 and on Gnomon and
//! compares names, type OIDs, text values and SQLSTATEs.
//!
//! ## Plan cache
//!
//! A [`Prepared`] query or DML statement keeps its bound plan (table definitions, typed
//! expressions, access path), tagged with the catalog version its binding snapshot saw.
//! The catalog version counts committed DDL transactions; a DDL commit raises an in-flight
//! counter before it commits and bumps the version before lowering the counter, so reading
//! (version, in-flight) before and after taking a snapshot tells exactly which version the
//! snapshot sees (or that it cannot be told, when a DDL commit overlapped: then nothing is
//! cached or reused). Executing a prepared statement compares two integers and runs the
//! plan; on a mismatch (DDL by anyone since, or the transaction's own uncommitted DDL) it is
//! re-bound with the parameter types fixed at prepare, as PostgreSQL re-plans, and a changed
//! result type fails with 0A000 as in PostgreSQL.
//!
//! ```text
//!  prepare ── parse ── bind ──► Prepared { ast, param types, columns, (version v, Arc<Plan>) }
//!  execute ── snapshot sees v? ──yes──► execute(plan)
//!                    └──no──► bind again ──► cache (if the version is known) ──► execute
//! ```
//!
//! ## Deliberately left out (v1)
//!
//! LATERAL, window frames other than the default, named windows, correlated references
//! from a subquery into an enclosing query's grouped rows, cost-based join ordering (joins
//! run in the written order; no table statistics), views, MATCH FULL and DEFERRABLE foreign
//! keys (the others: `foreign_key.rs`), ON CONFLICT ...
//! WHERE index_predicate, MERGE ... WHEN NOT MATCHED BY SOURCE and MERGE ... RETURNING
//! (PostgreSQL 17), table locks around DDL (see `ddl.rs`), ADD COLUMN ... GENERATED ALWAYS
//! AS (expr) STORED (CREATE TABLE has them; their expressions are not checked for
//! immutability), separate namespaces per
//! schema (CREATE SCHEMA records a name; tables are found by their last name part; databases
//! do have their own namespaces, see "Databases"), most of
//! pg_catalog (what psql 15's `\d`, `\dt`, `\d TABLE`, `\d+ TABLE`, `\di`, `\l`, `\dn`, `\du`
//! and SQLAlchemy's has_table read is served, see `pg_catalog.rs` / `catalog_fns.rs`; not
//! pg_proc, pg_operator, sizes, comments, ORM reflection of enums/domains), time types,
//! array slices and element assignment (`a[1:2]`, `SET a[1] = x`), array operators and
//! functions beyond comparison, `= ANY`, subscripts, `array_length` / `array_upper` /
//! `array_lower` / `array_ndims` / `cardinality` / `array_to_string` / `unnest`, `||` /
//! `array_cat` / `array_append` / `array_prepend`, `@>` / `<@` / `&&` (no `array_position`,
//! `array_remove`, GIN indexes); the catalog views' array columns are their text form typed `text`
//! (see `catalog_fns.rs`), non-UTC time zones (TimeZone may be SET but output stays UTC), locale collations (text compares bytewise, like `C`),
//! numeric beyond 28 significant digits and numeric NaN, and extra_float_digits < 1 output.
//! Results are materialised in memory (no streaming portals). SET is not rolled back with
//! its transaction.

pub(crate) mod array;
pub mod audit;
pub mod catalog;
pub(crate) mod catalog_fns;
mod clock_functions;
pub(crate) mod ddl;
pub mod encoding;
pub mod error;
pub(crate) mod exec;
pub(crate) mod explain;
pub(crate) mod expr;
pub(crate) mod foreign_key;
pub(crate) mod functions;
pub(crate) mod index;
pub mod interval;
pub(crate) mod locking;
pub mod partition;
pub(crate) mod pg_catalog;
pub(crate) mod plan;
pub mod privileges;
pub(crate) mod query;
pub mod roles;
pub mod scram;
pub(crate) mod security;
pub mod sequence;
pub mod session;
pub mod storage;
pub(crate) mod system;
pub mod types;
pub(crate) mod upsert;
pub(crate) mod window;

pub use audit::{Audit, AuditEvent, AuditStats};
pub use error::{Notice, SqlError, SqlResult, SqlState};
pub use query::ExecStats;
pub use roles::{RoleDef, BOOTSTRAP_SUPERUSER};
pub use session::{Column, Outcome, Prepared, Session, SqlEngine, TxnStatus, VERSION_STRING};
pub use types::{ArrayDim, ArrayValue, DataType, Value};
