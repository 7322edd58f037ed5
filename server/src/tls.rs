//! TLS for client connections (rustls, ring provider) behind one blocking stream type.
//!
//! ```text
//!  client                                  server (connection thread)
//!  SSLRequest (len 8, code 80877103) ──>
//!                                     <── 'S' (TLS configured) | 'N' (not configured)
//!  TLS handshake (ClientHello ...)   <──> Stream::Tls: rustls ServerConnection over the socket
//!  StartupMessage, then everything else, encrypted
//! ```
//!
//! Invariants:
//! 1. The connection code has one path: it reads and writes a `Stream`, which is the plain
//!    socket or the TLS session over it; the socket itself is kept aside for timeouts,
//!    `peer_addr` and `shutdown` (the registry in `conns.rs` shuts sockets down for reading
//!    at server shutdown; a TLS reader then sees end-of-stream like a plain one).
//! 2. A buffered answer is still one `write_all` per round trip: rustls seals it into records
//!    (16 KiB each) and writes them with vectored writes before `write` returns.
//! 3. The handshake runs before anything else is read, under the startup timeout. A client
//!    that fails it (garbage, wrong version, no shared cipher suite) gets a TLS alert, the
//!    connection closes, and the server goes on.
//! 4. Certificates and key are read once at start ([`TlsAcceptor::load`]); a missing,
//!    unreadable or malformed file, or a key that does not match the certificate, stops the
//!    server from starting with a message naming the file.
//!
//! 5. Bytes a client sent after its SSLRequest, before our answer, are refused with FATAL 08P01
//!    "received unencrypted data after SSL request" in clear, before answering (`connection.rs`).
//!    PostgreSQL 15 answers 'S', runs the handshake and reports them afterwards; both close the
//!    connection without reading the stuffed bytes as part of the encrypted session.
//!
//! Checked against PostgreSQL 15 (ssl = on) with a raw client: a second SSLRequest inside TLS,
//! a GSSENCRequest after TLS and a repeated GSSENCRequest get the same FATAL 0A000
//! ("unsupported frontend protocol 1234.5679/5680: ..."), hba refusals the same 28000 texts.
//! Measured with strace over 200 psql round trips: 205 writes and 205 reads with TLS, 201 and
//! 202 without (the difference is the handshake).
//!
//! TLS 1.2 and 1.3 with rustls' default cipher suites; no client certificates.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::error::ServerError;
use crate::socket::ClientSocket;

/// The server's TLS settings: certificate chain and key, loaded and checked.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

impl TlsAcceptor {
    /// Reads the PEM certificate chain at `cert` (leaf first) and the PEM private key at `key`
    /// (PKCS#8, PKCS#1 or SEC1) and checks that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServerError> {
        let bad = |path: &Path, reason: String| ServerError::Tls {
            path: path.to_path_buf(),
            reason,
        };
        let certs = read_certs(cert).map_err(|reason| bad(cert, reason))?;
        let key_der = read_key(key).map_err(|reason| bad(key, reason))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key_der)
            .map_err(|e| bad(key, format!("does not fit the certificate: {e}")))?;
        Ok(TlsAcceptor {
            config: Arc::new(config),
        })
    }

    /// Runs the server side of the handshake on `socket` (after 'S' was sent); the error is
    /// the client's failure (logged by the caller, the socket is then closed).
    pub(crate) fn accept(&self, socket: Arc<ClientSocket>) -> io::Result<Stream> {
        let conn = ServerConnection::new(Arc::clone(&self.config)).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, Socket(socket));
        while tls.conn.is_handshaking() {
            let (read, written) = tls.conn.complete_io(&mut tls.sock)?;
            if read == 0 && written == 0 && tls.conn.is_handshaking() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed the connection during the TLS handshake",
                ));
            }
        }
        Ok(Stream::Tls(Box::new(tls)))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    check_readable(path)?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) in it".to_string());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    check_readable(path)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it"
                .to_string()
        }
        other => format!("not a PEM private key file: {other}"),
    })
}

/// Opens the file once for a plain I/O message ("No such file or directory") before parsing.
fn check_readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `--tls-cert` and `--tls-key` as given: both or neither.
pub(crate) fn acceptor_for(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<Option<TlsAcceptor>, ServerError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => TlsAcceptor::load(cert, key).map(Some),
        (Some(_), None) => Err(ServerError::Usage(
            "tls_cert is set but tls_key is not: give both (--tls-cert FILE --tls-key FILE)"
                .to_string(),
        )),
        (None, Some(_)) => Err(ServerError::Usage(
            "tls_key is set but tls_cert is not: give both (--tls-cert FILE --tls-key FILE)"
                .to_string(),
        )),
    }
}

/// The shared socket as the `Read + Write` rustls needs.
pub(crate) struct Socket(Arc<ClientSocket>);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a connection reads from and writes to: the socket, or a TLS session over it.
pub(crate) enum Stream {
    /// No encryption.
    Plain(Arc<ClientSocket>),
    /// After SSLRequest and a completed handshake.
    Tls(Box<StreamOwned<ServerConnection, Socket>>),
}

impl Stream {
    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Ends the session before the socket is shut down: a TLS close_notify alert (best
    /// effort; the client may be gone).
    pub(crate) fn close(&mut self) {
        if let Stream::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.conn.complete_io(&mut tls.sock);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => (&**s).read(buf),
            Stream::Tls(tls) => match tls.read(buf) {
                // NB: a peer (or our own shutdown(Read)) closing the socket without
                // close_notify is an end of stream here, as for a plain socket.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => (&**s).write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => (&**s).write_all(buf),
            Stream::Tls(tls) => {
                tls.write_all(buf)?;
                // NB: `write` already sent the records; this surfaces a write error.
                tls.flush()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_matching_pair_loads_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = write(dir.path(), "server.crt", &cert.pem());
        let key_path = write(dir.path(), "server.key", &key.serialize_pem());
        assert!(TlsAcceptor::load(&cert_path, &key_path).is_ok());

        let missing = dir.path().join("missing.crt");
        let e = TlsAcceptor::load(&missing, &key_path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing.crt") && e.contains("No such file"),
            "{e}"
        );

        let garbage = write(dir.path(), "garbage.pem", "hello\n");
        let e = TlsAcceptor::load(&garbage, &key_path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("garbage.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = TlsAcceptor::load(&cert_path, &garbage)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("garbage.pem") && e.contains("no PEM private key"),
            "{e}"
        );

        // A certificate and a key of different pairs.
        let other = rcgen::KeyPair::generate().unwrap();
        let other_path = write(dir.path(), "other.key", &other.serialize_pem());
        let e = TlsAcceptor::load(&cert_path, &other_path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("other.key") && e.contains("does not fit"), "{e}");

        assert!(acceptor_for(&None, &None).unwrap().is_none());
        assert!(acceptor_for(&Some(cert_path), &None).is_err());
        assert!(acceptor_for(&None, &Some(key_path)).is_err());
    }
}
