//! Lock modes of the three levels of the hierarchy and their conflict tables.
//!
//! Each table below is PostgreSQL's (or, for the partition level, Gray's intention modes) and
//! is checked cell by cell against the documentation's table in the tests at the end of this
//! file. `conflicts(a, b)` is symmetric at every level.

use std::fmt;

/// A lock mode of one level: what conflicts with what, and which held mode makes a new request
/// of the same transaction redundant.
pub trait Mode: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// True if a transaction holding `self` keeps another from taking `other` (symmetric).
    fn conflicts_with(self, other: Self) -> bool;
    /// True if holding `self` already gives everything a request for `other` would.
    fn covers(self, other: Self) -> bool;
    /// True if a holder upgrading to `self` queues behind the waiters that do not wait for it
    /// (those compatible with every mode it holds) instead of going to the front of the queue.
    /// The increment modes do (an observer keeps its FIFO place among observers); PostgreSQL's
    /// modes do not.
    fn fair_upgrade(self) -> bool {
        false
    }
    /// The name the lock view shows (PostgreSQL's `pg_locks.mode` spelling where there is one).
    fn view_name(self) -> &'static str;
}

/// PostgreSQL's eight table-level modes, weakest first (`LOCK TABLE ... IN <mode> MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableMode {
    /// SELECT.
    AccessShare,
    /// SELECT ... FOR UPDATE/SHARE.
    RowShare,
    /// INSERT, UPDATE, DELETE.
    RowExclusive,
    /// VACUUM, ANALYZE.
    ShareUpdateExclusive,
    /// CREATE INDEX (without CONCURRENTLY).
    Share,
    /// CREATE TRIGGER, some ALTER TABLE.
    ShareRowExclusive,
    /// REFRESH MATERIALIZED VIEW CONCURRENTLY; Gnomon's table-level escalation of writers.
    Exclusive,
    /// DROP, TRUNCATE, ALTER TABLE, LOCK TABLE's default.
    AccessExclusive,
}

impl TableMode {
    /// Every mode, weakest first (the order of PostgreSQL's documentation table).
    pub const ALL: [TableMode; 8] = [
        TableMode::AccessShare,
        TableMode::RowShare,
        TableMode::RowExclusive,
        TableMode::ShareUpdateExclusive,
        TableMode::Share,
        TableMode::ShareRowExclusive,
        TableMode::Exclusive,
        TableMode::AccessExclusive,
    ];

    /// The SQL spelling (`ROW EXCLUSIVE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            TableMode::AccessShare => "ACCESS SHARE",
            TableMode::RowShare => "ROW SHARE",
            TableMode::RowExclusive => "ROW EXCLUSIVE",
            TableMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            TableMode::Share => "SHARE",
            TableMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            TableMode::Exclusive => "EXCLUSIVE",
            TableMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Bit set of the modes this one conflicts with (bit i = `ALL[i]`): PostgreSQL's
    /// `LockConflicts` table (`src/backend/storage/lmgr/lock.c`).
    fn conflict_bits(self) -> u8 {
        const AS: u8 = 1;
        const RS: u8 = 1 << 1;
        const RE: u8 = 1 << 2;
        const SUE: u8 = 1 << 3;
        const S: u8 = 1 << 4;
        const SRE: u8 = 1 << 5;
        const E: u8 = 1 << 6;
        const AE: u8 = 1 << 7;
        match self {
            TableMode::AccessShare => AE,
            TableMode::RowShare => E | AE,
            TableMode::RowExclusive => S | SRE | E | AE,
            TableMode::ShareUpdateExclusive => SUE | S | SRE | E | AE,
            TableMode::Share => RE | SUE | SRE | E | AE,
            TableMode::ShareRowExclusive => RE | SUE | S | SRE | E | AE,
            TableMode::Exclusive => RS | RE | SUE | S | SRE | E | AE,
            TableMode::AccessExclusive => AS | RS | RE | SUE | S | SRE | E | AE,
        }
    }
}

impl Mode for TableMode {
    fn conflicts_with(self, other: Self) -> bool {
        self.conflict_bits() & (1 << other as u8) != 0
    }

    /// NB: as in PostgreSQL, each table mode is held separately; only the same mode is
    /// redundant.
    fn covers(self, other: Self) -> bool {
        self == other
    }

    fn view_name(self) -> &'static str {
        match self {
            TableMode::AccessShare => "AccessShareLock",
            TableMode::RowShare => "RowShareLock",
            TableMode::RowExclusive => "RowExclusiveLock",
            TableMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            TableMode::Share => "ShareLock",
            TableMode::ShareRowExclusive => "ShareRowExclusiveLock",
            TableMode::Exclusive => "ExclusiveLock",
            TableMode::AccessExclusive => "AccessExclusiveLock",
        }
    }
}

/// PostgreSQL's four row-level modes, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowMode {
    /// SELECT ... FOR KEY SHARE (and foreign-key checks in PostgreSQL).
    KeyShare,
    /// SELECT ... FOR SHARE.
    Share,
    /// SELECT ... FOR NO KEY UPDATE; UPDATE that changes no key column.
    NoKeyUpdate,
    /// SELECT ... FOR UPDATE; DELETE; UPDATE of a key column.
    Update,
    /// Gnomon's increment (escrow) mode: `UPDATE t SET c = c + e WHERE <full primary key>` at
    /// READ COMMITTED. Compatible with itself and FOR KEY SHARE: several transactions add to
    /// one row at once, each delta applied at its commit (see the README, "Increments").
    Increment,
    /// An increment holder that read the row ("observed" it): its value is fixed, so the
    /// other holders' commits wait for it. Compatible with INCREMENT and FOR KEY SHARE,
    /// conflicts with itself (observers of a row are serialised, as PostgreSQL's row writers).
    IncrementObserve,
    /// Held by an increment holder for the length of its commit: waits for an observer of the
    /// row (other than itself) to end. Compatible with INCREMENT, itself and FOR KEY SHARE.
    IncrementCommit,
}

impl RowMode {
    /// Every mode, weakest first (the order of PostgreSQL's documentation table).
    pub const ALL: [RowMode; 4] = [
        RowMode::KeyShare,
        RowMode::Share,
        RowMode::NoKeyUpdate,
        RowMode::Update,
    ];

    /// The increment modes, Gnomon's own (not in PostgreSQL's table).
    pub const INCREMENT: [RowMode; 3] = [
        RowMode::Increment,
        RowMode::IncrementObserve,
        RowMode::IncrementCommit,
    ];

    /// True for the modes that let their holder change the row.
    pub fn is_update(self) -> bool {
        !matches!(self, RowMode::KeyShare | RowMode::Share)
    }

    /// True for the increment modes ([`RowMode::INCREMENT`]).
    pub fn is_increment(self) -> bool {
        matches!(
            self,
            RowMode::Increment | RowMode::IncrementObserve | RowMode::IncrementCommit
        )
    }

    /// The SQL spelling (`FOR NO KEY UPDATE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            RowMode::KeyShare => "FOR KEY SHARE",
            RowMode::Share => "FOR SHARE",
            RowMode::NoKeyUpdate => "FOR NO KEY UPDATE",
            RowMode::Update => "FOR UPDATE",
            RowMode::Increment => "FOR INCREMENT",
            RowMode::IncrementObserve => "FOR INCREMENT (observer)",
            RowMode::IncrementCommit => "FOR INCREMENT (commit)",
        }
    }
}

impl Mode for RowMode {
    fn conflicts_with(self, other: Self) -> bool {
        use RowMode::*;
        let inc = |m: RowMode| m.is_increment();
        if inc(self) || inc(other) {
            return match (self, other) {
                (KeyShare, _) | (_, KeyShare) => false,
                (Share | NoKeyUpdate | Update, _) | (_, Share | NoKeyUpdate | Update) => true,
                (Increment, _) | (_, Increment) => false,
                (IncrementCommit, IncrementCommit) => false,
                _ => true, // an observer conflicts with observers and committers
            };
        }
        matches!(
            (self, other),
            (KeyShare, Update)
                | (Update, KeyShare)
                | (Share, NoKeyUpdate | Update)
                | (NoKeyUpdate | Update, Share)
                | (NoKeyUpdate, NoKeyUpdate | Update)
                | (Update, NoKeyUpdate | Update)
        )
    }

    /// NB: the observer covers FOR SHARE and FOR NO KEY UPDATE: nobody else can change the
    /// row while it holds it (other incrementers' commits wait for it, and are ordered after
    /// it), so its own non-key writes of the row need not wait for them. It does not cover FOR
    /// UPDATE (a DELETE waits for every incrementer, whose UPDATE already said "UPDATE 1").
    fn covers(self, other: Self) -> bool {
        use RowMode::*;
        match self {
            Update => true,
            NoKeyUpdate => other != Share && other != Update,
            Share => matches!(other, KeyShare | Share),
            KeyShare => other == KeyShare,
            Increment => matches!(other, KeyShare | Increment),
            IncrementCommit => matches!(other, KeyShare | Increment | IncrementCommit),
            IncrementObserve => other != Update,
        }
    }

    fn fair_upgrade(self) -> bool {
        matches!(self, RowMode::IncrementObserve | RowMode::IncrementCommit)
    }

    /// The table-lock name PostgreSQL shows in `pg_locks` for a tuple lock of this strength
    /// (`tupleLockExtraInfo` in `heapam.c`).
    fn view_name(self) -> &'static str {
        match self {
            RowMode::KeyShare => "AccessShareLock",
            RowMode::Share => "RowShareLock",
            RowMode::NoKeyUpdate => "ExclusiveLock",
            RowMode::Update => "AccessExclusiveLock",
            RowMode::Increment => "IncrementLock",
            RowMode::IncrementObserve => "IncrementObserveLock",
            RowMode::IncrementCommit => "IncrementCommitLock",
        }
    }
}

/// Intention modes of the partition level (Gray et al.): a row lock is taken under IS (share
/// row modes) or IX (update row modes) on its partition; S and X lock the whole partition (what
/// escalation takes); SIX reads the whole partition and updates some rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntentMode {
    /// Intention share.
    IntentShare,
    /// Intention exclusive.
    IntentExclusive,
    /// Share (the whole partition).
    Share,
    /// Share + intention exclusive.
    ShareIntentExclusive,
    /// Exclusive (the whole partition).
    Exclusive,
}

impl IntentMode {
    /// Every mode, in the order of the classic table (IS, IX, S, SIX, X).
    pub const ALL: [IntentMode; 5] = [
        IntentMode::IntentShare,
        IntentMode::IntentExclusive,
        IntentMode::Share,
        IntentMode::ShareIntentExclusive,
        IntentMode::Exclusive,
    ];

    /// The short name (IS, IX, S, SIX, X).
    pub fn short_name(self) -> &'static str {
        match self {
            IntentMode::IntentShare => "IS",
            IntentMode::IntentExclusive => "IX",
            IntentMode::Share => "S",
            IntentMode::ShareIntentExclusive => "SIX",
            IntentMode::Exclusive => "X",
        }
    }
}

impl Mode for IntentMode {
    fn conflicts_with(self, other: Self) -> bool {
        use IntentMode::*;
        match self {
            IntentShare => other == Exclusive,
            IntentExclusive => matches!(other, Share | ShareIntentExclusive | Exclusive),
            Share => matches!(other, IntentExclusive | ShareIntentExclusive | Exclusive),
            ShareIntentExclusive => other != IntentShare,
            Exclusive => true,
        }
    }

    fn covers(self, other: Self) -> bool {
        use IntentMode::*;
        match self {
            Exclusive => true,
            ShareIntentExclusive => other != Exclusive,
            Share => matches!(other, IntentShare | Share),
            IntentExclusive => matches!(other, IntentShare | IntentExclusive),
            IntentShare => other == IntentShare,
        }
    }

    fn view_name(self) -> &'static str {
        match self {
            IntentMode::IntentShare => "IntentShareLock",
            IntentMode::IntentExclusive => "IntentExclusiveLock",
            IntentMode::Share => "ShareLock",
            IntentMode::ShareIntentExclusive => "ShareIntentExclusiveLock",
            IntentMode::Exclusive => "ExclusiveLock",
        }
    }
}

/// A mode of a table or partition lock (both live in one lock table, keyed by
/// [`super::ObjectTag`]; a tag's level decides which variant its requests carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectMode {
    /// A table-level mode.
    Table(TableMode),
    /// A partition-level mode.
    Partition(IntentMode),
}

impl Mode for ObjectMode {
    fn conflicts_with(self, other: Self) -> bool {
        match (self, other) {
            (ObjectMode::Table(a), ObjectMode::Table(b)) => a.conflicts_with(b),
            (ObjectMode::Partition(a), ObjectMode::Partition(b)) => a.conflicts_with(b),
            // Never asked: a tag has one level.
            _ => false,
        }
    }

    fn covers(self, other: Self) -> bool {
        match (self, other) {
            (ObjectMode::Table(a), ObjectMode::Table(b)) => a.covers(b),
            (ObjectMode::Partition(a), ObjectMode::Partition(b)) => a.covers(b),
            _ => false,
        }
    }

    fn view_name(self) -> &'static str {
        match self {
            ObjectMode::Table(m) => m.view_name(),
            ObjectMode::Partition(m) => m.view_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `conflicts` against a documentation table: one row per requested mode, one column
    /// per held mode, `X` where they conflict.
    fn check<M: Mode>(modes: &[M], table: &[&str]) {
        assert_eq!(modes.len(), table.len());
        for (i, row) in table.iter().enumerate() {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells.len(), modes.len(), "row {i}: {row}");
            for (j, cell) in cells.iter().enumerate() {
                let expected = *cell == "X";
                assert_eq!(
                    modes[i].conflicts_with(modes[j]),
                    expected,
                    "{:?} requested vs {:?} held",
                    modes[i],
                    modes[j]
                );
                assert_eq!(
                    modes[i].conflicts_with(modes[j]),
                    modes[j].conflicts_with(modes[i]),
                    "symmetric"
                );
            }
        }
    }

    #[test]
    fn table_modes_match_postgresql_table_13_2() {
        // https://www.postgresql.org/docs/15/explicit-locking.html, Table 13.2 "Conflicting Lock
        // Modes": rows = requested, columns = existing, in the order
        // ACCESS SHARE, ROW SHARE, ROW EXCL., SHARE UPDATE EXCL., SHARE, SHARE ROW EXCL., EXCL.,
        // ACCESS EXCL.
        check(
            &TableMode::ALL,
            &[
                " | | | | | | | X",
                " | | | | | | X | X",
                " | | | | X | X | X | X",
                " | | | X | X | X | X | X",
                " | | X | X | | X | X | X",
                " | | X | X | X | X | X | X",
                " | X | X | X | X | X | X | X",
                "X | X | X | X | X | X | X | X",
            ],
        );
    }

    #[test]
    fn row_modes_match_postgresql_table_13_3() {
        // Table 13.3 "Conflicting Row-Level Locks": FOR KEY SHARE, FOR SHARE, FOR NO KEY UPDATE,
        // FOR UPDATE.
        check(
            &RowMode::ALL,
            &[" | | | X", " | | X | X", " | X | X | X", "X | X | X | X"],
        );
    }

    #[test]
    fn intention_modes_match_the_classic_table() {
        // Gray, Lorie, Putzolu, Traiger (1976): IS, IX, S, SIX, X.
        check(
            &IntentMode::ALL,
            &[
                " | | | | X",
                " | | X | X | X",
                " | X | | X | X",
                " | X | X | X | X",
                "X | X | X | X | X",
            ],
        );
    }

    #[test]
    fn a_covering_mode_conflicts_with_everything_the_covered_one_does() {
        fn check_cover<M: Mode>(all: &[M]) {
            for &a in all {
                for &b in all {
                    if a.covers(b) {
                        for &c in all {
                            assert!(
                                !b.conflicts_with(c) || a.conflicts_with(c),
                                "{a:?} covers {b:?} but not its conflict with {c:?}"
                            );
                        }
                    }
                }
                assert!(a.covers(a));
            }
        }
        check_cover(&TableMode::ALL);
        check_cover(&RowMode::ALL);
        check_cover(&IntentMode::ALL);
    }

    /// The increment modes' row of the README's matrix, in the order KS, S, NKU, U, INC, OBS,
    /// COMMIT.
    #[test]
    fn increment_modes_match_the_readme_matrix() {
        use RowMode::*;
        let all = [
            KeyShare,
            Share,
            NoKeyUpdate,
            Update,
            Increment,
            IncrementObserve,
            IncrementCommit,
        ];
        check(
            &all,
            &[
                " | | | X | | | ",
                " | | X | X | X | X | X",
                " | X | X | X | X | X | X",
                "X | X | X | X | X | X | X",
                " | X | X | X | | | ",
                " | X | X | X | | X | X",
                " | X | X | X | | X | ",
            ],
        );
        // Covering never hides a conflict, except the observer's cover of FOR SHARE and FOR NO
        // KEY UPDATE (the README explains why the incrementers it does not conflict with are
        // harmless).
        for &a in &all {
            for &b in &all {
                if a.covers(b) && !(a == IncrementObserve && matches!(b, Share | NoKeyUpdate)) {
                    for &c in &all {
                        assert!(
                            !b.conflicts_with(c) || a.conflicts_with(c),
                            "{a:?} covers {b:?} but not its conflict with {c:?}"
                        );
                    }
                }
            }
            assert!(a.covers(a));
        }
        assert!(IncrementObserve.fair_upgrade() && IncrementCommit.fair_upgrade());
        assert!(!Increment.fair_upgrade() && !Update.fair_upgrade());
    }
}
