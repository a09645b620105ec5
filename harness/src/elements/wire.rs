//! What every element does to the messages it handles as a real server would: Via `received`/`rport`, where a response goes, To tags, what it advertises, the Date it stamps.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use sip::{HeaderName, Host, Message, Via};

use super::{Destination, Peer};
use crate::topology::{Element, Topology};

/// What an element says it does in OPTIONS answers and 405s (RFC 3261 §11.2, §20.1, §20.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// Methods it serves (Allow).
    pub allow: Vec<&'static str>,
    /// Option tags it supports (Supported); none means no header.
    pub supported: Vec<&'static str>,
    /// Body types it takes (Accept); `None` means no header, `Some("")` an empty one.
    pub accept: Option<&'static str>,
    /// Event packages it serves as a notifier (Allow-Events, RFC 6665 §8.2.2).
    pub events: Vec<&'static str>,
}

impl Capabilities {
    /// Adds Allow, and in OPTIONS answers Supported, Accept and Allow-Events.
    pub fn advertise(&self, response: &mut Message, full: bool) {
        response.push_header(HeaderName::Allow, self.allow.join(", "));
        if !full {
            return;
        }
        if !self.supported.is_empty() {
            response.push_header(HeaderName::Supported, self.supported.join(", "));
        }
        if let Some(accept) = self.accept {
            response.push_header(HeaderName::Accept, accept);
        }
        if !self.events.is_empty() {
            response.push_header(HeaderName::AllowEvents, self.events.join(", "));
        }
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: the top Via of a request gets `received` when its sent-by
/// host is not the packet's source address, and, when it carries an empty `rport`, `rport` set to
/// the source port and `received` whatever the host (RFC 3581 §4: "even if identical").
pub(crate) fn stamp_via(request: &mut Message, source: SocketAddr) {
    let Some(i) = request.headers.iter().position(|h| h.name == HeaderName::Via) else { return };
    let values = sip::split_list(&request.headers[i].value).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let Some(Ok(mut top)) = values.first().map(|v| Via::parse(v)) else { return };
    let asks_rport = top.rport() == Some(None);
    let source_ip = Host::from(source.ip());
    if asks_rport || !top.host.matches(&source_ip) {
        top.params.set("received", Some(&source.ip().to_string()));
    }
    if asks_rport {
        top.params.set("rport", Some(&source.port().to_string()));
    }
    let mut rewritten = vec![top.to_string()];
    rewritten.extend(values.into_iter().skip(1));
    request.set_header_at(i, rewritten.join(", "));
}

/// Where a response to `request` goes (RFC 3261 §18.2.2, RFC 3581 §4): back over the connection
/// it came on; over UDP to `received` (else the sent-by host) at `rport` (else the sent-by port,
/// else 5060). A sent-by that names nothing the lab knows falls back to the packet's source.
pub(crate) fn response_destination(request: &Message, peer: &Peer, topology: &Topology) -> Destination {
    if let Some(flow) = peer.flow {
        return Destination::Flow(flow);
    }
    let Ok(via) = request.top_via() else { return Destination::Udp(peer.addr) };
    let ip: Option<IpAddr> = match via.received().and_then(|r| r.parse().ok()) {
        Some(ip) => Some(ip),
        None => via.host.ip().or_else(|| topology.element_named(&via.host.to_string()).map(|e| topology.ip(e))),
    };
    let Some(ip) = ip else { return Destination::Udp(peer.addr) };
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.port.unwrap_or(5060),
    };
    Destination::Udp(SocketAddr::new(ip, port))
}

/// The To tag an element puts on a response it makes itself to a request without one: stable per
/// dialog (the same Call-ID and From tag get the same tag), distinct per element.
pub(crate) fn local_tag(element: Element, request: &Message) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    element.name().hash(&mut hasher);
    request.call_id().unwrap_or_default().hash(&mut hasher);
    request.from().ok().and_then(|f| f.tag().map(str::to_owned)).hash(&mut hasher);
    format!("{}-{:08x}", element.name(), hasher.finish() as u32)
}

/// Adds `tag` to the To of a final response that has none (RFC 3261 §8.2.6.2).
pub(crate) fn ensure_to_tag(response: &mut Message, tag: &str) {
    if response.status().is_none_or(|s| s < 200) {
        return;
    }
    let Some(i) = response.headers.iter().position(|h| h.name == HeaderName::To) else { return };
    let has_tag = sip::NameAddr::parse(&response.headers[i].value).map(|to| to.tag().is_some()).unwrap_or(true);
    if !has_tag {
        let value = format!("{};tag={tag}", response.headers[i].value);
        response.set_header_at(i, value);
    }
}

/// An RFC 1123 date in GMT (RFC 3261 §20.17), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn http_date_prints_rfc_1123() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(http_date(at(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(at(4_107_542_399)), "Sun, 28 Feb 2100 23:59:59 GMT", "2100 is no leap year");
    }

    #[test]
    fn via_stamped_per_rfc_3581() {
        let source: SocketAddr = "127.100.0.10:40000".parse().unwrap();
        let stamp = |via: &str| {
            let mut m = Message::request(sip::Method::Options, "sip:x");
            m.push_header(HeaderName::Via, via);
            stamp_via(&mut m, source);
            m.header(&HeaderName::Via).unwrap().to_owned()
        };
        assert_eq!(
            stamp("SIP/2.0/UDP 127.100.0.10:40000;branch=z9hG4bK1"),
            "SIP/2.0/UDP 127.100.0.10:40000;branch=z9hG4bK1"
        );
        assert_eq!(
            stamp("SIP/2.0/UDP phone.lab:5060;branch=z9hG4bK1"),
            "SIP/2.0/UDP phone.lab:5060;branch=z9hG4bK1;received=127.100.0.10"
        );
        assert_eq!(
            stamp("SIP/2.0/UDP 127.100.0.10:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP b:5060;branch=z9hG4bK0"),
            "SIP/2.0/UDP 127.100.0.10:5060;rport=40000;branch=z9hG4bK1;received=127.100.0.10, SIP/2.0/UDP b:5060;branch=z9hG4bK0"
        );
    }
}
