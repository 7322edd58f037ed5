//! Versioned keys and their order: user key ascending, then version DESCENDING.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;

/// A version stamp. Opaque to the engine except for its order: bigger = newer.
///
/// `Version::MAX` used as a snapshot reads the newest data; `Version::MIN` (0) is never the
/// version of a real batch (the first accepted batch version is 1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Version(pub u128);

impl Version {
    /// The oldest possible version; nothing is visible at it.
    pub const MIN: Version = Version(0);
    /// The newest possible version; a snapshot at `MAX` sees the latest write of every key.
    pub const MAX: Version = Version(u128::MAX);
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The one order of versioned keys, used by the memtable, the checkpoint and every merge.
///
/// Within one user key the newest version comes first, so "newest version <= snapshot" is
/// the first entry at or after `(user, snapshot)`: a single seek.
pub(crate) fn cmp_versioned(
    a_user: &[u8],
    a_version: Version,
    b_user: &[u8],
    b_version: Version,
) -> Ordering {
    a_user.cmp(b_user).then_with(|| b_version.cmp(&a_version))
}

/// Bytes of a user key copied into [`KeyHead`].
pub(crate) const HEAD_LEN: usize = 16;

/// The first [`HEAD_LEN`] bytes of a user key, big-endian, zero-padded.
///
/// Stored inline in every memtable key so a skiplist search decides most comparisons with one
/// integer compare, without following the key's heap pointer (a cache miss per skiplist node
/// over a big memtable) or calling `memcmp`. Sound because for keys `a`, `b`:
/// `head(a) < head(b)` implies `a < b` (the first differing padded byte is either a real byte
/// of both, or a zero pad of the shorter key, which is then a prefix of the longer one); and
/// with equal heads, a key of at most `HEAD_LEN` bytes is a prefix of the other, so the
/// shorter one is smaller (see [`KeyParts::cmp`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct KeyHead(u128);

impl KeyHead {
    #[inline]
    pub(crate) fn of(user: &[u8]) -> KeyHead {
        if let Some(first) = user.first_chunk::<HEAD_LEN>() {
            return KeyHead(u128::from_be_bytes(*first));
        }
        let mut padded = [0u8; HEAD_LEN];
        let n = user.len().min(HEAD_LEN);
        padded[..n].copy_from_slice(&user[..n]);
        KeyHead(u128::from_be_bytes(padded))
    }
}

/// What a memtable comparison looks at: the inline head, the key's length, its bytes (read
/// only past the head, and only when both keys are longer than it), the version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyParts<'a> {
    head: KeyHead,
    len: usize,
    user: &'a [u8],
    version: Version,
}

impl<'a> KeyParts<'a> {
    /// The parts of a stored key whose head was computed already (a checkpoint block's first
    /// key): `head` must be `KeyHead::of(user)`.
    pub(crate) fn with_head(head: KeyHead, user: &'a [u8], version: Version) -> Self {
        KeyParts {
            head,
            len: user.len(),
            user,
            version,
        }
    }

    /// The user key's head.
    pub(crate) fn head(&self) -> KeyHead {
        self.head
    }

    /// Same order as [`cmp_versioned`], deciding most comparisons on the heads.
    pub(crate) fn cmp(&self, other: &KeyParts<'_>) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.cmp_user_after_head(other))
            .then_with(|| other.version.cmp(&self.version))
    }

    /// Order of two user keys whose [`KeyHead`]s are equal.
    fn cmp_user_after_head(&self, other: &KeyParts<'_>) -> Ordering {
        if self.len <= HEAD_LEN || other.len <= HEAD_LEN {
            // The shorter key is wholly inside the equal heads: it is a prefix of the other.
            self.len.cmp(&other.len)
        } else {
            self.user[HEAD_LEN..].cmp(&other.user[HEAD_LEN..])
        }
    }
}

/// A key stored in the memtable: the user key plus the version that wrote it.
#[derive(Clone, Debug)]
pub(crate) struct VersionedKey {
    head: KeyHead,
    /// `user.len()`, except in a [`VersionedKey::short_probe`].
    len: usize,
    pub(crate) user: Bytes,
    pub(crate) version: Version,
}

impl VersionedKey {
    pub(crate) fn new(user: Bytes, version: Version) -> Self {
        VersionedKey {
            head: KeyHead::of(&user),
            len: user.len(),
            user,
            version,
        }
    }

    /// A search key for a user key that fits in its head, searched without dynamic dispatch
    /// or allocation: such a key compares on (head, length) alone, so its `user` is left
    /// empty. Only for searching: it is never inserted. `None` for a longer key.
    pub(crate) fn short_probe(user: &[u8], version: Version) -> Option<Self> {
        (user.len() <= HEAD_LEN).then(|| VersionedKey {
            head: KeyHead::of(user),
            len: user.len(),
            user: Bytes::new(),
            version,
        })
    }

    fn parts(&self) -> KeyParts<'_> {
        KeyParts {
            head: self.head,
            len: self.len,
            user: &self.user,
            version: self.version,
        }
    }
}

/// Borrowed view of a versioned key, so the skiplist can be searched with a `&[u8]` user key
/// without allocating a `VersionedKey` per lookup. One call gives everything a comparison
/// needs (a single dynamic dispatch per side).
pub(crate) trait KeyView {
    fn parts(&self) -> KeyParts<'_>;
}

/// A search key: a borrowed user key and a version (its head computed once per search).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe<'a> {
    head: KeyHead,
    pub(crate) user: &'a [u8],
    pub(crate) version: Version,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(user: &'a [u8], version: Version) -> Self {
        Probe {
            head: KeyHead::of(user),
            user,
            version,
        }
    }
}

impl KeyView for VersionedKey {
    fn parts(&self) -> KeyParts<'_> {
        VersionedKey::parts(self)
    }
}

impl KeyView for Probe<'_> {
    fn parts(&self) -> KeyParts<'_> {
        KeyParts {
            head: self.head,
            len: self.user.len(),
            user: self.user,
            version: self.version,
        }
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for dyn KeyView + '_ {}
impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for VersionedKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for VersionedKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for VersionedKey {}
impl PartialOrd for VersionedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for VersionedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// One stored version, as any layer hands it out (user key and value share their buffers).
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) user: Bytes,
    pub(crate) version: Version,
    /// `None` = tombstone.
    pub(crate) value: Option<Bytes>,
}

/// A sorted, seekable set of versions: the memtables and the checkpoint all look like this to
/// the read path and to the checkpoint merge.
pub(crate) trait Source: Send + Sync {
    /// First entry >= (`Included`) or > (`Excluded`) the probe; the very first if `Unbounded`.
    fn lower_bound(&self, bound: std::ops::Bound<Probe<'_>>) -> Option<Found>;
    /// Last entry <= (`Included`) or < (`Excluded`) the probe; the very last if `Unbounded`.
    fn upper_bound(&self, bound: std::ops::Bound<Probe<'_>>) -> Option<Found>;
    /// The point read: version and value (`None` = tombstone) of the newest version of `user`
    /// <= `at`. A source may answer it without building a whole [`Found`].
    fn newest_value_at(&self, user: &[u8], at: Version) -> Option<(Version, Option<Bytes>)> {
        newest_at(self, user, at).map(|found| (found.version, found.value))
    }
    /// The first entry whose user key is greater than `after`'s, where `after` is an entry
    /// this source handed out: a forward scan's step to its next key. The default seeks; a
    /// source that can continue from where `after` lies (the checkpoint) walks on instead.
    fn next_user(&self, after: &Found) -> Option<Found> {
        self.lower_bound(std::ops::Bound::Excluded(Probe::new(
            &after.user,
            Version::MIN,
        )))
    }
}

/// Newest version of `user` with version <= `at` in one source (tombstones included).
pub(crate) fn newest_at<S: Source + ?Sized>(source: &S, user: &[u8], at: Version) -> Option<Found> {
    source
        .lower_bound(std::ops::Bound::Included(Probe::new(user, at)))
        .filter(|found| found.user.as_ref() == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_newest_first_within_a_key_and_keys_ascending() {
        let key =
            |user: &'static [u8], v: u128| VersionedKey::new(Bytes::from_static(user), Version(v));
        let mut keys = [
            key(b"b", 1),
            key(b"a", 1),
            key(b"a\0", 9),
            key(b"a", 9),
            key(b"", 5),
            key(b"a", 5),
        ];
        keys.sort();
        let order: Vec<_> = keys
            .iter()
            .map(|k| (k.user.as_ref(), k.version.0))
            .collect();
        assert_eq!(
            order,
            [
                (&b""[..], 5),
                (b"a", 9),
                (b"a", 5),
                (b"a", 1),
                (b"a\0", 9),
                (b"b", 1)
            ]
        );
    }

    #[test]
    fn probe_and_stored_key_compare_alike() {
        let stored = VersionedKey::new(Bytes::from_static(b"k"), Version(7));
        let stored_view: &dyn KeyView = &stored;
        let newer = Probe::new(b"k", Version(8));
        let same = Probe::new(b"k", Version(7));
        assert!((&newer as &dyn KeyView) < stored_view);
        assert!((&same as &dyn KeyView) == stored_view);
    }

    #[test]
    fn head_comparison_orders_keys_like_plain_bytes_around_the_head_length() {
        // Keys of every length near HEAD_LEN built from bytes that stress zero padding.
        let mut keys: Vec<Vec<u8>> = vec![vec![]];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in [1, 2, 15, 16, 17, 18, 31, 32, 33] {
            for _ in 0..12 {
                let key = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        [0x00, 0x01, b'a', 0xff][(seed % 4) as usize]
                    })
                    .collect();
                keys.push(key);
            }
        }
        // Shared prefixes: each key extended by a zero and by 0xff, and cut short by one.
        for k in keys.clone() {
            keys.push([k.as_slice(), &[0]].concat());
            keys.push([k.as_slice(), &[0xff]].concat());
            keys.push(k[..k.len().saturating_sub(1)].to_vec());
        }
        for a in &keys {
            for b in &keys {
                for (va, vb) in [(1, 1), (1, 2), (2, 1)] {
                    let stored = VersionedKey::new(Bytes::copy_from_slice(a), Version(va));
                    let probe = Probe::new(b, Version(vb));
                    let expected = cmp_versioned(a, Version(va), b, Version(vb));
                    let got = (&stored as &dyn KeyView).cmp(&probe as &dyn KeyView);
                    assert_eq!(got, expected, "{a:?}@{va} vs {b:?}@{vb}");
                    if let Some(short) = VersionedKey::short_probe(b, Version(vb)) {
                        assert_eq!(stored.cmp(&short), expected, "{a:?}@{va} vs short {b:?}");
                    }
                }
            }
        }
    }
}
