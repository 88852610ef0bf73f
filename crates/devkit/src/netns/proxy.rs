//! A TCP forwarder owned by a test, with a switch: forward, forward late (latency), or
//! hold everything (a partition that resets nothing).
//!
//! Latency is made here because `tc netem` is not available on every kernel: every
//! chunk read is stamped with the time it may be delivered (now + the delay) and
//! written to the other side no earlier, in order, each direction on its own. So a
//! delay is a delay and not a bandwidth limit: chunks in flight overlap as packets on a
//! long link do. A connection's TCP handshake is with the forwarder itself and is
//! instant; the delay applies to every byte after it (a PostgreSQL connection's
//! start-up and every query pay it both ways).
//!
//! `Mode::Cut` holds: new connections are accepted and left waiting, bytes already
//! read are not delivered, nothing is closed or reset. When the mode changes back,
//! what was held goes through, as retransmissions do when a partition heals. (The
//! peers' kernels still acknowledge each other's segments to the forwarder, so TCP
//! keepalive cannot notice this kind of cut; a cut [`super::Namespace`] link drops
//! packets instead.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes go through as soon as they are read.
    Forward,
    /// Bytes go through this long after they were read, each way.
    Delay(Duration),
    /// Nothing goes through, nothing is closed: held until the mode changes.
    Cut,
}

impl Mode {
    fn delay(self) -> Duration {
        match self {
            Mode::Delay(d) => d,
            Mode::Forward | Mode::Cut => Duration::ZERO,
        }
    }
}

/// Forwards connections accepted on its listener to `target`. Stops (and drops every
/// connection) on drop.
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    mode: watch::Sender<Mode>,
    connections: Arc<AtomicU64>,
    accept: tokio::task::AbortHandle,
}

impl Proxy {
    /// Listens on `listen` (e.g. a host-side link address with port 0).
    pub async fn bind(listen: SocketAddr, target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        Ok(Proxy::serve(listener, target))
    }

    /// Serves on a listener made elsewhere, e.g. by
    /// [`super::Namespace::listen_inside`] (a non-blocking std listener).
    pub fn on(listener: std::net::TcpListener, target: SocketAddr) -> anyhow::Result<Proxy> {
        Ok(Proxy::serve(TcpListener::from_std(listener)?, target))
    }

    fn serve(listener: TcpListener, target: SocketAddr) -> Proxy {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        let accept = tokio::spawn(async move {
            // Owned by this task: aborting it (Drop) drops every connection's task.
            let mut open = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                while open.try_join_next().is_some() {}
                open.spawn(forward(client, target, mode_rx.clone()));
            }
        })
        .abort_handle();
        Proxy {
            addr,
            target,
            mode,
            connections,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // A connection made during a cut waits, accepted, as a SYN would be retransmitted.
    if mode.wait_for(|m| *m != Mode::Cut).await.is_err() {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return; // the client sees the connection closed, as if refused
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, mode.clone()),
        pump(server_read, client_write, mode),
    );
}

/// One direction: a reader that stamps each chunk with its delivery time, and a writer
/// that delivers it then, unless the link is cut (then it waits). EOF is passed on as
/// a shutdown of the write side once everything read was delivered.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: watch::Receiver<Mode>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = {
        let mode = mode.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let due = Instant::now() + mode.borrow().delay();
                        if tx.send((due, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    };
    let writing = async move {
        let mut mode = mode;
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if mode.wait_for(|m| *m != Mode::Cut).await.is_err() {
                return;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, what: &[u8]) -> Vec<u8> {
        stream.write_all(what).await.unwrap();
        let mut back = vec![0; what.len()];
        stream.read_exact(&mut back).await.unwrap();
        back
    }

    #[tokio::test]
    async fn forwards_delays_and_holds() {
        let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), echo().await)
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"ping").await, b"ping");

        proxy.set(Mode::Delay(Duration::from_millis(100)));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut s, b"slow").await, b"slow");
        // Both ways: at least two delays (a lower bound, which no scheduler can break).
        assert!(started.elapsed() >= Duration::from_millis(200));

        proxy.set(Mode::Cut);
        s.write_all(b"held").await.unwrap();
        let mut back = [0u8; 4];
        let held = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut back)).await;
        assert!(held.is_err(), "nothing comes back through a cut");
        proxy.set(Mode::Forward);
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"held", "what was held is delivered once healed");
        assert_eq!(proxy.connections(), 1);
    }
}
