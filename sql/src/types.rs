//! SQL data types and values, with PostgreSQL's text and binary I/O formats.
//!
//! Dates are days since 2000-01-01 and timestamps microseconds since 2000-01-01 00:00:00,
//! exactly PostgreSQL's internal (and binary wire) representation, so binary I/O is a copy.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::error::{SqlError, SqlResult, SqlState};

/// PostgreSQL type of a parameter or result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// boolean (oid 16).
    Bool,
    /// smallint (oid 21).
    Int2,
    /// integer (oid 23).
    Int4,
    /// bigint (oid 20).
    Int8,
    /// real (oid 700).
    Float4,
    /// double precision (oid 701).
    Float8,
    /// numeric(p,s) (oid 1700); `None` = unconstrained.
    Numeric {
        /// Total significant digits allowed.
        precision: Option<u32>,
        /// Digits after the decimal point.
        scale: Option<u32>,
    },
    /// text (oid 25).
    Text,
    /// character varying(n) (oid 1043).
    Varchar(Option<u32>),
    /// character(n) (oid 1042); blank-padded.
    Bpchar(Option<u32>),
    /// bytea (oid 17).
    Bytea,
    /// date (oid 1082).
    Date,
    /// timestamp without time zone (oid 1114).
    Timestamp,
    /// timestamp with time zone (oid 1184).
    Timestamptz,
    /// interval (oid 1186).
    Interval,
    /// The type of a quoted literal before context gives it one (oid 705).
    Unknown,
    /// int2vector (oid 22): a catalog column type (`pg_index.indkey`). The catalog's values
    /// are arrays of int2 from subscript 0 whose element type is this type (printed `1 2`);
    /// a value read from a client stays its text form.
    Int2Vector,
    /// oidvector (oid 30): like [`DataType::Int2Vector`], of OIDs (`pg_index.indclass`).
    OidVector,
    /// An array of the element type (`integer[]`, oid 1007). The element is never an array
    /// or `unknown` (PostgreSQL has one array type per element type, whatever the number of
    /// dimensions); build it with [`DataType::array_of`], which interns the element so the
    /// type stays `Copy`.
    Array(&'static DataType),
}

/// Unconstrained numeric, the type of decimal literals and of `sum(bigint)`, `avg(int)`.
pub const NUMERIC: DataType = DataType::Numeric {
    precision: None,
    scale: None,
};

impl DataType {
    /// The type's OID in pg_type.
    pub fn oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Bytea => 17,
            DataType::Int8 => 20,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Text => 25,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Unknown => 705,
            DataType::Bpchar(_) => 1042,
            DataType::Varchar(_) => 1043,
            DataType::Date => 1082,
            DataType::Timestamp => 1114,
            DataType::Timestamptz => 1184,
            DataType::Interval => 1186,
            DataType::Numeric { .. } => 1700,
            DataType::Array(elem) => elem.array_oid().unwrap_or(0),
            DataType::Int2Vector => 22,
            DataType::OidVector => 30,
        }
    }

    /// The array type whose elements are `elem` (`unknown` elements are `text`, as
    /// PostgreSQL resolves `ARRAY['a']`; an array's array is itself).
    pub fn array_of(elem: DataType) -> DataType {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static INTERNED: OnceLock<Mutex<HashMap<DataType, &'static DataType>>> = OnceLock::new();
        let elem = match elem {
            DataType::Array(_) => return elem,
            DataType::Unknown => DataType::Text,
            other => other,
        };
        let mut map = INTERNED
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // NB: one leaked allocation per distinct element type (modifiers included) for the
        // life of the process: a handful in practice.
        let interned: &'static DataType =
            map.entry(elem).or_insert_with(|| Box::leak(Box::new(elem)));
        DataType::Array(interned)
    }

    /// The element type of an array type.
    pub fn element(&self) -> Option<DataType> {
        match self {
            DataType::Array(elem) => Some(**elem),
            _ => None,
        }
    }

    /// pg_type.typarray: the OID of the array type over this type.
    pub fn array_oid(&self) -> Option<u32> {
        Some(match self {
            DataType::Bool => 1000,
            DataType::Bytea => 1001,
            DataType::Int2 => 1005,
            DataType::Int4 => 1007,
            DataType::Text => 1009,
            DataType::Bpchar(_) => 1014,
            DataType::Varchar(_) => 1015,
            DataType::Int8 => 1016,
            DataType::Float4 => 1021,
            DataType::Float8 => 1022,
            DataType::Timestamp => 1115,
            DataType::Date => 1182,
            DataType::Timestamptz => 1185,
            DataType::Interval => 1187,
            DataType::Numeric { .. } => 1231,
            DataType::Unknown | DataType::Array(_) | DataType::Int2Vector | DataType::OidVector => {
                return None
            }
        })
    }

    /// pg_type.typlen: the fixed size in bytes, or -1 for varlena (-2 for unknown/cstring).
    pub fn typlen(&self) -> i16 {
        match self {
            DataType::Bool => 1,
            DataType::Int2 => 2,
            DataType::Int4 | DataType::Float4 | DataType::Date => 4,
            DataType::Int8 | DataType::Float8 | DataType::Timestamp | DataType::Timestamptz => 8,
            DataType::Interval => 16,
            DataType::Unknown => -2,
            _ => -1,
        }
    }

    /// The type modifier as RowDescription reports it (-1 = none).
    pub fn typmod(&self) -> i32 {
        match self {
            DataType::Varchar(Some(n)) | DataType::Bpchar(Some(n)) => *n as i32 + 4,
            DataType::Numeric {
                precision: Some(p),
                scale,
            } => (((*p as i32) << 16) | scale.unwrap_or(0) as i32) + 4,
            DataType::Array(elem) => elem.typmod(),
            _ => -1,
        }
    }

    /// The type for an OID (modifiers unknown), or None for types Gnomon does not have.
    pub fn from_oid(oid: u32) -> Option<DataType> {
        Some(match oid {
            16 => DataType::Bool,
            17 => DataType::Bytea,
            20 => DataType::Int8,
            21 => DataType::Int2,
            23 => DataType::Int4,
            25 => DataType::Text,
            700 => DataType::Float4,
            701 => DataType::Float8,
            705 => DataType::Unknown,
            1042 => DataType::Bpchar(None),
            1043 => DataType::Varchar(None),
            1082 => DataType::Date,
            1114 => DataType::Timestamp,
            1184 => DataType::Timestamptz,
            1186 => DataType::Interval,
            1700 => NUMERIC,
            22 => DataType::Int2Vector,
            30 => DataType::OidVector,
            1000 | 1001 | 1005 | 1007 | 1009 | 1014 | 1015 | 1016 | 1021 | 1022 | 1115 | 1182
            | 1185 | 1187 | 1231 => {
                let elem = [
                    DataType::Bool,
                    DataType::Bytea,
                    DataType::Int2,
                    DataType::Int4,
                    DataType::Text,
                    DataType::Bpchar(None),
                    DataType::Varchar(None),
                    DataType::Int8,
                    DataType::Float4,
                    DataType::Float8,
                    DataType::Timestamp,
                    DataType::Date,
                    DataType::Timestamptz,
                    DataType::Interval,
                    NUMERIC,
                ]
                .into_iter()
                .find(|t| t.array_oid() == Some(oid))?;
                DataType::array_of(elem)
            }
            _ => return None,
        })
    }

    /// The name PostgreSQL uses in messages (`integer`, `character varying(10)`).
    pub fn name(&self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Numeric {
                precision: Some(p),
                scale,
            } => {
                format!("numeric({},{})", p, scale.unwrap_or(0))
            }
            DataType::Numeric { .. } => "numeric".into(),
            DataType::Text => "text".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Bpchar(Some(n)) => format!("character({n})"),
            DataType::Bpchar(None) => "bpchar".into(),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::Timestamptz => "timestamp with time zone".into(),
            DataType::Interval => "interval".into(),
            DataType::Unknown => "unknown".into(),
            DataType::Array(elem) => format!("{}[]", elem.name()),
            DataType::Int2Vector => "int2vector".into(),
            DataType::OidVector => "oidvector".into(),
        }
    }

    /// The type of the elements `unnest` gives: an array's element type, `smallint` for
    /// int2vector, `bigint` (Gnomon's oid) for oidvector; None for other types.
    pub(crate) fn set_element(&self) -> Option<DataType> {
        match self {
            DataType::Array(elem) => Some(**elem),
            DataType::Int2Vector => Some(DataType::Int2),
            DataType::OidVector => Some(DataType::Int8),
            _ => None,
        }
    }

    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self,
            DataType::Int2
                | DataType::Int4
                | DataType::Int8
                | DataType::Float4
                | DataType::Float8
                | DataType::Numeric { .. }
        )
    }

    pub(crate) fn is_string(&self) -> bool {
        matches!(
            self,
            DataType::Text | DataType::Varchar(_) | DataType::Bpchar(_)
        )
    }

    pub(crate) fn is_datetime(&self) -> bool {
        matches!(
            self,
            DataType::Date | DataType::Timestamp | DataType::Timestamptz
        )
    }

    /// Rank in the numeric promotion ladder int2 < int4 < int8 < numeric < float4 < float8.
    pub(crate) fn numeric_rank(&self) -> u8 {
        match self {
            DataType::Int2 => 1,
            DataType::Int4 => 2,
            DataType::Int8 => 3,
            DataType::Numeric { .. } => 4,
            DataType::Float4 => 5,
            DataType::Float8 => 6,
            _ => 0,
        }
    }
}

/// A SQL value. Dates are days and timestamps microseconds since 2000-01-01 (UTC for
/// timestamptz), PostgreSQL's own representation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// boolean.
    Bool(bool),
    /// smallint.
    Int2(i16),
    /// integer.
    Int4(i32),
    /// bigint.
    Int8(i64),
    /// real.
    Float4(f32),
    /// double precision.
    Float8(f64),
    /// numeric (28 significant digits; the scale is kept, `1.50` stays `1.50`).
    Numeric(Decimal),
    /// text, varchar, char (char values are stored blank-padded).
    Text(String),
    /// bytea.
    Bytea(Vec<u8>),
    /// date: days since 2000-01-01.
    Date(i32),
    /// timestamp: microseconds since 2000-01-01 00:00:00.
    Timestamp(i64),
    /// timestamptz: microseconds since 2000-01-01 00:00:00 UTC.
    Timestamptz(i64),
    /// interval: months, days and microseconds.
    Interval(crate::interval::Interval),
    /// An array (boxed: arrays are rare and `Value` stays small).
    Array(Box<ArrayValue>),
}

/// An array value: PostgreSQL's model, elements in row-major order over `dims`.
/// An empty array has no dimensions. Elements are of `elem`'s value kind or NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayValue {
    /// The element type (its OID travels in the binary format).
    pub elem: DataType,
    /// Dimensions, outermost first (at most [`MAX_ARRAY_DIMS`]).
    pub dims: Vec<ArrayDim>,
    /// The elements, `dims`' lengths multiplied.
    pub items: Vec<Value>,
}

/// One dimension of an array: its length and its lower bound (1 unless written `[0:2]=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayDim {
    /// Number of elements along this dimension (> 0).
    pub len: i32,
    /// Subscript of the first element.
    pub lower: i32,
}

/// PostgreSQL's MAXDIM.
pub const MAX_ARRAY_DIMS: usize = 6;

/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const UNIX_TO_PG_DAYS: i64 = 10_957;
/// Microseconds in a day.
pub(crate) const USECS_PER_DAY: i64 = 86_400_000_000;

fn invalid_input(ty: &DataType, s: &str) -> SqlError {
    let name = match ty {
        DataType::Varchar(_) | DataType::Bpchar(_) | DataType::Text => "text".to_string(),
        DataType::Numeric { .. } => "numeric".to_string(),
        other => other.name(),
    };
    if ty.is_datetime() && date_fields_are_numbers(s) {
        // Well-formed but impossible (month 13, February 30): PostgreSQL's 22008.
        return SqlError::new(
            SqlState::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{s}\""),
        );
    }
    let code = if ty.is_datetime() {
        SqlState::INVALID_DATETIME_FORMAT
    } else {
        SqlState::INVALID_TEXT_REPRESENTATION
    };
    SqlError::new(
        code,
        format!("invalid input syntax for type {name}: \"{s}\""),
    )
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The natural type of this value (Unknown for NULL).
    pub fn data_type(&self) -> DataType {
        match self {
            Value::Null => DataType::Unknown,
            Value::Bool(_) => DataType::Bool,
            Value::Int2(_) => DataType::Int2,
            Value::Int4(_) => DataType::Int4,
            Value::Int8(_) => DataType::Int8,
            Value::Float4(_) => DataType::Float4,
            Value::Float8(_) => DataType::Float8,
            Value::Numeric(_) => NUMERIC,
            Value::Text(_) => DataType::Text,
            Value::Bytea(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::Timestamptz(_) => DataType::Timestamptz,
            Value::Interval(_) => DataType::Interval,
            Value::Array(a) => match a.elem {
                DataType::Int2Vector | DataType::OidVector => a.elem,
                elem => DataType::array_of(elem),
            },
        }
    }

    /// PostgreSQL text output format (None for NULL), as with DateStyle=ISO, TimeZone=UTC,
    /// extra_float_digits=1 (shortest round-trip floats).
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Value::Int2(v) => v.to_string(),
            Value::Int4(v) => v.to_string(),
            Value::Int8(v) => v.to_string(),
            Value::Float4(v) => format_float(*v as f64, v.is_nan(), v.is_infinite(), 6, |e| {
                if e {
                    format!("{v:e}")
                } else {
                    format!("{v}")
                }
            }),
            Value::Float8(v) => format_float(*v, v.is_nan(), v.is_infinite(), 15, |e| {
                if e {
                    format!("{v:e}")
                } else {
                    format!("{v}")
                }
            }),
            Value::Numeric(d) => d.to_string(),
            Value::Text(s) => s.clone(),
            Value::Bytea(b) => {
                let mut s = String::with_capacity(2 + b.len() * 2);
                s.push_str("\\x");
                for byte in b {
                    let _ = write!(s, "{byte:02x}");
                }
                s
            }
            Value::Date(d) => format_date(*d),
            Value::Timestamp(t) => format_timestamp(*t),
            Value::Timestamptz(t) => format!("{}+00", format_timestamp(*t)),
            Value::Interval(i) => i.to_text(),
            Value::Array(a) => crate::array::to_text(a),
        })
    }

    /// PostgreSQL binary send format (None for NULL).
    pub fn to_binary(&self) -> Option<Vec<u8>> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => vec![*b as u8],
            Value::Int2(v) => v.to_be_bytes().to_vec(),
            Value::Int4(v) => v.to_be_bytes().to_vec(),
            Value::Int8(v) => v.to_be_bytes().to_vec(),
            Value::Float4(v) => v.to_be_bytes().to_vec(),
            Value::Float8(v) => v.to_be_bytes().to_vec(),
            Value::Numeric(d) => numeric_to_binary(d),
            Value::Text(s) => s.as_bytes().to_vec(),
            Value::Bytea(b) => b.clone(),
            Value::Date(d) => d.to_be_bytes().to_vec(),
            Value::Timestamp(t) | Value::Timestamptz(t) => t.to_be_bytes().to_vec(),
            Value::Interval(i) => i.to_binary(),
            Value::Array(a) => crate::array::to_binary(a),
        })
    }

    /// Parses PostgreSQL's text input format for `ty` (22P02 / 22007 / 22003 on bad input).
    pub fn from_text(s: &str, ty: &DataType) -> Result<Value, SqlError> {
        let t = s.trim();
        match ty {
            DataType::Bool => parse_bool(t)
                .map(Value::Bool)
                .ok_or_else(|| invalid_input(ty, s)),
            DataType::Int2 => {
                let v = parse_int(t, ty, s)?;
                i16::try_from(v).map(Value::Int2).map_err(|_| {
                    SqlError::out_of_range(format!(
                        "value \"{s}\" is out of range for type smallint"
                    ))
                })
            }
            DataType::Int4 => {
                let v = parse_int(t, ty, s)?;
                i32::try_from(v).map(Value::Int4).map_err(|_| {
                    SqlError::out_of_range(format!(
                        "value \"{s}\" is out of range for type integer"
                    ))
                })
            }
            DataType::Int8 => {
                let v = parse_int(t, ty, s)?;
                i64::try_from(v).map(Value::Int8).map_err(|_| {
                    SqlError::out_of_range(format!("value \"{s}\" is out of range for type bigint"))
                })
            }
            DataType::Float4 => {
                let v = parse_float(t).ok_or_else(|| invalid_input(ty, s))?;
                let f = v as f32;
                if f.is_infinite() && !v.is_infinite() {
                    return Err(SqlError::out_of_range(format!(
                        "\"{s}\" is out of range for type real"
                    )));
                }
                Ok(Value::Float4(f))
            }
            DataType::Float8 => parse_float(t)
                .map(Value::Float8)
                .ok_or_else(|| invalid_input(ty, s)),
            DataType::Numeric { .. } => {
                let d = parse_decimal(t).ok_or_else(|| invalid_input(ty, s))?;
                Ok(Value::Numeric(d))
            }
            DataType::Text | DataType::Varchar(_) | DataType::Bpchar(_) | DataType::Unknown => {
                Ok(Value::Text(s.to_string()))
            }
            DataType::Bytea => parse_bytea(s).map(Value::Bytea).ok_or_else(|| {
                SqlError::new(
                    SqlState::INVALID_TEXT_REPRESENTATION,
                    "invalid input syntax for type bytea",
                )
            }),
            DataType::Date => parse_date(t)
                .map(Value::Date)
                .ok_or_else(|| invalid_input(ty, s)),
            DataType::Timestamp => {
                let (us, _offset) = parse_timestamp(t).ok_or_else(|| invalid_input(ty, s))?;
                Ok(Value::Timestamp(us))
            }
            DataType::Timestamptz => {
                let (us, offset) = parse_timestamp(t).ok_or_else(|| invalid_input(ty, s))?;
                Ok(Value::Timestamptz(us - offset.unwrap_or(0) * 1_000_000))
            }
            DataType::Interval => crate::interval::Interval::parse(s, None).map(Value::Interval),
            DataType::Array(elem) => crate::array::from_text(s, elem).map(Value::from_array),
            DataType::Int2Vector | DataType::OidVector => Ok(Value::Text(s.to_string())),
        }
    }

    /// An array value, boxed.
    pub fn from_array(a: ArrayValue) -> Value {
        Value::Array(Box::new(a))
    }

    /// Parses PostgreSQL's binary receive format for `ty` (22P03 on a wrong length).
    pub fn from_binary(b: &[u8], ty: &DataType) -> Result<Value, SqlError> {
        fn fixed<const N: usize>(b: &[u8], ty: &DataType) -> SqlResult<[u8; N]> {
            b.try_into().map_err(|_| {
                SqlError::new(
                    SqlState::INVALID_BINARY_REPRESENTATION,
                    format!("incorrect binary data format for type {}", ty.name()),
                )
            })
        }
        Ok(match ty {
            DataType::Bool => Value::Bool(fixed::<1>(b, ty)?[0] != 0),
            DataType::Int2 => Value::Int2(i16::from_be_bytes(fixed(b, ty)?)),
            DataType::Int4 => Value::Int4(i32::from_be_bytes(fixed(b, ty)?)),
            DataType::Int8 => Value::Int8(i64::from_be_bytes(fixed(b, ty)?)),
            DataType::Float4 => Value::Float4(f32::from_be_bytes(fixed(b, ty)?)),
            DataType::Float8 => Value::Float8(f64::from_be_bytes(fixed(b, ty)?)),
            DataType::Numeric { .. } => Value::Numeric(numeric_from_binary(b)?),
            DataType::Text | DataType::Varchar(_) | DataType::Bpchar(_) | DataType::Unknown => {
                Value::Text(String::from_utf8(b.to_vec()).map_err(|_| {
                    SqlError::new(
                        SqlState::INVALID_BINARY_REPRESENTATION,
                        "invalid byte sequence for encoding \"UTF8\"",
                    )
                })?)
            }
            DataType::Bytea => Value::Bytea(b.to_vec()),
            DataType::Date => Value::Date(i32::from_be_bytes(fixed(b, ty)?)),
            DataType::Timestamp => Value::Timestamp(i64::from_be_bytes(fixed(b, ty)?)),
            DataType::Timestamptz => Value::Timestamptz(i64::from_be_bytes(fixed(b, ty)?)),
            DataType::Interval => {
                Value::Interval(crate::interval::Interval::from_binary(b).ok_or_else(|| {
                    SqlError::new(
                        SqlState::INVALID_BINARY_REPRESENTATION,
                        "incorrect binary data format for type interval",
                    )
                })?)
            }
            DataType::Array(elem) => Value::from_array(crate::array::from_binary(b, elem)?),
            DataType::Int2Vector | DataType::OidVector => {
                // The binary form is an array's; the value is the text form.
                let elem = if *ty == DataType::Int2Vector {
                    DataType::Int2
                } else {
                    DataType::Int8
                };
                let a = crate::array::from_binary(b, &elem)?;
                let parts: Vec<String> = a.items.iter().filter_map(Value::to_text).collect();
                Value::Text(parts.join(" "))
            }
        })
    }
}

/// PostgreSQL 12+ float output: shortest round-trip digits, exponent notation when the decimal
/// exponent is < -4 or >= `digits` (FLT_DIG 6 / DBL_DIG 15), exponent with sign and 2+ digits.
fn format_float(
    v: f64,
    nan: bool,
    inf: bool,
    digits: i32,
    render: impl Fn(bool) -> String,
) -> String {
    if nan {
        return "NaN".into();
    }
    if inf {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = render(true);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if exp < -4 || exp >= digits {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        render(false)
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_int(t: &str, ty: &DataType, original: &str) -> SqlResult<i128> {
    // Plain decimal digits that fit an i64 (what COPY and drivers send): one pass, no i128
    // parse.
    let (negative, plain) = match t.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    if !plain.is_empty() && plain.len() <= 18 && plain.iter().all(u8::is_ascii_digit) {
        let v = plain
            .iter()
            .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        return Ok(i128::from(if negative { -v } else { v }));
    }
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
        return Err(invalid_input(ty, original));
    }
    // Plain digits (what COPY and drivers send) parse without a copy.
    let parsed = if t.contains('_') {
        t.chars()
            .filter(|c| *c != '_')
            .collect::<String>()
            .parse::<i128>()
    } else {
        t.parse::<i128>()
    };
    match parsed {
        Ok(v) => Ok(v),
        // More digits than i128 holds: certainly out of range for any SQL integer.
        Err(_) => Ok(i128::MAX),
    }
}

fn parse_float(t: &str) -> Option<f64> {
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        other => {
            if other.contains("inf") || other.contains("nan") {
                return None;
            }
            other.parse::<f64>().ok()
        }
    }
}

/// Parses a decimal literal, including exponent notation (`1.5e3`).
pub(crate) fn parse_decimal(t: &str) -> Option<Decimal> {
    if t.is_empty() || t.contains(['n', 'N', 'i', 'I']) {
        return None;
    }
    if t.contains(['e', 'E']) {
        Decimal::from_scientific(t).ok()
    } else {
        Decimal::from_str(t).ok()
    }
}

fn parse_bytea(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let clean: Vec<u8> = hex.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        if !clean.len().is_multiple_of(2) {
            return None;
        }
        clean
            .chunks(2)
            .map(|pair| {
                let hi = (pair[0] as char).to_digit(16)?;
                let lo = (pair[1] as char).to_digit(16)?;
                Some((hi * 16 + lo) as u8)
            })
            .collect()
    } else {
        // Escape format: backslash-octal and doubled backslashes.
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                if bytes.get(i + 1) == Some(&b'\\') {
                    out.push(b'\\');
                    i += 2;
                } else {
                    let oct = s.get(i + 1..i + 4)?;
                    out.push(u8::from_str_radix(oct, 8).ok()?);
                    i += 4;
                }
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Some(out)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Builds a PostgreSQL date (days since 2000-01-01) from year, month, day; None if invalid.
pub(crate) fn make_date(y: i64, m: u32, d: u32) -> Option<i32> {
    if !(1..=12).contains(&m)
        || d == 0
        || d > days_in_month(y, m)
        || !(-4713..=5874897).contains(&y)
    {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d) - UNIX_TO_PG_DAYS).ok()
}

fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64 + UNIX_TO_PG_DAYS);
    if y <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - y, m, d)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn format_timestamp(us: i64) -> String {
    let days = us.div_euclid(USECS_PER_DAY);
    let rem = us.rem_euclid(USECS_PER_DAY);
    let (y, m, d) = civil_from_days(days + UNIX_TO_PG_DAYS);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        if y <= 0 { 1 - y } else { y },
        m,
        d,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    if y <= 0 {
        s.push_str(" BC");
    }
    s
}

/// Whether `s` starts with a `Y-M-D` date whose three fields are numbers (so a failed parse
/// means a field is out of range, not a syntax error).
fn date_fields_are_numbers(s: &str) -> bool {
    let date = s.trim().split([' ', 'T']).next().unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Parses `YYYY-MM-DD` (optionally ` BC`); also accepts `epoch`.
fn parse_date(t: &str) -> Option<i32> {
    if t.eq_ignore_ascii_case("epoch") {
        return Some(-(UNIX_TO_PG_DAYS as i32));
    }
    // A timestamp-looking string is accepted and truncated, as PostgreSQL does.
    let date_part = t.split([' ', 'T']).next()?;
    let bc = t.to_ascii_uppercase().ends_with(" BC");
    let mut parts = date_part.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    let y = if bc { 1 - y } else { y };
    make_date(y, m, d)
}

/// Parses `YYYY-MM-DD[ |T]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]`; returns (µs since 2000-01-01,
/// explicit UTC offset in seconds if one was written).
fn parse_timestamp(t: &str) -> Option<(i64, Option<i64>)> {
    if t.eq_ignore_ascii_case("epoch") {
        return Some((-UNIX_TO_PG_DAYS * USECS_PER_DAY, None));
    }
    let (date_s, rest) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], t[i + 1..].trim()),
        None => (t, ""),
    };
    let days = parse_date(date_s)? as i64;
    if rest.is_empty() {
        return Some((days * USECS_PER_DAY, None));
    }
    // Split off a zone suffix: Z, UTC, +hh, -hh:mm.
    let (time_s, offset) = split_zone(rest)?;
    let mut hms = time_s.splitn(3, ':');
    let h: i64 = hms.next()?.trim().parse().ok()?;
    let mi: i64 = hms.next()?.trim().parse().ok()?;
    let (sec, frac_us) = match hms.next() {
        None => (0, 0),
        Some(sec_s) => {
            let (whole, frac) = match sec_s.split_once('.') {
                Some((w, f)) => (w, f),
                None => (sec_s, ""),
            };
            let sec: i64 = whole.parse().ok()?;
            if !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Round to microseconds like PostgreSQL.
            let mut digits: String = frac.chars().take(7).collect();
            while digits.len() < 7 {
                digits.push('0');
            }
            let seven: i64 = digits.parse().ok()?;
            (sec, (seven + 5) / 10)
        }
    };
    if !(0..=24).contains(&h) || !(0..60).contains(&mi) || !(0..=60).contains(&sec) {
        return None;
    }
    let us = days * USECS_PER_DAY + ((h * 60 + mi) * 60 + sec) * 1_000_000 + frac_us;
    Some((us, offset))
}

fn split_zone(rest: &str) -> Option<(&str, Option<i64>)> {
    let upper = rest.to_ascii_uppercase();
    for suffix in ["UTC", "GMT", "Z"] {
        if upper.ends_with(suffix) {
            return Some((rest[..rest.len() - suffix.len()].trim(), Some(0)));
        }
    }
    if let Some(i) = rest.rfind(['+', '-']) {
        let (time_s, zone) = rest.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let z = &zone[1..];
        let (hh, mm) = match z.split_once(':') {
            Some((a, b)) => (a, b),
            None if z.len() == 4 => (&z[..2], &z[2..]),
            None => (z, "0"),
        };
        let hh: i64 = hh.parse().ok()?;
        let mm: i64 = mm.parse().ok()?;
        return Some((time_s.trim(), Some(sign * (hh * 3600 + mm * 60))));
    }
    Some((rest, None))
}

/// Days since 2000-01-01 to the timestamp at midnight.
pub(crate) fn date_to_timestamp(days: i32) -> i64 {
    days as i64 * USECS_PER_DAY
}

/// Timestamp to its date (floor).
pub(crate) fn timestamp_to_date(us: i64) -> i32 {
    us.div_euclid(USECS_PER_DAY) as i32
}

/// Microseconds since 2000-01-01 UTC for the current wall-clock time.
pub(crate) fn now_timestamp() -> i64 {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    since_unix - UNIX_TO_PG_DAYS * USECS_PER_DAY
}

/// numeric binary format:
///
/// ```text
/// +-------------+------------+-----------+-------------+----------------------+
/// | ndigits i16 | weight i16 | sign u16  | dscale u16  | digits: ndigits × i16 |
/// +-------------+------------+-----------+-------------+----------------------+
/// ```
/// Digits are base 10000, most significant first; value = Σ digit[i] × 10000^(weight − i);
/// sign 0x0000 positive, 0x4000 negative, 0xC000 NaN.
fn numeric_to_binary(d: &Decimal) -> Vec<u8> {
    let scale = d.scale() as usize;
    let mantissa = d.mantissa().unsigned_abs().to_string();
    // Split into integer and fraction digit strings.
    let (int_part, frac_part) = if mantissa.len() > scale {
        (
            mantissa[..mantissa.len() - scale].to_string(),
            mantissa[mantissa.len() - scale..].to_string(),
        )
    } else {
        (
            "0".to_string(),
            format!("{}{}", "0".repeat(scale - mantissa.len()), mantissa),
        )
    };
    let int_part = int_part.trim_start_matches('0');
    // Left-pad the integer part and right-pad the fraction to multiples of 4 digits.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_s = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_s = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int_s
        .as_bytes()
        .chunks(4)
        .chain(frac_s.as_bytes().chunks(4))
    {
        let s = std::str::from_utf8(chunk).unwrap_or("0");
        groups.push(s.parse().unwrap_or(0));
    }
    let mut weight = (int_s.len() / 4) as i16 - 1;
    // Strip leading zero groups (adjusting weight) and trailing zero groups.
    let mut start = 0;
    while start < groups.len() && groups[start] == 0 {
        start += 1;
        weight -= 1;
    }
    let mut end = groups.len();
    while end > start && groups[end - 1] == 0 {
        end -= 1;
    }
    let digits = &groups[start..end];
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + digits.len() * 2);
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    let sign: u16 = if d.is_sign_negative() && !d.is_zero() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in digits {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn numeric_from_binary(b: &[u8]) -> SqlResult<Decimal> {
    let bad = || {
        SqlError::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            "invalid numeric binary format",
        )
    };
    if b.len() < 8 {
        return Err(bad());
    }
    let rd = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let ndigits = rd(0) as usize;
    let weight = rd(2) as i16 as i64;
    let sign = rd(4);
    let dscale = rd(6) as u32;
    if b.len() != 8 + ndigits * 2 || sign == 0xC000 {
        return Err(bad());
    }
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    // Build a digit string with an explicit decimal point.
    let mut int_digits = String::new();
    let mut frac_digits = String::new();
    for i in 0..ndigits {
        let g = rd(8 + i * 2);
        if g > 9999 {
            return Err(bad());
        }
        let pos = weight - i as i64;
        if pos >= 0 {
            let _ = write!(int_digits, "{g:04}");
        } else {
            while (frac_digits.len() as i64) < (-pos - 1) * 4 {
                frac_digits.push_str("0000");
            }
            let _ = write!(frac_digits, "{g:04}");
        }
    }
    if weight >= ndigits as i64 {
        for _ in 0..(weight + 1 - ndigits as i64) {
            int_digits.push_str("0000");
        }
    }
    let int_digits = int_digits.trim_start_matches('0');
    text.push_str(if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    });
    let mut frac: String = frac_digits.chars().take(dscale as usize).collect();
    while frac.len() < dscale as usize {
        frac.push('0');
    }
    if !frac.is_empty() {
        text.push('.');
        text.push_str(&frac);
    }
    Decimal::from_str(&text)
        .map_err(|_| SqlError::out_of_range("numeric value does not fit Gnomon's 28-digit numeric"))
}

/// Compares two non-NULL values of comparable types (numbers across widths, strings,
/// dates and timestamps). None when the types cannot be compared.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    Some(match (a, b) {
        (Bool(x), Bool(y)) => x.cmp(y),
        (Text(x), Text(y)) => x.cmp(y),
        (Bytea(x), Bytea(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) | (Timestamptz(x), Timestamptz(y)) => x.cmp(y),
        (Timestamp(x), Timestamptz(y)) | (Timestamptz(x), Timestamp(y)) => x.cmp(y),
        (Date(x), Timestamp(y)) | (Date(x), Timestamptz(y)) => date_to_timestamp(*x).cmp(y),
        (Timestamp(x), Date(y)) | (Timestamptz(x), Date(y)) => x.cmp(&date_to_timestamp(*y)),
        (Interval(x), Interval(y)) => x.compare(y),
        (Interval(_), _) | (_, Interval(_)) => return None,
        (Array(x), Array(y)) => return crate::array::compare(x, y),
        (Array(_), _) | (_, Array(_)) => return None,
        _ => {
            if let (Some(x), Some(y)) = (as_i64(a), as_i64(b)) {
                return Some(x.cmp(&y));
            }
            if matches!(a, Float4(_) | Float8(_)) || matches!(b, Float4(_) | Float8(_)) {
                let x = as_f64(a)?;
                let y = as_f64(b)?;
                // PostgreSQL: NaN equals NaN and sorts above every number.
                return Some(match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                });
            }
            let x = as_decimal(a)?;
            let y = as_decimal(b)?;
            x.cmp(&y)
        }
    })
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int2(x) => Some(*x as i64),
        Value::Int4(x) => Some(*x as i64),
        Value::Int8(x) => Some(*x),
        _ => None,
    }
}

pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Float4(x) => Some(*x as f64),
        Value::Float8(x) => Some(*x),
        Value::Numeric(d) => d.to_f64(),
        other => as_i64(other).map(|x| x as f64),
    }
}

pub(crate) fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Numeric(d) => Some(*d),
        other => as_i64(other).map(Decimal::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(Value::Float8(0.1).to_text().as_deref(), Some("0.1"));
        assert_eq!(Value::Float8(1e20).to_text().as_deref(), Some("1e+20"));
        assert_eq!(Value::Float8(1.5e-5).to_text().as_deref(), Some("1.5e-05"));
        assert_eq!(
            Value::Float8(123456789012345.0).to_text().as_deref(),
            Some("123456789012345")
        );
        assert_eq!(
            Value::Float8(1234567890123456.0).to_text().as_deref(),
            Some("1.234567890123456e+15")
        );
        assert_eq!(Value::Float4(1.1).to_text().as_deref(), Some("1.1"));
        assert_eq!(
            Value::Float8(f64::INFINITY).to_text().as_deref(),
            Some("Infinity")
        );
        assert_eq!(Value::Float8(f64::NAN).to_text().as_deref(), Some("NaN"));
    }

    #[test]
    fn integers_parse_from_text_on_both_paths() {
        let int8 =
            |s: &str| Value::from_text(s, &DataType::Int8).map_err(|e| e.code.code().to_string());
        // One-pass path (up to 18 digits) and the general one (19 digits, underscores).
        assert_eq!(int8("42"), Ok(Value::Int8(42)));
        assert_eq!(int8(" -7 "), Ok(Value::Int8(-7)));
        assert_eq!(int8("+3"), Ok(Value::Int8(3)));
        assert_eq!(
            int8("999999999999999999"),
            Ok(Value::Int8(999_999_999_999_999_999))
        );
        assert_eq!(int8("9223372036854775807"), Ok(Value::Int8(i64::MAX)));
        assert_eq!(int8("-9223372036854775808"), Ok(Value::Int8(i64::MIN)));
        assert_eq!(int8("1_000"), Ok(Value::Int8(1000)));
        assert_eq!(int8("9223372036854775808"), Err("22003".to_string()));
        for bad in ["", "-", "12a", "+-5", "1.5"] {
            assert_eq!(int8(bad), Err("22P02".to_string()), "{bad:?}");
        }
        assert_eq!(
            Value::from_text("40000", &DataType::Int2).map_err(|e| e.code.code().to_string()),
            Err("22003".to_string())
        );
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let v = Value::from_text("2024-01-02 03:04:05.123456", &DataType::Timestamp).unwrap();
        assert_eq!(v.to_text().as_deref(), Some("2024-01-02 03:04:05.123456"));
        let v = Value::from_text("2024-01-02 03:04:05.5+02", &DataType::Timestamptz).unwrap();
        assert_eq!(v.to_text().as_deref(), Some("2024-01-02 01:04:05.5+00"));
        assert_eq!(
            Value::from_text("2000-01-01", &DataType::Date).unwrap(),
            Value::Date(0)
        );
        assert_eq!(Value::Date(-1).to_text().as_deref(), Some("1999-12-31"));
    }

    #[test]
    fn numeric_binary_round_trips() {
        for s in [
            "0",
            "1.50",
            "-12345.6789",
            "10000",
            "0.0001",
            "123456789.000001",
            "-0.5",
        ] {
            let d = Decimal::from_str(s).unwrap();
            let back = numeric_from_binary(&numeric_to_binary(&d)).unwrap();
            assert_eq!(back.to_string(), d.to_string(), "{s}");
        }
        // 1.50: ndigits 2, weight 0, sign 0, dscale 2, digits [1, 5000]
        let b = numeric_to_binary(&Decimal::from_str("1.50").unwrap());
        assert_eq!(b, vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]);
    }

    #[test]
    fn bad_integer_text_is_22p02_and_overflow_22003() {
        let e = Value::from_text("abc", &DataType::Int4).unwrap_err();
        assert_eq!(e.code.code(), "22P02");
        let e = Value::from_text("99999", &DataType::Int2).unwrap_err();
        assert_eq!(e.code.code(), "22003");
    }
}
