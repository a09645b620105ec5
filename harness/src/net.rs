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

/// Back-off for an accept loop whose `accept` fails: out of file descriptors (EMFILE, ENFILE),
/// buffers or memory, `accept` fails again at once, and retrying at once spins a core. Each
/// failure in a row doubles the pause, from 10 ms up to 1 s; an accepted connection resets it.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    pub const FIRST: std::time::Duration = std::time::Duration::from_millis(10);
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(1);

    /// The pause before the next `accept`, after one more failure.
    pub fn failed(&mut self) -> std::time::Duration {
        let pause = Self::FIRST.saturating_mul(1 << self.failures.min(16)).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    pub fn accepted(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::AcceptBackoff;

    #[test]
    fn failing_accepts_back_off_doubling_to_a_second_and_a_success_resets() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed()).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().unwrap(), Duration::from_secs(1));
        backoff.accepted();
        assert_eq!(backoff.failed(), Duration::from_millis(10));
    }
}

/// The tasks of one listener's connections (and an element's delayed answers): owned by the lab
/// through its element, so they end with it instead of living on detached. Finished tasks are
/// reaped at each spawn, so the set holds only live ones.
#[derive(Default)]
pub(crate) struct ConnectionTasks {
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl ConnectionTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, tokio::task::JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Ends every task (the lab is going away).
    pub fn abort_all(&self) {
        self.lock().abort_all();
    }

    /// Ends every task and waits until each is gone, its socket closed with it.
    pub async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.lock());
        tasks.shutdown().await;
    }

    /// The tasks not yet finished.
    pub fn live(&self) -> usize {
        let mut tasks = self.lock();
        while tasks.try_join_next().is_some() {}
        tasks.len()
    }
}
