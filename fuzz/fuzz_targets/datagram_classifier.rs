//! Any UDP datagram through the STUN and keep-alive classifier: nothing panics, and a STUN message that decodes encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{DatagramKind, StunMessage, classify_datagram};

fuzz_target!(|data: &[u8]| {
    let kind = classify_datagram(data);
    if let Some(message) = StunMessage::decode(data) {
        assert_eq!(kind, DatagramKind::Stun, "decodes as STUN but is classified {kind:?}");
        let encoded = message.encode();
        assert_eq!(StunMessage::decode(&encoded).as_ref(), Some(&message), "STUN encoding does not decode to itself");
    }
    if kind == DatagramKind::KeepAlive {
        assert!(data.iter().all(|&b| b == b'\r' || b == b'\n'));
    }
});
