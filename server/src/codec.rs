//! PostgreSQL v3 wire messages: decoding what clients send, encoding what we answer.
//!
//! Every message after startup is framed the same way (all integers big-endian):
//!
//! ```text
//! +----------+----------------------+----------------------------+
//! | type 1B  | len 4B (incl. itself) | body (len - 4 bytes)       |
//! +----------+----------------------+----------------------------+
//! ```
//!
//! The startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no
//! type byte: `len 4B | code 4B | body`. The code tells them apart (see the `*_CODE` constants).
//!
//! Strings are NUL-terminated (`cstr`). Decoding never trusts a length or count from the
//! client: every read is bounds-checked against the frame and fails with
//! [`ProtocolError::Malformed`] instead of panicking.
//!
//! NB: this is a hand-written codec rather than `pgwire::messages`: pgwire 0.42's decoders call
//! `Buf::get_*`/`split_to` on client-controlled lengths (a malformed Bind panics) and the crate
//! needs Rust 1.89 while the workspace promises 1.85.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Protocol version 3.0 as sent in a StartupMessage (frozen by the protocol).
pub const PROTOCOL_3_0: i32 = 196_608;
/// Request code of an SSLRequest (frozen by the protocol).
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Request code of a GSSENCRequest (frozen by the protocol).
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Request code of a CancelRequest (frozen by the protocol).
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Largest startup packet accepted (PostgreSQL's MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Largest regular message accepted (PostgreSQL's PQ_LARGE_MESSAGE_LIMIT, 1 GiB - 1).
pub const MAX_MESSAGE: usize = 0x3fff_ffff;

/// A client sent bytes that are not a valid protocol message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The message body ended early or a field is inconsistent.
    #[error("invalid {message} message: {reason}")]
    Malformed {
        /// Which message was being decoded.
        message: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The declared length is negative, too small or over the limit.
    #[error("invalid message length {len}")]
    BadLength {
        /// The length the client declared.
        len: i64,
    },
    /// A type byte we do not know.
    #[error("invalid frontend message type {0}")]
    UnknownType(u8),
}

/// Bounds-checked reader over one message body.
struct BodyReader<'a> {
    message: &'static str,
    buf: &'a [u8],
}

impl<'a> BodyReader<'a> {
    fn new(message: &'static str, buf: &'a [u8]) -> Self {
        BodyReader { message, buf }
    }

    fn malformed(&self, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            message: self.message,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.buf.len() {
            return Err(self.malformed("unexpected end of message"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string, borrowed from the body; invalid UTF-8 is an error (we only
    /// speak UTF8).
    fn cstr(&mut self) -> Result<&'a str, ProtocolError> {
        let Some(end) = self.buf.iter().position(|&b| b == 0) else {
            return Err(self.malformed("string is not NUL-terminated"));
        };
        let raw = self.take(end + 1)?;
        std::str::from_utf8(&raw[..end]).map_err(|_| self.malformed("string is not valid UTF-8"))
    }

    /// `n i16 | code i16 * n`: a list of format codes, borrowed (checked for length only).
    fn format_codes(&mut self) -> Result<FormatCodes<'a>, ProtocolError> {
        let n = self.count(2)?;
        Ok(FormatCodes(self.take(2 * n)?))
    }

    /// A non-negative count that must fit `elem_size`-byte elements in what is left.
    fn count(&mut self, elem_size: usize) -> Result<usize, ProtocolError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| self.malformed("negative count"))?;
        if n.saturating_mul(elem_size) > self.buf.len() {
            return Err(self.malformed("count exceeds message length"));
        }
        Ok(n)
    }

    fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes"))
        }
    }
}

/// First packet(s) of a connection, before the regular message stream.
#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket {
    /// `len | 80877103`: the client asks for TLS; we answer `N`.
    SslRequest,
    /// `len | 80877104`: the client asks for GSS encryption; we answer `N`.
    GssEncRequest,
    /// `len | 80877102 | pid 4B | secret 4B`.
    Cancel {
        /// Process id from BackendKeyData.
        pid: i32,
        /// Secret key from BackendKeyData.
        secret: i32,
    },
    /// `len | version 4B | (name cstr, value cstr)* | NUL`.
    Startup {
        /// Protocol version (major << 16 | minor).
        version: i32,
        /// Parameters in the order sent (user, database, options, GUCs...).
        params: Vec<(String, String)>,
    },
}

/// Decodes a startup-phase packet body (everything after the 4-byte length).
pub fn decode_startup(body: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let mut r = BodyReader::new("startup", body);
    let code = r.i32()?;
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let pid = r.i32()?;
            let secret = r.i32()?;
            Ok(StartupPacket::Cancel { pid, secret })
        }
        version => {
            let mut params = Vec::new();
            loop {
                let name = r.cstr()?;
                if name.is_empty() {
                    break;
                }
                let value = r.cstr()?;
                params.push((name.to_string(), value.to_string()));
            }
            Ok(StartupPacket::Startup { version, params })
        }
    }
}

/// What Describe and Close refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

/// A regular (post-startup) frontend message, borrowing its strings and bytes from the frame
/// it was decoded from: decoding allocates only for Parse's parameter type list.
#[derive(Debug, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// `Q`: `sql cstr`.
    Query(&'a str),
    /// `P`: `name cstr | sql cstr | n i16 | oid i32 * n`.
    Parse {
        /// Statement name ("" = unnamed).
        name: &'a str,
        /// Query text.
        sql: &'a str,
        /// Declared parameter type OIDs (0 = unspecified).
        param_oids: Vec<u32>,
    },
    /// `B`: `portal cstr | stmt cstr | nf i16 | fmt i16 * nf | np i16 | (len i32 | bytes)* np
    /// | nr i16 | fmt i16 * nr`; a parameter length of -1 is NULL.
    Bind(Bind<'a>),
    /// `D`: `'S'|'P' | name cstr`.
    Describe {
        /// Statement or portal.
        target: Target,
        /// Its name.
        name: &'a str,
    },
    /// `E`: `portal cstr | max_rows i32` (0 = no limit).
    Execute {
        /// Portal name.
        portal: &'a str,
        /// Row limit; 0 or negative means all.
        max_rows: i32,
    },
    /// `C`: `'S'|'P' | name cstr`.
    Close {
        /// Statement or portal.
        target: Target,
        /// Its name.
        name: &'a str,
    },
    /// `S`: end of an extended-protocol batch.
    Sync,
    /// `H`: send what is buffered.
    Flush,
    /// `X`: the client is leaving.
    Terminate,
    /// `d`: `data bytes`: a chunk of COPY FROM STDIN data.
    CopyData(&'a [u8]),
    /// `c`: the client finished sending COPY data.
    CopyDone,
    /// `f`: `message cstr`: the client aborts the COPY.
    CopyFail(&'a str),
    /// `p`: a password-family message (SASLInitialResponse, SASLResponse): its raw body,
    /// decoded by the authentication exchange that expects it.
    Password(&'a [u8]),
}

/// A Bind message, its parameter and format lists still in wire form (validated: every
/// accessor is infallible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Portal name ("" = unnamed).
    pub portal: &'a str,
    /// Statement name ("" = unnamed).
    pub statement: &'a str,
    /// Parameter format codes (0 text, 1 binary): none, one for all, or one each.
    pub param_formats: FormatCodes<'a>,
    /// Parameter values; None is NULL.
    pub params: Params<'a>,
    /// Result format codes: none, one for all, or one per column.
    pub result_formats: FormatCodes<'a>,
}

/// A list of format codes as sent: `code i16 * n` (not checked to be 0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FormatCodes<'a>(&'a [u8]);

impl<'a> FormatCodes<'a> {
    /// How many codes were sent.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// No code was sent (everything is text).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codes in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
    }

    /// The format of value `i`: text when no code was sent, the one code for all values, or
    /// code `i` (text past the end).
    pub fn format_of(&self, i: usize) -> i16 {
        let at = if self.0.len() == 2 { 0 } else { 2 * i };
        match self.0.get(at..at + 2) {
            Some(c) => i16::from_be_bytes([c[0], c[1]]),
            None => 0,
        }
    }

    /// The codes, owned.
    pub fn to_vec(&self) -> Vec<i16> {
        self.iter().collect()
    }
}

/// The parameter values of a Bind as sent: `(len i32 | bytes)* n`, lengths checked at decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    count: usize,
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    /// How many parameters were sent.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No parameter was sent.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values in order; None is NULL.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            left: self.count,
            raw: self.raw,
        }
    }

    /// Checks the `count` length-prefixed values at the front of `r` and takes them.
    fn take(r: &mut BodyReader<'a>, count: usize) -> Result<Self, ProtocolError> {
        let all = r.buf;
        for _ in 0..count {
            let len = r.i32()?;
            // NB: any negative length is NULL, as in PostgreSQL's exec_bind_message.
            if let Ok(len) = usize::try_from(len) {
                r.take(len)?;
            }
        }
        let used = all.len() - r.buf.len();
        Ok(Params {
            count,
            raw: &all[..used],
        })
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    left: usize,
    raw: &'a [u8],
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Option<&'a [u8]>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // NB: the lengths were checked by Params::take; a short buffer ends the iteration
        // instead of panicking all the same.
        let (len, rest) = self.raw.split_first_chunk::<4>()?;
        let Ok(len) = usize::try_from(i32::from_be_bytes(*len)) else {
            self.raw = rest;
            return Some(None);
        };
        let (value, rest) = rest.split_at_checked(len)?;
        self.raw = rest;
        Some(Some(value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ParamIter<'_> {}

/// Decodes one regular message from its type byte and body (borrowing from the body).
pub fn decode_message(kind: u8, body: &[u8]) -> Result<FrontendMessage<'_>, ProtocolError> {
    match kind {
        b'Q' => {
            let mut r = BodyReader::new("Query", body);
            let sql = r.cstr()?;
            Ok(FrontendMessage::Query(sql))
        }
        b'P' => {
            let mut r = BodyReader::new("Parse", body);
            let name = r.cstr()?;
            let sql = r.cstr()?;
            let n = r.count(4)?;
            let mut param_oids = Vec::with_capacity(n);
            for _ in 0..n {
                // NB: OIDs are unsigned; the wire carries them as 4 raw bytes.
                param_oids.push(r.i32()? as u32);
            }
            r.finish()?;
            Ok(FrontendMessage::Parse {
                name,
                sql,
                param_oids,
            })
        }
        b'B' => {
            let mut r = BodyReader::new("Bind", body);
            let portal = r.cstr()?;
            let statement = r.cstr()?;
            let param_formats = r.format_codes()?;
            let np = r.count(4)?;
            let params = Params::take(&mut r, np)?;
            let result_formats = r.format_codes()?;
            r.finish()?;
            Ok(FrontendMessage::Bind(Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }))
        }
        b'D' | b'C' => {
            let message = if kind == b'D' { "Describe" } else { "Close" };
            let mut r = BodyReader::new(message, body);
            let target = match r.u8()? {
                b'S' => Target::Statement,
                b'P' => Target::Portal,
                _ => return Err(r.malformed("target must be 'S' or 'P'")),
            };
            let name = r.cstr()?;
            r.finish()?;
            if kind == b'D' {
                Ok(FrontendMessage::Describe { target, name })
            } else {
                Ok(FrontendMessage::Close { target, name })
            }
        }
        b'E' => {
            let mut r = BodyReader::new("Execute", body);
            let portal = r.cstr()?;
            let max_rows = r.i32()?;
            r.finish()?;
            Ok(FrontendMessage::Execute { portal, max_rows })
        }
        b'S' => Ok(FrontendMessage::Sync),
        b'H' => Ok(FrontendMessage::Flush),
        b'X' => Ok(FrontendMessage::Terminate),
        b'd' => Ok(FrontendMessage::CopyData(body)),
        b'c' => Ok(FrontendMessage::CopyDone),
        b'f' => {
            let mut r = BodyReader::new("CopyFail", body);
            Ok(FrontendMessage::CopyFail(r.cstr()?))
        }
        b'p' => Ok(FrontendMessage::Password(body)),
        other => Err(ProtocolError::UnknownType(other)),
    }
}

/// `SASLInitialResponse` body: `mechanism cstr | len i32 (-1 = none) | data (len bytes)`.
pub fn decode_sasl_initial(body: &[u8]) -> Result<(String, Bytes), ProtocolError> {
    let mut r = BodyReader::new("SASLInitialResponse", body);
    let mechanism = r.cstr()?.to_string();
    let len = r.i32()?;
    let data = match usize::try_from(len) {
        Ok(n) => Bytes::copy_from_slice(r.take(n)?),
        Err(_) => Bytes::new(),
    };
    r.finish()?;
    Ok((mechanism, data))
}

/// Checks a declared frame length (which counts its own 4 bytes) against `limit`.
pub fn body_len(declared: i32, limit: usize) -> Result<usize, ProtocolError> {
    let len = usize::try_from(declared).map_err(|_| ProtocolError::BadLength {
        len: i64::from(declared),
    })?;
    if !(4..=limit).contains(&len) {
        return Err(ProtocolError::BadLength {
            len: i64::from(declared),
        });
    }
    Ok(len - 4)
}

/// Transaction state reported in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InBlock,
    /// `E`: in a failed transaction block.
    Failed,
}

/// One column of a RowDescription (the name borrowed from the statement's columns: encoding a
/// RowDescription allocates nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    /// Column name.
    pub name: &'a str,
    /// OID of the source table, 0 if none.
    pub table_oid: u32,
    /// Attribute number in that table, 0 if none.
    pub column_id: i16,
    /// Type OID.
    pub type_oid: u32,
    /// pg_type.typlen.
    pub type_len: i16,
    /// pg_attribute.atttypmod.
    pub type_modifier: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// Fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// `S`/`V`: ERROR, FATAL, NOTICE, WARNING...
    pub severity: &'static str,
    /// `C`: SQLSTATE.
    pub code: String,
    /// `M`: primary message.
    pub message: String,
    /// `D`: detail.
    pub detail: Option<Box<str>>,
    /// `H`: hint.
    pub hint: Option<Box<str>>,
    /// `W`: where (context, e.g. `COPY t, line 3`).
    pub context: Option<Box<str>>,
}

impl ErrorFields {
    /// An ERROR with a SQLSTATE and message.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ErrorFields {
            severity: "ERROR",
            code: code.to_string(),
            message: message.into(),
            detail: None,
            hint: None,
            context: None,
        }
    }

    /// A FATAL (the connection ends after it).
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        ErrorFields {
            severity: "FATAL",
            ..Self::error(code, message)
        }
    }
}

/// Writes the values of one DataRow straight into the output buffer.
pub struct RowWriter<'a> {
    buf: &'a mut BytesMut,
}

impl RowWriter<'_> {
    /// A NULL value: length -1.
    pub fn null(&mut self) {
        self.buf.put_i32(-1);
    }

    /// A value given as bytes.
    pub fn bytes(&mut self, value: &[u8]) {
        self.buf
            .put_i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
        self.buf.put_slice(value);
    }

    /// A value `write` appends to the buffer; its length is filled in afterwards.
    pub fn with(&mut self, write: impl FnOnce(&mut BytesMut)) {
        let len_at = self.buf.len();
        self.buf.put_i32(0);
        write(self.buf);
        let len = i32::try_from(self.buf.len() - len_at - 4).unwrap_or(i32::MAX);
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Encoder of backend messages into an output buffer.
///
/// Each method appends one complete frame: `type 1B | len 4B | body`.
#[derive(Debug, Default)]
pub struct Output {
    buf: BytesMut,
}

impl Output {
    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes everything encoded so far.
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Everything encoded so far, to be written as one piece.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets what was encoded (it was written), keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// A single unframed byte (the `N` answer to SSLRequest).
    pub fn raw_byte(&mut self, b: u8) {
        self.buf.put_u8(b);
    }

    fn frame(&mut self, kind: u8, body: impl FnOnce(&mut BytesMut)) {
        self.buf.put_u8(kind);
        let len_at = self.buf.len();
        self.buf.put_i32(0);
        body(&mut self.buf);
        let len = self.buf.len() - len_at;
        // NB: a frame over 2 GiB cannot be represented; values that large never reach here
        // (the sql layer's values are bounded far below), so saturate rather than panic.
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn put_cstr(buf: &mut BytesMut, s: &str) {
        // NB: an interior NUL would end the string early on the client; drop it. Strings
        // without one (all but a crafted few) are copied in one piece.
        if s.as_bytes().contains(&0) {
            buf.extend(s.bytes().filter(|&b| b != 0));
        } else {
            buf.put_slice(s.as_bytes());
        }
        buf.put_u8(0);
    }

    /// `R | 8 | 0`: AuthenticationOk.
    pub fn authentication_ok(&mut self) {
        self.frame(b'R', |b| b.put_i32(0));
    }

    /// `R | len | 10 | (mechanism cstr)* | NUL`: AuthenticationSASL.
    pub fn authentication_sasl(&mut self, mechanisms: &[&str]) {
        self.frame(b'R', |b| {
            b.put_i32(10);
            for m in mechanisms {
                Self::put_cstr(b, m);
            }
            b.put_u8(0);
        });
    }

    /// `R | len | 11 | data`: AuthenticationSASLContinue (server-first-message).
    pub fn authentication_sasl_continue(&mut self, data: &[u8]) {
        self.frame(b'R', |b| {
            b.put_i32(11);
            b.extend_from_slice(data);
        });
    }

    /// `R | len | 12 | data`: AuthenticationSASLFinal (server-final-message).
    pub fn authentication_sasl_final(&mut self, data: &[u8]) {
        self.frame(b'R', |b| {
            b.put_i32(12);
            b.extend_from_slice(data);
        });
    }

    /// `S | len | name cstr | value cstr`: ParameterStatus.
    pub fn parameter_status(&mut self, name: &str, value: &str) {
        self.frame(b'S', |b| {
            Self::put_cstr(b, name);
            Self::put_cstr(b, value);
        });
    }

    /// `K | 12 | pid i32 | secret i32`: BackendKeyData.
    pub fn backend_key_data(&mut self, pid: i32, secret: i32) {
        self.frame(b'K', |b| {
            b.put_i32(pid);
            b.put_i32(secret);
        });
    }

    /// `v | len | newest_minor i32 | n i32 | option cstr * n`: NegotiateProtocolVersion.
    pub fn negotiate_protocol_version(&mut self, newest_minor: i32, unsupported: &[String]) {
        self.frame(b'v', |b| {
            b.put_i32(newest_minor);
            b.put_i32(i32::try_from(unsupported.len()).unwrap_or(i32::MAX));
            for option in unsupported {
                Self::put_cstr(b, option);
            }
        });
    }

    /// `Z | 5 | status 1B`: ReadyForQuery.
    pub fn ready_for_query(&mut self, status: ReadyStatus) {
        let byte = match status {
            ReadyStatus::Idle => b'I',
            ReadyStatus::InBlock => b'T',
            ReadyStatus::Failed => b'E',
        };
        self.frame(b'Z', |b| b.put_u8(byte));
    }

    /// `T | len | n i16 | (name cstr | table i32 | attnum i16 | type i32 | typlen i16 |
    /// typmod i32 | format i16) * n`: RowDescription.
    pub fn row_description<'a>(
        &mut self,
        fields: impl ExactSizeIterator<Item = FieldDescription<'a>>,
    ) {
        self.frame(b'T', |b| {
            b.put_i16(i16::try_from(fields.len()).unwrap_or(i16::MAX));
            for f in fields {
                Self::put_cstr(b, f.name);
                b.put_u32(f.table_oid);
                b.put_i16(f.column_id);
                b.put_u32(f.type_oid);
                b.put_i16(f.type_len);
                b.put_i32(f.type_modifier);
                b.put_i16(f.format);
            }
        });
    }

    /// `D | len | n i16 | (len i32 | bytes)* n`, -1 for NULL: DataRow.
    pub fn data_row<'v>(&mut self, values: impl ExactSizeIterator<Item = Option<&'v [u8]>>) {
        self.frame(b'D', |b| {
            b.put_i16(i16::try_from(values.len()).unwrap_or(i16::MAX));
            for v in values {
                match v {
                    None => b.put_i32(-1),
                    Some(bytes) => {
                        b.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                        b.put_slice(bytes);
                    }
                }
            }
        });
    }

    /// A DataRow of `columns` values written in place by `put` (no per-value buffers):
    /// same bytes as [`Output::data_row`]. `put` must write exactly `columns` values.
    pub fn data_row_with(&mut self, columns: usize, put: impl FnOnce(&mut RowWriter<'_>)) {
        self.frame(b'D', |b| {
            b.put_i16(i16::try_from(columns).unwrap_or(i16::MAX));
            put(&mut RowWriter { buf: b });
        });
    }

    /// `C | len | tag cstr`: CommandComplete.
    pub fn command_complete(&mut self, tag: &str) {
        self.frame(b'C', |b| Self::put_cstr(b, tag));
    }

    /// `I | 4`: EmptyQueryResponse.
    pub fn empty_query(&mut self) {
        self.frame(b'I', |_| {});
    }

    /// `1 | 4`: ParseComplete.
    pub fn parse_complete(&mut self) {
        self.frame(b'1', |_| {});
    }

    /// `2 | 4`: BindComplete.
    pub fn bind_complete(&mut self) {
        self.frame(b'2', |_| {});
    }

    /// `3 | 4`: CloseComplete.
    pub fn close_complete(&mut self) {
        self.frame(b'3', |_| {});
    }

    /// `n | 4`: NoData.
    pub fn no_data(&mut self) {
        self.frame(b'n', |_| {});
    }

    /// `s | 4`: PortalSuspended.
    pub fn portal_suspended(&mut self) {
        self.frame(b's', |_| {});
    }

    /// `G | len | format i8 (0 text) | n i16 | format i16 * n`: CopyInResponse.
    pub fn copy_in_response(&mut self, columns: usize) {
        self.frame(b'G', |b| {
            b.put_i8(0);
            let n = i16::try_from(columns).unwrap_or(i16::MAX);
            b.put_i16(n);
            for _ in 0..n {
                b.put_i16(0);
            }
        });
    }

    /// `H | len | format i8 (0 text) | n i16 | format i16 * n`: CopyOutResponse.
    pub fn copy_out_response(&mut self, columns: usize) {
        self.frame(b'H', |b| {
            b.put_i8(0);
            let n = i16::try_from(columns).unwrap_or(i16::MAX);
            b.put_i16(n);
            for _ in 0..n {
                b.put_i16(0);
            }
        });
    }

    /// `d | len | bytes`: CopyData.
    pub fn copy_data(&mut self, data: &[u8]) {
        self.frame(b'd', |b| b.put_slice(data));
    }

    /// `c | 4`: CopyDone.
    pub fn copy_done(&mut self) {
        self.frame(b'c', |_| {});
    }

    /// `t | len | n i16 | oid i32 * n`: ParameterDescription.
    pub fn parameter_description(&mut self, oids: &[u32]) {
        self.frame(b't', |b| {
            b.put_i16(i16::try_from(oids.len()).unwrap_or(i16::MAX));
            for oid in oids {
                b.put_u32(*oid);
            }
        });
    }

    /// `E | len | (code 1B | value cstr)* | NUL`: ErrorResponse.
    pub fn error_response(&mut self, e: &ErrorFields) {
        self.frame(b'E', |b| Self::put_fields(b, e));
    }

    /// `N | len | (code 1B | value cstr)* | NUL`: NoticeResponse.
    pub fn notice_response(&mut self, e: &ErrorFields) {
        self.frame(b'N', |b| Self::put_fields(b, e));
    }

    fn put_fields(b: &mut BytesMut, e: &ErrorFields) {
        let mut field = |code: u8, value: &str| {
            b.put_u8(code);
            Self::put_cstr(b, value);
        };
        field(b'S', e.severity);
        field(b'V', e.severity);
        field(b'C', &e.code);
        field(b'M', &e.message);
        if let Some(detail) = &e.detail {
            field(b'D', detail);
        }
        if let Some(hint) = &e.hint {
            field(b'H', hint);
        }
        if let Some(context) = &e.context {
            field(b'W', context);
        }
        b.put_u8(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"p1\0s1\0");
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&[0, 41]);
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b
    }

    #[test]
    fn bind_with_null_and_binary_param_decodes() {
        let body = bind_body();
        let msg = decode_message(b'B', &body).unwrap();
        let FrontendMessage::Bind(bind) = msg else {
            panic!("not a Bind: {msg:?}");
        };
        assert_eq!((bind.portal, bind.statement), ("p1", "s1"));
        assert_eq!(bind.param_formats.to_vec(), vec![1]);
        assert_eq!(
            bind.params.iter().collect::<Vec<_>>(),
            vec![Some(&[0u8, 41][..]), None]
        );
        assert_eq!(bind.params.iter().len(), 2);
        assert!(bind.result_formats.is_empty());
    }

    #[test]
    fn bind_format_codes_apply_to_all_or_each() {
        let codes = |c: &[i16]| -> Vec<u8> { c.iter().flat_map(|c| c.to_be_bytes()).collect() };
        let none = codes(&[]);
        let one = codes(&[1]);
        let each = codes(&[0, 1]);
        assert_eq!(FormatCodes(&none).format_of(3), 0);
        assert_eq!(FormatCodes(&one).format_of(3), 1);
        assert_eq!(FormatCodes(&each).format_of(1), 1);
        assert_eq!(FormatCodes(&each).format_of(0), 0);
        assert_eq!(FormatCodes(&each).format_of(5), 0);
        assert_eq!(FormatCodes(&each).len(), 2);
    }

    #[test]
    fn strings_lose_interior_nuls_on_the_wire() {
        let mut out = Output::default();
        out.command_complete("a\0b");
        assert_eq!(&out.take()[..], &[b'C', 0, 0, 0, 7, b'a', b'b', 0]);
    }

    #[test]
    fn every_truncation_of_a_bind_is_an_error_not_a_panic() {
        let body = bind_body();
        for cut in 0..body.len() {
            assert!(decode_message(b'B', &body[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_parameter_length_is_rejected() {
        let mut b = Vec::new();
        b.extend_from_slice(b"\0\0");
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_message(b'B', &b).is_err());
    }

    #[test]
    fn negative_or_tiny_lengths_are_rejected() {
        assert!(body_len(-5, MAX_MESSAGE).is_err());
        assert!(body_len(3, MAX_MESSAGE).is_err());
        assert!(body_len(20_000, MAX_STARTUP_PACKET).is_err());
        assert_eq!(body_len(4, MAX_MESSAGE), Ok(0));
    }

    #[test]
    fn startup_packet_keeps_parameters_in_order() {
        let mut b = Vec::new();
        b.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        b.extend_from_slice(b"user\0gnomon\0database\0db\0\0");
        assert_eq!(
            decode_startup(&b).unwrap(),
            StartupPacket::Startup {
                version: PROTOCOL_3_0,
                params: vec![
                    ("user".into(), "gnomon".into()),
                    ("database".into(), "db".into())
                ],
            }
        );
    }

    #[test]
    fn ssl_and_cancel_requests_are_recognised() {
        assert_eq!(
            decode_startup(&SSL_REQUEST_CODE.to_be_bytes()).unwrap(),
            StartupPacket::SslRequest
        );
        let mut b = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&9i32.to_be_bytes());
        assert_eq!(
            decode_startup(&b).unwrap(),
            StartupPacket::Cancel { pid: 7, secret: 9 }
        );
    }

    #[test]
    fn frames_carry_their_length() {
        let mut out = Output::default();
        out.command_complete("SELECT 1");
        out.ready_for_query(ReadyStatus::InBlock);
        let bytes = out.take();
        assert_eq!(&bytes[..5], &[b'C', 0, 0, 0, 13]);
        assert_eq!(&bytes[5..14], b"SELECT 1\0");
        assert_eq!(&bytes[14..], &[b'Z', 0, 0, 0, 5, b'T']);
    }

    #[test]
    fn data_row_written_in_place_matches_the_value_list_encoding() {
        let mut listed = Output::default();
        listed.data_row([Some(&b"42"[..]), None, Some(&b""[..])].into_iter());
        let mut in_place = Output::default();
        in_place.data_row_with(3, |w| {
            w.with(|b| b.put_slice(b"42"));
            w.null();
            w.bytes(b"");
        });
        assert_eq!(listed.take(), in_place.take());
    }

    #[test]
    fn error_response_has_severity_code_and_message() {
        let mut out = Output::default();
        out.error_response(&ErrorFields::error("42P01", "no"));
        let bytes = out.take();
        assert_eq!(&bytes[5..], b"SERROR\0VERROR\0C42P01\0Mno\0\0");
    }
}
