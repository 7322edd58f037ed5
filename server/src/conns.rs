//! The live connection threads: how many there are, their sockets, and the session limit.
//!
//! Every accepted socket is admitted here before its thread starts, and leaves when the thread
//! ends (its [`Ticket`] is dropped, even by a panic). Shutdown uses the registered sockets to
//! wake blocked readers: `shutdown(Read)` makes a thread waiting for the client's next message
//! read end-of-stream, see [`Connections::is_closing`] and say goodbye (FATAL 57P01).
//!
//! ```text
//!   acceptor ──admit(socket)──> State { sockets: id -> socket, threads, sessions, closing }
//!                                  ▲ Ticket::drop (thread ends)   ▲ open_session / SessionSlot::drop
//!   shutdown ──begin_shutdown──> closing = true; shutdown(Read) on every socket
//!            ──wait_drained(10 s)──> condvar until threads == 0
//! ```
//!
//! Invariants:
//! 1. `threads` counts admitted tickets not yet dropped; it never exceeds `max_threads`.
//! 2. `sessions` counts open [`SessionSlot`]s; it never exceeds `max_sessions`.
//! 3. Once `closing` is set no socket is admitted, and every socket admitted before it has been
//!    shut down for reading, so no thread waits for a client forever.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::socket::ClientSocket;

/// Registry of connection threads, shared by the acceptor and every connection thread.
#[derive(Debug)]
pub struct Connections {
    state: Mutex<State>,
    drained: Condvar,
    closing: AtomicBool,
    max_threads: usize,
    max_sessions: usize,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    sockets: HashMap<u64, Arc<ClientSocket>>,
    threads: usize,
    sessions: usize,
}

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_threads` connections are already being served.
    TooMany,
    /// The server is shutting down.
    Closing,
}

impl Connections {
    /// A registry allowing `max_sessions` sessions and `max_threads` threads (sessions plus
    /// connections still in their startup phase or sending a CancelRequest).
    pub fn new(max_sessions: usize, max_threads: usize) -> Arc<Connections> {
        Arc::new(Connections {
            state: Mutex::new(State::default()),
            drained: Condvar::new(),
            closing: AtomicBool::new(false),
            max_threads: max_threads.max(max_sessions),
            max_sessions,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // NB: the counters stay meaningful even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket whose thread is about to start; the ticket unregisters it.
    pub fn admit(self: &Arc<Self>, socket: Arc<ClientSocket>) -> Result<Ticket, Refused> {
        let mut state = self.state();
        if self.is_closing() {
            return Err(Refused::Closing);
        }
        if state.threads >= self.max_threads {
            return Err(Refused::TooMany);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.threads += 1;
        state.sockets.insert(id, socket);
        Ok(Ticket {
            connections: Arc::clone(self),
            id,
        })
    }

    /// Claims one of the `max_sessions` session slots; None when all are taken.
    pub fn open_session(self: &Arc<Self>) -> Option<SessionSlot> {
        let mut state = self.state();
        if state.sessions >= self.max_sessions {
            return None;
        }
        state.sessions += 1;
        Some(SessionSlot {
            connections: Arc::clone(self),
        })
    }

    /// Whether shutdown has begun (a reader that sees end-of-stream then says goodbye).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Stops admitting sockets and wakes every thread blocked reading from its client.
    pub fn begin_shutdown(&self) {
        let state = self.state();
        self.closing.store(true, Ordering::SeqCst);
        for socket in state.sockets.values() {
            // NB: fails only if the client is already gone, which is what we want anyway.
            let _ = socket.shutdown(Shutdown::Read);
        }
    }

    /// Waits until every connection thread has ended or `timeout` passed; true if drained.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        while state.threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.drained.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Cuts every remaining socket in both directions (threads stuck writing then fail).
    pub fn abort_all(&self) {
        for socket in self.state().sockets.values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Connection threads currently admitted.
    pub fn threads(&self) -> usize {
        self.state().threads
    }

    /// Sessions currently open (past startup; counted against `max_connections`).
    pub fn sessions(&self) -> usize {
        self.state().sessions
    }
}

/// Proof that a connection thread was admitted; dropping it unregisters the socket.
#[derive(Debug)]
pub struct Ticket {
    connections: Arc<Connections>,
    id: u64,
}

impl Ticket {
    /// The registry this ticket belongs to.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.connections.state();
        state.sockets.remove(&self.id);
        state.threads -= 1;
        if state.threads == 0 {
            self.connections.drained.notify_all();
        }
    }
}

/// One of the `max_sessions` session slots, held while a session is open.
#[derive(Debug)]
pub struct SessionSlot {
    connections: Arc<Connections>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.connections.state().sessions -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;

    fn socket_pair() -> (Arc<ClientSocket>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (Arc::new(ClientSocket::Tcp(server)), client)
    }

    fn unix_pair() -> (Arc<ClientSocket>, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        (Arc::new(ClientSocket::Unix(server)), client)
    }

    #[test]
    fn threads_and_sessions_are_bounded_and_released() {
        let conns = Connections::new(1, 2);
        let (a, _ca) = socket_pair();
        let (b, _cb) = socket_pair();
        let (c, _cc) = socket_pair();
        let ta = conns.admit(a).unwrap();
        let tb = conns.admit(b).unwrap();
        assert_eq!(conns.admit(Arc::clone(&c)).unwrap_err(), Refused::TooMany);
        let slot = conns.open_session().unwrap();
        assert!(conns.open_session().is_none(), "one session at most");
        drop(slot);
        assert!(conns.open_session().is_some());
        drop(ta);
        assert_eq!(conns.threads(), 1);
        assert!(conns.admit(c).is_ok());
        drop(tb);
    }

    #[test]
    fn shutdown_wakes_blocked_readers_and_refuses_new_sockets() {
        use std::io::Read;
        let conns = Connections::new(4, 8);
        let (tcp, _tcp_client) = socket_pair();
        let (unix, _unix_client) = unix_pair();
        let readers: Vec<_> = [tcp, unix]
            .into_iter()
            .map(|server| {
                let ticket = conns.admit(Arc::clone(&server)).unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8];
                    let n = (&*server).read(&mut buf).unwrap_or(0);
                    drop(ticket);
                    n
                })
            })
            .collect();
        conns.begin_shutdown();
        assert!(conns.is_closing());
        assert!(conns.wait_drained(Duration::from_secs(30)));
        for reader in readers {
            assert_eq!(reader.join().unwrap(), 0, "reader saw end of stream");
        }
        let (late, _c) = socket_pair();
        assert_eq!(conns.admit(late).unwrap_err(), Refused::Closing);
    }
}
