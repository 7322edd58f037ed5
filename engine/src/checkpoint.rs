//! Checkpoint files: an immutable, sorted, CRC-checked image of every live version.
//!
//! # File format (format version 3; all integers little-endian)
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
//! | range deletes (formats 2 and 3)                                       |
//! +-----------------------------------------------------------------------+
//! | trailer (72 B)                                                        |
//! +-----------------------------------------------------------------------+
//!
//! header:       flags are reserved and must be 0 (the reader rejects anything else).
//! block:        entry * n | head u64 * n | offset u32 * n | shared (shared_len B)
//!               | shared_len u32 | n u32 | crc32 u32
//!               (n = the block's entry count; crc32 covers everything before it; the part
//!               after the entries is the block's in-block index, read from the block's end)
//!   head i:     bytes shared_len .. shared_len+8 of entry i's user key, zero-padded, read
//!               as a big-endian integer (then stored little-endian like every integer):
//!               heads order like their keys, equal heads leave it to the key bytes
//!   offset i:   where entry i starts, counted from the block's start
//!   shared:     a prefix every user key of the block starts with: the longest one the
//!               first and the last key share (keys are sorted, so all of them share it)
//!   placement:  a block ends at the first multiple of the block size (4 KiB by default) at
//!               least half a block past its start, or before it: the writer closes a block
//!               before an entry that would cross it (a block longer than that holds one
//!               entry). So a block starts a little before a page boundary and its index
//!               and nearly all its entries sit in the page before the next one.
//! entry:        key_len u32 | key (key_len B) | version u128 (16 B) | kind u8
//!               | if kind == 1: value_len u32 | value (value_len B)
//!               kind: 0 = tombstone, 1 = value (other values are corruption)
//! index entry:  block_offset u64 | block_len u32 (the whole block, crc included)
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
//! Older formats are still read; files are written in format 3.
//! - Format 2 (before in-block indexes): a block is `n u32 | entry * n | crc32 u32`, cut
//!   wherever it passed the block size. The reader collects every entry's offset in memory at
//!   open (4 bytes per entry) and searches the block on them.
//! - Format 1 (before range deletes): format 2 with nothing between the index and the trailer,
//!   read as a file without range deletes.
//!
//! Entries are sorted by (key ascending, version descending) across the whole file, so the
//! index's first keys are sorted too and a point seek is:
//! 1. a binary search over the blocks on the first 16 bytes of each block's first key, kept in
//!    memory as an integer (`KeyHead`), in two levels: over the heads of every 16th block
//!    (1 byte per block: stays in the CPU's caches), then inside the 16 blocks found, whose
//!    heads, positions and entry counts (32 bytes a block) are fetched at once; key bytes are
//!    read from the mapping only for blocks whose head equals the probe's;
//! 2. in the block found, a fetch of its in-block index's cache lines all at once (one memory
//!    round trip instead of one per step), then a binary search over the heads: entries whose
//!    head is below or above the probe's are decided without touching them;
//! 3. a comparison of key bytes and versions only for the entries whose head equals the
//!    probe's (usually just the versions of the key itself), then the answer's entry: for a
//!    14-byte key, the index's few lines and the entry's, nearly always in one page.
//!
//! The reader validates everything at open (header, trailer, index, every block's CRC, its
//! in-block index against its entries, and every entry's bounds), so the read path never
//! meets a malformed byte.
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
use crate::merge::View;
use crate::ranges::{RangeDelete, RangeDeletes};
use crate::{EngineError, Version};

/// Header magic. FROZEN.
pub(crate) const HEADER_MAGIC: &[u8; 8] = b"GNOMCKPT";
/// Trailer magic. FROZEN.
pub(crate) const TAIL_MAGIC: &[u8; 8] = b"GNOMTAIL";
/// The format this build writes. Bump on any layout change.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// The format before range deletes, still read. FROZEN.
pub(crate) const FORMAT_VERSION_1: u32 = 1;
/// The format before in-block indexes, still read. FROZEN.
pub(crate) const FORMAT_VERSION_2: u32 = 2;
/// Header length in bytes. FROZEN for formats 1 to 3.
pub(crate) const HEADER_LEN: usize = 16;
/// Trailer length in bytes. FROZEN for formats 1 to 3.
pub(crate) const TRAILER_LEN: usize = 72;
const VERSION_LEN: usize = 16;
/// Bytes of a key (past the block's shared prefix) in an in-block head. FROZEN for format 3.
const HEAD64_LEN: usize = 8;

/// An in-block head (format 3): the first [`HEAD64_LEN`] bytes of a user key past its block's
/// shared prefix, zero-padded, as a big-endian integer. Heads order like the keys they come
/// from, as [`KeyHead`]s do (same proof): a smaller head means a smaller key; equal heads
/// leave the order to the bytes and lengths.
fn head64(suffix: &[u8]) -> u64 {
    if let Some(first) = suffix.first_chunk::<HEAD64_LEN>() {
        return u64::from_be_bytes(*first);
    }
    let mut padded = [0u8; HEAD64_LEN];
    padded[..suffix.len()].copy_from_slice(suffix);
    u64::from_be_bytes(padded)
}
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
    /// Where the open block should end at the latest (a multiple of `block_target`, see
    /// `aligned_block_end`), unless its first entry alone is longer.
    block_end: u64,
    /// The open block's entries (its in-block index is built at flush, from `entry_offsets`).
    block: Vec<u8>,
    /// Each entry's offset in `block`.
    entry_offsets: Vec<u32>,
    /// How many bytes every key of the open block shares with its first one.
    shared_len: usize,
    /// The in-block index and CRC of the block being flushed (kept to reuse its allocation).
    block_index: Vec<u8>,
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
            block_end: 0,
            block: Vec::with_capacity(block_target + 1024),
            entry_offsets: Vec::new(),
            shared_len: 0,
            block_index: Vec::new(),
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
        let entry_len = 4 + user.len() + VERSION_LEN + 1 + value.map_or(0, |v| 4 + v.len());
        if let Some(first) = self.entry_offsets.first() {
            let first_key = block_key_at(&self.block, *first as usize);
            let shared_len = common_prefix_len(first_key, user);
            // The block with this entry: entries, a head and an offset per entry, the shared
            // prefix, shared_len, entry_count, crc.
            let count = self.entry_offsets.len() + 1;
            let len = self.block.len() + entry_len + count * (HEAD64_LEN + 4) + shared_len + 12;
            if self.offset + len as u64 > self.block_end {
                self.flush_block()?;
            } else {
                self.shared_len = shared_len;
            }
        }
        if self.entry_offsets.is_empty() {
            self.block_end = aligned_block_end(self.offset, self.block_target);
            self.shared_len = user.len();
            // Index entry: offset and first key now, length when the block is flushed.
            self.open_index_entry = self.index.len();
            self.index.extend_from_slice(&self.offset.to_le_bytes());
            self.index.extend_from_slice(&0u32.to_le_bytes());
            self.index
                .extend_from_slice(&len_u32(user.len()).to_le_bytes());
            self.index.extend_from_slice(user);
            self.index.extend_from_slice(&version.0.to_le_bytes());
            self.block.clear();
        }
        self.entry_offsets.push(len_u32(self.block.len()));
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
        self.entry_count += 1;
        self.max_version = self.max_version.max(version);
        Ok(())
    }

    /// Writes the open block: the entries, then its in-block index (heads, offsets, shared
    /// prefix, shared_len, entry_count), then the CRC.
    fn flush_block(&mut self) -> Result<(), EngineError> {
        let Some(&first) = self.entry_offsets.first() else {
            return Ok(());
        };
        let block = std::mem::take(&mut self.block);
        let shared = &block_key_at(&block, first as usize)[..self.shared_len];
        let index = &mut self.block_index;
        index.clear();
        for &offset in &self.entry_offsets {
            let key = block_key_at(&block, offset as usize);
            let head = head64(key.get(shared.len()..).unwrap_or_default());
            index.extend_from_slice(&head.to_le_bytes());
        }
        for &offset in &self.entry_offsets {
            index.extend_from_slice(&offset.to_le_bytes());
        }
        index.extend_from_slice(shared);
        index.extend_from_slice(&len_u32(shared.len()).to_le_bytes());
        index.extend_from_slice(&len_u32(self.entry_offsets.len()).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&block);
        crc.update(index);
        let crc = crc.finalize();
        index.extend_from_slice(&crc.to_le_bytes());
        let block_len = len_u32(block.len() + index.len());
        // Patch the length of the index entry opened by the block's first `add`.
        let at = self.open_index_entry;
        self.index[at + 8..at + 12].copy_from_slice(&block_len.to_le_bytes());
        let index = std::mem::take(&mut self.block_index);
        self.write_raw(&block)?;
        self.write_raw(&index)?;
        self.block_index = index;
        self.block = block;
        self.block.clear();
        self.entry_offsets.clear();
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

/// Where a block starting at file offset `start` should end: the first multiple of `target`
/// at least half a target past its start. Blocks end there (or before: the writer closes a
/// block before an entry that would cross it), so the next block starts a little before that
/// boundary and keeps its in-block index and nearly all its entries inside the page (for
/// 4 KiB targets) that ends at the following one: a seek touches one page of the file.
fn aligned_block_end(start: u64, target: usize) -> u64 {
    let target = target as u64;
    let end = (start / target + 1) * target;
    if end - start < target / 2 {
        end + target
    } else {
        end
    }
}

/// The user key of the entry at `at` in an open block's bytes (empty if malformed, which the
/// writer's own bytes never are).
fn block_key_at(block: &[u8], at: usize) -> &[u8] {
    let len = read_u32(block, at).unwrap_or(0) as usize;
    block.get(at + 4..at + 4 + len).unwrap_or_default()
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
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

/// Decodes and checks the range-delete section `data[from..to]` (formats 2 and 3).
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
pub(crate) struct RawEntry {
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

/// The first index in `lo..hi` where `pred` fails (it must hold for a prefix of the range).
#[inline]
fn partition_point(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Format 3: where the parts of the block at `start` whose CRC is at `crc_at` are, given its
/// entry count and shared prefix length; None if they do not fit in the block.
fn in_file_layout(
    start: usize,
    crc_at: usize,
    count: usize,
    shared_len: usize,
) -> Option<BlockLayout> {
    let shared_end = crc_at.checked_sub(8)?;
    let shared_start = shared_end.checked_sub(shared_len)?;
    let offsets = shared_start.checked_sub(count.checked_mul(4)?)?;
    let heads = offsets.checked_sub(count.checked_mul(HEAD64_LEN)?)?;
    (heads >= start).then_some(BlockLayout {
        entries_start: start,
        entries_end: heads,
        count,
        index: BlockIndex::InFile {
            shared: shared_start..shared_end,
            heads,
            offsets,
        },
    })
}

/// Asks the CPU to fetch the cache lines of `bytes` (a hint: no fault, no effect on results),
/// so the dependent reads of a binary search over them wait for one memory round trip, not
/// one per step.
#[inline]
fn prefetch_lines<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = items.as_ptr().cast::<i8>();
        for at in (0..std::mem::size_of_val(items)).step_by(64) {
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never faults nor
            // reads memory into the program: any address is fine.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(at)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// One block: its first key, and where its entries are.
#[derive(Debug)]
struct BlockMeta {
    first_user: Range<usize>,
    first_version: Version,
    layout: BlockLayout,
}

/// Where the entries of one block are inside the image.
#[derive(Clone, Debug)]
struct BlockLayout {
    /// Offset of the first entry (format 3: the block's start; before: past its entry count).
    entries_start: usize,
    /// Offset just past the last entry (format 3: where the in-block index begins; before:
    /// where the CRC begins).
    entries_end: usize,
    /// How many entries the block holds.
    count: usize,
    /// Where the entries' offsets (and heads) are, so a seek inside the block is a binary
    /// search, not a decode of every entry before the target.
    index: BlockIndex,
}

/// Blocks per group of the two-level block search (`Checkpoint::group_heads`): 16 blocks'
/// `BlockSeek`s are 512 bytes, 8 cache lines fetched together.
const SEEK_GROUP: usize = 16;

/// What a seek needs of one block, 32 bytes, dense: the block search runs on `first_head`
/// (the first 16 bytes of the block's first key, see `KeyHead`) and the block it lands on is
/// located from the neighbouring bytes, without a `BlockMeta` (cold, and larger).
#[derive(Debug)]
struct BlockSeek {
    first_head: KeyHead,
    /// Offset of the block in the file.
    start: u64,
    /// The block's length, in-block index and CRC included.
    len: u32,
    /// How many entries it holds.
    count: u32,
}

/// How a seek finds its way inside one block.
#[derive(Clone, Debug)]
enum BlockIndex {
    /// Format 3: the in-block index in the file. Every key of the block starts with the bytes
    /// at `shared`; `heads` is where the entries' heads (u64 each) start, `offsets` where their
    /// offsets (u32 each) start.
    InFile {
        shared: Range<usize>,
        heads: usize,
        offsets: usize,
    },
    /// Formats 1 and 2: the offsets, collected at open, start at `Checkpoint::offsets[from]`.
    InMemory { from: usize },
}

/// An open, validated checkpoint file, memory-mapped.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    path: PathBuf,
    seq: u64,
    /// The whole file; `Bytes::from_owner` keeps the mmap alive while any slice is in use.
    data: Bytes,
    blocks: Vec<BlockMeta>,
    /// Block by block, what a point seek needs (32 bytes a block, dense): the block search
    /// ends in a run of [`SEEK_GROUP`] of these, whose lines it fetches at once.
    seeks: Vec<BlockSeek>,
    /// The first head of every [`SEEK_GROUP`]th block (16 bytes per group: small enough to
    /// stay in the CPU's caches): the block search starts here, then finishes inside one
    /// group of `seeks`.
    group_heads: Vec<KeyHead>,
    /// Whether the blocks carry an in-block index (format 3), so a seek locates a block's
    /// entries from `seeks` and the block's own index alone.
    in_block_index: bool,
    /// Files of formats 1 and 2 (no in-block index): every entry's offset from its block's
    /// `entries_start`, block after block (built by the validation at open, which decodes every
    /// entry anyway): 4 bytes of memory per entry. Empty for format 3.
    offsets: Vec<u32>,
    wal_lsn: u64,
    max_version: Version,
    entry_count: u64,
    /// The range deletes stored in the file (none in format 1).
    range_deletes: Vec<RangeDelete>,
}

impl Checkpoint {
    /// Maps and fully validates a checkpoint file: every block's CRC and every entry.
    pub(crate) fn open(path: &Path, seq: u64) -> Result<Checkpoint, EngineError> {
        Checkpoint::map(path, seq, Check::Everything)
    }

    /// Maps a checkpoint file this process has just written and synced, checking its header,
    /// trailer, index (with their CRCs) and each block's layout, but neither the blocks' CRCs
    /// nor their entries: reading the whole file back (still in the page cache, as written)
    /// cost ~12% of a checkpoint's time on the server while it competed for the cores with
    /// the connections. Recovery opens files with [`Checkpoint::open`].
    pub(crate) fn open_written(path: &Path, seq: u64) -> Result<Checkpoint, EngineError> {
        Checkpoint::map(path, seq, Check::Structure)
    }

    fn map(path: &Path, seq: u64, check: Check) -> Result<Checkpoint, EngineError> {
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
            seeks: Vec::new(),
            group_heads: Vec::new(),
            in_block_index: false,
            offsets: Vec::new(),
            wal_lsn: 0,
            max_version: Version::MIN,
            entry_count: 0,
            range_deletes: Vec::new(),
        };
        checkpoint
            .validate(check)
            .map_err(|failure| match failure {
                Invalid::Corrupt(reason) => corrupt(reason),
                Invalid::Format(found) => EngineError::UnsupportedCheckpointFormat {
                    path: path.to_path_buf(),
                    found,
                    expected: FORMAT_VERSION,
                },
            })?;
        Ok(checkpoint)
    }

    fn validate(&mut self, check: Check) -> Result<(), Invalid> {
        let data = self.data.clone();
        let data: &[u8] = &data;
        let bad = |s: &str| Invalid::Corrupt(s.to_string());
        if data.get(..8) != Some(HEADER_MAGIC.as_slice()) {
            return Err(bad("bad header magic"));
        }
        let format = read_u32(data, 8).ok_or_else(|| bad("short header"))?;
        if ![FORMAT_VERSION, FORMAT_VERSION_2, FORMAT_VERSION_1].contains(&format) {
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
        let mut seeks = Vec::new();
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
            if check == Check::Everything && crc32fast::hash(&data[offset..crc_at]) != stored_crc {
                return Err(Invalid::Corrupt(format!(
                    "block at offset {offset} fails its CRC"
                )));
            }
            let layout = if format == FORMAT_VERSION {
                // count and shared_len sit just before the CRC.
                let tail = crc_at
                    .checked_sub(8)
                    .filter(|tail| *tail >= offset)
                    .ok_or_else(|| bad("short block"))?;
                let count = read_u32(data, tail + 4).ok_or_else(|| bad("short block"))?;
                let shared_len = read_u32(data, tail).ok_or_else(|| bad("short block"))?;
                in_file_layout(offset, crc_at, count as usize, shared_len as usize)
                    .ok_or_else(|| bad("in-block index extends past its block"))?
            } else {
                let count = read_u32(data, offset).ok_or_else(|| bad("short block"))?;
                BlockLayout {
                    entries_start: offset + 4,
                    entries_end: crc_at,
                    count: count as usize,
                    index: BlockIndex::InMemory {
                        from: offsets.len(),
                    },
                }
            };
            let count = layout.count;
            // The entries need reading for an older format (its offsets are built here) and
            // for a file from disk; a file just written is trusted to match its own layout.
            if check == Check::Everything || format != FORMAT_VERSION {
                check_entries(
                    data,
                    &layout,
                    (&data[key_start..key_end], first_version),
                    &mut offsets,
                )?;
            }
            seeks.push(BlockSeek {
                first_head: KeyHead::of(&data[key_start..key_end]),
                start: offset as u64,
                len: block_len as u32,
                count: count as u32,
            });
            blocks.push(BlockMeta {
                first_user: key_start..key_end,
                first_version,
                layout,
            });
            entries_seen += count as u64;
            expected_offset = block_end;
        }
        if expected_offset != index_offset {
            return Err(bad("bytes between the last block and the index"));
        }
        if blocks.len() as u64 != block_count || entries_seen != entry_count {
            return Err(bad("block or entry count does not match the trailer"));
        }
        self.group_heads = seeks
            .iter()
            .step_by(SEEK_GROUP)
            .map(|s| s.first_head)
            .collect();
        self.seeks = seeks;
        self.in_block_index = format == FORMAT_VERSION;
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
        let layout = self.blocks.get(b).map(|m| &m.layout);
        let mut pos = layout.map_or(0, |l| l.entries_start);
        let end = layout.map_or(0, |l| l.entries_end);
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let (entry, next) = decode_entry(&self.data, pos, end)?;
            pos = next;
            Some(entry)
        })
    }

    /// Offset in the file of entry `i` of block `b`; None past the block's last entry.
    #[inline]
    fn entry_pos(&self, b: &BlockLayout, i: usize) -> Option<usize> {
        if i >= b.count {
            return None;
        }
        let relative = match &b.index {
            BlockIndex::InFile { offsets, .. } => read_u32(&self.data, offsets + 4 * i)?,
            BlockIndex::InMemory { from } => *self.offsets.get(from + i)?,
        };
        Some(b.entries_start + relative as usize)
    }

    /// Entry `i` of block `b`; None past the block's last entry.
    fn block_entry(&self, b: &BlockLayout, i: usize) -> Option<RawEntry> {
        decode_entry(&self.data, self.entry_pos(b, i)?, b.entries_end).map(|(e, _)| e)
    }

    /// How many leading entries of block `b` satisfy `pred` (which must hold for a prefix of
    /// the block's entries, as every order predicate does): a binary search.
    fn block_partition_point(&self, b: &BlockLayout, pred: impl Fn(&RawEntry) -> bool) -> usize {
        let (mut lo, mut hi) = (0, b.count);
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
    fn cmp_block_first(&self, b: usize, probe: &Probe<'_>) -> std::cmp::Ordering {
        let (Some(seek), Some(meta)) = (self.seeks.get(b), self.blocks.get(b)) else {
            return std::cmp::Ordering::Greater;
        };
        let user = self.data.get(meta.first_user.clone()).unwrap_or_default();
        KeyParts::with_head(seek.first_head, user, meta.first_version).cmp(&probe.parts())
    }

    /// User key and version of entry `i` of block `b`, without decoding the rest of the entry
    /// (what a seek compares; the block was validated at open). None past the block's end.
    fn block_key(&self, b: &BlockLayout, i: usize) -> Option<(&[u8], Version)> {
        let pos = self.entry_pos(b, i)?;
        let area = self.data.get(..b.entries_end)?;
        let key_len = read_u32(area, pos)? as usize;
        let user_end = (pos + 4).checked_add(key_len)?;
        let user = area.get(pos + 4..user_end)?;
        Some((user, Version(read_u128(area, user_end)?)))
    }

    /// How many leading entries of block `b` order before the probe (`inclusive`: strictly
    /// before it; else at or before it): a binary search on keys and versions only.
    fn block_skip(&self, b: &BlockLayout, probe: &Probe<'_>, inclusive: bool) -> usize {
        use std::cmp::Ordering::*;
        let (mut lo, mut hi) = match &b.index {
            BlockIndex::InFile { shared, heads, .. } => self.head_run(b, shared, *heads, probe),
            BlockIndex::InMemory { .. } => (0, b.count),
        };
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

    /// Format 3: the entries of block `b` whose heads equal the probe's, `lo..hi`, found on
    /// the in-block index alone: entries before `lo` have smaller user keys than the probe,
    /// entries from `hi` on larger ones. A probe without the block's shared prefix orders
    /// before or after the whole block.
    fn head_run(
        &self,
        b: &BlockLayout,
        shared: &Range<usize>,
        heads: usize,
        probe: &Probe<'_>,
    ) -> (usize, usize) {
        use std::cmp::Ordering::*;
        let data: &[u8] = &self.data;
        let prefix = data.get(shared.clone()).unwrap_or_default();
        let user = probe.user;
        let n = prefix.len();
        // NB: a probe that is a proper prefix of `prefix` compares Less: it is before every key.
        match user[..n.min(user.len())].cmp(prefix) {
            Less => return (0, 0),
            Greater => return (b.count, b.count),
            Equal => {}
        }
        let head = head64(&user[n..]);
        let heads = data
            .get(heads..heads + HEAD64_LEN * b.count)
            .unwrap_or_default();
        let head_of = |i: usize| read_u64(heads, HEAD64_LEN * i).unwrap_or(u64::MAX);
        let lo = partition_point(0, b.count, |i| head_of(i) < head);
        let hi = partition_point(lo, b.count, |i| head_of(i) <= head);
        (lo, hi)
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
        // Groups whose first block's head is below the probe's: block `SEEK_GROUP * (groups
        // - 1)` is below it and block `SEEK_GROUP * groups` is not, so the count of blocks
        // below it is found among the blocks between.
        let groups = self.group_heads.partition_point(|h| *h < head);
        let lo = (SEEK_GROUP * groups).saturating_sub(SEEK_GROUP - 1);
        let hi = (SEEK_GROUP * groups).min(self.seeks.len());
        let run = self.seeks.get(lo..hi).unwrap_or_default();
        prefetch_lines(run);
        let below = lo + run.partition_point(|s| s.first_head < head);
        if self.seeks.get(below).map(|s| s.first_head) != Some(head) {
            return below;
        }
        let equal = self.seeks[below..].partition_point(|s| s.first_head == head);
        below
            + partition_point(0, equal, |i| {
                self.cmp_block_first(below + i, probe) != Greater
            })
    }

    /// Where the entries of block `b` are: for format 3, from its `BlockSeek` and the block's
    /// in-block index, whose cache lines are fetched together first (the search reads them).
    #[inline]
    fn layout(&self, b: usize) -> Option<BlockLayout> {
        if !self.in_block_index {
            return self.blocks.get(b).map(|m| m.layout.clone());
        }
        let seek = self.seeks.get(b)?;
        let start = seek.start as usize;
        let count = seek.count as usize;
        let crc_at = (start + seek.len as usize).checked_sub(4)?;
        // Heads, offsets, the shared prefix (guessed short: a longer one is fetched as the
        // search reads it), shared_len and count.
        let index_guess = count * (HEAD64_LEN + 4) + 16 + 8;
        let from = crc_at.saturating_sub(index_guess).max(start);
        prefetch_lines(self.data.get(from..crc_at)?);
        let shared_len = read_u32(&self.data, crc_at.checked_sub(8)?)?;
        in_file_layout(start, crc_at, count, shared_len as usize)
    }

    /// The first entry at or after (`inclusive`) or after the probe.
    fn seek(&self, probe: &Probe<'_>, inclusive: bool) -> Option<RawEntry> {
        let after = self.blocks_at_or_before(probe);
        // NB: block `after - 1` starts at or before the probe; if none of its entries is past
        // it, the answer is the first entry of the next block (whose first key is past it).
        let first = after.saturating_sub(1);
        for b in first..self.seeks.len().min(first + 2) {
            let layout = self.layout(b)?;
            let skip = self.block_skip(&layout, probe, inclusive);
            if let Some(e) = self.block_entry(&layout, skip) {
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
            .partition_point(|m| m.layout.entries_start <= pos)
            .checked_sub(1)?;
        let layout = &self.blocks.get(block)?.layout;
        let (raw, _) = decode_entry(&self.data, pos, layout.entries_end)?;
        (raw.user == (user_start..user_end) && raw.version == found.version).then_some((block, pos))
    }

    /// The first entry at or after offset `pos` of `block` (and on into the next blocks)
    /// whose user key is not `user`: the next key, found by walking on from the current
    /// entry instead of a binary search and a block scan from its start.
    fn first_user_after(&self, mut block: usize, mut pos: usize, user: &[u8]) -> Option<Found> {
        loop {
            let layout = &self.blocks.get(block)?.layout;
            while pos < layout.entries_end {
                let (raw, next) = decode_entry(&self.data, pos, layout.entries_end)?;
                if self.data[raw.user.clone()] != *user {
                    return Some(self.found(&raw));
                }
                pos = next;
            }
            block += 1;
            pos = self.blocks.get(block)?.layout.entries_start;
        }
    }

    /// For the checkpoint merge's walk: the entry at offset `pos` of `block` (its first
    /// entry when `pos` is `None`), else the first entry of a later block; with the block it
    /// is in and the offset after it.
    pub(crate) fn entry_at_or_after(
        &self,
        mut block: usize,
        mut pos: Option<usize>,
    ) -> Option<(usize, RawEntry, usize)> {
        loop {
            let layout = &self.blocks.get(block)?.layout;
            let at = pos.unwrap_or(layout.entries_start);
            // Blocks were validated at open, so decoding cannot fail here; a failure would
            // just end the block early.
            if let Some((entry, next)) = decode_entry(&self.data, at, layout.entries_end) {
                return Some((block, entry, next));
            }
            block += 1;
            pos = None;
        }
    }

    /// An entry as slices of the mapping (no reference count taken).
    pub(crate) fn view(&self, raw: &RawEntry) -> View<'_> {
        View {
            user: &self.data[raw.user.clone()],
            version: raw.version,
            value: raw.value.clone().map(|r| &self.data[r]),
        }
    }
}

/// Decodes every entry of a block: each must lie in the block, match the in-block index
/// (format 3) or get its offset recorded in `offsets` (older formats), and the first must be
/// the index's `first` (user key, version).
fn check_entries(
    data: &[u8],
    layout: &BlockLayout,
    first: (&[u8], Version),
    offsets: &mut Vec<u32>,
) -> Result<(), Invalid> {
    let bad = |s: &str| Invalid::Corrupt(s.to_string());
    let (start, end) = (layout.entries_start, layout.entries_end);
    let mut pos = start;
    let mut first_seen = None;
    for i in 0..layout.count {
        let (entry, next) =
            decode_entry(data, pos, end).ok_or_else(|| bad("malformed entry inside a block"))?;
        // NB: a block's length is a u32 in the index, so this cannot fail for a valid one.
        let relative = u32::try_from(pos - start).map_err(|_| bad("block larger than 4 GiB"))?;
        match &layout.index {
            BlockIndex::InMemory { .. } => offsets.push(relative),
            BlockIndex::InFile {
                shared,
                heads,
                offsets: offsets_at,
            } => {
                let suffix = data[entry.user.clone()]
                    .strip_prefix(&data[shared.clone()])
                    .ok_or_else(|| bad("a key in a block lacks the block's prefix"))?;
                if read_u64(data, heads + HEAD64_LEN * i) != Some(head64(suffix))
                    || read_u32(data, offsets_at + 4 * i) != Some(relative)
                {
                    return Err(bad("in-block index does not match its entries"));
                }
            }
        }
        if first_seen.is_none() {
            first_seen = Some(entry);
        }
        pos = next;
    }
    if pos != end {
        return Err(bad("block has trailing bytes"));
    }
    let first_seen = first_seen.ok_or_else(|| bad("empty block"))?;
    if data[first_seen.user.clone()] != *first.0 || first_seen.version != first.1 {
        return Err(bad("index first key does not match its block"));
    }
    Ok(())
}

/// How much of a file [`Checkpoint::validate`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Everything: a file from disk (recovery).
    Everything,
    /// Header, trailer, index and block layouts: a file this process just wrote (the
    /// entries need no decoding for format 3, whose in-block index is in the file).
    Structure,
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
        let count = partition_point(0, self.blocks.len(), |b| {
            match self.cmp_block_first(b, &probe) {
                Less => true,
                Equal => inclusive,
                Greater => false,
            }
        });
        let layout = &self.blocks.get(count.checked_sub(1)?)?.layout;
        let below = self.block_partition_point(layout, |e| match self.cmp_entry(e, &probe) {
            Less => true,
            Equal => inclusive,
            Greater => false,
        });
        self.block_entry(layout, below.checked_sub(1)?)
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

    /// Seeks (a binary search over the blocks' first keys, then one over the in-block index)
    /// find what a linear walk of the whole file finds, for probes on, between, before and
    /// after keys, at versions above, on and below the stored ones, inclusive and exclusive.
    #[test]
    fn seeks_agree_with_a_linear_walk() {
        // Short keys (decided on the inline heads) and keys sharing a prefix longer than a
        // head (decided on the bytes past it); ~10 entries per block.
        for prefix in ["", "a-common-prefix-longer-than-16/"] {
            let keys = (1..=60u32).map(|k| format!("{prefix}k{:03}", k * 10).into_bytes());
            let probes = (0..=610u32).map(|k| format!("{prefix}k{k:03}").into_bytes());
            seeks_agree_with_a_linear_walk_over(
                keys.collect(),
                probes.collect(),
                300 + 3 * prefix.len(),
            );
        }
    }

    /// The same on key sets that stress the in-block index: one entry per block (the block
    /// target is below one entry), two blocks, and keys whose in-block heads are equal:
    /// keys that are prefixes of each other, keys ending in zero bytes (equal to the zero
    /// padding of a shorter key's head), keys equal in the 8 bytes past the shared prefix, and
    /// pgbench-like row keys (a 6-byte prefix and an 8-byte integer).
    #[test]
    fn seeks_agree_with_a_linear_walk_on_hard_key_sets() {
        let mut tied = Vec::new();
        for stem in ["", "k", "k\0", "k\0\0", "k1", "k10", "k10\0", "l"] {
            tied.push(stem.as_bytes().to_vec());
        }
        for i in 0..20u8 {
            // Equal heads: the same 8 bytes past the prefix "t/", then a differing byte.
            tied.push([b"t/01234567".as_slice(), &[i]].concat());
            tied.push([b"t/01234567".as_slice(), &[i, 0]].concat());
        }
        let rows: Vec<Vec<u8>> = (0..300u64)
            .map(|aid| {
                let mut k = vec![0x10, 0, 0, 0x40, 0, 0x01];
                k.extend_from_slice(&((aid * 7) ^ (1 << 63)).to_be_bytes());
                k
            })
            .collect();
        for keys in [tied, rows] {
            let mut probes: Vec<Vec<u8>> = Vec::new();
            for key in &keys {
                probes.push(key.clone());
                probes.push([key.as_slice(), &[0]].concat());
                probes.push([key.as_slice(), &[0xff]].concat());
                if let Some((last, rest)) = key.split_last() {
                    probes.push(rest.to_vec());
                    probes.push([rest, &[last.wrapping_add(1)]].concat());
                    probes.push([rest, &[last.wrapping_sub(1), 0xff]].concat());
                }
            }
            probes.extend([vec![], vec![0xff; 20]]);
            for block_target in [0, 200, 1000, 1 << 20] {
                let mut keys = keys.clone();
                keys.sort();
                keys.dedup();
                seeks_agree_with_a_linear_walk_over(keys, probes.clone(), block_target);
            }
        }
    }

    /// Writes `keys` (sorted; 1 to 3 versions each, some tombstones) with `block_target` and
    /// checks every seek for every probe against a linear walk.
    fn seeks_agree_with_a_linear_walk_over(
        keys: Vec<Vec<u8>>,
        probes: Vec<Vec<u8>>,
        block_target: usize,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(1));
        let mut writer = CheckpointWriter::create(&path, block_target).expect("create");
        for (k, user) in (1u32..).zip(&keys) {
            for v in (1..=(k % 3 + 1)).rev() {
                let version = Version(u128::from(v * 10));
                let value = format!("value {k} {v}");
                let value = (k % 7 != 0 || v != 1).then_some(value.as_bytes());
                writer.add(user, version, value).expect("add");
            }
        }
        writer
            .finish(0, Version(100), &RangeDeletes::default(), false)
            .expect("finish");
        let checkpoint = Checkpoint::open(&path, 1).expect("open");
        assert!(checkpoint.in_block_index);
        let all =
            crate::merge::tests::collect(&mut crate::merge::CheckpointInput::new(&checkpoint));
        let key = |f: &Found| (f.user.to_vec(), f.version);
        for user in &probes {
            for at in [0u128, 5, 10, 15, 20, 30, 99] {
                // The point read answers what the generic seek answers.
                let generic = crate::key::newest_at(&checkpoint, user, Version(at))
                    .map(|f| (f.version, f.value));
                assert_eq!(
                    checkpoint.newest_value_at(user, Version(at)),
                    generic,
                    "{user:?}@{at}"
                );
                let probe = || Probe::new(user, Version(at));
                let order = |f: &Found| cmp_versioned(&f.user, f.version, user, Version(at));
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
                        "{user:?}@{at}"
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
                        "{user:?}@{at}"
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

    /// A block whose in-block index disagrees with its entries (its CRC recomputed, so only
    /// the validation can notice) is refused at open with a typed error, never read.
    /// A file opened as just written answers every read as the fully validated open does
    /// (same blocks, same entries, same seeks), and still refuses a torn file: its trailer
    /// and index are checked, only the blocks' CRCs and entries are not read.
    #[test]
    fn a_file_opened_as_just_written_reads_as_a_validated_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(1));
        let mut writer = CheckpointWriter::create(&path, 256).expect("create");
        for k in 0..200u32 {
            let user = format!("row/{k:05}");
            for v in (1..=k % 3 + 1).rev() {
                let value = format!("value {k} {v}");
                let value = (k % 11 != 0 || v != 1).then_some(value.as_bytes());
                writer
                    .add(user.as_bytes(), Version(u128::from(v)), value)
                    .expect("add");
            }
        }
        writer
            .finish(7, Version(3), &RangeDeletes::default(), false)
            .expect("finish");
        let full = Checkpoint::open(&path, 1).expect("open");
        let written = Checkpoint::open_written(&path, 1).expect("open_written");
        assert!(
            full.blocks.len() > 10,
            "several blocks: {}",
            full.blocks.len()
        );
        assert_eq!(written.blocks.len(), full.blocks.len());
        assert_eq!(
            (written.entry_count, written.wal_lsn, written.max_version),
            (full.entry_count, full.wal_lsn, full.max_version)
        );
        let walk = |c: &Checkpoint| {
            crate::merge::tests::collect(&mut crate::merge::CheckpointInput::new(c))
                .into_iter()
                .map(|f| (f.user, f.version, f.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(walk(&written), walk(&full));
        for k in 0..201u32 {
            let user = format!("row/{k:05}");
            for at in 0..5u128 {
                assert_eq!(
                    written.newest_value_at(user.as_bytes(), Version(at)),
                    full.newest_value_at(user.as_bytes(), Version(at)),
                    "{user}@{at}"
                );
            }
        }
        drop((full, written));
        let good = fs::read(&path).expect("read");
        fs::write(&path, &good[..good.len() - 10]).expect("truncate");
        assert!(matches!(
            Checkpoint::open_written(&path, 1),
            Err(EngineError::CorruptCheckpoint { .. })
        ));
    }

    #[test]
    fn a_corrupt_in_block_index_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(1));
        let mut writer = CheckpointWriter::create(&path, 200).expect("create");
        for k in 0..30u32 {
            let user = format!("key/{k:03}");
            writer
                .add(user.as_bytes(), Version(1), Some(b"v"))
                .expect("add");
        }
        writer
            .finish(0, Version(1), &RangeDeletes::default(), false)
            .expect("finish");
        let good = fs::read(&path).expect("read");
        Checkpoint::open(&path, 1).expect("the untouched file opens");
        // The first block: its length from the first index entry.
        let t = good.len() - TRAILER_LEN;
        let index_offset = read_u64(&good, t).expect("trailer") as usize;
        let block_len = read_u32(&good, index_offset + 8).expect("index") as usize;
        let at = HEADER_LEN;
        let crc_at = at + block_len - 4;
        let count = read_u32(&good, crc_at - 4).expect("count") as usize;
        let shared_len = read_u32(&good, crc_at - 8).expect("shared length") as usize;
        assert!(
            shared_len >= "key/0".len(),
            "the first keys share at least 'key/0'"
        );
        let shared = crc_at - 8 - shared_len;
        let offsets = shared - 4 * count;
        let heads = offsets - HEAD64_LEN * count;
        let edits: [(&str, usize, u8); 8] = [
            ("count", crc_at - 4, 0x01),
            ("count", crc_at - 1, 0x80),
            ("shared length", crc_at - 5, 0x80),
            ("shared length", crc_at - 8, 0x01),
            ("shared prefix", shared, 0x01),
            ("first head", heads + 7, 0x01),
            ("last head", offsets - 1, 0x01),
            ("second offset", offsets + 4, 0x01),
        ];
        for (what, pos, flip) in edits {
            let mut bad = good.clone();
            bad[pos] ^= flip;
            let crc = crc32fast::hash(&bad[at..at + block_len - 4]);
            bad[at + block_len - 4..at + block_len].copy_from_slice(&crc.to_le_bytes());
            fs::write(&path, &bad).expect("write");
            match Checkpoint::open(&path, 1) {
                Err(EngineError::CorruptCheckpoint { reason, .. }) => {
                    assert!(!reason.is_empty(), "{what}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    /// With 4 KiB blocks and pgbench-like rows (14-byte keys, 100-byte values), blocks end on
    /// or before their page boundary and keep their in-block index and all their entries but
    /// the first one or two in one page: a seek touches one page of the file.
    #[test]
    fn a_block_keeps_its_index_and_entries_in_one_page() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(file_name(1));
        let mut writer = CheckpointWriter::create(&path, 4096).expect("create");
        let value = [b' '; 100];
        for aid in 0..3000u64 {
            let mut key = vec![0x10, 0, 0, 0x40, 0, 0x01];
            key.extend_from_slice(&(aid ^ (1 << 63)).to_be_bytes());
            writer.add(&key, Version(1), Some(&value)).expect("add");
        }
        writer
            .finish(0, Version(1), &RangeDeletes::default(), false)
            .expect("finish");
        let checkpoint = Checkpoint::open(&path, 1).expect("open");
        assert!(checkpoint.seeks.len() > 50);
        for (b, seek) in checkpoint.seeks.iter().enumerate() {
            let end = seek.start + u64::from(seek.len);
            assert!(end <= aligned_block_end(seek.start, 4096), "block {b}");
            let layout = checkpoint.layout(b).expect("layout");
            let third = checkpoint.entry_pos(&layout, 2).expect("a third entry") as u64;
            assert_eq!(third / 4096, (end - 1) / 4096, "block {b}");
        }
    }
}
