//! Where the phone says it can be reached (its Contact): its listening socket over UDP and TCP, and over TLS the connection a request leaves on.
//!
//! refphone listens on UDP and, with `sip transport protocol: 2`, on TCP at `--bind`:5060, so a
//! Contact naming that socket is one a proxy can open a connection to (RFC 3261 §18.2.2). It has
//! no TLS listener: `--ca` gives it only the lab CA's certificate, no key, so no server
//! certificate of its own that an element would verify (RFC 5922), and a self-signed one would
//! fail that check as surely as a closed port. Over TLS the only place the phone can be reached is
//! the connection it opened, so its Contact names that connection's local address and port, the
//! address the server sees the connection come from (a connection table finds it there), and its
//! Via carries `;alias` (RFC 5923) with the same sent-by. The port is the connection's own, so a
//! new connection (after a reset, or at another registrar) means a new Contact: the binding is
//! REGISTERed again at once when its connection is lost, and the binding the old Contact named is
//! un-REGISTERed by that Contact (see [`super::registration`]).
//!
//! Owners build requests with [`Context::contact_uri`]; over TLS its URI has no port yet, and the
//! sender completes it with the connection's address when the request leaves ([`place`]). A
//! Contact that already names a port (an un-REGISTER of a binding made on an earlier connection)
//! is left as it is.

use std::net::SocketAddr;

use sip::{Contact, HeaderName, Host, Message, Scheme, SipUri, Uri};

use super::{Context, Transport};

/// Whether a Contact over `transport` names the connection rather than a listening socket: TLS only.
pub(crate) fn names_connection(transport: Transport) -> bool {
    transport == Transport::Tls
}

impl Context {
    /// The Contact URI of the phone: its address and listening port over UDP and TCP; over TLS its
    /// address without a port, completed per connection by [`place`]; `;transport=` for TCP and
    /// TLS, and `;ob` when `ob` is asked for (see [`super::outbound`]).
    pub fn contact_uri(&self, ob: bool) -> SipUri {
        let settings = &self.settings;
        let user = settings.line.user_name.as_deref();
        let port = (!names_connection(settings.transport)).then_some(settings.listen_port);
        let mut uri = SipUri::new(Scheme::Sip, user, Host::from(settings.bind_ip), port);
        if settings.transport != Transport::Udp {
            uri.params.set("transport", Some(&settings.transport.to_string()));
        }
        if ob {
            uri.params.set("ob", None);
        }
        uri
    }

    /// The Contact URI a request sent from `local` carried: over TLS, the connection's address.
    pub fn contact_uri_from(&self, ob: bool, local: Option<SocketAddr>) -> SipUri {
        let mut uri = self.contact_uri(ob);
        if let Some(local) = local.filter(|_| names_connection(self.settings.transport)) {
            uri.host = Host::from(local.ip());
            uri.port = Some(local.port());
        }
        uri
    }
}

/// Completes the Contact of a request leaving from `local` over `transport`: over TLS, a Contact
/// of the phone without a port gets the connection's address and port.
pub(crate) fn place(context: &Context, message: &mut Message, transport: Transport, local: SocketAddr) {
    if !names_connection(transport) {
        return;
    }
    let ours = Host::from(context.settings.bind_ip);
    for header in message.headers.iter_mut().filter(|h| h.name == HeaderName::Contact) {
        let Ok(Contact::Address(mut address)) = Contact::parse(&header.value) else { continue };
        let Uri::Sip(uri) = &mut address.uri else { continue };
        if uri.port.is_some() || !uri.host.matches(&ours) {
            continue;
        }
        uri.host = Host::from(local.ip());
        uri.port = Some(local.port());
        header.value = address.to_string();
    }
}
