//! UDP sockets bound to `--bind` before they send (BRIEF §4): the listening socket, and one connected socket per flow so ICMP unreachable comes back as ECONNREFUSED.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::core::TransportFailure;
use crate::error::PhoneError;

/// The listening SIP socket on `bind_ip:port`; never a wildcard.
pub fn listen(bind_ip: IpAddr, port: u16) -> Result<UdpSocket, PhoneError> {
    let local = SocketAddr::new(bind_ip, port);
    let socket = new_socket(local).and_then(|socket| {
        socket.bind(&local.into())?;
        into_tokio(socket)
    });
    socket.map_err(|cause| PhoneError::Socket { context: format!("listening on UDP {local}"), cause })
}

/// A flow: a UDP socket bound to `bind_ip` on a port the system picks, connected to `remote`, so
/// only `remote` can answer on it and its ICMP errors reach recv and send.
pub fn connect_flow(bind_ip: IpAddr, remote: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(remote)?;
    socket.bind(&SocketAddr::new(bind_ip, 0).into())?;
    socket.connect(&remote.into())?;
    into_tokio(socket)
}

fn new_socket(address_of_family: SocketAddr) -> io::Result<Socket> {
    Socket::new(Domain::for_address(address_of_family), Type::DGRAM, Some(Protocol::UDP))
}

fn into_tokio(socket: Socket) -> io::Result<UdpSocket> {
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// What a socket error means for the flow: ECONNREFUSED is the ICMP port unreachable `refuse` sends.
pub fn transport_failure(error: &io::Error) -> TransportFailure {
    if error.kind() == io::ErrorKind::ConnectionRefused {
        TransportFailure::Refused
    } else {
        TransportFailure::Other(error.to_string())
    }
}
