//! The catalog as data: `information_schema.tables` / `columns` and the core of
//! `pg_catalog.pg_class` / `pg_namespace`, computed from the table definitions the reading
//! transaction sees (so they are as transactional as the catalog itself).
//!
//! | view                          | rows                                                       |
//! |-------------------------------|------------------------------------------------------------|
//! | `information_schema.tables`   | one per table (`BASE TABLE`) in schema `public`            |
//! | `information_schema.columns`  | one per column: position, default, nullability, type name  |
//! | `pg_class`                    | tables (`r`), their indexes (`i`) and sequences (`S`)      |
//! | `pg_namespace`                | `pg_catalog`, `public`, `information_schema`, user schemas |
//! | `pg_type`                     | the built-in types Gnomon has, with PostgreSQL's OIDs      |
//!
//! OIDs are the objects' ids (tables, indexes and sequences share one counter from 16384, as
//! PostgreSQL's user objects do); namespaces use PostgreSQL's fixed OIDs (11, 2200) and
//! 13000 for information_schema. NB: only these columns exist; psql's `\d` family needs more
//! of pg_catalog (pg_attribute, pg_index, pg_type, format_type, ...) and is not served yet,
//! and `table_catalog` reads NULL (the reader does not know the session's database).

use crate::catalog::TableDef;
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

/// Every table definition `txn` sees, in name order (decoded from the catalog keys).
fn tables(txn: &dyn Transaction) -> SqlResult<Vec<TableDef>> {
    let mut out = Vec::new();
    for (k, v) in txn.scan(KeyPrefix::TableName.range(), false, None)? {
        let Key::TableName(_) = Key::decode(&k)? else {
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
];

/// `pg_namespace` columns.
pub(crate) const PG_NAMESPACE_COLUMNS: &[(&str, DataType)] = &[
    ("oid", DataType::Int8),
    ("nspname", DataType::Text),
    ("nspowner", DataType::Int8),
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
        _ => "unknown",
    }
}

/// `information_schema.tables` as `txn` sees it.
pub(crate) fn tables_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    Ok(tables(txn)?
        .into_iter()
        .map(|t| {
            vec![
                // NB: the reader does not know the session's database here.
                Value::Null,
                Value::Text("public".into()),
                Value::Text(t.name),
                Value::Text("BASE TABLE".into()),
            ]
        })
        .collect())
}

/// `information_schema.columns` as `txn` sees it.
pub(crate) fn columns_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let mut out = Vec::new();
    for t in tables(txn)? {
        for (i, c) in t.columns.iter().enumerate() {
            let max_len = match c.ty {
                DataType::Varchar(Some(n)) | DataType::Bpchar(Some(n)) => Value::Int4(n as i32),
                _ => Value::Null,
            };
            out.push(vec![
                // NB: the reader does not know the session's database here.
                Value::Null,
                Value::Text("public".into()),
                Value::Text(t.name.clone()),
                Value::Text(c.name.clone()),
                Value::Int4(i as i32 + 1),
                c.default.clone().map(Value::Text).unwrap_or(Value::Null),
                Value::Text(if c.not_null { "NO" } else { "YES" }.into()),
                Value::Text(sql_type_name(&c.ty).into()),
                max_len,
            ]);
        }
    }
    Ok(out)
}

/// `pg_class` as `txn` sees it: tables, indexes (the primary key's too) and sequences.
pub(crate) fn pg_class_rows(txn: &dyn Transaction) -> SqlResult<Vec<Vec<Value>>> {
    let mut out = Vec::new();
    let row = |oid: u32, name: String, kind: &str, natts: usize, has_index: bool| {
        vec![
            Value::Int8(oid as i64),
            Value::Text(name),
            Value::Int8(PUBLIC_OID as i64),
            Value::Text(kind.into()),
            Value::Int8(SUPERUSER_OID as i64),
            Value::Int2(natts as i16),
            Value::Bool(has_index),
        ]
    };
    for t in tables(txn)? {
        let has_index = !t.primary_key.is_empty() || !t.indexes.is_empty();
        out.push(row(t.id.0, t.name.clone(), "r", t.columns.len(), has_index));
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
            Value::Int8(SUPERUSER_OID as i64),
        ],
        vec![
            Value::Int8(INFORMATION_SCHEMA_OID as i64),
            Value::Text("information_schema".into()),
            Value::Int8(SUPERUSER_OID as i64),
        ],
    ];
    for (i, (k, _)) in txn
        .scan(KeyPrefix::Schema.range(), false, None)?
        .into_iter()
        .enumerate()
    {
        if let Key::Schema(name) = Key::decode(&k)? {
            out.push(vec![
                Value::Int8(INFORMATION_SCHEMA_OID as i64 + 1 + i as i64),
                Value::Text(name),
                Value::Int8(SUPERUSER_OID as i64),
            ]);
        }
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
];

/// `pg_type`: every type Gnomon implements, under PostgreSQL's OID, name, length, category
/// and array type OID (the array types themselves are not listed: arrays are not supported).
pub(crate) fn pg_type_rows() -> Vec<Vec<Value>> {
    // (type, PostgreSQL name, category, array type oid)
    let types: [(DataType, &str, &str, i64); 14] = [
        (DataType::Bool, "bool", "B", 1000),
        (DataType::Bytea, "bytea", "U", 1001),
        (DataType::Int8, "int8", "N", 1016),
        (DataType::Int2, "int2", "N", 1005),
        (DataType::Int4, "int4", "N", 1007),
        (DataType::Text, "text", "S", 1009),
        (DataType::Float4, "float4", "N", 1021),
        (DataType::Float8, "float8", "N", 1022),
        (DataType::Bpchar(None), "bpchar", "S", 1014),
        (DataType::Varchar(None), "varchar", "S", 1015),
        (DataType::Date, "date", "D", 1182),
        (DataType::Timestamp, "timestamp", "D", 1115),
        (DataType::Timestamptz, "timestamptz", "D", 1185),
        (
            DataType::Numeric {
                precision: None,
                scale: None,
            },
            "numeric",
            "N",
            1231,
        ),
    ];
    types
        .iter()
        .map(|(t, name, cat, array)| {
            vec![
                Value::Int8(t.oid() as i64),
                Value::Text(name.to_string()),
                Value::Int8(PG_CATALOG_OID as i64),
                Value::Int2(t.typlen()),
                Value::Text("b".into()),
                Value::Text(cat.to_string()),
                Value::Int8(*array),
            ]
        })
        .collect()
}
