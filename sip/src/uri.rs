//! URIs: sip and sips (user parts with dots and escapes, IPv4, IPv6, parameters, headers), tel, and any other scheme kept as text.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::Error;
use crate::params::Params;
use crate::scan::{byte_class, find_byte, find_unquoted, has_byte, parse_digits, split_once_byte, trim_lws};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
}

/// The host part of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A name, kept lowercase-insensitive for comparison but printed as received.
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host: `[v6]`, a dotted quad, or a hostname.
    pub fn parse(s: &str) -> Result<Host, Error> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| Error::syntax("host", format!("unclosed IPv6 reference {s:?}")))?;
            return Ipv6Addr::from_str(inner)
                .map(Host::V6)
                .map_err(|_| Error::syntax("host", format!("bad IPv6 address {s:?}")));
        }
        if s.is_empty() {
            return Err(Error::syntax("host", "empty host"));
        }
        if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return Ipv4Addr::from_str(s)
                .map(Host::V4)
                .map_err(|_| Error::syntax("host", format!("bad IPv4 address {s:?}")));
        }
        let valid = s.bytes().all(|c| HOSTNAME[usize::from(c)]) && !s.starts_with(['-', '.']);
        if !valid {
            return Err(Error::syntax("host", format!("bad hostname {s:?}")));
        }
        Ok(Host::Domain(s.to_owned()))
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }

    /// Compares hosts as RFC 3261 §19.1.4 does: names case-insensitively, addresses by value.
    pub fn matches(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.')),
            (a, b) => a == b,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]`, IPv6 references included.
pub(crate) fn parse_host_port(s: &str) -> Result<(Host, Option<u16>), Error> {
    let s = trim_lws(s);
    let (host, port) = if s.starts_with('[') {
        match find_byte(s.as_bytes(), b']') {
            Some(end) => {
                let rest = trim_lws(&s[end + 1..]);
                let port = match rest {
                    "" => None,
                    _ => Some(
                        rest.strip_prefix(':')
                            .ok_or_else(|| Error::syntax("host", format!("junk after IPv6 reference in {s:?}")))?,
                    ),
                };
                (&s[..=end], port)
            }
            None => return Err(Error::syntax("host", format!("unclosed IPv6 reference {s:?}"))),
        }
    } else {
        match split_once_byte(s, b':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            Some(parse_digits::<u16>(trim_lws(p)).ok_or_else(|| Error::syntax("port", format!("bad port in {s:?}")))?)
        }
    };
    Ok((Host::parse(trim_lws(host))?, port))
}

/// A `sip:` or `sips:` URI (RFC 3261 §19.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    /// The user part as written, escapes kept.
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// The `?headers` part as written, without the `?`.
    pub headers: Option<String>,
}

impl SipUri {
    pub fn new(scheme: Scheme, user: Option<&str>, host: Host, port: Option<u16>) -> SipUri {
        SipUri {
            scheme,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Params::default(),
            headers: None,
        }
    }

    fn parse_after_scheme(scheme: Scheme, rest: &str) -> Result<SipUri, Error> {
        let (userinfo, hostpart) = match find_unquoted(rest, b'@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match split_once_byte(info, b':') {
                    Some((u, p)) => (u, Some(p.to_owned())),
                    None => (info, None),
                };
                if user.is_empty() || !user.bytes().all(is_user_char) {
                    return Err(Error::syntax("uri", format!("bad user part {user:?}")));
                }
                check_escapes(user)?;
                (Some(user.to_owned()), password)
            }
        };
        let (hostpart, headers) = match find_unquoted(hostpart, b'?') {
            Some(i) => (&hostpart[..i], Some(hostpart[i + 1..].to_owned())),
            None => (hostpart, None),
        };
        let (hostport, params) = match split_once_byte(hostpart, b';') {
            Some((h, p)) => (h, Params::parse(p)?),
            None => (hostpart, Params::default()),
        };
        let (host, port) = parse_host_port(hostport)?;
        Ok(SipUri { scheme, user, password, host, port, params, headers })
    }

    /// `user@host` with no port or parameters: how an AOR is compared.
    pub fn address_of_record(&self) -> String {
        match &self.user {
            Some(u) => format!("{}:{u}@{}", self.scheme_str(), self.host),
            None => format!("{}:{}", self.scheme_str(), self.host),
        }
    }

    fn scheme_str(&self) -> &'static str {
        match self.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
        }
    }
}

static HOSTNAME: [bool; 256] = byte_class(b"-.", true);

/// RFC 3261 `user` characters: unreserved, user-unreserved and `%` of escapes.
static USER: [bool; 256] = byte_class(b"-_.!~*'()%&=+$,;?/", true);

fn is_user_char(c: u8) -> bool {
    USER[usize::from(c)]
}

fn check_escapes(s: &str) -> Result<(), Error> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(Error::syntax("uri", format!("bad escape in {s:?}")));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme_str())?;
        f.write_str(":")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Any URI a SIP message may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    /// `tel:` (RFC 3966): the number and its parameters.
    Tel {
        number: String,
        params: Params,
    },
    /// Any other absolute URI, kept as written.
    Other(String),
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, Error> {
        let s = trim_lws(s);
        let (scheme, rest) =
            split_once_byte(s, b':').ok_or_else(|| Error::syntax("uri", format!("no scheme in {s:?}")))?;
        if !scheme.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
            || !scheme.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(Error::syntax("uri", format!("bad scheme in {s:?}")));
        }
        if !uri_characters_ok(rest) {
            return Err(Error::syntax("uri", format!("bad character in {s:?}")));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(Scheme::Sip, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(Scheme::Sips, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match rest.split_once(';') {
                Some((n, p)) => (n, Params::parse(p)?),
                None => (rest, Params::default()),
            };
            if number.is_empty() {
                return Err(Error::syntax("uri", "empty tel number"));
            }
            Ok(Uri::Tel { number: number.to_owned(), params })
        } else {
            Ok(Uri::Other(s.to_owned()))
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

/// Whether `rest` holds only URI characters. Tolerated beyond RFC 3261: quoted parameter values
/// (`;+sip.instance="<urn:uuid:...>"`, which some phones put inside the Contact URI), within which
/// `<`, `>` and spaces may appear.
fn uri_characters_ok(rest: &str) -> bool {
    if !has_byte(rest.as_bytes(), b'"') {
        return rest.bytes().all(|c| URI_OUTSIDE_QUOTES[usize::from(c)]);
    }
    let mut quoting = crate::scan::Quoting::default();
    for c in rest.bytes() {
        if !(b' '..0x7f).contains(&c) {
            return false;
        }
        if quoting.outside(c) && !URI_OUTSIDE_QUOTES[usize::from(c)] {
            return false;
        }
    }
    !quoting.is_open()
}

/// Printable ASCII except space, `"`, `<` and `>`.
static URI_OUTSIDE_QUOTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = b'!';
    while c < 0x7f {
        table[c as usize] = !matches!(c, b'"' | b'<' | b'>');
        c += 1;
    }
    table
};

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Uri {
        Uri::Sip(u)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel { number, params } => write!(f, "tel:{number}{params}"),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

impl FromStr for Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Uri, Error> {
        Uri::parse(s)
    }
}
