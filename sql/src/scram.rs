//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: password verifiers and the
//! server side of the SASL exchange. Pure functions over bytes: the server crate moves the
//! messages over the wire, this module decides.
//!
//! # Stored verifier (PostgreSQL's `pg_authid.rolpassword` format)
//!
//! ```text
//! SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//!
//! SaltedPassword = Hi(SASLprep(password), salt, iterations)      (PBKDF2-HMAC-SHA-256)
//! ClientKey      = HMAC(SaltedPassword, "Client Key")
//! StoredKey      = SHA-256(ClientKey)
//! ServerKey      = HMAC(SaltedPassword, "Server Key")
//! ```
//!
//! Only the verifier is ever stored: it lets the server check a client's proof and prove
//! itself, but does not give the password nor let anyone log in with it.
//!
//! # Exchange
//!
//! ```text
//!  client                                          server
//!  SASLInitialResponse "n,,n=,r=<cnonce>"   ──>
//!                                           <──  SASLContinue "r=<cnonce><snonce>,s=<salt>,i=<n>"
//!  SASLResponse "c=biws,r=<nonce>,p=<proof>" ──>   ClientKey = proof XOR HMAC(StoredKey, AuthMessage)
//!                                                  SHA-256(ClientKey) == StoredKey ?
//!                                           <──  SASLFinal "v=<HMAC(ServerKey, AuthMessage)>"
//! ```
//! `AuthMessage = client-first-bare "," server-first "," client-final-without-proof`.
//!
//! Invariants: every field of a client message is checked before use (no indexing on client
//! input, no panics); proofs are compared in constant time; channel binding is not offered,
//! so a client asking for it (`p=`) is refused and `y` (client could, server did not offer) is
//! accepted, as RFC 5802 §6 says.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The SASL mechanism name (frozen by RFC 7677).
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Iterations of new verifiers (PostgreSQL's `scram_iterations` default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Salt length of new verifiers, in bytes (PostgreSQL's SCRAM_DEFAULT_SALT_LEN).
const SALT_LEN: usize = 16;

/// Random bytes in the server's part of the nonce (PostgreSQL's SCRAM_RAW_NONCE_LEN).
const NONCE_LEN: usize = 18;

/// Most iterations a stored verifier may ask for (bounds the work a crafted one can cause).
const MAX_ITERATIONS: u32 = 10_000_000;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A SCRAM-SHA-256 password verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// Salt (raw bytes).
    pub salt: Vec<u8>,
    /// SHA-256(ClientKey).
    pub stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // NB: never print key material, not even in logs of a panic.
        write!(f, "Verifier(SCRAM-SHA-256, {} iterations)", self.iterations)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // NB: HMAC accepts keys of any length, so new_from_slice cannot fail; fall back to an
    // all-zero tag rather than panic if it ever did (a proof can then never match).
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// PostgreSQL's password normalization: SASLprep, or the raw bytes if the password is not
/// valid under it (so any password works, as in PostgreSQL's `pg_saslprep` fallback).
fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// Random bytes from the thread's CSPRNG.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

impl Verifier {
    /// A verifier for `password` with a fresh random salt and [`DEFAULT_ITERATIONS`].
    pub fn from_password(password: &str) -> Verifier {
        Verifier::with_salt(password, &random_bytes::<SALT_LEN>(), DEFAULT_ITERATIONS)
    }

    /// A verifier for `password` with the given salt and iteration count.
    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&normalize(password), salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// A verifier no password matches, with a salt that is stable for `user` under `secret`:
    /// used for unknown roles and roles without a password, so the exchange looks the same as
    /// for a real role and reveals nothing (PostgreSQL's mock authentication).
    pub fn mock(secret: &[u8], user: &str) -> Verifier {
        let mut seed = secret.to_vec();
        seed.extend_from_slice(user.as_bytes());
        let digest = sha256(&seed);
        Verifier {
            iterations: DEFAULT_ITERATIONS,
            salt: digest[..SALT_LEN].to_vec(),
            stored_key: random_bytes(),
            server_key: random_bytes(),
        }
    }

    /// Parses PostgreSQL's text form; None if `text` is not a well-formed SCRAM-SHA-256
    /// verifier.
    pub fn parse(text: &str) -> Option<Verifier> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations.parse().ok()?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return None;
        }
        let salt = B64.decode(salt).ok()?;
        if salt.is_empty() {
            return None;
        }
        let stored_key: [u8; 32] = B64.decode(stored).ok()?.try_into().ok()?;
        let server_key: [u8; 32] = B64.decode(server).ok()?.try_into().ok()?;
        Some(Verifier {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// PostgreSQL's text form (see the module docs).
    pub fn to_text(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The client's message does not follow RFC 5802 (a protocol violation, 08P01).
    #[error("malformed SCRAM message ({0})")]
    Malformed(&'static str),
    /// The client asked for something this server does not do (channel binding, authzid).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The proof does not match: wrong password, unknown role, or no password (28P01).
    #[error("password authentication failed")]
    WrongProof,
}

/// The server's state between its first message and the client's final message.
pub struct ServerExchange {
    verifier: Verifier,
    /// A mock exchange (unknown role, no password): it fails whatever the client sends.
    doomed: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// Printable ASCII except ',' (RFC 5802 `printable`).
fn is_printable_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

impl ServerExchange {
    /// Reads the client-first-message and answers the server-first-message. With `doomed`,
    /// the exchange runs normally but [`ServerExchange::finish`] always refuses.
    pub fn start(
        verifier: Verifier,
        doomed: bool,
        client_first: &[u8],
    ) -> Result<(ServerExchange, String), ScramError> {
        let text =
            std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => {
                return Err(ScramError::Unsupported(
                    "channel binding was not offered by the server",
                ))
            }
            _ => return Err(ScramError::Malformed("bad channel-binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        if !authzid.is_empty() {
            return Err(ScramError::Unsupported(
                "client uses authorization identity, but it is not supported",
            ));
        }
        let mut attrs = bare.split(',');
        let user = attrs.next().unwrap_or_default();
        if user.starts_with("m=") {
            return Err(ScramError::Unsupported("mandatory SCRAM extensions"));
        }
        // NB: the user name in the message is ignored, as in PostgreSQL: the startup packet's
        // user is the one authenticated (libpq sends it empty).
        if !user.starts_with("n=") {
            return Err(ScramError::Malformed("expected user name attribute"));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected nonce attribute"))?;
        if !is_printable_nonce(client_nonce) {
            return Err(ScramError::Malformed("bad client nonce"));
        }
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes::<NONCE_LEN>()));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let gs2_header = format!("{flag},,");
        Ok((
            ServerExchange {
                verifier,
                doomed,
                gs2_header,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Checks the client-final-message; on success returns the server-final-message
    /// (`v=<ServerSignature>`) the client uses to authenticate the server.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("expected proof attribute"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected channel-binding attribute"))?;
        let binding = B64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::Malformed(
                "channel binding does not match the GS2 header",
            ));
        }
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected nonce attribute"))?;
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("bad proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key
            .iter_mut()
            .zip(proof.iter().zip(client_signature.iter()))
        {
            *k = p ^ s;
        }
        let matches = constant_time_eq(&sha256(&client_key), &self.verifier.stored_key);
        if self.doomed || !matches {
            return Err(ScramError::WrongProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random secret for [`Verifier::mock`] (one per server process).
pub fn mock_secret() -> [u8; 32] {
    random_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 5802, for driving the server in tests.
    fn client_final(
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        gs2: &str,
    ) -> (String, [u8; 32]) {
        let mut parts = server_first.split(',');
        let nonce = parts.next().unwrap().strip_prefix("r=").unwrap();
        let salt = B64
            .decode(parts.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = parts
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = sha256(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode(gs2));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        let server_key = hmac(&salted, b"Server Key");
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            hmac(&server_key, auth.as_bytes()),
        )
    }

    #[test]
    fn rfc7677_test_vector_verifier() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = Verifier::with_salt("pencil", &salt, 4096);
        // ServerSignature of the RFC's exchange, recomputed from our ServerKey.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        assert_eq!(
            B64.encode(hmac(&v.server_key, auth.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let parsed = Verifier::parse(&v.to_text()).unwrap();
        assert_eq!(parsed, v);
        assert!(v
            .to_text()
            .starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    }

    #[test]
    fn right_password_is_accepted_and_server_proves_itself() {
        let v = Verifier::from_password("s3cret");
        let first = "n,,n=,r=abcdefghijklmnop";
        let (ex, server_first) = ServerExchange::start(v, false, first.as_bytes()).unwrap();
        let (fin, expected_sig) =
            client_final("s3cret", "n=,r=abcdefghijklmnop", &server_first, "n,,");
        let server_final = ex.finish(fin.as_bytes()).unwrap();
        assert_eq!(server_final, format!("v={}", B64.encode(expected_sig)));
    }

    #[test]
    fn wrong_password_and_doomed_exchanges_fail() {
        for (password, doomed) in [("nope", false), ("s3cret", true)] {
            let v = Verifier::from_password("s3cret");
            let (ex, sf) = ServerExchange::start(v, doomed, b"y,,n=x,r=nonce1").unwrap();
            let (fin, _) = client_final(password, "n=x,r=nonce1", &sf, "y,,");
            assert_eq!(ex.finish(fin.as_bytes()), Err(ScramError::WrongProof));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let v = Verifier::from_password("p");
        let firsts: [&[u8]; 9] = [
            b"",
            b"n",
            b"n,,",
            b"p=tls-server-end-point,,n=,r=x",
            b"n,a=bob,n=,r=x",
            b"n,,m=ext,n=,r=x",
            b"n,,n=,r=a,b",
            b"\xff\xfe",
            b"q,,n=,r=x",
        ];
        for f in firsts {
            let _ = ServerExchange::start(v.clone(), false, f);
        }
        let (_, sf) = ServerExchange::start(v.clone(), false, b"n,,n=,r=x").unwrap();
        let nonce = sf.split(',').next().unwrap().to_string();
        let finals = [
            String::new(),
            "p=".to_string(),
            format!("c=biws,{nonce},p=!!!"),
            format!("c=biws,{nonce},p=AAAA"),
            format!("c=eSws,{nonce},p=AAAA"),
            "c=biws,r=other,p=AAAA".to_string(),
            format!("{nonce},p=AAAA"),
        ];
        for f in finals {
            let (ex, _) = ServerExchange::start(v.clone(), false, b"n,,n=,r=x").unwrap();
            assert!(ex.finish(f.as_bytes()).is_err(), "{f}");
        }
        for text in [
            "",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$0:AA==$AA==:AA==",
            "SCRAM-SHA-256$4096:$x:y",
            "md5abc",
        ] {
            assert!(Verifier::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn mock_salt_is_stable_per_user() {
        let secret = mock_secret();
        assert_eq!(
            Verifier::mock(&secret, "alice").salt,
            Verifier::mock(&secret, "alice").salt
        );
        assert_ne!(
            Verifier::mock(&secret, "alice").salt,
            Verifier::mock(&secret, "bob").salt
        );
    }
}
