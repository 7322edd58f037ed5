//! Client authentication in the startup phase: the access rules and the SCRAM-SHA-256
//! exchange on the wire (the SCRAM arithmetic is `gnomon_sql::scram`).
//!
//! # Access rules (checked in this order)
//!
//! 1. The hba rules (`hba.rs`: `[[hba]]` entries, or the built-in ones) pick a method from
//!    the client's address, TLS or not, database and user: `reject` and "no entry" are
//!    refused with FATAL 28000 in PostgreSQL's words ("pg_hba.conf rejects connection for
//!    host ...", "no pg_hba.conf entry for host ..., no encryption"), and so is a plain
//!    remote client under `tls_required_for_remote`.
//! 2. A role with a password always authenticates with SCRAM-SHA-256, whatever the method.
//! 3. Trust (no password asked) is given only where the method is `trust` (the Unix socket
//!    and loopback addresses only, enforced when the rules are loaded, and checked again here), and only
//!    while the bootstrap superuser `gnomon` has no password. An unknown role is then told
//!    so (28000), as PostgreSQL's trust method does.
//! 4. Everyone else goes through a SCRAM exchange that cannot succeed (a mock verifier with a
//!    stable per-role salt): unknown roles and roles without a password are refused with
//!    the same 28P01 as a wrong password, so a client cannot tell them apart.
//! 5. After authentication a NOLOGIN role is refused with 28000.
//!
//! The server refuses to start on a non-loopback address while `gnomon` has no password
//! (see `run`), so rule 3 never opens the database to the network.
//!
//! ```text
//!  server                                   client
//!  R 10 "SCRAM-SHA-256"            ──>
//!                                  <──      p SASLInitialResponse(mechanism, client-first)
//!  R 11 server-first               ──>
//!                                  <──      p SASLResponse(client-final)
//!  R 12 server-final, then R 0 (AuthenticationOk) ... or FATAL 28P01
//! ```
//!
//! Every client message is bounds-checked by the codec and the SCRAM parser; nothing the
//! client sends here can panic the server. Failed logins are written to the audit log.

use gnomon_sql::scram::{self, ScramError, ServerExchange, Verifier};
use gnomon_sql::{AuditEvent, RoleDef, BOOTSTRAP_SUPERUSER};

use crate::codec::{self, ErrorFields, FrontendMessage};
use crate::connection::{ConnError, Shared, Wire};
use crate::hba::{Decision, Method};
use crate::socket::Origin;

/// How a client got in, or why not (the FATAL already sent).
pub(crate) enum Verdict {
    /// Authenticated (or trusted): go on with the session.
    Accepted,
    /// Refused; the connection closes.
    Refused,
}

/// Applies the access rules to `user` connecting to `database` from `peer`; runs the SCRAM
/// exchange when they ask for one. Sends FATAL itself when refusing.
pub(crate) fn authenticate(
    wire: &mut Wire,
    shared: &Shared,
    user: &str,
    database: &str,
    peer: Option<Origin>,
) -> Result<Verdict, ConnError> {
    let loopback = peer.is_some_and(Origin::is_this_machine);
    let host = Origin::describe(peer);
    let engine = &shared.engine;
    let tls = wire.is_tls();
    let method = match shared.access.decide(peer, tls, user, database) {
        Decision::Method(Method::Reject) => Err("pg_hba.conf rejects connection"),
        Decision::NoEntry => Err("no pg_hba.conf entry"),
        Decision::Method(m) => Ok(m),
    };
    let method = match method {
        Ok(m) => m,
        Err(why) => {
            let encryption = if tls {
                "SSL encryption"
            } else {
                "no encryption"
            };
            let message = format!(
                "{why} for host \"{host}\", user \"{user}\", database \"{database}\", {encryption}"
            );
            engine.audit().record(
                user,
                AuditEvent::AuthFailure,
                &format!("login from {host} refused: {message} (28000)"),
            );
            wire.fatal(ErrorFields::fatal("28000", message))?;
            return Ok(Verdict::Refused);
        }
    };
    let (role, superuser) = match (engine.role(user), engine.role(BOOTSTRAP_SUPERUSER)) {
        (Ok(role), Ok(superuser)) => (role, superuser),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot read roles for a login: {e}");
            wire.fatal(ErrorFields::fatal("XX000", "cannot read the role catalog"))?;
            return Ok(Verdict::Refused);
        }
    };
    let trust_allowed =
        method == Method::Trust && loopback && superuser.is_none_or(|s| s.password.is_none());
    let verifier = role
        .as_ref()
        .and_then(|r| r.password.as_deref())
        .and_then(Verifier::parse);
    let authenticated = match (&role, verifier) {
        (Some(_), Some(v)) => scram_exchange(wire, user, v, false)?,
        (Some(_), None) if trust_allowed => Ok(()),
        (None, _) if trust_allowed => {
            wire.fatal(ErrorFields::fatal(
                "28000",
                format!("role \"{user}\" does not exist"),
            ))?;
            return Ok(Verdict::Refused);
        }
        // Rule 4: the same exchange and the same answer as a wrong password.
        _ => scram_exchange(wire, user, Verifier::mock(&shared.mock_secret, user), true)?,
    };
    let refusal = match authenticated {
        Ok(()) => match &role {
            Some(RoleDef { login: false, .. }) => Some(ErrorFields::fatal(
                "28000",
                format!("role \"{user}\" is not permitted to log in"),
            )),
            _ => None,
        },
        Err(Failure::Closed) => return Ok(Verdict::Refused),
        Err(Failure::Fatal(e)) => Some(e),
    };
    match refusal {
        None => Ok(Verdict::Accepted),
        Some(e) => {
            engine.audit().record(
                user,
                AuditEvent::AuthFailure,
                &format!("login from {host} refused: {} ({})", e.message, e.code),
            );
            wire.fatal(e)?;
            Ok(Verdict::Refused)
        }
    }
}

/// Why an exchange did not authenticate the client.
enum Failure {
    /// The client left (psql does this to prompt for a password, then reconnects).
    Closed,
    /// Refuse with this FATAL.
    Fatal(ErrorFields),
}

fn password_failed(user_message: &str) -> Failure {
    Failure::Fatal(ErrorFields::fatal("28P01", user_message.to_string()))
}

/// Runs one SCRAM-SHA-256 exchange against `verifier` (always failing when `doomed`).
fn scram_exchange(
    wire: &mut Wire,
    user: &str,
    verifier: Verifier,
    doomed: bool,
) -> Result<Result<(), Failure>, ConnError> {
    let user_message = format!("password authentication failed for user \"{user}\"");
    wire.out.authentication_sasl(&[scram::MECHANISM]);
    wire.flush()?;
    let Some(body) = read_password_message(wire)? else {
        return Ok(Err(Failure::Closed));
    };
    let (mechanism, client_first) = match codec::decode_sasl_initial(&body) {
        Ok(x) => x,
        Err(e) => {
            return Ok(Err(Failure::Fatal(ErrorFields::fatal(
                "08P01",
                e.to_string(),
            ))))
        }
    };
    if mechanism != scram::MECHANISM {
        return Ok(Err(Failure::Fatal(ErrorFields::fatal(
            "08P01",
            "client selected an invalid SASL authentication mechanism",
        ))));
    }
    let (exchange, server_first) = match ServerExchange::start(verifier, doomed, &client_first) {
        Ok(x) => x,
        Err(e) => return Ok(Err(scram_failure(e, &user_message))),
    };
    wire.out
        .authentication_sasl_continue(server_first.as_bytes());
    wire.flush()?;
    let Some(client_final) = read_password_message(wire)? else {
        return Ok(Err(Failure::Closed));
    };
    match exchange.finish(&client_final) {
        Ok(server_final) => {
            wire.out.authentication_sasl_final(server_final.as_bytes());
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(scram_failure(e, &user_message))),
    }
}

fn scram_failure(e: ScramError, user_message: &str) -> Failure {
    match e {
        ScramError::WrongProof => password_failed(user_message),
        ScramError::Malformed(_) => Failure::Fatal(ErrorFields::fatal("08P01", e.to_string())),
        ScramError::Unsupported(what) => Failure::Fatal(ErrorFields::fatal("28000", what)),
    }
}

/// The body of the next `p` message; None if the client left. Any other message is a
/// protocol violation (FATAL 08P01 by the caller).
fn read_password_message(wire: &mut Wire) -> Result<Option<bytes::Bytes>, ConnError> {
    match wire.read_message()? {
        None => Ok(None),
        Some(FrontendMessage::Password(body)) => Ok(Some(bytes::Bytes::copy_from_slice(body))),
        Some(FrontendMessage::Terminate) => Ok(None),
        Some(_) => Err(ConnError::Protocol(codec::ProtocolError::Malformed {
            message: "authentication",
            reason: "expected a password message",
        })),
    }
}
