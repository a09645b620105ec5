//! Probing a failed primary in the background, so the phone notices its return and moves back (R1.4, R1.5, R2.3, R3.3).
//!
//! While the primary of a dimension is marked failed, the phone sends an OPTIONS to the element
//! that failed ([`super::routing::Failover::probe_target`]): a registrar or proxy through the
//! active outbound proxy (if any; in row 2 through the primary outbound proxy), an outbound proxy
//! directly. Any final response but 408 and 5xx means the primary is back; the failover state
//! machine then unmarks it and every owner moves back ([`super::Why::Failback`]). A probe
//! answered with Retry-After holds the next one off until it runs out (RFC 3261 §21.5.4).
//!
//! When: without RFC 5626 outbound, every `refphone failback probe interval` (default 30 s),
//! counted from the end of the previous probe, and never before the probed server's Retry-After. A probe ends at its response or after the
//! transaction timer, so **a primary's return is noticed at most `refphone failback probe
//! interval` + `sip transaction timer` after it happens** (plus one DNS lookup). With outbound,
//! re-establishing the failed flow follows RFC 5626 §4.5 instead: the n-th attempt waits
//! `min(max-time, base-time * 2^n) * uniform(0.5, 1)` (see [`super::outbound::recovery_wait`]),
//! so the bound is that wait plus the transaction timer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sip::{CSeq, HeaderName, Message, Method, NameAddr, Scheme, SipUri};

use super::registration::MAX_FORWARDS;
use super::routing::{Dimension, Failover, server_uri};
use super::sender::{RequestEvent, RequestSender};
use super::server_down::{probe_found_server_back, retry_after};
use super::{Context, RequestId, TimerId};
use crate::config::Destination;
use crate::quirks::Quirk;

/// The probe of one failed primary.
#[derive(Debug, Default)]
struct Probe {
    /// The OPTIONS in flight.
    pending: Option<RequestId>,
    /// Attempts that found the primary still down, counting the failure that marked it.
    failures: u32,
    /// Whether another flow works while this one is down (RFC 5626's 90 s base-time).
    other_flow_up: bool,
    /// The server the probe goes to.
    target: Option<Destination>,
}

#[derive(Debug, Default)]
pub(crate) struct FailbackProbes {
    probes: BTreeMap<Dimension, Probe>,
}

impl FailbackProbes {
    /// The primary of `dimension` was just marked failed: schedule its first probe.
    pub fn start(
        &mut self,
        now: Instant,
        context: &mut Context,
        failover: &Failover,
        dimension: Dimension,
        other_flow_up: bool,
    ) {
        if context.quirk(Quirk::NoFailback) {
            tracing::info!("not probing the failed primary {dimension} (quirk no-failback)");
            return;
        }
        if context.settings.outbound_support && context.quirk(Quirk::NoFlowRecovery) {
            tracing::info!("not re-establishing the failed flow to the primary {dimension} (quirk no-flow-recovery)");
            return;
        }
        let probe = self.probes.entry(dimension).or_default();
        probe.failures = 1;
        probe.other_flow_up = other_flow_up;
        probe.pending = None;
        probe.target = failover.probe_target(dimension).map(|(target, _)| target);
        let delay = probe_delay(context, probe);
        let at = context.not_before(probe.target.as_ref(), now + delay);
        context.set_timer(TimerId::FailbackProbe(dimension), at);
        tracing::info!("probing the primary {dimension} in {:.3}s", (at - now).as_secs_f64());
    }

    /// The dimension is no longer marked failed (its backup failed too): stop probing.
    pub fn stop(&mut self, context: &mut Context, dimension: Dimension) {
        if self.probes.remove(&dimension).is_some() {
            context.cancel_timer(TimerId::FailbackProbe(dimension));
        }
    }

    pub fn owns(&self, request: RequestId) -> bool {
        self.probes.values().any(|p| p.pending == Some(request))
    }

    /// Time to probe: send an OPTIONS to the failed primary.
    pub fn on_timer(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        dimension: Dimension,
    ) {
        if !failover.is_failed(dimension) {
            self.probes.remove(&dimension);
            return;
        }
        let Some(probe) = self.probes.get_mut(&dimension) else { return };
        if probe.pending.is_some() {
            return;
        }
        let Some((target, hop)) = failover.probe_target(dimension) else { return };
        let user = context.settings.line.user_name.clone();
        let aor_host = failover.aor_host(failover.active()).cloned().unwrap_or_else(|| target.host.clone());
        let target_uri = server_uri(&target);
        let mut options = Message::request(Method::Options, &target_uri);
        if let Some(route) = &hop.route {
            options.push_header(HeaderName::Route, NameAddr::new(route.clone()));
        }
        options.push_header(HeaderName::MaxForwards, MAX_FORWARDS);
        let mut from = NameAddr::new(SipUri::new(Scheme::Sip, user.as_deref(), aor_host, None));
        from.params.set("tag", Some(&context.ids.tag()));
        options.push_header(HeaderName::From, from);
        options.push_header(HeaderName::To, NameAddr::new(target_uri));
        let bind_ip = context.settings.bind_ip;
        options.push_header(HeaderName::CallId, context.ids.call_id(bind_ip));
        options.push_header(HeaderName::CSeq, CSeq { seq: 1, method: Method::Options });
        options.push_header(HeaderName::Contact, NameAddr::new(context.contact_uri(false)));
        options.push_header(HeaderName::Accept, "application/sdp");
        options.push_header(HeaderName::UserAgent, &context.settings.user_agent);
        tracing::debug!("probing the primary {dimension} at {}", target.host);
        probe.pending = Some(sender.send(now, context, &hop.next_hop, options));
    }

    /// A probe ended: whether its primary is back. When it is not, the next probe is scheduled.
    pub fn on_request_event(
        &mut self,
        now: Instant,
        context: &mut Context,
        failover: &Failover,
        event: RequestEvent,
    ) -> Option<(Dimension, bool)> {
        let (&dimension, probe) = self.probes.iter_mut().find(|(_, p)| p.pending == Some(event.request()))?;
        let alive = match &event {
            RequestEvent::Provisional { .. } => return None,
            RequestEvent::Final { response, .. } => response.status().is_some_and(probe_found_server_back),
            RequestEvent::Failed { .. } => false,
        };
        if !alive && context.quirk(Quirk::Flap) {
            tracing::info!("the primary {dimension} did not answer the probe; moving back anyway (quirk flap)");
            self.probes.remove(&dimension);
            return Some((dimension, true));
        }
        if let (false, RequestEvent::Final { response, .. }) = (alive, &event)
            && !context.quirk(Quirk::IgnoreRetryAfter)
            && let (Some(wait), Some(target)) = (retry_after(response), &probe.target)
        {
            context.hold_off(target, now + wait);
        }
        probe.pending = None;
        if alive {
            self.probes.remove(&dimension);
            return Some((dimension, true));
        }
        tracing::debug!("the primary {dimension} is still down: {event:?}");
        probe.failures = probe.failures.saturating_add(1);
        if failover.is_failed(dimension) {
            let delay = probe_delay(context, probe);
            let at = context.not_before(probe.target.as_ref(), now + delay);
            context.set_timer(TimerId::FailbackProbe(dimension), at);
        }
        Some((dimension, false))
    }
}

/// How long until the next probe: the probe interval, or with RFC 5626 outbound the flow recovery
/// backoff (`probe-storm`: T1).
fn probe_delay(context: &mut Context, probe: &Probe) -> Duration {
    if context.quirk(Quirk::ProbeStorm) {
        return context.settings.timers.t1;
    }
    if context.settings.outbound_support {
        super::outbound::recovery_wait(context, probe.failures, probe.other_flow_up)
    } else {
        context.settings.phone_timers.failback_probe_interval
    }
}
