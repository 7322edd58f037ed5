//! Reading segments: the buffered frame reader, open-time validation, and replay.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::WalError;
use crate::format::{
    decode_frame_header, decode_segment_header, encode_segment_header, HeaderProblem,
    FORMAT_VERSION, MAX_PAYLOAD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs::{write_zeros, FileSystem, WalFile};
use crate::{Lsn, Record, RecordKind};

/// How much a reader fetches per `read_at` when it needs more bytes.
const READ_CHUNK: usize = 256 * 1024;

/// One segment of the log as the writer and readers know it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    /// LSN of its first record (also in its name and header).
    pub first_lsn: u64,
    /// Its file.
    pub path: PathBuf,
}

/// Reads a segment file through a window buffer, so that scanning costs one `read_at` per
/// `READ_CHUNK` bytes instead of two per record, and memory stays bounded by the largest record.
pub(crate) struct SegmentReader {
    file: Box<dyn WalFile>,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

/// What lies at a file position of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete frame with a matching checksum; the next one starts at `next`.
    Valid {
        kind: u8,
        payload_len: u32,
        next: u64,
    },
    /// Exactly the end of the file.
    End,
    /// A torn, zero-filled or damaged frame.
    Bad { reason: &'static str },
}

impl SegmentReader {
    pub fn new(file: Box<dyn WalFile>) -> io::Result<SegmentReader> {
        let file_len = file.file_len()?;
        Ok(SegmentReader {
            file,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
        })
    }

    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    pub fn into_file(self) -> Box<dyn WalFile> {
        self.file
    }

    /// The bytes `[pos, pos + len)`, or `None` if they extend past the end of the file.
    pub fn bytes(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let Some(end) = pos.checked_add(len as u64) else {
            return Ok(None);
        };
        if end > self.file_len {
            return Ok(None);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || end > buf_end {
            let want = (len.max(READ_CHUNK) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            let mut filled = 0;
            while filled < want {
                let n = self
                    .file
                    .read_at(pos + filled as u64, &mut self.buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            self.buf.truncate(filled);
            self.buf_start = pos;
            if filled < len {
                // The file shrank under us; treat what is missing as absent.
                return Ok(None);
            }
        }
        let from = (pos - self.buf_start) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// Decodes and checks the frame starting at file offset `pos`.
    pub fn frame_at(&mut self, pos: u64) -> io::Result<Frame> {
        if pos == self.file_len {
            return Ok(Frame::End);
        }
        let header = match self.bytes(pos, RECORD_HEADER_LEN)? {
            Some(bytes) => {
                let mut header = [0u8; RECORD_HEADER_LEN];
                header.copy_from_slice(bytes);
                decode_frame_header(&header)
            }
            None => {
                return Ok(Frame::Bad {
                    reason: "torn record header",
                })
            }
        };
        if header.len == 0 && header.kind == 0 {
            return Ok(Frame::Bad {
                reason: "zero-filled record header",
            });
        }
        if header.kind == 0 {
            return Ok(Frame::Bad {
                reason: "record type 0 is reserved",
            });
        }
        if header.len as usize > MAX_PAYLOAD_LEN {
            return Ok(Frame::Bad {
                reason: "record length exceeds the maximum",
            });
        }
        let payload_pos = pos + RECORD_HEADER_LEN as u64;
        let Some(payload) = self.bytes(payload_pos, header.len as usize)? else {
            return Ok(Frame::Bad {
                reason: "torn record payload",
            });
        };
        if crate::format::record_crc(header.kind, payload) != header.crc {
            return Ok(Frame::Bad {
                reason: "record checksum mismatch",
            });
        }
        Ok(Frame::Valid {
            kind: header.kind,
            payload_len: header.len,
            next: payload_pos + u64::from(header.len),
        })
    }

    /// The first file offset at or after `from` where a valid frame starts, if any. Used to
    /// tell a torn tail (nothing valid after the damage) from corruption (valid data after it).
    ///
    /// Only frames whose type byte lies before `nonzero_end` are looked for: past the last
    /// non-zero byte of the file no frame can start (type 0 is never written).
    pub fn find_valid_frame_after(
        &mut self,
        from: u64,
        nonzero_end: u64,
    ) -> io::Result<Option<u64>> {
        let mut pos = from;
        while pos + RECORD_HEADER_LEN as u64 <= nonzero_end.min(self.file_len) {
            if let Frame::Valid { .. } = self.frame_at(pos)? {
                return Ok(Some(pos));
            }
            pos += 1;
        }
        Ok(None)
    }

    /// The file offset just past the last non-zero byte at or after `from`; `from` if every
    /// byte from there to the end of the file is zero (preallocated room).
    pub fn nonzero_end(&mut self, from: u64) -> io::Result<u64> {
        let mut end = self.file_len;
        while end > from {
            let start = end.saturating_sub(READ_CHUNK as u64).max(from);
            let Some(bytes) = self.bytes(start, (end - start) as usize)? else {
                // The file shrank under us: count what we could not read as non-zero, so it
                // is checked (and overwritten) like damage rather than trusted as room.
                return Ok(end);
            };
            if let Some(last) = bytes.iter().rposition(|&b| b != 0) {
                return Ok(start + last as u64 + 1);
            }
            end = start;
        }
        Ok(from)
    }
}

/// The outcome of validating one segment at open.
pub(crate) struct ValidatedSegment {
    pub meta: SegmentMeta,
    /// LSN just past its last valid record.
    pub end_lsn: u64,
    /// File offset just past its last valid record (where the writer continues).
    pub end_offset: u64,
    /// File offset up to which the bytes after `end_offset` are zero (the file's length):
    /// preallocated room the writer fills before growing the file.
    pub room_end: u64,
    /// The open file (the writer keeps the last segment's).
    pub file: Box<dyn WalFile>,
}

/// Validates one segment: header, then every frame. In the last segment a damaged frame with
/// nothing valid after it is a torn tail: its bytes are overwritten with zeros (synced), and
/// the zero-filled rest of the file is kept as preallocated room; anywhere else a damaged frame
/// is corruption.
pub(crate) fn validate_segment(
    fs: &dyn FileSystem,
    path: &Path,
    name_lsn: u64,
    is_last: bool,
) -> Result<ValidatedSegment, WalError> {
    let file = fs
        .open(path)
        .map_err(|e| WalError::io("open segment", path, e))?;
    let mut reader = SegmentReader::new(file).map_err(|e| WalError::io("stat segment", path, e))?;
    let read_err = |e| WalError::io("read segment", path, e);

    let header = match reader.bytes(0, SEGMENT_HEADER_LEN).map_err(read_err)? {
        Some(bytes) => {
            let mut header = [0u8; SEGMENT_HEADER_LEN];
            header.copy_from_slice(bytes);
            Some(header)
        }
        None => None,
    };
    let header_result = match &header {
        Some(header) => decode_segment_header(header),
        None => Err(HeaderProblem::Damaged("file shorter than its header")),
    };
    match header_result {
        Ok(first_lsn) if first_lsn == name_lsn => {}
        Ok(first_lsn) => {
            return Err(WalError::corruption(
                path,
                16,
                format!("header says first LSN {first_lsn} but the file name says {name_lsn}"),
            ))
        }
        Err(HeaderProblem::Version(found)) => {
            return Err(WalError::UnsupportedVersion {
                segment: path.to_path_buf(),
                found,
                supported: FORMAT_VERSION,
            })
        }
        Err(HeaderProblem::Damaged(reason)) => {
            // A crash while creating the last segment leaves it short or zero-filled: the
            // previous segment was synced before this one was created, and nothing in this one
            // was acknowledged, so it is rewritten empty.
            if is_last && all_zero_or_short(&mut reader).map_err(read_err)? {
                let file = reader.into_file();
                let header = encode_segment_header(name_lsn);
                file.set_len(0)
                    .and_then(|()| file.write_all_at(0, &header))
                    .and_then(|()| file.sync_data())
                    .map_err(|e| WalError::io("rewrite torn segment header", path, e))?;
                return Ok(ValidatedSegment {
                    meta: SegmentMeta {
                        first_lsn: name_lsn,
                        path: path.to_path_buf(),
                    },
                    end_lsn: name_lsn,
                    end_offset: SEGMENT_HEADER_LEN as u64,
                    room_end: SEGMENT_HEADER_LEN as u64,
                    file,
                });
            }
            return Err(WalError::corruption(path, 0, reason));
        }
    }

    let mut pos = SEGMENT_HEADER_LEN as u64;
    loop {
        match reader.frame_at(pos).map_err(read_err)? {
            Frame::Valid { next, .. } => pos = next,
            Frame::End => break,
            Frame::Bad { reason } => {
                if !is_last {
                    return Err(WalError::corruption(
                        path,
                        pos,
                        format!("{reason} in a segment that is not the last one"),
                    ));
                }
                // NB: a preallocated tail is all zeros, so the scan for valid data after the
                // damage stops at the last non-zero byte (nothing can start after it).
                let nonzero_end = reader.nonzero_end(pos).map_err(read_err)?;
                if let Some(later) = reader
                    .find_valid_frame_after(pos + 1, nonzero_end)
                    .map_err(read_err)?
                {
                    return Err(WalError::corruption(
                        path,
                        pos,
                        format!("{reason}, followed by a valid record at offset {later}"),
                    ));
                }
                let room_end = reader.file_len();
                let file = reader.into_file();
                if nonzero_end > pos {
                    // Torn tail: overwrite it with zeros and make that durable before anything
                    // is appended, so no byte of it can follow a later record. The file keeps
                    // its length: the zeros after it are room the writer fills next.
                    write_zeros(file.as_ref(), pos, nonzero_end)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| WalError::io("zero torn tail", path, e))?;
                }
                return Ok(ValidatedSegment {
                    meta: SegmentMeta {
                        first_lsn: name_lsn,
                        path: path.to_path_buf(),
                    },
                    end_lsn: name_lsn + (pos - SEGMENT_HEADER_LEN as u64),
                    end_offset: pos,
                    room_end,
                    file,
                });
            }
        }
    }
    Ok(ValidatedSegment {
        meta: SegmentMeta {
            first_lsn: name_lsn,
            path: path.to_path_buf(),
        },
        end_lsn: name_lsn + (pos - SEGMENT_HEADER_LEN as u64),
        end_offset: pos,
        room_end: pos,
        file: reader.into_file(),
    })
}

fn all_zero_or_short(reader: &mut SegmentReader) -> io::Result<bool> {
    if reader.file_len() < SEGMENT_HEADER_LEN as u64 {
        return Ok(true);
    }
    let mut pos = 0;
    while pos < reader.file_len() {
        let len = (reader.file_len() - pos).min(READ_CHUNK as u64) as usize;
        match reader.bytes(pos, len)? {
            Some(bytes) if bytes.iter().all(|&b| b == 0) => pos += len as u64,
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Iterator over the records of the log with `lsn >= from`, in LSN order, up to the durable
/// end of the log at the time [`crate::Wal::replay`] was called.
///
/// Yields `Err` (and then stops) if a segment cannot be read, was removed meanwhile, or holds
/// damage that appeared after the log was opened.
pub struct Replay {
    fs: Arc<dyn FileSystem>,
    segments: std::vec::IntoIter<SegmentMeta>,
    current: Option<(SegmentMeta, SegmentReader, u64)>,
    from: u64,
    stop: u64,
    failed: bool,
}

impl Replay {
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        segments: Vec<SegmentMeta>,
        from: u64,
        stop: u64,
    ) -> Replay {
        Replay {
            fs,
            segments: segments.into_iter(),
            current: None,
            from,
            stop,
            failed: false,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, WalError> {
        loop {
            if self.current.is_none() {
                let Some(meta) = self.segments.next() else {
                    return Ok(None);
                };
                if meta.first_lsn >= self.stop {
                    return Ok(None);
                }
                let file = self
                    .fs
                    .open(&meta.path)
                    .map_err(|e| WalError::io("open segment for replay", &meta.path, e))?;
                let reader = SegmentReader::new(file)
                    .map_err(|e| WalError::io("stat segment for replay", &meta.path, e))?;
                self.current = Some((meta, reader, SEGMENT_HEADER_LEN as u64));
            }
            let Some((meta, reader, pos)) = self.current.as_mut() else {
                continue;
            };
            let lsn = meta.first_lsn + (*pos - SEGMENT_HEADER_LEN as u64);
            if lsn >= self.stop {
                return Ok(None);
            }
            let frame = reader
                .frame_at(*pos)
                .map_err(|e| WalError::io("read segment for replay", &meta.path, e))?;
            match frame {
                Frame::Valid {
                    kind,
                    payload_len,
                    next,
                } => {
                    let start = *pos;
                    *pos = next;
                    if lsn < self.from {
                        continue;
                    }
                    let payload = reader
                        .bytes(start + RECORD_HEADER_LEN as u64, payload_len as usize)
                        .map_err(|e| WalError::io("read segment for replay", &meta.path, e))?
                        .map(<[u8]>::to_vec)
                        .ok_or_else(|| {
                            WalError::corruption(&meta.path, start, "record vanished during replay")
                        })?;
                    return Ok(Some(Record {
                        lsn: Lsn(lsn),
                        kind: RecordKind(kind),
                        payload,
                    }));
                }
                Frame::End => self.current = None,
                Frame::Bad { reason } => {
                    return Err(WalError::corruption(&meta.path, *pos, reason));
                }
            }
        }
    }
}

impl Iterator for Replay {
    type Item = Result<Record, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("from", &self.from)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}
