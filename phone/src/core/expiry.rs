//! Expiry arithmetic shared by registrations and subscriptions: Expires in whole seconds, and the expiry a registrar's 2xx grants our Contact.

use std::time::Duration;

use sip::{Contact, Message, SipUri};

use crate::config::DEFAULT_SIP_PORT;

/// Whole seconds of a period, at least 1: Expires holds an integer.
pub(crate) fn whole_seconds(period: Duration) -> u32 {
    let seconds = period.as_secs_f64().ceil();
    if seconds >= f64::from(u32::MAX) { u32::MAX } else { (seconds as u32).max(1) }
}

/// The expiry a 2xx grants our Contact: its `expires` parameter, else the Expires header.
pub(crate) fn granted_expiry(response: &Message, ours: &SipUri) -> Option<u32> {
    let contacts = response.contacts().unwrap_or_default();
    let our_contact = contacts.iter().filter_map(Contact::address).find(|address| {
        address.uri.as_sip().is_some_and(|uri| {
            uri.user == ours.user
                && uri.host.matches(&ours.host)
                && uri.port.unwrap_or(DEFAULT_SIP_PORT) == ours.port.unwrap_or(DEFAULT_SIP_PORT)
        })
    });
    if let Some(expires) = our_contact.and_then(|a| a.params.value("expires")).and_then(|e| e.parse().ok()) {
        return Some(expires);
    }
    response.expires().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip::{HeaderName, Host, Scheme};

    #[test]
    fn expires_is_whole_seconds_and_at_least_one() {
        assert_eq!(whole_seconds(Duration::from_millis(100)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(whole_seconds(Duration::from_secs(3600)), 3600);
    }

    #[test]
    fn the_granted_expiry_prefers_our_contacts_parameter() {
        let ours = SipUri::new(Scheme::Sip, Some("1001"), Host::V4("127.66.0.20".parse().unwrap()), Some(5060));
        let mut ok = Message::response(200);
        ok.push_header(HeaderName::Contact, "<sip:1001@127.66.0.99:5060>;expires=99, <sip:1001@127.66.0.20>;expires=7");
        ok.push_header(HeaderName::Expires, "30");
        assert_eq!(granted_expiry(&ok, &ours), Some(7));

        let mut other_only = Message::response(200);
        other_only.push_header(HeaderName::Contact, "<sip:1001@127.66.0.99:5060>;expires=99");
        other_only.push_header(HeaderName::Expires, "30");
        assert_eq!(granted_expiry(&other_only, &ours), Some(30));

        assert_eq!(granted_expiry(&Message::response(200), &ours), None);
    }
}
