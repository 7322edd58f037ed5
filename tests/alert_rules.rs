//! ops/prometheus/alerts.yml parses as a Prometheus rule file, has the four alerts operators
//! rely on, and names only metrics the real server exports at /metrics.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use common::Server;

const RULES: &str = include_str!("../ops/prometheus/alerts.yml");

/// Every `gnomon_...` identifier in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(pos) = rest.find("gnomon_") {
        let ident: String = rest[pos..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[pos + ident.len()..];
        names.insert(ident);
    }
    names
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

#[test]
fn alert_rules_parse_and_use_exported_metrics() {
    let doc: serde_yaml::Value = serde_yaml::from_str(RULES).expect("alerts.yml is YAML");
    let groups = doc["groups"].as_sequence().expect("groups: a list");
    let mut alerts = BTreeSet::new();
    let mut used = BTreeSet::new();
    for group in groups {
        assert!(group["name"].as_str().is_some(), "every group has a name");
        for rule in group["rules"].as_sequence().expect("rules: a list") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(rule["for"].as_str().is_some(), "{name}: for");
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{name}: severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: summary"
            );
            // Balanced brackets: a cheap syntax check where promtool is not available.
            for (open, close) in [('(', ')'), ('[', ']'), ('{', '}')] {
                assert_eq!(
                    expr.matches(open).count(),
                    expr.matches(close).count(),
                    "{name}: unbalanced {open}{close} in {expr}"
                );
            }
            used.extend(metric_names(expr));
            alerts.insert(name.to_string());
        }
    }
    for wanted in [
        "GnomonStatementLatencyP99High",
        "GnomonErrorRateHigh",
        "GnomonClockSkewHigh",
        "GnomonTransactionFailureRateHigh",
    ] {
        assert!(alerts.contains(wanted), "{wanted} missing");
    }

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let text = scrape(server.http_port.expect("admin listener"));
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    // NB: counters with labels appear once a label value was counted; their family is
    // announced by `# TYPE` from the start.
    let announced: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    for name in &used {
        assert!(
            exported.contains(name) || announced.contains(name),
            "alerts.yml uses {name}, which /metrics does not export"
        );
    }

    // promtool, where installed, checks the PromQL itself.
    if let Some(promtool) = common::find_tool("promtool") {
        let out = std::process::Command::new(promtool)
            .args([
                "check",
                "rules",
                concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus/alerts.yml"),
            ])
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
