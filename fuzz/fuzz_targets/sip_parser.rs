//! Any bytes through the SIP parser, every typed view and the linter: nothing panics, and what the printer writes parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{HeaderName, Message};

fuzz_target!(|data: &[u8]| {
    let _ = sip::lint_datagram(data);
    let Ok(message) = Message::parse(data) else { return };
    let _ = message.request_uri();
    let _ = message.vias();
    let _ = message.from();
    let _ = message.to();
    let _ = message.call_id();
    let _ = message.cseq();
    let _ = message.contacts();
    let _ = message.routes();
    let _ = message.record_routes();
    let _ = message.paths();
    let _ = message.expires();
    let _ = message.min_expires();
    let _ = message.max_forwards();
    let _ = message.flow_timer();
    let _ = message.supported();
    let _ = message.require();
    let _ = message.proxy_require();
    let _ = message.has_option_tag(&HeaderName::from("Supported"), "outbound");
    let _ = message.event();
    let _ = message.subscription_state();
    let _ = message.retry_after();
    let _ = message.challenges();
    let _ = message.credentials(false);
    let _ = message.credentials(true);
    // What the harness prints of a message it parsed must parse again, to the same text.
    let printed = message.to_bytes();
    let again = Message::parse(&printed).unwrap_or_else(|e| panic!("printed message does not parse: {e:?}"));
    assert_eq!(again.to_bytes(), printed, "printing is not stable");
});
