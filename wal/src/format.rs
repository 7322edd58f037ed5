//! On-disk formats: the segment header and the record frame.
//!
//! Everything here is FROZEN for format version 1: changing any constant, field, order or
//! checksum rule needs a new [`FORMAT_VERSION`], and the reader refuses versions it does not
//! know (`WalError::UnsupportedVersion`).
//!
//! A segment file is its header followed by frames, back to back. The last (active) segment
//! may end in zero bytes after its last frame (preallocated room, or a crash mid-write): a
//! zero-filled frame header is the end of the log there, as it always was for version 1.
//! Every other segment ends exactly at its last frame.

/// FROZEN. First 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"GNMNWAL\0";

/// FROZEN (bump on any format change). Format version written in every segment header.
pub const FORMAT_VERSION: u32 = 1;

/// FROZEN. Size of the segment header in bytes; records start at this file offset.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// FROZEN. Size of a record frame's header (length + crc + type) in bytes.
pub const RECORD_HEADER_LEN: usize = 9;

/// Largest payload a record may carry (1 GiB). Not part of the frame format: a reader treats a
/// length above it as a damaged frame.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// FROZEN. Segment files are named `{first_lsn:020}.wal`.
pub const SEGMENT_SUFFIX: &str = ".wal";

/// Segment header, 32 bytes, all integers little-endian:
///
/// ```text
///  offset  size  field
///  ------  ----  ---------------------------------------------------------------
///       0     8  magic            b"GNMNWAL\0"                     (SEGMENT_MAGIC)
///       8     4  format version   u32 LE, currently 1              (FORMAT_VERSION)
///      12     4  reserved         u32 LE, written 0, ignored by version-1 readers
///      16     8  first LSN        u64 LE, LSN of the first record in this segment,
///                                 equal to the number in the file name
///      24     4  header CRC       u32 LE, CRC-32 (IEEE, crc32fast) of bytes 0..24
///      28     4  reserved         u32 LE, written 0
/// ```
pub fn encode_segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&header[0..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Magic or checksum wrong: this is not (or no longer) a Gnomon segment header.
    Damaged(&'static str),
    /// A well-formed header of a format version this build cannot read.
    Version(u32),
}

/// Decodes a segment header, returning its first LSN.
pub fn decode_segment_header(header: &[u8; SEGMENT_HEADER_LEN]) -> Result<u64, HeaderProblem> {
    if header[0..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::Damaged("bad magic number"));
    }
    let stored_crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if crc32fast::hash(&header[0..24]) != stored_crc {
        return Err(HeaderProblem::Damaged("header checksum mismatch"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(HeaderProblem::Version(version));
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&header[16..24]);
    Ok(u64::from_le_bytes(lsn))
}

/// Record frame, `9 + len` bytes, integers little-endian:
///
/// ```text
///  +-----------+-----------+----------+---------------------+
///  | len  (4B) | crc  (4B) | type(1B) | payload (len bytes) |
///  +-----------+-----------+----------+---------------------+
///  0           4           8          9                 9 + len
///
///  len      u32 LE   payload length only (not the 9 header bytes)
///  crc      u32 LE   CRC-32 (IEEE, crc32fast) over the type byte followed by the payload
///  type     u8       RecordKind; 0 is reserved and never written, so a zero-filled
///                    region can never decode as a record
///  payload  len bytes, opaque to the log
/// ```
///
/// A record's LSN is the logical offset of its first (`len`) byte in the record stream, which
/// is the concatenation of all frames of all segments without the segment headers.
pub fn encode_record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    // Callers check `payload.len() <= MAX_PAYLOAD_LEN`, so the cast is lossless.
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&record_crc(kind, payload).to_le_bytes());
    frame.push(kind);
    frame.extend_from_slice(payload);
    frame
}

/// The frame checksum: CRC-32 over the type byte and then the payload.
pub fn record_crc(kind: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    hasher.finalize()
}

/// The parsed fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Record type byte.
    pub kind: u8,
}

/// Splits the 9 header bytes of a frame.
pub fn decode_frame_header(bytes: &[u8; RECORD_HEADER_LEN]) -> FrameHeader {
    FrameHeader {
        len: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        crc: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        kind: bytes[8],
    }
}

/// The file name of the segment whose first record has LSN `first_lsn`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back to its first LSN; `None` for any other file.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_roundtrips_and_rejects_damage() {
        let header = encode_segment_header(12345);
        assert_eq!(decode_segment_header(&header), Ok(12345));
        let mut bad = header;
        bad[17] ^= 1;
        assert!(matches!(
            decode_segment_header(&bad),
            Err(HeaderProblem::Damaged(_))
        ));
    }

    #[test]
    fn unknown_format_version_is_refused() {
        let mut header = encode_segment_header(0);
        header[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&header[0..24]);
        header[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_segment_header(&header),
            Err(HeaderProblem::Version(2))
        );
    }

    #[test]
    fn frame_layout_is_len_crc_type_payload() {
        let frame = encode_record(7, b"abc");
        assert_eq!(&frame[0..4], &3u32.to_le_bytes());
        assert_eq!(&frame[4..8], &record_crc(7, b"abc").to_le_bytes());
        assert_eq!(frame[8], 7);
        assert_eq!(&frame[9..], b"abc");
    }

    #[test]
    fn segment_names_are_zero_padded_first_lsns() {
        assert_eq!(segment_file_name(0), "00000000000000000000.wal");
        assert_eq!(
            parse_segment_file_name("00000000000000004096.wal"),
            Some(4096)
        );
        assert_eq!(parse_segment_file_name("4096.wal"), None);
        assert_eq!(parse_segment_file_name("00000000000000004096.tmp"), None);
    }
}
