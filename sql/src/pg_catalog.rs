//! The catalog as data: `information_schema.tables` / `columns` and the `pg_catalog` tables
//! that psql's `\d` family, SQLAlchemy and pgjdbc read, computed from the table definitions
//! the reading transaction sees (so they are as transactional as the catalog itself: a table
//! created in an open transaction shows there only). The functions over them
//! (`format_type`, `pg_get_indexdef`, `::regclass`, ...) are in `catalog_fns.rs`.
//!
//! | view                          | rows                                                       |
//! |-------------------------------|------------------------------------------------------------|
//! | `information_schema.tables`   | one per table (`BASE TABLE`) in schema `public`            |
//! | `information_schema.columns`  | one per column: position, default, nullability, type name, is_generated |
//! | `pg_class`                    | tables (`r`), their indexes (`i`) and sequences (`S`)      |
//! | `pg_namespace`                | `pg_catalog`, `public`, `information_schema`, user schemas |
//! | `pg_type`                     | the built-in types Gnomon has and their array types (`_int4`) |
//! | `pg_attribute`                | the columns of tables and indexes (no system columns)      |
//! | `pg_attrdef`                  | column defaults (`adbin` holds the expression's text)      |
//! | `pg_index`, `pg_constraint`   | primary keys, UNIQUE constraints, indexes, CHECKs          |
//! | `pg_roles`, `pg_database`     | roles (+ `pg_database_owner`), databases                   |
//! | `pg_am`, `pg_collation`       | heap / btree; default, C, POSIX                            |
//! | `pg_sequence`                 | sequences                                                  |
//! | `pg_tables`                   | one per table of the current database (schema `public`)    |
//! | `pg_opclass`                  | the default btree operator class of each type (PostgreSQL 15's OIDs) |
//! | `pg_policy`, `pg_trigger`, `pg_inherits`, `pg_publication*`, `pg_statistic_ext`, `pg_description`, `pg_auth_members`, `pg_enum` | empty, with PostgreSQL's columns |
//!
//! Types: `oid` columns are `int8`, `name` and `"char"` columns `text`, arrays their text
//! form (`catalog_fns.rs`); `pg_index`'s int2vector / oidvector columns keep those types
//! (22 / 30): their values are vectors (`array::vector`: subscripts from 0 as in
//! PostgreSQL, text `1 2`, the array binary format). Only the columns clients are seen to read exist (the psql 15
//! queries of `\d`, `\dt`, `\d TABLE`, `\d+ TABLE`, `\di`, `\l`, `\dn`, `\du`, SQLAlchemy
//! 2's has_table, pgjdbc's metadata calls); `SELECT *` over a view therefore shows fewer
//! columns than PostgreSQL. pg_class lists user relations only (no system catalogs).
//!
//! OIDs are the objects' ids (tables, indexes and sequences share one counter from 16384, as
//! PostgreSQL's user objects do); namespaces use PostgreSQL's fixed OIDs (11, 2200) and
//! 13000 for information_schema; the other OIDs are described at `synthetic_oid`. Owners:
//! a table's owner is its creator (`privileges.rs`); schemas, sequences and databases show
//! the bootstrap superuser, `public` pg_database_owner as in PostgreSQL 15. A superuser
//! shows every role attribute (Create role, Create DB, Replication, Bypass RLS): Gnomon
//! stores only LOGIN and SUPERUSER. `table_catalog` is the name of the transaction's database
//! ([`Transaction::database`]).

use crate::catalog::{Identity, TableDef};
use crate::encoding::{Key, KeyPrefix, TableId};
use crate::error::{SqlError, SqlResult};
use crate::storage::Transaction;
use crate::types::{DataType, Value};

/// OID of `pg_catalog`.
pub const PG_CATALOG_OID: u32 = 11;
/// OID of `public`.
pub const PUBLIC_OID: u32 = 2200;
/// OID given to `information_schema`.
pub const INFORMATION_SCHEMA_OID: u32 = 13000;
/// OID of the bootstrap superuser.
pub const SUPERUSER_OID: u32 = 10;
/// OID of the `pg_database_owner` role (owner of `public`).
pub const DATABASE_OWNER_OID: u32 = 6171;
/// OID of the `heap` access method (tables).
pub const HEAP_AM_OID: u32 = 2;
/// OID of the `btree` access method (indexes).
pub const BTREE_AM_OID: u32 = 403;
/// OID of the database default collation.
pub const DEFAULT_COLLATION_OID: i64 = 100;

/// Every table definition `txn` sees, in name order (decoded from the catalog keys).
pub(crate) fn tables(txn: &dyn Transaction) -> SqlResult<Vec<TableDef>> {
    let mut out = Vec::new();
    for (k, v) in txn.scan(KeyPrefix::TableName(txn.database()).range(), false, None)? {
        let Key::TableName(..) = Key::decode(&k)? else {
            continue;
        };
        let id = TableId(u32::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| SqlError::corrupt("bad table name entry"))?,
        ));
        if let Some(def) = txn.get(&Key::Table(id).encode())? {
            out.push(TableDef::decode(&def)?);
        }
    }
    Ok(out)
}

/// `information_schema.tables` columns.
pub(crate) const TABLES_COLUMNS: &[(&str, DataType)] = &[
    ("table_catalog", DataType::Text),
    ("table_schema", DataType::Text),
    ("table_name", DataType::Text),
    ("table_type", DataType::Text),
];

/// `information_schema.columns` columns.
pub(crate) const COLUMNS_COLUMNS: &[(&str, DataType)] = &[
    ("table_catalog", DataType::Text),
    ("table_schema", DataType::Text),
    ("table_name", DataType::Text),
    ("column_name", DataType::Text),
    ("ordinal_position", DataType::Int4),
    ("column_default", DataType::Text),
    ("is_nullable", DataType::Text),
    ("data_type", DataType::Text),
    ("character_maximum_length", DataType::Int4),
    ("is_generated", DataType::Text),
];

/// `pg_class` columns.
pub(crate) const PG_CLASS_COLUMNS: &[(&str, DataType)] = &[
    ("oid", DataType::Int8),
    ("relname", DataType::Text),
    ("relnamespace", DataType::Int8),
    ("relkind", DataType::Text),
    ("relowner", DataType::Int8),
    ("relnatts", DataType::Int2),
    ("relhasindex", DataType::Bool),
    ("relam", DataType::Int8),
    ("relchecks", DataType::Int2),
    ("relhasrules", DataType::Bool),
    ("relhastriggers", DataType::Bool),
    ("relrowsecurity", DataType::Bool),
    ("relforcerowsecurity", DataType::Bool),
    ("relispartition", DataType::Bool),
    ("reltablespace", DataType::Int8),
    ("reloftype", DataType::Int8),
    ("reltype", DataType::Int8),
    ("relpersistence", DataType::Text),
    ("relreplident", DataType::Text),
    ("reltoastrelid", DataType::Int8),
    ("relisshared", DataType::Bool),
    ("reloptions", DataType::Text),
    ("relpartbound", DataType::Text),
];

/// `pg_namespace` columns.
pub(crate) const PG_NAMESPACE_COLUMNS: &[(&str, DataType)] = &[
    ("oid", DataType::Int8),
    ("nspname", DataType::Text),
    ("nspowner", DataType::Int8),
    ("nspacl", DataType::Text),
];

/// PostgreSQL's `information_schema` name of a type.
fn sql_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Bool => "boolean",
        DataType::Int2 => "smallint",
        DataType::Int4 => "integer",
        DataType::Int8 => "bigint",
        DataType::Float4 => "real",
        DataType::Float8 => "double precision",
        DataType::Numeric { .. } => "numeric",
        DataType::Text => "text",
        DataType::Varchar(_) => "character varying",
        DataType::Bpchar(_) => "character",
        DataType::Bytea => "bytea",
        DataType::Date => "date",
        DataType::Timestamp => "timestamp without time zone",
        DataType::Timestamptz => "timestamp with time zone",
        DataType::Interval => "interval",
        DataType::Array(_) => "ARRAY",
        _ => "unknown",
    }
}

/// The name of `txn`'s database (`table_catalog`), NULL if it has none.
fn catalog_name(txn: &dyn Transaction) -> SqlResult<Value> {
    let oid = txn.database();
    for (k, v) in txn.scan(KeyPrefix::Database.range(), false, None)? {
        if let Key::Database(name) = Key::decode(&k)? {
            if crate::session::decode_database_oid(&v)? == oid {
                return Ok(Value::Text(name));
            }
        }
    }
    Ok(Value::Null)
}

/// `information_schema.tables` as `txn` sees it.
pub(crate) fn tables_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let catalog = catalog_name(txn)?;
    Ok(tables(txn)?
        .into_iter()
        .map(|t| {
            vec![
                catalog.clone(),
                Value::Text("public".into()),
                Value::Text(t.name),
                Value::Text("BASE TABLE".into()),
            ]
        })
        .collect())
}

/// `information_schema.columns` as `txn` sees it.
pub(crate) fn columns_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let catalog = catalog_name(txn)?;
    let mut out = Vec::new();
    for t in tables(txn)? {
        for (i, c) in t.columns.iter().enumerate() {
            let max_len = match c.ty {
                DataType::Varchar(Some(n)) | DataType::Bpchar(Some(n)) => Value::Int4(n as i32),
                _ => Value::Null,
            };
            out.push(vec![
                catalog.clone(),
                Value::Text("public".into()),
                Value::Text(t.name.clone()),
                Value::Text(c.name.clone()),
                Value::Int4(i as i32 + 1),
                c.default.clone().map(Value::Text).unwrap_or(Value::Null),
                Value::Text(if c.not_null { "NO" } else { "YES" }.into()),
                Value::Text(sql_type_name(&c.ty).into()),
                max_len,
                Value::Text(
                    if c.generated.is_some() {
                        "ALWAYS"
                    } else {
                        "NEVER"
                    }
                    .into(),
                ),
            ]);
        }
    }
    Ok(out)
}

/// `pg_class` as `txn` sees it: tables, indexes (the primary key's too) and sequences.
pub(crate) fn pg_class_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let mut out = Vec::new();
    let row = |oid: u32, name: String, kind: &str, natts: usize, has_index: bool| {
        let am = match kind {
            "r" => HEAP_AM_OID,
            "i" => BTREE_AM_OID,
            _ => 0,
        };
        vec![
            Value::Int8(oid as i64),
            Value::Text(name),
            Value::Int8(PUBLIC_OID as i64),
            Value::Text(kind.into()),
            Value::Int8(SUPERUSER_OID as i64),
            Value::Int2(natts as i16),
            Value::Bool(has_index),
            Value::Int8(am as i64),
            Value::Int2(0),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            Value::Int8(0),
            Value::Int8(0),
            Value::Int8(0),
            Value::Text("p".into()),
            Value::Text(if kind == "r" || kind == "p" { "d" } else { "n" }.into()),
            Value::Int8(0),
            Value::Bool(false),
            Value::Null,
            Value::Null,
        ]
    };
    for t in tables(txn)? {
        let first = out.len();
        let has_index = !t.primary_key.is_empty() || !t.indexes.is_empty();
        // A partitioned table is relkind 'p' (no storage, no access method); a partition
        // is marked and carries its bound's text (what pg_get_expr(relpartbound) shows).
        let kind = if t.partitioning.key.is_some() {
            "p"
        } else {
            "r"
        };
        let mut r = row(t.id.0, t.name.clone(), kind, t.columns.len(), has_index);
        r[8] = Value::Int2(t.checks.len() as i16);
        // PostgreSQL implements a foreign key with triggers on both tables (what makes
        // psql's \d print "Foreign-key constraints" and "Referenced by").
        r[10] = Value::Bool(!t.foreign_keys.is_empty() || !t.referenced_by.is_empty());
        if let Some((_, bound)) = &t.partitioning.of {
            r[13] = Value::Bool(true);
            r[22] = Value::Text(crate::partition::bound_text(bound));
        }
        out.push(r);
        if !t.primary_key.is_empty() {
            // NB: the primary key's index has no id of its own; it shows under the table's
            // definition id, which no other object uses.
            out.push(row(
                t.def_id.0,
                t.pkey_name(),
                "i",
                t.primary_key.len(),
                false,
            ));
        }
        for ix in &t.indexes {
            out.push(row(ix.id, ix.name.clone(), "i", ix.columns.len(), false));
        }
        // The table and its indexes belong to the table's owner (its creator).
        let owner = role_oid_of(&crate::privileges::table_acl(txn, t.id)?.owner);
        for r in &mut out[first..] {
            r[4] = Value::Int8(owner);
        }
    }
    for s in crate::sequence::all(txn)? {
        out.push(row(s.id, s.name, "S", 3, false));
    }
    Ok(out)
}

/// `pg_namespace` as `txn` sees it.
pub(crate) fn pg_namespace_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let mut out = vec![
        vec![
            Value::Int8(PG_CATALOG_OID as i64),
            Value::Text("pg_catalog".into()),
            Value::Int8(SUPERUSER_OID as i64),
        ],
        vec![
            Value::Int8(PUBLIC_OID as i64),
            Value::Text("public".into()),
            // As in PostgreSQL 15: public belongs to pg_database_owner.
            Value::Int8(DATABASE_OWNER_OID as i64),
        ],
        vec![
            Value::Int8(INFORMATION_SCHEMA_OID as i64),
            Value::Text("information_schema".into()),
            Value::Int8(SUPERUSER_OID as i64),
        ],
    ];
    for (i, (k, _)) in txn
        .scan(KeyPrefix::Schema(txn.database()).range(), false, None)?
        .into_iter()
        .enumerate()
    {
        if let Key::Schema(_, name) = Key::decode(&k)? {
            out.push(vec![
                Value::Int8(INFORMATION_SCHEMA_OID as i64 + 1 + i as i64),
                Value::Text(name),
                Value::Int8(SUPERUSER_OID as i64),
            ]);
        }
    }
    for r in &mut out {
        r.push(Value::Null);
    }
    Ok(out)
}

/// `pg_type` columns.
pub(crate) const PG_TYPE_COLUMNS: &[(&str, DataType)] = &[
    ("oid", DataType::Int8),
    ("typname", DataType::Text),
    ("typnamespace", DataType::Int8),
    ("typlen", DataType::Int2),
    ("typtype", DataType::Text),
    ("typcategory", DataType::Text),
    ("typarray", DataType::Int8),
    ("typcollation", DataType::Int8),
    ("typelem", DataType::Int8),
    ("typbasetype", DataType::Int8),
    ("typtypmod", DataType::Int4),
    ("typnotnull", DataType::Bool),
    ("typrelid", DataType::Int8),
    ("typdelim", DataType::Text),
    ("typdefault", DataType::Text),
];

/// `pg_type`: every type Gnomon implements, under PostgreSQL's OID, name, length, category
/// and array type OID, then the array type of each (`_int4`: category `A`, `typelem` the
/// element's OID, `typarray` 0).
pub(crate) fn pg_type_rows() -> Vec<Vec<Value>> {
    // (type, PostgreSQL name, category)
    let types: [(DataType, &str, &str); 15] = [
        (DataType::Bool, "bool", "B"),
        (DataType::Bytea, "bytea", "U"),
        (DataType::Int8, "int8", "N"),
        (DataType::Int2, "int2", "N"),
        (DataType::Int4, "int4", "N"),
        (DataType::Text, "text", "S"),
        (DataType::Float4, "float4", "N"),
        (DataType::Float8, "float8", "N"),
        (DataType::Bpchar(None), "bpchar", "S"),
        (DataType::Varchar(None), "varchar", "S"),
        (DataType::Date, "date", "D"),
        (DataType::Timestamp, "timestamp", "D"),
        (DataType::Timestamptz, "timestamptz", "D"),
        (DataType::Interval, "interval", "T"),
        (
            DataType::Numeric {
                precision: None,
                scale: None,
            },
            "numeric",
            "N",
        ),
    ];
    let row = |oid: u32, name: String, len: i16, cat: &str, array: u32, coll: i64, elem: u32| {
        vec![
            Value::Int8(i64::from(oid)),
            Value::Text(name),
            Value::Int8(PG_CATALOG_OID as i64),
            Value::Int2(len),
            Value::Text("b".into()),
            Value::Text(cat.to_string()),
            Value::Int8(i64::from(array)),
            Value::Int8(coll),
            Value::Int8(i64::from(elem)),
            Value::Int8(0),
            Value::Int4(-1),
            Value::Bool(false),
            Value::Int8(0),
            Value::Text(",".into()),
            Value::Null,
        ]
    };
    let mut out: Vec<Vec<Value>> = types
        .iter()
        .map(|(t, name, cat)| {
            let array = t.array_oid().unwrap_or(0);
            row(
                t.oid(),
                name.to_string(),
                t.typlen(),
                cat,
                array,
                collation_of(t),
                0,
            )
        })
        .collect();
    out.extend(types.iter().map(|(t, name, _)| {
        let array = DataType::array_of(*t);
        row(
            array.oid(),
            format!("_{name}"),
            -1,
            "A",
            0,
            collation_of(t),
            t.oid(),
        )
    }));
    out
}

/// The default btree operator classes of Gnomon's types, as PostgreSQL 15 numbers them:
/// (oid, name, family, input type). Every index column uses its type's (`pg_index.indclass`).
const BTREE_OPCLASSES: &[(u32, &str, u32, u32)] = &[
    (10000, "array_ops", 397, 2277),
    (424, "bool_ops", 424, 16),
    (428, "bytea_ops", 428, 17),
    (1978, "int4_ops", 1976, 23),
    (1979, "int2_ops", 1976, 21),
    (3122, "date_ops", 434, 1082),
    (3123, "float8_ops", 1970, 701),
    (3124, "int8_ops", 1976, 20),
    (3125, "numeric_ops", 1988, 1700),
    (3126, "text_ops", 1994, 25),
    (3127, "timestamptz_ops", 434, 1184),
    (3128, "timestamp_ops", 434, 1114),
    (10004, "bpchar_ops", 426, 1042),
    (10012, "float4_ops", 1970, 700),
    (10022, "interval_ops", 1982, 1186),
];

/// The OID of a column type's default btree operator class (`varchar` uses `text_ops`).
fn default_opclass(t: &DataType) -> u32 {
    let oid = match t {
        DataType::Varchar(_) | DataType::Unknown => 25,
        DataType::Array(_) => 2277,
        other => other.oid(),
    };
    BTREE_OPCLASSES
        .iter()
        .find(|(_, _, _, ty)| *ty == oid)
        .map_or(0, |(opc, ..)| *opc)
}

/// `pg_type.typcollation`: the default collation for string types, 0 otherwise.
fn collation_of(t: &DataType) -> i64 {
    if t.is_string() {
        DEFAULT_COLLATION_OID
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// The rest of pg_catalog that psql's `\d` family, SQLAlchemy and pgjdbc read.
//
// OIDs: tables, indexes and sequences are their ids; the primary key's index and constraint
// are the table's definition id (see `pg_class_rows`); a UNIQUE constraint is its index's id.
// Objects Gnomon stores without an id get an OID computed from their table and position
// (`synthetic_oid`, above 2^32 so it never meets a real one): CHECK constraints and column
// defaults. Roles other than the bootstrap superuser (10) get an OID hashed from their name
// (stable across restarts); a database's OID is stored with it (`Key::Database`).
// ---------------------------------------------------------------------------------------------

/// An OID for an object stored without one: `kind` (1 check constraint, 2 default, 3
/// foreign key) in the
/// top bits, then the table id, then the position.
fn synthetic_oid(kind: u8, table: u32, n: usize) -> i64 {
    ((kind as i64) << 48) | ((table as i64) << 16) | (n as i64 & 0xffff)
}

/// FNV-1a of a name, for role and database OIDs.
fn name_hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The OID of the role called `name` (which may not exist).
fn role_oid_of(name: &str) -> i64 {
    if name == crate::roles::BOOTSTRAP_SUPERUSER {
        SUPERUSER_OID as i64
    } else if name == "pg_database_owner" {
        DATABASE_OWNER_OID as i64
    } else {
        (0x4000_0000 | (name_hash(name) & 0x3fff_ffff)) as i64
    }
}

/// A constraint as `pg_constraint` shows it.
pub(crate) struct ConstraintInfo {
    pub oid: i64,
    pub name: String,
    pub relid: u32,
    /// `p`, `u` or `c`.
    pub contype: &'static str,
    /// The index behind a `p` / `u` constraint (0 for `c`).
    pub indid: u32,
    /// 1-based column numbers.
    pub cols: Vec<i16>,
    /// What `pg_get_constraintdef` shows.
    pub def: String,
    /// A foreign key's referenced table (0 otherwise).
    pub frelid: u32,
    /// A foreign key's referenced column numbers.
    pub fcols: Vec<i16>,
    /// A foreign key's ON UPDATE / ON DELETE codes (`a` no action, `c` cascade, ...; ' '
    /// for other constraints).
    pub actions: (char, char),
}

fn column_list(t: &TableDef, cols: &[usize]) -> String {
    cols.iter()
        .map(|&i| crate::catalog_fns::quote_ident(&t.columns[i].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The constraints of one table.
fn table_constraints(t: &TableDef) -> Vec<ConstraintInfo> {
    let mut out = Vec::new();
    if !t.primary_key.is_empty() {
        out.push(ConstraintInfo {
            oid: t.def_id.0 as i64,
            name: t.pkey_name(),
            relid: t.id.0,
            contype: "p",
            indid: t.def_id.0,
            cols: t.primary_key.iter().map(|&i| i as i16 + 1).collect(),
            def: format!("PRIMARY KEY ({})", column_list(t, &t.primary_key)),
            frelid: 0,
            fcols: vec![],
            actions: (' ', ' '),
        });
    }
    for ix in t.indexes.iter().filter(|ix| ix.constraint) {
        out.push(ConstraintInfo {
            oid: ix.id as i64,
            name: ix.name.clone(),
            relid: t.id.0,
            contype: "u",
            indid: ix.id,
            cols: ix.columns.iter().map(|&i| i as i16 + 1).collect(),
            def: format!("UNIQUE ({})", column_list(t, &ix.columns)),
            frelid: 0,
            fcols: vec![],
            actions: (' ', ' '),
        });
    }
    for (n, c) in t.checks.iter().enumerate() {
        let cols = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, col)| c.expr.contains(col.name.as_str()))
            .map(|(i, _)| i as i16 + 1)
            .collect();
        out.push(ConstraintInfo {
            oid: synthetic_oid(1, t.id.0, n),
            name: c.name.clone(),
            relid: t.id.0,
            contype: "c",
            indid: 0,
            cols,
            def: format!("CHECK ({})", c.expr),
            frelid: 0,
            fcols: vec![],
            actions: (' ', ' '),
        });
    }
    out
}

/// Every constraint `txn` sees.
pub(crate) fn constraints(txn: &dyn Transaction) -> SqlResult<Vec<ConstraintInfo>> {
    let all = tables(txn)?;
    let mut out: Vec<ConstraintInfo> = all.iter().flat_map(table_constraints).collect();
    for t in &all {
        for (n, fk) in t.foreign_keys.iter().enumerate() {
            let Some(r) = all.iter().find(|r| r.name == fk.ref_table) else {
                continue;
            };
            let rcols: Vec<usize> = fk
                .ref_columns
                .iter()
                .filter_map(|c| r.column_index(c))
                .collect();
            // The referenced key's index: the primary key's or a unique index's.
            let indid = if rcols == r.primary_key {
                r.def_id.0
            } else {
                r.indexes
                    .iter()
                    .find(|ix| ix.unique && ix.columns == rcols)
                    .map_or(0, |ix| ix.id)
            };
            let action = |a: crate::catalog::FkAction| match a.pg_code() {
                'r' => "RESTRICT",
                'c' => "CASCADE",
                'n' => "SET NULL",
                'd' => "SET DEFAULT",
                _ => "",
            };
            let mut def = format!(
                "FOREIGN KEY ({}) REFERENCES {}({})",
                column_list(t, &fk.columns),
                crate::catalog_fns::quote_ident(&r.name),
                column_list(r, &rcols)
            );
            for (what, a) in [("UPDATE", fk.on_update), ("DELETE", fk.on_delete)] {
                if !action(a).is_empty() {
                    def.push_str(&format!(" ON {what} {}", action(a)));
                }
            }
            out.push(ConstraintInfo {
                oid: synthetic_oid(3, t.id.0, n),
                name: fk.name.clone(),
                relid: t.id.0,
                contype: "f",
                indid,
                cols: fk.columns.iter().map(|&i| i as i16 + 1).collect(),
                def,
                frelid: r.id.0,
                fcols: rcols.iter().map(|&i| i as i16 + 1).collect(),
                actions: (fk.on_update.pg_code(), fk.on_delete.pg_code()),
            });
        }
    }
    Ok(out)
}

/// An index as `pg_index` shows it: (index oid, name, table, unique, primary, columns).
struct IndexInfo<'a> {
    oid: u32,
    name: String,
    table: &'a TableDef,
    unique: bool,
    primary: bool,
    cols: Vec<usize>,
}

fn table_indexes(t: &TableDef) -> Vec<IndexInfo<'_>> {
    let mut out = Vec::new();
    if !t.primary_key.is_empty() {
        out.push(IndexInfo {
            oid: t.def_id.0,
            name: t.pkey_name(),
            table: t,
            unique: true,
            primary: true,
            cols: t.primary_key.clone(),
        });
    }
    for ix in &t.indexes {
        out.push(IndexInfo {
            oid: ix.id,
            name: ix.name.clone(),
            table: t,
            unique: ix.unique,
            primary: false,
            cols: ix.columns.clone(),
        });
    }
    out
}

/// `pg_get_indexdef(oid, column)`: the CREATE INDEX statement, or with `column` > 0 that
/// column's name. None: no such index.
pub(crate) fn index_def(txn: &dyn Transaction, oid: i64, column: i64) -> SqlResult<Option<String>> {
    let all = tables(txn)?;
    for t in &all {
        for ix in table_indexes(t) {
            if ix.oid as i64 != oid {
                continue;
            }
            if column > 0 {
                return Ok(usize::try_from(column - 1)
                    .ok()
                    .and_then(|c| ix.cols.get(c))
                    .map(|&c| crate::catalog_fns::quote_ident(&t.columns[c].name)));
            }
            return Ok(Some(format!(
                "CREATE {}INDEX {} ON public.{} USING btree ({})",
                if ix.unique { "UNIQUE " } else { "" },
                crate::catalog_fns::quote_ident(&ix.name),
                crate::catalog_fns::quote_ident(&t.name),
                column_list(t, &ix.cols)
            )));
        }
    }
    Ok(None)
}

/// The name of the relation (table, index, sequence) with this OID.
pub(crate) fn relation_name(txn: &dyn Transaction, oid: i64) -> SqlResult<Option<String>> {
    Ok(pg_class_rows(txn)?
        .into_iter()
        .find(|r| matches!(r[0], Value::Int8(o) if o == oid))
        .and_then(|r| r[1].to_text()))
}

/// The OID of the relation (table, index, sequence) called `name`.
pub(crate) fn relation_oid(txn: &dyn Transaction, name: &str) -> SqlResult<Option<i64>> {
    Ok(pg_class_rows(txn)?
        .into_iter()
        .find(|r| matches!(&r[1], Value::Text(n) if n == name))
        .and_then(|r| match r[0] {
            Value::Int8(o) => Some(o),
            _ => None,
        }))
}

/// The name of the schema with this OID.
pub(crate) fn namespace_name(txn: &dyn Transaction, oid: i64) -> SqlResult<Option<String>> {
    Ok(pg_namespace_rows(txn)?
        .into_iter()
        .find(|r| matches!(r[0], Value::Int8(o) if o == oid))
        .and_then(|r| r[1].to_text()))
}

/// The OID of the schema called `name`.
pub(crate) fn namespace_oid(txn: &dyn Transaction, name: &str) -> SqlResult<Option<i64>> {
    Ok(pg_namespace_rows(txn)?
        .into_iter()
        .find(|r| matches!(&r[1], Value::Text(n) if n == name))
        .and_then(|r| match r[0] {
            Value::Int8(o) => Some(o),
            _ => None,
        }))
}

/// The name of the role with this OID (`pg_database_owner` included).
pub(crate) fn role_name(txn: &dyn Transaction, oid: i64) -> SqlResult<Option<String>> {
    if oid == DATABASE_OWNER_OID as i64 {
        return Ok(Some("pg_database_owner".into()));
    }
    Ok(crate::roles::list_roles(txn)?
        .into_iter()
        .find(|r| role_oid_of(&r.name) == oid)
        .map(|r| r.name))
}

/// The OID of the role called `name`.
pub(crate) fn role_oid(txn: &dyn Transaction, name: &str) -> SqlResult<Option<i64>> {
    if name == "pg_database_owner" {
        return Ok(Some(DATABASE_OWNER_OID as i64));
    }
    Ok(crate::roles::lookup_role(txn, name)?.map(|r| role_oid_of(&r.name)))
}

/// The pg_catalog tables served beside `pg_class`, `pg_namespace` and `pg_type`. Views
/// of objects Gnomon does not have (policies, triggers, publications, statistics objects,
/// inheritance, comments, role membership) are empty but have PostgreSQL's columns, so
/// the queries clients send over them bind and return no rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CatalogView {
    Attribute,
    Attrdef,
    Index,
    Constraint,
    Collation,
    Am,
    Roles,
    AuthMembers,
    Database,
    Description,
    Sequence,
    Policy,
    StatisticExt,
    Publication,
    PublicationNamespace,
    PublicationRel,
    Trigger,
    Inherits,
    Tables,
    Opclass,
    Enum,
}

impl CatalogView {
    /// The view called `name` (unqualified, lower case).
    pub(crate) fn named(name: &str) -> Option<CatalogView> {
        Some(match name {
            "pg_attribute" => CatalogView::Attribute,
            "pg_attrdef" => CatalogView::Attrdef,
            "pg_index" => CatalogView::Index,
            "pg_constraint" => CatalogView::Constraint,
            "pg_collation" => CatalogView::Collation,
            "pg_am" => CatalogView::Am,
            "pg_roles" => CatalogView::Roles,
            "pg_auth_members" => CatalogView::AuthMembers,
            "pg_database" => CatalogView::Database,
            "pg_description" => CatalogView::Description,
            "pg_sequence" => CatalogView::Sequence,
            "pg_policy" => CatalogView::Policy,
            "pg_statistic_ext" => CatalogView::StatisticExt,
            "pg_publication" => CatalogView::Publication,
            "pg_publication_namespace" => CatalogView::PublicationNamespace,
            "pg_publication_rel" => CatalogView::PublicationRel,
            "pg_trigger" => CatalogView::Trigger,
            "pg_inherits" => CatalogView::Inherits,
            "pg_tables" => CatalogView::Tables,
            "pg_opclass" => CatalogView::Opclass,
            "pg_enum" => CatalogView::Enum,
            _ => return None,
        })
    }

    /// The view's name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            CatalogView::Attribute => "pg_attribute",
            CatalogView::Attrdef => "pg_attrdef",
            CatalogView::Index => "pg_index",
            CatalogView::Constraint => "pg_constraint",
            CatalogView::Collation => "pg_collation",
            CatalogView::Am => "pg_am",
            CatalogView::Roles => "pg_roles",
            CatalogView::AuthMembers => "pg_auth_members",
            CatalogView::Database => "pg_database",
            CatalogView::Description => "pg_description",
            CatalogView::Sequence => "pg_sequence",
            CatalogView::Policy => "pg_policy",
            CatalogView::StatisticExt => "pg_statistic_ext",
            CatalogView::Publication => "pg_publication",
            CatalogView::PublicationNamespace => "pg_publication_namespace",
            CatalogView::PublicationRel => "pg_publication_rel",
            CatalogView::Trigger => "pg_trigger",
            CatalogView::Inherits => "pg_inherits",
            CatalogView::Tables => "pg_tables",
            CatalogView::Opclass => "pg_opclass",
            CatalogView::Enum => "pg_enum",
        }
    }

    /// Column names and types (oid -> int8, name / "char" -> text, arrays -> their text).
    pub(crate) fn columns(&self) -> &'static [(&'static str, DataType)] {
        use DataType::{Bool, Int2, Int4, Int8, Text, Timestamptz};
        match self {
            CatalogView::Attribute => &[
                ("attrelid", Int8),
                ("attname", Text),
                ("atttypid", Int8),
                ("attlen", Int2),
                ("attnum", Int2),
                ("atttypmod", Int4),
                ("attndims", Int4),
                ("attnotnull", Bool),
                ("atthasdef", Bool),
                ("atthasmissing", Bool),
                ("attidentity", Text),
                ("attgenerated", Text),
                ("attisdropped", Bool),
                ("attislocal", Bool),
                ("attinhcount", Int2),
                ("attcollation", Int8),
                ("attstorage", Text),
                ("attcompression", Text),
                ("attstattarget", Int4),
                ("attalign", Text),
                ("attbyval", Bool),
            ],
            CatalogView::Attrdef => &[
                ("oid", Int8),
                ("adrelid", Int8),
                ("adnum", Int2),
                ("adbin", Text),
            ],
            CatalogView::Index => &[
                ("indexrelid", Int8),
                ("indrelid", Int8),
                ("indnatts", Int2),
                ("indnkeyatts", Int2),
                ("indisunique", Bool),
                ("indnullsnotdistinct", Bool),
                ("indisprimary", Bool),
                ("indisexclusion", Bool),
                ("indimmediate", Bool),
                ("indisclustered", Bool),
                ("indisvalid", Bool),
                ("indcheckxmin", Bool),
                ("indisready", Bool),
                ("indislive", Bool),
                ("indisreplident", Bool),
                ("indkey", DataType::Int2Vector),
                ("indcollation", DataType::OidVector),
                ("indclass", DataType::OidVector),
                ("indoption", DataType::Int2Vector),
                ("indexprs", Text),
                ("indpred", Text),
            ],
            CatalogView::Constraint => &[
                ("oid", Int8),
                ("conname", Text),
                ("connamespace", Int8),
                ("contype", Text),
                ("condeferrable", Bool),
                ("condeferred", Bool),
                ("convalidated", Bool),
                ("conrelid", Int8),
                ("contypid", Int8),
                ("conindid", Int8),
                ("conparentid", Int8),
                ("confrelid", Int8),
                ("confupdtype", Text),
                ("confdeltype", Text),
                ("confmatchtype", Text),
                ("conislocal", Bool),
                ("coninhcount", Int2),
                ("connoinherit", Bool),
                ("conkey", Text),
                ("confkey", Text),
                ("conbin", Text),
            ],
            CatalogView::Collation => &[
                ("oid", Int8),
                ("collname", Text),
                ("collnamespace", Int8),
                ("collowner", Int8),
                ("collprovider", Text),
                ("collisdeterministic", Bool),
                ("collencoding", Int4),
                ("collcollate", Text),
                ("collctype", Text),
            ],
            CatalogView::Am => &[("oid", Int8), ("amname", Text), ("amtype", Text)],
            CatalogView::Roles => &[
                ("rolname", Text),
                ("rolsuper", Bool),
                ("rolinherit", Bool),
                ("rolcreaterole", Bool),
                ("rolcreatedb", Bool),
                ("rolcanlogin", Bool),
                ("rolreplication", Bool),
                ("rolconnlimit", Int4),
                ("rolpassword", Text),
                ("rolvaliduntil", Timestamptz),
                ("rolbypassrls", Bool),
                ("rolconfig", Text),
                ("oid", Int8),
            ],
            CatalogView::AuthMembers => &[
                ("roleid", Int8),
                ("member", Int8),
                ("grantor", Int8),
                ("admin_option", Bool),
            ],
            CatalogView::Database => &[
                ("oid", Int8),
                ("datname", Text),
                ("datdba", Int8),
                ("encoding", Int4),
                ("datlocprovider", Text),
                ("datistemplate", Bool),
                ("datallowconn", Bool),
                ("datconnlimit", Int4),
                ("datcollate", Text),
                ("datctype", Text),
                ("daticulocale", Text),
                ("datacl", Text),
            ],
            CatalogView::Description => &[
                ("objoid", Int8),
                ("classoid", Int8),
                ("objsubid", Int4),
                ("description", Text),
            ],
            CatalogView::Tables => &[
                ("schemaname", Text),
                ("tablename", Text),
                ("tableowner", Text),
                ("tablespace", Text),
                ("hasindexes", Bool),
                ("hasrules", Bool),
                ("hastriggers", Bool),
                ("rowsecurity", Bool),
            ],
            CatalogView::Sequence => &[
                ("seqrelid", Int8),
                ("seqtypid", Int8),
                ("seqstart", Int8),
                ("seqincrement", Int8),
                ("seqmax", Int8),
                ("seqmin", Int8),
                ("seqcache", Int8),
                ("seqcycle", Bool),
            ],
            CatalogView::Policy => &[
                ("oid", Int8),
                ("polname", Text),
                ("polrelid", Int8),
                ("polcmd", Text),
                ("polpermissive", Bool),
                ("polroles", Text),
                ("polqual", Text),
                ("polwithcheck", Text),
            ],
            CatalogView::StatisticExt => &[
                ("oid", Int8),
                ("stxrelid", Int8),
                ("stxname", Text),
                ("stxnamespace", Int8),
                ("stxowner", Int8),
                ("stxstattarget", Int4),
                ("stxkeys", Text),
                ("stxkind", Text),
            ],
            CatalogView::Publication => &[
                ("oid", Int8),
                ("pubname", Text),
                ("pubowner", Int8),
                ("puballtables", Bool),
                ("pubinsert", Bool),
                ("pubupdate", Bool),
                ("pubdelete", Bool),
                ("pubtruncate", Bool),
                ("pubviaroot", Bool),
            ],
            CatalogView::PublicationNamespace => {
                &[("oid", Int8), ("pnpubid", Int8), ("pnnspid", Int8)]
            }
            CatalogView::PublicationRel => &[
                ("oid", Int8),
                ("prpubid", Int8),
                ("prrelid", Int8),
                ("prqual", Text),
                ("prattrs", Text),
            ],
            CatalogView::Opclass => &[
                ("oid", Int8),
                ("opcmethod", Int8),
                ("opcname", Text),
                ("opcnamespace", Int8),
                ("opcowner", Int8),
                ("opcfamily", Int8),
                ("opcintype", Int8),
                ("opcdefault", Bool),
                ("opckeytype", Int8),
            ],
            CatalogView::Enum => &[
                ("oid", Int8),
                ("enumtypid", Int8),
                ("enumsortorder", DataType::Float4),
                ("enumlabel", Text),
            ],
            CatalogView::Trigger => &[
                ("oid", Int8),
                ("tgrelid", Int8),
                ("tgparentid", Int8),
                ("tgname", Text),
                ("tgfoid", Int8),
                ("tgtype", Int2),
                ("tgenabled", Text),
                ("tgisinternal", Bool),
                ("tgconstrrelid", Int8),
                ("tgconstrindid", Int8),
                ("tgconstraint", Int8),
                ("tgdeferrable", Bool),
                ("tginitdeferred", Bool),
                ("tgnargs", Int2),
            ],
            CatalogView::Inherits => &[
                ("inhrelid", Int8),
                ("inhparent", Int8),
                ("inhseqno", Int4),
                ("inhdetachpending", Bool),
            ],
        }
    }

    /// The view's rows as `txn` sees them.
    pub(crate) fn rows(&self, txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
        Ok(match self {
            CatalogView::Attribute => attribute_rows(txn)?,
            CatalogView::Attrdef => {
                let mut out = Vec::new();
                for t in tables(txn)? {
                    for (i, c) in t.columns.iter().enumerate() {
                        let expr = match (&c.default, &c.generated) {
                            (Some(d), _) if has_default(c) => {
                                crate::catalog_fns::default_display(d, &c.ty)
                            }
                            // A generated column's expression is its pg_attrdef row.
                            (_, Some(g)) => g.clone(),
                            _ => continue,
                        };
                        out.push(vec![
                            Value::Int8(synthetic_oid(2, t.id.0, i)),
                            Value::Int8(t.id.0 as i64),
                            Value::Int2(i as i16 + 1),
                            Value::Text(expr),
                        ]);
                    }
                }
                out
            }
            CatalogView::Index => {
                let mut out = Vec::new();
                for t in tables(txn)? {
                    for ix in table_indexes(&t) {
                        let n = ix.cols.len() as i16;
                        use crate::array::vector;
                        let key = ix.cols.iter().map(|c| Value::Int2(*c as i16 + 1)).collect();
                        let zeros = vec![Value::Int2(0); ix.cols.len()];
                        let col_types = ix.cols.iter().map(|&c| &ix.table.columns[c].ty);
                        let opclasses = col_types
                            .clone()
                            .map(|t| Value::Int8(i64::from(default_opclass(t))))
                            .collect();
                        let collations = col_types.map(|t| Value::Int8(collation_of(t))).collect();
                        out.push(vec![
                            Value::Int8(ix.oid as i64),
                            Value::Int8(ix.table.id.0 as i64),
                            Value::Int2(n),
                            Value::Int2(n),
                            Value::Bool(ix.unique),
                            Value::Bool(false),
                            Value::Bool(ix.primary),
                            Value::Bool(false),
                            Value::Bool(true),
                            Value::Bool(false),
                            Value::Bool(true),
                            Value::Bool(false),
                            Value::Bool(true),
                            Value::Bool(true),
                            Value::Bool(false),
                            vector(DataType::Int2Vector, key),
                            vector(DataType::OidVector, collations),
                            vector(DataType::OidVector, opclasses),
                            vector(DataType::Int2Vector, zeros),
                            Value::Null,
                            Value::Null,
                        ]);
                    }
                }
                out
            }
            CatalogView::Constraint => constraints(txn)?
                .into_iter()
                .map(|c| {
                    let key: Vec<Option<String>> =
                        c.cols.iter().map(|k| Some(k.to_string())).collect();
                    let fkey: Vec<Option<String>> =
                        c.fcols.iter().map(|k| Some(k.to_string())).collect();
                    let foreign = c.contype == "f";
                    vec![
                        Value::Int8(c.oid),
                        Value::Text(c.name),
                        Value::Int8(PUBLIC_OID as i64),
                        Value::Text(c.contype.into()),
                        Value::Bool(false),
                        Value::Bool(false),
                        Value::Bool(true),
                        Value::Int8(c.relid as i64),
                        Value::Int8(0),
                        Value::Int8(c.indid as i64),
                        Value::Int8(0),
                        Value::Int8(c.frelid as i64),
                        Value::Text(c.actions.0.to_string()),
                        Value::Text(c.actions.1.to_string()),
                        Value::Text(if foreign { "s" } else { " " }.into()),
                        Value::Bool(true),
                        Value::Int2(0),
                        Value::Bool(false),
                        Value::Text(crate::catalog_fns::format_array(&key)),
                        if foreign {
                            Value::Text(crate::catalog_fns::format_array(&fkey))
                        } else {
                            Value::Null
                        },
                        Value::Null,
                    ]
                })
                .collect(),
            CatalogView::Collation => [
                (DEFAULT_COLLATION_OID, "default", "d", Value::Null),
                (950, "C", "c", Value::Text("C".into())),
                (951, "POSIX", "c", Value::Text("POSIX".into())),
            ]
            .into_iter()
            .map(|(oid, name, provider, collate)| {
                vec![
                    Value::Int8(oid),
                    Value::Text(name.into()),
                    Value::Int8(PG_CATALOG_OID as i64),
                    Value::Int8(SUPERUSER_OID as i64),
                    Value::Text(provider.into()),
                    Value::Bool(true),
                    Value::Int4(-1),
                    collate.clone(),
                    collate,
                ]
            })
            .collect(),
            CatalogView::Am => vec![
                vec![
                    Value::Int8(HEAP_AM_OID as i64),
                    Value::Text("heap".into()),
                    Value::Text("t".into()),
                ],
                vec![
                    Value::Int8(BTREE_AM_OID as i64),
                    Value::Text("btree".into()),
                    Value::Text("i".into()),
                ],
            ],
            CatalogView::Roles => {
                let mut out = vec![vec![
                    Value::Text("pg_database_owner".into()),
                    Value::Bool(false),
                    Value::Bool(true),
                    Value::Bool(false),
                    Value::Bool(false),
                    Value::Bool(false),
                    Value::Bool(false),
                    Value::Int4(-1),
                    Value::Text("********".into()),
                    Value::Null,
                    Value::Bool(false),
                    Value::Null,
                    Value::Int8(DATABASE_OWNER_OID as i64),
                ]];
                for r in crate::roles::list_roles(txn)? {
                    // A superuser has every attribute (Gnomon stores LOGIN and SUPERUSER).
                    let s = r.superuser;
                    out.push(vec![
                        Value::Text(r.name.clone()),
                        Value::Bool(s),
                        Value::Bool(true),
                        Value::Bool(s),
                        Value::Bool(s),
                        Value::Bool(r.login),
                        Value::Bool(s),
                        Value::Int4(-1),
                        Value::Text("********".into()),
                        Value::Null,
                        Value::Bool(s),
                        Value::Null,
                        Value::Int8(role_oid_of(&r.name)),
                    ]);
                }
                out
            }
            CatalogView::Database => {
                let mut out = Vec::new();
                for (k, v) in txn.scan(KeyPrefix::Database.range(), false, None)? {
                    if let Key::Database(name) = Key::decode(&k)? {
                        out.push(vec![
                            Value::Int8(crate::session::decode_database_oid(&v)?.0 as i64),
                            Value::Text(name),
                            Value::Int8(SUPERUSER_OID as i64),
                            Value::Int4(6),
                            Value::Text("c".into()),
                            Value::Bool(false),
                            Value::Bool(true),
                            Value::Int4(-1),
                            Value::Text("C.UTF-8".into()),
                            Value::Text("C.UTF-8".into()),
                            Value::Null,
                            Value::Null,
                        ]);
                    }
                }
                out
            }
            CatalogView::Tables => {
                let mut out = Vec::new();
                for t in tables(txn)? {
                    let owner = crate::privileges::table_acl(txn, t.id)?.owner;
                    out.push(vec![
                        Value::Text("public".into()),
                        Value::Text(t.name.clone()),
                        Value::Text(owner),
                        Value::Null,
                        Value::Bool(!t.primary_key.is_empty() || !t.indexes.is_empty()),
                        Value::Bool(false),
                        Value::Bool(!t.foreign_keys.is_empty() || !t.referenced_by.is_empty()),
                        Value::Bool(false),
                    ]);
                }
                out
            }
            CatalogView::Sequence => crate::sequence::all(txn)?
                .into_iter()
                .map(|s| {
                    vec![
                        Value::Int8(s.id as i64),
                        Value::Int8(s.ty.oid() as i64),
                        Value::Int8(s.start),
                        Value::Int8(s.increment),
                        Value::Int8(s.max),
                        Value::Int8(s.min),
                        Value::Int8(1),
                        Value::Bool(s.cycle),
                    ]
                })
                .collect(),
            CatalogView::AuthMembers
            | CatalogView::Description
            | CatalogView::Policy
            | CatalogView::StatisticExt
            | CatalogView::Publication
            | CatalogView::PublicationNamespace
            | CatalogView::PublicationRel
            | CatalogView::Trigger
            | CatalogView::Enum => vec![],
            CatalogView::Opclass => BTREE_OPCLASSES
                .iter()
                .map(|(oid, name, family, ty)| {
                    vec![
                        Value::Int8(i64::from(*oid)),
                        Value::Int8(i64::from(BTREE_AM_OID)),
                        Value::Text(name.to_string()),
                        Value::Int8(i64::from(PG_CATALOG_OID)),
                        Value::Int8(i64::from(SUPERUSER_OID)),
                        Value::Int8(i64::from(*family)),
                        Value::Int8(i64::from(*ty)),
                        Value::Bool(true),
                        Value::Int8(0),
                    ]
                })
                .collect(),
            CatalogView::Inherits => inherits_rows(txn)?,
        })
    }
}

/// `pg_inherits`: one row per partition (inhrelid) of a partitioned table (inhparent).
fn inherits_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let all = tables(txn)?;
    let mut out = Vec::new();
    for t in &all {
        if let Some((parent, _)) = &t.partitioning.of {
            if let Some(p) = all.iter().find(|p| &p.name == parent) {
                out.push(vec![
                    Value::Int8(t.id.0 as i64),
                    Value::Int8(p.id.0 as i64),
                    Value::Int4(1),
                    Value::Bool(false),
                ]);
            }
        }
    }
    Ok(out)
}

/// Whether a column has a default in PostgreSQL's sense (an identity column's sequence is
/// not one: PostgreSQL shows it as `generated ... as identity`, not as a pg_attrdef row).
fn has_default(c: &crate::catalog::ColumnDef) -> bool {
    c.default.is_some() && c.identity == Identity::None
}

/// Whether a column has a pg_attrdef row (`atthasdef`): a default, or a generated
/// column's expression.
fn has_attrdef(c: &crate::catalog::ColumnDef) -> bool {
    has_default(c) || c.generated.is_some()
}

/// `pg_attribute`: the columns of tables and of indexes (user columns only: no system
/// columns such as ctid, which Gnomon does not have).
fn attribute_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let mut out = Vec::new();
    let attr = |rel: u32, num: usize, c: &crate::catalog::ColumnDef, index: bool| {
        let (storage, align) = match c.ty {
            DataType::Numeric { .. } => ("m", "i"),
            DataType::Bool => ("p", "c"),
            DataType::Int2 => ("p", "s"),
            DataType::Int4 | DataType::Float4 | DataType::Date => ("p", "i"),
            DataType::Int8 | DataType::Float8 | DataType::Timestamp | DataType::Timestamptz => {
                ("p", "d")
            }
            _ => ("x", "i"),
        };
        vec![
            Value::Int8(rel as i64),
            Value::Text(c.name.clone()),
            Value::Int8(c.ty.oid() as i64),
            Value::Int2(c.ty.typlen()),
            Value::Int2(num as i16),
            Value::Int4(c.ty.typmod()),
            // attndims: 1 for an array column (Gnomon does not keep the declared count).
            Value::Int4(i32::from(matches!(c.ty, DataType::Array(_)))),
            Value::Bool(c.not_null && !index),
            Value::Bool(has_attrdef(c) && !index),
            Value::Bool(false),
            Value::Text(
                match c.identity {
                    Identity::None => "",
                    Identity::Always => "a",
                    Identity::ByDefault => "d",
                }
                .into(),
            ),
            Value::Text(
                if c.generated.is_some() && !index {
                    "s"
                } else {
                    ""
                }
                .into(),
            ),
            Value::Bool(false),
            Value::Bool(true),
            Value::Int2(0),
            Value::Int8(collation_of(&c.ty)),
            Value::Text(storage.into()),
            Value::Text(String::new()),
            Value::Int4(-1),
            Value::Text(align.into()),
            Value::Bool(c.ty.typlen() > 0),
        ]
    };
    for t in tables(txn)? {
        for (i, c) in t.columns.iter().enumerate() {
            out.push(attr(t.id.0, i + 1, c, false));
        }
        for ix in table_indexes(&t) {
            for (n, &c) in ix.cols.iter().enumerate() {
                out.push(attr(ix.oid, n + 1, &t.columns[c], true));
            }
        }
    }
    Ok(out)
}
