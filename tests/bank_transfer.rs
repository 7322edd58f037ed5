//! Bank transfers over the wire: concurrent sessions move money between accounts at
//! REPEATABLE READ and at SERIALIZABLE, retrying serialization failures (40001) and deadlocks
//! (40P01), while reader sessions check inside each of their snapshots that the total never
//! changes. At the end the total is unchanged, every committed transfer is in the journal, and
//! each balance is its opening balance plus the journal's movements (no lost update).

mod common;

use std::sync::Arc;

use common::{sqlstate, Server};
use tokio::sync::watch;
use tokio_postgres::{Client, SimpleQueryMessage};

const ACCOUNTS: i64 = 10;
const OPENING: i64 = 1000;
const WRITERS: i64 = 4;
const TRANSFERS_PER_WRITER: i64 = 25;
const READERS: usize = 2;

/// Values of the first column of every row (NULL as 0).
fn first_column(messages: &[SimpleQueryMessage]) -> Vec<i64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).and_then(|v| v.parse().ok()).unwrap_or(0)),
            _ => None,
        })
        .collect()
}

/// A tiny deterministic generator (xorshift), so each writer has its own reproducible pairs.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

async fn connect(server: &Server) -> Arc<Client> {
    Arc::new(server.connect().await)
}

/// One transfer of `amount` from `from` to `to`, journaled as (writer, seq). Returns the
/// SQLSTATE of a failure, after rolling back.
async fn transfer(
    c: &Client,
    level: &str,
    writer: i64,
    seq: i64,
    from: i64,
    to: i64,
    amount: i64,
) -> Result<(), String> {
    let steps = [
        format!("BEGIN ISOLATION LEVEL {level}"),
        format!("SELECT balance FROM accounts WHERE id = {from}"),
        format!("SELECT balance FROM accounts WHERE id = {to}"),
        format!("UPDATE accounts SET balance = balance - {amount} WHERE id = {from}"),
        format!("UPDATE accounts SET balance = balance + {amount} WHERE id = {to}"),
        format!(
            "INSERT INTO journal (writer, seq, src, dst, amount) \
             VALUES ({writer}, {seq}, {from}, {to}, {amount})"
        ),
        "COMMIT".to_string(),
    ];
    for step in &steps {
        if let Err(e) = c.simple_query(step).await {
            let state = sqlstate(&e);
            // After a failed COMMIT the transaction is already gone; ROLLBACK then only warns.
            c.simple_query("ROLLBACK")
                .await
                .map_err(|e| e.to_string())?;
            return Err(state);
        }
    }
    Ok(())
}

/// Reads the total twice in one transaction (an aggregate, then row by row) and returns both.
async fn audit(c: &Client, level: &str) -> Result<(i64, i64), String> {
    let run = async {
        c.simple_query(&format!("BEGIN ISOLATION LEVEL {level} READ ONLY"))
            .await?;
        let sum = first_column(&c.simple_query("SELECT sum(balance) FROM accounts").await?);
        let rows = first_column(&c.simple_query("SELECT balance FROM accounts").await?);
        c.simple_query("COMMIT").await?;
        Ok::<_, tokio_postgres::Error>((sum.first().copied().unwrap_or(-1), rows.iter().sum()))
    };
    match run.await {
        Ok(totals) => Ok(totals),
        Err(e) => {
            let state = sqlstate(&e);
            c.simple_query("ROLLBACK")
                .await
                .map_err(|e| e.to_string())?;
            Err(state)
        }
    }
}

async fn run_bank(level: &'static str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let admin = connect(&server).await;
    admin
        .simple_query(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL); \
             CREATE TABLE journal (writer int, seq int, src int, dst int, amount bigint, \
                                   PRIMARY KEY (writer, seq))",
        )
        .await
        .expect("create tables");
    let values: Vec<String> = (0..ACCOUNTS).map(|i| format!("({i}, {OPENING})")).collect();
    admin
        .simple_query(&format!(
            "INSERT INTO accounts VALUES {}",
            values.join(", ")
        ))
        .await
        .expect("open accounts");
    let total = ACCOUNTS * OPENING;

    let (done_tx, done_rx) = watch::channel(false);
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let c = connect(&server).await;
        let mut done = done_rx.clone();
        readers.push(tokio::spawn(async move {
            let (mut audits, mut retried) = (0u64, 0u64);
            loop {
                let finished = *done.borrow_and_update();
                match audit(&c, level).await {
                    Ok((sum, rows)) => {
                        assert_eq!(
                            (sum, rows),
                            (total, total),
                            "{level}: a snapshot saw money move"
                        );
                        audits += 1;
                    }
                    Err(state) if state == "40001" => retried += 1,
                    Err(state) => panic!("{level}: audit failed with {state}"),
                }
                // One more audit after the writers finished, then stop.
                if finished {
                    return (audits, retried);
                }
            }
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let c = connect(&server).await;
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
            let mut retries = 0u64;
            for seq in 0..TRANSFERS_PER_WRITER {
                let from = rng.below(ACCOUNTS);
                let to = (from + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
                let amount = 1 + rng.below(50);
                loop {
                    match transfer(&c, level, w, seq, from, to, amount).await {
                        Ok(()) => break,
                        Err(state) if state == "40001" || state == "40P01" => retries += 1,
                        Err(state) => panic!("{level}: transfer failed with {state}"),
                    }
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for w in writers {
        retries += w.await.expect("writer");
    }
    done_tx.send(true).expect("readers listen");
    let (mut audits, mut audit_retries) = (0, 0);
    for r in readers {
        let (n, retried) = r.await.expect("reader");
        audit_retries += retried;
        assert!(n >= 1, "{level}: a reader completed no audit");
        audits += n;
    }

    let balances = admin
        .simple_query("SELECT id, balance FROM accounts ORDER BY id")
        .await
        .expect("balances");
    let balances: Vec<(i64, i64)> = balances
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).and_then(|v| v.parse().ok()).unwrap_or(-1),
                r.get(1).and_then(|v| v.parse().ok()).unwrap_or(-1),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(balances.len() as i64, ACCOUNTS);
    assert_eq!(balances.iter().map(|b| b.1).sum::<i64>(), total, "{level}");
    let journal = admin
        .simple_query("SELECT src, dst, amount FROM journal")
        .await
        .expect("journal");
    let mut expected = vec![OPENING; ACCOUNTS as usize];
    let mut entries = 0;
    for m in &journal {
        if let SimpleQueryMessage::Row(r) = m {
            let col = |i| {
                r.get(i)
                    .and_then(|v: &str| v.parse::<i64>().ok())
                    .unwrap_or(-1)
            };
            expected[col(0) as usize] -= col(2);
            expected[col(1) as usize] += col(2);
            entries += 1;
        }
    }
    assert_eq!(entries, WRITERS * TRANSFERS_PER_WRITER, "{level}: journal");
    let actual: Vec<i64> = balances.iter().map(|b| b.1).collect();
    assert_eq!(actual, expected, "{level}: balances match the journal");
    eprintln!("{level}: {audits} audits ({audit_retries} retried), {retries} transfer retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_keep_the_total_at_repeatable_read() {
    run_bank("REPEATABLE READ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_keep_the_total_at_serializable() {
    run_bank("SERIALIZABLE").await;
}
