//! Digest authentication on the phone's side: which challenge to answer (the strongest algorithm it supports, RFC 7616 §3.7, RFC 8760), the credentials, and the nonce reused with `nc` incremented on the next request of the same Call-ID.
//!
//! Supported: `MD5` (also when `algorithm` is absent, RFC 2617) and `SHA-256`, with or without
//! `qop=auth`. A 401/407 offering only other algorithms (`SHA-512-256`, the `-sess` variants) is
//! not answered: it goes to the request's owner as the server's final answer, which the owner
//! treats as any other rejection (retry later, no failover: the server is up and answered).

use sha2::{Digest, Sha256};
use sip::{Challenge, Credentials, DigestInput, Header, HeaderName, Message};

use super::{Context, RequestId};

/// Challenges answered in a row for one request before its 401/407 goes to its owner.
const MAX_CHALLENGES_IN_A_ROW: u8 = 2;
/// `stale=true` challenges answered for one request on top of those, so a server that calls
/// every nonce stale cannot keep the phone answering for ever.
const MAX_STALE_NONCES_IN_A_ROW: u8 = 3;
/// Call-IDs whose answered challenge is kept for their next requests.
const MAX_DIGEST_SESSIONS: usize = 32;

/// A digest algorithm the phone can answer, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The algorithm `challenge` asks for, if the phone supports it (none named means MD5).
    fn of(challenge: &Challenge) -> Option<Algorithm> {
        match challenge.params.value("algorithm") {
            None => Some(Algorithm::Md5),
            Some(name) if name.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(name) if name.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The `response` value (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 for MD5).
    fn response(self, input: &DigestInput<'_>) -> String {
        match self {
            Algorithm::Md5 => sip::digest_response(input),
            Algorithm::Sha256 => {
                let ha1 = sha256_hex(&format!("{}:{}:{}", input.username, input.realm, input.password));
                let ha2 = sha256_hex(&format!("{}:{}", input.method, input.uri));
                match (input.qop, input.nc, input.cnonce) {
                    (Some(qop), Some(nc), Some(cnonce)) => {
                        sha256_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", input.nonce))
                    }
                    _ => sha256_hex(&format!("{ha1}:{}:{ha2}", input.nonce)),
                }
            }
        }
    }
}

fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The Digest challenge to answer among `challenges`: the strongest supported algorithm, the
/// first of equals. `Err` names what was offered, for the log.
pub(crate) fn choose(challenges: &[Challenge]) -> Result<(Challenge, Algorithm), String> {
    let digests: Vec<&Challenge> = challenges.iter().filter(|c| c.is_digest()).collect();
    let best = digests.iter().filter_map(|c| Algorithm::of(c).map(|algorithm| (algorithm, *c))).fold(
        None,
        |best: Option<(Algorithm, &Challenge)>, (algorithm, c)| match best {
            Some((kept, _)) if kept >= algorithm => best,
            _ => Some((algorithm, c)),
        },
    );
    match best {
        Some((algorithm, challenge)) => Ok((challenge.clone(), algorithm)),
        None if digests.is_empty() => Err("no Digest challenge".into()),
        None => {
            let offered: Vec<&str> = digests.iter().map(|c| c.params.value("algorithm").unwrap_or("MD5")).collect();
            Err(format!("only unsupported digest algorithms offered: {}", offered.join(", ")))
        }
    }
}

/// Whether `challenge` says only that the nonce expired (`stale=true`, RFC 7616 §3.3): the
/// credentials were right, so answering it is no new attempt at them.
pub(crate) fn is_stale(challenge: &Challenge) -> bool {
    challenge.params.value("stale").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A challenge answered for one Call-ID, reused for its next requests with `nc` incremented
/// (RFC 7616 §3.4.5), so a REGISTER refresh needs no 401 round trip.
#[derive(Debug, Clone)]
pub(crate) struct DigestSession {
    challenge: Challenge,
    algorithm: Algorithm,
    /// Answering a 407: Proxy-Authorization rather than Authorization.
    proxy: bool,
    nonce_count: u32,
}

/// Who answers, and to what request.
pub(crate) struct Answerer<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub cnonce: &'a str,
}

impl DigestSession {
    pub fn new(challenge: Challenge, algorithm: Algorithm, proxy: bool) -> DigestSession {
        DigestSession { challenge, algorithm, proxy, nonce_count: 0 }
    }

    pub fn realm(&self) -> Option<&str> {
        self.challenge.realm()
    }

    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// The header the credentials go in.
    pub fn header_name(&self) -> HeaderName {
        if self.proxy { HeaderName::ProxyAuthorization } else { HeaderName::Authorization }
    }

    /// The credentials of the next request answering this challenge: `nc` one higher each time.
    pub fn next_credentials(&mut self, answerer: &Answerer<'_>) -> Credentials {
        self.nonce_count += 1;
        let challenge = &self.challenge;
        let realm = challenge.realm().unwrap_or("");
        let nonce = challenge.nonce().unwrap_or("");
        let nc = format!("{:08x}", self.nonce_count);
        let qop = challenge.offers_qop_auth().then_some("auth");
        let response = self.algorithm.response(&DigestInput {
            username: answerer.user,
            realm,
            password: answerer.password,
            method: answerer.method,
            uri: answerer.uri,
            nonce,
            qop,
            nc: qop.map(|_| nc.as_str()),
            cnonce: qop.map(|_| answerer.cnonce),
        });
        let mut params = sip::Params::default();
        params.set_quoted("username", answerer.user);
        params.set_quoted("realm", realm);
        params.set_quoted("nonce", nonce);
        params.set_quoted("uri", answerer.uri);
        params.set_quoted("response", &response);
        params.set("algorithm", Some(self.algorithm.name()));
        if let Some(opaque) = challenge.opaque() {
            params.set_quoted("opaque", opaque);
        }
        if qop.is_some() {
            params.set("qop", Some("auth"));
            params.set("nc", Some(&nc));
            params.set_quoted("cnonce", answerer.cnonce);
        }
        Credentials { scheme: "Digest".into(), params }
    }
}

/// How many challenges one request has answered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChallengesAnswered {
    fresh: u8,
    stale: u8,
}

/// The challenge last answered on each Call-ID, oldest first, at most [`MAX_DIGEST_SESSIONS`].
#[derive(Debug, Default)]
pub(crate) struct DigestSessions {
    sessions: Vec<(String, DigestSession)>,
}

impl DigestSessions {
    /// Puts credentials answering `response` (a 401 or 407) on `message`, whose CSeq the caller
    /// then raises. Whether it can be re-sent: not when no supported challenge is offered, nor
    /// after [`MAX_CHALLENGES_IN_A_ROW`] (the credentials are refused).
    pub fn answer(
        &mut self,
        context: &mut Context,
        id: RequestId,
        message: &mut Message,
        response: &Message,
        answered: &mut ChallengesAnswered,
    ) -> bool {
        let status = response.status().unwrap_or(401);
        let challenges = match response.challenges() {
            Ok(challenges) => challenges,
            Err(error) => {
                tracing::warn!("{id}: {status} with an unreadable challenge: {error}");
                return false;
            }
        };
        let (challenge, algorithm) = match choose(&challenges) {
            Ok(chosen) => chosen,
            Err(why) => {
                tracing::warn!("{id}: {status} not answered ({why}); the request fails with it");
                return false;
            }
        };
        let stale = is_stale(&challenge);
        if stale && answered.stale < MAX_STALE_NONCES_IN_A_ROW {
            // Only the nonce expired: the credentials were right, so this is no new attempt at them.
            answered.stale += 1;
        } else if answered.fresh >= MAX_CHALLENGES_IN_A_ROW {
            tracing::warn!("{id}: {status} again after {} answered challenges: credentials refused", answered.fresh);
            return false;
        } else {
            answered.fresh += 1;
        }
        let (Some(method), sip::StartLine::Request { uri, .. }) = (message.method().cloned(), &message.start) else {
            return false;
        };
        let uri = uri.clone();
        let mut session = DigestSession::new(challenge, algorithm, status == 407);
        let Some(credentials) = credentials_for(context, &mut session, method.as_str(), &uri) else { return false };
        tracing::debug!(
            "{id}: answering {status} challenge of realm {:?} with {}{}",
            session.realm(),
            session.algorithm_name(),
            if stale { " (stale nonce)" } else { "" }
        );
        set_header_before_user_agent(message, session.header_name(), credentials);
        if let Ok(call_id) = message.call_id() {
            self.sessions.retain(|(kept, _)| kept != call_id);
            if self.sessions.len() >= MAX_DIGEST_SESSIONS {
                self.sessions.remove(0);
            }
            self.sessions.push((call_id.to_owned(), session));
        }
        true
    }

    /// Adds credentials to a new request of a Call-ID whose challenge was answered before: the
    /// same nonce with `nc` incremented (RFC 7616 §3.4.5), so a refresh needs no 401 round trip.
    pub fn authorize_preemptively(&mut self, context: &mut Context, message: &mut Message) {
        let Ok(call_id) = message.call_id() else { return };
        let Some((_, session)) = self.sessions.iter_mut().find(|(kept, _)| kept == call_id) else { return };
        let (Some(method), sip::StartLine::Request { uri, .. }) = (message.method().cloned(), &message.start) else {
            return;
        };
        if message.header(&session.header_name()).is_some() {
            return;
        }
        let uri = uri.clone();
        if let Some(credentials) = credentials_for(context, session, method.as_str(), &uri) {
            set_header_before_user_agent(message, session.header_name(), credentials);
        }
    }
}

/// The line's credentials for `method` to `uri` under `session`, with a fresh cnonce.
fn credentials_for(context: &mut Context, session: &mut DigestSession, method: &str, uri: &str) -> Option<Credentials> {
    let line = &context.settings.line;
    let user = line.auth_name.clone().or_else(|| line.user_name.clone())?;
    let password = line.password.clone();
    let cnonce = context.ids.cnonce();
    Some(session.next_credentials(&Answerer { user: &user, password: &password, method, uri, cnonce: &cnonce }))
}

/// Puts an Authorization line before User-Agent (where a phone usually prints it), replacing any earlier one.
fn set_header_before_user_agent(message: &mut Message, name: HeaderName, value: Credentials) {
    message.remove_header(&name);
    let position =
        message.headers.iter().position(|h| h.name == HeaderName::UserAgent).unwrap_or(message.headers.len());
    message.headers.insert(position, Header { name, value: value.to_string() });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(params: &str) -> Challenge {
        Challenge::parse(&format!("Digest realm=\"r\", nonce=\"n\", {params}")).unwrap()
    }

    #[test]
    fn sha256_is_preferred_to_md5_and_unknown_algorithms_are_skipped() {
        let offered = [challenge("algorithm=MD5"), challenge("algorithm=SHA-512-256"), challenge("algorithm=SHA-256")];
        assert_eq!(choose(&offered).unwrap().1, Algorithm::Sha256);
        assert_eq!(choose(&[challenge("qop=\"auth\"")]).unwrap().1, Algorithm::Md5);
        let refused = choose(&[challenge("algorithm=MD5-sess")]).unwrap_err();
        assert!(refused.contains("MD5-sess"), "{refused}");
    }

    #[test]
    fn the_md5_answer_is_the_one_the_sip_crate_verifies() {
        let mut session = DigestSession::new(challenge("qop=\"auth\""), Algorithm::Md5, false);
        let answerer = Answerer { user: "u", password: "p", method: "REGISTER", uri: "sip:x", cnonce: "c" };
        let first = session.next_credentials(&answerer);
        assert!(first.verify("REGISTER", "p"));
        assert_eq!(session.next_credentials(&answerer).nonce_count(), Some(2));
    }
}
