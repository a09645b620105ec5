//! What a registration sends besides its own REGISTER: un-REGISTERs of the bindings it leaves behind at a failback, and the `register-both` quirk's refreshes of them.

use std::time::Instant;

use sip::SipUri;

use super::{BindingKey, HeldBinding, Registration};
use crate::core::Context;
use crate::core::TimerId;
use crate::core::expiry::whole_seconds;
use crate::core::routing::{Failover, Hop, Placement};
use crate::core::sender::RequestSender;
use crate::quirks::Quirk;

impl Registration {
    /// un-REGISTERs every binding but the current one that is held at a server not marked failed.
    pub(super) fn release_stale_bindings(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
    ) {
        let Some((current, _, _)) = self.current.clone() else { return };
        let stale: Vec<(BindingKey, HeldBinding)> = self
            .bindings
            .iter()
            .filter(|(key, held)| **key != current && held.expires_at > now && !failover.uses_failed_primary(held.path))
            .map(|(key, held)| (key.clone(), held.clone()))
            .collect();
        for (key, held) in stale {
            self.bindings.remove(&key);
            if context.quirk(Quirk::StaleBackupAor) && key.registrar == current.registrar && key.aor != current.aor {
                tracing::info!("not un-REGISTERing the backup AOR {} (quirk stale-backup-aor)", key.aor);
                continue;
            }
            if context.quirk(Quirk::RegisterBoth) && key.registrar != current.registrar {
                tracing::info!(
                    "keeping {} at the {} registrar refreshed too (quirk register-both)",
                    key.aor,
                    key.registrar
                );
                self.kept_alive.insert(key, held.path);
                let period = context.settings.line.registration_period;
                context.set_timer(TimerId::KeptBindingRefresh(self.line), now + period / 2);
                continue;
            }
            if context.quirk(Quirk::NoUnregisterBackup) {
                tracing::info!(
                    "not un-REGISTERing {} at the {} registrar (quirk no-unregister-backup)",
                    key.aor,
                    key.registrar
                );
                continue;
            }
            self.send_unregister(now, context, sender, failover, &key, held.path, &held.contact);
        }
    }

    /// `register-both`: refreshes every binding kept at the other registrar, and schedules the next round.
    pub(super) fn refresh_kept_bindings(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
    ) {
        let expires = whole_seconds(context.settings.line.registration_period);
        for (key, path) in self.kept_alive.clone() {
            let Some(registrar) = failover.registrar(path).cloned() else { continue };
            let hop = failover.hop(path, &registrar);
            if let Some(register) = self.register_request(context, sender, failover, &key, &hop, expires, None) {
                let request = sender.send(now, context, &hop.next_hop, register);
                self.keeping.insert(request, key);
            }
        }
        if !self.kept_alive.is_empty() {
            let period = context.settings.line.registration_period;
            context.set_timer(TimerId::KeptBindingRefresh(self.line), now + period / 2);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_unregister(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        key: &BindingKey,
        path: Placement,
        contact: &SipUri,
    ) {
        let Some(registrar) = failover.registrar(path).cloned() else { return };
        let mut hop = failover.hop(path, &registrar);
        if context.quirk(Quirk::UnregisterBypassesOutbound) && hop.route.is_some() {
            tracing::info!("un-REGISTERing straight at the registrar (quirk unregister-bypasses-outbound)");
            hop = Hop { next_hop: registrar.clone(), route: None };
        }
        tracing::info!("un-REGISTERing {} at {} (Expires: 0, Contact {contact})", key.aor, registrar.host);
        let Some(register) = self.register_request(context, sender, failover, key, &hop, 0, Some(contact)) else {
            return;
        };
        let request = sender.send(now, context, &hop.next_hop, register);
        self.releasing.insert(request, key.clone());
    }
}
