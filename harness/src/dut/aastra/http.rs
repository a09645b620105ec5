//! The provisioning server the vendor's phone fetches its cfg from: HTTP/1.1 GET of exactly `/aastra.cfg` and `/<MAC>.cfg`, served from memory, 404 for anything else.
//!
//! Hand-written on tokio rather than hyper: it serves two strings from memory and must refuse
//! everything else, so what matters is what it does not do (no file system, no path decoding,
//! no keep-alive, nothing read past a bound, no request held open past a deadline), which is
//! easier to see in 150 lines than to configure out of a general server; and the workspace has
//! no HTTP crate to reuse (refphone's push server is hand-written the same way).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::HarnessError;

/// The most a request may send before its head ends (request line and headers): a phone's GET
/// is a few hundred octets.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, what is still read and dropped before closing (a refused request's rest),
/// so the close is no reset that could overtake the answer: at most this much, for at most
/// [`LINGER_TIME`].
const LINGER_BYTES: usize = 64 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// The two files of one phone, by the path it asks for them under.
#[derive(Debug)]
struct Files {
    global: String,
    /// `<MAC>.cfg`, the MAC upper case.
    mac_name: String,
    mac: String,
}

impl Files {
    /// The body served for a request target, if any: `/aastra.cfg`, or `/<MAC>.cfg` with the
    /// MAC in any case. The target is compared as sent, never decoded or normalised, so no
    /// spelling of `..`, `%2e%2e` or an absolute path can name anything else.
    fn lookup(&self, target: &str) -> Option<(&str, &str)> {
        let name = target.strip_prefix('/')?;
        if name == "aastra.cfg" {
            Some(("aastra.cfg", &self.global))
        } else if name.eq_ignore_ascii_case(&self.mac_name) {
            Some((&self.mac_name, &self.mac))
        } else {
            None
        }
    }
}

/// A running provisioning server for one phone. Dropping it stops the listener and every
/// connection it is serving.
#[derive(Debug)]
pub struct ProvisioningServer {
    address: SocketAddr,
    fetched: watch::Receiver<BTreeSet<String>>,
    task: JoinHandle<()>,
}

impl ProvisioningServer {
    /// Listens on `address` (port 0 picks a free one) and serves `aastra.cfg` and `<mac>.cfg`.
    pub async fn start(
        address: SocketAddr,
        mac: &str,
        global_cfg: String,
        mac_cfg: String,
    ) -> Result<ProvisioningServer, HarnessError> {
        let mac = crate::provision::parse_mac(mac).map_err(HarnessError::Provision)?;
        let listener = TcpListener::bind(address).await.map_err(|source| HarnessError::Bind {
            what: "the provisioning server".into(),
            addr: address,
            source,
        })?;
        let address = listener.local_addr()?;
        let files = Arc::new(Files { global: global_cfg, mac_name: format!("{mac}.cfg"), mac: mac_cfg });
        let (fetched_tx, fetched) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(serve(listener, files, Arc::new(fetched_tx)));
        tracing::info!(%address, "provisioning server up: aastra.cfg and {mac}.cfg");
        Ok(ProvisioningServer { address, fetched, task })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The files served with 200 so far (`aastra.cfg`, `<MAC>.cfg`), updated as they are fetched.
    pub fn fetched(&self) -> watch::Receiver<BTreeSet<String>> {
        self.fetched.clone()
    }
}

impl Drop for ProvisioningServer {
    fn drop(&mut self) {
        // The connections' JoinSet lives in this task: aborting it drops them all.
        self.task.abort();
    }
}

/// Connections served at once; more are closed on accept, so idle connections held open cannot
/// use up the descriptors the lab's own sockets need.
const MAX_CONNECTIONS: usize = 16;

async fn serve(listener: TcpListener, files: Arc<Files>, fetched: Arc<watch::Sender<BTreeSet<String>>>) {
    let mut connections = JoinSet::new();
    let mut backoff = crate::net::AcceptBackoff::default();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff.accepted();
                if connections.len() >= MAX_CONNECTIONS {
                    tracing::warn!("provisioning server: {MAX_CONNECTIONS} connections open; {peer} closed");
                    drop(stream);
                    continue;
                }
                connections.spawn(answer(stream, peer, files.clone(), fetched.clone()));
            }
            Err(e) => {
                let pause = backoff.failed();
                tracing::warn!("provisioning server: accept failed ({e}); again in {pause:?}");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// What a request head asks for, or the status refusing it.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Get(String),
    Refused(u16, &'static str),
}

/// Reads one request head, bounded in size and time.
async fn read_request(stream: &mut TcpStream) -> Request {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let reading = async {
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return parse_head(&head[..end]);
            }
            if head.len() > MAX_REQUEST_BYTES {
                return Request::Refused(400, "request too large");
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Request::Refused(400, "incomplete request"),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, reading).await.unwrap_or(Request::Refused(408, "request timeout"))
}

/// The request line of a head: `GET <target> HTTP/1.x`.
fn parse_head(head: &[u8]) -> Request {
    let Ok(head) = std::str::from_utf8(head) else { return Request::Refused(400, "not text") };
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Refused(400, "bad request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Refused(400, "not HTTP/1");
    }
    if method != "GET" {
        return Request::Refused(405, "only GET");
    }
    Request::Get(target.to_owned())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Error",
    }
}

async fn answer(
    mut stream: TcpStream,
    peer: SocketAddr,
    files: Arc<Files>,
    fetched: Arc<watch::Sender<BTreeSet<String>>>,
) {
    let request = read_request(&mut stream).await;
    let (status, body, extra) = match &request {
        Request::Get(target) => match files.lookup(target) {
            Some((name, body)) => {
                tracing::info!(%peer, %target, "provisioning: served {name}");
                let name = name.to_owned();
                fetched.send_modify(|set| {
                    set.insert(name);
                });
                (200, body.to_owned(), "")
            }
            None => {
                tracing::warn!(%peer, target = %target.escape_debug(), "provisioning: 404, not a file of this phone");
                (404, String::new(), "")
            }
        },
        Request::Refused(status, why) => {
            tracing::warn!(%peer, status, "provisioning: refused, {why}");
            (*status, String::new(), if *status == 405 { "Allow: GET\r\n" } else { "" })
        }
    };
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    if let Err(e) = stream.write_all(response.as_bytes()).await {
        tracing::debug!(%peer, "provisioning: answer not delivered: {e}");
        return;
    }
    let _ = stream.shutdown().await;
    linger(&mut stream).await;
}

/// Reads and drops what the client still sends, bounded in octets and time, until it closes.
async fn linger(stream: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::{Files, Request, parse_head};

    fn files() -> Files {
        Files { global: "global".into(), mac_name: "00085D000001.cfg".into(), mac: "line".into() }
    }

    #[test]
    fn only_the_two_files_by_their_exact_names() {
        let files = files();
        assert_eq!(files.lookup("/aastra.cfg").map(|f| f.1), Some("global"));
        assert_eq!(files.lookup("/00085D000001.cfg").map(|f| f.1), Some("line"));
        assert_eq!(files.lookup("/00085d000001.cfg").map(|f| f.1), Some("line"));
        for other in [
            "/00085D000002.cfg",
            "aastra.cfg",
            "/../aastra.cfg",
            "/./aastra.cfg",
            "//aastra.cfg",
            "/%2e%2e/aastra.cfg",
            "/aastra%2ecfg",
            "/etc/passwd",
            "/aastra.cfg?x=1",
            "http://127.0.0.1/aastra.cfg",
            "/",
            "",
        ] {
            assert_eq!(files.lookup(other), None, "{other}");
        }
    }

    #[test]
    fn request_lines() {
        assert_eq!(parse_head(b"GET /aastra.cfg HTTP/1.1\r\nHost: x"), Request::Get("/aastra.cfg".into()));
        assert_eq!(parse_head(b"POST /aastra.cfg HTTP/1.1"), Request::Refused(405, "only GET"));
        assert!(matches!(parse_head(b"GET /a b HTTP/1.1"), Request::Refused(400, _)));
        assert!(matches!(parse_head(b"GET /aastra.cfg SIP/2.0"), Request::Refused(400, _)));
        assert!(matches!(parse_head(b"\xff\xfe"), Request::Refused(400, _)));
    }
}
