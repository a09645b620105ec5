//! Helpers shared by the sip integration tests: writing wire messages readably.

#![allow(dead_code)]

/// Turns a message written with `\n` line ends into wire form with CRLF line ends.
pub fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

/// Parses a message written with `\n` line ends, failing the test with the diagnostics if it does not frame.
pub fn parse(text: &str) -> sip::Message {
    match sip::Message::parse(&crlf(text)) {
        Ok(message) => message,
        Err(malformed) => panic!("message did not parse: {malformed}\n{text}"),
    }
}

/// A REGISTER with one extra header block spliced in after the mandatory headers.
pub fn register_with(extra_headers: &str) -> sip::Message {
    let text = format!(
        "REGISTER sip:registrar.lab.test SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\n\
         Max-Forwards: 70\n\
         From: <sip:alice@proxy-a.lab.test>;tag=1928301774\n\
         To: <sip:alice@proxy-a.lab.test>\n\
         Call-ID: a84b4c76e66710@192.0.2.10\n\
         CSeq: 314159 REGISTER\n\
         {extra_headers}Content-Length: 0\n\
         \n"
    );
    parse(&text)
}
