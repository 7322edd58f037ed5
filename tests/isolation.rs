//! The classic isolation anomalies (Adya's G0, G1a, G1b, G1c, OTV, PMP, P4, G-single, G2-item,
//! G2), run over the wire with concurrent sessions at READ COMMITTED, REPEATABLE READ and
//! SERIALIZABLE. The schedules are Hermitage's (github.com/ept/hermitage, postgres.md), step
//! by step; each test asserts what PostgreSQL 15 does at each level: which rows each session
//! sees, which step blocks, which step fails with 40001, and the final state.
//!
//! The suite runs against the real `gnomon` binary. With `GNOMON_ISOLATION_TARGET` set to a
//! libpq connection string it runs against that server instead: that is how the expected
//! outcomes were checked against a throwaway PostgreSQL 15 cluster.
//!
//! Blocking is tested without timing: a blocked step is spawned, the other session runs its
//! next step to completion, the blocked step must still be pending, and it must complete once
//! the other session commits.

mod common;

use std::sync::Arc;

use common::{sqlstate, Server};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Where the sessions connect: a fresh gnomon, or the server named by the environment.
struct Target {
    _gnomon: Option<(tempfile::TempDir, Server)>,
    conn_str: String,
}

fn target() -> Target {
    match std::env::var("GNOMON_ISOLATION_TARGET") {
        Ok(conn_str) => Target {
            _gnomon: None,
            conn_str,
        },
        Err(_) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let server = Server::start(dir.path());
            let conn_str = server.conn_str();
            Target {
                _gnomon: Some((dir, server)),
                conn_str,
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

use Level::{ReadCommitted as RC, RepeatableRead as RR, Serializable as SER};

const LEVELS: [Level; 3] = [RC, RR, SER];

impl Level {
    fn sql(self) -> &'static str {
        match self {
            RC => "read committed",
            RR => "repeatable read",
            SER => "serializable",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            RC => "rc",
            RR => "rr",
            SER => "ser",
        }
    }
}

/// A failed statement: SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: String,
    message: String,
}

type Rows = Vec<(i32, i32)>;
type StepResult = Result<Rows, Failure>;

const CONCURRENT_UPDATE: &str = "could not serialize access due to concurrent update";
const RW_DEPENDENCIES: &str =
    "could not serialize access due to read/write dependencies among transactions";

/// One session, its statements written against table `{t}`.
#[derive(Clone)]
struct Session {
    client: Arc<Client>,
    table: String,
}

impl Session {
    /// Runs one statement; rows are `(id, value)` pairs.
    async fn step(&self, sql: &str) -> StepResult {
        run(&self.client, &sql.replace("{t}", &self.table)).await
    }

    /// Runs a statement that must succeed.
    async fn ok(&self, sql: &str) -> Rows {
        match self.step(sql).await {
            Ok(rows) => rows,
            Err(f) => panic!("{} {sql}: {f:?}", self.table),
        }
    }

    /// Runs a statement that must fail with 40001 and `message`.
    async fn fails(&self, sql: &str, message: &str) {
        let r = self.step(sql).await;
        assert_serialization_failure(&self.table, sql, r, message);
    }

    /// Starts a statement that is expected to block.
    fn spawn(&self, sql: &str) -> JoinHandle<StepResult> {
        let me = self.clone();
        let sql = sql.to_string();
        tokio::spawn(async move { me.step(&sql).await })
    }
}

fn assert_serialization_failure(table: &str, sql: &str, r: StepResult, message: &str) {
    match r {
        Err(f) if f.code == "40001" && f.message == message => {}
        other => panic!("{table} {sql}: expected 40001 {message:?}, got {other:?}"),
    }
}

async fn run(client: &Client, sql: &str) -> StepResult {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some((
                    row.get(0).and_then(|v| v.parse().ok()).unwrap_or(-1),
                    row.get(1).and_then(|v| v.parse().ok()).unwrap_or(-1),
                )),
                _ => None,
            })
            .collect()),
        Err(e) => Err(Failure {
            code: sqlstate(&e),
            message: e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string()),
        }),
    }
}

async fn connect(target: &Target) -> Arc<Client> {
    let (client, connection) = tokio_postgres::connect(&target.conn_str, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Arc::new(client)
}

/// A fresh `test` table for one anomaly at one level (Hermitage's setup), and `n` sessions
/// each inside `BEGIN` at `level`, plus a session outside any transaction for checks.
async fn setup(target: &Target, anomaly: &str, level: Level, n: usize) -> (Vec<Session>, Session) {
    let table = format!("iso_{anomaly}_{}", level.tag());
    let observer = Session {
        client: connect(target).await,
        table: table.clone(),
    };
    observer.ok("DROP TABLE IF EXISTS {t}").await;
    observer
        .ok("CREATE TABLE {t} (id int PRIMARY KEY, value int)")
        .await;
    observer
        .ok("INSERT INTO {t} (id, value) VALUES (1, 10), (2, 20)")
        .await;
    let mut sessions = Vec::new();
    for _ in 0..n {
        let s = Session {
            client: connect(target).await,
            table: table.clone(),
        };
        s.ok(&format!(
            "BEGIN; SET TRANSACTION ISOLATION LEVEL {}",
            level.sql()
        ))
        .await;
        sessions.push(s);
    }
    (sessions, observer)
}

const ALL: &str = "SELECT id, value FROM {t} ORDER BY id";

/// Waits until some session waits for a lock, as PostgreSQL's isolation tester does: by
/// polling `pg_locks` for an ungranted lock. Where there is no `pg_locks` (42P01), it pauses
/// briefly instead so the spawned statement reaches the server; no assertion depends on the
/// pause (if the statement arrived late, the schedule's expected rows would not match, which
/// is a failure to investigate, not a slow machine to tolerate silently).
async fn wait_until_blocked(observer: &Session) {
    for _ in 0..6000 {
        match run(
            &observer.client,
            "SELECT count(*), 0 FROM pg_locks WHERE NOT granted",
        )
        .await
        {
            Ok(rows) if rows.first().is_some_and(|r| r.0 >= 1) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(f) if f.code == "42P01" => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                return;
            }
            Err(f) => panic!("pg_locks: {f:?}"),
        }
    }
    panic!("no session ever waited for a lock");
}

/// Awaits a step spawned earlier.
async fn finish(h: JoinHandle<StepResult>) -> StepResult {
    h.await.expect("step task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g0_write_cycles_are_prevented_at_every_level() {
    let target = target();
    for level in LEVELS {
        let (s, observer) = setup(&target, "g0", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
        let blocked = t2.spawn("UPDATE {t} SET value = 12 WHERE id = 1");
        wait_until_blocked(&observer).await;
        t1.ok("UPDATE {t} SET value = 21 WHERE id = 2").await;
        assert!(!blocked.is_finished(), "{level:?}: T2 waits for T1's row");
        t1.ok("COMMIT").await;
        let r = finish(blocked).await;
        assert_eq!(t1.ok(ALL).await, vec![(1, 11), (2, 21)], "{level:?}");
        if level == RC {
            r.expect("T2 goes on with the newest version");
            t2.ok("UPDATE {t} SET value = 22 WHERE id = 2").await;
            t2.ok("COMMIT").await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 12), (2, 22)]);
        } else {
            assert_serialization_failure("g0", "T2 update", r, CONCURRENT_UPDATE);
            t2.ok("ROLLBACK").await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 11), (2, 21)]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1a_aborted_reads_are_prevented_at_every_level() {
    let target = target();
    for level in LEVELS {
        let (s, observer) = setup(&target, "g1a", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        t1.ok("UPDATE {t} SET value = 101 WHERE id = 1").await;
        assert_eq!(t2.ok(ALL).await, vec![(1, 10), (2, 20)], "{level:?}");
        t1.ok("ROLLBACK").await;
        assert_eq!(t2.ok(ALL).await, vec![(1, 10), (2, 20)], "{level:?}");
        t2.ok("COMMIT").await;
        assert_eq!(observer.ok(ALL).await, vec![(1, 10), (2, 20)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1b_intermediate_reads_are_prevented_at_every_level() {
    let target = target();
    for level in LEVELS {
        let (s, _) = setup(&target, "g1b", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        t1.ok("UPDATE {t} SET value = 101 WHERE id = 1").await;
        assert_eq!(t2.ok(ALL).await, vec![(1, 10), (2, 20)], "{level:?}");
        t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
        t1.ok("COMMIT").await;
        // Never 101; READ COMMITTED sees the final value, the snapshot levels still the old.
        let expected = if level == RC { 11 } else { 10 };
        assert_eq!(t2.ok(ALL).await, vec![(1, expected), (2, 20)], "{level:?}");
        t2.ok("COMMIT").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1c_circular_information_flow_is_prevented_at_every_level() {
    let target = target();
    for level in LEVELS {
        let (s, observer) = setup(&target, "g1c", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
        t2.ok("UPDATE {t} SET value = 22 WHERE id = 2").await;
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE id = 2").await,
            vec![(2, 20)],
            "{level:?}"
        );
        assert_eq!(
            t2.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 10)],
            "{level:?}"
        );
        t1.ok("COMMIT").await;
        if level == SER {
            // Each read the other's row before its write: an rw cycle, which SERIALIZABLE
            // breaks at the second commit.
            t2.fails("COMMIT", RW_DEPENDENCIES).await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 11), (2, 20)]);
        } else {
            t2.ok("COMMIT").await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 11), (2, 22)]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otv_observed_transaction_vanishes_is_prevented_at_every_level() {
    let target = target();
    for level in LEVELS {
        let (s, observer) = setup(&target, "otv", level, 3).await;
        let (t1, t2, t3) = (&s[0], &s[1], &s[2]);
        t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
        t1.ok("UPDATE {t} SET value = 19 WHERE id = 2").await;
        let blocked = t2.spawn("UPDATE {t} SET value = 12 WHERE id = 1");
        wait_until_blocked(&observer).await;
        // Another session proceeds while T2 waits.
        assert_eq!(
            observer.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 10)]
        );
        assert!(!blocked.is_finished(), "{level:?}: T2 waits for T1's row");
        t1.ok("COMMIT").await;
        let r = finish(blocked).await;
        // T3's first statement comes after T1's commit: it sees T1 at every level.
        assert_eq!(
            t3.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 11)],
            "{level:?}"
        );
        if level == RC {
            r.expect("T2 goes on after T1 commits");
            t2.ok("UPDATE {t} SET value = 18 WHERE id = 2").await;
            assert_eq!(
                t3.ok("SELECT id, value FROM {t} WHERE id = 2").await,
                vec![(2, 19)]
            );
            t2.ok("COMMIT").await;
            // Once T3 saw T1's writes it never loses them: it now sees T2's over them.
            assert_eq!(
                t3.ok("SELECT id, value FROM {t} WHERE id = 2").await,
                vec![(2, 18)]
            );
            assert_eq!(
                t3.ok("SELECT id, value FROM {t} WHERE id = 1").await,
                vec![(1, 12)]
            );
        } else {
            assert_serialization_failure("otv", "T2 update", r, CONCURRENT_UPDATE);
            t2.ok("ROLLBACK").await;
            assert_eq!(
                t3.ok("SELECT id, value FROM {t} WHERE id = 2").await,
                vec![(2, 19)],
                "{level:?}"
            );
            assert_eq!(
                t3.ok("SELECT id, value FROM {t} WHERE id = 1").await,
                vec![(1, 11)],
                "{level:?}"
            );
        }
        t3.ok("COMMIT").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmp_predicate_many_preceders_is_prevented_from_repeatable_read() {
    let target = target();
    for level in LEVELS {
        // Read predicate.
        let (s, _) = setup(&target, "pmp", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        assert!(t1
            .ok("SELECT id, value FROM {t} WHERE value = 30")
            .await
            .is_empty());
        t2.ok("INSERT INTO {t} (id, value) VALUES (3, 30)").await;
        t2.ok("COMMIT").await;
        let seen = t1
            .ok("SELECT id, value FROM {t} WHERE value % 3 = 0 ORDER BY id")
            .await;
        if level == RC {
            assert_eq!(seen, vec![(3, 30)]);
        } else {
            assert!(seen.is_empty(), "{level:?}: {seen:?}");
        }
        t1.ok("COMMIT").await;

        // Write predicate (the PostgreSQL documentation's example).
        let (s, observer) = setup(&target, "pmpw", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        t1.ok("UPDATE {t} SET value = value + 10").await;
        let blocked = t2.spawn("DELETE FROM {t} WHERE value = 20");
        wait_until_blocked(&observer).await;
        assert_eq!(
            t1.ok(ALL).await,
            vec![(1, 20), (2, 30)],
            "{level:?}: T1 sees its own writes"
        );
        assert!(!blocked.is_finished(), "{level:?}: T2 waits for T1's row");
        t1.ok("COMMIT").await;
        let r = finish(blocked).await;
        if level == RC {
            r.expect("T2's delete re-checks the updated row and skips it");
            assert_eq!(
                t2.ok("SELECT id, value FROM {t} WHERE value = 20").await,
                vec![(1, 20)]
            );
            t2.ok("COMMIT").await;
        } else {
            assert_serialization_failure("pmpw", "T2 delete", r, CONCURRENT_UPDATE);
            t2.ok("ROLLBACK").await;
        }
        assert_eq!(observer.ok(ALL).await, vec![(1, 20), (2, 30)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_lost_update_is_prevented_from_repeatable_read() {
    let target = target();
    for level in LEVELS {
        let (s, observer) = setup(&target, "p4", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 10)]
        );
        assert_eq!(
            t2.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 10)]
        );
        t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
        let blocked = t2.spawn("UPDATE {t} SET value = 11 WHERE id = 1");
        wait_until_blocked(&observer).await;
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 11)]
        );
        assert!(!blocked.is_finished(), "{level:?}: T2 waits for T1's row");
        t1.ok("COMMIT").await;
        let r = finish(blocked).await;
        if level == RC {
            // T1's update is overwritten: the lost update READ COMMITTED allows.
            r.expect("T2 goes on");
            t2.ok("COMMIT").await;
        } else {
            assert_serialization_failure("p4", "T2 update", r, CONCURRENT_UPDATE);
            t2.ok("ROLLBACK").await;
        }
        assert_eq!(observer.ok(ALL).await, vec![(1, 11), (2, 20)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_single_read_skew_is_prevented_from_repeatable_read() {
    let target = target();
    for level in LEVELS {
        let (s, _) = setup(&target, "gs", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 10)]
        );
        t2.ok("SELECT id, value FROM {t} WHERE id = 1").await;
        t2.ok("SELECT id, value FROM {t} WHERE id = 2").await;
        t2.ok("UPDATE {t} SET value = 12 WHERE id = 1").await;
        t2.ok("UPDATE {t} SET value = 18 WHERE id = 2").await;
        t2.ok("COMMIT").await;
        let expected = if level == RC { 18 } else { 20 };
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE id = 2").await,
            vec![(2, expected)],
            "{level:?}"
        );
        t1.ok("COMMIT").await;

        // With predicate dependencies.
        let (s, _) = setup(&target, "gsp", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE value % 5 = 0 ORDER BY id")
                .await,
            vec![(1, 10), (2, 20)]
        );
        t2.ok("UPDATE {t} SET value = 12 WHERE value = 10").await;
        t2.ok("COMMIT").await;
        let seen = t1
            .ok("SELECT id, value FROM {t} WHERE value % 3 = 0 ORDER BY id")
            .await;
        if level == RC {
            assert_eq!(seen, vec![(1, 12)]);
        } else {
            assert!(seen.is_empty(), "{level:?}: {seen:?}");
        }
        t1.ok("COMMIT").await;

        // With a write predicate.
        let (s, observer) = setup(&target, "gsw", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        assert_eq!(
            t1.ok("SELECT id, value FROM {t} WHERE id = 1").await,
            vec![(1, 10)]
        );
        t2.ok(ALL).await;
        t2.ok("UPDATE {t} SET value = 12 WHERE id = 1").await;
        t2.ok("UPDATE {t} SET value = 18 WHERE id = 2").await;
        t2.ok("COMMIT").await;
        if level == RC {
            // A fresh statement snapshot: no row has value 20 any more.
            assert!(t1.ok("DELETE FROM {t} WHERE value = 20").await.is_empty());
            t1.ok("COMMIT").await;
        } else {
            t1.fails("DELETE FROM {t} WHERE value = 20", CONCURRENT_UPDATE)
                .await;
            t1.ok("ROLLBACK").await;
        }
        assert_eq!(observer.ok(ALL).await, vec![(1, 12), (2, 18)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_item_write_skew_is_prevented_at_serializable() {
    let target = target();
    for level in LEVELS {
        let (s, observer) = setup(&target, "g2i", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        let both = "SELECT id, value FROM {t} WHERE id IN (1, 2) ORDER BY id";
        assert_eq!(t1.ok(both).await, vec![(1, 10), (2, 20)]);
        assert_eq!(t2.ok(both).await, vec![(1, 10), (2, 20)]);
        t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
        t2.ok("UPDATE {t} SET value = 21 WHERE id = 2").await;
        t1.ok("COMMIT").await;
        if level == SER {
            t2.fails("COMMIT", RW_DEPENDENCIES).await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 11), (2, 20)]);
        } else {
            t2.ok("COMMIT").await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 11), (2, 21)]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_anti_dependency_cycles_are_prevented_at_serializable() {
    let target = target();
    for level in LEVELS {
        // Predicate reads, inserts into each other's predicate.
        let (s, observer) = setup(&target, "g2", level, 2).await;
        let (t1, t2) = (&s[0], &s[1]);
        let threes = "SELECT id, value FROM {t} WHERE value % 3 = 0 ORDER BY id";
        assert!(t1.ok(threes).await.is_empty());
        assert!(t2.ok(threes).await.is_empty());
        t1.ok("INSERT INTO {t} (id, value) VALUES (3, 30)").await;
        t2.ok("INSERT INTO {t} (id, value) VALUES (4, 42)").await;
        t1.ok("COMMIT").await;
        if level == SER {
            t2.fails("COMMIT", RW_DEPENDENCIES).await;
            assert_eq!(observer.ok(threes).await, vec![(3, 30)]);
        } else {
            t2.ok("COMMIT").await;
            assert_eq!(observer.ok(threes).await, vec![(3, 30), (4, 42)]);
        }

        // Fekete et al.'s example with two anti-dependency edges and a read-only transaction.
        let table = format!("iso_g2f_{}", level.tag());
        let (s, observer) = setup(&target, "g2f", level, 1).await;
        let t1 = &s[0];
        assert_eq!(t1.ok(ALL).await, vec![(1, 10), (2, 20)]);
        let begin = format!("BEGIN; SET TRANSACTION ISOLATION LEVEL {}", level.sql());
        let t2 = Session {
            client: connect(&target).await,
            table: table.clone(),
        };
        t2.ok(&begin).await;
        t2.ok("UPDATE {t} SET value = value + 5 WHERE id = 2").await;
        t2.ok("COMMIT").await;
        let t3 = Session {
            client: connect(&target).await,
            table,
        };
        t3.ok(&begin).await;
        assert_eq!(t3.ok(ALL).await, vec![(1, 10), (2, 25)]);
        t3.ok("COMMIT").await;
        if level == SER {
            t1.fails("UPDATE {t} SET value = 0 WHERE id = 1", RW_DEPENDENCIES)
                .await;
            t1.ok("ROLLBACK").await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 10), (2, 25)]);
        } else {
            t1.ok("UPDATE {t} SET value = 0 WHERE id = 1").await;
            t1.ok("COMMIT").await;
            assert_eq!(observer.ok(ALL).await, vec![(1, 0), (2, 25)]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_carry_postgres_detail_and_hint() {
    let target = target();
    let (s, _) = setup(&target, "hint", SER, 2).await;
    let (t1, t2) = (&s[0], &s[1]);
    t1.ok("SELECT id, value FROM {t} WHERE id = 2").await;
    t2.ok("SELECT id, value FROM {t} WHERE id = 1").await;
    t1.ok("UPDATE {t} SET value = 11 WHERE id = 1").await;
    t2.ok("UPDATE {t} SET value = 22 WHERE id = 2").await;
    t1.ok("COMMIT").await;
    let err = t2
        .client
        .simple_query("COMMIT")
        .await
        .expect_err("the second commit fails");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "40001");
    assert_eq!(db.message(), RW_DEPENDENCIES);
    assert!(
        db.detail().is_some_and(|d| d.starts_with("Reason code: ")),
        "{:?}",
        db.detail()
    );
    assert_eq!(db.hint(), Some("The transaction might succeed if retried."));
    // The session is usable afterwards, outside any transaction.
    assert_eq!(t2.ok(ALL).await, vec![(1, 11), (2, 20)]);
}
