//! Schema statements: CREATE TABLE (constraints, SERIAL, identity), ALTER TABLE, CREATE /
//! DROP INDEX, CREATE / DROP SEQUENCE.
//!
//! Every change is a new [`TableDef`] written under a fresh definition id in the statement's
//! transaction ([`Catalog::replace_table`]), so DDL commits and rolls back like data, and
//! other transactions keep using the definition their snapshot sees. Statements that change
//! what is stored (ADD COLUMN with a default, DROP COLUMN, a new index or constraint) rewrite
//! or check the rows in the same transaction.
//!
//! NB: DDL takes no table lock yet (the hierarchical lock manager is another piece of work):
//! a transaction that bound a statement against an older definition may still write rows of
//! the old shape while an ALTER runs. Rows are decoded positionally and narrower rows read
//! their missing columns as NULL, so this cannot corrupt, but such a write can miss a new
//! constraint.

use std::sync::Arc;

use bytes::Bytes;
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{decode_table_row, CheckDef, ColumnDef, Identity, IndexDef, TableDef};
use crate::encoding::{encode_row, DatabaseId, Key, KeyPrefix, TableId};
use crate::error::{Notice, SqlError, SqlResult, SqlState};
use crate::expr::cast;
use crate::expr::EvalContext;
use crate::query::{convert_type, ident_name, object_name, Binder, SessionInfo};
use crate::sequence::{self, SequenceDef};
use crate::session::{ActiveTxn, Interrupt, SqlEngine};
use crate::storage::Transaction;
use crate::types::{DataType, Value};

fn undefined_column(table: &str, col: &str) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_COLUMN,
        format!("column \"{col}\" of relation \"{table}\" does not exist"),
    )
}

fn index_column_name(ic: &ast::IndexColumn) -> SqlResult<String> {
    match &ic.column.expr {
        ast::Expr::Identifier(id) => Ok(ident_name(id)),
        other => Err(SqlError::unsupported(format!("index expression {other}"))),
    }
}

fn column_positions(columns: &[ColumnDef], table: &str, names: &[String]) -> SqlResult<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            columns.iter().position(|c| &c.name == n).ok_or_else(|| {
                SqlError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{n}\" named in key does not exist"),
                )
                .with_detail(format!("relation \"{table}\""))
            })
        })
        .collect()
}

/// True when some relation-like object (table, index, sequence) is called `name`.
pub(crate) fn relation_exists(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    name: &str,
) -> SqlResult<bool> {
    Ok(engine.catalog.lookup(txn, name)?.is_some()
        || txn
            .get(&Key::IndexName(txn.database(), name.to_string()).encode())?
            .is_some()
        || sequence::lookup(txn, name)?.is_some())
}

/// The check before creating relation `name`: `Ok(false)` when the name is free,
/// `Ok(true)` (with PostgreSQL's 42P07 NOTICE) when it is taken and `IF NOT EXISTS` says to
/// skip, 42P07 otherwise.
pub(crate) fn relation_taken(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    name: &str,
    if_not_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<bool> {
    if !relation_exists(engine, txn, name)? {
        return Ok(false);
    }
    if if_not_exists {
        notices.push(Notice {
            code: "42P07",
            message: format!("relation \"{name}\" already exists, skipping"),
            severity: "NOTICE",
        });
        return Ok(true);
    }
    Err(SqlError::new(
        SqlState::DUPLICATE_TABLE,
        format!("relation \"{name}\" already exists"),
    ))
}

/// PostgreSQL's choice of a free name `<base>`, `<base>1`, `<base>2`, ... (63-byte limit
/// ignored).
pub(crate) fn free_name(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    base: &str,
) -> SqlResult<String> {
    if !relation_exists(engine, txn, base)? {
        return Ok(base.to_string());
    }
    for i in 1.. {
        let n = format!("{base}{i}");
        if !relation_exists(engine, txn, &n)? {
            return Ok(n);
        }
    }
    Err(SqlError::internal("no free name"))
}

/// A column's SERIAL type: the integer type and whether it is one.
fn serial_type(t: &ast::DataType) -> Option<DataType> {
    let ast::DataType::Custom(name, mods) = t else {
        return None;
    };
    if !mods.is_empty() {
        return None;
    }
    match object_name(name).ok()?.as_str() {
        "serial" | "serial4" => Some(DataType::Int4),
        "bigserial" | "serial8" => Some(DataType::Int8),
        "smallserial" | "serial2" => Some(DataType::Int2),
        _ => None,
    }
}

/// Evaluates a constant expression of a sequence option.
fn option_int(e: &ast::Expr) -> SqlResult<i64> {
    let text = e.to_string();
    text.trim()
        .parse::<i64>()
        .map_err(|_| SqlError::syntax(format!("invalid sequence option value {text}")))
}

/// Applies CREATE SEQUENCE / identity options to `def`.
fn apply_sequence_options(def: &mut SequenceDef, opts: &[ast::SequenceOptions]) -> SqlResult<()> {
    let mut min = None;
    let mut max = None;
    let mut start = None;
    for o in opts {
        match o {
            ast::SequenceOptions::DataType(t) => {
                let ty = convert_type(t)?;
                if !matches!(ty, DataType::Int2 | DataType::Int4 | DataType::Int8) {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "sequence type must be smallint, integer, or bigint",
                    ));
                }
                def.ty = ty;
                def.max = SequenceDef::with_defaults(0, String::new(), ty).max;
            }
            ast::SequenceOptions::IncrementBy(e, _) => {
                def.increment = option_int(e)?;
                if def.increment == 0 {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "INCREMENT must not be zero",
                    ));
                }
            }
            ast::SequenceOptions::MinValue(v) => min = Some(v.as_ref().map(option_int)),
            ast::SequenceOptions::MaxValue(v) => max = Some(v.as_ref().map(option_int)),
            ast::SequenceOptions::StartWith(e, _) => start = Some(option_int(e)?),
            ast::SequenceOptions::Cache(_) => {}
            // NB: sqlparser's flag is true for NO CYCLE.
            ast::SequenceOptions::Cycle(no) => def.cycle = !*no,
            ast::SequenceOptions::OwnedBy(_) => {}
        }
    }
    let type_max = SequenceDef::with_defaults(0, String::new(), def.ty).max;
    if def.increment < 0 {
        def.min = -type_max - 1;
        def.max = -1;
    }
    if let Some(m) = min {
        if let Some(v) = m.transpose()? {
            def.min = v;
        }
    }
    if let Some(m) = max {
        if let Some(v) = m.transpose()? {
            def.max = v;
        }
    }
    def.start = match start {
        Some(s) => s,
        None if def.increment > 0 => def.min,
        None => def.max,
    };
    if def.min >= def.max {
        return Err(SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!(
                "MINVALUE ({}) must be less than MAXVALUE ({})",
                def.min, def.max
            ),
        ));
    }
    if def.start < def.min || def.start > def.max {
        return Err(SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!(
                "START value ({}) cannot be {} than {}VALUE ({})",
                def.start,
                if def.start < def.min {
                    "less"
                } else {
                    "greater"
                },
                if def.start < def.min { "MIN" } else { "MAX" },
                if def.start < def.min {
                    def.min
                } else {
                    def.max
                }
            ),
        ));
    }
    Ok(())
}

/// CREATE SEQUENCE.
pub(crate) fn create_sequence(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    name: &ast::ObjectName,
    if_not_exists: bool,
    opts: &[ast::SequenceOptions],
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    let name = object_name(name)?;
    if relation_taken(engine, &t.txn, &name, if_not_exists, notices)? {
        return Ok(());
    }
    let mut def = SequenceDef::with_defaults(engine.catalog.allocate_id(), name, DataType::Int8);
    apply_sequence_options(&mut def, opts)?;
    sequence::create(&mut t.txn, &def)?;
    t.ddl = true;
    Ok(())
}

/// DROP SEQUENCE.
pub(crate) fn drop_sequences(
    t: &mut ActiveTxn,
    names: &[ast::ObjectName],
    if_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    for n in names {
        let name = object_name(n)?;
        match sequence::lookup(&t.txn, &name)? {
            Some(_) => sequence::drop(&mut t.txn, &name)?,
            None if if_exists => notices.push(Notice {
                code: "00000",
                message: format!("sequence \"{name}\" does not exist, skipping"),
                severity: "NOTICE",
            }),
            None => {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("sequence \"{name}\" does not exist"),
                ))
            }
        }
    }
    t.ddl = true;
    Ok(())
}

/// Drops the sequences owned by a dropped table's columns (SERIAL / identity).
pub(crate) fn drop_owned_sequences(t: &mut ActiveTxn, table: &TableDef) -> SqlResult<()> {
    for s in sequence::all(&t.txn)? {
        if s.owned_by.as_ref().is_some_and(|(id, _)| *id == table.id.0) {
            sequence::drop(&mut t.txn, &s.name)?;
        }
    }
    Ok(())
}

fn database_name(n: &ast::ObjectName) -> SqlResult<String> {
    match n.0.as_slice() {
        [ast::ObjectNamePart::Identifier(id)] => Ok(ident_name(id)),
        _ => Err(SqlError::syntax("a database name is one identifier")),
    }
}

/// CREATE DATABASE: a new, empty namespace with a fresh OID. Written in a transaction of its
/// own: CREATE and DROP DATABASE cannot run inside a transaction block (nor in a simple-query
/// message of several statements) and are not rolled back, as in PostgreSQL.
pub(crate) fn create_database(
    engine: &SqlEngine,
    t: &ActiveTxn,
    name: &ast::ObjectName,
    if_not_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    if t.in_transaction_block() {
        return Err(SqlError::new(
            SqlState::ACTIVE_SQL_TRANSACTION,
            "CREATE DATABASE cannot run inside a transaction block",
        ));
    }
    let name = database_name(name)?;
    let mut dbs = engine
        .databases
        .write()
        .map_err(|_| SqlError::internal("database list poisoned"))?;
    if dbs.contains_key(&name) {
        if if_not_exists {
            notices.push(Notice {
                code: "42P04",
                message: format!("database \"{name}\" already exists, skipping"),
                severity: "NOTICE",
            });
            return Ok(());
        }
        return Err(SqlError::new(
            SqlState::DUPLICATE_DATABASE,
            format!("database \"{name}\" already exists"),
        ));
    }
    let oid = DatabaseId(engine.catalog.allocate_id());
    let mut txn = ActiveTxn::engine_db(engine).begin(gnomon_mvcc::Isolation::ReadCommitted);
    Transaction::put(
        &mut txn,
        &Key::Database(name.clone()).encode(),
        crate::session::encode_database_oid(oid),
    )?;
    txn.commit()?;
    dbs.insert(name, oid);
    Ok(())
}

/// How long DROP DATABASE waits for other sessions of the database to end (PostgreSQL's
/// CountOtherDBBackends: 50 tries 100 ms apart).
const DROP_DATABASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// PostgreSQL's errdetail_busy_db.
fn busy_database_detail(sessions: usize, prepared: usize) -> String {
    match (sessions, prepared) {
        (s, p) if s > 0 && p > 0 => {
            format!("There are {s} other session(s) and {p} prepared transaction(s) using the database.")
        }
        (1, _) => "There is 1 other session using the database.".to_string(),
        (s, 0) => format!("There are {s} other sessions using the database."),
        (_, 1) => "There is 1 prepared transaction using the database.".to_string(),
        (_, p) => format!("There are {p} prepared transactions using the database."),
    }
}

/// DROP DATABASE [IF EXISTS]: removes the database and, in one transaction of its own, every
/// object named in it with its rows and index entries (deleted: the space is reclaimed by GC
/// like any deleted row's). The current database cannot be dropped (55006); one that other
/// sessions are connected to, or that prepared transactions belong to, is waited for up to
/// 5 s, then refused (55006), as in PostgreSQL.
pub(crate) fn drop_databases(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &ActiveTxn,
    names: &[ast::ObjectName],
    if_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    if t.in_transaction_block() {
        return Err(SqlError::new(
            SqlState::ACTIVE_SQL_TRANSACTION,
            "DROP DATABASE cannot run inside a transaction block",
        ));
    }
    for n in names {
        let name = database_name(n)?;
        if !engine.database_exists(&name) {
            if if_exists {
                notices.push(Notice {
                    code: "00000",
                    message: format!("database \"{name}\" does not exist, skipping"),
                    severity: "NOTICE",
                });
                continue;
            }
            return Err(SqlError::new(
                SqlState::INVALID_CATALOG_NAME,
                format!("database \"{name}\" does not exist"),
            ));
        }
        if name == info.database {
            return Err(SqlError::new(
                SqlState::OBJECT_IN_USE,
                "cannot drop the currently open database",
            ));
        }
        let waited_until = std::time::Instant::now() + DROP_DATABASE_WAIT;
        loop {
            let mut dbs = engine
                .databases
                .write()
                .map_err(|_| SqlError::internal("database list poisoned"))?;
            let Some(&oid) = dbs.get(&name) else {
                // Dropped meanwhile by another session.
                return Err(SqlError::new(
                    SqlState::INVALID_CATALOG_NAME,
                    format!("database \"{name}\" does not exist"),
                ));
            };
            let sessions = engine
                .sessions
                .lock()
                .map(|open| open.get(&name).copied().unwrap_or(0))
                .unwrap_or(0);
            let prepared = ActiveTxn::engine_db(engine)
                .prepared_transactions()
                .iter()
                .filter(|p| p.database == name)
                .count();
            if sessions == 0 && prepared == 0 {
                // Under the write lock: no session can join the database meanwhile.
                drop_database_objects(engine, &name, oid)?;
                dbs.remove(&name);
                break;
            }
            drop(dbs);
            if std::time::Instant::now() >= waited_until {
                return Err(SqlError::new(
                    SqlState::OBJECT_IN_USE,
                    format!("database \"{name}\" is being accessed by other users"),
                )
                .with_detail(busy_database_detail(sessions, prepared)));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Deletes database `name` (OID `oid`) and everything named in it, in one transaction: its
/// tables' rows, index entries, definitions and ACLs, its sequences, index names and
/// schemas. Nobody is connected to it (the caller holds the database list's write lock).
fn drop_database_objects(engine: &SqlEngine, name: &str, oid: DatabaseId) -> SqlResult<()> {
    let mut txn = ActiveTxn::engine_db(engine).begin(gnomon_mvcc::Isolation::ReadCommitted);
    txn.set_namespace(oid.0);
    let mut dropped = Vec::new();
    let mut tables = Vec::new();
    for def in engine.catalog.all_tables(&txn)? {
        engine.catalog.drop_table(&mut txn, &def)?;
        Transaction::delete(&mut txn, &Key::TableAcl(def.id).encode())?;
        dropped.push(def.def_id);
        tables.push(def.id);
    }
    for prefix in [
        KeyPrefix::TableName(oid),
        KeyPrefix::IndexName(oid),
        KeyPrefix::Sequence(oid),
        KeyPrefix::Schema(oid),
    ] {
        for (k, _) in Transaction::scan(&txn, prefix.range(), false, None)? {
            Transaction::delete(&mut txn, &k)?;
        }
    }
    Transaction::delete(&mut txn, &Key::Database(name.to_string()).encode())?;
    let catalog = &engine.catalog;
    catalog.ddl_commit_begins();
    match txn.commit() {
        Ok(_) => {
            catalog.ddl_committed(&dropped);
            catalog.forget_tables(&tables);
            Ok(())
        }
        Err(e) => {
            catalog.ddl_commit_failed();
            Err(e.into())
        }
    }
}

fn schema_name(n: &ast::SchemaName) -> SqlResult<String> {
    match n {
        ast::SchemaName::Simple(n) | ast::SchemaName::NamedAuthorization(n, _) => database_name(n),
        ast::SchemaName::UnnamedAuthorization(id) => Ok(ident_name(id)),
    }
}

fn builtin_schema(name: &str) -> bool {
    matches!(name, "public" | "pg_catalog" | "information_schema")
}

/// CREATE SCHEMA [IF NOT EXISTS] (transactional). NB: a schema is a name only: tables are
/// still looked up by their last name part, whatever the qualifier (see the crate essay).
pub(crate) fn create_schema(
    t: &mut ActiveTxn,
    name: &ast::SchemaName,
    if_not_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    let name = schema_name(name)?;
    let key = Key::Schema(t.txn.database(), name.clone()).encode();
    if builtin_schema(&name) || t.txn.get(&key)?.is_some() {
        if if_not_exists {
            notices.push(Notice {
                code: "42P06",
                message: format!("schema \"{name}\" already exists, skipping"),
                severity: "NOTICE",
            });
            return Ok(());
        }
        return Err(SqlError::new(
            SqlState::DUPLICATE_SCHEMA,
            format!("schema \"{name}\" already exists"),
        ));
    }
    Transaction::put(&mut t.txn, &key, Bytes::new())?;
    t.ddl = true;
    Ok(())
}

/// DROP SCHEMA [IF EXISTS].
pub(crate) fn drop_schemas(
    t: &mut ActiveTxn,
    names: &[ast::ObjectName],
    if_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    for n in names {
        let name = database_name(n)?;
        let key = Key::Schema(t.txn.database(), name.clone()).encode();
        if t.txn.get(&key)?.is_none() {
            if builtin_schema(&name) {
                return Err(SqlError::new(
                    SqlState::DEPENDENT_OBJECTS,
                    format!("cannot drop schema {name} because other objects depend on it"),
                ));
            }
            if if_exists {
                notices.push(Notice {
                    code: "00000",
                    message: format!("schema \"{name}\" does not exist, skipping"),
                    severity: "NOTICE",
                });
                continue;
            }
            return Err(SqlError::new(
                SqlState::INVALID_SCHEMA_NAME,
                format!("schema \"{name}\" does not exist"),
            ));
        }
        Transaction::delete(&mut t.txn, &key)?;
        t.ddl = true;
    }
    Ok(())
}

/// What a column definition asks for beyond its [`ColumnDef`].
struct ColumnExtras {
    /// A sequence to create and own (SERIAL, identity): its options.
    sequence: Option<Vec<ast::SequenceOptions>>,
    unique: Option<Option<String>>,
    checks: Vec<(Option<String>, String)>,
    primary: bool,
    /// REFERENCES clauses: (constraint name, clause).
    foreign_keys: Vec<(Option<String>, ast::ForeignKeyConstraint)>,
}

/// Converts one column definition of table `table` (shared by CREATE TABLE and ADD COLUMN).
fn column_def(c: &ast::ColumnDef, table: &str) -> SqlResult<(ColumnDef, ColumnExtras)> {
    let cname = ident_name(&c.name);
    let serial = serial_type(&c.data_type);
    let ty = match serial {
        Some(t) => t,
        None => convert_type(&c.data_type)?,
    };
    let mut def = ColumnDef {
        name: cname,
        ty,
        not_null: serial.is_some(),
        default: None,
        identity: Identity::None,
        generated: None,
    };
    let mut extras = ColumnExtras {
        sequence: serial.map(|_| vec![]),
        unique: None,
        checks: vec![],
        primary: false,
        foreign_keys: vec![],
    };
    for opt in &c.options {
        let cname = opt.name.as_ref().map(ident_name);
        match &opt.option {
            ast::ColumnOption::NotNull => def.not_null = true,
            ast::ColumnOption::Null => {}
            ast::ColumnOption::Default(e) => def.default = Some(e.to_string()),
            ast::ColumnOption::PrimaryKey(_) => {
                extras.primary = true;
                def.not_null = true;
            }
            ast::ColumnOption::Unique(_) => extras.unique = Some(cname),
            ast::ColumnOption::ForeignKey(fk) => extras.foreign_keys.push((
                cname.or_else(|| fk.name.as_ref().map(ident_name)),
                fk.clone(),
            )),
            ast::ColumnOption::Check(ck) => extras.checks.push((
                cname.or_else(|| ck.name.as_ref().map(ident_name)),
                ck.expr.to_string(),
            )),
            ast::ColumnOption::Generated {
                generated_as: kind @ (ast::GeneratedAs::Always | ast::GeneratedAs::ByDefault),
                sequence_options,
                generation_expr: None,
                ..
            } => {
                def.identity = match kind {
                    ast::GeneratedAs::Always => Identity::Always,
                    _ => Identity::ByDefault,
                };
                if !matches!(ty, DataType::Int2 | DataType::Int4 | DataType::Int8) {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!(
                            "identity column type must be smallint, integer, or bigint ({})",
                            def.name
                        ),
                    ));
                }
                def.not_null = true;
                extras.sequence = Some(sequence_options.clone().unwrap_or_default());
            }
            ast::ColumnOption::Generated {
                generated_as: ast::GeneratedAs::ExpStored,
                generation_expr: Some(e),
                ..
            } => {
                if def.generated.is_some() {
                    return Err(SqlError::syntax(format!(
                        "multiple generation clauses specified for column \"{}\" of table \"{table}\"",
                        def.name
                    )));
                }
                def.generated = Some(e.to_string());
            }
            other => return Err(SqlError::unsupported(format!("column constraint {other}"))),
        }
    }
    if def.generated.is_some() {
        if def.default.is_some() {
            return Err(SqlError::syntax(format!(
                "both default and generation expression specified for column \"{}\" of table \"{table}\"",
                def.name
            )));
        }
        if def.identity != Identity::None || serial.is_some() {
            return Err(SqlError::syntax(format!(
                "both identity and generation expression specified for column \"{}\" of table \"{table}\"",
                def.name
            )));
        }
    }
    if extras.sequence.is_some() && def.default.is_some() {
        return Err(SqlError::syntax(format!(
            "multiple default values specified for column \"{}\"",
            def.name
        )));
    }
    Ok((def, extras))
}

/// PostgreSQL's default constraint and index names: `<table>_<cols>_<suffix>`.
pub(crate) fn default_name(table: &str, cols: &[&str], suffix: &str) -> String {
    let mut n = table.to_string();
    for c in cols {
        n.push('_');
        n.push_str(c);
    }
    n.push('_');
    n.push_str(suffix);
    n
}

/// CREATE TABLE with column and table constraints (PRIMARY KEY, UNIQUE, CHECK, NOT NULL,
/// DEFAULT) and SERIAL / identity columns.
pub(crate) fn create_table(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &mut ActiveTxn,
    ct: &ast::CreateTable,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE AS / LIKE"));
    }
    if ct.partition_of.is_some() {
        return crate::partition::create_partition(engine, info, t, ct, notices);
    }
    if ct.temporary {
        return Err(SqlError::unsupported("temporary tables"));
    }
    let name = object_name(&ct.name)?;
    if relation_taken(engine, &t.txn, &name, ct.if_not_exists, notices)? {
        return Ok(());
    }
    if let ast::CreateTableOptions::With(opts) = &ct.table_options {
        for o in opts {
            if let ast::SqlOption::KeyValue { key, .. } = o {
                let k = object_name(key)?;
                if k != "fillfactor" {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("unrecognized parameter \"{k}\""),
                    ));
                }
            }
        }
    }
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut primary_key: Option<Vec<usize>> = None;
    let multiple_pk = || {
        SqlError::new(
            SqlState::INVALID_TABLE_DEFINITION,
            format!("multiple primary keys for table \"{name}\" are not allowed"),
        )
    };
    // (constraint name, columns) of UNIQUE constraints; (name, expr text) of CHECKs.
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    let mut checks: Vec<(Option<String>, String, Option<usize>)> = Vec::new();
    let mut sequences: Vec<(usize, Vec<ast::SequenceOptions>)> = Vec::new();
    // (constraint name, referencing columns, clause) of FOREIGN KEYs.
    let mut foreign_keys: Vec<(Option<String>, Vec<String>, ast::ForeignKeyConstraint)> =
        Vec::new();
    for c in &ct.columns {
        let (def, extras) = column_def(c, &name)?;
        if columns.iter().any(|x| x.name == def.name) {
            return Err(SqlError::new(
                SqlState::DUPLICATE_COLUMN,
                format!("column \"{}\" specified more than once", def.name),
            ));
        }
        let i = columns.len();
        if extras.primary {
            if primary_key.is_some() {
                return Err(multiple_pk());
            }
            primary_key = Some(vec![i]);
        }
        if let Some(n) = extras.unique {
            uniques.push((n, vec![i]));
        }
        for (n, e) in extras.checks {
            checks.push((n, e, Some(i)));
        }
        if let Some(opts) = extras.sequence {
            sequences.push((i, opts));
        }
        for (n, fk) in extras.foreign_keys {
            foreign_keys.push((n, vec![def.name.clone()], fk));
        }
        columns.push(def);
    }
    for con in &ct.constraints {
        match con {
            ast::TableConstraint::PrimaryKey(pk) => {
                if primary_key.is_some() {
                    return Err(multiple_pk());
                }
                let names = pk
                    .columns
                    .iter()
                    .map(index_column_name)
                    .collect::<SqlResult<Vec<_>>>()?;
                let idx = column_positions(&columns, &name, &names)?;
                for &i in &idx {
                    columns[i].not_null = true;
                }
                primary_key = Some(idx);
            }
            ast::TableConstraint::Unique(u) => {
                let names = u
                    .columns
                    .iter()
                    .map(index_column_name)
                    .collect::<SqlResult<Vec<_>>>()?;
                let idx = column_positions(&columns, &name, &names)?;
                uniques.push((u.name.as_ref().map(ident_name), idx));
            }
            ast::TableConstraint::Check(ck) => {
                checks.push((ck.name.as_ref().map(ident_name), ck.expr.to_string(), None))
            }
            ast::TableConstraint::ForeignKey(fk) => foreign_keys.push((
                fk.name.as_ref().map(ident_name),
                crate::foreign_key::clause_columns(fk),
                fk.clone(),
            )),
            other => return Err(SqlError::unsupported(format!("table constraint {other}"))),
        }
    }
    let partition_key = match &ct.partition_by {
        Some(e) => {
            let key = crate::partition::key_from_ast(e, &columns)?;
            if let Some(pk) = &primary_key {
                crate::partition::check_unique_covers_key(&name, &columns, &key, pk, true)?;
            }
            for (_, cols) in &uniques {
                crate::partition::check_unique_covers_key(&name, &columns, &key, cols, false)?;
            }
            Some(key)
        }
        None => None,
    };
    // Owned sequences: `<table>_<column>_seq`, default nextval of it.
    let mut seq_defs = Vec::new();
    for (i, opts) in &sequences {
        let seq_name = free_name(
            engine,
            &t.txn,
            &default_name(&name, &[&columns[*i].name], "seq"),
        )?;
        let mut sd = SequenceDef::with_defaults(
            engine.catalog.allocate_id(),
            seq_name.clone(),
            columns[*i].ty,
        );
        apply_sequence_options(&mut sd, opts)?;
        columns[*i].default = Some(format!("nextval('{seq_name}'::regclass)"));
        seq_defs.push((sd, *i));
    }
    for (sd, _) in &seq_defs {
        sequence::create(&mut t.txn, sd)?;
    }
    // Defaults must bind and be assignable to their column.
    {
        let mut binder = Binder::new(&engine.catalog, &t.txn, info, vec![]);
        for c in &columns {
            if let Some(d) = &c.default {
                binder.bind_default(d, c.ty, &c.name)?;
            }
        }
    }
    let def = engine.catalog.create_table(
        &mut t.txn,
        name.clone(),
        columns,
        primary_key.clone().unwrap_or_default(),
    )?;
    // Generated columns' expressions must bind over the table's other columns.
    {
        let mut binder = Binder::new(&engine.catalog, &t.txn, info, vec![]);
        for (i, c) in def.columns.iter().enumerate() {
            if let Some(g) = &c.generated {
                binder.bind_generated(g, &def, i)?;
            }
        }
    }
    for (mut sd, i) in seq_defs {
        sd.owned_by = Some((def.id.0, def.columns[i].name.clone()));
        sequence::create(&mut t.txn, &sd)?;
    }
    let mut new = (*def).clone();
    for (cname, e, col) in checks {
        let cname = match cname {
            Some(n) => n,
            None => {
                let cols: Vec<&str> = col
                    .map(|i| def.columns[i].name.as_str())
                    .into_iter()
                    .collect();
                let mut n = default_name(&name, &cols, "check");
                let mut k = 1;
                while new.checks.iter().any(|c| c.name == n) {
                    n = format!("{}{k}", default_name(&name, &cols, "check"));
                    k += 1;
                }
                n
            }
        };
        new.checks.push(CheckDef {
            name: cname,
            expr: e,
        });
    }
    for (cname, cols) in uniques {
        if primary_key.as_ref() == Some(&cols) {
            continue; // PostgreSQL also keeps one index when UNIQUE repeats the key.
        }
        let names: Vec<&str> = cols.iter().map(|&i| def.columns[i].name.as_str()).collect();
        let iname = match cname {
            Some(n) => n,
            None => free_name(engine, &t.txn, &default_name(&name, &names, "key"))?,
        };
        add_index_name(engine, t, &iname, &new)?;
        new.indexes.push(IndexDef {
            id: engine.catalog.allocate_id(),
            name: iname,
            columns: cols,
            unique: true,
            constraint: true,
        });
    }
    if !new.checks.is_empty() {
        // CHECK expressions must bind against the table.
        crate::query::bind_checks(&engine.catalog, &t.txn, &new)?;
    }
    new.partitioning.key = partition_key;
    for (cname, cols, clause) in foreign_keys {
        let ref_name = crate::foreign_key::clause_table(&clause)?;
        let fk = if ref_name == name {
            let fk = crate::foreign_key::define(&new, &new, &clause, &cols, cname)?;
            if !new.referenced_by.contains(&name) {
                new.referenced_by.push(name.clone());
            }
            fk
        } else {
            let parent = engine.catalog.require(&t.txn, &ref_name)?;
            let fk = crate::foreign_key::define(&new, &parent, &clause, &cols, cname)?;
            add_referencing(engine, t, &parent, &name)?;
            fk
        };
        new.foreign_keys.push(fk);
    }
    if new != *def {
        engine.catalog.write_def(&mut t.txn, &new)?;
    }
    t.ddl = true;
    Ok(())
}

/// Claims an index name (42P07 if a relation already has it).
pub(crate) fn add_index_name(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    name: &str,
    table: &TableDef,
) -> SqlResult<()> {
    if relation_exists(engine, &t.txn, name)? {
        return Err(SqlError::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists"),
        ));
    }
    let key = Key::IndexName(t.txn.database(), name.to_string()).encode();
    Transaction::put(
        &mut t.txn,
        &key,
        Bytes::copy_from_slice(&table.id.0.to_be_bytes()),
    )
}

/// CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (cols).
pub(crate) fn create_index(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    ci: &ast::CreateIndex,
    interrupt: &Interrupt,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    if ci.predicate.is_some() || !ci.include.is_empty() {
        return Err(SqlError::unsupported("partial indexes and INCLUDE"));
    }
    let tname = object_name(&ci.table_name)?;
    let table = engine.catalog.require(&t.txn, &tname)?;
    crate::locking::lock_for_ddl(&mut t.txn, &table, gnomon_mvcc::TableMode::Share)?;
    let names = ci
        .columns
        .iter()
        .map(index_column_name)
        .collect::<SqlResult<Vec<_>>>()?;
    let mut cols = Vec::with_capacity(names.len());
    for n in &names {
        cols.push(table.column_index(n).ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{n}\" does not exist"),
            )
        })?);
    }
    let iname = match &ci.name {
        Some(n) => {
            let n = object_name(n)?;
            if relation_taken(engine, &t.txn, &n, ci.if_not_exists, notices)? {
                return Ok(());
            }
            n
        }
        None => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            free_name(engine, &t.txn, &default_name(&tname, &refs, "idx"))?
        }
    };
    if let Some(key) = &table.partitioning.key {
        if ci.unique {
            crate::partition::check_unique_covers_key(
                &table.name,
                &table.columns,
                key,
                &cols,
                false,
            )?;
        }
    }
    add_index_name(engine, t, &iname, &table)?;
    let ix = IndexDef {
        id: engine.catalog.allocate_id(),
        name: iname,
        columns: cols,
        unique: ci.unique,
        constraint: false,
    };
    if table.partitioning.key.is_some() {
        // A partitioned table's index is one index per partition (and on later ones).
        crate::partition::index_partitions(engine, t, &table, &ix, interrupt)?;
    }
    crate::index::build(&mut t.txn, &table, &ix, interrupt)?;
    let mut new = (*table).clone();
    new.indexes.push(ix);
    replace(engine, t, &table, new)?;
    Ok(())
}

fn replace(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    old: &TableDef,
    new: TableDef,
) -> SqlResult<Arc<TableDef>> {
    let def = engine.catalog.replace_table(&mut t.txn, old, new)?;
    t.dropped.push(old.def_id);
    t.ddl = true;
    Ok(def)
}

/// Records in `parent`'s definition that table `child` references it (locking it SHARE ROW
/// EXCLUSIVE, as PostgreSQL does for a new foreign key).
fn add_referencing(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    parent: &Arc<TableDef>,
    child: &str,
) -> SqlResult<()> {
    crate::locking::lock_for_ddl(
        &mut t.txn,
        parent,
        gnomon_mvcc::TableMode::ShareRowExclusive,
    )?;
    if parent.referenced_by.iter().any(|c| c == child) {
        return Ok(());
    }
    let mut new = (**parent).clone();
    new.referenced_by.push(child.to_string());
    replace(engine, t, parent, new)?;
    Ok(())
}

/// Rewrites the definition of table `name` (another table than the one being altered)
/// with `edit`, if it exists.
fn edit_other(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    name: &str,
    edit: &dyn Fn(&mut TableDef),
) -> SqlResult<()> {
    let Some(old) = engine.catalog.lookup(&t.txn, name)? else {
        return Ok(());
    };
    let mut new = (*old).clone();
    edit(&mut new);
    if new != *old {
        replace(engine, t, &old, new)?;
    }
    Ok(())
}

/// After `child` (the altered definition `new`) lost foreign keys: tables it no longer
/// references forget it.
fn forget_unreferenced(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    old: &TableDef,
    new: &mut TableDef,
) -> SqlResult<()> {
    for fk in &old.foreign_keys {
        if new.foreign_keys.iter().any(|f| f.ref_table == fk.ref_table) {
            continue;
        }
        if fk.ref_table == new.name {
            new.referenced_by.retain(|c| *c != old.name);
        } else {
            let child = old.name.clone();
            edit_other(engine, t, &fk.ref_table, &|p| {
                p.referenced_by.retain(|c| *c != child)
            })?;
        }
    }
    Ok(())
}

/// DROP TABLE's foreign-key work before `defs` are dropped: refuses (2BP01) when a table
/// not being dropped references one of them, unless CASCADE, which drops those foreign keys
/// (with a NOTICE each); tables the dropped ones referenced forget them.
pub(crate) fn drop_table_references(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    defs: &[Arc<TableDef>],
    cascade: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    let dropping: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    for def in defs {
        let deps = crate::foreign_key::dependents(&engine.catalog, &t.txn, def, &dropping)?;
        if deps.is_empty() {
            continue;
        }
        if !cascade {
            let lines: Vec<String> = deps
                .iter()
                .map(|(c, fk)| {
                    format!(
                        "constraint {fk} on table {} depends on table {}",
                        c.name, def.name
                    )
                })
                .collect();
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS,
                format!(
                    "cannot drop table {} because other objects depend on it",
                    def.name
                ),
            )
            .with_detail(lines.join("\n"))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        for (child, fk) in deps {
            notices.push(Notice {
                code: "00000",
                message: format!("drop cascades to constraint {fk} on table {}", child.name),
                severity: "NOTICE",
            });
            let parent = def.name.clone();
            edit_other(engine, t, &child.name, &|c| {
                c.foreign_keys.retain(|f| f.ref_table != parent)
            })?;
        }
    }
    for def in defs {
        for fk in &def.foreign_keys {
            if dropping.contains(&fk.ref_table) {
                continue;
            }
            let child = def.name.clone();
            edit_other(engine, t, &fk.ref_table, &|p| {
                p.referenced_by.retain(|c| *c != child)
            })?;
        }
    }
    Ok(())
}

/// TRUNCATE refuses (0A000) a table referenced from a table not truncated with it.
pub(crate) fn truncate_references(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    defs: &[Arc<TableDef>],
) -> SqlResult<()> {
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    for def in defs {
        if let Some((child, _)) =
            crate::foreign_key::dependents(&engine.catalog, txn, def, &names)?.first()
        {
            return Err(SqlError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "cannot truncate a table referenced in a foreign key constraint",
            )
            .with_detail(format!(
                "Table \"{}\" references \"{}\".",
                child.name, def.name
            ))
            .with_hint(format!(
                "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                child.name
            )));
        }
    }
    Ok(())
}

/// The table an index name belongs to.
fn index_table(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    name: &str,
) -> SqlResult<Option<Arc<TableDef>>> {
    let Some(idb) = txn.get(&Key::IndexName(txn.database(), name.to_string()).encode())? else {
        return Ok(None);
    };
    let id = TableId(u32::from_be_bytes(
        idb.as_ref()
            .try_into()
            .map_err(|_| SqlError::corrupt("bad index name entry"))?,
    ));
    Ok(engine
        .catalog
        .all_tables(txn)?
        .into_iter()
        .find(|d| d.id == id))
}

/// DROP INDEX.
pub(crate) fn drop_indexes(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    names: &[ast::ObjectName],
    if_exists: bool,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    for n in names {
        let name = object_name(n)?;
        let Some(table) = index_table(engine, &t.txn, &name)? else {
            if if_exists {
                notices.push(Notice {
                    code: "00000",
                    message: format!("index \"{name}\" does not exist, skipping"),
                    severity: "NOTICE",
                });
                continue;
            }
            return Err(SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("index \"{name}\" does not exist"),
            ));
        };
        let Some(pos) = table.indexes.iter().position(|i| i.name == name) else {
            return Err(SqlError::corrupt(format!("index \"{name}\" has no table")));
        };
        if table.indexes[pos].constraint {
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS,
                format!(
                    "cannot drop index {name} because constraint {name} on table {} requires it",
                    table.name
                ),
            )
            .with_hint(format!(
                "You can drop constraint {name} on table {} instead.",
                table.name
            )));
        }
        if let Some(parent_ix) =
            crate::partition::parent_index_of(engine, &t.txn, &table, &table.indexes[pos])?
        {
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS,
                format!("cannot drop index {name} because index {parent_ix} requires it"),
            )
            .with_hint(format!("You can drop index {parent_ix} instead.")));
        }
        if table.partitioning.key.is_some() {
            // The partitions' indexes standing for it go with it.
            let ix = table.indexes[pos].clone();
            for part in crate::partition::partitions_of(&engine.catalog, &t.txn, &table)? {
                crate::locking::lock_for_ddl(
                    &mut t.txn,
                    &part,
                    gnomon_mvcc::TableMode::AccessExclusive,
                )?;
                if let Some(p) = part
                    .indexes
                    .iter()
                    .position(|x| x.columns == ix.columns && x.unique == ix.unique)
                {
                    drop_index_at(engine, t, &part, p)?;
                }
            }
        }
        drop_index_at(engine, t, &table, pos)?;
    }
    Ok(())
}

fn drop_index_at(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    table: &TableDef,
    pos: usize,
) -> SqlResult<Arc<TableDef>> {
    let ix = &table.indexes[pos];
    if let Some((child, fk)) =
        crate::foreign_key::index_in_use(&engine.catalog, &t.txn, table, pos)?
    {
        let what = match ix.constraint {
            true => format!("constraint {} on table {}", ix.name, table.name),
            false => format!("index {}", ix.name),
        };
        return Err(SqlError::new(
            SqlState::DEPENDENT_OBJECTS,
            format!("cannot drop {what} because other objects depend on it"),
        )
        .with_detail(format!(
            "constraint {fk} on table {child} depends on index {}",
            ix.name
        ))
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    crate::index::clear(&mut t.txn, table, ix)?;
    t.txn
        .delete(&Key::IndexName(t.txn.database(), ix.name.clone()).encode())?;
    let mut new = table.clone();
    new.indexes.remove(pos);
    replace(engine, t, table, new)
}

/// Every stored row of `table` with its key.
fn stored_rows(txn: &dyn Transaction, table: &TableDef) -> SqlResult<Vec<(Vec<u8>, Vec<Value>)>> {
    txn.scan(KeyPrefix::Rows(table.id).range(), false, None)?
        .into_iter()
        .map(|(k, v)| Ok((k, decode_table_row(table, &v)?)))
        .collect()
}

/// Renames identifiers equal to `old` in an expression's text (CHECK constraints when a
/// column is renamed), keeping everything else as written.
fn rename_in_expr(text: &str, old: &str, new: &str) -> String {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize() else {
        return text.to_string();
    };
    let quoted = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            && !s.starts_with(|c: char| c.is_ascii_digit())
        {
            s.to_string()
        } else {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
    };
    tokens
        .into_iter()
        .map(|tok| match &tok {
            Token::Word(w) => {
                let name = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                if name == old {
                    quoted(new)
                } else {
                    tok.to_string()
                }
            }
            _ => tok.to_string(),
        })
        .collect()
}

/// Evaluates a column's DEFAULT for an existing row (ADD COLUMN ... DEFAULT).
fn default_value(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &ActiveTxn,
    col: &ColumnDef,
    sequences: &crate::sequence::SessionSequences,
) -> SqlResult<Value> {
    let Some(text) = &col.default else {
        return Ok(Value::Null);
    };
    let mut binder = Binder::new(&engine.catalog, &t.txn, info, vec![]);
    let e = binder.bind_default(text, col.ty, &col.name)?;
    let v = e.eval(
        &[],
        &EvalContext {
            params: &[],
            interrupt: None,
            times: Default::default(),
            sequences: Some(sequences),
            clocks: None,
            db: None,
            outer: None,
            runner: None,
        },
    )?;
    if v.is_null() {
        return Ok(v);
    }
    cast(v, &col.ty, false)
}

/// ALTER TABLE.
#[allow(clippy::too_many_arguments)]
pub(crate) fn alter_table(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &mut ActiveTxn,
    at: &ast::AlterTable,
    interrupt: &Interrupt,
    sequences: &crate::sequence::SessionSequences,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    let name = object_name(&at.name)?;
    let Some(mut def) = engine.catalog.lookup(&t.txn, &name)? else {
        if at.if_exists {
            notices.push(Notice {
                code: "00000",
                message: format!("relation \"{name}\" does not exist, skipping"),
                severity: "NOTICE",
            });
            return Ok(());
        }
        return Err(SqlError::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        ));
    };
    use ast::AlterTableOperation as Op;
    match at.operations.as_slice() {
        [Op::AttachPartitionOf {
            partition,
            for_values,
        }] => {
            return crate::partition::attach(
                engine, info, t, &def, partition, for_values, interrupt,
            )
        }
        [Op::DetachPartitionOf { partition, mode }] => {
            return crate::partition::detach(engine, t, &def, partition, *mode)
        }
        ops if ops.iter().any(|o| {
            matches!(
                o,
                Op::AttachPartitionOf { .. } | Op::DetachPartitionOf { .. }
            )
        }) =>
        {
            return Err(SqlError::syntax(
                "ATTACH / DETACH PARTITION must be the only action of an ALTER TABLE",
            ))
        }
        _ => {}
    }
    if def.partitioning.key.is_some() {
        if let [Op::AddConstraint {
            constraint: ast::TableConstraint::PrimaryKey(pk),
            ..
        }] = at.operations.as_slice()
        {
            let cols = pk
                .columns
                .iter()
                .map(index_column_name)
                .collect::<SqlResult<Vec<_>>>()?;
            return crate::partition::add_primary_key(engine, t, &def, &cols, interrupt);
        }
    }
    if !def.partitioning.is_empty() {
        return Err(SqlError::unsupported(
            "ALTER TABLE on a partitioned table or a partition",
        ));
    }
    crate::locking::lock_for_ddl(&mut t.txn, &def, gnomon_mvcc::TableMode::AccessExclusive)?;
    for op in &at.operations {
        interrupt.check()?;
        def = match op {
            Op::AddConstraint {
                constraint: ast::TableConstraint::PrimaryKey(pk),
                ..
            } => {
                let cols = pk
                    .columns
                    .iter()
                    .map(index_column_name)
                    .collect::<SqlResult<Vec<_>>>()?;
                add_primary_key(engine, t, &def, &cols, interrupt)?
            }
            Op::AddConstraint {
                constraint: ast::TableConstraint::Unique(u),
                ..
            } => {
                let names = u
                    .columns
                    .iter()
                    .map(index_column_name)
                    .collect::<SqlResult<Vec<_>>>()?;
                let cols = column_positions(&def.columns, &def.name, &names)?;
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let iname = match &u.name {
                    Some(n) => ident_name(n),
                    None => free_name(engine, &t.txn, &default_name(&def.name, &refs, "key"))?,
                };
                add_index_name(engine, t, &iname, &def)?;
                let ix = IndexDef {
                    id: engine.catalog.allocate_id(),
                    name: iname,
                    columns: cols,
                    unique: true,
                    constraint: true,
                };
                crate::index::build(&mut t.txn, &def, &ix, interrupt)?;
                let mut new = (*def).clone();
                new.indexes.push(ix);
                replace(engine, t, &def, new)?
            }
            Op::AddConstraint {
                constraint: ast::TableConstraint::ForeignKey(clause),
                ..
            } => {
                let cols = crate::foreign_key::clause_columns(clause);
                let ref_name = crate::foreign_key::clause_table(clause)?;
                let cname = clause.name.as_ref().map(ident_name);
                if let Some(n) = &cname {
                    if def.checks.iter().any(|c| &c.name == n)
                        || def.indexes.iter().any(|i| &i.name == n)
                        || def.foreign_keys.iter().any(|f| &f.name == n)
                    {
                        return Err(SqlError::new(
                            SqlState::DUPLICATE_OBJECT,
                            format!(
                                "constraint \"{n}\" for relation \"{}\" already exists",
                                def.name
                            ),
                        ));
                    }
                }
                let parent = if ref_name == def.name {
                    def.clone()
                } else {
                    engine.catalog.require(&t.txn, &ref_name)?
                };
                let fk = crate::foreign_key::define(&def, &parent, clause, &cols, cname)?;
                {
                    let mut stats = crate::query::ExecStats::default();
                    let mut ctx = crate::query::ExecContext {
                        txn: &mut t.txn,
                        catalog: &engine.catalog,
                        params: &[],
                        interrupt,
                        stats: &mut stats,
                        times: Default::default(),
                        sequences,
                    };
                    crate::foreign_key::validate(&mut ctx, &def, &fk)?;
                }
                let mut new = (*def).clone();
                new.foreign_keys.push(fk);
                if ref_name == def.name {
                    if !new.referenced_by.contains(&def.name) {
                        new.referenced_by.push(def.name.clone());
                    }
                } else {
                    add_referencing(engine, t, &parent, &def.name)?;
                }
                replace(engine, t, &def, new)?
            }
            Op::AddConstraint {
                constraint: ast::TableConstraint::Check(ck),
                ..
            } => {
                let cname = match &ck.name {
                    Some(n) => ident_name(n),
                    None => default_name(&def.name, &[], "check"),
                };
                if def.checks.iter().any(|c| c.name == cname)
                    || def.indexes.iter().any(|i| i.name == cname)
                {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_OBJECT,
                        format!(
                            "constraint \"{cname}\" for relation \"{}\" already exists",
                            def.name
                        ),
                    ));
                }
                let mut new = (*def).clone();
                new.checks.push(CheckDef {
                    name: cname.clone(),
                    expr: ck.expr.to_string(),
                });
                let bound = crate::query::bind_checks(&engine.catalog, &t.txn, &new)?;
                let Some(check) = bound.last() else {
                    return Err(SqlError::internal("check not bound"));
                };
                let ctx = EvalContext {
                    params: &[],
                    interrupt: Some(interrupt),
                    times: Default::default(),
                    sequences: None,
                    clocks: None,
                    db: None,
                    outer: None,
                    runner: None,
                };
                for (_, row) in stored_rows(&t.txn, &def)? {
                    interrupt.check()?;
                    if crate::expr::truth(&check.eval(&row, &ctx)?) == Some(false) {
                        return Err(SqlError::new(
                            SqlState::CHECK_VIOLATION,
                            format!(
                                "check constraint \"{cname}\" of relation \"{}\" is violated by some row",
                                def.name
                            ),
                        ));
                    }
                }
                replace(engine, t, &def, new)?
            }
            Op::DropConstraint {
                if_exists,
                name: cname,
                ..
            } => {
                let cname = ident_name(cname);
                if let Some(pos) = def.checks.iter().position(|c| c.name == cname) {
                    let mut new = (*def).clone();
                    new.checks.remove(pos);
                    replace(engine, t, &def, new)?
                } else if let Some(pos) = def.foreign_keys.iter().position(|f| f.name == cname) {
                    let mut new = (*def).clone();
                    new.foreign_keys.remove(pos);
                    forget_unreferenced(engine, t, &def, &mut new)?;
                    replace(engine, t, &def, new)?
                } else if let Some(pos) = def
                    .indexes
                    .iter()
                    .position(|i| i.name == cname && i.constraint)
                {
                    drop_index_at(engine, t, &def, pos)?
                } else if cname == def.pkey_name() && !def.primary_key.is_empty() {
                    return Err(SqlError::unsupported("dropping a primary key"));
                } else if *if_exists {
                    notices.push(Notice {
                        code: "00000",
                        message: format!(
                            "constraint \"{cname}\" of relation \"{}\" does not exist, skipping",
                            def.name
                        ),
                        severity: "NOTICE",
                    });
                    def
                } else {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{cname}\" of relation \"{}\" does not exist",
                            def.name
                        ),
                    ));
                }
            }
            Op::AddColumn {
                if_not_exists,
                column_def: cd,
                ..
            } => {
                let (mut col, extras) = column_def(cd, &def.name)?;
                if col.generated.is_some() {
                    return Err(SqlError::unsupported(
                        "ADD COLUMN ... GENERATED ALWAYS AS (...) STORED",
                    ));
                }
                if def.column_index(&col.name).is_some() {
                    if *if_not_exists {
                        notices.push(Notice {
                            code: "42701",
                            message: format!(
                                "column \"{}\" of relation \"{}\" already exists, skipping",
                                col.name, def.name
                            ),
                            severity: "NOTICE",
                        });
                        continue;
                    }
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!(
                            "column \"{}\" of relation \"{}\" already exists",
                            col.name, def.name
                        ),
                    ));
                }
                if !extras.foreign_keys.is_empty() {
                    return Err(SqlError::unsupported(
                        "ADD COLUMN with REFERENCES (add the constraint separately)",
                    ));
                }
                if extras.primary || extras.unique.is_some() {
                    return Err(SqlError::unsupported(
                        "ADD COLUMN with PRIMARY KEY or UNIQUE (add the constraint separately)",
                    ));
                }
                let mut new = (*def).clone();
                if let Some(opts) = extras.sequence {
                    let seq_name = free_name(
                        engine,
                        &t.txn,
                        &default_name(&def.name, &[&col.name], "seq"),
                    )?;
                    let mut sd = SequenceDef::with_defaults(
                        engine.catalog.allocate_id(),
                        seq_name.clone(),
                        col.ty,
                    );
                    apply_sequence_options(&mut sd, &opts)?;
                    sd.owned_by = Some((def.id.0, col.name.clone()));
                    sequence::create(&mut t.txn, &sd)?;
                    col.default = Some(format!("nextval('{seq_name}'::regclass)"));
                }
                for (n, e) in extras.checks {
                    let n = n.unwrap_or_else(|| default_name(&def.name, &[&col.name], "check"));
                    new.checks.push(CheckDef { name: n, expr: e });
                }
                new.columns.push(col.clone());
                let checks = if new.checks.len() > def.checks.len() {
                    crate::query::bind_checks(&engine.catalog, &t.txn, &new)?
                } else {
                    vec![]
                };
                // Existing rows get the default (evaluated per row, as PostgreSQL does for
                // volatile defaults), or NULL, which NOT NULL refuses.
                let rows = stored_rows(&t.txn, &def)?;
                let needs_rewrite = col.default.is_some();
                for (key, mut row) in rows {
                    interrupt.check()?;
                    let v = default_value(engine, info, t, &col, sequences)?;
                    if v.is_null() && col.not_null {
                        return Err(SqlError::new(
                            SqlState::NOT_NULL_VIOLATION,
                            format!(
                                "column \"{}\" of relation \"{}\" contains null values",
                                col.name, def.name
                            ),
                        ));
                    }
                    row.push(v);
                    if !checks.is_empty() {
                        let ctx = EvalContext {
                            params: &[],
                            interrupt: Some(interrupt),
                            times: Default::default(),
                            sequences: None,
                            clocks: None,
                            db: None,
                            outer: None,
                            runner: None,
                        };
                        crate::index::check_row(&new, &checks, &row, &|e, r| e.eval(r, &ctx))?;
                    }
                    if needs_rewrite {
                        t.txn.put(&key, Bytes::from(encode_row(&row)))?;
                    }
                }
                replace(engine, t, &def, new)?
            }
            Op::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                let mut cur = def;
                for cn in column_names {
                    let cname = ident_name(cn);
                    let Some(pos) = cur.column_index(&cname) else {
                        if *if_exists {
                            notices.push(Notice {
                                code: "00000",
                                message: format!(
                                    "column \"{cname}\" of relation \"{}\" does not exist, skipping",
                                    cur.name
                                ),
                                severity: "NOTICE",
                            });
                            continue;
                        }
                        return Err(undefined_column(&cur.name, &cname));
                    };
                    cur = drop_column(engine, t, &cur, pos, interrupt)?;
                }
                cur
            }
            Op::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let old = ident_name(old_column_name);
                let newn = ident_name(new_column_name);
                let pos = def
                    .column_index(&old)
                    .ok_or_else(|| undefined_column(&def.name, &old))?;
                if def.column_index(&newn).is_some() {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!(
                            "column \"{newn}\" of relation \"{}\" already exists",
                            def.name
                        ),
                    ));
                }
                let mut new = (*def).clone();
                new.columns[pos].name = newn.clone();
                for c in &mut new.checks {
                    c.expr = rename_in_expr(&c.expr, &old, &newn);
                }
                // Foreign keys referencing this table name the column.
                let table = def.name.clone();
                let rename = |c: &mut TableDef| {
                    for f in c.foreign_keys.iter_mut().filter(|f| f.ref_table == table) {
                        for rc in f.ref_columns.iter_mut().filter(|rc| **rc == old) {
                            *rc = newn.clone();
                        }
                    }
                };
                rename(&mut new);
                for child in def.referenced_by.iter().filter(|c| **c != def.name) {
                    edit_other(engine, t, child, &rename)?;
                }
                for s in sequence::all(&t.txn)? {
                    if s.owned_by.as_ref() == Some(&(def.id.0, old.clone())) {
                        let mut s2 = s.clone();
                        s2.owned_by = Some((def.id.0, newn.clone()));
                        sequence::create(&mut t.txn, &s2)?;
                    }
                }
                replace(engine, t, &def, new)?
            }
            Op::RenameTable { table_name } => {
                let (ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n)) =
                    table_name;
                let newn = object_name(n)?;
                if relation_exists(engine, &t.txn, &newn)? {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_TABLE,
                        format!("relation \"{newn}\" already exists"),
                    ));
                }
                let mut new = (*def).clone();
                new.name = newn.clone();
                // Both sides of foreign keys name the table.
                let old = def.name.clone();
                for f in new.foreign_keys.iter_mut().filter(|f| f.ref_table == old) {
                    f.ref_table = newn.clone();
                }
                for c in new.referenced_by.iter_mut().filter(|c| **c == old) {
                    *c = newn.clone();
                }
                for fk in def.foreign_keys.iter().filter(|f| f.ref_table != old) {
                    edit_other(engine, t, &fk.ref_table, &|p| {
                        for c in p.referenced_by.iter_mut().filter(|c| **c == old) {
                            *c = newn.clone();
                        }
                    })?;
                }
                for child in def.referenced_by.iter().filter(|c| **c != old) {
                    edit_other(engine, t, child, &|c| {
                        for f in c.foreign_keys.iter_mut().filter(|f| f.ref_table == old) {
                            f.ref_table = newn.clone();
                        }
                    })?;
                }
                replace(engine, t, &def, new)?
            }
            Op::RenameConstraint { old_name, new_name } => {
                let old = ident_name(old_name);
                let newn = ident_name(new_name);
                let mut new = (*def).clone();
                if let Some(c) = new.checks.iter_mut().find(|c| c.name == old) {
                    c.name = newn;
                } else if let Some(i) = new
                    .indexes
                    .iter_mut()
                    .find(|i| i.name == old && i.constraint)
                {
                    add_index_name(engine, t, &newn, &def)?;
                    t.txn
                        .delete(&Key::IndexName(t.txn.database(), old.clone()).encode())?;
                    i.name = newn;
                } else {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{old}\" for table \"{}\" does not exist",
                            def.name
                        ),
                    ));
                }
                replace(engine, t, &def, new)?
            }
            Op::AlterColumn { column_name, op } => {
                let cname = ident_name(column_name);
                let pos = def
                    .column_index(&cname)
                    .ok_or_else(|| undefined_column(&def.name, &cname))?;
                let mut new = (*def).clone();
                match op {
                    ast::AlterColumnOperation::SetNotNull => {
                        for (_, row) in stored_rows(&t.txn, &def)? {
                            if row[pos].is_null() {
                                return Err(SqlError::new(
                                    SqlState::NOT_NULL_VIOLATION,
                                    format!(
                                        "column \"{cname}\" of relation \"{}\" contains null values",
                                        def.name
                                    ),
                                ));
                            }
                        }
                        new.columns[pos].not_null = true;
                    }
                    ast::AlterColumnOperation::DropNotNull => {
                        if def.primary_key.contains(&pos) {
                            return Err(SqlError::new(
                                SqlState::INVALID_TABLE_DEFINITION,
                                format!("column \"{cname}\" is in a primary key"),
                            ));
                        }
                        new.columns[pos].not_null = false;
                    }
                    ast::AlterColumnOperation::SetDefault { value } => {
                        let text = value.to_string();
                        let mut binder = Binder::new(&engine.catalog, &t.txn, info, vec![]);
                        binder.bind_default(&text, def.columns[pos].ty, &cname)?;
                        new.columns[pos].default = Some(text);
                    }
                    ast::AlterColumnOperation::DropDefault => new.columns[pos].default = None,
                    other => {
                        return Err(SqlError::unsupported(format!("ALTER COLUMN ... {other}")))
                    }
                }
                replace(engine, t, &def, new)?
            }
            other => {
                return Err(SqlError::unsupported(format!("ALTER TABLE ... {other}")));
            }
        };
    }
    Ok(())
}

/// DROP COLUMN: rows are rewritten without the column; indexes on it are dropped, CHECKs
/// that mention it too (as PostgreSQL does); a key column cannot be dropped.
fn drop_column(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    def: &Arc<TableDef>,
    pos: usize,
    interrupt: &Interrupt,
) -> SqlResult<Arc<TableDef>> {
    let cname = def.columns[pos].name.clone();
    // A referenced column cannot go while a foreign key names it.
    for child in &def.referenced_by {
        let Some(c) = engine.catalog.lookup(&t.txn, child)? else {
            continue;
        };
        if let Some(fk) = c
            .foreign_keys
            .iter()
            .find(|f| f.ref_table == def.name && f.ref_columns.contains(&cname))
        {
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS,
                format!(
                    "cannot drop column {cname} of table {} because other objects depend on it",
                    def.name
                ),
            )
            .with_detail(format!(
                "constraint {} on table {} depends on column {cname} of table {}",
                fk.name, c.name, def.name
            ))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
    }
    if def.primary_key.contains(&pos) {
        return Err(SqlError::new(
            SqlState::DEPENDENT_OBJECTS,
            format!(
                "cannot drop column {} of table {} because constraint {} requires it",
                def.columns[pos].name,
                def.name,
                def.pkey_name()
            ),
        ));
    }
    let mut cur = def.clone();
    while let Some(i) = cur.indexes.iter().position(|ix| ix.columns.contains(&pos)) {
        cur = drop_index_at(engine, t, &cur, i)?;
    }
    let mut new = (*cur).clone();
    new.columns.remove(pos);
    let shift = |c: usize| if c > pos { c - 1 } else { c };
    new.primary_key = new.primary_key.iter().map(|&c| shift(c)).collect();
    for ix in &mut new.indexes {
        ix.columns = ix.columns.iter().map(|&c| shift(c)).collect();
    }
    // A foreign key over the column goes with it (PostgreSQL drops it too).
    new.foreign_keys.retain(|f| !f.columns.contains(&pos));
    for f in &mut new.foreign_keys {
        f.columns = f.columns.iter().map(|&c| shift(c)).collect();
    }
    forget_unreferenced(engine, t, &cur, &mut new)?;
    new.checks
        .retain(|c| rename_in_expr(&c.expr, &cname, "\u{0}") == c.expr);
    for (key, mut row) in stored_rows(&t.txn, &cur)? {
        interrupt.check()?;
        row.remove(pos);
        t.txn.put(&key, Bytes::from(encode_row(&row)))?;
    }
    for s in sequence::all(&t.txn)? {
        if s.owned_by.as_ref() == Some(&(def.id.0, cname.clone())) {
            sequence::drop(&mut t.txn, &s.name)?;
        }
    }
    replace(engine, t, &cur, new)
}

/// Gives a table without a primary key one: the rows are re-keyed by the new key under a new
/// table id (the row keys change, so the table moves), the old id's rows and index entries
/// are dropped as two range deletes (not one tombstone per row) and its definition deleted,
/// and the indexes are rebuilt for the new keys. Fails with 23502 if
/// a key column holds NULL and with 23505 on a duplicate key, leaving the transaction to roll
/// everything back.
pub(crate) fn add_primary_key(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    old: &TableDef,
    cols: &[String],
    interrupt: &Interrupt,
) -> SqlResult<Arc<TableDef>> {
    if !old.primary_key.is_empty() {
        return Err(SqlError::new(
            SqlState::INVALID_TABLE_DEFINITION,
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                old.name
            ),
        ));
    }
    let mut key = Vec::with_capacity(cols.len());
    for c in cols {
        let i = old
            .column_index(c)
            .ok_or_else(|| undefined_column(&old.name, c))?;
        key.push(i);
    }
    let mut columns = old.columns.clone();
    for &i in &key {
        columns[i].not_null = true;
    }
    let created =
        engine
            .catalog
            .create_table(&mut t.txn, old.name.clone(), columns, key.clone())?;
    let mut moved = (*created).clone();
    moved.checks = old.checks.clone();
    moved.indexes = old.indexes.clone();
    if !moved.checks.is_empty() || !moved.indexes.is_empty() {
        engine.catalog.write_def(&mut t.txn, &moved)?;
    }
    for ix in &old.indexes {
        t.txn.put(
            &Key::IndexName(t.txn.database(), ix.name.clone()).encode(),
            Bytes::copy_from_slice(&moved.id.0.to_be_bytes()),
        )?;
    }
    let rows = Transaction::scan(&t.txn, KeyPrefix::Rows(old.id).range(), false, None)?;
    // The old id's rows and index entries go as range deletes (nothing reaches that id again).
    Transaction::delete_range(&mut t.txn, KeyPrefix::Rows(old.id).range())?;
    if !old.indexes.is_empty() {
        Transaction::delete_range(&mut t.txn, KeyPrefix::Indexes(old.id).range())?;
    }
    for (_, bytes) in rows {
        interrupt.check()?;
        let row = decode_table_row(old, &bytes)?;
        if let Some(&i) = key.iter().find(|&&i| row[i].is_null()) {
            return Err(SqlError::new(
                SqlState::NOT_NULL_VIOLATION,
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    old.columns[i].name, old.name
                ),
            ));
        }
        let new_key = moved.row_key(&row);
        // NB: the new table id was created by this transaction, so no committed row and no
        // other transaction can hold its keys: only our own earlier puts can collide, and the
        // puts need no row locks. The old rows need none either: alter_table holds ACCESS
        // EXCLUSIVE on the table.
        if t.txn.put_unlocked(&new_key, bytes) {
            let names: Vec<&str> = key.iter().map(|&i| old.columns[i].name.as_str()).collect();
            let vals: Vec<String> = key
                .iter()
                .map(|&i| row[i].to_text().unwrap_or_default())
                .collect();
            return Err(SqlError::new(
                SqlState::UNIQUE_VIOLATION,
                format!("could not create unique index \"{}\"", moved.pkey_name()),
            )
            .with_detail(format!(
                "Key ({})=({}) is duplicated.",
                names.join(", "),
                vals.join(", ")
            )));
        }
    }
    if !old.indexes.is_empty() {
        for ix in &moved.indexes {
            crate::index::build(&mut t.txn, &moved, ix, interrupt)?;
        }
    }
    for s in sequence::all(&t.txn)? {
        if let Some((id, c)) = &s.owned_by {
            if *id == old.id.0 {
                let mut s2 = s.clone();
                s2.owned_by = Some((moved.id.0, c.clone()));
                sequence::create(&mut t.txn, &s2)?;
            }
        }
    }
    t.txn.delete(&Key::Table(old.def_id).encode())?;
    t.dropped.push(old.def_id);
    t.ddl = true;
    Ok(Arc::new(moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renaming_a_column_rewrites_only_its_identifiers() {
        assert_eq!(
            rename_in_expr("(a > 0) AND (ab < a)", "a", "x"),
            "(x > 0) AND (ab < x)"
        );
        assert_eq!(rename_in_expr("\"A\" > 1", "A", "b c"), "\"b c\" > 1");
        assert_eq!(rename_in_expr("'a' = a", "a", "z"), "'a' = z");
    }
}
