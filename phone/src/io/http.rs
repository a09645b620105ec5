//! The vendor's XML push over HTTP for the shell: a tiny bounded HTTP/1.1 server on `--http`, one request per connection, commands handed to the phone's loop.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::ShellEvent;
use crate::error::PhoneError;
use crate::push::{HttpParse, MAX_BODY_BYTES, MAX_HEAD_BYTES, commands_of, http_response, parse_http_request};

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The listener on exactly `address`.
pub async fn listen(address: SocketAddr) -> Result<TcpListener, PhoneError> {
    TcpListener::bind(address).await.map_err(|cause| PhoneError::PushListener { address, cause })
}

/// Serves pushes until the task is aborted. `allowed`: the `xml application post list`, if set.
pub async fn serve(listener: TcpListener, allowed: Option<Vec<IpAddr>>, events: mpsc::UnboundedSender<ShellEvent>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let events = events.clone();
        let allowed = allowed.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, peer, allowed.as_deref(), &events).await {
                tracing::debug!("XML push from {peer}: {error}");
            }
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    peer: SocketAddr,
    allowed: Option<&[IpAddr]>,
    events: &mpsc::UnboundedSender<ShellEvent>,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let parsed = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            match parse_http_request(&buffer) {
                HttpParse::Incomplete => {}
                done => return Ok::<_, std::io::Error>(Some(done)),
            }
            if buffer.len() > MAX_HEAD_BYTES + MAX_BODY_BYTES {
                return Ok(None);
            }
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(None);
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
    })
    .await;
    let response = match parsed {
        Err(_) => http_response(408, "the request did not arrive in time"),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(HttpParse::Malformed(error)))) => http_response(error.status(), &error.to_string()),
        Ok(Ok(Some(HttpParse::Incomplete))) => return Ok(()),
        Ok(Ok(Some(HttpParse::Complete(request)))) => {
            if allowed.is_some_and(|list| !list.contains(&peer.ip())) {
                tracing::warn!("XML push from {peer} refused: not in the xml application post list");
                http_response(403, "the sender is not in the xml application post list")
            } else {
                match commands_of(&request) {
                    Ok(commands) => {
                        for command in commands {
                            tracing::info!("XML push from {peer}: {command:?}");
                            let _ = events.send(ShellEvent::Push(command));
                        }
                        http_response(200, "")
                    }
                    Err(error) => {
                        tracing::warn!("XML push from {peer} refused: {error}");
                        http_response(error.status(), &error.to_string())
                    }
                }
            }
        }
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}
