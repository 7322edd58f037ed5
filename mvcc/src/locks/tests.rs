//! Scenario tests of the lock manager: modes, FIFO hand-off, NOWAIT / SKIP LOCKED, timeouts,
//! deadlocks, escalation and the lock view.

use super::*;
use std::sync::mpsc;
use std::thread;

/// Keys `[rel, ..]`: the first byte is the table; partitions are the FNV default.
struct FirstByteIsTable;

impl LockHierarchy for FirstByteIsTable {
    fn relation_of(&self, key: &[u8]) -> Option<RelId> {
        key.first().map(|&b| RelId(b as u32))
    }
}

fn manager() -> Arc<LockManager> {
    let lm = Arc::new(LockManager::default());
    lm.set_hierarchy(Arc::new(FirstByteIsTable));
    lm
}

/// A transaction's lock state driven from its own thread.
struct T {
    id: TxnId,
    locks: TxnLocks,
    lm: Arc<LockManager>,
}

impl T {
    fn new(lm: &Arc<LockManager>, id: u64) -> T {
        T {
            id: TxnId(id),
            locks: TxnLocks::default(),
            lm: lm.clone(),
        }
    }
    fn row(&mut self, key: &[u8], mode: RowMode, wait: LockWait) -> Result<RowLocked, MvccError> {
        self.lm.lock_row(&mut self.locks, self.id, key, mode, wait)
    }
    fn table(&mut self, rel: u32, mode: TableMode, wait: LockWait) -> Result<Acquired, MvccError> {
        self.lm.lock_object(
            &mut self.locks,
            self.id,
            ObjectTag::Relation(RelId(rel)),
            ObjectMode::Table(mode),
            wait,
        )
    }
    fn end(&mut self) {
        self.lm.release_all(&mut self.locks, self.id);
    }
}

/// Runs `f` on a new thread with transaction `id`; returns its result when it finishes.
fn spawn<R: Send + 'static>(
    lm: &Arc<LockManager>,
    id: u64,
    f: impl FnOnce(&mut T) -> R + Send + 'static,
) -> (mpsc::Receiver<()>, thread::JoinHandle<(R, T)>) {
    let (tx, rx) = mpsc::channel();
    let mut t = T::new(lm, id);
    let h = thread::spawn(move || {
        let r = f(&mut t);
        let _ = tx.send(());
        (r, t)
    });
    (rx, h)
}

/// Waits until `n` lock requests are queued (awaited locks in the view).
fn until_waiting(lm: &LockManager, n: usize) {
    while lm.view().iter().filter(|l| !l.granted).count() < n {
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn shared_row_modes_coexist_and_an_update_waits_for_them() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    let mut b = T::new(&lm, 2);
    assert_eq!(
        a.row(b"\x01k", RowMode::Share, LockWait::Block).unwrap(),
        RowLocked::New
    );
    assert_eq!(
        b.row(b"\x01k", RowMode::KeyShare, LockWait::Block).unwrap(),
        RowLocked::New
    );
    // FOR NO KEY UPDATE conflicts with FOR SHARE but not FOR KEY SHARE.
    let (done, h) = spawn(&lm, 3, |t| {
        t.row(b"\x01k", RowMode::NoKeyUpdate, LockWait::Block)
    });
    until_waiting(&lm, 1);
    b.end();
    assert!(
        done.try_recv().is_err(),
        "still blocked by the FOR SHARE holder"
    );
    a.end();
    let (r, mut c) = h.join().unwrap();
    assert_eq!(r.unwrap(), RowLocked::New);
    c.end();
}

#[test]
fn nowait_and_skip_locked_do_not_wait() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    let mut b = T::new(&lm, 2);
    a.row(b"\x01k", RowMode::Update, LockWait::Block).unwrap();
    let err = b
        .row(b"\x01k", RowMode::KeyShare, LockWait::NoWait)
        .unwrap_err();
    assert!(matches!(
        err,
        MvccError::LockNotAvailable {
            target: LockTarget::Row {
                relation: Some(RelId(1))
            }
        }
    ));
    assert_eq!(
        b.row(b"\x01k", RowMode::KeyShare, LockWait::SkipLocked)
            .unwrap(),
        RowLocked::Skipped
    );
    assert_eq!(
        b.row(b"\x01j", RowMode::Update, LockWait::SkipLocked)
            .unwrap(),
        RowLocked::New
    );
    assert_eq!(
        lm.stats().not_available,
        1,
        "NOWAIT refusals (SKIP LOCKED is no failure)"
    );
    a.end();
    b.end();
}

#[test]
fn waiters_are_granted_in_arrival_order() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    a.row(b"\x01hot", RowMode::NoKeyUpdate, LockWait::Block)
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..5u64 {
        let o = order.clone();
        let (_, h) = spawn(&lm, 10 + i, move |t| {
            t.row(b"\x01hot", RowMode::NoKeyUpdate, LockWait::Block)
                .unwrap();
            o.lock().unwrap().push(t.id.0);
            t.end();
        });
        handles.push(h);
        until_waiting(&lm, i as usize + 1);
    }
    a.end();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![10, 11, 12, 13, 14]);
    assert_eq!(lm.stats().waits, 5);
}

#[test]
fn lock_timeout_ends_a_wait_and_the_queue_moves_on() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    a.table(7, TableMode::AccessExclusive, LockWait::Block)
        .unwrap();
    let mut b = T::new(&lm, 2);
    b.locks.limits.lock_timeout = Some(Duration::from_millis(20));
    let err = b
        .table(7, TableMode::AccessShare, LockWait::Block)
        .unwrap_err();
    assert!(matches!(err, MvccError::LockTimeout), "{err:?}");
    b.locks.limits.lock_timeout = None;
    b.locks.limits.statement_deadline = Some(Instant::now() + Duration::from_millis(20));
    let err = b
        .table(7, TableMode::AccessShare, LockWait::Block)
        .unwrap_err();
    assert!(matches!(err, MvccError::StatementTimeout), "{err:?}");
    assert_eq!(lm.stats().timeouts, 2);
    assert!(lm.view().iter().all(|l| l.granted), "no waiter left behind");
    a.end();
    b.locks.limits = WaitLimits::default();
    assert_eq!(
        b.table(7, TableMode::AccessShare, LockWait::Block).unwrap(),
        Acquired::New
    );
    b.end();
}

#[test]
fn deadlock_aborts_the_youngest_and_names_the_cycle() {
    let lm = manager();
    let mut older = T::new(&lm, 10);
    let mut younger = T::new(&lm, 20);
    older
        .row(b"\x01a", RowMode::Update, LockWait::Block)
        .unwrap();
    younger
        .row(b"\x01b", RowMode::Update, LockWait::Block)
        .unwrap();
    let (_, h) = spawn(&lm, 10, |t| {
        // Shares 10's identity: waits for b on its behalf.
        t.row(b"\x01b", RowMode::Update, LockWait::Block)
    });
    until_waiting(&lm, 1);
    let err = younger
        .row(b"\x01a", RowMode::Update, LockWait::Block)
        .unwrap_err();
    match err {
        MvccError::Deadlock { cycle, detail } => {
            assert_eq!(cycle, vec![TxnId(20), TxnId(10)]);
            assert!(detail.contains("Transaction 20 waits for"), "{detail}");
            assert!(detail.contains("blocked by transaction 10"), "{detail}");
        }
        other => panic!("expected deadlock, got {other:?}"),
    }
    younger.end();
    let (r, mut t) = h.join().unwrap();
    assert_eq!(r.unwrap(), RowLocked::New);
    t.end();
    older.end();
    assert_eq!(lm.stats().deadlocks, 1);
}

#[test]
fn a_waiting_victim_is_woken_with_the_deadlock_error() {
    let lm = manager();
    let mut older = T::new(&lm, 10);
    let mut younger = T::new(&lm, 20);
    older
        .row(b"\x01a", RowMode::Update, LockWait::Block)
        .unwrap();
    younger
        .row(b"\x01b", RowMode::Update, LockWait::Block)
        .unwrap();
    // The younger waits first; the older closes the cycle, so the waiting younger is the victim.
    let (_, hy) = spawn(&lm, 20, |t| {
        t.row(b"\x01a", RowMode::Update, LockWait::Block)
    });
    until_waiting(&lm, 1);
    let (_, ho) = spawn(&lm, 10, |t| {
        t.row(b"\x01b", RowMode::Update, LockWait::Block)
    });
    let (r, _) = hy.join().unwrap();
    assert!(matches!(r, Err(MvccError::Deadlock { .. })), "{r:?}");
    younger.end();
    let (r, mut t) = ho.join().unwrap();
    assert_eq!(r.unwrap(), RowLocked::New);
    t.end();
    older.end();
}

#[test]
fn a_table_lock_cycle_is_a_deadlock_too() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    let mut b = T::new(&lm, 2);
    a.table(5, TableMode::Share, LockWait::Block).unwrap();
    b.table(5, TableMode::Share, LockWait::Block).unwrap();
    // Both upgrade to SHARE ROW EXCLUSIVE: the classic lock-upgrade deadlock.
    let (_, h) = spawn(&lm, 1, |t| {
        t.table(5, TableMode::ShareRowExclusive, LockWait::Block)
    });
    until_waiting(&lm, 1);
    let err = b
        .table(5, TableMode::ShareRowExclusive, LockWait::Block)
        .unwrap_err();
    assert!(matches!(err, MvccError::Deadlock { .. }), "{err:?}");
    b.end();
    assert_eq!(h.join().unwrap().0.unwrap(), Acquired::New);
    a.end();
}

#[test]
fn a_row_write_takes_intention_locks_and_a_table_lock_blocks_writers() {
    let lm = manager();
    let mut w = T::new(&lm, 1);
    w.row(b"\x03x", RowMode::NoKeyUpdate, LockWait::Block)
        .unwrap();
    let held: Vec<_> = lm
        .view()
        .into_iter()
        .map(|l| (l.locktype, l.mode, l.granted))
        .collect();
    assert!(held.contains(&("relation", "RowExclusiveLock", true)));
    assert!(held.contains(&("partition", "IntentExclusiveLock", true)));
    assert!(held.contains(&("tuple", "ExclusiveLock", true)));
    let mut l = T::new(&lm, 2);
    // SHARE conflicts with ROW EXCLUSIVE.
    assert!(matches!(
        l.table(3, TableMode::Share, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    // ACCESS SHARE does not.
    l.table(3, TableMode::AccessShare, LockWait::NoWait)
        .unwrap();
    w.end();
    l.table(3, TableMode::Share, LockWait::NoWait).unwrap();
    // Now a writer must wait for the SHARE holder.
    let mut w2 = T::new(&lm, 3);
    assert!(matches!(
        w2.row(b"\x03x", RowMode::NoKeyUpdate, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    l.end();
    w2.end();
    assert!(lm.view().is_empty());
}

#[test]
fn many_row_locks_escalate_to_the_partition_then_the_table() {
    let lm = manager();
    lm.configure(LockSettings {
        hash_partitions: 4,
        partition_escalation_rows: 3,
        table_escalation_rows: 40,
        ..LockSettings::default()
    });
    let mut t = T::new(&lm, 1);
    for i in 0..20u8 {
        t.row(&[9, i], RowMode::Update, LockWait::Block).unwrap();
    }
    let s = lm.stats();
    assert!(s.escalations >= 1, "{s:?}");
    let view = lm.view();
    assert!(view
        .iter()
        .any(|l| l.locktype == "partition" && l.mode == "ExclusiveLock" && l.escalated));
    let rows = view.iter().filter(|l| l.locktype == "tuple").count();
    assert!(
        rows < 20,
        "escalated partitions dropped their row locks ({rows} left)"
    );
    // Another transaction cannot lock a row of an escalated partition.
    let mut other = T::new(&lm, 2);
    let covered: Vec<u8> = (0..20u8)
        .map(|i| vec![9, i])
        .find(|k| lm.row_holders(k).is_empty())
        .expect("some row is covered by a partition lock");
    assert!(matches!(
        other.row(&covered, RowMode::KeyShare, LockWait::NoWait),
        Err(MvccError::LockNotAvailable { .. })
    ));
    // Its ROW SHARE on the table would refuse the table-level escalation: it ends first.
    other.end();
    for i in 20..60u8 {
        t.row(&[9, i], RowMode::Update, LockWait::Block).unwrap();
    }
    let view = lm.view();
    assert!(view
        .iter()
        .any(|l| l.locktype == "relation" && l.mode == "ExclusiveLock" && l.escalated));
    assert!(
        view.iter().all(|l| l.locktype != "tuple"),
        "table lock covers every row"
    );
    t.end();
    assert!(lm.view().is_empty());
}

#[test]
fn escalation_is_refused_without_waiting_when_others_hold_rows_there() {
    let lm = manager();
    lm.configure(LockSettings {
        hash_partitions: 1,
        partition_escalation_rows: 3,
        table_escalation_rows: 0,
        ..LockSettings::default()
    });
    let mut other = T::new(&lm, 2);
    other
        .row(&[4, 200], RowMode::KeyShare, LockWait::Block)
        .unwrap();
    let mut t = T::new(&lm, 1);
    for i in 0..10u8 {
        t.row(&[4, i], RowMode::Update, LockWait::Block).unwrap();
    }
    assert_eq!(lm.stats().escalations, 0);
    assert_eq!(lm.stats().waits, 0);
    t.end();
    other.end();
}

#[test]
fn a_contended_partition_switches_writers_to_partition_locks_and_back() {
    let lm = manager();
    lm.configure(LockSettings {
        hash_partitions: 1,
        contention_threshold: 3,
        contention_window_ms: 100,
        ..LockSettings::default()
    });
    // Three waits on one row make partition (8, 0) hot.
    for i in 0..3u64 {
        let mut holder = T::new(&lm, 100 + i);
        holder
            .row(b"\x08r", RowMode::NoKeyUpdate, LockWait::Block)
            .unwrap();
        let (_, h) = spawn(&lm, 200 + i, |t| {
            let r = t.row(b"\x08r", RowMode::NoKeyUpdate, LockWait::Block);
            t.end();
            r
        });
        until_waiting(&lm, 1);
        holder.end();
        h.join().unwrap().0.unwrap();
    }
    assert_eq!(lm.hot_partitions(), vec![(RelId(8), PartitionId(0))]);
    assert_eq!(lm.stats().escalations, 1);
    let mut w = T::new(&lm, 300);
    w.row(b"\x08other", RowMode::NoKeyUpdate, LockWait::Block)
        .unwrap();
    let view = lm.view();
    assert!(view
        .iter()
        .any(|l| l.locktype == "partition" && l.mode == "ExclusiveLock" && l.escalated));
    assert!(view.iter().all(|l| l.locktype != "tuple"));
    w.end();
    // Two quiet windows: back to row locks.
    thread::sleep(Duration::from_millis(250));
    let mut w = T::new(&lm, 301);
    w.row(b"\x08other", RowMode::NoKeyUpdate, LockWait::Block)
        .unwrap();
    assert!(lm.hot_partitions().is_empty());
    assert_eq!(lm.stats().de_escalations, 1);
    assert!(lm.view().iter().any(|l| l.locktype == "tuple"));
    w.end();
}

#[test]
fn keys_outside_the_hierarchy_get_plain_row_locks() {
    let lm = Arc::new(LockManager::default());
    let mut a = T::new(&lm, 1);
    a.row(b"catalog", RowMode::Update, LockWait::Block).unwrap();
    assert_eq!(lm.view().len(), 1);
    assert_eq!(
        lm.row_holders(b"catalog"),
        vec![(TxnId(1), RowMode::Update)]
    );
    a.end();
    assert!(lm.view().is_empty());
}

/// The locks of `txn` in the view, as (locktype, mode), sorted.
fn held_by(lm: &LockManager, txn: u64) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = lm
        .view()
        .into_iter()
        .filter(|l| l.txn == TxnId(txn) && l.granted)
        .map(|l| (l.locktype, l.mode))
        .collect();
    v.sort();
    v
}

#[test]
fn an_increment_upgrade_stays_one_row_lock_and_is_not_a_new_row() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    a.row(b"\x04r", RowMode::Increment, LockWait::Block)
        .unwrap();
    let up = |a: &mut T, key: &[u8], mode, since| {
        lm.upgrade_row(&mut a.locks, a.id, key, mode, LockWait::Block, since)
            .unwrap()
    };
    assert_eq!(
        up(&mut a, b"\x04r", RowMode::IncrementObserve, None),
        RowGrant::Upgrade
    );
    assert_eq!(
        up(&mut a, b"\x04r", RowMode::IncrementObserve, None),
        RowGrant::AlreadyHeld
    );
    assert_eq!(
        a.locks.rows.len(),
        1,
        "one entry per row, whatever its modes"
    );
    let counts: u32 = a.locks.partitions.values().map(|c| c.rows).sum();
    assert_eq!(counts, 1, "an upgrade does not count towards escalation");
    assert_eq!(
        lm.row_holders(b"\x04r"),
        vec![
            (TxnId(1), RowMode::Increment),
            (TxnId(1), RowMode::IncrementObserve)
        ]
    );
    // A row the transaction holds nothing on is not taken by an upgrade.
    assert_eq!(
        up(&mut a, b"\x04s", RowMode::IncrementCommit, None),
        RowGrant::NotHeld
    );
    assert!(lm.row_holders(b"\x04s").is_empty());
    a.end();
    assert!(lm.view().is_empty());
}

#[test]
fn a_row_stays_undisturbed_until_another_transaction_locks_it() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    let mut b = T::new(&lm, 2);
    a.row(b"\x04r", RowMode::Increment, LockWait::Block)
        .unwrap();
    let stamp = lm.row_stamp(a.id, b"\x04r").expect("A holds the row alone");
    assert!(lm.row_undisturbed(a.id, b"\x04r", stamp));
    // A's own upgrade, granted at once and undisturbed: the stamp moves by one.
    let g = lm
        .upgrade_row(
            &mut a.locks,
            a.id,
            b"\x04r",
            RowMode::IncrementCommit,
            LockWait::Block,
            Some(stamp),
        )
        .unwrap();
    assert_eq!(g, RowGrant::UndisturbedUpgrade);
    assert!(lm.row_undisturbed(a.id, b"\x04r", stamp + 1));
    // Another incrementer comes and goes: the row is disturbed, though A is alone again.
    b.row(b"\x04r", RowMode::Increment, LockWait::Block)
        .unwrap();
    assert_eq!(lm.row_stamp(a.id, b"\x04r"), None, "not alone");
    b.end();
    assert!(!lm.row_undisturbed(a.id, b"\x04r", stamp + 1));
    a.end();

    // An upgrade over a stamp taken before someone else's lock came and went is not undisturbed.
    a.row(b"\x04q", RowMode::Increment, LockWait::Block)
        .unwrap();
    let stamp = lm.row_stamp(a.id, b"\x04q").unwrap();
    b.row(b"\x04q", RowMode::Increment, LockWait::Block)
        .unwrap();
    b.end();
    let g = lm
        .upgrade_row(
            &mut a.locks,
            a.id,
            b"\x04q",
            RowMode::IncrementObserve,
            LockWait::Block,
            Some(stamp),
        )
        .unwrap();
    assert_eq!(g, RowGrant::Upgrade);
    a.end();
    assert!(lm.view().is_empty());
}

#[test]
fn a_probe_that_finds_no_row_gives_back_exactly_what_it_took() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    a.table(5, TableMode::RowExclusive, LockWait::Block)
        .unwrap();
    let before = held_by(&lm, 1);
    let probe = lm
        .try_row(&mut a.locks, a.id, b"\x05k", RowMode::Increment)
        .unwrap()
        .expect("the row is free");
    assert_eq!(probe.grant, RowGrant::First);
    assert!(held_by(&lm, 1).contains(&("partition", "IntentExclusiveLock")));
    lm.undo_probe(&mut a.locks, a.id, b"\x05k", probe);
    assert_eq!(
        held_by(&lm, 1),
        before,
        "partition and row given back, table kept"
    );
    assert!(a.locks.rows.is_empty());

    // Refused at the row (another transaction updates it): nothing stays, no wait and no
    // NOWAIT refusal is counted.
    let mut b = T::new(&lm, 2);
    b.row(b"\x05k", RowMode::NoKeyUpdate, LockWait::Block)
        .unwrap();
    let stats = lm.stats();
    let r = lm
        .try_row(&mut a.locks, a.id, b"\x05k", RowMode::Increment)
        .unwrap();
    assert!(r.is_none());
    assert_eq!(held_by(&lm, 1), before);
    assert_eq!(lm.stats(), stats);

    // A probe over a weaker lock the transaction holds gives back only the new mode.
    b.end();
    a.row(b"\x05k", RowMode::KeyShare, LockWait::Block).unwrap();
    let held = held_by(&lm, 1);
    let probe = lm
        .try_row(&mut a.locks, a.id, b"\x05k", RowMode::Increment)
        .unwrap()
        .expect("free");
    assert_eq!(probe.grant, RowGrant::Upgrade);
    lm.undo_probe(&mut a.locks, a.id, b"\x05k", probe);
    assert_eq!(held_by(&lm, 1), held);
    assert_eq!(
        lm.row_holders(b"\x05k"),
        vec![(TxnId(1), RowMode::KeyShare)]
    );
    a.end();
    assert!(lm.view().is_empty());
}

#[test]
fn a_given_back_probe_leaves_the_escalation_counts_as_they_were() {
    let lm = manager();
    lm.configure(LockSettings {
        hash_partitions: 1,
        partition_escalation_rows: 3,
        table_escalation_rows: 0,
        ..LockSettings::default()
    });
    let mut a = T::new(&lm, 1);
    let counts = |a: &T| {
        let mut p: Vec<_> = a.locks.partitions.iter().map(|(k, v)| (*k, *v)).collect();
        p.sort_by_key(|(k, _)| *k);
        let mut t: Vec<_> = a.locks.tables.iter().map(|(k, v)| (*k, *v)).collect();
        t.sort_by_key(|(k, _)| *k);
        (p, t)
    };
    // A first row of a table: the probe's counts go away with it.
    let before = counts(&a);
    let probe = lm
        .try_row(&mut a.locks, a.id, &[9, 0], RowMode::Increment)
        .unwrap()
        .expect("free");
    assert_eq!(probe.grant, RowGrant::First);
    lm.undo_probe(&mut a.locks, a.id, &[9, 0], probe);
    assert_eq!(counts(&a), before);

    // Rows of an escalated partition are covered, and a covered probe counted its row too:
    // given back, it must not count (repeated probes would otherwise escalate the table).
    for i in 0..4u8 {
        a.row(&[9, i], RowMode::Update, LockWait::Block).unwrap();
    }
    assert!(lm
        .view()
        .iter()
        .any(|l| l.locktype == "partition" && l.escalated));
    let before = counts(&a);
    for _ in 0..5 {
        let probe = lm
            .try_row(&mut a.locks, a.id, &[9, 50], RowMode::Increment)
            .unwrap()
            .expect("covered");
        assert_eq!(probe.grant, RowGrant::Covered);
        lm.undo_probe(&mut a.locks, a.id, &[9, 50], probe);
    }
    assert_eq!(counts(&a), before);
    a.end();
    assert!(lm.view().is_empty());
}

#[test]
fn a_waiter_behind_a_given_back_probe_no_longer_waits_for_it_in_the_graph() {
    let lm = manager();
    let mut a = T::new(&lm, 1);
    let mut c = T::new(&lm, 3);
    c.row(b"\x06k", RowMode::Increment, LockWait::Block)
        .unwrap();
    let probe = lm
        .try_row(&mut a.locks, a.id, b"\x06k", RowMode::Increment)
        .unwrap()
        .expect("increments share the row");
    // B's FOR UPDATE waits for both incrementers.
    let (_done, h) = spawn(&lm, 2, |t| {
        t.row(b"\x06k", RowMode::Update, LockWait::Block)
    });
    until_waiting(&lm, 1);
    let blockers = |lm: &LockManager| {
        let mut v: Vec<u64> = lm
            .wait_edges()
            .into_iter()
            .filter(|e| e.waiter == TxnId(2))
            .map(|e| e.blocker.0)
            .collect();
        v.sort();
        v
    };
    assert_eq!(blockers(&lm), vec![1, 3]);
    lm.undo_probe(&mut a.locks, a.id, b"\x06k", probe);
    assert_eq!(
        blockers(&lm),
        vec![3],
        "the edge to the prober is gone with its lock"
    );
    // So the prober may now wait for B without a false deadlock.
    let h2 = thread::spawn(move || {
        let r = a.row(b"\x06k", RowMode::KeyShare, LockWait::Block);
        (r, a)
    });
    until_waiting(&lm, 2);
    c.end();
    let (r, mut b) = h.join().unwrap();
    r.unwrap();
    b.end();
    let (r, mut a) = h2.join().unwrap();
    r.unwrap();
    a.end();
    assert!(lm.view().is_empty());
}

#[test]
fn a_released_table_lock_blocks_nobody_and_kept_entries_stay_bounded() {
    let lm = manager();
    // Readers come and go on table 7: each release leaves its (reused) entry empty.
    for id in 1..=5 {
        let mut r = T::new(&lm, id);
        r.table(7, TableMode::AccessShare, LockWait::Block).unwrap();
        r.end();
    }
    let mut ddl = T::new(&lm, 6);
    assert_eq!(
        ddl.table(7, TableMode::AccessExclusive, LockWait::NoWait)
            .unwrap(),
        Acquired::New
    );
    assert_eq!(lm.object_holders(ObjectTag::Relation(RelId(7))).len(), 1);
    assert_eq!(lm.view().len(), 1, "only the DDL's lock is shown");
    ddl.end();
    assert!(lm.view().is_empty());
    assert!(lm.object_holders(ObjectTag::Relation(RelId(7))).is_empty());

    // Many tables: empty entries are kept only up to the bound per shard.
    let mut t = T::new(&lm, 8);
    for rel in 0..20_000 {
        t.table(rel, TableMode::AccessShare, LockWait::Block)
            .unwrap();
    }
    t.end();
    assert!(lm.view().is_empty());
    assert!(lm.objects.entries() <= SHARDS * KEPT_OBJECT_ENTRIES);
    // Row entries are never kept.
    let mut w = T::new(&lm, 9);
    w.row(&[7, 1], RowMode::Update, LockWait::Block).unwrap();
    w.end();
    assert_eq!(lm.rows.entries(), 0);
}
