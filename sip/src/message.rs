//! The message: start line, headers, body and the raw bytes it came from; datagram parsing, printing and builders.

use std::fmt;

use crate::auth::{Challenge, Credentials};
use crate::error::{Diagnostic, Malformed};
use crate::header::{Header, HeaderName};
use crate::scan::{find_byte, is_token, is_word, parse_digits, trim_lws};
use crate::views::{CSeq, Contact, NameAddr, RetryAfter, SubscriptionState, Via, list_items};
use crate::{Error, Uri};

/// Most messages a phone sends fit here; larger ones are refused rather than buffered without bound.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// A SIP method; unknown extension methods are kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Register,
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Subscribe,
    Notify,
    Refer,
    Message,
    Info,
    Prack,
    Update,
    Publish,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        // Methods are case-sensitive (RFC 3261 §7.1).
        match s {
            "REGISTER" => Method::Register,
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Publish => "PUBLISH",
            Method::Other(m) => m,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request line or a status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// The Request-URI is kept as text; [`Message::request_uri`] parses it.
    Request {
        method: Method,
        uri: String,
    },
    Response {
        status: u16,
        reason: String,
    },
}

/// One SIP message. Parsed messages keep their raw bytes and any diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// Complaints found while parsing; empty for a clean or a built message.
    pub diagnostics: Vec<Diagnostic>,
    raw: Option<Vec<u8>>,
}

impl Message {
    /// A new request with no headers.
    pub fn request(method: Method, uri: impl fmt::Display) -> Message {
        Message {
            start: StartLine::Request { method, uri: uri.to_string() },
            headers: Vec::new(),
            body: Vec::new(),
            diagnostics: Vec::new(),
            raw: None,
        }
    }

    /// A new response with the standard reason phrase and no headers.
    pub fn response(status: u16) -> Message {
        Message {
            start: StartLine::Response { status, reason: reason_phrase(status).to_owned() },
            headers: Vec::new(),
            body: Vec::new(),
            diagnostics: Vec::new(),
            raw: None,
        }
    }

    /// A response to `request` carrying its Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2),
    /// with `to_tag` added to To when To has none.
    pub fn response_to(request: &Message, status: u16, to_tag: Option<&str>) -> Message {
        let mut response = Message::response(status);
        for header in &request.headers {
            match header.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    response.headers.push(header.clone())
                }
                HeaderName::To => {
                    let mut value = header.value.clone();
                    if let Some(tag) = to_tag {
                        let has_tag = NameAddr::parse(&value).map(|to| to.tag().is_some()).unwrap_or(true);
                        if !has_tag {
                            value.push_str(";tag=");
                            value.push_str(tag);
                        }
                    }
                    response.headers.push(Header { name: HeaderName::To, value });
                }
                _ => {}
            }
        }
        response
    }

    /// Parses one UDP datagram (or any buffer that holds exactly one message).
    ///
    /// Returns `Err` only when no message can be framed: a bad start line, no end of headers, or a
    /// Content-Length beyond the buffer. Bad header values are left for the typed views to report.
    pub fn parse(bytes: &[u8]) -> Result<Message, Malformed> {
        let malformed = |code, message: String| Malformed {
            raw: bytes.to_vec(),
            diagnostics: vec![Diagnostic::error(code, message)],
        };
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(malformed(
                "too-large",
                format!("message of {} bytes exceeds {MAX_MESSAGE_BYTES}", bytes.len()),
            ));
        }
        let mut diagnostics = Vec::new();
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let mut start = 0;
        while bytes[start..].starts_with(b"\r\n") {
            start += 2;
        }
        let (head_end, body_start) = match find_head_end(&bytes[start..]) {
            Some((h, b)) => (start + h, start + b),
            None => return Err(malformed("no-header-end", "no empty line ends the header section".into())),
        };
        let head = match std::str::from_utf8(&bytes[start..head_end]) {
            Ok(head) => head,
            Err(e) => {
                return Err(malformed(
                    "not-utf8",
                    format!("header section is not UTF-8 at byte {}", start + e.valid_up_to()),
                ));
            }
        };
        // Every line should end with CRLF. The last header line's terminator lies outside `head`,
        // so that one line lacks its CR there; any other without one ended with a bare LF.
        let mut lines_without_cr = 0;
        let mut lines = Lines(head).map(|line| {
            line.strip_suffix('\r').unwrap_or_else(|| {
                lines_without_cr += 1;
                line
            })
        });
        let start_line = lines.next().unwrap_or("");
        let start_line = parse_start_line(start_line).map_err(|e| malformed("start-line", e))?;

        let mut headers: Vec<Header> = Vec::with_capacity(16);
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation (RFC 3261 §7.3.1): joined with one space, and nothing for a blank one.
                let Some(last) = headers.last_mut() else {
                    return Err(malformed("header-line", "continuation line before any header".into()));
                };
                let more = trim_lws(line);
                if !more.is_empty() {
                    if !last.value.is_empty() {
                        last.value.push(' ');
                    }
                    last.value.push_str(more);
                }
                continue;
            }
            // Names are short: a plain loop beats memchr's set-up here.
            let colon = line.bytes().position(|c| c == b':');
            let Some((name, value)) = colon.and_then(|colon| Some((line.get(..colon)?, line.get(colon + 1..)?))) else {
                return Err(malformed("header-line", format!("header line without ':': {line:?}")));
            };
            let name = name.trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(malformed("header-line", format!("bad header name {name:?}")));
            }
            headers.push(Header { name: HeaderName::parse(name), value: trim_lws(value).to_owned() });
        }

        if lines_without_cr > 1 || body_start - head_end != 4 {
            diagnostics.push(Diagnostic::warning("bare-lf", "a line ends with LF instead of CRLF"));
        }

        let available = bytes.len() - body_start;
        let body_len = match content_length(&headers) {
            Err(message) => return Err(malformed("content-length", message)),
            Ok(None) => available,
            Ok(Some(n)) if n <= available => {
                if n < available {
                    diagnostics.push(Diagnostic::warning(
                        "trailing-octets",
                        format!("{} octets after the body are ignored (RFC 4475 §3.1.1.8)", available - n),
                    ));
                }
                n
            }
            Ok(Some(n)) => {
                return Err(malformed(
                    "content-length",
                    format!("Content-Length {n} exceeds the {available} octets after the headers"),
                ));
            }
        };
        Ok(Message {
            start: start_line,
            headers,
            body: bytes[body_start..body_start + body_len].to_vec(),
            diagnostics,
            raw: Some(bytes.to_vec()),
        })
    }

    /// The bytes this message was parsed from, if it was parsed.
    pub fn raw(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<Result<Uri, Error>> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(Uri::parse(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.iter().find(|h| &h.name == name).map(|h| h.value.as_str())
    }

    /// Every value of `name`, list headers split at their commas, in order of appearance.
    pub fn header_values(&self, name: &HeaderName) -> Vec<&str> {
        self.values(name).collect()
    }

    /// [`Message::header_values`] without collecting them.
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a str> {
        let list = name.is_list();
        self.headers.iter().filter(move |h| &h.name == name).flat_map(move |h| {
            let (items, whole) = if list { (Some(list_items(&h.value)), None) } else { (None, Some(h.value.as_str())) };
            items.into_iter().flatten().chain(whole)
        })
    }

    fn required(&self, name: HeaderName, label: &'static str) -> Result<&str, Error> {
        self.header(&name).ok_or(Error::MissingHeader { header: label })
    }

    pub fn vias(&self) -> Result<Vec<Via>, Error> {
        self.values(&HeaderName::Via).map(Via::parse).collect()
    }

    pub fn top_via(&self) -> Result<Via, Error> {
        let first = self.values(&HeaderName::Via).next();
        Via::parse(first.ok_or(Error::MissingHeader { header: "Via" })?)
    }

    pub fn from(&self) -> Result<NameAddr, Error> {
        NameAddr::parse(self.required(HeaderName::From, "From")?)
    }

    pub fn to(&self) -> Result<NameAddr, Error> {
        NameAddr::parse(self.required(HeaderName::To, "To")?)
    }

    pub fn call_id(&self) -> Result<&str, Error> {
        let id = self.required(HeaderName::CallId, "Call-ID")?;
        // callid = word [ "@" word ] (RFC 3261 §25).
        let (local, host) = id.split_once('@').unwrap_or((id, "x"));
        if !is_word(local) || !is_word(host) {
            return Err(Error::syntax("Call-ID", format!("bad Call-ID {id:?}")));
        }
        Ok(id)
    }

    pub fn cseq(&self) -> Result<CSeq, Error> {
        CSeq::parse(self.required(HeaderName::CSeq, "CSeq")?)
    }

    pub fn contacts(&self) -> Result<Vec<Contact>, Error> {
        self.values(&HeaderName::Contact).map(Contact::parse).collect()
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, Error> {
        self.values(&HeaderName::Route).map(NameAddr::parse).collect()
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, Error> {
        self.values(&HeaderName::RecordRoute).map(NameAddr::parse).collect()
    }

    pub fn paths(&self) -> Result<Vec<NameAddr>, Error> {
        self.values(&HeaderName::Path).map(NameAddr::parse).collect()
    }

    fn number(&self, name: HeaderName, label: &'static str) -> Result<Option<u32>, Error> {
        match self.header(&name) {
            None => Ok(None),
            Some(v) => parse_digits::<u32>(v)
                .map(Some)
                .ok_or_else(|| Error::syntax(label, format!("expected a number, got {v:?}"))),
        }
    }

    pub fn expires(&self) -> Result<Option<u32>, Error> {
        self.number(HeaderName::Expires, "Expires")
    }

    pub fn min_expires(&self) -> Result<Option<u32>, Error> {
        self.number(HeaderName::MinExpires, "Min-Expires")
    }

    pub fn max_forwards(&self) -> Result<Option<u32>, Error> {
        self.number(HeaderName::MaxForwards, "Max-Forwards")
    }

    /// RFC 5626 §11.1 `Flow-Timer`.
    pub fn flow_timer(&self) -> Result<Option<u32>, Error> {
        self.number(HeaderName::FlowTimer, "Flow-Timer")
    }

    /// Option tags of Supported.
    pub fn supported(&self) -> Vec<&str> {
        self.header_values(&HeaderName::Supported)
    }

    /// Option tags of Require.
    pub fn require(&self) -> Vec<&str> {
        self.header_values(&HeaderName::Require)
    }

    pub fn proxy_require(&self) -> Vec<&str> {
        self.header_values(&HeaderName::ProxyRequire)
    }

    /// Whether `tag` is among the option tags of `name` (Supported, Require, ...).
    pub fn has_option_tag(&self, name: &HeaderName, tag: &str) -> bool {
        self.values(name).any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// The Event package and its parameters (`dialog;id=1` gives `("dialog", params)`).
    pub fn event(&self) -> Result<Option<(String, crate::Params)>, Error> {
        let Some(value) = self.header(&HeaderName::Event) else { return Ok(None) };
        let (package, params) = match value.split_once(';') {
            Some((p, rest)) => (trim_lws(p), crate::Params::parse(rest)?),
            None => (value, crate::Params::default()),
        };
        if !is_token(package) {
            return Err(Error::syntax("Event", format!("bad event package {package:?}")));
        }
        Ok(Some((package.to_owned(), params)))
    }

    pub fn subscription_state(&self) -> Result<Option<SubscriptionState>, Error> {
        self.header(&HeaderName::SubscriptionState).map(SubscriptionState::parse).transpose()
    }

    pub fn retry_after(&self) -> Result<Option<RetryAfter>, Error> {
        self.header(&HeaderName::RetryAfter).map(RetryAfter::parse).transpose()
    }

    /// Digest challenges of WWW-Authenticate (401) or Proxy-Authenticate (407).
    pub fn challenges(&self) -> Result<Vec<Challenge>, Error> {
        let name = if self.status() == Some(407) { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
        self.headers.iter().filter(|h| h.name == name).map(|h| Challenge::parse(&h.value)).collect()
    }

    /// Credentials of Authorization, or of Proxy-Authorization when `proxy`.
    pub fn credentials(&self, proxy: bool) -> Result<Option<Credentials>, Error> {
        let name = if proxy { HeaderName::ProxyAuthorization } else { HeaderName::Authorization };
        self.header(&name).map(Credentials::parse).transpose()
    }

    /// Appends a header line.
    pub fn push_header(&mut self, name: impl Into<HeaderName>, value: impl fmt::Display) -> &mut Message {
        self.headers.push(Header { name: name.into(), value: value.to_string() });
        self.raw = None;
        self
    }

    /// Replaces every line of `name` with one line, or appends it.
    pub fn set_header(&mut self, name: impl Into<HeaderName>, value: impl fmt::Display) -> &mut Message {
        let name = name.into();
        let value = value.to_string();
        match self.headers.iter().position(|h| h.name == name) {
            Some(i) => {
                self.headers[i].value = value;
                let mut seen = 0;
                self.headers.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.headers.push(Header { name, value }),
        }
        self.raw = None;
        self
    }

    /// Replaces the value of the header line at `index` (of `headers`); out of range does nothing.
    pub fn set_header_at(&mut self, index: usize, value: impl fmt::Display) -> &mut Message {
        if let Some(header) = self.headers.get_mut(index) {
            header.value = value.to_string();
            self.raw = None;
        }
        self
    }

    pub fn remove_header(&mut self, name: &HeaderName) -> &mut Message {
        self.headers.retain(|h| &h.name != name);
        self.raw = None;
        self
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Vec<u8>>) -> &mut Message {
        self.body = body.into();
        self.set_header(HeaderName::ContentType, content_type);
        self
    }

    /// Prints the message, with a Content-Length that matches the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len() + self.headers.len() * 48);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(format!("{method} {uri} SIP/2.0\r\n").as_bytes());
            }
            StartLine::Response { status, reason } => {
                out.extend_from_slice(format!("SIP/2.0 {status} {reason}\r\n").as_bytes());
            }
        }
        for h in self.headers.iter().filter(|h| h.name != HeaderName::ContentLength) {
            out.extend_from_slice(h.name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// The lines of a header section, split at LF (a CR before it is left to the caller).
struct Lines<'a>(&'a str);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.0.is_empty() {
            return None;
        }
        let (line, rest) = match find_byte(self.0.as_bytes(), b'\n') {
            // LF is ASCII, so both sides of it are character boundaries.
            Some(i) => (self.0.get(..i).unwrap_or(""), self.0.get(i + 1..).unwrap_or("")),
            None => (self.0, ""),
        };
        self.0 = rest;
        Some(line)
    }
}

/// The one Content-Length the headers agree on (`l` included), `None` when there is none.
fn content_length(headers: &[Header]) -> Result<Option<usize>, String> {
    let mut found: Option<usize> = None;
    for header in headers.iter().filter(|h| h.name == HeaderName::ContentLength) {
        let n = parse_digits::<usize>(&header.value).ok_or_else(|| format!("bad Content-Length {:?}", header.value))?;
        match found {
            Some(previous) if previous != n => {
                return Err(format!("Content-Length headers disagree: {previous} and {n}"));
            }
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// Finds the end of the header section: returns (end of last header line, start of body).
pub(crate) fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(offset) = bytes.get(from..).and_then(|rest| find_byte(rest, b'\n')) {
        let i = from + offset;
        let after = bytes.get(i + 1..).unwrap_or_default();
        let end = if i > 0 && bytes.get(i - 1) == Some(&b'\r') { i - 1 } else { i };
        if after.starts_with(b"\r\n") {
            return Some((end, i + 3));
        }
        if after.starts_with(b"\n") {
            return Some((end, i + 2));
        }
        from = i + 1;
    }
    None
}

fn parse_start_line(line: &str) -> Result<StartLine, String> {
    // The SIP-Version string is case-insensitive (RFC 3261 §7.1).
    let status_line = line.get(..8).filter(|prefix| prefix.eq_ignore_ascii_case("SIP/2.0 ")).and(line.get(8..));
    if let Some(rest) = status_line {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = code
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=699).contains(s) && code.len() == 3)
            .ok_or_else(|| format!("bad status code {code:?}"))?;
        if reason.chars().any(|c| c.is_control() && c != '\t') {
            return Err("control character in reason phrase".into());
        }
        return Ok(StartLine::Response { status, reason: reason.to_owned() });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("start line is neither 'METHOD URI SIP/2.0' nor 'SIP/2.0 CODE REASON': {line:?}"));
    };
    if !is_token(method) {
        return Err(format!("bad method {method:?}"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(format!("unsupported version {version:?}"));
    }
    Uri::parse(uri).map_err(|e| format!("bad Request-URI: {e}"))?;
    Ok(StartLine::Request { method: Method::parse(method), uri: uri.to_owned() })
}

/// The standard reason phrase of a status code (RFC 3261 §21 and later RFCs).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        430 => "Flow Failed",
        439 => "First Hop Lacks Outbound Support",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Trying",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}
