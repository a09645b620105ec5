//! The REGISTER message of a binding: its call leg (Call-ID, From tag, CSeq), its Contact (with RFC 5626 `+sip.instance` and `reg-id` when outbound is on) and its headers.

use sip::{CSeq, HeaderName, Message, Method, NameAddr, SipUri};

use super::{BindingKey, MAX_FORWARDS, RegisterCallLeg, Registration};
use crate::core::Context;
use crate::core::routing::{Failover, Hop, Placement, Role, server_uri};
use crate::core::sender::RequestSender;

impl Registration {
    /// The RFC 5626 `reg-id` of a REGISTER under `placement`, when outbound is on.
    pub(super) fn reg_id(context: &Context, failover: &Failover, placement: Placement) -> Option<u32> {
        if !context.settings.outbound_support {
            return None;
        }
        let through_backup =
            failover.outbound_proxies().is_some_and(|p| p.backup.is_some()) && placement.outbound == Role::Backup;
        Some(if through_backup { 2 } else { 1 })
    }

    /// The Contact of a REGISTER: the binding's URI when `named` (an un-REGISTER names the Contact
    /// the binding was made with), else the phone's (over TLS completed per connection by the
    /// sender); with outbound, `+sip.instance` and `reg-id`, and `;ob` on the URI when there is no
    /// outbound proxy.
    pub(super) fn contact(
        context: &Context,
        failover: &Failover,
        reg_id: Option<u32>,
        named: Option<&SipUri>,
    ) -> String {
        let ob = reg_id.is_some() && failover.outbound_proxies().is_none();
        let uri = match named {
            Some(uri) => {
                let mut uri = uri.clone();
                if ob {
                    uri.params.set("ob", None);
                }
                uri
            }
            None => context.contact_uri(ob),
        };
        let mut contact = NameAddr::new(uri);
        if let Some(reg_id) = reg_id {
            contact.params.set_quoted("+sip.instance", &format!("<{}>", context.settings.instance_id));
            contact.params.set("reg-id", Some(&reg_id.to_string()));
        }
        contact.to_string()
    }

    /// A REGISTER of `key`'s binding with `expires`, to go by `hop`, next in the call leg of its
    /// registrar and AOR (RFC 3261 §10.2: one CSeq more than any REGISTER on the Call-ID, an
    /// in-flight retry included); its Contact is `named`, else the phone's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn register_request(
        &mut self,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        key: &BindingKey,
        hop: &Hop,
        expires: u32,
        named: Option<&SipUri>,
    ) -> Option<Message> {
        let account = self.account.clone()?;
        let registrar = failover.registrar(Placement { registrar: key.registrar, ..Placement::PRIMARY })?;
        let aor = sip::Uri::parse(&key.aor).ok()?;
        let bind_ip = context.settings.bind_ip;
        let leg = self.call_legs.entry((key.registrar, key.aor.clone())).or_insert_with(|| RegisterCallLeg {
            call_id: context.ids.call_id(bind_ip),
            from_tag: context.ids.tag(),
            min_expires: None,
        });
        let seq = sender.next_cseq(&leg.call_id);
        let mut register = Message::request(Method::Register, server_uri(registrar));
        if let Some(route) = &hop.route {
            register.push_header(HeaderName::Route, NameAddr::new(route.clone()));
        }
        register.push_header(HeaderName::MaxForwards, MAX_FORWARDS);
        let mut from = NameAddr::new(aor.clone());
        from.display_name = account.display_name;
        from.params.set("tag", Some(&leg.from_tag));
        register.push_header(HeaderName::From, from);
        register.push_header(HeaderName::To, NameAddr::new(aor));
        register.push_header(HeaderName::CallId, &leg.call_id);
        register.push_header(HeaderName::CSeq, CSeq { seq, method: Method::Register });
        register.push_header(HeaderName::Contact, Self::contact(context, failover, key.reg_id, named));
        register.push_header(HeaderName::Expires, expires);
        if key.reg_id.is_some() {
            register.push_header(HeaderName::Supported, "outbound, path");
        }
        register.push_header(HeaderName::UserAgent, &context.settings.user_agent);
        Some(register)
    }
}
