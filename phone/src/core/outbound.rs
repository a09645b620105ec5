//! RFC 5626 (SIP outbound, accepting draft-15's forms) on the phone's side: keep-alives on the registration's flow and the backoff that re-establishes failed flows.
//!
//! - Keep-alives start only after a 2xx to a REGISTER carries `Require: outbound` (§4.2.1), and
//!   run on the flow that REGISTER went on: a CRLF ping (`\r\n\r\n`) on TCP/TLS answered by a
//!   pong (`\r\n`), a STUN binding request on UDP answered by a binding response (§4.4). The
//!   interval is a uniform random 80-100% of `Flow-Timer` when the registrar sends one, else of
//!   `refphone keep alive interval` (default: `sip persistent tls keep alive`, else 120 s).
//! - A CRLF ping unanswered within `refphone pong timeout` (default 10 s), a STUN binding
//!   transaction that timed out (RFC 5389 §7.2.1: sent again after `refphone stun rto`, default
//!   500 ms, doubling, 7 sends in all, then 16 RTO after the last: 39.5 s by default), a STUN
//!   answer whose XOR-MAPPED-ADDRESS differs from the first one seen on the flow (§4.4.2), or a
//!   closed or reset connection, means the flow failed: the core closes it, and the registration's server counts
//!   as down for the failover state machine. A 430 Flow Failed that reaches the phone is not a
//!   flow failure: the edge proxy sends it towards the authoritative proxy, and a UA that
//!   receives one treats it as 400 (§11).
//! - A failed flow is re-established in the background (§4.5): a flow that had succeeded (a 2xx
//!   to its REGISTER and, with keep-alives, an answer to its first keep-alive) is replaced at
//!   once; each failed attempt since the last successful flow (consecutive-failures n, a flow
//!   that failed before it succeeded included) then waits
//!   `min(max-time, base-time * 2^n) * uniform(0.5, 1)`, base-time `refphone outbound base
//!   time` (default 30 s when every flow failed, 90 s when another flow works), max-time
//!   `refphone outbound max time` (default 1800 s).
//! - Contacts: a REGISTER carries `+sip.instance` and `reg-id`; `;ob` goes on the Contact URI of
//!   a REGISTER only when the phone registers without an outbound proxy (§4.2.1: the registrar
//!   is then the edge proxy that must keep using the flow), and on the Contact URI of
//!   dialog-forming requests (SUBSCRIBE, INVITE), asking that the dialog's requests come over
//!   the same flow (§4.3), once outbound is in use: the current registration's 2xx carried
//!   `Require: outbound` (§4.2.1, §5.4).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::{HeaderName, Message, StunClass, StunMessage};

use super::{Context, FlowId, Output, TimerId, Transport};
use crate::quirks::Quirk;

/// RFC 5626 §4.5 base-time when every flow failed.
pub const BASE_TIME_ALL_FAILED: Duration = Duration::from_secs(30);
/// RFC 5626 §4.5 base-time when another flow still works.
pub const BASE_TIME_SOME_FAILED: Duration = Duration::from_secs(90);

/// How long to wait before the next attempt to re-establish a flow after `failures` consecutive
/// failures: `min(max, base * 2^failures) * (0.5 + 0.5 * unit_random)`, `unit_random` in [0, 1).
pub fn flow_recovery_wait(base: Duration, max: Duration, failures: u32, unit_random: f64) -> Duration {
    let factor = 2f64.powi(failures.min(64) as i32);
    let upper = base.as_secs_f64() * factor;
    let upper = upper.min(max.as_secs_f64());
    Duration::from_secs_f64(upper * (0.5 + 0.5 * unit_random.clamp(0.0, 1.0)))
}

/// The next keep-alive interval: a uniform 80-100% of `Flow-Timer`, else of the configured
/// interval (`keepalive-too-slow`: 150%).
pub fn keepalive_interval(
    flow_timer: Option<Duration>,
    configured: Duration,
    unit_random: f64,
    too_slow: bool,
) -> Duration {
    let base = flow_timer.unwrap_or(configured);
    if too_slow {
        return base.mul_f64(1.5);
    }
    base.mul_f64(0.8 + 0.2 * unit_random.clamp(0.0, 1.0))
}

/// The wait before re-establishing a flow, with the cfg's timers and the quirks.
pub(crate) fn recovery_wait(context: &mut Context, failures: u32, other_flow_up: bool) -> Duration {
    let timers = context.settings.phone_timers;
    let base =
        timers.outbound_base_time.unwrap_or(if other_flow_up { BASE_TIME_SOME_FAILED } else { BASE_TIME_ALL_FAILED });
    if context.quirk(Quirk::BackoffTooEager) {
        return base / 10;
    }
    let unit = context.ids.unit();
    flow_recovery_wait(base, timers.outbound_max_time, failures, unit)
}

/// Whether dialog-forming requests carry `;ob` on their Contact URI: only once outbound is in
/// use, that is after the current registration's 2xx carried `Require: outbound` (§4.2.1, §5.4).
pub(crate) fn ob_in_dialogs(context: &Context) -> bool {
    context.settings.outbound_support && context.outbound_in_use
}

/// What a 2xx to an outbound REGISTER asks of the flow it came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeepAliveRequest {
    pub flow: FlowId,
    pub flow_timer: Option<Duration>,
}

/// Reads a 2xx to an outbound REGISTER: keep-alives are wanted only with `Require: outbound`
/// (`keepalive-without-require`: always) and never with `no-keepalive`.
pub(crate) fn keepalive_request(context: &Context, flow: FlowId, response: &Message) -> Option<KeepAliveRequest> {
    if context.quirk(Quirk::NoKeepalive) {
        return None;
    }
    let required = response.has_option_tag(&HeaderName::Require, "outbound");
    if !required && !context.quirk(Quirk::KeepaliveWithoutRequire) {
        tracing::info!("the registrar's 2xx lacks Require: outbound; no keep-alives (RFC 5626 §4.2.1)");
        return None;
    }
    let flow_timer = response.flow_timer().ok().flatten().map(|s| Duration::from_secs(u64::from(s)));
    Some(KeepAliveRequest { flow, flow_timer })
}

/// RFC 5389 §7.2.1 Rc: a STUN request is sent at most this many times.
const STUN_SENDS: u32 = 7;
/// RFC 5389 §7.2.1 Rm: after the last send, the transaction waits this many initial RTOs.
const STUN_LAST_WAIT_RTOS: u32 = 16;

/// What a keep-alive in flight waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Pong,
    /// A STUN binding transaction: its id, how often it was sent, the wait before the next send.
    Stun {
        id: [u8; 12],
        sends: u32,
        rto: Duration,
    },
}

#[derive(Debug)]
struct KeptFlow {
    transport: Transport,
    flow_timer: Option<Duration>,
    awaiting: Option<Awaiting>,
    /// The first XOR-MAPPED-ADDRESS a STUN answer reported on the flow (RFC 5626 §4.4.2).
    first_mapping: Option<SocketAddr>,
}

/// What a STUN message on a kept flow meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StunAnswer {
    /// It answered the keep-alive, with the mapping the flow has had.
    Answered,
    /// It answered the keep-alive with another mapping: the flow failed (RFC 5626 §4.4.2).
    MappingChanged { was: SocketAddr, now: SocketAddr },
    /// Not an answer to a keep-alive in flight.
    Ignored,
}

/// The flows kept alive: the registration's current flow.
#[derive(Debug, Default)]
pub(crate) struct KeepAlives {
    flows: BTreeMap<FlowId, KeptFlow>,
}

impl KeepAlives {
    /// Keeps `flow` alive from now on (and no other flow); a refresh on the same flow only updates its Flow-Timer.
    pub fn start(&mut self, now: Instant, context: &mut Context, request: KeepAliveRequest, transport: Transport) {
        let others: Vec<FlowId> = self.flows.keys().copied().filter(|f| *f != request.flow).collect();
        for other in others {
            self.forget(context, other);
        }
        if let Some(kept) = self.flows.get_mut(&request.flow) {
            kept.flow_timer = request.flow_timer;
            return;
        }
        let kept = KeptFlow { transport, flow_timer: request.flow_timer, awaiting: None, first_mapping: None };
        self.flows.insert(request.flow, kept);
        let interval = self.next_interval(context, request.flow);
        tracing::info!(
            "keeping flow {} ({transport}) alive every {:.3}s (Flow-Timer {:?})",
            request.flow.0,
            interval.as_secs_f64(),
            request.flow_timer.map(|d| d.as_secs())
        );
        context.set_timer(TimerId::KeepAlive(request.flow), now + interval);
    }

    fn next_interval(&self, context: &mut Context, flow: FlowId) -> Duration {
        let flow_timer = self.flows.get(&flow).and_then(|k| k.flow_timer);
        let configured = context.settings.phone_timers.keep_alive_interval;
        let unit = context.ids.unit();
        keepalive_interval(flow_timer, configured, unit, context.quirk(Quirk::KeepaliveTooSlow))
    }

    /// Time for a keep-alive on `flow`: send it, expect its answer (a pong within the pong
    /// timeout; a STUN transaction's answer before it times out), schedule the next. A STUN
    /// transaction still running is that keep-alive: no second one starts beside it.
    pub fn on_keepalive_timer(&mut self, now: Instant, context: &mut Context, flow: FlowId) {
        let Some(kept) = self.flows.get_mut(&flow) else { return };
        let timers = context.settings.phone_timers;
        match kept.transport {
            Transport::Udp if matches!(kept.awaiting, Some(Awaiting::Stun { .. })) => {}
            Transport::Udp => {
                let id = context.ids.stun_transaction_id();
                kept.awaiting = Some(Awaiting::Stun { id, sends: 1, rto: timers.stun_rto });
                context.push(Output::SendRaw { flow, bytes: StunMessage::binding_request(id).encode() });
                context.set_timer(TimerId::PongTimeout(flow), now + timers.stun_rto);
            }
            Transport::Tcp | Transport::Tls => {
                if kept.awaiting.is_none() {
                    context.set_timer(TimerId::PongTimeout(flow), now + timers.pong_timeout);
                }
                kept.awaiting = Some(Awaiting::Pong);
                context.push(Output::SendRaw { flow, bytes: b"\r\n\r\n".to_vec() });
            }
        }
        let interval = self.next_interval(context, flow);
        context.set_timer(TimerId::KeepAlive(flow), now + interval);
    }

    /// A CRLF pong on a TCP/TLS flow: whether it answered a keep-alive.
    pub fn on_pong(&mut self, _now: Instant, context: &mut Context, flow: FlowId) -> bool {
        if let Some(kept) = self.flows.get_mut(&flow)
            && kept.awaiting == Some(Awaiting::Pong)
        {
            kept.awaiting = None;
            context.cancel_timer(TimerId::PongTimeout(flow));
            return true;
        }
        false
    }

    /// A STUN message on a UDP flow: whether it answered our binding request (its transaction id
    /// matches), and with the mapping the flow first had.
    pub fn on_stun(&mut self, _now: Instant, context: &mut Context, flow: FlowId, stun: &StunMessage) -> StunAnswer {
        let Some(kept) = self.flows.get_mut(&flow) else { return StunAnswer::Ignored };
        let in_flight = matches!(kept.awaiting, Some(Awaiting::Stun { id, .. }) if id == stun.transaction_id);
        if stun.class != StunClass::BindingSuccess || !in_flight {
            return StunAnswer::Ignored;
        }
        kept.awaiting = None;
        context.cancel_timer(TimerId::PongTimeout(flow));
        match (kept.first_mapping, stun.mapped_address) {
            (Some(was), Some(now)) if was != now => StunAnswer::MappingChanged { was, now },
            (None, Some(first)) => {
                kept.first_mapping = Some(first);
                StunAnswer::Answered
            }
            _ => StunAnswer::Answered,
        }
    }

    /// The answer did not come in time: whether `flow` failed. A STUN request is first sent
    /// again, RTO doubling, until it went [`STUN_SENDS`] times and [`STUN_LAST_WAIT_RTOS`]
    /// initial RTOs passed since the last (RFC 5389 §7.2.1).
    pub fn on_pong_timeout(&mut self, now: Instant, context: &mut Context, flow: FlowId) -> bool {
        let Some(kept) = self.flows.get_mut(&flow) else { return false };
        match &mut kept.awaiting {
            None => false,
            Some(Awaiting::Pong) => true,
            Some(Awaiting::Stun { sends, .. }) if *sends >= STUN_SENDS => true,
            Some(Awaiting::Stun { id, sends, rto }) => {
                context.push(Output::SendRaw { flow, bytes: StunMessage::binding_request(*id).encode() });
                *sends += 1;
                *rto *= 2;
                let wait = if *sends == STUN_SENDS {
                    context.settings.phone_timers.stun_rto * STUN_LAST_WAIT_RTOS
                } else {
                    *rto
                };
                context.set_timer(TimerId::PongTimeout(flow), now + wait);
                false
            }
        }
    }

    /// Stops keeping `flow` alive; whether it was kept alive.
    pub fn forget(&mut self, context: &mut Context, flow: FlowId) -> bool {
        if self.flows.remove(&flow).is_some() {
            context.cancel_timer(TimerId::KeepAlive(flow));
            context.cancel_timer(TimerId::PongTimeout(flow));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_backoff_doubles_from_the_base_time_and_stays_within_half_to_all_of_it() {
        for failures in 0..8 {
            let upper = (30 * 2u64.pow(failures)).min(1800);
            let low = flow_recovery_wait(S(30), S(1800), failures, 0.0);
            let high = flow_recovery_wait(S(30), S(1800), failures, 0.999_999);
            assert_eq!(low, Duration::from_secs_f64(upper as f64 * 0.5), "{failures}");
            assert!(high <= S(upper) && high > S(upper).mul_f64(0.99), "{failures}: {high:?}");
        }
    }

    #[test]
    fn the_backoff_never_exceeds_max_time() {
        for failures in [10, 20, 63, 64, 1000, u32::MAX] {
            let wait = flow_recovery_wait(S(90), S(1800), failures, 0.999);
            assert!(wait <= S(1800) && wait >= S(900), "{failures}: {wait:?}");
        }
    }

    #[test]
    fn the_rfc_example_three_failures_at_base_30_waits_120_to_240_seconds() {
        assert_eq!(flow_recovery_wait(S(30), S(1800), 3, 0.0), S(120));
        assert_eq!(flow_recovery_wait(S(30), S(1800), 3, 1.0), S(240));
    }

    #[test]
    fn keepalives_come_at_80_to_100_percent_of_flow_timer() {
        let flow_timer = Some(S(100));
        assert_eq!(keepalive_interval(flow_timer, S(999), 0.0, false), S(80));
        assert_eq!(keepalive_interval(flow_timer, S(999), 1.0, false), S(100));
        for step in 0..=10 {
            let interval = keepalive_interval(flow_timer, S(999), f64::from(step) / 10.0, false);
            assert!(interval >= S(80) && interval <= S(100), "{interval:?}");
        }
    }

    #[test]
    fn without_flow_timer_the_configured_interval_is_used() {
        assert_eq!(keepalive_interval(None, S(50), 0.0, false), S(40));
        assert_eq!(keepalive_interval(None, S(50), 1.0, false), S(50));
    }

    #[test]
    fn keepalive_too_slow_goes_past_the_flow_timer() {
        assert_eq!(keepalive_interval(Some(S(100)), S(999), 0.5, true), S(150));
    }
}
