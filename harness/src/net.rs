//! Socket helpers: every socket the harness opens binds its own address first (BRIEF §4).

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Binds a non-blocking UDP socket on exactly `addr`, for use inside a tokio runtime.
pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
