//! A client's socket, TCP or Unix-domain, behind one blocking type.
//!
//! ```text
//!   --listen 127.0.0.1:5433        ──accept──> ClientSocket::Tcp   origin Ip(127.0.0.1)
//!   --unix-socket-dir /tmp
//!     /tmp/.s.PGSQL.5433 (0777)    ──accept──> ClientSocket::Unix  origin Local
//! ```
//!
//! Invariants:
//! 1. Both kinds go through the same connection code (`connection.rs`): startup, auth, the
//!    message loop, cancel requests and shutdown (`conns.rs` shuts either kind down for
//!    reading). Only three things differ, as in PostgreSQL: the access rules match a Unix
//!    socket client by `local` entries only ([`Origin::Local`]), an SSLRequest on a Unix
//!    socket is answered 'N', and TCP_NODELAY applies to TCP only.
//! 2. The socket file is named like PostgreSQL's, `DIR/.s.PGSQL.PORT` with the TCP port the
//!    server listens on, so `psql -h DIR -p PORT` (and libpq's default directory, if DIR is
//!    it) finds it. A file left behind by a server that died is replaced; a file another
//!    live server answers on stops this one from starting ([`bind_unix`]).
//! 3. The file is removed when the server stops normally ([`UnixSocketFile`]'s drop).
//!
//! Why at all: a Unix socket round trip costs the kernel less than one over loopback TCP (no
//! TCP/IP stack, no softirq), and local clients such as psql and pgbench use one by default.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ServerError;

/// An accepted client connection (blocking).
#[derive(Debug)]
pub enum ClientSocket {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix-domain socket.
    Unix(UnixStream),
}

/// Where a client connects from, as the access rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Unix-domain socket: this machine.
    Local,
    /// A TCP peer (IPv4-mapped IPv6 addresses as IPv4).
    Ip(IpAddr),
}

impl Origin {
    /// Whether the client is on this machine (a Unix socket or a loopback address).
    pub fn is_this_machine(self) -> bool {
        match self {
            Origin::Local => true,
            Origin::Ip(ip) => ip.is_loopback(),
        }
    }

    /// The client as PostgreSQL names it in messages: `[local]` or the address.
    pub fn describe(origin: Option<Origin>) -> String {
        match origin {
            Some(Origin::Local) => "[local]".to_string(),
            Some(Origin::Ip(ip)) => ip.to_string(),
            None => String::new(),
        }
    }
}

impl ClientSocket {
    /// The client's origin; None if the TCP peer address cannot be read (already gone).
    pub fn origin(&self) -> Option<Origin> {
        match self {
            ClientSocket::Tcp(s) => s
                .peer_addr()
                .ok()
                .map(|p| Origin::Ip(crate::hba::canonical(p.ip()))),
            ClientSocket::Unix(_) => Some(Origin::Local),
        }
    }

    /// Whether this is a Unix-domain socket (no TLS there, as in PostgreSQL).
    pub fn is_unix(&self) -> bool {
        matches!(self, ClientSocket::Unix(_))
    }

    /// Small result messages must not wait for Nagle (TCP only).
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            ClientSocket::Tcp(s) => s.set_nodelay(true),
            ClientSocket::Unix(_) => Ok(()),
        }
    }

    /// Read timeout for the startup phase; None = block.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            ClientSocket::Tcp(s) => s.set_read_timeout(timeout),
            ClientSocket::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            ClientSocket::Tcp(s) => s.shutdown(how),
            ClientSocket::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for &ClientSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientSocket::Tcp(s) => (&*s).read(buf),
            ClientSocket::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &ClientSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientSocket::Tcp(s) => (&*s).write(buf),
            ClientSocket::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ClientSocket::Tcp(s) => (&*s).write_vectored(bufs),
            ClientSocket::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The socket file's name in `dir` for a server on `port` (PostgreSQL's).
pub fn unix_socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// The listening socket file; removed on drop.
#[derive(Debug)]
pub struct UnixSocketFile {
    path: PathBuf,
}

impl UnixSocketFile {
    /// The socket file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the Unix socket `DIR/.s.PGSQL.PORT` (invariant 2), readable and writable by every
/// local user like PostgreSQL's default `unix_socket_permissions` 0777 (the access rules
/// decide who gets in). Must run inside the tokio runtime.
pub fn bind_unix(
    dir: &Path,
    port: u16,
) -> Result<(tokio::net::UnixListener, UnixSocketFile), ServerError> {
    let path = unix_socket_path(dir, port);
    let fail = |source: io::Error| ServerError::UnixSocket {
        path: path.clone(),
        source,
    };
    if std::fs::symlink_metadata(&path).is_ok() {
        match UnixStream::connect(&path) {
            Ok(_) => {
                return Err(fail(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server is listening on it",
                )))
            }
            // NB: nobody answers: a file left by a server that died (kill -9, power loss).
            Err(_) => std::fs::remove_file(&path).map_err(fail)?,
        }
    }
    let listener = tokio::net::UnixListener::bind(&path).map_err(fail)?;
    let file = UnixSocketFile { path: path.clone() };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(fail)?;
    Ok((listener, file))
}
