//! TCP and TLS flows for the shell: a connection bound to `--bind` before it connects, framed with `sip::StreamFramer`, one task per connection; and the listening TCP port for connections servers open.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sip::{Frame, FramerRole, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use super::ShellEvent;
use crate::core::{Arrival, FlowId, TransportFailure};

/// Bytes the loop wants written on a connection.
pub type Writer = mpsc::UnboundedSender<Vec<u8>>;

/// A byte stream of either kind.
trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// What an I/O error on a connection means for the flow: a refused or reset connection is the
/// `refuse` fault's RST; anything else is reported with its text.
pub fn stream_failure(error: &std::io::Error) -> TransportFailure {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => TransportFailure::Refused,
        ErrorKind::UnexpectedEof => TransportFailure::Closed,
        _ => TransportFailure::Other(error.to_string()),
    }
}

/// Where one outgoing stream flow connects, and how.
pub struct StreamTarget {
    pub epoch: u64,
    pub flow: FlowId,
    pub remote: SocketAddr,
    pub bind_ip: IpAddr,
    /// TLS with this connector and server name, or plain TCP.
    pub tls: Option<(TlsConnector, Option<String>)>,
    /// How long connecting (and the TLS handshake) may take.
    pub connect_timeout: Duration,
}

/// Opens the flow and runs it until it fails or the shell drops its writer.
pub async fn run_flow(target: StreamTarget, events: mpsc::UnboundedSender<ShellEvent>) {
    let StreamTarget { epoch, flow, remote, .. } = target;
    let fail = |failure: TransportFailure| {
        let _ = events.send(ShellEvent::FlowFailed { epoch, flow, failure });
    };
    let opened = tokio::time::timeout(target.connect_timeout, open(&target)).await;
    let (stream, local) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(failure)) => return fail(failure),
        Err(_) => {
            return fail(TransportFailure::Other(format!("no connection to {remote} within the transaction timer")));
        }
    };
    let (writer, to_write) = mpsc::unbounded_channel();
    if events.send(ShellEvent::FlowOpened { epoch, flow, local, writer: Some(writer) }).is_err() {
        return;
    }
    let arrival = Arrival::Flow(flow);
    match pump(stream, to_write, FramerRole::Client, arrival, epoch, &events).await {
        Ok(()) => {}
        Err(failure) => fail(failure),
    }
}

async fn open(target: &StreamTarget) -> Result<(Box<dyn ByteStream>, SocketAddr), TransportFailure> {
    let socket = if target.remote.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| stream_failure(&e))?;
    // Bind the phone's own address before connecting (BRIEF §4).
    socket.bind(SocketAddr::new(target.bind_ip, 0)).map_err(|e| stream_failure(&e))?;
    let tcp = socket.connect(target.remote).await.map_err(|e| stream_failure(&e))?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().map_err(|e| stream_failure(&e))?;
    match &target.tls {
        None => Ok((Box::new(tcp), local)),
        Some((connector, name)) => {
            let name = super::tls::server_name(name.as_deref(), target.remote.ip()).map_err(TransportFailure::Other)?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| TransportFailure::Other(format!("TLS handshake with {}: {e}", target.remote)))?;
            Ok((Box::new(tls), local))
        }
    }
}

/// Copies queued bytes out and frames what comes in, until the shell drops the writer (Ok) or the connection fails.
async fn pump(
    stream: Box<dyn ByteStream>,
    mut to_write: mpsc::UnboundedReceiver<Vec<u8>>,
    role: FramerRole,
    arrival: Arrival,
    epoch: u64,
    events: &mpsc::UnboundedSender<ShellEvent>,
) -> Result<(), TransportFailure> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(role);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            queued = to_write.recv() => match queued {
                Some(bytes) => writer.write_all(&bytes).await.map_err(|e| stream_failure(&e))?,
                None => {
                    let _ = writer.shutdown().await;
                    return Ok(());
                }
            },
            read = reader.read(&mut buffer) => {
                let length = read.map_err(|e| stream_failure(&e))?;
                if length == 0 {
                    return Err(TransportFailure::Closed);
                }
                framer.push(&buffer[..length]);
                while let Some(frame) = framer.next_frame() {
                    match frame {
                        Frame::Ping => writer.write_all(b"\r\n").await.map_err(|e| stream_failure(&e))?,
                        Frame::Broken(diagnostic) => {
                            return Err(TransportFailure::Other(format!("unframeable stream: {diagnostic}")));
                        }
                        frame => {
                            if events.send(ShellEvent::Frame { epoch, arrival, frame }).is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Accepts the connections servers open to the phone's TCP port; each is served until it closes.
pub async fn accept_inbound(listener: TcpListener, epoch: u64, events: mpsc::UnboundedSender<ShellEvent>) {
    let mut next_connection = 0u64;
    loop {
        let Ok((stream, remote)) = listener.accept().await else { continue };
        let connection = next_connection;
        next_connection += 1;
        tracing::debug!("inbound TCP connection {connection} from {remote}");
        let (writer, to_write) = mpsc::unbounded_channel();
        if events.send(ShellEvent::InboundOpened { epoch, connection, writer }).is_err() {
            return;
        }
        let events = events.clone();
        tokio::spawn(async move {
            let arrival = Arrival::Inbound { connection };
            let _ = pump(Box::new(stream), to_write, FramerRole::Server, arrival, epoch, &events).await;
            let _ = events.send(ShellEvent::InboundClosed { epoch, connection });
        });
    }
}
