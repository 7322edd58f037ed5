//! Checkpoint files: an immutable, sorted, CRC-checked image of every live version.
//!
//! # File format (format version 2; all integers little-endian)
//!
//! ```text
//! offset 0
//! +-----------------------------------------------------------------------+
//! | header (16 B): magic "GNOMCKPT" (8) | format_version u32 | flags u32   |
//! +-----------------------------------------------------------------------+
//! | block 0 | block 1 | ... | block n-1                                   |
//! +-----------------------------------------------------------------------+
//! | index: n index entries                                                |
//! +-----------------------------------------------------------------------+
//! | range deletes (format 2 only)                                         |
//! +-----------------------------------------------------------------------+
//! | trailer (72 B)                                                        |
//! +-----------------------------------------------------------------------+
//!
//! header:       flags are reserved and must be 0 (the reader rejects anything else).
//! block:        entry_count u32 | entry * entry_count | crc32 u32
//!               (crc32 covers entry_count and the entries)
//! entry:        key_len u32 | key (key_len B) | version u128 (16 B) | kind u8
//!               | if kind == 1: value_len u32 | value (value_len B)
//!               kind: 0 = tombstone, 1 = value (other values are corruption)
//! index entry:  block_offset u64 | block_len u32 (incl. count and crc)
//!               | first_key_len u32 | first_key | first_version u128
//! trailer:      index_offset u64 | index_len u64 | block_count u64 | entry_count u64
//!               | wal_lsn u64 | max_version u128 | index_crc u32 | trailer_crc u32
//!               | tail magic "GNOMTAIL" (8)
//!               (trailer_crc covers the 60 bytes before it; index_crc covers the index)
//! range deletes: count u32 | count × (start_len u32 | start | end_len u32 | end
//!               | version u128) | crc32 u32 (covers count and the range deletes)
//!               every range delete the engine held at or below the file's settled version
//!               (see `ranges.rs`); they run from the index's end to the trailer.
//! ```
//!
//! Format 1 (before range deletes) has nothing between the index and the trailer; it is still
//! read (as a file without range deletes). Files are written in format 2.
//!
//! Entries are sorted by (key ascending, version descending) across the whole file, so the
//! index's first keys are sorted too and a seek is a binary search over the blocks, then one
//! over the entries of the block (their offsets are collected in memory at open, 4 bytes per
//! entry; the file has no in-block index). The block search runs on the first 16 bytes of each
//! block's first key, kept in memory as an integer (`KeyHead`, 16 bytes per block), and reads
//! key bytes from the mapping only for blocks whose head equals the probe's.
//! The reader validates everything at open (header, trailer, index, every block's CRC and
//! every entry's bounds), so the read path never meets a malformed byte.
//!
//! Files are written as `checkpoint-<seq>.tmp`, fsynced, renamed to `checkpoint-<seq>.ckpt`
//! (seq = 20 decimal digits, increasing), and the directory is fsynced.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::Mmap;

use crate::key::{cmp_versioned, Found, KeyHead, KeyParts, KeyView, Probe, Source};
use crate::ranges::{RangeDelete, RangeDeletes};
use crate::{EngineError, Version};

/// Header magic. FROZEN.
pub(crate) const HEADER_MAGIC: &[u8; 8] = b"GNOMCKPT";
/// Trailer magic. FROZEN.
pub(crate) const TAIL_MAGIC: &[u8; 8] = b"GNOMTAIL";
/// The format this build writes. Bump on any layout change.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The format before range deletes, still read. FROZEN.
pub(crate) const FORMAT_VERSION_1: u32 = 1;
/// Header length in bytes. FROZEN for formats 1 and 2.
pub(crate) const HEADER_LEN: usize = 16;
/// Trailer length in bytes. FROZEN for formats 1 and 2.
pub(crate) const TRAILER_LEN: usize = 72;
const VERSION_LEN: usize = 16;
const KIND_TOMBSTONE: u8 = 0;
const KIND_VALUE: u8 = 1;

/// File name prefix and suffixes. FROZEN (recovery looks for them).
pub(crate) const FILE_PREFIX: &str = "checkpoint-";
pub(crate) const FILE_SUFFIX: &str = ".ckpt";
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// `checkpoint-<seq>.ckpt`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{FILE_PREFIX}{seq:020}{FILE_SUFFIX}")
}

/// Parses a checkpoint file name back into its sequence number.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix(FILE_PREFIX)?
        .strip_suffix(FILE_SUFFIX)?
        .parse()
        .ok()
}

/// What a finished checkpoint file holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WrittenStats {
    pub(crate) entries: u64,
    pub(crate) blocks: u64,
    pub(crate) bytes: u64,
}

/// Streams sorted entries into a new checkpoint file.
pub(crate) struct CheckpointWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    block_target: usize,
    block: Vec<u8>,
    block_entries: u32,
    index: Vec<u8>,
    /// Start of the index entry of the block being filled (its length is patched at flush).
    open_index_entry: usize,
    block_count: u64,
    entry_count: u64,
    max_version: Version,
}

impl CheckpointWriter {
    /// Creates (truncating) `path` and writes the header.
    pub(crate) fn create(path: &Path, block_target: usize) -> Result<Self, EngineError> {
        let file = File::create(path).map_err(|e| EngineError::io("create", path, e))?;
        let mut writer = CheckpointWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            offset: 0,
            block_target: block_target.max(64),
            block: Vec::with_capacity(block_target + 1024),
            block_entries: 0,
            index: Vec::new(),
            open_index_entry: 0,
            block_count: 0,
            entry_count: 0,
            max_version: Version::MIN,
        };
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(HEADER_MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        writer.write_raw(&header)?;
        Ok(writer)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        self.out
            .write_all(bytes)
            .map_err(|e| EngineError::io("write", &self.path, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends one entry. Callers add entries in (key asc, version desc) order.
    pub(crate) fn add(
        &mut self,
        user: &[u8],
        version: Version,
        value: Option<&[u8]>,
    ) -> Result<(), EngineError> {
        if self.block_entries == 0 {
            // Index entry: offset and first key now, length when the block is flushed.
            self.open_index_entry = self.index.len();
            self.index.extend_from_slice(&self.offset.to_le_bytes());
            self.index.extend_from_slice(&0u32.to_le_bytes());
            self.index
                .extend_from_slice(&len_u32(user.len()).to_le_bytes());
            self.index.extend_from_slice(user);
            self.index.extend_from_slice(&version.0.to_le_bytes());
            self.block.clear();
            self.block.extend_from_slice(&0u32.to_le_bytes());
        }
        self.block
            .extend_from_slice(&len_u32(user.len()).to_le_bytes());
        self.block.extend_from_slice(user);
        self.block.extend_from_slice(&version.0.to_le_bytes());
        match value {
            None => self.block.push(KIND_TOMBSTONE),
            Some(v) => {
                self.block.push(KIND_VALUE);
                self.block
                    .extend_from_slice(&len_u32(v.len()).to_le_bytes());
                self.block.extend_from_slice(v);
            }
        }
        self.block_entries += 1;
        self.entry_count += 1;
        self.max_version = self.max_version.max(version);
        if self.block.len() >= self.block_target {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), EngineError> {
        if self.block_entries == 0 {
            return Ok(());
        }
        self.block[0..4].copy_from_slice(&self.block_entries.to_le_bytes());
        let crc = crc32fast::hash(&self.block);
        self.block.extend_from_slice(&crc.to_le_bytes());
        let block_len = len_u32(self.block.len());
        // Patch the length of the index entry opened by the block's first `add`.
        let at = self.open_index_entry;
        self.index[at + 8..at + 12].copy_from_slice(&block_len.to_le_bytes());
        let block = std::mem::take(&mut self.block);
        self.write_raw(&block)?;
        self.block = block;
        self.block.clear();
        self.block_entries = 0;
        self.block_count += 1;
        Ok(())
    }

    /// Flushes the last block, writes index and trailer, fsyncs (if `sync`) and closes.
    pub(crate) fn finish(
        mut self,
        wal_lsn: u64,
        max_version: Version,
        ranges: &RangeDeletes,
        sync: bool,
    ) -> Result<WrittenStats, EngineError> {
        self.flush_block()?;
        let index_offset = self.offset;
        let index = std::mem::take(&mut self.index);
        self.write_raw(&index)?;
        let mut section = Vec::new();
        section.extend_from_slice(&len_u32(ranges.iter().count()).to_le_bytes());
        for r in ranges.iter() {
            section.extend_from_slice(&len_u32(r.start.len()).to_le_bytes());
            section.extend_from_slice(&r.start);
            section.extend_from_slice(&len_u32(r.end.len()).to_le_bytes());
            section.extend_from_slice(&r.end);
            section.extend_from_slice(&r.version.0.to_le_bytes());
        }
        let section_crc = crc32fast::hash(&section);
        section.extend_from_slice(&section_crc.to_le_bytes());
        self.write_raw(&section)?;
        let mut trailer = Vec::with_capacity(TRAILER_LEN);
        trailer.extend_from_slice(&index_offset.to_le_bytes());
        trailer.extend_from_slice(&(index.len() as u64).to_le_bytes());
        trailer.extend_from_slice(&self.block_count.to_le_bytes());
        trailer.extend_from_slice(&self.entry_count.to_le_bytes());
        trailer.extend_from_slice(&wal_lsn.to_le_bytes());
        trailer.extend_from_slice(&max_version.max(self.max_version).0.to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
        let trailer_crc = crc32fast::hash(&trailer);
        trailer.extend_from_slice(&trailer_crc.to_le_bytes());
        trailer.extend_from_slice(TAIL_MAGIC);
        debug_assert_eq!(trailer.len(), TRAILER_LEN);
        self.write_raw(&trailer)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| EngineError::io("flush", &self.path, e.into_error()))?;
        if sync {
            file.sync_all()
                .map_err(|e| EngineError::io("fsync", &self.path, e))?;
        }
        Ok(WrittenStats {
            entries: self.entry_count,
            blocks: self.block_count,
            bytes: self.offset,
        })
    }
}

/// Lengths are u32 on disk; keys and values are far smaller in practice.
/// NB: a >4 GiB key or value would be truncated in its length field; the SQL layer never
/// produces one (rows are bounded well below that).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u128(buf: &[u8], at: usize) -> Option<u128> {
    let bytes = buf.get(at..at.checked_add(16)?)?;
    Some(u128::from_le_bytes(bytes.try_into().ok()?))
}

/// Decodes and checks the range-delete section `data[from..to]` (format 2).
fn decode_range_deletes(data: &Bytes, from: usize, to: usize) -> Option<Vec<RangeDelete>> {
    let crc_at = to.checked_sub(4)?;
    if crc_at < from || crc32fast::hash(data.get(from..crc_at)?) != read_u32(data, crc_at)? {
        return None;
    }
    let area = data.get(..crc_at)?;
    let count = read_u32(area, from)?;
    let mut pos = from + 4;
    let mut out = Vec::new();
    for _ in 0..count {
        let mut key = || {
            let len = read_u32(area, pos)? as usize;
            let start = pos.checked_add(4)?;
            let end = start.checked_add(len)?;
            area.get(start..end)?;
            pos = end;
            Some(data.slice(start..end))
        };
        let start = key()?;
        let end = key()?;
        let version = Version(read_u128(area, pos)?);
        pos += VERSION_LEN;
        out.push(RangeDelete {
            start,
            end,
            version,
        });
    }
    (pos == crc_at).then_some(out)
}

/// One decoded entry: ranges into the file image.
#[derive(Clone, Debug)]
struct RawEntry {
    user: Range<usize>,
    version: Version,
    value: Option<Range<usize>>,
}

/// Decodes the entry at `pos`, not reading past `end`; `None` if malformed.
fn decode_entry(data: &[u8], pos: usize, end: usize) -> Option<(RawEntry, usize)> {
    let area = data.get(..end)?;
    let key_len = read_u32(area, pos)? as usize;
    let user_start = pos.checked_add(4)?;
    let user_end = user_start.checked_add(key_len)?;
    let version = Version(read_u128(area, user_end)?);
    let kind_at = user_end + VERSION_LEN;
    let kind = *area.get(kind_at)?;
    match kind {
        KIND_TOMBSTONE => Some((
            RawEntry {
                user: user_start..user_end,
                version,
                value: None,
            },
            kind_at + 1,
        )),
        KIND_VALUE => {
            let value_len = read_u32(area, kind_at + 1)? as usize;
            let value_start = kind_at + 5;
            let value_end = value_start.checked_add(value_len)?;
            if value_end > end {
                return None;
            }
            Some((
                RawEntry {
                    user: user_start..user_end,
                    version,
                    value: Some(value_start..value_end),
                },
                value_end,
            ))
        }
        _ => None,
    }
}

/// Location of one block inside the image.
#[derive(Debug)]
struct BlockMeta {
    /// Offset of the first entry (after entry_count).
    entries_start: usize,
    /// Offset just past the last entry (where the CRC begins).
    entries_end: usize,
    first_user: Range<usize>,
    first_version: Version,
    /// `KeyHead::of(first_user)`: the block search decides most comparisons on it.
    first_head: KeyHead,
    /// This block's entries in [`Checkpoint::offsets`] (so a seek inside the block is a binary
    /// search, not a decode of every entry before the target).
    entries: Range<usize>,
}

/// An open, validated checkpoint file, memory-mapped.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    path: PathBuf,
    seq: u64,
    /// The whole file; `Bytes::from_owner` keeps the mmap alive while any slice is in use.
    data: Bytes,
    blocks: Vec<BlockMeta>,
    /// Each block's `first_head`, dense (16 bytes a block): a seek binary-searches these
    /// first, so most steps are one integer compare on a few cache lines, not a `BlockMeta`
    /// and the key bytes in the mapping.
    block_heads: Vec<KeyHead>,
    /// Every entry's offset from its block's `entries_start`, block after block (built by the
    /// validation at open, which decodes every entry anyway): 4 bytes of memory per entry.
    offsets: Vec<u32>,
    wal_lsn: u64,
    max_version: Version,
    entry_count: u64,
    /// The range deletes stored in the file (none in format 1).
    range_deletes: Vec<RangeDelete>,
}

impl Checkpoint {
    /// Maps and fully validates a checkpoint file.
    pub(crate) fn open(path: &Path, seq: u64) -> Result<Checkpoint, EngineError> {
        let file = File::open(path).map_err(|e| EngineError::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| EngineError::io("stat", path, e))?
            .len();
        let corrupt = |reason: String| EngineError::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        if len < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(corrupt(format!("file is only {len} bytes (truncated)")));
        }
        // SAFETY: checkpoint files are immutable once renamed into place, and the directory
        // lock keeps other gnomon processes from touching them while they are mapped.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| EngineError::io("mmap", path, e))?;
        let data = Bytes::from_owner(mmap);
        let mut checkpoint = Checkpoint {
            path: path.to_path_buf(),
            seq,
            data,
            blocks: Vec::new(),
            block_heads: Vec::new(),
            offsets: Vec::new(),
            wal_lsn: 0,
            max_version: Version::MIN,
            entry_count: 0,
            range_deletes: Vec::new(),
        };
        checkpoint.validate().map_err(|failure| match failure {
            Invalid::Corrupt(reason) => corrupt(reason),
            Invalid::Format(found) => EngineError::UnsupportedCheckpointFormat {
                path: path.to_path_buf(),
                found,
                expected: FORMAT_VERSION,
            },
        })?;
        Ok(checkpoint)
    }

    fn validate(&mut self) -> Result<(), Invalid> {
        let data = self.data.clone();
        let data: &[u8] = &data;
        let bad = |s: &str| Invalid::Corrupt(s.to_string());
        if data.get(..8) != Some(HEADER_MAGIC.as_slice()) {
            return Err(bad("bad header magic"));
        }
        let format = read_u32(data, 8).ok_or_else(|| bad("short header"))?;
        if format != FORMAT_VERSION && format != FORMAT_VERSION_1 {
            return Err(Invalid::Format(format));
        }
        if read_u32(data, 12) != Some(0) {
            return Err(bad("reserved header flags are not zero"));
        }
        let t = data.len() - TRAILER_LEN;
        if data.get(t + 64..) != Some(TAIL_MAGIC.as_slice()) {
            return Err(bad("bad trailer magic (truncated or torn file)"));
        }
        let trailer_crc = read_u32(data, t + 60).ok_or_else(|| bad("short trailer"))?;
        if crc32fast::hash(&data[t..t + 60]) != trailer_crc {
            return Err(bad("trailer CRC mismatch"));
        }
        let field = |at: usize| read_u64(data, t + at).ok_or_else(|| bad("short trailer"));
        let index_offset = field(0)? as usize;
        let index_len = field(8)? as usize;
        let block_count = field(16)?;
        let entry_count = field(24)?;
        let wal_lsn = field(32)?;
        let max_version = Version(read_u128(data, t + 40).ok_or_else(|| bad("short trailer"))?);
        let index_crc = read_u32(data, t + 56).ok_or_else(|| bad("short trailer"))?;
        let index_end = index_offset
            .checked_add(index_len)
            .ok_or_else(|| bad("index bounds overflow"))?;
        let index_ends_file = if format == FORMAT_VERSION_1 {
            index_end == t
        } else {
            index_end <= t
        };
        if index_offset < HEADER_LEN || !index_ends_file {
            return Err(bad("index bounds do not match the file"));
        }
        if format != FORMAT_VERSION_1 {
            self.range_deletes = decode_range_deletes(&self.data, index_end, t)
                .ok_or_else(|| bad("malformed range deletes"))?;
        }
        let index = &data[index_offset..index_end];
        if crc32fast::hash(index) != index_crc {
            return Err(bad("index CRC mismatch"));
        }
        let mut blocks = Vec::new();
        let mut offsets = Vec::new();
        let mut pos = 0;
        let mut expected_offset = HEADER_LEN;
        let mut entries_seen = 0u64;
        while pos < index.len() {
            let truncated = || bad("truncated index entry");
            let offset = read_u64(index, pos).ok_or_else(truncated)? as usize;
            let block_len = read_u32(index, pos + 8).ok_or_else(truncated)? as usize;
            let key_len = read_u32(index, pos + 12).ok_or_else(truncated)? as usize;
            let key_start = index_offset + pos + 16;
            let key_end = key_start + key_len;
            let first_version = Version(
                read_u128(data, key_end)
                    .filter(|_| key_end + VERSION_LEN <= index_end)
                    .ok_or_else(truncated)?,
            );
            pos += 16 + key_len + VERSION_LEN;
            if offset != expected_offset || block_len < 8 {
                return Err(bad("block offsets are not contiguous"));
            }
            let block_end = offset
                .checked_add(block_len)
                .filter(|end| *end <= index_offset)
                .ok_or_else(|| bad("block extends past the index"))?;
            let crc_at = block_end - 4;
            let stored_crc = read_u32(data, crc_at).ok_or_else(|| bad("short block"))?;
            if crc32fast::hash(&data[offset..crc_at]) != stored_crc {
                return Err(Invalid::Corrupt(format!(
                    "block at offset {offset} fails its CRC"
                )));
            }
            let count = read_u32(data, offset).ok_or_else(|| bad("short block"))?;
            let mut entry_pos = offset + 4;
            let mut first = None;
            let entries_from = offsets.len();
            for _ in 0..count {
                let (entry, next) = decode_entry(data, entry_pos, crc_at)
                    .ok_or_else(|| bad("malformed entry inside a block"))?;
                // NB: a block's length is a u32 in the index, so this cannot fail for a valid one.
                let relative = u32::try_from(entry_pos - (offset + 4))
                    .map_err(|_| bad("block larger than 4 GiB"))?;
                offsets.push(relative);
                if first.is_none() {
                    first = Some(entry.clone());
                }
                entry_pos = next;
            }
            if entry_pos != crc_at {
                return Err(bad("block has trailing bytes"));
            }
            let first = first.ok_or_else(|| bad("empty block"))?;
            if data[first.user.clone()] != data[key_start..key_end]
                || first.version != first_version
            {
                return Err(bad("index first key does not match its block"));
            }
            blocks.push(BlockMeta {
                entries_start: offset + 4,
                entries_end: crc_at,
                first_user: key_start..key_end,
                first_version,
                first_head: KeyHead::of(&data[key_start..key_end]),
                entries: entries_from..offsets.len(),
            });
            entries_seen += u64::from(count);
            expected_offset = block_end;
        }
        if expected_offset != index_offset {
            return Err(bad("bytes between the last block and the index"));
        }
        if blocks.len() as u64 != block_count || entries_seen != entry_count {
            return Err(bad("block or entry count does not match the trailer"));
        }
        self.block_heads = blocks.iter().map(|b| b.first_head).collect();
        self.blocks = blocks;
        self.offsets = offsets;
        self.wal_lsn = wal_lsn;
        self.max_version = max_version;
        self.entry_count = entry_count;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
    /// The range deletes the file holds.
    pub(crate) fn range_deletes(&self) -> &[RangeDelete] {
        &self.range_deletes
    }
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
    pub(crate) fn wal_lsn(&self) -> u64 {
        self.wal_lsn
    }
    pub(crate) fn max_version(&self) -> Version {
        self.max_version
    }
    /// Versions (values and tombstones) stored in the file.
    pub(crate) fn entry_count(&self) -> u64 {
        self.entry_count
    }
    /// Size of the file in bytes.
    pub(crate) fn byte_len(&self) -> u64 {
        self.data.len() as u64
    }

    fn found(&self, raw: &RawEntry) -> Found {
        Found {
            user: self.data.slice(raw.user.clone()),
            version: raw.version,
            value: raw.value.clone().map(|r| self.data.slice(r)),
        }
    }

    /// Entries of block `b` in order (validated at open, so decoding cannot fail here; a
    /// failure would just end the block early).
    fn block_entries(&self, b: usize) -> impl Iterator<Item = RawEntry> + '_ {
        let meta = self.blocks.get(b);
        let mut pos = meta.map_or(0, |m| m.entries_start);
        let end = meta.map_or(0, |m| m.entries_end);
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let (entry, next) = decode_entry(&self.data, pos, end)?;
            pos = next;
            Some(entry)
        })
    }

    /// Entry `i` of block `b`; None past the block's last entry.
    fn block_entry(&self, b: &BlockMeta, i: usize) -> Option<RawEntry> {
        if i >= b.entries.len() {
            return None;
        }
        let relative = *self.offsets.get(b.entries.start + i)? as usize;
        decode_entry(&self.data, b.entries_start + relative, b.entries_end).map(|(e, _)| e)
    }

    /// How many leading entries of block `b` satisfy `pred` (which must hold for a prefix of
    /// the block's entries, as every order predicate does): a binary search.
    fn block_partition_point(&self, b: &BlockMeta, pred: impl Fn(&RawEntry) -> bool) -> usize {
        let (mut lo, mut hi) = (0, b.entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.block_entry(b, mid).is_some_and(|e| pred(&e)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Order of block `b`'s first entry against the probe: on the inline heads first (an
    /// integer compare), on the key bytes only when the heads are equal.
    fn cmp_block_first(&self, b: &BlockMeta, probe: &Probe<'_>) -> std::cmp::Ordering {
        let user = self.data.get(b.first_user.clone()).unwrap_or_default();
        KeyParts::with_head(b.first_head, user, b.first_version).cmp(&probe.parts())
    }

    /// User key and version of entry `i` of block `b`, without decoding the rest of the entry
    /// (what a seek compares; the block was validated at open). None past the block's end.
    fn block_key(&self, b: &BlockMeta, i: usize) -> Option<(&[u8], Version)> {
        if i >= b.entries.len() {
            return None;
        }
        let pos = b.entries_start + *self.offsets.get(b.entries.start + i)? as usize;
        let area = self.data.get(..b.entries_end)?;
        let key_len = read_u32(area, pos)? as usize;
        let user_end = (pos + 4).checked_add(key_len)?;
        let user = area.get(pos + 4..user_end)?;
        Some((user, Version(read_u128(area, user_end)?)))
    }

    /// How many leading entries of block `b` order before the probe (`inclusive`: strictly
    /// before it; else at or before it): a binary search on keys and versions only.
    fn block_skip(&self, b: &BlockMeta, probe: &Probe<'_>, inclusive: bool) -> usize {
        use std::cmp::Ordering::*;
        let (mut lo, mut hi) = (0, b.entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let before =
                self.block_key(b, mid).is_some_and(|(user, version)| {
                    match cmp_versioned(user, version, probe.user, probe.version) {
                        Greater => false,
                        Equal => !inclusive,
                        Less => true,
                    }
                });
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn cmp_entry(&self, e: &RawEntry, probe: &Probe<'_>) -> std::cmp::Ordering {
        cmp_versioned(
            &self.data[e.user.clone()],
            e.version,
            probe.user,
            probe.version,
        )
    }

    /// How many blocks start at or before the probe. A block whose first head is below the
    /// probe's starts before it, one whose head is above starts after it (see `KeyHead`); only
    /// blocks with the probe's very head are compared on their key bytes.
    fn blocks_at_or_before(&self, probe: &Probe<'_>) -> usize {
        use std::cmp::Ordering::*;
        let head = probe.parts().head();
        let below = self.block_heads.partition_point(|h| *h < head);
        if self.block_heads.get(below) != Some(&head) {
            return below;
        }
        let equal = self.block_heads[below..].partition_point(|h| *h == head);
        let tied = self.blocks.get(below..below + equal).unwrap_or_default();
        below + tied.partition_point(|b| self.cmp_block_first(b, probe) != Greater)
    }

    /// The first entry at or after (`inclusive`) or after the probe.
    fn seek(&self, probe: &Probe<'_>, inclusive: bool) -> Option<RawEntry> {
        let after = self.blocks_at_or_before(probe);
        // NB: block `after - 1` starts at or before the probe; if none of its entries is past
        // it, the answer is the first entry of the next block.
        for meta in self.blocks.get(after.saturating_sub(1)..)? {
            let skip = self.block_skip(meta, probe, inclusive);
            if let Some(e) = self.block_entry(meta, skip) {
                return Some(e);
            }
        }
        None
    }

    /// Block and offset of the entry `found` was built from, when it came from this file
    /// (its user key is a slice of the mapping): checked by decoding the entry there again, so
    /// a `Found` from anywhere else gives `None`.
    fn entry_position(&self, found: &Found) -> Option<(usize, usize)> {
        let base = self.data.as_ptr() as usize;
        let user_start = (found.user.as_ptr() as usize).checked_sub(base)?;
        let user_end = user_start.checked_add(found.user.len())?;
        if user_end > self.data.len() {
            return None;
        }
        let pos = user_start.checked_sub(4)?;
        let block = self
            .blocks
            .partition_point(|m| m.entries_start <= pos)
            .checked_sub(1)?;
        let meta = self.blocks.get(block)?;
        let (raw, _) = decode_entry(&self.data, pos, meta.entries_end)?;
        (raw.user == (user_start..user_end) && raw.version == found.version).then_some((block, pos))
    }

    /// The first entry at or after offset `pos` of `block` (and on into the next blocks)
    /// whose user key is not `user`: the next key, found by walking on from the current
    /// entry instead of a binary search and a block scan from its start.
    fn first_user_after(&self, mut block: usize, mut pos: usize, user: &[u8]) -> Option<Found> {
        loop {
            let meta = self.blocks.get(block)?;
            while pos < meta.entries_end {
                let (raw, next) = decode_entry(&self.data, pos, meta.entries_end)?;
                if self.data[raw.user.clone()] != *user {
                    return Some(self.found(&raw));
                }
                pos = next;
            }
            block += 1;
            pos = self.blocks.get(block)?.entries_start;
        }
    }

    /// Every entry in order (for the checkpoint merge).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Found> + '_ {
        (0..self.blocks.len()).flat_map(move |b| self.block_entries(b).map(|e| self.found(&e)))
    }
}

enum Invalid {
    Corrupt(String),
    Format(u32),
}

impl Source for Checkpoint {
    fn lower_bound(&self, bound: Bound<Probe<'_>>) -> Option<Found> {
        let (probe, inclusive) = match bound {
            Bound::Unbounded => {
                return self.block_entries(0).next().map(|e| self.found(&e));
            }
            Bound::Included(p) => (p, true),
            Bound::Excluded(p) => (p, false),
        };
        self.seek(&probe, inclusive).map(|e| self.found(&e))
    }

    /// The point read: one seek, then a slice of the value only (no `Found`: each slice of the
    /// mapping is an atomic increment of its shared reference count).
    fn newest_value_at(&self, user: &[u8], at: Version) -> Option<(Version, Option<Bytes>)> {
        let e = self.seek(&Probe::new(user, at), true)?;
        if self.data.get(e.user.clone())? != user {
            return None;
        }
        Some((e.version, e.value.map(|r| self.data.slice(r))))
    }

    fn next_user(&self, after: &Found) -> Option<Found> {
        match self.entry_position(after) {
            Some((block, pos)) => self.first_user_after(block, pos, &after.user),
            None => self.lower_bound(Bound::Excluded(Probe::new(&after.user, Version::MIN))),
        }
    }

    fn upper_bound(&self, bound: Bound<Probe<'_>>) -> Option<Found> {
        use std::cmp::Ordering::*;
        let (probe, inclusive) = match bound {
            Bound::Unbounded => {
                let last = self.blocks.len().checked_sub(1)?;
                return self.block_entries(last).last().map(|e| self.found(&e));
            }
            Bound::Included(p) => (p, true),
            Bound::Excluded(p) => (p, false),
        };
        let count = self
            .blocks
            .partition_point(|b| match self.cmp_block_first(b, &probe) {
                Less => true,
                Equal => inclusive,
                Greater => false,
            });
        let meta = self.blocks.get(count.checked_sub(1)?)?;
        let below = self.block_partition_point(meta, |e| match self.cmp_entry(e, &probe) {
            Less => true,
            Equal => inclusive,
            Greater => false,
        });
        self.block_entry(meta, below.checked_sub(1)?)
            .map(|e| self.found(&e))
    }
}

/// fsyncs a directory so a rename or unlink inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    let handle = File::open(dir).map_err(|e| EngineError::io("open dir", dir, e))?;
    handle
        .sync_all()
        .map_err(|e| EngineError::io("fsync dir", dir, e))
}

/// Checkpoint files in `dir`: (seq, path), newest first. Leftover temp files are removed.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EngineError> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| EngineError::io("read dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io("read dir", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(FILE_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            // An unfinished checkpoint from a crash: never valid, never renamed.
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| EngineError::io("remove temp", &path, e))?;
            continue;
        }
        if let Some(seq) = parse_file_name(name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which orderings (entry vs probe) a seek may return.
    type Keep = fn(std::cmp::Ordering) -> bool;

    /// Seeks inside blocks (a binary search over the entry offsets collected at open) find what
    /// a linear walk of the whole file finds, for probes on, between, before and after keys,
    /// at versions above, on and below the stored ones, inclusive and exclusive.
    #[test]
    fn seeks_agree_with_a_linear_walk() {
        // Short keys (decided on the inline heads) and keys sharing a prefix longer than a
        // head (decided on the bytes past it).
        for prefix in ["", "a-common-prefix-longer-than-16/"] {
            seeks_agree_with_a_linear_walk_under(prefix);
        }
    }

    fn seeks_agree_with_a_linear_walk_under(prefix: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(1));
        // ~10 entries per block; keys k010, k020, ... with 1 to 3 versions, some tombstones.
        let mut writer = CheckpointWriter::create(&path, 300 + 3 * prefix.len()).expect("create");
        for k in 1..=60u32 {
            let user = format!("{prefix}k{:03}", k * 10);
            for v in (1..=(k % 3 + 1)).rev() {
                let version = Version(u128::from(v * 10));
                let value = format!("value {k} {v}");
                let value = (k % 7 != 0 || v != 1).then_some(value.as_bytes());
                writer.add(user.as_bytes(), version, value).expect("add");
            }
        }
        writer
            .finish(0, Version(100), &RangeDeletes::default(), false)
            .expect("finish");
        let checkpoint = Checkpoint::open(&path, 1).expect("open");
        assert!(checkpoint.blocks.len() > 5, "the test needs several blocks");
        let all: Vec<Found> = checkpoint.iter().collect();
        let key = |f: &Found| (f.user.to_vec(), f.version);
        for k in 0..=610u32 {
            let user = format!("{prefix}k{k:03}");
            for at in [0u128, 5, 10, 15, 20, 30, 99] {
                // The point read answers what the generic seek answers.
                let generic = crate::key::newest_at(&checkpoint, user.as_bytes(), Version(at))
                    .map(|f| (f.version, f.value));
                assert_eq!(
                    checkpoint.newest_value_at(user.as_bytes(), Version(at)),
                    generic,
                    "{user}@{at}"
                );
                let probe = || Probe::new(user.as_bytes(), Version(at));
                let order =
                    |f: &Found| cmp_versioned(&f.user, f.version, user.as_bytes(), Version(at));
                use std::cmp::Ordering::*;
                let cases: [(_, Keep); 2] = [
                    (Bound::Included(probe()), |o| o != Less),
                    (Bound::Excluded(probe()), |o| o == Greater),
                ];
                for (bound, keep) in cases {
                    let want = all.iter().find(|f| keep(order(f))).map(key);
                    assert_eq!(
                        checkpoint.lower_bound(bound).as_ref().map(key),
                        want,
                        "{user}@{at}"
                    );
                }
                let cases: [(_, Keep); 2] = [
                    (Bound::Included(probe()), |o| o != Greater),
                    (Bound::Excluded(probe()), |o| o == Less),
                ];
                for (bound, keep) in cases {
                    let want = all.iter().rev().find(|f| keep(order(f))).map(key);
                    assert_eq!(
                        checkpoint.upper_bound(bound).as_ref().map(key),
                        want,
                        "{user}@{at}"
                    );
                }
            }
        }
        assert_eq!(
            checkpoint.lower_bound(Bound::Unbounded).as_ref().map(key),
            all.first().map(key)
        );
        assert_eq!(
            checkpoint.upper_bound(Bound::Unbounded).as_ref().map(key),
            all.last().map(key)
        );
    }
}
