//! Array values: PostgreSQL's text form (`array_in` / `array_out`), binary form
//! (`array_recv` / `array_send`) and ordering, over [`ArrayValue`].
//!
//! An array holds its element type, its dimensions (length and lower bound each, outermost
//! first) and its elements in row-major order. Every element type has one array type
//! (`integer[]` is `integer[][]`), as in PostgreSQL.
//!
//! Text form (what `'{...}'::int[]` reads and every text result prints):
//!
//! ```text
//!   [ "[" lower ":" upper "]" ... "=" ]  "{" item ("," item)* "}"      item := array | element
//!   {1,2}   {{1,2},{3,4}}   [0:1]={7,8}   {"a b",NULL,"NULL","",x}   {}
//! ```
//! An element is quoted on output when it is empty, spells NULL, or holds `"`, `\`, `{`, `}`,
//! `,` or white space; `"` and `\` are backslash-escaped inside quotes. The bounds prefix is
//! printed only when some lower bound is not 1. Malformed input is 22P02 `malformed array
//! literal` with PostgreSQL 15's DETAIL.
//!
//! Binary form (FROZEN: it is PostgreSQL's wire format):
//!
//! ```text
//! +----------+-------------+---------------+----------------------------+-------------------+
//! | ndim i32 | hasnull i32 | elem oid u32  | ndim × (len i32, lower i32)| items × (len i32, |
//! |          | (0 or 1)    |               |                            |  bytes; -1 = NULL)|
//! +----------+-------------+---------------+----------------------------+-------------------+
//! ```
//! An empty array is `ndim 0`. Each element is in its type's own binary format.
//!
//! Left out: arrays of arrays' slices (`a[1:2]`), assignment to elements (`a[1] = x`), and
//! arrays of types Gnomon does not have.

use std::cmp::Ordering;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::{compare_values, ArrayDim, ArrayValue, DataType, Value, MAX_ARRAY_DIMS};

/// PostgreSQL's MaxArraySize: the most elements an array may hold.
const MAX_ARRAY_ITEMS: usize = 134_217_727;

impl ArrayValue {
    /// A one-dimensional array of `items` (empty: no dimensions).
    pub fn one_dim(elem: DataType, items: Vec<Value>) -> ArrayValue {
        let dims = if items.is_empty() {
            vec![]
        } else {
            vec![ArrayDim {
                len: items.len() as i32,
                lower: 1,
            }]
        };
        ArrayValue {
            elem: normal_elem(elem),
            dims,
            items,
        }
    }

    /// The element at subscripts `subs` (one per dimension, each counted from the
    /// dimension's lower bound), or None when out of range or the subscripts do not match
    /// the dimensions (PostgreSQL returns NULL then).
    pub fn get(&self, subs: &[i64]) -> Option<&Value> {
        if subs.len() != self.dims.len() || subs.is_empty() {
            return None;
        }
        let mut offset = 0usize;
        for (d, &s) in self.dims.iter().zip(subs) {
            let i = s.checked_sub(i64::from(d.lower))?;
            if i < 0 || i >= i64::from(d.len) {
                return None;
            }
            offset = offset * d.len as usize + i as usize;
        }
        self.items.get(offset)
    }
}

fn normal_elem(elem: DataType) -> DataType {
    match elem {
        DataType::Unknown => DataType::Text,
        DataType::Array(e) => *e,
        other => other,
    }
}

/// Whether an element's text must be quoted inside an array's text form.
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.chars().any(|c| {
            matches!(
                c,
                '{' | '}' | ',' | '"' | '\\' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'
            )
        })
}

/// Appends one element (or NULL) as it appears inside an array's text form.
pub(crate) fn push_element(out: &mut String, text: Option<&str>) {
    match text {
        None => out.push_str("NULL"),
        Some(s) if needs_quotes(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        Some(s) => out.push_str(s),
    }
}

/// An int2vector / oidvector value (`kind` is [`DataType::Int2Vector`] or
/// [`DataType::OidVector`]): an array of int2 / oid (Gnomon's int8) items with subscripts from
/// 0, printed as PostgreSQL prints vectors (`1 2`) and sent in the array binary format with
/// element type int2 / oid.
pub(crate) fn vector(kind: DataType, items: Vec<Value>) -> Value {
    let dims = if items.is_empty() {
        vec![]
    } else {
        vec![ArrayDim {
            len: items.len() as i32,
            lower: 0,
        }]
    };
    Value::from_array(ArrayValue {
        elem: kind,
        dims,
        items,
    })
}

fn is_vector(a: &ArrayValue) -> bool {
    matches!(a.elem, DataType::Int2Vector | DataType::OidVector)
}

/// `array_out`.
pub(crate) fn to_text(a: &ArrayValue) -> String {
    if is_vector(a) {
        let parts: Vec<String> = a.items.iter().filter_map(Value::to_text).collect();
        return parts.join(" ");
    }
    let mut out = String::new();
    if a.dims.is_empty() {
        return "{}".into();
    }
    if a.dims.iter().any(|d| d.lower != 1) {
        for d in &a.dims {
            out.push_str(&format!("[{}:{}]", d.lower, d.lower + d.len - 1));
        }
        out.push('=');
    }
    let mut next = 0;
    write_level(&mut out, &a.dims, &a.items, &mut next);
    out
}

fn write_level(out: &mut String, dims: &[ArrayDim], items: &[Value], next: &mut usize) {
    out.push('{');
    let Some((d, inner)) = dims.split_first() else {
        out.push('}');
        return;
    };
    for i in 0..d.len {
        if i > 0 {
            out.push(',');
        }
        if inner.is_empty() {
            let text = items.get(*next).and_then(Value::to_text);
            push_element(out, text.as_deref());
            *next += 1;
        } else {
            write_level(out, inner, items, next);
        }
    }
    out.push('}');
}

/// `array_send`.
pub(crate) fn to_binary(a: &ArrayValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + a.dims.len() * 8 + a.items.len() * 8);
    out.extend_from_slice(&(a.dims.len() as i32).to_be_bytes());
    let has_null = a.items.iter().any(Value::is_null);
    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
    let elem_oid: u32 = match a.elem {
        DataType::Int2Vector => 21,
        DataType::OidVector => 26,
        other => other.oid(),
    };
    out.extend_from_slice(&elem_oid.to_be_bytes());
    for d in &a.dims {
        out.extend_from_slice(&d.len.to_be_bytes());
        out.extend_from_slice(&d.lower.to_be_bytes());
    }
    for item in &a.items {
        if let (DataType::OidVector, Value::Int8(oid)) = (a.elem, item) {
            // An oid is 4 bytes on the wire.
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(*oid as u32).to_be_bytes());
            continue;
        }
        match item.to_binary() {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(&b);
            }
        }
    }
    out
}

fn binary_error(message: &str) -> SqlError {
    SqlError::new(SqlState::INVALID_BINARY_REPRESENTATION, message.to_string())
}

fn too_many_dims(n: i64) -> SqlError {
    SqlError::new(
        SqlState::PROGRAM_LIMIT_EXCEEDED,
        format!("number of array dimensions ({n}) exceeds the maximum allowed ({MAX_ARRAY_DIMS})"),
    )
}

fn too_big() -> SqlError {
    SqlError::new(
        SqlState::PROGRAM_LIMIT_EXCEEDED,
        format!("array size exceeds the maximum allowed ({MAX_ARRAY_ITEMS})"),
    )
}

/// `array_recv` for an array of `elem` (42804 when the data's element type is another one).
pub(crate) fn from_binary(b: &[u8], elem: &DataType) -> SqlResult<ArrayValue> {
    let mut pos = 0usize;
    let int = |b: &[u8], pos: &mut usize| -> SqlResult<i32> {
        let at = *pos;
        let bytes: [u8; 4] = b
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                SqlError::new(
                    SqlState::PROTOCOL_VIOLATION,
                    "insufficient data left in message",
                )
            })?;
        *pos += 4;
        Ok(i32::from_be_bytes(bytes))
    };
    let ndim = int(b, &mut pos)?;
    let flags = int(b, &mut pos)?;
    let elem_oid = int(b, &mut pos)? as u32;
    if ndim < 0 {
        return Err(binary_error(&format!(
            "invalid number of dimensions: {ndim}"
        )));
    }
    if ndim as usize > MAX_ARRAY_DIMS {
        return Err(too_many_dims(i64::from(ndim)));
    }
    if flags != 0 && flags != 1 {
        return Err(binary_error("invalid array flags"));
    }
    if elem_oid != elem.oid() {
        return Err(SqlError::new(
            SqlState::DATATYPE_MISMATCH,
            "wrong element type",
        ));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    let mut total: usize = 1;
    for _ in 0..ndim {
        let len = int(b, &mut pos)?;
        let lower = int(b, &mut pos)?;
        if len < 0 {
            return Err(too_big());
        }
        if lower.checked_add(len).is_none() {
            return Err(SqlError::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                "array lower bound is too large",
            ));
        }
        total = total.saturating_mul(len as usize);
        dims.push(ArrayDim { len, lower });
    }
    if total > MAX_ARRAY_ITEMS {
        return Err(too_big());
    }
    if dims.is_empty() || dims.iter().any(|d| d.len == 0) {
        // A zero-length dimension is the empty array.
        dims.clear();
        total = 0;
    }
    // Every element takes at least its 4-byte length: refuse counts the data cannot hold
    // before allocating for them.
    if total > (b.len() - pos) / 4 {
        return Err(SqlError::new(
            SqlState::PROTOCOL_VIOLATION,
            "insufficient data left in message",
        ));
    }
    let mut items = Vec::with_capacity(total);
    for _ in 0..total {
        let len = int(b, &mut pos)?;
        if len == -1 {
            items.push(Value::Null);
            continue;
        }
        let body = usize::try_from(len)
            .ok()
            .and_then(|n| b.get(pos..pos.checked_add(n)?))
            .ok_or_else(|| binary_error("insufficient data left in message"))?;
        pos += body.len();
        items.push(Value::from_binary(body, elem)?);
    }
    if pos != b.len() {
        return Err(binary_error(
            "incorrect binary data format in array element",
        ));
    }
    Ok(ArrayValue {
        elem: normal_elem(*elem),
        dims,
        items,
    })
}

fn malformed(s: &str, detail: impl Into<String>) -> SqlError {
    SqlError::new(
        SqlState::INVALID_TEXT_REPRESENTATION,
        format!("malformed array literal: \"{s}\""),
    )
    .with_detail(detail.into())
}

fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The shape a text form's braces build: elements in order, the length of each level.
struct TextShape {
    items: Vec<Option<String>>,
    /// Length of each dimension seen so far (index = nesting depth).
    dims: Vec<Option<i32>>,
    /// Depth at which elements sit, once one was seen.
    leaf_depth: Option<usize>,
}

struct TextParser<'a> {
    src: &'a str,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl TextParser<'_> {
    fn skip_space(&mut self) {
        while self.chars.peek().is_some_and(|c| is_array_space(*c)) {
            self.chars.next();
        }
    }

    fn end(&self) -> SqlError {
        malformed(self.src, "Unexpected end of input.")
    }

    fn unexpected(&self, c: char) -> SqlError {
        malformed(self.src, format!("Unexpected \"{c}\" character."))
    }

    fn mismatch(&self) -> SqlError {
        malformed(
            self.src,
            "Multidimensional arrays must have sub-arrays with matching dimensions.",
        )
    }

    /// Parses one `{...}` level (its `{` already consumed) at `depth`.
    fn level(&mut self, depth: usize, shape: &mut TextShape) -> SqlResult<()> {
        if depth >= MAX_ARRAY_DIMS {
            return Err(too_many_dims(depth as i64 + 1));
        }
        if shape.dims.len() <= depth {
            shape.dims.push(None);
        }
        self.skip_space();
        let mut count: i32 = 0;
        let mut subarrays = false;
        if self.chars.peek() == Some(&'}') {
            // `{}` is the empty array only at the top.
            if depth > 0 {
                return Err(self.unexpected('}'));
            }
            self.chars.next();
            return Ok(());
        }
        loop {
            self.skip_space();
            match self.chars.peek().copied() {
                None => return Err(self.end()),
                Some('{') => {
                    if count > 0 && !subarrays {
                        return Err(self.unexpected('{'));
                    }
                    if shape.leaf_depth == Some(depth) {
                        return Err(self.mismatch());
                    }
                    subarrays = true;
                    self.chars.next();
                    self.level(depth + 1, shape)?;
                }
                Some(c @ (',' | '}')) => return Err(self.unexpected(c)),
                Some(_) => {
                    if subarrays {
                        return Err(malformed(self.src, "Unexpected array element."));
                    }
                    match shape.leaf_depth {
                        Some(d) if d != depth => return Err(self.mismatch()),
                        _ => shape.leaf_depth = Some(depth),
                    }
                    let item = self.element()?;
                    shape.items.push(item);
                }
            }
            count += 1;
            self.skip_space();
            match self.chars.next() {
                None => return Err(self.end()),
                Some(',') => continue,
                Some('}') => break,
                Some(_) if subarrays => return Err(self.unexpected('{')),
                Some(_) => return Err(malformed(self.src, "Unexpected array element.")),
            }
        }
        match shape.dims[depth] {
            None => shape.dims[depth] = Some(count),
            Some(n) if n != count => return Err(self.mismatch()),
            Some(_) => {}
        }
        if !subarrays && shape.dims.len() > depth + 1 {
            return Err(self.mismatch());
        }
        Ok(())
    }

    /// One element, quoted or not; None for an unquoted NULL.
    fn element(&mut self) -> SqlResult<Option<String>> {
        let mut s = String::new();
        if self.chars.peek() == Some(&'"') {
            self.chars.next();
            loop {
                match self.chars.next() {
                    None => return Err(self.end()),
                    Some('"') => return Ok(Some(s)),
                    Some('\\') => s.push(self.chars.next().ok_or_else(|| self.end())?),
                    Some(c) => s.push(c),
                }
            }
        }
        // Unquoted: up to the next delimiter; trailing (unescaped) white space dropped.
        let mut escaped_len = 0;
        let mut any_escape = false;
        loop {
            match self.chars.peek().copied() {
                None => return Err(self.end()),
                Some(',' | '}') => break,
                Some(c @ ('{' | '"')) => return Err(self.unexpected(c)),
                Some('\\') => {
                    self.chars.next();
                    s.push(self.chars.next().ok_or_else(|| self.end())?);
                    escaped_len = s.len();
                    any_escape = true;
                }
                Some(c) => {
                    self.chars.next();
                    s.push(c);
                }
            }
        }
        let keep = s.trim_end_matches(is_array_space).len().max(escaped_len);
        s.truncate(keep);
        if !any_escape && s.eq_ignore_ascii_case("null") {
            return Ok(None);
        }
        Ok(Some(s))
    }
}

/// `array_in`: the text form of an array of `elem` (elements through their own input
/// function; 22P02 `malformed array literal` for a bad shape).
pub(crate) fn from_text(s: &str, elem: &DataType) -> SqlResult<ArrayValue> {
    let (_, items, dims) = parse_text(s)?;
    let items = items
        .into_iter()
        .map(|i| match i {
            None => Ok(Value::Null),
            Some(t) => Value::from_text(&t, elem),
        })
        .collect::<SqlResult<Vec<Value>>>()?;
    Ok(ArrayValue {
        elem: normal_elem(*elem),
        dims,
        items,
    })
}

/// The shape and element texts of an array's text form (whatever the element type).
/// The first result says whether explicit bounds were written.
pub(crate) fn parse_text(s: &str) -> SqlResult<(bool, Vec<Option<String>>, Vec<ArrayDim>)> {
    let mut p = TextParser {
        src: s,
        chars: s.chars().peekable(),
    };
    p.skip_space();
    let mut explicit: Vec<(i32, i32)> = Vec::new();
    while p.chars.peek() == Some(&'[') {
        p.chars.next();
        let mut spec = String::new();
        loop {
            match p.chars.next() {
                None => return Err(malformed(s, "Missing \"]\" after array dimensions.")),
                Some(']') => break,
                Some(c) => spec.push(c),
            }
        }
        let bad = || {
            malformed(
                s,
                "\"[\" must introduce explicitly-specified array dimensions.",
            )
        };
        let (lower, upper) = match spec.split_once(':') {
            Some((l, u)) => (
                l.trim().parse::<i32>().map_err(|_| bad())?,
                u.trim().parse::<i32>().map_err(|_| bad())?,
            ),
            None => (1, spec.trim().parse::<i32>().map_err(|_| bad())?),
        };
        if upper < lower {
            return Err(SqlError::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                "upper bound cannot be less than lower bound",
            ));
        }
        explicit.push((lower, upper));
        if explicit.len() > MAX_ARRAY_DIMS {
            return Err(too_many_dims(explicit.len() as i64));
        }
    }
    if !explicit.is_empty() {
        p.skip_space();
        if p.chars.next() != Some('=') {
            return Err(malformed(s, "Missing \"=\" after array dimensions."));
        }
        p.skip_space();
    }
    if p.chars.next() != Some('{') {
        return Err(malformed(
            s,
            "Array value must start with \"{\" or dimension information.",
        ));
    }
    let mut shape = TextShape {
        items: Vec::new(),
        dims: Vec::new(),
        leaf_depth: None,
    };
    p.level(0, &mut shape)?;
    p.skip_space();
    if p.chars.next().is_some() {
        return Err(malformed(s, "Junk after closing right brace."));
    }
    let lens: Vec<i32> = shape.dims.iter().map_while(|d| *d).collect();
    let mut dims: Vec<ArrayDim> = if shape.items.is_empty() {
        vec![]
    } else {
        lens.iter().map(|&len| ArrayDim { len, lower: 1 }).collect()
    };
    if !explicit.is_empty() {
        let matches = explicit.len() == dims.len()
            && explicit
                .iter()
                .zip(&dims)
                .all(|((l, u), d)| i64::from(*u) - i64::from(*l) + 1 == i64::from(d.len));
        if !matches {
            return Err(malformed(
                s,
                "Specified array dimensions do not match array contents.",
            ));
        }
        for (d, (l, _)) in dims.iter_mut().zip(&explicit) {
            d.lower = *l;
        }
    }
    if shape.items.len() > MAX_ARRAY_ITEMS {
        return Err(too_big());
    }
    Ok((!explicit.is_empty(), shape.items, dims))
}

/// The elements of an array value, or of an array's text form held as `text` (the array
/// columns of the catalog views), or of an int2vector / oidvector (`1 2`); each text
/// element as `text`.
pub(crate) fn elements(v: &Value) -> SqlResult<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a.items.clone()),
        Value::Null => Ok(vec![]),
        other => {
            let text = other.to_text().unwrap_or_default();
            if is_vector_text(&text) {
                return Ok(text
                    .split_whitespace()
                    .map(|p| Value::Text(p.to_string()))
                    .collect());
            }
            Ok(parse_text(&text)?
                .1
                .into_iter()
                .map(|i| i.map(Value::Text).unwrap_or(Value::Null))
                .collect())
        }
    }
}

/// Whether a text form is an int2vector's / oidvector's (`1 2`, not `{1,2}`).
fn is_vector_text(text: &str) -> bool {
    !text.trim_start().starts_with(['{', '['])
}

/// The dimensions of an array value or of a text form as [`elements`] reads it (a vector's
/// subscripts start at 0, as PostgreSQL's int2vector).
pub(crate) fn dims_of(v: &Value) -> SqlResult<Vec<ArrayDim>> {
    match v {
        Value::Array(a) => Ok(a.dims.clone()),
        Value::Null => Ok(vec![]),
        other => {
            let text = other.to_text().unwrap_or_default();
            if is_vector_text(&text) {
                let n = text.split_whitespace().count() as i32;
                return Ok(if n == 0 {
                    vec![]
                } else {
                    vec![ArrayDim { len: n, lower: 0 }]
                });
            }
            Ok(parse_text(&text)?.2)
        }
    }
}

/// PostgreSQL's array ordering (`btarraycmp`): elements in order (NULL after every value),
/// then the number of elements, then the number of dimensions, their lengths and lower
/// bounds. None when elements cannot be compared.
pub(crate) fn compare(a: &ArrayValue, b: &ArrayValue) -> Option<Ordering> {
    for (x, y) in a.items.iter().zip(&b.items) {
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => compare_values(x, y)?,
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(
        a.items
            .len()
            .cmp(&b.items.len())
            .then(a.dims.len().cmp(&b.dims.len()))
            .then_with(|| {
                let key = |d: &ArrayDim| (d.len, d.lower);
                a.dims.iter().map(key).cmp(b.dims.iter().map(key))
            }),
    )
}

/// `ARRAY[e1, e2, ...]` over evaluated elements: a one-dimensional array, or, when the
/// elements are arrays themselves, one more dimension over them (2202E when their
/// dimensions differ, as PostgreSQL).
pub(crate) fn construct(elem: DataType, values: Vec<Value>) -> SqlResult<Value> {
    if !matches!(elem, DataType::Array(_)) {
        return Ok(Value::from_array(ArrayValue::one_dim(elem, values)));
    }
    let elem = normal_elem(elem);
    let mut inner_dims: Option<Vec<ArrayDim>> = None;
    let mut items = Vec::new();
    let mut n = 0;
    for v in values {
        let a =
            match v {
                Value::Array(a) => a,
                // NULL sub-arrays are skipped by PostgreSQL only when all are NULL; a mix is an
                // error there too.
                _ => return Err(SqlError::new(
                    SqlState::ARRAY_SUBSCRIPT_ERROR,
                    "multidimensional arrays must have array expressions with matching dimensions",
                )),
            };
        match &inner_dims {
            None => inner_dims = Some(a.dims.clone()),
            Some(d) if *d != a.dims => {
                return Err(SqlError::new(
                    SqlState::ARRAY_SUBSCRIPT_ERROR,
                    "multidimensional arrays must have array expressions with matching dimensions",
                ))
            }
            Some(_) => {}
        }
        items.extend(a.items);
        n += 1;
    }
    let inner = inner_dims.unwrap_or_default();
    if n == 0 || inner.is_empty() {
        return Ok(Value::from_array(ArrayValue {
            elem,
            dims: vec![],
            items: vec![],
        }));
    }
    if inner.len() + 1 > MAX_ARRAY_DIMS {
        return Err(too_many_dims(inner.len() as i64 + 1));
    }
    let mut dims = vec![ArrayDim { len: n, lower: 1 }];
    dims.extend(inner);
    Ok(Value::from_array(ArrayValue { elem, dims, items }))
}

/// `array_cat` / `array_append` / `array_prepend` (and `||`) over evaluated operands: a NULL
/// array is empty (both NULL: NULL); arrays of the same number of dimensions join along the
/// first, an array one dimension smaller is appended or prepended as one more slice
/// (2202E when the other dimensions differ).
pub(crate) fn concat(f: crate::catalog_fns::CatalogFn, a: &Value, b: &Value) -> SqlResult<Value> {
    use crate::catalog_fns::CatalogFn;
    let as_array = |v: &Value, elem: Option<DataType>| -> Option<ArrayValue> {
        match v {
            Value::Array(x) => Some((**x).clone()),
            Value::Null => None,
            other => Some(ArrayValue::one_dim(
                elem.unwrap_or_else(|| other.data_type()),
                vec![other.clone()],
            )),
        }
    };
    let elem_of = |v: &Value| match v {
        Value::Array(x) => Some(x.elem),
        _ => None,
    };
    let (x, y) = match f {
        CatalogFn::ArrayAppend => {
            let e = elem_of(a);
            (
                as_array(a, e),
                Some(ArrayValue::one_dim(
                    e.unwrap_or_else(|| b.data_type()),
                    vec![b.clone()],
                )),
            )
        }
        CatalogFn::ArrayPrepend => {
            let e = elem_of(b);
            (
                Some(ArrayValue::one_dim(
                    e.unwrap_or_else(|| a.data_type()),
                    vec![a.clone()],
                )),
                as_array(b, e),
            )
        }
        _ => (as_array(a, None), as_array(b, None)),
    };
    let (x, y) = match (x, y) {
        (None, None) => return Ok(Value::Null),
        (Some(x), None) => return Ok(Value::from_array(x)),
        (None, Some(y)) => return Ok(Value::from_array(y)),
        (Some(x), Some(y)) => (x, y),
    };
    if x.dims.is_empty() {
        return Ok(Value::from_array(y));
    }
    if y.dims.is_empty() {
        return Ok(Value::from_array(x));
    }
    let incompatible = || {
        SqlError::new(
            SqlState::ARRAY_SUBSCRIPT_ERROR,
            "cannot concatenate incompatible arrays",
        )
        .with_detail("Arrays with differing dimensions are not compatible for concatenation.")
    };
    let mut dims = x.dims.clone();
    if x.dims.len() == y.dims.len() {
        if x.dims[1..] != y.dims[1..] {
            return Err(incompatible());
        }
        dims[0].len += y.dims[0].len;
    } else if x.dims.len() == y.dims.len() + 1 && x.dims[1..] == y.dims[..] {
        dims[0].len += 1;
    } else if y.dims.len() == x.dims.len() + 1 && y.dims[1..] == x.dims[..] {
        dims = y.dims.clone();
        dims[0].len += 1;
    } else {
        return Err(incompatible());
    }
    let mut items = x.items;
    items.extend(y.items);
    Ok(Value::from_array(ArrayValue {
        elem: x.elem,
        dims,
        items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_array(s: &str) -> SqlResult<ArrayValue> {
        from_text(s, &DataType::Int4)
    }

    #[test]
    fn text_form_round_trips_as_postgres_prints_it() {
        for (input, output) in [
            ("{1,2,3}", "{1,2,3}"),
            ("{{1,2},{3,4}}", "{{1,2},{3,4}}"),
            ("[0:1]={7,8}", "[0:1]={7,8}"),
            (" { 1 , NULL } ", "{1,NULL}"),
            ("{}", "{}"),
        ] {
            assert_eq!(to_text(&int_array(input).unwrap()), output, "{input}");
        }
        let t = from_text(r#"{"a b",NULL,"NULL","",x,"q\"\\"}"#, &DataType::Text).unwrap();
        assert_eq!(to_text(&t), r#"{"a b",NULL,"NULL","",x,"q\"\\"}"#);
        assert_eq!(t.items[2], Value::Text("NULL".into()));
        assert_eq!(t.items[1], Value::Null);
    }

    #[test]
    fn malformed_literals_carry_postgres_details() {
        for (input, detail) in [
            ("{1,2", "Unexpected end of input."),
            (
                "1,2",
                "Array value must start with \"{\" or dimension information.",
            ),
            ("{1,{2}}", "Unexpected \"{\" character."),
            (
                "{{1},{2,3}}",
                "Multidimensional arrays must have sub-arrays with matching dimensions.",
            ),
            ("{1}x", "Junk after closing right brace."),
            ("{1,}", "Unexpected \"}\" character."),
            ("{,1}", "Unexpected \",\" character."),
            ("{{1},2}", "Unexpected array element."),
            ("{{}}", "Unexpected \"}\" character."),
            (
                "[1:2]={1}",
                "Specified array dimensions do not match array contents.",
            ),
        ] {
            let e = int_array(input).unwrap_err();
            assert_eq!(e.code.code(), "22P02", "{input}");
            assert_eq!(e.detail.as_deref(), Some(detail), "{input}");
        }
        let e = int_array("{a}").unwrap_err();
        assert_eq!(e.message, "invalid input syntax for type integer: \"a\"");
    }

    #[test]
    fn binary_form_round_trips_and_checks_its_header() {
        let a = int_array("{{1,NULL},{3,4}}").unwrap();
        let b = to_binary(&a);
        assert_eq!(&b[..12], &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 23]);
        assert_eq!(from_binary(&b, &DataType::Int4).unwrap(), a);
        let e = from_binary(&b, &DataType::Int8).unwrap_err();
        assert_eq!(e.code.code(), "42804");
        let mut bad = b.clone();
        bad[3] = 7;
        assert_eq!(
            from_binary(&bad, &DataType::Int4).unwrap_err().code.code(),
            "54000"
        );
        assert!(from_binary(&b[..b.len() - 1], &DataType::Int4).is_err());
        let empty = from_binary(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23], &DataType::Int4).unwrap();
        assert_eq!(to_text(&empty), "{}");
    }

    #[test]
    fn arrays_order_as_postgres() {
        let c = |x: &str, y: &str| compare(&int_array(x).unwrap(), &int_array(y).unwrap());
        assert_eq!(c("{1,2}", "{1,3}"), Some(Ordering::Less));
        assert_eq!(c("{1}", "{1,0}"), Some(Ordering::Less));
        assert_eq!(c("{1,NULL}", "{1,5}"), Some(Ordering::Greater));
        assert_eq!(c("{1,2}", "{1,2}"), Some(Ordering::Equal));
        assert_eq!(c("{1,2}", "{{1,2}}"), Some(Ordering::Less));
    }
}
