//! Framing: messages out of a TCP/TLS byte stream by Content-Length, RFC 5626 keep-alives, and what a UDP datagram holds.

use crate::error::Diagnostic;
use crate::message::MAX_MESSAGE_BYTES;
use crate::Message;

/// Which side of a flow reads the stream: a server reads pings (`CRLFCRLF`), a client reads pongs (`CRLF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramerRole {
    Server,
    Client,
}

/// One unit read off a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message, parsed (its diagnostics may hold warnings).
    Message(Message),
    /// RFC 5626 §4.4.1 ping: `CRLF CRLF`.
    Ping,
    /// RFC 5626 §4.4.1 pong: `CRLF`.
    Pong,
    /// Bytes that cannot be framed; the stream cannot be resynchronised and should be closed.
    Broken(Diagnostic),
}

/// Splits a byte stream into frames. Buffers at most one message; never panics.
#[derive(Debug)]
pub struct StreamFramer {
    role: FramerRole,
    buf: Vec<u8>,
    broken: bool,
}

impl StreamFramer {
    pub fn new(role: FramerRole) -> StreamFramer {
        StreamFramer { role, buf: Vec::new(), broken: false }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes buffered but not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.broken {
            return None;
        }
        loop {
            if self.buf.starts_with(b"\r\n") {
                match self.role {
                    FramerRole::Client => {
                        self.buf.drain(..2);
                        return Some(Frame::Pong);
                    }
                    FramerRole::Server => {
                        if self.buf.starts_with(b"\r\n\r\n") {
                            self.buf.drain(..4);
                            return Some(Frame::Ping);
                        }
                        if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf) {
                            return None; // Maybe half a ping.
                        }
                        // A stray CRLF before a start line is ignored (RFC 3261 §7.5).
                        self.buf.drain(..2);
                        continue;
                    }
                }
            }
            break;
        }
        if self.buf.is_empty() {
            return None;
        }
        let Some(head_end) = find_subslice(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_MESSAGE_BYTES {
                return Some(self.broken(Diagnostic::error("too-large", "header section exceeds the size limit")));
            }
            return None;
        };
        let body_start = head_end + 4;
        let content_length = match content_length_of(&self.buf[..head_end]) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Some(self.broken(Diagnostic::error(
                    "content-length",
                    "a message on a stream must carry Content-Length (RFC 3261 §18.3)",
                )));
            }
            Err(diagnostic) => return Some(self.broken(diagnostic)),
        };
        if content_length > MAX_MESSAGE_BYTES {
            return Some(self.broken(Diagnostic::error(
                "too-large",
                format!("Content-Length {content_length} exceeds {MAX_MESSAGE_BYTES}"),
            )));
        }
        let end = body_start + content_length;
        if self.buf.len() < end {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        match Message::parse(&bytes) {
            Ok(message) => Some(Frame::Message(message)),
            Err(malformed) => {
                let diagnostic = malformed
                    .diagnostics
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Diagnostic::error("malformed", "unparseable message"));
                Some(self.broken(diagnostic))
            }
        }
    }

    fn broken(&mut self, diagnostic: Diagnostic) -> Frame {
        self.broken = true;
        self.buf = Vec::new();
        Frame::Broken(diagnostic)
    }
}

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads Content-Length (or `l`) out of a raw header section.
fn content_length_of(head: &[u8]) -> Result<Option<usize>, Diagnostic> {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = line[colon + 1..].trim_ascii();
            return std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .map(Some)
                .ok_or_else(|| Diagnostic::error("content-length", "bad Content-Length"));
        }
    }
    Ok(None)
}

/// What one UDP datagram holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    /// A STUN message (RFC 5389: top two bits zero, magic cookie at bytes 4..8).
    Stun,
    /// Only CR and LF octets: an RFC 5626 or legacy NAT keep-alive.
    KeepAlive,
    /// Anything else is taken for SIP.
    Sip,
}

pub fn classify_datagram(bytes: &[u8]) -> DatagramKind {
    if crate::stun::looks_like_stun(bytes) {
        DatagramKind::Stun
    } else if !bytes.is_empty() && bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
        DatagramKind::KeepAlive
    } else {
        DatagramKind::Sip
    }
}
