//! The lab's topology: its elements, the loopback block each case claims, and the names the zone gives them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::HarnessError;

/// A server the harness plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    Dns,
    ProxyA,
    ProxyB,
    RegistrarA,
    RegistrarB,
    OutboundA,
    OutboundB,
}

impl Element {
    /// The element on the same side of the lab that serves what this one does not: a proxy's
    /// registrar (REGISTER goes on there), a registrar's proxy (SUBSCRIBE, INVITE, ... go on there).
    pub fn counterpart(self) -> Option<Element> {
        match self {
            Element::ProxyA => Some(Element::RegistrarA),
            Element::RegistrarA => Some(Element::ProxyA),
            Element::ProxyB => Some(Element::RegistrarB),
            Element::RegistrarB => Some(Element::ProxyB),
            _ => None,
        }
    }

    /// The other element of a primary/backup pair (proxy-a and proxy-b, ...); none for the DNS.
    pub fn counterpart_in_pair(self) -> Option<Element> {
        match self {
            Element::ProxyA => Some(Element::ProxyB),
            Element::ProxyB => Some(Element::ProxyA),
            Element::RegistrarA => Some(Element::RegistrarB),
            Element::RegistrarB => Some(Element::RegistrarA),
            Element::OutboundA => Some(Element::OutboundB),
            Element::OutboundB => Some(Element::OutboundA),
            Element::Dns => None,
        }
    }

    pub const ALL: [Element; 7] = [
        Element::Dns,
        Element::ProxyA,
        Element::ProxyB,
        Element::RegistrarA,
        Element::RegistrarB,
        Element::OutboundA,
        Element::OutboundB,
    ];

    /// The SIP elements (everything but the DNS).
    pub const SIP: [Element; 6] = [
        Element::ProxyA,
        Element::ProxyB,
        Element::RegistrarA,
        Element::RegistrarB,
        Element::OutboundA,
        Element::OutboundB,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Element::Dns => "dns",
            Element::ProxyA => "proxy-a",
            Element::ProxyB => "proxy-b",
            Element::RegistrarA => "registrar-a",
            Element::RegistrarB => "registrar-b",
            Element::OutboundA => "outbound-a",
            Element::OutboundB => "outbound-b",
        }
    }

    pub fn parse(name: &str) -> Option<Element> {
        Element::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The element's place in [`Element::ALL`].
    fn index(self) -> usize {
        Element::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }

    /// The element's offset inside the case's address block.
    fn offset(self) -> u8 {
        match self {
            Element::Dns => 1,
            Element::ProxyA => 2,
            Element::ProxyB => 3,
            Element::RegistrarA => 4,
            Element::RegistrarB => 5,
            Element::OutboundA => 6,
            Element::OutboundB => 7,
        }
    }

    pub fn is_registrar(self) -> bool {
        matches!(self, Element::RegistrarA | Element::RegistrarB)
    }

    pub fn is_proxy(self) -> bool {
        matches!(self, Element::ProxyA | Element::ProxyB)
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One end of a recorded message: an element, the phone, or an address the topology does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Element(Element),
    Phone,
    /// The harness itself, driving the phone.
    Console,
    Unknown(IpAddr),
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Element(e) => write!(f, "{e}"),
            Party::Phone => f.write_str("phone"),
            Party::Console => f.write_str("console"),
            Party::Unknown(ip) => write!(f, "{ip}"),
        }
    }
}

/// Where the phone sits relative to the element addresses.
const PHONE_OFFSET: u8 = 10;
/// Where the harness itself speaks from when it drives the phone (HTTP push).
const CONSOLE_OFFSET: u8 = 9;
/// Addresses per case block: elements at +1..+7, the phone at +10.
const BLOCK_SIZE: u8 = 16;

/// The addresses and names of one case's topology: a loopback block (elements at fixed offsets
/// from its base), or the addresses a lab file names (`--lab`).
#[derive(Debug, Clone)]
pub struct Topology {
    /// Each element's address, in [`Element::ALL`] order.
    elements: [IpAddr; 7],
    phone: IpAddr,
    console: IpAddr,
    /// Whether the addresses come from a lab file: on a real interface, and the phone elsewhere.
    pub from_lab_file: bool,
    /// The zone the DNS serves, without the trailing dot (`lab.test`).
    pub zone: String,
    /// The port the DNS listens on (53, or a high port when 53 cannot be bound).
    pub dns_port: u16,
    /// Another address the phone's traffic comes from, when its profile declares one (a phone
    /// that leaves some sockets unbound speaks from the kernel's choice: 127.0.0.1 on loopback).
    /// Each case's elements have addresses of their own, so what reaches them from there is
    /// this case's phone.
    pub phone_alias: Option<IpAddr>,
}

impl Topology {
    /// The loopback block at `base`: the elements at +1..+7, the console at +9, the phone at +10.
    pub fn new(base: Ipv4Addr, zone: &str) -> Topology {
        let at = |offset: u8| {
            let [a, b, c, d] = base.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, d + offset))
        };
        Topology {
            elements: Element::ALL.map(|e| at(e.offset())),
            phone: at(PHONE_OFFSET),
            console: at(CONSOLE_OFFSET),
            from_lab_file: false,
            zone: zone.trim_end_matches('.').to_owned(),
            dns_port: 53,
            phone_alias: None,
        }
    }

    /// The addresses a lab file names (`--lab FILE`): one `<element> <address>` per line for
    /// every element (`dns`, `proxy-a`, ... `outbound-b`) and the `phone`, optionally the
    /// `console` the harness drives the phone from (else the DNS's address); `#` starts a comment.
    /// IPv4 only (the zone's records are A records). The error names the line.
    pub fn from_lab_file(text: &str, zone: &str) -> Result<Topology, String> {
        let mut elements: [Option<IpAddr>; 7] = [None; 7];
        let (mut phone, mut console) = (None, None);
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(address), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("line {number}: expected `<element> <address>`, got {line:?}"));
            };
            let address: Ipv4Addr =
                address.parse().map_err(|_| format!("line {number}: {address:?} is not an IPv4 address"))?;
            let slot = match name {
                "phone" => &mut phone,
                "console" => &mut console,
                other => match Element::parse(other) {
                    Some(element) => &mut elements[element.index()],
                    None => {
                        return Err(format!(
                            "line {number}: unknown element {other:?} (dns, proxy-a, proxy-b, registrar-a, registrar-b, outbound-a, outbound-b, phone, console)"
                        ));
                    }
                },
            };
            if slot.replace(IpAddr::V4(address)).is_some() {
                return Err(format!("line {number}: {name} named twice"));
            }
        }
        let mut missing: Vec<&str> =
            Element::ALL.iter().zip(&elements).filter(|(_, ip)| ip.is_none()).map(|(e, _)| e.name()).collect();
        if phone.is_none() {
            missing.push("phone");
        }
        if !missing.is_empty() {
            return Err(format!("no address for {}", missing.join(", ")));
        }
        let elements = elements.map(|ip| ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        let phone = phone.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut seen: Vec<IpAddr> = elements.to_vec();
        seen.push(phone);
        seen.sort();
        if let Some(pair) = seen.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!(
                "{} is named for two parties: each element and the phone need an address of its own",
                pair[0]
            ));
        }
        Ok(Topology {
            console: console.unwrap_or(elements[Element::Dns.index()]),
            elements,
            phone,
            from_lab_file: true,
            zone: zone.trim_end_matches('.').to_owned(),
            dns_port: 53,
            phone_alias: None,
        })
    }

    pub fn ip(&self, element: Element) -> IpAddr {
        self.elements[element.index()]
    }

    pub fn phone_ip(&self) -> IpAddr {
        self.phone
    }

    /// The address the harness drives the phone from (the phone's `xml application post list`).
    pub fn console_ip(&self) -> IpAddr {
        self.console
    }

    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip(Element::Dns), self.dns_port)
    }

    pub fn sip_addr(&self, element: Element) -> SocketAddr {
        SocketAddr::new(self.ip(element), 5060)
    }

    /// `registrars.lab.test`: both registrars as one SIP service (NAPTR and SRV, registrar-a
    /// preferred), for phones provisioned with a service name rather than hosts (F5).
    pub fn registrar_service(&self) -> String {
        format!("registrars.{}", self.zone)
    }

    /// `proxy-a.lab.test`
    pub fn fqdn(&self, element: Element) -> String {
        format!("{}.{}", element.name(), self.zone)
    }

    /// Which party an address belongs to.
    pub fn party(&self, ip: IpAddr) -> Party {
        if ip == self.phone_ip() || Some(ip) == self.phone_alias {
            return Party::Phone;
        }
        // The console may share the DNS's address (a lab file without one): the element wins.
        if let Some(element) = Element::ALL.into_iter().find(|e| self.ip(*e) == ip) {
            return Party::Element(element);
        }
        if ip == self.console_ip() { Party::Console } else { Party::Unknown(ip) }
    }

    /// Which element a host name or address names, if any.
    pub fn element_named(&self, host: &str) -> Option<Element> {
        let host = host.trim_end_matches('.');
        Element::ALL.into_iter().find(|e| host.eq_ignore_ascii_case(&self.fqdn(*e)) || host == self.ip(*e).to_string())
    }
}

static NEXT_CANDIDATE: AtomicU32 = AtomicU32::new(0);

/// Candidate base addresses for a case block: 127.X.Y.Z with X in 100..=227, never 127.0.0.0/16
/// (127.0.0.1 and 127.0.0.53 belong to the host). The start is derived from the process id so
/// concurrent test processes start far apart; a taken block is detected by binding.
pub(crate) fn candidate_block(attempt: u32) -> Ipv4Addr {
    let n = NEXT_CANDIDATE.fetch_add(1, Ordering::Relaxed);
    let seed =
        std::process::id().wrapping_mul(2_654_435_761).wrapping_add(n.wrapping_mul(40_503)).wrapping_add(attempt);
    let blocks_per_octet = 256 / u32::from(BLOCK_SIZE);
    let x = 100 + (seed >> 16) % 128;
    let y = (seed >> 4) % 256;
    let z = (seed % blocks_per_octet) * u32::from(BLOCK_SIZE);
    Ipv4Addr::new(127, x as u8, y as u8, z as u8)
}

/// The `n`th block in order from 127.100.0.16: what `serve` offers, so a person finds it where
/// they found it last time.
pub(crate) fn sequential_block(n: u32) -> Ipv4Addr {
    let index = n + 1;
    let per_octet = 256 / u32::from(BLOCK_SIZE);
    let z = (index % per_octet) * u32::from(BLOCK_SIZE);
    let y = (index / per_octet) % 256;
    Ipv4Addr::new(127, 100, y as u8, z as u8)
}

/// A block's base address as a person names it (`serve --block 127.100.0.16`): IPv4 in
/// 127.0.0.0/8 but not 127.0.0.0/24 (127.0.0.1 and 127.0.0.53 belong to the host), at a
/// multiple of the block size, so the elements sit at +1..+7 and the phone at +10.
pub fn parse_block(text: &str) -> Result<Ipv4Addr, String> {
    let base: Ipv4Addr = text.parse().map_err(|_| format!("{text:?} is not an IPv4 address"))?;
    let [a, b, c, d] = base.octets();
    if a != 127 || (b, c) == (0, 0) {
        return Err(format!("{base} is not a loopback block: use 127.X.Y.Z outside 127.0.0.0/24, e.g. 127.100.0.16"));
    }
    if d % BLOCK_SIZE != 0 {
        return Err(format!(
            "{base} does not start a block: the last number is a multiple of {BLOCK_SIZE}, e.g. 127.100.0.16"
        ));
    }
    Ok(base)
}

/// How many blocks to try before giving up.
pub(crate) const CLAIM_ATTEMPTS: u32 = 64;

pub(crate) fn no_free_block(last: std::io::Error) -> HarnessError {
    HarnessError::NoFreeAddresses { attempts: CLAIM_ATTEMPTS, last }
}

#[cfg(test)]
mod tests {
    use super::{Element, Party, Topology};

    const LAB: &str = "dns 192.0.2.1\nproxy-a 192.0.2.2\nproxy-b 192.0.2.3\nregistrar-a 192.0.2.4 # primary\n\
                       registrar-b 192.0.2.5\n\noutbound-a 192.0.2.6\noutbound-b 192.0.2.7\nphone 192.0.2.10\n";

    #[test]
    fn a_lab_file_names_every_party_and_the_console_defaults_to_the_dns() {
        let lab = Topology::from_lab_file(LAB, "lab.test").unwrap();
        assert_eq!(lab.ip(Element::RegistrarA).to_string(), "192.0.2.4");
        assert_eq!(lab.phone_ip().to_string(), "192.0.2.10");
        assert_eq!(lab.console_ip(), lab.ip(Element::Dns));
        assert_eq!(lab.party(lab.ip(Element::Dns)), Party::Element(Element::Dns));
        assert_eq!(lab.party(lab.phone_ip()), Party::Phone);
        assert!(lab.from_lab_file);
    }

    #[test]
    fn a_bad_lab_file_says_what_and_where() {
        let error = |text: &str| Topology::from_lab_file(text, "lab.test").unwrap_err();
        assert_eq!(error(&LAB.replace("phone 192.0.2.10\n", "")), "no address for phone");
        assert_eq!(error(&format!("{LAB}proxy-a 192.0.2.20\n")), "line 10: proxy-a named twice");
        assert_eq!(
            error(&LAB.replace("192.0.2.10", "192.0.2.1")),
            "192.0.2.1 is named for two parties: each element and the phone need an address of its own"
        );
        assert_eq!(error("dns ::1\n"), "line 1: \"::1\" is not an IPv4 address");
        assert_eq!(error("dns\n"), "line 1: expected `<element> <address>`, got \"dns\"");
    }
}
