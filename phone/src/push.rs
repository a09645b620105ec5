//! The vendor's XML push, sans-IO: a small bounded HTTP/1.1 request parser, the form or raw body, and `AastraIPPhoneExecute` items turned into commands.
//!
//! A real phone is driven by POSTing `xml=<AastraIPPhoneExecute><ExecuteItem URI="Dial:1234"/>
//! </AastraIPPhoneExecute>` (URL-encoded form) to it; refphone also accepts the raw XML as the
//! body. Supported items: `Dial:<number>`, `Command: Reset`, `Command: ClearLocal`. Anything
//! malformed or unsupported is refused with 400 and a reason.

use std::fmt;

use crate::core::PushCommand;

/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One HTTP request, as far as the push needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub target: String,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Where parsing a buffer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpParse {
    /// More bytes are needed.
    Incomplete,
    Complete(HttpRequest),
    /// The request cannot be read: answer 400 (or 413) and close.
    Malformed(PushError),
}

/// Why a push is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    /// Not HTTP/1.x, or a broken request line or header.
    BadRequest(String),
    /// Head or body beyond the limits.
    TooLarge(String),
    /// Not a POST.
    MethodNotAllowed(String),
    /// The body is not an `AastraIPPhoneExecute` document, or an item is not understood.
    BadDocument(String),
}

impl PushError {
    /// The HTTP status that reports this error.
    pub fn status(&self) -> u16 {
        match self {
            PushError::BadRequest(_) | PushError::BadDocument(_) => 400,
            PushError::TooLarge(_) => 413,
            PushError::MethodNotAllowed(_) => 405,
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::BadRequest(why) | PushError::TooLarge(why) | PushError::BadDocument(why) => f.write_str(why),
            PushError::MethodNotAllowed(method) => write!(f, "{method} is not allowed; POST the XML"),
        }
    }
}

/// Parses one request off the front of `buffer`.
pub fn parse_http_request(buffer: &[u8]) -> HttpParse {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buffer.len() > MAX_HEAD_BYTES {
            return HttpParse::Malformed(PushError::TooLarge(format!("request head beyond {MAX_HEAD_BYTES} bytes")));
        }
        return HttpParse::Incomplete;
    };
    if head_end > MAX_HEAD_BYTES {
        return HttpParse::Malformed(PushError::TooLarge(format!("request head beyond {MAX_HEAD_BYTES} bytes")));
    }
    let Ok(head) = std::str::from_utf8(&buffer[..head_end]) else {
        return HttpParse::Malformed(PushError::BadRequest("request head is not UTF-8".into()));
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return HttpParse::Malformed(PushError::BadRequest(format!("bad request line {request_line:?}")));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return HttpParse::Malformed(PushError::BadRequest(format!("bad request line {request_line:?}")));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return HttpParse::Malformed(PushError::BadRequest(format!("bad header line {line:?}")));
        };
        if name.is_empty() || name.contains(' ') {
            return HttpParse::Malformed(PushError::BadRequest(format!("bad header name {name:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let request = HttpRequest { method: (*method).to_owned(), target: (*target).to_owned(), headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some() {
        return HttpParse::Malformed(PushError::BadRequest(
            "chunked bodies are not accepted; send Content-Length".into(),
        ));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(value) => match value.parse::<usize>() {
            Ok(length) if length <= MAX_BODY_BYTES => length,
            Ok(length) => {
                return HttpParse::Malformed(PushError::TooLarge(format!(
                    "a body of {length} bytes is beyond {MAX_BODY_BYTES}"
                )));
            }
            Err(_) => return HttpParse::Malformed(PushError::BadRequest(format!("bad Content-Length {value:?}"))),
        },
    };
    let body_start = head_end + 4;
    if buffer.len() < body_start + length {
        return HttpParse::Incomplete;
    }
    HttpParse::Complete(HttpRequest { body: buffer[body_start..body_start + length].to_vec(), ..request })
}

/// The commands a POSTed request carries: its body as a form with an `xml` field, or as raw XML.
pub fn commands_of(request: &HttpRequest) -> Result<Vec<PushCommand>, PushError> {
    if request.method != "POST" {
        return Err(PushError::MethodNotAllowed(request.method.clone()));
    }
    let body =
        std::str::from_utf8(&request.body).map_err(|_| PushError::BadDocument("the body is not UTF-8".into()))?;
    let trimmed = body.trim_start();
    let xml = if trimmed.starts_with('<') {
        trimmed.to_owned()
    } else {
        form_field(body, "xml").ok_or_else(|| PushError::BadDocument("no xml= field in the form".into()))??
    };
    parse_execute(&xml)
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body, decoded.
fn form_field(body: &str, name: &str) -> Option<Result<String, PushError>> {
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key).ok()? == name).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+` (a space in forms).
pub fn percent_decode(text: &str) -> Result<String, PushError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = byte else {
                    return Err(PushError::BadDocument(format!("bad %-escape in the form at byte {i}")));
                };
                out.push(byte);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| PushError::BadDocument("the form's xml field is not UTF-8".into()))
}

/// The commands of an `AastraIPPhoneExecute` document, one per `ExecuteItem URI="..."`.
pub fn parse_execute(xml: &str) -> Result<Vec<PushCommand>, PushError> {
    let bad = |why: String| PushError::BadDocument(why);
    let elements = elements(xml).map_err(bad)?;
    let root = elements.iter().find(|e| !e.closing).ok_or_else(|| bad("no XML element in the body".into()))?;
    if root.name != "AastraIPPhoneExecute" {
        return Err(bad(format!("expected <AastraIPPhoneExecute>, got <{}>", root.name)));
    }
    let closed = root.self_closing || elements.iter().any(|e| e.closing && e.name == "AastraIPPhoneExecute");
    if !closed {
        return Err(bad("<AastraIPPhoneExecute> is not closed".into()));
    }
    let mut commands = Vec::new();
    for item in elements.iter().filter(|e| !e.closing && e.name == "ExecuteItem") {
        let uri = item
            .attributes
            .iter()
            .find(|(name, _)| name == "URI")
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| bad("<ExecuteItem> without a URI attribute".into()))?;
        commands.push(command_of(uri)?);
    }
    if commands.is_empty() {
        return Err(bad("no <ExecuteItem> in <AastraIPPhoneExecute>".into()));
    }
    Ok(commands)
}

/// One ExecuteItem URI: `Dial:<number>`, `Command: Reset`, `Command: ClearLocal`.
fn command_of(uri: &str) -> Result<PushCommand, PushError> {
    let uri = uri.trim();
    let (scheme, rest) =
        uri.split_once(':').ok_or_else(|| PushError::BadDocument(format!("unsupported ExecuteItem URI {uri:?}")))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("Dial") {
        let dialable = !rest.is_empty()
            && rest.len() <= 64
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"*#+.-_".contains(&b));
        if !dialable {
            return Err(PushError::BadDocument(format!("Dial: needs a number, got {rest:?}")));
        }
        return Ok(PushCommand::Dial(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("Command") {
        if rest.eq_ignore_ascii_case("Reset") {
            return Ok(PushCommand::Reset);
        }
        if rest.eq_ignore_ascii_case("ClearLocal") {
            return Ok(PushCommand::ClearLocal);
        }
    }
    Err(PushError::BadDocument(format!("unsupported ExecuteItem URI {uri:?}")))
}

/// One tag of an XML document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    closing: bool,
    self_closing: bool,
}

/// The tags of a small XML document, with attributes decoded; prolog, comments and text skipped.
fn elements(xml: &str) -> Result<Vec<Element>, String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unterminated comment")?;
            rest = &after[end + 3..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after.find("?>").ok_or("unterminated <? ?>")?;
            rest = &after[end + 2..];
            continue;
        }
        let close = tag_end(rest).ok_or("unterminated tag")?;
        out.push(parse_tag(&rest[1..close])?);
        rest = &rest[close + 1..];
    }
    Ok(out)
}

/// The index of the `>` ending the tag at the start of `text`, skipping quoted attribute values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"') | (None, '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The inside of a tag: `name attr="v" ...`, `/name`, or `name .../`.
fn parse_tag(inside: &str) -> Result<Element, String> {
    let inside = inside.trim();
    let (closing, inside) = match inside.strip_prefix('/') {
        Some(rest) => (true, rest.trim()),
        None => (false, inside),
    };
    let (self_closing, inside) = match inside.strip_suffix('/') {
        Some(rest) => (true, rest.trim_end()),
        None => (false, inside),
    };
    let name_end = inside.find(|c: char| c.is_whitespace()).unwrap_or(inside.len());
    let name = &inside[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) {
        return Err(format!("bad element name {name:?}"));
    }
    let mut attributes = Vec::new();
    let mut rest = inside[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| format!("attribute without a value in <{name}>"))?;
        let attribute = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("unquoted attribute {attribute:?}"))?;
        let value_end = after[1..].find(quote).ok_or_else(|| format!("unterminated attribute {attribute:?}"))?;
        attributes.push((attribute.to_owned(), decode_entities(&after[1..1 + value_end])?));
        rest = after[value_end + 2..].trim_start();
    }
    Ok(Element { name: name.to_owned(), attributes, closing, self_closing })
}

/// Decodes the five predefined XML entities and numeric character references.
fn decode_entities(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').ok_or("unterminated entity")?;
        let entity = &after[..end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            numeric => {
                let code = if let Some(hex) = numeric.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(decimal) = numeric.strip_prefix('#') {
                    decimal.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or_else(|| format!("unknown entity &{entity};"))?
            }
        };
        out.push(decoded);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An HTTP/1.1 response with a small XML body; the connection closes after it.
pub fn http_response(status: u16, detail: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let escaped = detail.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = if status == 200 {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Status>OK</Status></Response>\n".to_owned()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Status>Error</Status><Reason>{escaped}</Reason></Response>\n"
        )
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\nServer: {}\r\n\r\n",
        body.len(),
        crate::user_agent()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str, content_type: &str) -> Vec<u8> {
        format!(
            "POST / HTTP/1.1\r\nHost: 127.66.0.20\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn commands(bytes: &[u8]) -> Result<Vec<PushCommand>, PushError> {
        match parse_http_request(bytes) {
            HttpParse::Complete(request) => commands_of(&request),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_form_with_an_encoded_dial_is_one_dial_command() {
        let body =
            "xml=%3CAastraIPPhoneExecute%3E%3CExecuteItem+URI%3D%22Dial%3A1234%22%2F%3E%3C%2FAastraIPPhoneExecute%3E";
        assert_eq!(
            commands(&post(body, "application/x-www-form-urlencoded")),
            Ok(vec![PushCommand::Dial("1234".into())])
        );
    }

    #[test]
    fn the_form_as_real_phones_get_it_with_a_prolog_and_other_fields() {
        let xml = "<?xml version=\"1.0\"?>\n<!-- push -->\n<AastraIPPhoneExecute triggerDestroyOnExit='yes'>\n  <ExecuteItem URI=\"Command: Reset\" interruptCall=\"no\"/>\n</AastraIPPhoneExecute>";
        let encoded: String = xml.bytes().map(|b| format!("%{b:02X}")).collect();
        let body = format!("user=admin&xml={encoded}&x=1");
        assert_eq!(commands(&post(&body, "application/x-www-form-urlencoded")), Ok(vec![PushCommand::Reset]));
    }

    #[test]
    fn a_raw_xml_body_is_accepted_and_items_come_in_order() {
        let xml = "<AastraIPPhoneExecute><ExecuteItem URI=\"Command:ClearLocal\"/><ExecuteItem URI=\"Dial:*97#\"></ExecuteItem></AastraIPPhoneExecute>";
        assert_eq!(
            commands(&post(xml, "text/xml")),
            Ok(vec![PushCommand::ClearLocal, PushCommand::Dial("*97#".into())])
        );
    }

    #[test]
    fn entities_in_attributes_are_decoded() {
        let xml = "<AastraIPPhoneExecute><ExecuteItem URI=\"Dial&#58;12&#x33;4\"/></AastraIPPhoneExecute>";
        assert_eq!(parse_execute(xml), Ok(vec![PushCommand::Dial("1234".into())]));
    }

    #[test]
    fn malformed_or_unsupported_documents_are_refused() {
        for xml in [
            "",
            "not xml",
            "<AastraIPPhoneTextScreen><Text>x</Text></AastraIPPhoneTextScreen>",
            "<AastraIPPhoneExecute></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Dial:1234\"/>",
            "<AastraIPPhoneExecute><ExecuteItem/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=Dial:1/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Dial:\"/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Dial:12 34\"/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Led: softkey1=on\"/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Command: Reboot\"/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Dial:1&bogus;\"/></AastraIPPhoneExecute>",
            "<AastraIPPhoneExecute><ExecuteItem URI=\"Dial:1",
        ] {
            let result = parse_execute(xml);
            assert!(matches!(result, Err(PushError::BadDocument(_))), "{xml:?}: {result:?}");
        }
    }

    #[test]
    fn a_form_without_xml_or_with_a_bad_escape_is_refused() {
        assert!(matches!(
            commands(&post("foo=bar", "application/x-www-form-urlencoded")),
            Err(PushError::BadDocument(_))
        ));
        assert!(matches!(
            commands(&post("xml=%3", "application/x-www-form-urlencoded")),
            Err(PushError::BadDocument(_))
        ));
        assert!(matches!(
            commands(&post("xml=%ZZ", "application/x-www-form-urlencoded")),
            Err(PushError::BadDocument(_))
        ));
    }

    #[test]
    fn only_post_is_obeyed() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(commands(get), Err(PushError::MethodNotAllowed("GET".into())));
        assert_eq!(PushError::MethodNotAllowed("GET".into()).status(), 405);
    }

    #[test]
    fn a_request_arrives_in_pieces_and_waits_for_its_whole_body() {
        let whole = post("<AastraIPPhoneExecute><ExecuteItem URI=\"Dial:1\"/></AastraIPPhoneExecute>", "text/xml");
        for cut in [0, 5, 30, whole.len() - 1] {
            assert_eq!(parse_http_request(&whole[..cut]), HttpParse::Incomplete, "{cut}");
        }
        assert!(matches!(parse_http_request(&whole), HttpParse::Complete(_)));
    }

    #[test]
    fn broken_or_oversized_requests_are_malformed() {
        let status = |bytes: &[u8]| match parse_http_request(bytes) {
            HttpParse::Malformed(error) => error.status(),
            other => panic!("{other:?}"),
        };
        assert_eq!(status(b"POST /\r\n\r\n"), 400);
        assert_eq!(status(b"POST / SIP/2.0\r\n\r\n"), 400);
        assert_eq!(status(b"post / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"), 413);
        assert_eq!(status(&vec![b'a'; MAX_HEAD_BYTES + 1]), 413);
    }

    #[test]
    fn responses_carry_a_small_xml_body_and_close() {
        let ok = String::from_utf8(http_response(200, "")).unwrap();
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("Connection: close") && ok.ends_with("</Response>\n")
        );
        let bad = String::from_utf8(http_response(400, "no <xml>")).unwrap();
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n") && bad.contains("no &lt;xml&gt;"));
        let length: usize =
            bad.split("Content-Length: ").nth(1).unwrap().split("\r\n").next().unwrap().parse().unwrap();
        assert_eq!(length, bad.split("\r\n\r\n").nth(1).unwrap().len());
    }
}
