//! pgbench, unmodified, against the real server: initialisation in both data-generation modes,
//! the built-in scripts in every query mode, and TPC-B's balance invariant afterwards.

mod common;

use common::{pgbench, Server};

#[tokio::test(flavor = "multi_thread")]
async fn pgbench_initialises_and_runs_every_builtin_script_in_every_mode() {
    let Some(bin) = common::find_pg_tool("pgbench") else {
        if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
            panic!("pgbench is required in CI but was not found");
        }
        eprintln!("SKIPPED: pgbench not found on PATH nor in /usr/lib/postgresql/15/bin");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // Server-side generation (INSERT ... SELECT generate_series), then the default client-side
    // COPY path with VACUUM and ALTER TABLE ... ADD PRIMARY KEY.
    pgbench(&bin, &server, &["-i", "-I", "dtGvp", "-s", "1", "-q"]);
    pgbench(&bin, &server, &["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        for script in [&[][..], &["-N"][..], &["-S"][..]] {
            let mut args = vec![
                "-M",
                mode,
                "-c",
                "4",
                "-j",
                "2",
                "-t",
                "50",
                "--max-tries=5",
            ];
            args.extend_from_slice(script);
            let out = pgbench(&bin, &server, &args);
            assert!(
                out.contains("number of transactions actually processed: 200/200"),
                "{mode} {script:?}:\n{out}"
            );
        }
    }
    // TPC-B's invariant: one final run without the pre-run vacuum (which truncates the
    // history); every table's total must move by the same amount as the history's.
    let client = server.connect().await;
    let totals = || async {
        let mut out = Vec::new();
        for sql in [
            "select sum(abalance) from pgbench_accounts",
            "select sum(bbalance) from pgbench_branches",
            "select sum(tbalance) from pgbench_tellers",
            "select sum(delta) from pgbench_history",
            "select count(*) from pgbench_history",
        ] {
            let row = client.query_one(sql, &[]).await.expect(sql);
            out.push(row.get::<_, Option<i64>>(0).unwrap_or(0));
        }
        out
    };
    let before = totals().await;
    pgbench(
        &bin,
        &server,
        &["-M", "prepared", "-n", "-c", "4", "-j", "2", "-t", "50"],
    );
    let after = totals().await;
    let moved: Vec<i64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(moved[4], 200, "one history row per transaction");
    assert_eq!(
        (moved[0], moved[1], moved[2]),
        (moved[3], moved[3], moved[3]),
        "accounts, branches and tellers move with the history: {before:?} -> {after:?}"
    );
}
