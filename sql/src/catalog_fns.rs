//! The functions, operators and casts that PostgreSQL clients use on the catalog: what psql's
//! `\d` family, SQLAlchemy and pgjdbc send (`format_type`, `pg_get_indexdef`,
//! `pg_get_constraintdef`, `pg_get_expr`, `pg_table_is_visible`, `pg_get_userbyid`, the `~` /
//! `!~` regex operators, `::regclass` / `::regtype` / `::regnamespace` / `::oid` casts,
//! `ARRAY(subquery)`, `ARRAY[...]`, `= ANY (array)`, `array_to_string`, subscripts).
//!
//! Functions that read the catalog do so through the statement's transaction (so they agree
//! with the `pg_catalog` views read in the same statement, see `pg_catalog.rs`).
//!
//! Design choices and their limits (all visible to a client):
//! - **Catalog arrays are their text form.** Array values of queries are real arrays
//!   (`array.rs`), but the array columns of the catalog views (`pg_database.datacl`,
//!   `pg_constraint.conkey`, ...) are `text` values holding PostgreSQL's array literal,
//!   typed `text` (oid 25) where PostgreSQL says `name[]` / `int2[]` (same text on the wire).
//!   `= ANY (array)`, the array functions, `unnest` and `a[i]` take either: an array value,
//!   or such a text form (whose elements are `text`, `a[i]` of it `unknown`).
//! - **reg types are not types.** A quoted name cast to `regclass` (`'items'::regclass`)
//!   is the relation's OID (`int8`), folded when the statement is bound (as PostgreSQL
//!   folds the constant); an OID cast to `regclass` (`c.oid::regclass`) is the relation's
//!   name (`text`). `::regclass::oid` and `::regclass::text` give what PostgreSQL gives.
//!   `regtype`, `regnamespace` and `regrole` work the same way over types, schemas and roles.
//! - **Regular expressions** use the `regex` crate, not PostgreSQL's ARE engine: the
//!   anchored alternations psql generates (`^(t1|t2)$`) and ordinary classes, quantifiers
//!   and anchors behave the same; back-references, lookahead and ARE escapes such as `\m`,
//!   `\M`, `\y` are rejected as invalid (2201B), and `.` / `[^x]` match newlines (PostgreSQL's
//!   default too).
//! - `COLLATE "default"` / `"C"` / `"POSIX"` are accepted and change nothing (Gnomon compares
//!   strings by code point, which is what C.UTF-8 does); other collations are 42704.

use std::cell::RefCell;

use sqlparser::ast;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{binary, cast, BinOp, Expr, Func};
use crate::plan::Scope;
use crate::query::{ident_name, AggState, Binder};
use crate::storage::Transaction;
use crate::types::{DataType, Value};

/// A catalog function, operator or cast after binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CatalogFn {
    /// `text ~ pattern` (`!~` negated, `~*` / `!~*` case-insensitive).
    Regex { negated: bool, insensitive: bool },
    /// `format_type(type oid, typmod)`.
    FormatType,
    /// `pg_get_expr(expr, relation [, pretty])`: the stored expression text.
    GetExpr,
    /// `pg_get_indexdef(index oid [, column, pretty])`.
    GetIndexdef,
    /// `pg_get_constraintdef(constraint oid [, pretty])`.
    GetConstraintdef,
    /// `pg_get_partkeydef(table oid)`: `RANGE (k)` for a partitioned table, else NULL.
    GetPartkeydef,
    /// `pg_partition_ancestors(oid)` in a select list (psql's "Referenced by" query of a
    /// partitioned table): the table itself. NB: a set-returning function in PostgreSQL;
    /// here one row, so a partition's parent is not among the results (in FROM it is, see
    /// `partition::bind_ancestors`).
    PartitionAncestorsSelf,
    /// `pg_table_is_visible(oid)`.
    TableIsVisible,
    /// `pg_get_userbyid(role oid)`.
    GetUserById,
    /// `pg_encoding_to_char(encoding)`.
    EncodingToChar,
    /// `pg_get_serial_sequence(table, column)`.
    GetSerialSequence,
    /// `array_to_string(array, separator [, null string])`.
    ArrayToString,
    /// `array_upper(array, dimension)`.
    ArrayUpper,
    /// `array_lower(array, dimension)`.
    ArrayLower,
    /// `array_length(array, dimension)`.
    ArrayLength,
    /// `array_ndims(array)`.
    ArrayNdims,
    /// `cardinality(array)`.
    Cardinality,
    /// `array || array` / `array_cat`: the elements of both (a NULL side is the other).
    ArrayCat,
    /// `array || element` / `array_append`.
    ArrayAppend,
    /// `element || array` / `array_prepend`.
    ArrayPrepend,
    /// `a @> b` (`reversed`: `a <@ b`): every element of the contained side equals one of
    /// the other's (a NULL element never does).
    ArrayContains { reversed: bool },
    /// `a && b`: the arrays have an element in common.
    ArrayOverlap,
    /// `generate_subscripts(array, dim)` in a select list: the subscripts as an `int4[]`,
    /// which the select list expands into rows (see `Binder::bind_select_list_srf`).
    GenerateSubscripts,
    /// `array[i]`.
    Subscript,
    /// `json_build_object(key, value, ...)`: a JSON object as text.
    JsonBuildObject,
    /// `ARRAY[a, b, ...]` of elements of type `elem` (an array type: sub-arrays).
    ArrayLiteral { elem: DataType },
    /// `x op ANY (array)` / `x op ALL (array)`, compared in `ty`.
    ArrayAny { op: BinOp, all: bool, ty: DataType },
    /// A function of objects Gnomon does not have (comments, statistics objects, triggers):
    /// always NULL.
    NullText,
    /// `pg_relation_is_publishable(oid)`: false (there are no publications).
    False,
    /// `pg_collation_is_visible` / `pg_type_is_visible`: true (everything is in the path).
    True,
    /// The OIDs of `pg_partition_ancestors(oid)` as an array (the relation itself, then its
    /// parents; none for a table that is neither a partition nor partitioned).
    PartitionAncestors,
    /// `to_regtype(name)`: the type's OID, or NULL.
    ToRegtype,
    /// `to_regclass(name)`: the relation's OID, or NULL.
    ToRegclass,
    /// OID -> relation name (`oid::regclass`).
    RegclassOut,
    /// Relation name -> OID (`text::regclass`).
    RegclassIn,
    /// OID -> type name (`oid::regtype`).
    RegtypeOut,
    /// OID -> schema name (`oid::regnamespace`).
    RegnamespaceOut,
    /// OID -> role name (`oid::regrole`).
    RegroleOut,
}

/// Argument types of a variadic `"any"` function: arguments keep their own types.
static ANY_ARGS: [DataType; 100] = [DataType::Unknown; 100];

/// The catalog function `name` with `nargs` arguments: the function, its argument types (the
/// arguments are coerced to them) and its result type.
pub(crate) fn signature(
    name: &str,
    nargs: usize,
) -> Option<(CatalogFn, &'static [DataType], DataType)> {
    use DataType::{Bool, Int4, Int8, Text, Unknown};
    Some(match (name, nargs) {
        ("format_type", 2) => (CatalogFn::FormatType, &[Int8, Int4], Text),
        ("pg_get_expr", 2) => (CatalogFn::GetExpr, &[Text, Int8], Text),
        ("pg_get_expr", 3) => (CatalogFn::GetExpr, &[Text, Int8, Bool], Text),
        ("pg_get_indexdef", 1) => (CatalogFn::GetIndexdef, &[Int8], Text),
        ("pg_get_indexdef", 3) => (CatalogFn::GetIndexdef, &[Int8, Int4, Bool], Text),
        ("pg_get_constraintdef", 1) => (CatalogFn::GetConstraintdef, &[Int8], Text),
        ("pg_get_partkeydef", 1) => (CatalogFn::GetPartkeydef, &[Int8], Text),
        ("pg_partition_ancestors", 1) => (CatalogFn::PartitionAncestorsSelf, &[Int8], Int8),
        ("pg_get_constraintdef", 2) => (CatalogFn::GetConstraintdef, &[Int8, Bool], Text),
        ("pg_table_is_visible", 1) => (CatalogFn::TableIsVisible, &[Int8], Bool),
        ("pg_get_userbyid", 1) => (CatalogFn::GetUserById, &[Int8], Text),
        ("pg_encoding_to_char", 1) => (CatalogFn::EncodingToChar, &[Int4], Text),
        ("pg_get_serial_sequence", 2) => (CatalogFn::GetSerialSequence, &[Text, Text], Text),
        // Array arguments keep their type (`unknown` here): an array value, or a catalog
        // array's text form.
        ("array_to_string", 2) => (CatalogFn::ArrayToString, &[Unknown, Text], Text),
        ("array_to_string", 3) => (CatalogFn::ArrayToString, &[Unknown, Text, Text], Text),
        ("array_upper", 2) => (CatalogFn::ArrayUpper, &[Unknown, Int4], Int4),
        ("array_lower", 2) => (CatalogFn::ArrayLower, &[Unknown, Int4], Int4),
        ("array_length", 2) => (CatalogFn::ArrayLength, &[Unknown, Int4], Int4),
        ("array_ndims", 1) => (CatalogFn::ArrayNdims, &[Unknown], Int4),
        ("cardinality", 1) => (CatalogFn::Cardinality, &[Unknown], Int4),
        ("to_regtype", 1) => (CatalogFn::ToRegtype, &[Text], Int8),
        ("to_regclass", 1) => (CatalogFn::ToRegclass, &[Text], Int8),
        ("json_build_object", n) if n % 2 == 0 && n <= ANY_ARGS.len() => {
            (CatalogFn::JsonBuildObject, &ANY_ARGS[..n], Text)
        }
        ("col_description", 2) => (CatalogFn::NullText, &[Int8, Int4], Text),
        ("obj_description", 1) | ("shobj_description", 1) => (CatalogFn::NullText, &[Int8], Text),
        ("obj_description", 2) | ("shobj_description", 2) => {
            (CatalogFn::NullText, &[Int8, Text], Text)
        }
        ("pg_get_statisticsobjdef_columns", 1) => (CatalogFn::NullText, &[Int8], Text),
        ("pg_get_triggerdef", 1) => (CatalogFn::NullText, &[Int8], Text),
        ("pg_get_triggerdef", 2) => (CatalogFn::NullText, &[Int8, Bool], Text),
        ("pg_relation_is_publishable", 1) => (CatalogFn::False, &[Int8], Bool),
        ("pg_collation_is_visible", 1) | ("pg_type_is_visible", 1) => {
            (CatalogFn::True, &[Int8], Bool)
        }
        _ => return None,
    })
}

/// Runs `f` on evaluated arguments; `txn` is the statement's transaction (catalog reads).
pub(crate) fn call(
    f: CatalogFn,
    args: &[Value],
    txn: Option<&dyn Transaction>,
) -> SqlResult<Value> {
    let txn = || txn.ok_or_else(|| SqlError::unsupported("catalog functions in this context"));
    // Strict functions: NULL in, NULL out (ARRAY[...] and array_to_string's null string aside).
    if !matches!(
        f,
        CatalogFn::ArrayLiteral { .. }
            | CatalogFn::NullText
            | CatalogFn::JsonBuildObject
            | CatalogFn::ArrayCat
            | CatalogFn::ArrayAppend
            | CatalogFn::ArrayPrepend
    ) && args.first().is_none_or(Value::is_null)
        && !args.is_empty()
    {
        return Ok(Value::Null);
    }
    let text = |i: usize| args.get(i).and_then(Value::to_text);
    let int = |i: usize| match args.get(i) {
        Some(Value::Int2(v)) => Some(*v as i64),
        Some(Value::Int4(v)) => Some(*v as i64),
        Some(Value::Int8(v)) => Some(*v),
        _ => None,
    };
    let t = |s: String| Ok(Value::Text(s));
    match f {
        CatalogFn::Regex {
            negated,
            insensitive,
        } => {
            let (Some(s), Some(p)) = (text(0), text(1)) else {
                return Ok(Value::Null);
            };
            Ok(Value::Bool(regex_match(&s, &p, insensitive)? != negated))
        }
        CatalogFn::FormatType => {
            let oid = int(0).unwrap_or(0);
            t(format_type(oid, int(1)))
        }
        CatalogFn::GetExpr => Ok(args[0].clone()),
        CatalogFn::GetIndexdef => {
            let oid = int(0).unwrap_or(0);
            let column = int(1).unwrap_or(0);
            Ok(crate::pg_catalog::index_def(txn()?, oid, column)?
                .map(Value::Text)
                .unwrap_or(Value::Null))
        }
        CatalogFn::PartitionAncestorsSelf => Ok(int(0).map(Value::Int8).unwrap_or(Value::Null)),
        CatalogFn::GetPartkeydef => {
            let oid = int(0).unwrap_or(0);
            Ok(crate::pg_catalog::tables(txn()?)?
                .into_iter()
                .find(|t| i64::from(t.id.0) == oid)
                .and_then(|t| crate::partition::key_text(&t))
                .map(Value::Text)
                .unwrap_or(Value::Null))
        }
        CatalogFn::GetConstraintdef => {
            let oid = int(0).unwrap_or(0);
            Ok(crate::pg_catalog::constraints(txn()?)?
                .into_iter()
                .find(|c| c.oid == oid)
                .map(|c| Value::Text(c.def))
                .unwrap_or(Value::Null))
        }
        CatalogFn::TableIsVisible => {
            let oid = int(0).unwrap_or(0);
            Ok(match crate::pg_catalog::relation_name(txn()?, oid)? {
                Some(_) => Value::Bool(true),
                None => Value::Null,
            })
        }
        CatalogFn::GetUserById => {
            let oid = int(0).unwrap_or(0);
            t(crate::pg_catalog::role_name(txn()?, oid)?
                .unwrap_or_else(|| format!("unknown (OID={oid})")))
        }
        CatalogFn::EncodingToChar => t(match int(0) {
            Some(0) => "SQL_ASCII".into(),
            Some(6) => "UTF8".into(),
            _ => String::new(),
        }),
        CatalogFn::GetSerialSequence => {
            let (Some(table), Some(column)) = (text(0), text(1)) else {
                return Ok(Value::Null);
            };
            let table = table.strip_prefix("public.").unwrap_or(&table).to_string();
            let table = unquote_ident(&table);
            let txn = txn()?;
            let Some(def) = crate::pg_catalog::tables(txn)?
                .into_iter()
                .find(|d| d.name == table)
            else {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("relation \"{table}\" does not exist"),
                ));
            };
            if def.column_index(&column).is_none() {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{column}\" of relation \"{table}\" does not exist"),
                ));
            }
            Ok(crate::sequence::all(txn)?
                .into_iter()
                .find(|s| s.owned_by.as_ref() == Some(&(def.id.0, column.clone())))
                .map(|s| Value::Text(format!("public.{}", quote_ident(&s.name))))
                .unwrap_or(Value::Null))
        }
        CatalogFn::ArrayToString => {
            let Some(sep) = text(1) else {
                return Ok(Value::Null);
            };
            let items = crate::array::elements(&args[0])?;
            let null = text(2);
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| i.to_text().or_else(|| null.clone()))
                .collect();
            t(parts.join(&sep))
        }
        CatalogFn::ArrayUpper | CatalogFn::ArrayLower | CatalogFn::ArrayLength => {
            let dims = array_dims(&args[0])?;
            let Some(d) = int(1)
                .and_then(|d| usize::try_from(d - 1).ok())
                .and_then(|d| dims.get(d))
            else {
                return Ok(Value::Null);
            };
            Ok(Value::Int4(match f {
                CatalogFn::ArrayUpper => d.lower + d.len - 1,
                CatalogFn::ArrayLower => d.lower,
                _ => d.len,
            }))
        }
        CatalogFn::ArrayNdims => {
            let dims = array_dims(&args[0])?;
            Ok(if dims.is_empty() {
                Value::Null
            } else {
                Value::Int4(dims.len() as i32)
            })
        }
        CatalogFn::Cardinality => {
            let dims = array_dims(&args[0])?;
            Ok(Value::Int4(if dims.is_empty() {
                0
            } else {
                dims.iter().map(|d| d.len).product()
            }))
        }
        CatalogFn::ArrayCat | CatalogFn::ArrayAppend | CatalogFn::ArrayPrepend => {
            crate::array::concat(f, &args[0], &args[1])
        }
        CatalogFn::ArrayContains { reversed } => {
            let (outer, inner) = if reversed {
                (&args[1], &args[0])
            } else {
                (&args[0], &args[1])
            };
            if outer.is_null() || inner.is_null() {
                return Ok(Value::Null);
            }
            let outer = crate::array::elements(outer)?;
            let inner = crate::array::elements(inner)?;
            Ok(Value::Bool(
                inner.iter().all(|x| has_equal_element(&outer, x)),
            ))
        }
        CatalogFn::ArrayOverlap => {
            if args[1].is_null() {
                return Ok(Value::Null);
            }
            let a = crate::array::elements(&args[0])?;
            let b = crate::array::elements(&args[1])?;
            Ok(Value::Bool(a.iter().any(|x| has_equal_element(&b, x))))
        }
        CatalogFn::GenerateSubscripts => {
            let dims = array_dims(&args[0])?;
            let Some(d) = int(1)
                .and_then(|d| usize::try_from(d - 1).ok())
                .and_then(|d| dims.get(d))
            else {
                return Ok(Value::Null);
            };
            let subs = (d.lower..d.lower + d.len).map(Value::Int4).collect();
            Ok(Value::from_array(crate::types::ArrayValue::one_dim(
                DataType::Int4,
                subs,
            )))
        }
        CatalogFn::Subscript => {
            let Some(i) = int(1) else {
                return Ok(Value::Null);
            };
            Ok(match &args[0] {
                Value::Array(a) => a.get(&[i]).cloned().unwrap_or(Value::Null),
                other => {
                    let items = crate::array::elements(other)?;
                    usize::try_from(i - 1)
                        .ok()
                        .and_then(|i| items.get(i).cloned())
                        .unwrap_or(Value::Null)
                }
            })
        }
        CatalogFn::JsonBuildObject => {
            let mut out = String::from("{");
            for (i, pair) in args.chunks(2).enumerate() {
                let [k, v] = pair else { break };
                let Some(key) = k.to_text() else {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "null value not allowed for object key",
                    ));
                };
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&json_string(&key));
                out.push_str(" : ");
                out.push_str(&match v {
                    Value::Null => "null".to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Int2(_)
                    | Value::Int4(_)
                    | Value::Int8(_)
                    | Value::Float4(_)
                    | Value::Float8(_)
                    | Value::Numeric(_) => v.to_text().unwrap_or_default(),
                    other => json_string(&other.to_text().unwrap_or_default()),
                });
            }
            out.push('}');
            t(out)
        }
        CatalogFn::ArrayLiteral { elem } => crate::array::construct(elem, args.to_vec()),
        CatalogFn::ArrayAny { op, all, ty } => {
            let probe = args[0].clone();
            let items = match args.get(1) {
                None | Some(Value::Null) => return Ok(Value::Null),
                Some(a) => crate::array::elements(a)?,
            };
            let mut saw_null = false;
            for item in items {
                let v = cast(item, &ty, true)?;
                match crate::expr::truth(&binary(op, probe.clone(), v, &ty)?) {
                    Some(b) if b != all => return Ok(Value::Bool(b)),
                    Some(_) => {}
                    None => saw_null = true,
                }
            }
            Ok(if saw_null {
                Value::Null
            } else {
                Value::Bool(all)
            })
        }
        CatalogFn::NullText => Ok(Value::Null),
        CatalogFn::False => Ok(Value::Bool(false)),
        CatalogFn::True => Ok(Value::Bool(true)),
        CatalogFn::RegclassOut => {
            let oid = int(0).unwrap_or(0);
            if oid == 0 {
                return t("-".into());
            }
            t(crate::pg_catalog::relation_name(txn()?, oid)?
                .map(|n| quote_ident(&n))
                .unwrap_or_else(|| oid.to_string()))
        }
        CatalogFn::PartitionAncestors => {
            let oid = int(0).unwrap_or(0);
            let all = crate::pg_catalog::tables(txn()?)?;
            let mut out = Vec::new();
            let mut cur = all.iter().find(|t| t.id.0 as i64 == oid);
            while let Some(t) = cur {
                let partitioned = t.partitioning.key.is_some() || t.partitioning.of.is_some();
                if !partitioned || out.len() > all.len() {
                    break;
                }
                out.push(Some(t.id.0.to_string()));
                cur = t
                    .partitioning
                    .of
                    .as_ref()
                    .and_then(|(parent, _)| all.iter().find(|p| &p.name == parent));
            }
            t(format_array(&out))
        }
        CatalogFn::ToRegtype => Ok(text(0)
            .and_then(|n| type_oid(&n))
            .map(Value::Int8)
            .unwrap_or(Value::Null)),
        CatalogFn::ToRegclass => {
            let name = text(0).unwrap_or_default();
            Ok(match regclass_oid(txn()?, &name) {
                Ok(oid) => Value::Int8(oid),
                Err(_) => Value::Null,
            })
        }
        CatalogFn::RegclassIn => {
            let name = text(0).unwrap_or_default();
            Ok(Value::Int8(regclass_oid(txn()?, &name)?))
        }
        CatalogFn::RegtypeOut => {
            let oid = int(0).unwrap_or(0);
            t(if oid == 0 {
                "-".into()
            } else if DataType::from_oid(oid as u32).is_some() || known_type_name(oid).is_some() {
                format_type(oid, None)
            } else {
                oid.to_string()
            })
        }
        CatalogFn::RegnamespaceOut => {
            let oid = int(0).unwrap_or(0);
            t(crate::pg_catalog::namespace_name(txn()?, oid)?
                .map(|n| quote_ident(&n))
                .unwrap_or_else(|| oid.to_string()))
        }
        CatalogFn::RegroleOut => {
            let oid = int(0).unwrap_or(0);
            if oid == 0 {
                return t("-".into());
            }
            t(crate::pg_catalog::role_name(txn()?, oid)?
                .map(|n| quote_ident(&n))
                .unwrap_or_else(|| oid.to_string()))
        }
    }
}

thread_local! {
    /// The last pattern compiled on this thread (a catalog query matches every row against
    /// one pattern).
    static LAST_REGEX: RefCell<Option<(String, bool, regex::Regex)>> = const { RefCell::new(None) };
}

/// Whether `s` matches the regular expression `pattern` somewhere (PostgreSQL's `~`).
pub(crate) fn regex_match(s: &str, pattern: &str, insensitive: bool) -> SqlResult<bool> {
    LAST_REGEX.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((p, ci, re)) = cell.as_ref() {
            if p == pattern && *ci == insensitive {
                return Ok(re.is_match(s));
            }
        }
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(insensitive)
            .dot_matches_new_line(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let msg = match e {
                    regex::Error::Syntax(s) => {
                        s.lines().last().unwrap_or("syntax error").to_string()
                    }
                    regex::Error::CompiledTooBig(_) => "regular expression is too complex".into(),
                    _ => "invalid pattern".into(),
                };
                SqlError::new(
                    SqlState::INVALID_REGULAR_EXPRESSION,
                    format!("invalid regular expression: {msg}"),
                )
            })?;
        let hit = re.is_match(s);
        *cell = Some((pattern.to_string(), insensitive, re));
        Ok(hit)
    })
}

/// PostgreSQL's `format_type(oid, typmod)`: the SQL name of a type, with its modifier.
pub(crate) fn format_type(oid: i64, typmod: Option<i64>) -> String {
    let Ok(oid32) = u32::try_from(oid) else {
        return "???".into();
    };
    if let Some(t) = DataType::from_oid(oid32) {
        let m = typmod.unwrap_or(-1);
        let t = match t {
            DataType::Varchar(_) if m >= 4 => DataType::Varchar(Some((m - 4) as u32)),
            DataType::Bpchar(_) if m >= 4 => DataType::Bpchar(Some((m - 4) as u32)),
            // format_type(1042, NULL) is "character"; with typmod -1 it is "bpchar".
            DataType::Bpchar(_) if typmod.is_none() => return "character".into(),
            DataType::Numeric { .. } if m >= 4 => DataType::Numeric {
                precision: Some((((m - 4) >> 16) & 0xffff) as u32),
                scale: Some(((m - 4) & 0xffff) as u32),
            },
            // The element's modifier: varchar(10)[] is 1015 with typmod 14.
            DataType::Array(elem) => {
                let elem_name = format_type(i64::from(elem.oid()), typmod);
                return format!("{elem_name}[]");
            }
            other => other,
        };
        return t.name();
    }
    known_type_name(oid).unwrap_or("???").to_string()
}

/// Names of the types that appear in the catalog views but are not column types.
fn known_type_name(oid: i64) -> Option<&'static str> {
    Some(match oid {
        18 => "\"char\"",
        19 => "name",
        22 => "int2vector",
        26 => "oid",
        194 => "pg_node_tree",
        1003 => "name[]",
        1028 => "oid[]",
        1034 => "aclitem[]",
        2205 => "regclass",
        2206 => "regtype",
        _ => return None,
    })
}

/// The OID of the type a SQL type name names (`integer`, `pg_catalog.int4`, `varchar(3)`).
fn type_oid(name: &str) -> Option<i64> {
    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(name)
        .and_then(|mut p| p.parse_data_type())
        .ok()
        .and_then(|t| crate::query::convert_type(&t).ok())
        .map(|t| t.oid() as i64)
}

/// PostgreSQL 15's OIDs of the system catalogs clients name as regclass constants
/// (SQLAlchemy's `classoid = 'pg_catalog.pg_class'::regclass` for table comments).
fn system_relation_oid(name: &str) -> Option<i64> {
    Some(match name {
        "pg_type" => 1247,
        "pg_attribute" => 1249,
        "pg_proc" => 1255,
        "pg_class" => 1259,
        "pg_database" => 1262,
        "pg_namespace" => 2615,
        "pg_constraint" => 2606,
        "pg_description" => 2609,
        "pg_index" => 2610,
        "pg_trigger" => 2620,
        "pg_attrdef" => 2604,
        _ => return None,
    })
}

/// The OID a relation name (or a number) stands for, as `'name'::regclass` resolves it.
pub(crate) fn regclass_oid(txn: &dyn Transaction, name: &str) -> SqlResult<i64> {
    let trimmed = name.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed.parse::<i64>().map_err(|_| {
            SqlError::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                format!("value \"{trimmed}\" is out of range for type oid"),
            )
        });
    }
    let unqualified = trimmed
        .strip_prefix("public.")
        .or_else(|| trimmed.strip_prefix("pg_catalog."))
        .unwrap_or(trimmed);
    let wanted = unquote_ident(unqualified);
    if let Some(oid) = system_relation_oid(&wanted) {
        return Ok(oid);
    }
    crate::pg_catalog::relation_oid(txn, &wanted)?.ok_or_else(|| {
        SqlError::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{trimmed}\" does not exist"),
        )
    })
}

/// An identifier as SQL text: case-folded unless double-quoted.
fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_lowercase(),
    }
}

/// PostgreSQL's `quote_ident`: double-quotes a name unless it is a plain lower-case identifier.
pub(crate) fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    let keyword = matches!(
        s,
        "all"
            | "and"
            | "any"
            | "array"
            | "as"
            | "asc"
            | "both"
            | "case"
            | "cast"
            | "check"
            | "column"
            | "constraint"
            | "create"
            | "default"
            | "desc"
            | "distinct"
            | "do"
            | "else"
            | "end"
            | "false"
            | "for"
            | "foreign"
            | "from"
            | "grant"
            | "group"
            | "having"
            | "in"
            | "into"
            | "limit"
            | "not"
            | "null"
            | "offset"
            | "on"
            | "only"
            | "or"
            | "order"
            | "primary"
            | "references"
            | "select"
            | "table"
            | "then"
            | "to"
            | "true"
            | "union"
            | "unique"
            | "user"
            | "using"
            | "when"
            | "where"
            | "with"
    );
    if plain && !keyword {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The dimensions of an array value or of an array's (or vector's) text form.
fn array_dims(v: &Value) -> SqlResult<Vec<crate::types::ArrayDim>> {
    crate::array::dims_of(v)
}

/// Whether `x` is non-NULL and equal to a non-NULL element of `items` (the element test of
/// `@>`, `<@` and `&&`: a NULL element never matches).
fn has_equal_element(items: &[Value], x: &Value) -> bool {
    !x.is_null()
        && items.iter().any(|y| {
            !y.is_null() && crate::types::compare_values(x, y) == Some(std::cmp::Ordering::Equal)
        })
}

/// PostgreSQL's text form of a one-dimensional array.
pub(crate) fn format_array(items: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::array::push_element(&mut out, item.as_deref());
    }
    out.push('}');
    out
}

/// What a chain of casts over a reg type asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RegWant {
    /// The reg type itself: an OID from a name, a name from an OID.
    Natural,
    /// `::oid` after it.
    Oid,
    /// `::text` after it.
    Name,
}

/// The reg types.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RegKind {
    Class,
    Type,
    Namespace,
    Role,
}

fn reg_kind(t: &ast::DataType) -> Option<RegKind> {
    let name = match t {
        ast::DataType::Regclass => return Some(RegKind::Class),
        ast::DataType::Custom(name, _) => name,
        _ => return None,
    };
    let last = name.0.last()?.as_ident()?;
    Some(match ident_name(last).as_str() {
        "regclass" => RegKind::Class,
        "regtype" => RegKind::Type,
        "regnamespace" => RegKind::Namespace,
        "regrole" => RegKind::Role,
        _ => return None,
    })
}

fn is_oid_type(t: &ast::DataType) -> bool {
    match t {
        ast::DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| ident_name(i) == "oid"),
        _ => false,
    }
}

fn is_text_type(t: &ast::DataType) -> bool {
    matches!(t, ast::DataType::Text)
        || matches!(t, ast::DataType::Custom(name, _) if name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| ident_name(i) == "text"))
}

impl Binder<'_> {
    /// Binds a cast the catalog needs and the general binder does not know: to a reg type,
    /// to `oid`, to an array type, or to `text` over a reg type. None: not one of those.
    pub(crate) fn bind_catalog_cast(
        &mut self,
        expr: &ast::Expr,
        to: &ast::DataType,
        scope: &Scope,
        agg: Option<&mut AggState>,
    ) -> SqlResult<Option<(Expr, DataType)>> {
        if let (ast::DataType::Array(_), ast::Expr::Array(a)) = (to, expr) {
            if a.elem.is_empty() {
                // `ARRAY[]::int[]`: the empty array of the cast's type.
                let ty = crate::query::convert_type(to)?;
                let elem = ty.element().unwrap_or(DataType::Text);
                let empty = crate::types::ArrayValue::one_dim(elem, vec![]);
                return Ok(Some((Expr::Const(Value::from_array(empty)), ty)));
            }
        }
        let inner_reg = match expr {
            ast::Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => reg_kind(data_type).map(|k| (inner.as_ref(), k)),
            _ => None,
        };
        if let Some((inner, kind)) = inner_reg {
            if is_oid_type(to) {
                return self
                    .bind_reg(inner, kind, RegWant::Oid, scope, agg)
                    .map(Some);
            }
            if is_text_type(to) {
                return self
                    .bind_reg(inner, kind, RegWant::Name, scope, agg)
                    .map(Some);
            }
        }
        if let Some(kind) = reg_kind(to) {
            return self
                .bind_reg(expr, kind, RegWant::Natural, scope, agg)
                .map(Some);
        }
        if is_oid_type(to) {
            let (e, t) = self.bind_expr(expr, scope, agg)?;
            return Ok(Some(match e {
                Expr::Const(v) => (Expr::Const(cast(v, &DataType::Int8, true)?), DataType::Int8),
                e => (
                    Expr::Cast {
                        expr: Box::new(self.coerce(e, t, t)?),
                        ty: DataType::Int8,
                        explicit: true,
                    },
                    DataType::Int8,
                ),
            }));
        }
        Ok(None)
    }

    fn bind_reg(
        &mut self,
        expr: &ast::Expr,
        kind: RegKind,
        want: RegWant,
        scope: &Scope,
        agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let (e, t) = self.bind_expr(expr, scope, agg)?;
        let out_fn = match kind {
            RegKind::Class => CatalogFn::RegclassOut,
            RegKind::Type => CatalogFn::RegtypeOut,
            RegKind::Namespace => CatalogFn::RegnamespaceOut,
            RegKind::Role => CatalogFn::RegroleOut,
        };
        if t.is_string() || t == DataType::Unknown {
            let oid_expr = match (&e, kind) {
                (Expr::Const(Value::Text(s)), RegKind::Class) => {
                    Expr::Const(Value::Int8(regclass_oid(self.txn, s)?))
                }
                (Expr::Const(Value::Text(s)), _) => {
                    Expr::Const(Value::Int8(self.reg_name_oid(kind, s)?))
                }
                (_, RegKind::Class) => Expr::Func(
                    Func::Catalog(CatalogFn::RegclassIn),
                    vec![self.coerce(e, t, DataType::Text)?],
                ),
                _ => {
                    return Err(SqlError::unsupported(
                        "casting a non-constant to this reg type",
                    ))
                }
            };
            return Ok(match want {
                RegWant::Name => (
                    Expr::Func(Func::Catalog(out_fn), vec![oid_expr]),
                    DataType::Text,
                ),
                _ => (oid_expr, DataType::Int8),
            });
        }
        if !matches!(t, DataType::Int2 | DataType::Int4 | DataType::Int8) {
            return Err(SqlError::new(
                SqlState::CANNOT_COERCE,
                format!("cannot cast type {} to oid", t.name()),
            ));
        }
        let e = self.coerce(e, t, DataType::Int8)?;
        Ok(match want {
            RegWant::Oid => (e, DataType::Int8),
            _ => (Expr::Func(Func::Catalog(out_fn), vec![e]), DataType::Text),
        })
    }

    /// The OID of a type, schema or role named by a constant.
    fn reg_name_oid(&self, kind: RegKind, name: &str) -> SqlResult<i64> {
        let trimmed = name.trim();
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(trimmed.parse::<i64>().unwrap_or(0));
        }
        let found = match kind {
            RegKind::Type => type_oid(trimmed),
            RegKind::Namespace => {
                crate::pg_catalog::namespace_oid(self.txn, &unquote_ident(trimmed))?
            }
            RegKind::Role => crate::pg_catalog::role_oid(self.txn, &unquote_ident(trimmed))?,
            RegKind::Class => Some(regclass_oid(self.txn, trimmed)?),
        };
        found.ok_or_else(|| match kind {
            RegKind::Type => SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("type \"{trimmed}\" does not exist"),
            ),
            RegKind::Namespace => SqlError::new(
                SqlState::INVALID_SCHEMA_NAME,
                format!("schema \"{trimmed}\" does not exist"),
            ),
            _ => SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("role \"{trimmed}\" does not exist"),
            ),
        })
    }

    /// `left ~ right` and friends (`OPERATOR(pg_catalog.~)` included).
    pub(crate) fn bind_regex(
        &mut self,
        left: &ast::Expr,
        right: &ast::Expr,
        negated: bool,
        insensitive: bool,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let op = match (negated, insensitive) {
            (false, false) => "~",
            (true, false) => "!~",
            (false, true) => "~*",
            (true, true) => "!~*",
        };
        let operand = |b: &mut Self, e: &ast::Expr, agg: Option<&mut AggState>| {
            let (x, t) = b.bind_expr(e, scope, agg)?;
            if t.is_string() || t == DataType::Unknown {
                b.coerce(x, t, DataType::Text)
            } else {
                Err(SqlError::undefined_function(format!(
                    "operator does not exist: {} {op} unknown",
                    t.name()
                ))
                .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts."))
            }
        };
        let l = operand(self, left, agg.as_deref_mut())?;
        let r = operand(self, right, agg)?;
        Ok((
            Expr::Func(
                Func::Catalog(CatalogFn::Regex {
                    negated,
                    insensitive,
                }),
                vec![l, r],
            ),
            DataType::Bool,
        ))
    }

    /// `COLLATE name`: the default, C and POSIX collations change nothing; others are 42704.
    pub(crate) fn bind_collate(
        &mut self,
        expr: &ast::Expr,
        collation: &ast::ObjectName,
        scope: &Scope,
        agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let name = collation
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.clone())
            .unwrap_or_default();
        if !matches!(
            name.as_str(),
            "default" | "C" | "POSIX" | "c" | "posix" | "C.UTF-8" | "C.utf8"
        ) {
            return Err(SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("collation \"{name}\" for encoding \"UTF8\" does not exist"),
            ));
        }
        let (e, t) = self.bind_expr(expr, scope, agg)?;
        if t == DataType::Unknown {
            return Ok((self.coerce(e, t, DataType::Text)?, DataType::Text));
        }
        if !t.is_string() {
            return Err(SqlError::new(
                SqlState::DATATYPE_MISMATCH,
                format!("collations are not supported by type {}", t.name()),
            ));
        }
        Ok((e, t))
    }

    /// `ARRAY[a, b, ...]`: the text form of the array of the (unified) elements.
    pub(crate) fn bind_array_literal(
        &mut self,
        elems: &[ast::Expr],
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let mut items = Vec::with_capacity(elems.len());
        for e in elems {
            items.push(self.bind_expr(e, scope, agg.as_deref_mut())?);
        }
        if elems.is_empty() {
            return Err(SqlError::new(
                SqlState::INDETERMINATE_DATATYPE,
                "cannot determine type of empty array",
            )
            .with_hint("Explicitly cast to the desired type, for example ARRAY[]::integer[]."));
        }
        let (items, unified) = self.unify(items, "ARRAY")?;
        // Sub-arrays (ARRAY[ARRAY[1,2], ARRAY[3,4]]) keep their array type: the literal adds
        // a dimension over them.
        Ok((
            Expr::Func(
                Func::Catalog(CatalogFn::ArrayLiteral { elem: unified }),
                items,
            ),
            DataType::array_of(unified),
        ))
    }

    /// `a || b` with an array on one side, `array_cat`, `array_append`, `array_prepend`:
    /// array and array (an untyped literal is an array), array and element, element and
    /// array, in the common element type.
    pub(crate) fn bind_array_concat(
        &mut self,
        (l, lt): (Expr, DataType),
        (r, rt): (Expr, DataType),
        what: &str,
    ) -> SqlResult<(Expr, DataType)> {
        let no_operator = || {
            SqlError::undefined_function(if what == "||" {
                format!("operator does not exist: {} || {}", lt.name(), rt.name())
            } else {
                format!("function {what}({}, {}) does not exist", lt.name(), rt.name())
            })
            .with_hint(if what == "||" {
                "No operator matches the given name and argument types. You might need to add explicit type casts."
            } else {
                "No function matches the given name and argument types. You might need to add explicit type casts."
            })
        };
        let (f, le, re) = match (lt.element(), rt.element(), what) {
            (Some(a), Some(b), "||" | "array_cat") => (CatalogFn::ArrayCat, a, b),
            (Some(a), None, "||" | "array_cat") if rt == DataType::Unknown && what == "||" => {
                (CatalogFn::ArrayCat, a, a)
            }
            (Some(a), None, "||" | "array_append") => (CatalogFn::ArrayAppend, a, rt),
            (None, Some(b), "||") if lt == DataType::Unknown => (CatalogFn::ArrayCat, b, b),
            (None, Some(b), "||" | "array_prepend") => (CatalogFn::ArrayPrepend, lt, b),
            _ => return Err(no_operator()),
        };
        let elem = match (le, re) {
            (DataType::Unknown, x) | (x, DataType::Unknown) => x,
            // Strings keep the array's element type (varchar[] || text is varchar[], as
            // PostgreSQL resolves it).
            (a, b) if a.is_string() && b.is_string() => {
                if f == CatalogFn::ArrayPrepend {
                    b
                } else {
                    a
                }
            }
            (a, b) => crate::expr::comparison_type(&a, &b).ok_or_else(no_operator)?,
        };
        let ty = DataType::array_of(elem);
        let side = |b: &mut Self, e: Expr, t: DataType, array: bool| {
            b.coerce(e, t, if array { ty } else { elem })
        };
        let l = side(self, l, lt, f != CatalogFn::ArrayPrepend)?;
        let r = side(self, r, rt, f != CatalogFn::ArrayAppend)?;
        Ok((Expr::Func(Func::Catalog(f), vec![l, r]), ty))
    }

    /// `a @> b`, `a <@ b` (`contains`: Some(false) / Some(true)) and `a && b` (None) over
    /// arrays of comparable elements (an untyped literal is an array of the other's type).
    pub(crate) fn bind_array_containment(
        &mut self,
        (l, lt): (Expr, DataType),
        (r, rt): (Expr, DataType),
        symbol: &str,
        contains: Option<bool>,
    ) -> SqlResult<(Expr, DataType)> {
        let no_operator = || {
            SqlError::undefined_function(format!(
                "operator does not exist: {} {symbol} {}",
                lt.name(),
                rt.name()
            ))
            .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
        };
        let (le, re) = match (lt.element(), rt.element()) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) if rt == DataType::Unknown => (a, a),
            (None, Some(b)) if lt == DataType::Unknown => (b, b),
            _ => return Err(no_operator()),
        };
        // anyarray @> anyarray: the same element type on both sides (bigint[] @> integer[] is
        // 42883 in PostgreSQL too).
        if le.oid() != re.oid() {
            return Err(no_operator());
        }
        let ty = DataType::array_of(le);
        let l = self.coerce(l, lt, ty)?;
        let r = self.coerce(r, rt, ty)?;
        let f = match contains {
            Some(reversed) => CatalogFn::ArrayContains { reversed },
            None => CatalogFn::ArrayOverlap,
        };
        Ok((Expr::Func(Func::Catalog(f), vec![l, r]), DataType::Bool))
    }

    /// `left op ANY (array)` / `left op ALL (array)` over an array value.
    pub(crate) fn bind_array_any(
        &mut self,
        left: &ast::Expr,
        op: BinOp,
        all: bool,
        right: &ast::Expr,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let (l, lt) = self.bind_expr(left, scope, agg.as_deref_mut())?;
        let (r, rt) = self.bind_expr(right, scope, agg)?;
        let no_operator = |lt: &DataType, elem: &DataType| {
            SqlError::undefined_function(format!(
                "operator does not exist: {} {} {}",
                lt.name(),
                crate::expr::op_symbol(op),
                elem.name()
            ))
            .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
        };
        let (l, r, ty) = match rt {
            DataType::Array(elem) => {
                // A real array: compare in the common type of the operand and the elements.
                let ty = crate::expr::comparison_type(&lt, elem)
                    .ok_or_else(|| no_operator(&lt, elem))?;
                (self.coerce(l, lt, ty)?, r, ty)
            }
            DataType::Unknown => {
                // An untyped literal or parameter: an array of the operand's type, as
                // PostgreSQL resolves `x = ANY($1)` (the parameter becomes `integer[]`).
                let ty = if lt == DataType::Unknown {
                    DataType::Text
                } else {
                    lt
                };
                let l = self.coerce(l, lt, ty)?;
                (l, self.coerce(r, rt, DataType::array_of(ty))?, ty)
            }
            t if t.is_string() => {
                // A catalog view's array column (its text form).
                let ty = if lt == DataType::Unknown {
                    DataType::Text
                } else {
                    lt
                };
                (self.coerce(l, lt, ty)?, r, ty)
            }
            _ => {
                return Err(SqlError::undefined_function(format!(
                    "op ANY/ALL (array) requires array on right side, not {}",
                    rt.name()
                )))
            }
        };
        Ok((
            Expr::Func(
                Func::Catalog(CatalogFn::ArrayAny { op, all, ty }),
                vec![l, r],
            ),
            DataType::Bool,
        ))
    }

    /// `array[i]` (one subscript). The element's type is not known here: it is typed
    /// `unknown`, so a comparison or cast gives it one.
    pub(crate) fn bind_subscript(
        &mut self,
        root: &ast::Expr,
        index: &ast::Expr,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let (a, at) = self.bind_expr(root, scope, agg.as_deref_mut())?;
        let (i, it) = self.bind_expr(index, scope, agg)?;
        let i = self.coerce(i, it, DataType::Int4)?;
        let (a, ty) = match at {
            DataType::Array(elem) => (a, *elem),
            // The text form of a catalog array: the element's type is not known here, so it
            // is typed `unknown` and a comparison or cast gives it one.
            _ => (self.coerce(a, at, DataType::Text)?, DataType::Unknown),
        };
        Ok((
            Expr::Func(Func::Catalog(CatalogFn::Subscript), vec![a, i]),
            ty,
        ))
    }
}

impl Binder<'_> {
    /// A set-returning function as a whole select-list item (`SELECT unnest(indkey),
    /// generate_subscripts(indkey, 1) FROM pg_index`): the expression giving the row's
    /// set as an array, and the type of its elements. The select list then makes one row
    /// per element, the sets of one row side by side (NULL past a shorter one), as
    /// PostgreSQL 10+. None: not such an item.
    pub(crate) fn bind_select_list_srf(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
    ) -> SqlResult<Option<(Expr, DataType)>> {
        let ast::Expr::Function(f) = e else {
            return Ok(None);
        };
        if f.over.is_some() || !matches!(f.args, ast::FunctionArguments::List(_)) {
            return Ok(None);
        }
        let name = crate::query::function_name(f);
        if name != "unnest" && name != "generate_subscripts" {
            return Ok(None);
        }
        let (args, _, _) = self.function_args(f)?;
        match (name.as_str(), args.as_slice()) {
            ("unnest", [a]) => {
                let (x, t) = self.bind_expr(a, scope, None)?;
                let elem = match t.set_element() {
                    Some(elem) => elem,
                    // An array's text form (a catalog array column, a literal).
                    None if t.is_string() || t == DataType::Unknown => DataType::Text,
                    None => {
                        return Err(SqlError::undefined_function(format!(
                            "function unnest({}) does not exist",
                            t.name()
                        )))
                    }
                };
                Ok(Some((x, elem)))
            }
            ("generate_subscripts", [a, d]) => {
                let (x, _) = self.bind_expr(a, scope, None)?;
                let (dim, dt) = self.bind_expr(d, scope, None)?;
                let dim = self.coerce(dim, dt, DataType::Int4)?;
                Ok(Some((
                    Expr::Func(Func::Catalog(CatalogFn::GenerateSubscripts), vec![x, dim]),
                    DataType::Int4,
                )))
            }
            _ => Ok(None),
        }
    }

    /// `unnest(array) [AS] alias`: a one-column source of the array's elements (text).
    pub(crate) fn bind_unnest(
        &mut self,
        name: &str,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(crate::query::Source, Scope)> {
        let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))] = args else {
            return Err(SqlError::undefined_function(format!(
                "function {name} with these arguments does not exist"
            )));
        };
        if name == "pg_partition_ancestors" {
            // An unnest of the ancestors' OIDs; the column is PostgreSQL's OUT name `relid`.
            let (e, t) = self.bind_expr(arg, &Scope::default(), None)?;
            // The argument is a regclass: a quoted name or number resolves now.
            let e = match (e, t) {
                (Expr::Const(Value::Text(s)), DataType::Unknown) => {
                    Expr::Const(Value::Int8(regclass_oid(self.txn, &s)?))
                }
                (e, t) => self.coerce(e, t, DataType::Int8)?,
            };
            let oids = Expr::Func(Func::Catalog(CatalogFn::PartitionAncestors), vec![e]);
            let qualifier = alias.map_or_else(|| name.to_string(), |a| ident_name(&a.name));
            let col = alias
                .and_then(|a| a.columns.first())
                .map_or_else(|| "relid".to_string(), |c| ident_name(&c.name));
            return Ok(unnest_source(oids, qualifier, col, DataType::Int8));
        }
        self.bind_unnest_expr(arg, alias, DataType::Text)
    }

    /// `unnest(arg) [AS] alias` for one argument expression.
    pub(crate) fn bind_unnest_expr(
        &mut self,
        arg: &ast::Expr,
        alias: Option<&ast::TableAlias>,
        ty: DataType,
    ) -> SqlResult<(crate::query::Source, Scope)> {
        let (e, t) = self.bind_expr(arg, &Scope::default(), None)?;
        let (e, ty) = match t.set_element() {
            Some(elem) => (e, elem),
            None => (self.coerce(e, t, DataType::Text)?, ty),
        };
        let (qualifier, col) = crate::query::function_column_names(alias, "unnest");
        Ok(unnest_source(e, qualifier, col, ty))
    }
}

/// A one-column source of an array's elements, cast to `ty`.
fn unnest_source(
    e: Expr,
    qualifier: String,
    col: String,
    ty: DataType,
) -> (crate::query::Source, Scope) {
    let scope = Scope::of_columns(vec![crate::plan::ScopeColumn {
        qualifier: Some(qualifier),
        name: col,
        ty,
        table_oid: 0,
        column_id: 0,
        unqualified: true,
    }]);
    (crate::query::Source::Unnest(e, ty), scope)
}

/// Rows of `unnest(array)` for an evaluated array argument, elements cast to `ty`.
pub(crate) fn unnest_rows(v: &Value, ty: &DataType) -> SqlResult<Vec<Vec<Value>>> {
    crate::array::elements(v)?
        .into_iter()
        .map(|i| Ok(vec![cast(i, ty, true)?]))
        .collect()
}

/// A FROM-less SELECT whose one output is a set-returning catalog function
/// (`SELECT pg_partition_ancestors(x)`, as psql sends it inside `IN (...)`), rewritten to
/// read the function in FROM. None: not that shape.
pub(crate) fn select_list_srf(s: &ast::Select) -> SqlResult<Option<ast::Select>> {
    if !s.from.is_empty() || s.projection.len() != 1 || s.selection.is_some() {
        return Ok(None);
    }
    let (f, alias) = match &s.projection[0] {
        ast::SelectItem::UnnamedExpr(ast::Expr::Function(f)) => (f, None),
        ast::SelectItem::ExprWithAlias {
            expr: ast::Expr::Function(f),
            alias,
        } => (f, Some(alias)),
        _ => return Ok(None),
    };
    let name = f
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_name)
        .unwrap_or_default();
    if !matches!(name.as_str(), "pg_partition_ancestors" | "unnest") {
        return Ok(None);
    }
    let ast::FunctionArguments::List(args) = &f.args else {
        return Ok(None);
    };
    let col = alias.map(|a| a.to_string()).unwrap_or_else(|| name.clone());
    let args: Vec<String> = args.args.iter().map(|a| a.to_string()).collect();
    let sql = format!(
        "SELECT {col} FROM pg_catalog.{name}({}) AS {name}({col})",
        args.join(", ")
    );
    let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    match *parsed.body {
        ast::SetExpr::Select(sel) => Ok(Some(*sel)),
        _ => Ok(None),
    }
}

/// The expression text PostgreSQL's `pg_get_expr` shows for a column default stored as
/// `text`: string literals get the cast PostgreSQL's parser adds (`'x'::text`).
pub(crate) fn default_display(text: &str, ty: &DataType) -> String {
    let literal = text.len() >= 2
        && text.starts_with('\'')
        && text.ends_with('\'')
        && !text[1..text.len() - 1].replace("''", "").contains('\'');
    if !literal {
        return text.to_string();
    }
    let cast_name = match ty {
        DataType::Varchar(_) => "character varying".to_string(),
        DataType::Bpchar(_) => "bpchar".to_string(),
        DataType::Numeric { .. } => "numeric".to_string(),
        other => other.name(),
    };
    format!("{text}::{cast_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_through_their_text_form() {
        let items = vec![
            Some("a".to_string()),
            Some("b c".to_string()),
            None,
            Some("".to_string()),
            Some("x\"y".to_string()),
            Some("NULL".to_string()),
        ];
        let text = format_array(&items);
        assert_eq!(text, r#"{a,"b c",NULL,"","x\"y","NULL"}"#);
        assert_eq!(crate::array::parse_text(&text).unwrap().1, items);
    }

    #[test]
    fn format_type_matches_postgres() {
        assert_eq!(format_type(1043, Some(44)), "character varying(40)");
        assert_eq!(format_type(1043, Some(-1)), "character varying");
        assert_eq!(format_type(1700, Some(655366)), "numeric(10,2)");
        assert_eq!(format_type(1042, Some(12)), "character(8)");
        assert_eq!(format_type(1042, None), "character");
        assert_eq!(format_type(23, Some(-1)), "integer");
        assert_eq!(format_type(99999, Some(-1)), "???");
    }

    #[test]
    fn regex_matches_psql_patterns_and_rejects_bad_ones() {
        assert!(regex_match("items", "^(items)$", false).unwrap());
        assert!(!regex_match("items2", "^(items)$", false).unwrap());
        assert!(regex_match("pg_toast", "^pg_", false).unwrap());
        assert!(regex_match("ITEMS", "^(items)$", true).unwrap());
        let e = regex_match("x", "(", false).unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_REGULAR_EXPRESSION);
    }

    #[test]
    fn defaults_show_as_postgres_deparses_them() {
        assert_eq!(default_display("'none'", &DataType::Text), "'none'::text");
        assert_eq!(
            default_display("'x'", &DataType::Varchar(Some(3))),
            "'x'::character varying"
        );
        assert_eq!(default_display("1", &DataType::Int8), "1");
        assert_eq!(default_display("now()", &DataType::Timestamptz), "now()");
    }
}
