//! `COPY table [(columns)] FROM STDIN` in text format, as pgbench -i and psql `\copy` use it.
//!
//! The server handles COPY itself: it answers CopyInResponse, splits the CopyData stream into
//! lines, decodes each line's tab-separated fields (text format escapes, `\N` = NULL) and feeds
//! them to a prepared `INSERT INTO table (columns) VALUES ($1, ...)`.
//!
//! ```text
//! CopyData payloads:  "1\t1\t0\t\n2\t1"  "\t0\t\n"   (lines may span or share messages)
//!                      └── line ──────┘└── line ────────┘
//! line:  field \t field \t ... \n     field: text with \\ \t \n \r \b \f \v \ddd \xhh, or \N
//! ```
//!
//! Deliberately left out: CSV and binary formats, custom DELIMITER/NULL/QUOTE options,
//! COPY TO STDOUT (all refused with 0A000 by [`parse_copy_from_stdin`] or the sql layer).

/// A recognized `COPY ... FROM STDIN` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFrom {
    /// Table name as written (may be quoted or schema-qualified).
    pub table: String,
    /// Column list as written, if any.
    pub columns: Option<Vec<String>>,
}

/// Whether `sql` is a COPY FROM STDIN the server handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyStatement {
    /// Not a COPY FROM STDIN: give it to the sql layer.
    NotCopy,
    /// A text-format COPY FROM STDIN.
    From(CopyFrom),
    /// A COPY FROM STDIN with options we do not implement; the message says which.
    Unsupported(String),
}

/// Recognizes `COPY name [ ( col, ... ) ] FROM STDIN [ [WITH] ( options ) ]`.
pub fn parse_copy_from_stdin(sql: &str) -> CopyStatement {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let lower = trimmed.to_ascii_lowercase();
    if !lower.starts_with("copy") || !lower[4..].starts_with(|c: char| c.is_whitespace()) {
        return CopyStatement::NotCopy;
    }
    let Some(from_at) = find_keyword(&lower, "from") else {
        return CopyStatement::NotCopy;
    };
    let after_from = lower[from_at + 4..].trim_start();
    if !after_from.starts_with("stdin") {
        return CopyStatement::NotCopy;
    }
    let options = after_from[5..].trim();
    for unsupported in [
        "csv",
        "binary",
        "delimiter",
        "null",
        "quote",
        "escape",
        "header",
    ] {
        if find_keyword(options, unsupported).is_some() {
            return CopyStatement::Unsupported(format!(
                "COPY FROM STDIN option {unsupported:?} is not supported (text format only)"
            ));
        }
    }
    let target = trimmed[4..from_at].trim();
    let (table, columns) = match target.find('(') {
        Some(open) => {
            let Some(list) = target[open + 1..].strip_suffix(')') else {
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
    CopyStatement::From(CopyFrom { table, columns })
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

/// Splits the CopyData stream into complete lines, keeping a partial last line for later.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds a CopyData payload; returns the lines it completed (without the `\n`).
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            lines.push(self.pending[start..start + pos].to_vec());
            start += pos + 1;
        }
        self.pending.drain(..start);
        lines
    }

    /// At CopyDone: an unterminated last line, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.pending))
        }
    }
}

/// A line of the text format that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine(pub String);

/// Decodes one text-format line into fields (None = NULL). `\.` alone ends the data: None.
pub fn decode_line(line: &[u8]) -> Result<Option<Vec<Option<String>>>, BadLine> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"\\." {
        return Ok(None);
    }
    let mut fields = Vec::new();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
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
                return Err(BadLine("line ends with a backslash".into()));
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
        fields.push(Some(text));
    }
    Ok(Some(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_copy_statement_is_recognized() {
        assert_eq!(
            parse_copy_from_stdin("copy pgbench_accounts from stdin with (freeze on)"),
            CopyStatement::From(CopyFrom {
                table: "pgbench_accounts".into(),
                columns: None
            })
        );
        assert_eq!(
            parse_copy_from_stdin("COPY t (a, b) FROM STDIN;"),
            CopyStatement::From(CopyFrom {
                table: "t".into(),
                columns: Some(vec!["a".into(), "b".into()])
            })
        );
        assert_eq!(
            parse_copy_from_stdin("COPY t TO STDOUT"),
            CopyStatement::NotCopy
        );
        assert_eq!(
            parse_copy_from_stdin("SELECT 'copy x from stdin'"),
            CopyStatement::NotCopy
        );
        assert!(matches!(
            parse_copy_from_stdin("COPY t FROM STDIN WITH (FORMAT csv)"),
            CopyStatement::Unsupported(_)
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
}
