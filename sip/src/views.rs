//! Typed views of header values: name-addr (From, To, Contact, Route, Path), Via, CSeq, Retry-After, Subscription-State.

use std::fmt;

use crate::params::Params;
use crate::scan::{
    find_byte, find_unquoted, is_token, parse_digits, quote, split_once_byte, split_outside_quotes, trim_lws, unquote,
};
use crate::uri::{Host, parse_host_port};
use crate::{Error, Method, Uri};

/// Splits a list header value at commas outside quotes and angle brackets, dropping empty items.
pub fn split_list(value: &str) -> Vec<&str> {
    list_items(value).collect()
}

/// [`split_list`] without collecting the items.
pub(crate) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    split_outside_quotes(value, b',').map(trim_lws).filter(|v| !v.is_empty())
}

/// `["display"] <uri>;params` or `uri;params` (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: impl Into<Uri>) -> NameAddr {
        NameAddr { display_name: None, uri: uri.into(), params: Params::default() }
    }

    pub fn parse(value: &str) -> Result<NameAddr, Error> {
        let value = trim_lws(value);
        if let Some(open) = find_unquoted(value, b'<') {
            let display = trim_lws(&value[..open]);
            // The URI may carry quoted parameter values holding '>' (`;+sip.instance="<urn:...>"`).
            let close = find_unquoted(&value[open..], b'>')
                .map(|i| i + open)
                .ok_or_else(|| Error::syntax("name-addr", format!("unclosed '<' in {value:?}")))?;
            // LAQUOT and RAQUOT allow no white space inside the brackets (RFC 3261 §25, RFC 4475 §3.1.2.13).
            let inner = &value[open + 1..close];
            if inner.starts_with([' ', '\t']) || inner.ends_with([' ', '\t']) {
                return Err(Error::syntax("name-addr", format!("white space inside '<>' in {value:?}")));
            }
            let uri = Uri::parse(inner)?;
            let display_name = if display.is_empty() {
                None
            } else if display.starts_with('"') {
                Some(
                    unquote(display)
                        .ok_or_else(|| Error::syntax("name-addr", format!("bad quoted display name {display:?}")))?,
                )
            } else {
                let ok = display.split([' ', '\t']).filter(|w| !w.is_empty()).all(is_token);
                if !ok {
                    return Err(Error::syntax("name-addr", format!("bad display name {display:?}")));
                }
                Some(display.to_owned())
            };
            let rest = trim_lws(&value[close + 1..]);
            let params = match rest {
                "" => Params::default(),
                _ => Params::parse(
                    rest.strip_prefix(';')
                        .ok_or_else(|| Error::syntax("name-addr", format!("junk after '>' in {value:?}")))?,
                )?,
            };
            Ok(NameAddr { display_name, uri, params })
        } else {
            // addr-spec: parameters after the URI belong to the header, not the URI.
            let (uri, params) = match split_once_byte(value, b';') {
                Some((u, p)) => (u, Params::parse(p)?),
                None => (value, Params::default()),
            };
            Ok(NameAddr { display_name: None, uri: Uri::parse(uri)?, params })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{} ", quote(name))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Contact value (RFC 3261 §20.10, RFC 5626 §4.2): `*` or an address with parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    Star,
    Address(NameAddr),
}

impl Contact {
    pub fn parse(value: &str) -> Result<Contact, Error> {
        if trim_lws(value) == "*" { Ok(Contact::Star) } else { NameAddr::parse(value).map(Contact::Address) }
    }

    pub fn address(&self) -> Option<&NameAddr> {
        match self {
            Contact::Star => None,
            Contact::Address(a) => Some(a),
        }
    }

    /// The `expires` parameter, if present and numeric.
    pub fn expires(&self) -> Option<u32> {
        parse_digits(self.address()?.params.value("expires")?)
    }

    /// The `q` parameter, when it follows the `qvalue` grammar (0 to 1, at most three decimals).
    pub fn q(&self) -> Option<f32> {
        let q = self.address()?.params.value("q")?;
        let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
        let valid = fraction.len() <= 3
            && fraction.bytes().all(|c| c.is_ascii_digit())
            && (whole == "0" || (whole == "1" && fraction.bytes().all(|c| c == b'0')));
        if valid { q.parse().ok() } else { None }
    }

    /// `+sip.instance`, without its quotes (`<urn:uuid:...>`).
    pub fn instance(&self) -> Option<&str> {
        self.address()?.params.value("+sip.instance")
    }

    pub fn reg_id(&self) -> Option<u32> {
        parse_digits(self.address()?.params.value("reg-id")?)
    }

    /// Whether the Contact URI carries `;ob` (RFC 5626 §5.4).
    pub fn has_ob(&self) -> bool {
        self.address().and_then(|a| a.uri.as_sip()).is_some_and(|u| u.params.has("ob"))
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Star => f.write_str("*"),
            Contact::Address(a) => write!(f, "{a}"),
        }
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, ... uppercased.
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::default();
        params.set("branch", Some(branch));
        Via { transport: transport.to_ascii_uppercase(), host, port, params }
    }

    pub fn parse(value: &str) -> Result<Via, Error> {
        let value = trim_lws(value);
        // sent-protocol allows LWS around the slashes: "SIP / 2.0 / UDP".
        let mut rest = value;
        let mut parts = [""; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            rest = trim_lws(rest);
            let end = if i < 2 {
                find_byte(rest.as_bytes(), b'/')
                    .ok_or_else(|| Error::syntax("Via", format!("bad sent-protocol in {value:?}")))?
            } else {
                rest.find([' ', '\t']).ok_or_else(|| Error::syntax("Via", format!("no sent-by in {value:?}")))?
            };
            *part = trim_lws(&rest[..end]);
            rest = &rest[end + usize::from(i < 2)..];
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || !is_token(parts[2]) {
            return Err(Error::syntax("Via", format!("bad sent-protocol in {value:?}")));
        }
        let rest = trim_lws(rest);
        let (sent_by, params) = match find_byte(rest.as_bytes(), b';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i + 1..])?),
            None => (rest, Params::default()),
        };
        let (host, port) = parse_host_port(sent_by)?;
        Ok(Via { transport: parts[2].to_ascii_uppercase(), host, port, params })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `Some(None)` for a bare `;rport`, `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|p| p.value.as_deref().and_then(|v| v.parse().ok()))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `CSeq: <number> <method>` (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &str) -> Result<CSeq, Error> {
        let value = trim_lws(value);
        let (seq, method) = value
            .split_once([' ', '\t'])
            .ok_or_else(|| Error::syntax("CSeq", format!("expected '<number> <method>' in {value:?}")))?;
        let seq = parse_digits::<u32>(seq)
            .ok_or_else(|| Error::syntax("CSeq", format!("bad sequence number in {value:?}")))?;
        let method = trim_lws(method);
        if !is_token(method) {
            return Err(Error::syntax("CSeq", format!("bad method in {value:?}")));
        }
        Ok(CSeq { seq, method: Method::parse(method) })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// `Retry-After: <seconds> [(comment)] [;duration=N]` (RFC 3261 §20.33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    pub seconds: u32,
    pub comment: Option<String>,
    pub params: Params,
}

impl RetryAfter {
    pub fn parse(value: &str) -> Result<RetryAfter, Error> {
        let value = trim_lws(value);
        let digits_end = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
        let seconds = parse_digits::<u32>(&value[..digits_end])
            .ok_or_else(|| Error::syntax("Retry-After", format!("bad delta-seconds in {value:?}")))?;
        let mut rest = trim_lws(&value[digits_end..]);
        let mut comment = None;
        if rest.starts_with('(') {
            let end = comment_end(rest)
                .ok_or_else(|| Error::syntax("Retry-After", format!("unclosed comment in {value:?}")))?;
            comment = Some(rest[1..end].to_owned());
            rest = trim_lws(&rest[end + 1..]);
        }
        let params = match rest {
            "" => Params::default(),
            _ => Params::parse(
                rest.strip_prefix(';').ok_or_else(|| Error::syntax("Retry-After", format!("junk in {value:?}")))?,
            )?,
        };
        Ok(RetryAfter { seconds, comment, params })
    }

    /// The `duration` parameter: how long the callee expects to be available once back.
    pub fn duration(&self) -> Option<u32> {
        parse_digits(self.params.value("duration")?)
    }
}

/// The index of the `)` that closes the comment `s` opens with `(`, honouring nesting and
/// quoted-pairs (RFC 3261 §25 `comment`).
fn comment_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' => escaped = true,
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `Subscription-State: active;expires=N` or `terminated;reason=deactivated` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// `active`, `pending`, `terminated`, lowercased.
    pub state: String,
    pub params: Params,
}

impl SubscriptionState {
    pub fn parse(value: &str) -> Result<SubscriptionState, Error> {
        let value = trim_lws(value);
        let (state, params) = match value.split_once(';') {
            Some((s, p)) => (trim_lws(s), Params::parse(p)?),
            None => (value, Params::default()),
        };
        if !is_token(state) {
            return Err(Error::syntax("Subscription-State", format!("bad state in {value:?}")));
        }
        Ok(SubscriptionState { state: state.to_ascii_lowercase(), params })
    }

    pub fn reason(&self) -> Option<&str> {
        self.params.value("reason")
    }

    pub fn expires(&self) -> Option<u32> {
        parse_digits(self.params.value("expires")?)
    }
}
