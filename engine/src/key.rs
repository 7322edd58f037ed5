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

/// A key stored in the memtable: the user key plus the version that wrote it.
#[derive(Clone, Debug)]
pub(crate) struct VersionedKey {
    pub(crate) user: Bytes,
    pub(crate) version: Version,
}

/// Borrowed view of a versioned key, so the skiplist can be searched with a `&[u8]` user key
/// without allocating a `VersionedKey` per lookup.
pub(crate) trait KeyView {
    fn user(&self) -> &[u8];
    fn version(&self) -> Version;
}

/// A search key: a borrowed user key and a version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe<'a> {
    pub(crate) user: &'a [u8],
    pub(crate) version: Version,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(user: &'a [u8], version: Version) -> Self {
        Probe { user, version }
    }
}

impl KeyView for VersionedKey {
    fn user(&self) -> &[u8] {
        &self.user
    }
    fn version(&self) -> Version {
        self.version
    }
}

impl KeyView for Probe<'_> {
    fn user(&self) -> &[u8] {
        self.user
    }
    fn version(&self) -> Version {
        self.version
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
        cmp_versioned(self.user(), self.version(), other.user(), other.version())
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
        cmp_versioned(&self.user, self.version, &other.user, other.version)
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
}

/// Newest version of `user` with version <= `at` in one source (tombstones included).
pub(crate) fn newest_at(source: &dyn Source, user: &[u8], at: Version) -> Option<Found> {
    source
        .lower_bound(std::ops::Bound::Included(Probe::new(user, at)))
        .filter(|found| found.user.as_ref() == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_newest_first_within_a_key_and_keys_ascending() {
        let key = |user: &'static [u8], v: u128| VersionedKey {
            user: Bytes::from_static(user),
            version: Version(v),
        };
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
        let stored = VersionedKey {
            user: Bytes::from_static(b"k"),
            version: Version(7),
        };
        let stored_view: &dyn KeyView = &stored;
        let newer = Probe::new(b"k", Version(8));
        let same = Probe::new(b"k", Version(7));
        assert!((&newer as &dyn KeyView) < stored_view);
        assert!((&same as &dyn KeyView) == stored_view);
    }
}
