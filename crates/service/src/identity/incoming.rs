//! Accepting connections for tonic: TCP options, the TLS handshake (bounded in time and
//! in number, off the accept loop so a slow or silent client stalls nobody), and the
//! caller's identity read once per connection rather than on every request.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::tls::ServerTls;
use super::{Caller, SpiffeId};

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past it, new connections wait to start theirs.
const MAX_HANDSHAKES: usize = 256;
/// TCP keepalive probes after this idle time find peers that vanished (a killed node).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// What tonic puts in every request's extensions for the connection it came on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: Option<SocketAddr>,
    pub caller: Caller,
}

/// An accepted client connection, TLS or plaintext.
pub struct Connection {
    io: Io,
    info: ConnectionInfo,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The connections accepted on `listener` until `stop`: TLS with client certificates
/// when `tls` is given, plaintext otherwise.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    stop: CancellationToken,
) -> ReceiverStream<io::Result<Connection>> {
    let (send, receive) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, tls, send, stop));
    ReceiverStream::new(receive)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    send: mpsc::Sender<io::Result<Connection>>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
            _ = send.closed() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: say so, and give the process a
                // moment instead of spinning on the same error.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // TCP_NODELAY: small gRPC responses must not wait on Nagle's algorithm (≈40 ms).
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        match &tls {
            None => {
                let connection = Connection {
                    io: Io::Plain(tcp),
                    info: ConnectionInfo {
                        remote: Some(remote),
                        caller: Caller::Anonymous,
                    },
                };
                if send.send(Ok(connection)).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let send = send.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let caller = caller_of(&stream);
                            let connection = Connection {
                                io: Io::Tls(Box::new(stream)),
                                info: ConnectionInfo {
                                    remote: Some(remote),
                                    caller,
                                },
                            };
                            let _ = send.send(Ok(connection)).await;
                        }
                        // Not an ERROR: anyone who can reach the port can fail a handshake.
                        Ok(Err(e)) => handshake_failed(remote, "refused", &e.to_string()),
                        Err(_) => handshake_failed(remote, "timeout", "no handshake within 10s"),
                    }
                });
            }
        }
    }
}

fn handshake_failed(remote: SocketAddr, reason: &'static str, detail: &str) {
    metrics::counter!("dossier_tls_handshake_failures_total", "reason" => reason).increment(1);
    tracing::info!(target: "dossier::tls", %remote, reason, detail, "TLS handshake failed");
}

/// The SPIFFE ID of the client certificate rustls verified.
fn caller_of(stream: &TlsStream<TcpStream>) -> Caller {
    let (_, session) = stream.get_ref();
    let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) else {
        return Caller::Unnamed;
    };
    match SpiffeId::from_certificate(leaf) {
        Ok(id) => Caller::Workload(id),
        Err(e) => {
            tracing::info!(target: "dossier::tls", error = %e, "client certificate names no usable SPIFFE ID");
            Caller::Unnamed
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;
    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
