//! `COPY table [(columns)] FROM STDIN` and `COPY {table [(columns)] | (query)} TO STDOUT`,
//! in text and CSV formats, as pgbench -i, pg_dump-style scripts and psql `\copy` use them.
//!
//! The server handles COPY itself: FROM answers CopyInResponse, splits the CopyData stream
//! into records, decodes each record's fields and feeds them to a prepared
//! `INSERT INTO table (columns) VALUES ($1, ...)`, up to 1024 records per statement
//! (`Session::execute_prepared_rows`: one snapshot, one plan look-up, one table lock and one
//! partition placement look-up per batch, not per line; the whole COPY stays one
//! transaction); TO runs `SELECT columns FROM table` (or
//! the query) and sends CopyOutResponse, one CopyData per row, CopyDone.
//!
//! ```text
//! CopyData payloads:  "1\t1\t0\t\n2\t1"  "\t0\t\n"   (records may span or share messages)
//!                      └── record ────┘└── record ───────┘
//! text:  field DELIM field ... \n    field: text with \\ \t \n \r \b \f \v \ddd \xhh, or NULL
//!                                    (default \N)
//! csv:   field DELIM field ... \n    field: bare, or QUOTE ... QUOTE with QUOTE QUOTE (or
//!                                    ESCAPE QUOTE) inside and newlines allowed; an unquoted
//!                                    field equal to NULL (default empty) is NULL
//! ```
//!
//! Options, in both the `WITH (FORMAT csv, HEADER, ...)` form and the older
//! `CSV HEADER DELIMITER ','` form psql's `\copy` passes through: FORMAT text|csv, HEADER,
//! DELIMITER, NULL, QUOTE, ESCAPE. Deliberately left out: the binary format, FORCE_QUOTE /
//! FORCE_NOT_NULL / FORCE_NULL, ENCODING, and COPY to or from a server file. COPY runs in both
//! protocols: through Parse/Bind/Execute the same exchange happens at Execute, and
//! ReadyForQuery waits for the client's Sync (`connection.rs`).

use std::borrow::Cow;

/// Text or CSV, and their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// CSV instead of text.
    pub csv: bool,
    /// Field separator (tab for text, comma for CSV).
    pub delimiter: u8,
    /// The string that stands for NULL (`\N` for text, empty for CSV).
    pub null: String,
    /// FROM: the first line is a header and is skipped; TO: a header line is written.
    pub header: bool,
    /// CSV quote character.
    pub quote: u8,
    /// CSV escape character (defaults to the quote).
    pub escape: u8,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            csv: false,
            delimiter: b'\t',
            null: "\\N".into(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }
}

/// What is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A table (name as written, maybe quoted or qualified) and its column list, if any.
    Table {
        /// Table name as written.
        table: String,
        /// Column list as written.
        columns: Option<Vec<String>>,
    },
    /// `COPY (query) TO STDOUT`: the query text.
    Query(String),
}

/// A recognized COPY statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// Table or query.
    pub source: CopySource,
    /// Format options.
    pub options: CopyOptions,
}

impl CopySpec {
    /// The table name for error contexts (`COPY t, line 3`).
    pub fn table_name(&self) -> &str {
        match &self.source {
            CopySource::Table { table, .. } => table,
            CopySource::Query(_) => "query",
        }
    }
}

/// Whether `sql` is a COPY the server handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyStatement {
    /// Not a COPY: give it to the sql layer.
    NotCopy,
    /// COPY ... FROM STDIN.
    From(CopySpec),
    /// COPY ... TO STDOUT.
    To(CopySpec),
    /// A COPY with something we do not implement; the message says what.
    Unsupported(String),
}

/// Tokens of the options part: words (lower-cased), quoted strings, punctuation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

fn tokenize_options(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' || c == ',' {
            out.push(Tok::Punct(c));
            i += 1;
        } else if c == '\'' || ((c == 'E' || c == 'e') && chars.get(i + 1) == Some(&'\'')) {
            let escapes = c != '\'';
            i += if escapes { 2 } else { 1 };
            let mut s = String::new();
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err("unterminated quoted string".into());
                };
                i += 1;
                if d == '\'' {
                    if chars.get(i) == Some(&'\'') {
                        s.push('\'');
                        i += 1;
                        continue;
                    }
                    break;
                }
                if escapes && d == '\\' {
                    let Some(&e) = chars.get(i) else {
                        return Err("unterminated quoted string".into());
                    };
                    i += 1;
                    s.push(match e {
                        't' => '\t',
                        'n' => '\n',
                        'r' => '\r',
                        other => other,
                    });
                    continue;
                }
                s.push(d);
            }
            out.push(Tok::Str(s));
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '(' | ')' | ',' | '\'')
            {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            let w = w.trim_matches('"').to_ascii_lowercase();
            out.push(Tok::Word(w));
        }
    }
    Ok(out)
}

fn single_byte(s: &str, what: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!("COPY {what} must be a single one-byte character")),
    }
}

/// Parses the options after STDIN/STDOUT.
fn parse_options(text: &str) -> Result<CopyOptions, String> {
    let toks = tokenize_options(text)?;
    let mut o = CopyOptions::default();
    let mut delimiter = None;
    let mut null = None;
    let mut quote = None;
    let mut escape = None;
    let mut i = 0;
    let next_str = |i: &mut usize, what: &str| -> Result<String, String> {
        if let Some(Tok::Word(w)) = toks.get(*i) {
            if w == "as" {
                *i += 1;
            }
        }
        match toks.get(*i) {
            Some(Tok::Str(s)) => {
                *i += 1;
                Ok(s.clone())
            }
            _ => Err(format!("COPY option {what} needs a quoted string")),
        }
    };
    while i < toks.len() {
        let tok = toks[i].clone();
        i += 1;
        let Tok::Word(w) = tok else { continue };
        match w.as_str() {
            "with" => {}
            "csv" => o.csv = true,
            "text" => o.csv = false,
            "binary" => return Err("COPY BINARY is not supported".into()),
            "format" => match toks.get(i) {
                Some(Tok::Word(f)) => {
                    i += 1;
                    match f.as_str() {
                        "csv" => o.csv = true,
                        "text" => o.csv = false,
                        "binary" => return Err("COPY BINARY is not supported".into()),
                        other => return Err(format!("COPY format \"{other}\" not recognized")),
                    }
                }
                _ => return Err("COPY FORMAT needs a format name".into()),
            },
            "header" => {
                o.header = true;
                if let Some(Tok::Word(v)) = toks.get(i) {
                    match v.as_str() {
                        "true" | "on" | "1" => i += 1,
                        "false" | "off" | "0" => {
                            o.header = false;
                            i += 1
                        }
                        "match" => return Err("COPY HEADER MATCH is not supported".into()),
                        _ => {}
                    }
                }
            }
            "encoding" => {
                let e = next_str(&mut i, "ENCODING")?;
                if !matches!(
                    e.to_ascii_lowercase().as_str(),
                    "utf8" | "utf-8" | "unicode"
                ) {
                    return Err(format!(
                        "COPY encoding \"{e}\" is not supported (UTF8 only)"
                    ));
                }
            }
            "delimiter" => delimiter = Some(next_str(&mut i, "DELIMITER")?),
            "null" => null = Some(next_str(&mut i, "NULL")?),
            "quote" => quote = Some(next_str(&mut i, "QUOTE")?),
            "escape" => escape = Some(next_str(&mut i, "ESCAPE")?),
            // NB: FREEZE (pgbench -i sends `WITH (FREEZE ON)`) is a storage hint in PostgreSQL;
            // every committed row is equally visible here, so it is accepted and ignored.
            "freeze" => {
                if let Some(Tok::Word(v)) = toks.get(i) {
                    if matches!(v.as_str(), "true" | "on" | "1" | "false" | "off" | "0") {
                        i += 1;
                    }
                }
            }
            other => return Err(format!("COPY option \"{other}\" is not supported")),
        }
    }
    if o.csv {
        o.delimiter = b',';
        o.null = String::new();
    }
    if let Some(d) = delimiter {
        o.delimiter = single_byte(&d, "delimiter")?;
        if matches!(o.delimiter, b'\n' | b'\r' | b'\\') && !o.csv || o.delimiter == b'\n' {
            return Err("COPY delimiter cannot be newline, carriage return or backslash".into());
        }
    }
    if let Some(n) = null {
        o.null = n;
    }
    if let Some(q) = quote {
        if !o.csv {
            return Err("COPY QUOTE requires CSV mode".into());
        }
        o.quote = single_byte(&q, "quote")?;
    }
    o.escape = o.quote;
    if let Some(e) = escape {
        if !o.csv {
            return Err("COPY ESCAPE requires CSV mode".into());
        }
        o.escape = single_byte(&e, "escape")?;
    }
    if o.csv && o.delimiter == o.quote {
        return Err("COPY delimiter and quote must be different".into());
    }
    Ok(o)
}

/// Recognizes `COPY target FROM STDIN [options]` and `COPY target TO STDOUT [options]`, where
/// target is `name [(col, ...)]` or (for TO) `(query)`.
pub fn parse_copy(sql: &str) -> CopyStatement {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let lower = trimmed.to_ascii_lowercase();
    if !lower.starts_with("copy")
        || !lower[4..].starts_with(|c: char| c.is_whitespace() || c == '(')
    {
        return CopyStatement::NotCopy;
    }
    let rest = trimmed[4..].trim_start();
    let rest_lower = rest.to_ascii_lowercase();
    // `(query)`: find the matching parenthesis outside quotes.
    let (target, after) = if rest.starts_with('(') {
        let mut depth = 0;
        let mut in_quote = false;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            match c {
                '\'' => in_quote = !in_quote,
                '(' if !in_quote => depth += 1,
                ')' if !in_quote => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return CopyStatement::NotCopy;
        };
        (
            CopySource::Query(rest[1..end].trim().to_string()),
            &rest_lower[end + 1..],
        )
    } else {
        let from = find_keyword(&rest_lower, "from");
        let to = find_keyword(&rest_lower, "to");
        let at = match (from, to) {
            (Some(f), Some(t)) => f.min(t),
            (Some(f), None) => f,
            (None, Some(t)) => t,
            (None, None) => return CopyStatement::NotCopy,
        };
        let target = rest[..at].trim();
        let (table, columns) = match target.find('(') {
            Some(open) => {
                let Some(list) = target[open + 1..].trim_end().strip_suffix(')') else {
                    return CopyStatement::NotCopy;
                };
                let columns = list.split(',').map(|c| c.trim().to_string()).collect();
                (target[..open].trim().to_string(), Some(columns))
            }
            None => (target.to_string(), None),
        };
        if table.is_empty() {
            return CopyStatement::NotCopy;
        }
        (CopySource::Table { table, columns }, &rest_lower[at..])
    };
    let after = after.trim_start();
    let offset = trimmed.len() - after.len();
    let (is_from, rest_after_dir) = if let Some(r) = after.strip_prefix("from") {
        (true, r)
    } else if let Some(r) = after.strip_prefix("to") {
        (false, r)
    } else {
        return CopyStatement::NotCopy;
    };
    let endpoint = rest_after_dir.trim_start();
    let wanted = if is_from { "stdin" } else { "stdout" };
    if !endpoint.starts_with(wanted) {
        return CopyStatement::Unsupported(format!(
            "COPY {} a file or program is not supported (use {})",
            if is_from { "from" } else { "to" },
            if is_from {
                "FROM STDIN or psql's \\copy"
            } else {
                "TO STDOUT or psql's \\copy"
            }
        ));
    }
    if is_from && matches!(target, CopySource::Query(_)) {
        return CopyStatement::NotCopy;
    }
    // The options, in the original case (quoted strings keep theirs).
    let consumed = after.len() - endpoint.len() + wanted.len();
    let options_text = &trimmed[offset + consumed..];
    match parse_options(options_text) {
        Ok(options) => {
            let spec = CopySpec {
                source: target,
                options,
            };
            if is_from {
                CopyStatement::From(spec)
            } else {
                CopyStatement::To(spec)
            }
        }
        Err(message) => CopyStatement::Unsupported(message),
    }
}

/// Byte offset of `word` as a whole word in `text` (ASCII lower-case), outside quotes.
fn find_keyword(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_quotes = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            in_quotes = !in_quotes;
        }
        if in_quotes || !text[i..].starts_with(word) {
            continue;
        }
        let before_ok = i == 0 || !is_word_byte(bytes[i - 1]);
        let after = i + word.len();
        let after_ok = after >= bytes.len() || !is_word_byte(bytes[after]);
        if before_ok && after_ok {
            return Some(i);
        }
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits the CopyData stream into complete records, keeping a partial last one for later.
/// In CSV mode a newline inside a quoted field does not end the record.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// CSV quote character (None = text format).
    quote: Option<u8>,
    /// Where scanning resumes in `pending`, and the quote state there.
    scanned: usize,
    in_quotes: bool,
}

impl LineSplitter {
    /// A splitter for the format of `options`.
    pub fn new(options: &CopyOptions) -> LineSplitter {
        LineSplitter {
            quote: options.csv.then_some(options.quote),
            ..Default::default()
        }
    }

    /// Adds a CopyData payload; returns the records it completed (without the `\n`).
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.pending.len() {
            let b = self.pending[i];
            if Some(b) == self.quote {
                self.in_quotes = !self.in_quotes;
            } else if b == b'\n' && !self.in_quotes {
                lines.push(self.pending[start..i].to_vec());
                start = i + 1;
            }
            i += 1;
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        lines
    }

    /// At CopyDone: an unterminated last record, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.scanned = 0;
        self.in_quotes = false;
        if self.pending.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.pending))
        }
    }
}

/// A record that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine(pub String);

/// Decodes one text-format line into fields (None = NULL). `\.` alone ends the data: None.
pub fn decode_line(line: &[u8]) -> Result<Option<Vec<Option<String>>>, BadLine> {
    decode_record(line, &CopyOptions::default())
}

/// Decodes one record in the format of `o` (None = NULL). `\.` alone ends the data: None.
pub fn decode_record(line: &[u8], o: &CopyOptions) -> Result<Option<Vec<Option<String>>>, BadLine> {
    Ok(decode_record_borrowed(line, o)?
        .map(|fields| fields.into_iter().map(|f| f.map(Cow::into_owned)).collect()))
}

/// [`decode_record`] without a copy of the fields that hold no escape (most of them: a bulk
/// load's fields are borrowed from its line, not allocated one by one).
pub fn decode_record_borrowed<'a>(
    line: &'a [u8],
    o: &CopyOptions,
) -> Result<Option<Vec<Option<Cow<'a, str>>>>, BadLine> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"\\." {
        return Ok(None);
    }
    if o.csv {
        return decode_csv(line, o)
            .map(|fields| Some(fields.into_iter().map(|f| f.map(Cow::Owned)).collect()));
    }
    let mut fields = Vec::new();
    for raw in line.split(|&b| b == o.delimiter) {
        if raw == o.null.as_bytes() {
            fields.push(None);
            continue;
        }
        if !raw.contains(&b'\\') {
            let text = std::str::from_utf8(raw)
                .map_err(|_| BadLine("invalid byte sequence for encoding \"UTF8\"".into()))?;
            fields.push(Some(Cow::Borrowed(text)));
            continue;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            i += 1;
            if b != b'\\' {
                out.push(b);
                continue;
            }
            let Some(&e) = raw.get(i) else {
                return Err(BadLine("end-of-copy marker corrupt".into()));
            };
            i += 1;
            match e {
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let mut value = u32::from(e - b'0');
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push((value & 0xff) as u8);
                }
                b'x' => {
                    let mut value = 0u32;
                    let mut digits = 0;
                    while digits < 2 {
                        match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                value = value * 16 + d;
                                i += 1;
                                digits += 1;
                            }
                            None => break,
                        }
                    }
                    if digits == 0 {
                        out.push(b'x');
                    } else {
                        out.push(value as u8);
                    }
                }
                other => out.push(other),
            }
        }
        let text = String::from_utf8(out)
            .map_err(|_| BadLine("invalid byte sequence for encoding \"UTF8\"".into()))?;
        fields.push(Some(Cow::Owned(text)));
    }
    Ok(Some(fields))
}

/// Decodes a CSV record: quoted fields may hold delimiters, newlines and doubled (or
/// escaped) quotes; an unquoted field equal to the NULL string is NULL.
fn decode_csv(line: &[u8], o: &CopyOptions) -> Result<Vec<Option<String>>, BadLine> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut out = Vec::new();
        let mut quoted = false;
        while let Some(&b) = line.get(i) {
            if b == o.delimiter {
                break;
            }
            i += 1;
            if b != o.quote {
                out.push(b);
                continue;
            }
            quoted = true;
            loop {
                let Some(&c) = line.get(i) else {
                    return Err(BadLine("unterminated CSV quoted field".into()));
                };
                i += 1;
                let next = line.get(i).copied();
                if c == o.escape
                    && (next == Some(o.quote) || (o.escape != o.quote && next == Some(o.escape)))
                {
                    out.push(line[i]);
                    i += 1;
                } else if c == o.quote {
                    break;
                } else {
                    out.push(c);
                }
            }
        }
        if !quoted && out == o.null.as_bytes() {
            fields.push(None);
        } else {
            let text = String::from_utf8(out)
                .map_err(|_| BadLine("invalid byte sequence for encoding \"UTF8\"".into()))?;
            fields.push(Some(text));
        }
        if i >= line.len() {
            break;
        }
        i += 1; // the delimiter
    }
    Ok(fields)
}

/// Encodes one row for COPY TO in the format of `o` (with the trailing newline).
pub fn encode_record(fields: &[Option<String>], o: &CopyOptions) -> Vec<u8> {
    let mut out = Vec::new();
    for (j, f) in fields.iter().enumerate() {
        if j > 0 {
            out.push(o.delimiter);
        }
        match f {
            None => out.extend_from_slice(o.null.as_bytes()),
            Some(s) if o.csv => {
                let needs_quotes = s.is_empty() && o.null.is_empty()
                    || s == &o.null
                    || s.bytes()
                        .any(|b| b == o.delimiter || b == o.quote || b == b'\n' || b == b'\r')
                    || s == "\\.";
                if needs_quotes {
                    out.push(o.quote);
                    for b in s.bytes() {
                        if b == o.quote || b == o.escape {
                            out.push(o.escape);
                        }
                        out.push(b);
                    }
                    out.push(o.quote);
                } else {
                    out.extend_from_slice(s.as_bytes());
                }
            }
            Some(s) => {
                for b in s.bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        8 => out.extend_from_slice(b"\\b"),
                        12 => out.extend_from_slice(b"\\f"),
                        11 => out.extend_from_slice(b"\\v"),
                        b if b == o.delimiter => {
                            out.push(b'\\');
                            out.push(b);
                        }
                        b => out.push(b),
                    }
                }
            }
        }
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(t: &str, cols: Option<&[&str]>) -> CopySource {
        CopySource::Table {
            table: t.into(),
            columns: cols.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn pgbench_copy_statement_is_recognized() {
        assert_eq!(
            parse_copy("copy pgbench_accounts from stdin"),
            CopyStatement::From(CopySpec {
                source: table("pgbench_accounts", None),
                options: CopyOptions::default()
            })
        );
        assert_eq!(
            parse_copy("COPY t (a, b) FROM STDIN;"),
            CopyStatement::From(CopySpec {
                source: table("t", Some(&["a", "b"])),
                options: CopyOptions::default()
            })
        );
        assert_eq!(
            parse_copy("SELECT 'copy x from stdin'"),
            CopyStatement::NotCopy
        );
        assert!(matches!(
            parse_copy("COPY t FROM STDIN WITH (FORMAT binary)"),
            CopyStatement::Unsupported(_)
        ));
        // pgbench -i (PostgreSQL 15) loads its accounts with FREEZE.
        assert_eq!(
            parse_copy("copy pgbench_accounts from stdin with (freeze on)"),
            CopyStatement::From(CopySpec {
                source: table("pgbench_accounts", None),
                options: CopyOptions::default()
            })
        );
        assert!(matches!(
            parse_copy("COPY t FROM '/etc/passwd'"),
            CopyStatement::Unsupported(_)
        ));
    }

    #[test]
    fn both_option_syntaxes_are_understood() {
        let csv = CopyOptions {
            csv: true,
            delimiter: b';',
            null: "NULL".into(),
            header: true,
            quote: b'\'',
            escape: b'\'',
        };
        for sql in [
            "COPY t FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';', NULL 'NULL', QUOTE '''')",
            "COPY t FROM STDIN csv header delimiter as ';' null as 'NULL' quote ''''",
        ] {
            assert_eq!(
                parse_copy(sql),
                CopyStatement::From(CopySpec {
                    source: table("t", None),
                    options: csv.clone()
                }),
                "{sql}"
            );
        }
        assert_eq!(
            parse_copy("COPY (SELECT a, 'to' FROM t) TO STDOUT WITH CSV"),
            CopyStatement::To(CopySpec {
                source: CopySource::Query("SELECT a, 'to' FROM t".into()),
                options: CopyOptions {
                    csv: true,
                    delimiter: b',',
                    null: String::new(),
                    ..CopyOptions::default()
                }
            })
        );
        assert!(matches!(
            parse_copy("COPY t TO STDOUT (DELIMITER E'\\t')"),
            CopyStatement::To(CopySpec {
                options: CopyOptions {
                    delimiter: b'\t',
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn lines_may_span_and_share_copy_data_messages() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"1\ta\n2\t"), vec![b"1\ta".to_vec()]);
        assert_eq!(s.push(b"b\n"), vec![b"2\tb".to_vec()]);
        assert_eq!(s.push(b"3\tc"), Vec::<Vec<u8>>::new());
        assert_eq!(s.finish(), Some(b"3\tc".to_vec()));
        assert_eq!(s.finish(), None);
        let mut c = LineSplitter::new(&parse_options("csv").unwrap());
        assert_eq!(c.push(b"1,\"a\nb\"\n2,"), vec![b"1,\"a\nb\"".to_vec()]);
        assert_eq!(c.push(b"\"x\"\n"), vec![b"2,\"x\"".to_vec()]);
    }

    #[test]
    fn text_format_escapes_and_nulls_decode() {
        assert_eq!(
            decode_line(b"1\t\\N\t\ta\\tb\\\\c\\101\\x41"),
            Ok(Some(vec![
                Some("1".into()),
                None,
                Some("".into()),
                Some("a\tb\\cAA".into())
            ]))
        );
        assert_eq!(decode_line(b"\\."), Ok(None));
        assert!(decode_line(b"abc\\").is_err());
        assert!(decode_line(b"\\377").is_err(), "not UTF-8");
    }

    #[test]
    fn csv_fields_decode_and_encode_round_trip() {
        let o = parse_options("csv").unwrap();
        let fields = vec![
            Some("plain".to_string()),
            None,
            Some(String::new()),
            Some("a,b".into()),
            Some("say \"hi\"\nbye".into()),
        ];
        let line = encode_record(&fields, &o);
        assert_eq!(
            line,
            b"plain,,\"\",\"a,b\",\"say \"\"hi\"\"\nbye\"\n".to_vec()
        );
        assert_eq!(decode_record(&line[..line.len() - 1], &o), Ok(Some(fields)));
        assert!(decode_record(b"1,\"open", &o).is_err());
        let t = CopyOptions::default();
        let fields = vec![Some("a\tb\\c\n".to_string()), None];
        let line = encode_record(&fields, &t);
        assert_eq!(line, b"a\\tb\\\\c\\n\t\\N\n".to_vec());
        assert_eq!(decode_record(&line[..line.len() - 1], &t), Ok(Some(fields)));
    }
}
