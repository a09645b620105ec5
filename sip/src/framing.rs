//! Framing: messages out of a TCP/TLS byte stream by Content-Length, RFC 5626 keep-alives, and what a UDP datagram holds.

use std::collections::VecDeque;

use crate::Message;
use crate::error::Diagnostic;
use crate::message::{MAX_MESSAGE_BYTES, find_head_end};
use crate::scan::parse_digits;

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

/// How much of one `push` is buffered before the frames in it are cut out, so the buffer stays
/// within one message plus this much however large a push is.
const PUSH_SLICE_BYTES: usize = 64 * 1024;

/// Splits a byte stream into frames. Buffers at most one incomplete message; never panics.
///
/// Frames are cut out as bytes are pushed and queued until [`StreamFramer::next_frame`] takes them;
/// after a [`Frame::Broken`] nothing more is read.
#[derive(Debug)]
pub struct StreamFramer {
    role: FramerRole,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already framed, dropped when the push that framed them ends.
    consumed: usize,
    /// How far past `consumed` the search for the end of the header section got without finding it.
    searched: usize,
    ready: VecDeque<Frame>,
    broken: bool,
}

impl StreamFramer {
    pub fn new(role: FramerRole) -> StreamFramer {
        StreamFramer { role, buf: Vec::new(), consumed: 0, searched: 0, ready: VecDeque::new(), broken: false }
    }

    /// Appends bytes read from the stream and frames what they complete.
    pub fn push(&mut self, bytes: &[u8]) {
        for slice in bytes.chunks(PUSH_SLICE_BYTES) {
            if self.broken {
                return;
            }
            self.buf.extend_from_slice(slice);
            while let Some(frame) = self.frame_one() {
                self.ready.push_back(frame);
            }
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
    }

    /// Bytes buffered but not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Cuts one frame off the front of the unframed bytes, if they hold a whole one.
    fn frame_one(&mut self) -> Option<Frame> {
        if self.broken {
            return None;
        }
        let unframed = &self.buf[self.consumed..];
        if unframed.starts_with(b"\r\n") {
            match self.role {
                FramerRole::Client => return Some(self.consume(2, Frame::Pong)),
                FramerRole::Server => {
                    if unframed.starts_with(b"\r\n\r\n") {
                        return Some(self.consume(4, Frame::Ping));
                    }
                    if unframed.len() < 4 && b"\r\n\r\n".starts_with(unframed) {
                        return None; // Maybe half a ping.
                    }
                    // A stray CRLF before a start line is ignored (RFC 3261 §7.5).
                    self.consumed += 2;
                    self.searched = 0;
                    return self.frame_one();
                }
            }
        }
        if unframed.is_empty() {
            return None;
        }
        let resume = self.searched.saturating_sub(3);
        let Some((head_end, body_start)) = find_head_end(&unframed[resume..]) else {
            self.searched = unframed.len();
            if unframed.len() > MAX_MESSAGE_BYTES {
                return Some(self.broken(Diagnostic::error("too-large", "header section exceeds the size limit")));
            }
            return None;
        };
        let (head_end, body_start) = (resume + head_end, resume + body_start);
        let content_length = match content_length_of(&unframed[..head_end]) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Some(self.broken(Diagnostic::error(
                    "content-length",
                    "a message on a stream must carry Content-Length (RFC 3261 §18.3)",
                )));
            }
            Err(diagnostic) => return Some(self.broken(diagnostic)),
        };
        if content_length > MAX_MESSAGE_BYTES - body_start.min(MAX_MESSAGE_BYTES) {
            return Some(self.broken(Diagnostic::error(
                "too-large",
                format!("a message of {body_start} header octets and Content-Length {content_length} exceeds {MAX_MESSAGE_BYTES}"),
            )));
        }
        let end = body_start + content_length;
        if unframed.len() < end {
            self.searched = 0;
            return None;
        }
        match Message::parse(&unframed[..end]) {
            Ok(message) => Some(self.consume(end, Frame::Message(message))),
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

    fn consume(&mut self, len: usize, frame: Frame) -> Frame {
        self.consumed += len;
        self.searched = 0;
        frame
    }

    fn broken(&mut self, diagnostic: Diagnostic) -> Frame {
        self.broken = true;
        self.buf = Vec::new();
        self.consumed = 0;
        self.searched = 0;
        Frame::Broken(diagnostic)
    }
}

/// Reads Content-Length (or `l`) out of a raw header section, skipping the start line and folded lines.
fn content_length_of(head: &[u8]) -> Result<Option<usize>, Diagnostic> {
    for line in head.split(|&b| b == b'\n').skip(1) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = line[colon + 1..].trim_ascii();
            return std::str::from_utf8(value)
                .ok()
                .and_then(parse_digits::<usize>)
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
