//! Responses to requests the phone receives: built from the request with a fresh To tag, Allow and Server.

use sip::{HeaderName, Message};

use super::Context;

/// The methods the phone answers.
const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY";

/// The response `status` to `request`.
pub(crate) fn reply(request: &Message, status: u16, context: &mut Context) -> Message {
    let tag = context.ids.tag();
    let mut response = Message::response_to(request, status, Some(&tag));
    if matches!(status, 200 | 405 | 501) {
        response.push_header(HeaderName::Allow, ALLOWED_METHODS);
    }
    response.push_header(HeaderName::Server, &context.settings.user_agent);
    tracing::debug!("answered {} with {status}", request.method().map(|m| m.to_string()).unwrap_or_default());
    response
}

/// The headers a response is built from must be readable (RFC 3261 §8.1.1).
pub(crate) fn check_answerable(request: &Message) -> Result<(), sip::Error> {
    request.top_via()?;
    request.from()?;
    request.to()?;
    request.call_id()?;
    request.cseq()?;
    Ok(())
}
