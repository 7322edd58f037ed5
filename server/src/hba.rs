//! Access rules: which client may log in how, in the manner of PostgreSQL's `pg_hba.conf`.
//!
//! The rules come from `[[hba]]` entries of the config file, checked in order; the first
//! entry matching the connection (encrypted or not, client address, database, user) decides
//! its method, and a connection no entry matches is refused:
//!
//! ```toml
//! [[hba]]
//! type = "hostssl"          # host (any TCP), hostssl (TLS only), hostnossl (plain only),
//!                           # local (the Unix socket; takes no address)
//! database = "all"          # all, sameuser, or a comma-separated list of names
//! user = "all"              # all, or a comma-separated list of role names
//! address = "10.0.0.0/8"    # all, an IP address, or CIDR (IPv4 or IPv6)
//! method = "scram-sha-256"  # trust, scram-sha-256 (also: password, md5), reject
//! ```
//!
//! Invariants:
//! 1. Without `[[hba]]` entries the rules are the built-in ones: trust on the Unix socket and
//!    from 127.0.0.0/8 and ::1, SCRAM-SHA-256 from everywhere else (see [`AccessRules::new`]).
//!    A Unix socket client matches `local` entries only, a TCP client `host*` entries only.
//! 2. `trust` is refused at start unless the entry is `local` or its address lies inside
//!    127.0.0.0/8 or is ::1: trust is never reachable from the network. And trust in Gnomon never skips a
//!    password that exists: a role with a password, or any role while the bootstrap superuser
//!    `gnomon` has a password, authenticates with SCRAM-SHA-256 under `trust` too (`auth.rs`).
//! 3. With `tls_required_for_remote`, a client on a non-loopback address without TLS is
//!    refused before any entry is consulted (FATAL 28000, "no pg_hba.conf entry ...").
//! 4. `hostssl` entries and `tls_required_for_remote` need TLS configured (`tls_cert`,
//!    `tls_key`), else the server refuses to start, as PostgreSQL refuses a `hostssl` line
//!    with `ssl = off`.
//!
//! Not supported (refused at start with a clear message): the `peer` and `ident` methods,
//! `samehost`/`samenet`, host names, `+group` and `@file` names.

use std::net::IpAddr;

use serde::Deserialize;

use crate::error::ServerError;
use crate::socket::Origin;

/// One `[[hba]]` entry as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbaEntry {
    /// `host`, `hostssl`, `hostnossl` or `local`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `all`, `sameuser`, or comma-separated database names.
    pub database: String,
    /// `all`, or comma-separated role names.
    pub user: String,
    /// `all`, an IP address, or `ADDRESS/PREFIX`; empty (absent) for `local`.
    #[serde(default)]
    pub address: String,
    /// `trust`, `scram-sha-256` (`password` and `md5` are taken as it), or `reject`.
    pub method: String,
}

/// How a matching client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// No password, while no password exists (invariant 2).
    Trust,
    /// A SCRAM-SHA-256 exchange.
    Scram,
    /// Refused: FATAL 28000 "pg_hba.conf rejects connection ...".
    Reject,
}

/// What the rules say about one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The first matching rule's method.
    Method(Method),
    /// No rule matches (or TLS is required and missing): FATAL 28000 "no pg_hba.conf entry".
    NoEntry,
}

/// Which connections a rule's type matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnType {
    Local,
    Host,
    HostSsl,
    HostNoSsl,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    All,
    SameUser,
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Address {
    All,
    Net { network: IpAddr, prefix: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    conn: ConnType,
    databases: Names,
    users: Names,
    address: Address,
    method: Method,
}

/// The compiled access rules of a running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRules {
    rules: Vec<Rule>,
    tls_required_for_remote: bool,
}

impl AccessRules {
    /// Compiles `entries` (none: the built-in rules of invariant 1). `tls` says whether TLS is
    /// configured; `tls_required_for_remote` adds invariant 3.
    pub fn new(
        entries: &[HbaEntry],
        tls_required_for_remote: bool,
        tls: bool,
    ) -> Result<AccessRules, ServerError> {
        if tls_required_for_remote && !tls {
            return Err(ServerError::Usage(
                "tls_required_for_remote needs TLS: set tls_cert and tls_key \
                 (--tls-cert FILE --tls-key FILE)"
                    .to_string(),
            ));
        }
        let rules = if entries.is_empty() {
            let loopback = |network: IpAddr, prefix| Rule {
                conn: ConnType::Host,
                databases: Names::All,
                users: Names::All,
                address: Address::Net { network, prefix },
                method: Method::Trust,
            };
            vec![
                Rule {
                    conn: ConnType::Local,
                    databases: Names::All,
                    users: Names::All,
                    address: Address::All,
                    method: Method::Trust,
                },
                loopback(IpAddr::from([127, 0, 0, 0]), 8),
                loopback(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
                Rule {
                    conn: ConnType::Host,
                    databases: Names::All,
                    users: Names::All,
                    address: Address::All,
                    method: Method::Scram,
                },
            ]
        } else {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    compile(e, tls).map_err(|reason| ServerError::Hba {
                        index: i + 1,
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?
        };
        Ok(AccessRules {
            rules,
            tls_required_for_remote,
        })
    }

    /// The method for `user` on `database` from `origin` (None: a TCP peer whose address is
    /// unknown, matched only by `address = "all"`), over TLS or not.
    pub(crate) fn decide(
        &self,
        origin: Option<Origin>,
        tls: bool,
        user: &str,
        database: &str,
    ) -> Decision {
        let local = origin == Some(Origin::Local);
        let peer = match origin {
            Some(Origin::Ip(ip)) => Some(canonical(ip)),
            _ => None,
        };
        let this_machine = local || peer.is_some_and(|p| p.is_loopback());
        if self.tls_required_for_remote && !tls && !this_machine {
            return Decision::NoEntry;
        }
        self.rules
            .iter()
            .find(|r| {
                let conn = match r.conn {
                    ConnType::Local => local,
                    ConnType::Host => !local,
                    ConnType::HostSsl => !local && tls,
                    ConnType::HostNoSsl => !local && !tls,
                };
                conn && (local || r.address.matches(peer))
                    && r.databases.matches(database, Some(user))
                    && r.users.matches(user, None)
            })
            .map_or(Decision::NoEntry, |r| Decision::Method(r.method))
    }
}

/// An IPv4-mapped IPv6 address (a client of a `[::]` listener) as its IPv4 address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Names {
    fn parse(text: &str, what: &str, sameuser: bool) -> Result<Names, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Names::All);
        }
        if sameuser && text == "sameuser" {
            return Ok(Names::SameUser);
        }
        let mut list = Vec::new();
        for name in text.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(format!("{what} {text:?} has an empty name"));
            }
            if name.starts_with('+') || name.starts_with('@') {
                return Err(format!(
                    "{what} {name:?}: group (+name) and file (@file) references are not supported"
                ));
            }
            if matches!(
                name,
                "all" | "sameuser" | "samerole" | "samegroup" | "replication"
            ) {
                return Err(format!("{what} keyword {name:?} cannot be part of a list"));
            }
            list.push(name.to_string());
        }
        Ok(Names::List(list))
    }

    /// Whether `name` is in the set (`user` is the login role, for `sameuser`).
    fn matches(&self, name: &str, user: Option<&str>) -> bool {
        match self {
            Names::All => true,
            Names::SameUser => user == Some(name),
            Names::List(list) => list.iter().any(|n| n == name),
        }
    }
}

impl Address {
    fn parse(text: &str) -> Result<Address, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Address::All);
        }
        if matches!(text, "samehost" | "samenet") {
            return Err(format!("address {text:?} is not supported; write a CIDR"));
        }
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| {
            format!("address {text:?} is not \"all\", an IP address or ADDRESS/PREFIX (host names are not supported)")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("address {text:?}: prefix must be 0 to {max}"))?,
        };
        Ok(Address::Net {
            network: mask(ip, prefix),
            prefix,
        })
    }

    fn matches(&self, peer: Option<IpAddr>) -> bool {
        match (self, peer) {
            (Address::All, _) => true,
            (Address::Net { .. }, None) => false,
            (Address::Net { network, prefix }, Some(peer)) => {
                network.is_ipv4() == peer.is_ipv4() && mask(peer, *prefix) == *network
            }
        }
    }

    /// Whether every address in the range is a loopback address.
    fn loopback_only(&self) -> bool {
        match self {
            Address::All => false,
            Address::Net { network, prefix } => match network {
                IpAddr::V4(v4) => *prefix >= 8 && v4.octets()[0] == 127,
                IpAddr::V6(v6) => *prefix == 128 && v6.is_loopback(),
            },
        }
    }
}

/// `ip` with all but the first `prefix` bits cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

fn compile(e: &HbaEntry, tls: bool) -> Result<Rule, String> {
    let conn = match e.kind.trim() {
        "local" => ConnType::Local,
        "host" => ConnType::Host,
        "hostssl" => ConnType::HostSsl,
        "hostnossl" => ConnType::HostNoSsl,
        "hostgssenc" | "hostnogssenc" => {
            return Err(format!("type {:?} is not supported (no GSSAPI)", e.kind))
        }
        other => {
            return Err(format!(
                "type {other:?} is not one of local, host, hostssl, hostnossl"
            ))
        }
    };
    if conn == ConnType::HostSsl && !tls {
        return Err(
            "a hostssl rule cannot match because TLS is not configured (tls_cert, tls_key)"
                .to_string(),
        );
    }
    let method = match e.method.trim() {
        "trust" => Method::Trust,
        // NB: like PostgreSQL with SCRAM verifiers stored, password and md5 mean SCRAM.
        "scram-sha-256" | "password" | "md5" => Method::Scram,
        "reject" => Method::Reject,
        other => {
            return Err(format!(
                "method {other:?} is not one of trust, scram-sha-256, reject"
            ))
        }
    };
    let address = match conn {
        ConnType::Local if e.address.trim().is_empty() => Address::All,
        ConnType::Local => {
            return Err(format!(
                "a local entry takes no address (it matches the Unix socket), not {:?}",
                e.address
            ))
        }
        _ if e.address.trim().is_empty() => {
            return Err(format!(
                "a {} entry needs an address (all, an IP address or CIDR)",
                e.kind.trim()
            ))
        }
        _ => Address::parse(&e.address)?,
    };
    if method == Method::Trust && conn != ConnType::Local && !address.loopback_only() {
        return Err(format!(
            "trust is only allowed for loopback addresses (127.0.0.0/8, ::1), not {:?}; \
             use scram-sha-256",
            e.address
        ));
    }
    Ok(Rule {
        conn,
        databases: Names::parse(&e.database, "database", true)?,
        users: Names::parse(&e.user, "user", false)?,
        address,
        method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, database: &str, user: &str, address: &str, method: &str) -> HbaEntry {
        HbaEntry {
            kind: kind.into(),
            database: database.into(),
            user: user.into(),
            address: address.into(),
            method: method.into(),
        }
    }

    fn ip(s: &str) -> Option<Origin> {
        Some(Origin::Ip(s.parse().unwrap()))
    }

    const LOCAL: Option<Origin> = Some(Origin::Local);

    const TRUST: Decision = Decision::Method(Method::Trust);
    const SCRAM: Decision = Decision::Method(Method::Scram);
    const REJECT: Decision = Decision::Method(Method::Reject);

    #[test]
    fn built_in_rules_trust_loopback_and_ask_everyone_else() {
        let r = AccessRules::new(&[], false, false).unwrap();
        assert_eq!(r.decide(ip("127.0.0.1"), false, "u", "d"), TRUST);
        assert_eq!(r.decide(ip("127.3.2.1"), false, "u", "d"), TRUST);
        assert_eq!(r.decide(ip("::1"), false, "u", "d"), TRUST);
        assert_eq!(r.decide(ip("::ffff:127.0.0.1"), false, "u", "d"), TRUST);
        assert_eq!(r.decide(ip("10.1.2.3"), false, "u", "d"), SCRAM);
        assert_eq!(r.decide(ip("10.1.2.3"), true, "u", "d"), SCRAM);
        assert_eq!(r.decide(None, false, "u", "d"), SCRAM);
        assert_eq!(r.decide(LOCAL, false, "u", "d"), TRUST);
    }

    #[test]
    fn tls_required_for_remote_refuses_plain_remote_clients_only() {
        assert!(AccessRules::new(&[], true, false).is_err());
        let r = AccessRules::new(&[], true, true).unwrap();
        assert_eq!(r.decide(ip("10.1.2.3"), false, "u", "d"), Decision::NoEntry);
        assert_eq!(r.decide(ip("10.1.2.3"), true, "u", "d"), SCRAM);
        assert_eq!(r.decide(ip("127.0.0.1"), false, "u", "d"), TRUST);
        assert_eq!(r.decide(None, false, "u", "d"), Decision::NoEntry);
        assert_eq!(r.decide(LOCAL, false, "u", "d"), TRUST);
    }

    #[test]
    fn unix_socket_clients_match_local_entries_only() {
        let rules = [
            entry("local", "all", "mallory", "", "reject"),
            entry("local", "sameuser", "all", "", "scram-sha-256"),
            entry("host", "all", "all", "all", "scram-sha-256"),
        ];
        let r = AccessRules::new(&rules, false, false).unwrap();
        assert_eq!(r.decide(LOCAL, false, "mallory", "mallory"), REJECT);
        assert_eq!(r.decide(LOCAL, false, "alice", "alice"), SCRAM);
        // NB: no local entry for another database: the host entry does not apply.
        assert_eq!(r.decide(LOCAL, false, "alice", "app"), Decision::NoEntry);
        assert_eq!(r.decide(ip("127.0.0.1"), false, "mallory", "x"), SCRAM);
        let trust_local = [entry("local", "all", "all", "", "trust")];
        let r = AccessRules::new(&trust_local, false, false).unwrap();
        assert_eq!(r.decide(LOCAL, false, "u", "d"), TRUST);
        assert_eq!(
            r.decide(ip("127.0.0.1"), false, "u", "d"),
            Decision::NoEntry
        );
    }

    #[test]
    fn first_matching_entry_wins() {
        let rules = [
            entry("host", "all", "mallory", "all", "reject"),
            entry("hostnossl", "all", "all", "10.0.0.0/8", "reject"),
            entry("hostssl", "sameuser", "all", "10.0.0.0/8", "scram-sha-256"),
            entry("host", "app,reports", "alice, bob", "192.168.1.0/24", "md5"),
            entry("host", "all", "all", "127.0.0.1", "trust"),
            entry("host", "all", "all", "2001:db8::/32", "scram-sha-256"),
        ];
        let r = AccessRules::new(&rules, false, true).unwrap();
        assert_eq!(r.decide(ip("127.0.0.1"), false, "mallory", "d"), REJECT);
        assert_eq!(r.decide(ip("10.9.9.9"), false, "alice", "alice"), REJECT);
        assert_eq!(r.decide(ip("10.9.9.9"), true, "alice", "alice"), SCRAM);
        assert_eq!(
            r.decide(ip("10.9.9.9"), true, "alice", "app"),
            Decision::NoEntry
        );
        assert_eq!(r.decide(ip("192.168.1.77"), false, "bob", "reports"), SCRAM);
        assert_eq!(
            r.decide(ip("192.168.1.77"), false, "carol", "reports"),
            Decision::NoEntry
        );
        assert_eq!(
            r.decide(ip("192.168.2.77"), false, "bob", "reports"),
            Decision::NoEntry
        );
        assert_eq!(r.decide(ip("127.0.0.1"), false, "carol", "x"), TRUST);
        assert_eq!(
            r.decide(ip("127.0.0.2"), false, "carol", "x"),
            Decision::NoEntry
        );
        assert_eq!(r.decide(ip("2001:db8:1::5"), false, "carol", "x"), SCRAM);
        assert_eq!(
            r.decide(ip("2001:db9::5"), false, "carol", "x"),
            Decision::NoEntry
        );
    }

    #[test]
    fn unsafe_or_malformed_entries_are_refused_with_their_position() {
        let bad = [
            (
                entry("host", "all", "all", "0.0.0.0/0", "trust"),
                "only allowed for loopback",
            ),
            (
                entry("host", "all", "all", "all", "trust"),
                "only allowed for loopback",
            ),
            (
                entry("host", "all", "all", "126.0.0.0/7", "trust"),
                "only allowed for loopback",
            ),
            (
                entry("host", "all", "all", "::/0", "trust"),
                "only allowed for loopback",
            ),
            (
                entry("local", "all", "all", "all", "trust"),
                "takes no address",
            ),
            (
                entry("host", "all", "all", "", "reject"),
                "needs an address",
            ),
            (entry("local", "all", "all", "", "peer"), "not one of"),
            (
                entry("hostssl", "all", "all", "all", "reject"),
                "TLS is not configured",
            ),
            (entry("host", "all", "all", "all", "ident"), "not one of"),
            (
                entry("host", "all", "all", "10.0.0.0/33", "reject"),
                "prefix",
            ),
            (
                entry("host", "all", "all", "example.com", "reject"),
                "host names",
            ),
            (
                entry("host", "all", "all", "samenet", "reject"),
                "not supported",
            ),
            (entry("host", "all", "+admins", "all", "reject"), "group"),
            (entry("host", "a,,b", "all", "all", "reject"), "empty name"),
        ];
        for (e, why) in bad {
            let rules = [entry("host", "all", "all", "all", "reject"), e.clone()];
            let err = AccessRules::new(&rules, false, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("entry 2") && err.contains(why), "{e:?}: {err}");
        }
        let ok = [entry("host", "all", "all", "127.0.0.0/8", "trust")];
        assert!(AccessRules::new(&ok, false, false).is_ok());
    }
}
