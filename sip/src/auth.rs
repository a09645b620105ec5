//! Digest authentication (RFC 2617 as used by RFC 3261 §22): challenges, credentials, and the response hash.

use std::fmt;

use md5::{Digest, Md5};

use crate::Error;
use crate::params::Params;
use crate::scan::{quote, split_outside_quotes, trim_lws};

/// A `WWW-Authenticate` or `Proxy-Authenticate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Params,
}

/// An `Authorization` or `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub scheme: String,
    pub params: Params,
}

fn parse_auth(value: &str, what: &'static str) -> Result<(String, Params), Error> {
    let value = trim_lws(value);
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if scheme.is_empty() || !crate::scan::is_token(scheme) {
        return Err(Error::syntax(what, format!("bad scheme in {value:?}")));
    }
    let items = split_outside_quotes(rest, b',');
    let items: Vec<&str> = items.into_iter().filter(|i| !trim_lws(i).is_empty()).collect();
    Ok((scheme.to_owned(), Params::parse_items(items.into_iter())?))
}

impl Challenge {
    pub fn parse(value: &str) -> Result<Challenge, Error> {
        let (scheme, params) = parse_auth(value, "challenge")?;
        Ok(Challenge { scheme, params })
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    pub fn realm(&self) -> Option<&str> {
        self.params.value("realm")
    }

    pub fn nonce(&self) -> Option<&str> {
        self.params.value("nonce")
    }

    pub fn opaque(&self) -> Option<&str> {
        self.params.value("opaque")
    }

    /// Whether the challenge offers `qop=auth`.
    pub fn offers_qop_auth(&self) -> bool {
        self.params.value("qop").is_some_and(|q| q.split(',').any(|q| trim_lws(q).eq_ignore_ascii_case("auth")))
    }

    /// Prints a challenge with every value quoted except `algorithm` and `stale`.
    pub fn digest(realm: &str, nonce: &str, opaque: Option<&str>, qop_auth: bool) -> Challenge {
        let mut params = Params::default();
        params.set_quoted("realm", realm);
        params.set_quoted("nonce", nonce);
        if let Some(o) = opaque {
            params.set_quoted("opaque", o);
        }
        params.set("algorithm", Some("MD5"));
        if qop_auth {
            params.set_quoted("qop", "auth");
        }
        Challenge { scheme: "Digest".into(), params }
    }
}

impl Credentials {
    pub fn parse(value: &str) -> Result<Credentials, Error> {
        let (scheme, params) = parse_auth(value, "credentials")?;
        Ok(Credentials { scheme, params })
    }

    /// The nonce count, which is hexadecimal (RFC 2617 §3.2.2).
    pub fn nonce_count(&self) -> Option<u32> {
        u32::from_str_radix(self.params.value("nc")?, 16).ok()
    }

    /// Checks the response against `password`, for `method` (RFC 2617 §3.2.2.1).
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let p = &self.params;
        let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) =
            (p.value("username"), p.value("realm"), p.value("nonce"), p.value("uri"), p.value("response"))
        else {
            return false;
        };
        let expected = digest_response(&DigestInput {
            username,
            realm,
            password,
            method,
            uri,
            nonce,
            qop: p.value("qop"),
            nc: p.value("nc"),
            cnonce: p.value("cnonce"),
        });
        expected.eq_ignore_ascii_case(response)
    }

    /// Builds the credentials answering `challenge` (MD5, `qop=auth` when offered).
    pub fn answer(
        challenge: &Challenge,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nonce_count: u32,
    ) -> Credentials {
        let realm = challenge.realm().unwrap_or("");
        let nonce = challenge.nonce().unwrap_or("");
        let nc = format!("{nonce_count:08x}");
        let qop = challenge.offers_qop_auth().then_some("auth");
        let response = digest_response(&DigestInput {
            username,
            realm,
            password,
            method,
            uri,
            nonce,
            qop,
            nc: qop.map(|_| nc.as_str()),
            cnonce: qop.map(|_| cnonce),
        });
        let mut params = Params::default();
        params.set_quoted("username", username);
        params.set_quoted("realm", realm);
        params.set_quoted("nonce", nonce);
        params.set_quoted("uri", uri);
        params.set_quoted("response", &response);
        params.set("algorithm", Some("MD5"));
        if let Some(opaque) = challenge.opaque() {
            params.set_quoted("opaque", opaque);
        }
        if qop.is_some() {
            params.set("qop", Some("auth"));
            params.set("nc", Some(&nc));
            params.set_quoted("cnonce", cnonce);
        }
        Credentials { scheme: "Digest".into(), params }
    }
}

fn print_auth(f: &mut fmt::Formatter<'_>, scheme: &str, params: &Params) -> fmt::Result {
    f.write_str(scheme)?;
    for (i, p) in params.0.iter().enumerate() {
        f.write_str(if i == 0 { " " } else { ", " })?;
        f.write_str(&p.name)?;
        if let Some(v) = &p.value {
            if p.quoted {
                write!(f, "={}", quote(v))?;
            } else {
                write!(f, "={v}")?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_auth(f, &self.scheme, &self.params)
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_auth(f, &self.scheme, &self.params)
    }
}

/// Everything the digest response hash is computed from.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    pub qop: Option<&'a str>,
    pub nc: Option<&'a str>,
    pub cnonce: Option<&'a str>,
}

fn md5_hex(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(input.as_bytes());
    let mut out = String::with_capacity(32);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// The digest `response` value (RFC 2617 §3.2.2.1, MD5).
pub fn digest_response(input: &DigestInput<'_>) -> String {
    let ha1 = md5_hex(&format!("{}:{}:{}", input.username, input.realm, input.password));
    let ha2 = md5_hex(&format!("{}:{}", input.method, input.uri));
    match (input.qop, input.nc, input.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", input.nonce)),
        _ => md5_hex(&format!("{ha1}:{}:{ha2}", input.nonce)),
    }
}
