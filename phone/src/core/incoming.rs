//! Answers to requests the phone receives: 200 to OPTIONS and NOTIFY, 501 to anything it does not implement yet.

use sip::{HeaderName, Message, Method};

use super::Context;

/// The methods the phone answers with 200.
const ALLOWED_METHODS: &str = "OPTIONS, NOTIFY";

/// The response to `request`, or `None` for an ACK or a request too broken to answer.
pub(crate) fn answer(request: &Message, context: &mut Context) -> Option<Message> {
    let method = request.method()?;
    if let Err(error) = check_answerable(request) {
        tracing::warn!("{method} request dropped: {error}");
        return None;
    }
    let status = match method {
        Method::Ack => return None,
        Method::Options | Method::Notify => 200,
        _ => 501,
    };
    let tag = context.ids.tag();
    let mut response = Message::response_to(request, status, Some(&tag));
    if status == 200 || status == 501 {
        response.push_header(HeaderName::Allow, ALLOWED_METHODS);
    }
    response.push_header(HeaderName::Server, &context.settings.user_agent);
    tracing::debug!("answered {method} with {status}");
    Some(response)
}

/// The headers a response is built from must be readable (RFC 3261 §8.1.1).
fn check_answerable(request: &Message) -> Result<(), sip::Error> {
    request.top_via()?;
    request.from()?;
    request.to()?;
    request.call_id()?;
    request.cseq()?;
    Ok(())
}
