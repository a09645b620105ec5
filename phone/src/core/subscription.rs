//! Subscriptions from the cfg (RFC 6665): BLF keys (RFC 4235 `dialog`) and explicit MWI (RFC 3842 `message-summary`), kept at the active proxy and moved as new dialogs when the proxy dimension moves.
//!
//! Each subscription lives in one dialog at one placement (proxy and outbound proxy). When the
//! failover state machine moves the proxy (or, in rows 2 and 3, the outbound proxy), the
//! subscription starts a *new* dialog at the new placement: new Call-ID, new From tag, CSeq 1,
//! Request-URI `sip:<extension>@<active proxy host>` (MWI: `sip:<user>@<active proxy host>`).
//! At failback the old dialog at the backup is ended with an un-SUBSCRIBE (`Expires: 0`) first.
//!
//! A 481 to a refresh (the proxy restarted and forgot the dialog) and a NOTIFY with
//! `Subscription-State: terminated;reason=deactivated` (or `timeout`) start a new subscription at
//! once (RFC 6665 §4.1.3). NOTIFYs of a known dialog are answered 200, of an unknown one 481.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use sip::{CSeq, HeaderName, Host, Message, Method, NameAddr, Scheme, SipUri};

use super::expiry::whole_seconds;
use super::registration::MAX_FORWARDS;
use super::routing::{Failover, Placement, Role, Target};
use super::sender::{RequestEvent, RequestSender};
use super::server_down::response_means_server_failed;
use super::{Context, CoreSettings, RequestId, ServerDown, TimerId, Why};
use crate::config::SubscriptionSetting;
use crate::quirks::Quirk;

/// How many ended dialogs are remembered, so their late NOTIFYs get 200 rather than 481.
const ENDED_DIALOGS_KEPT: usize = 32;

/// Where one subscription stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Not started.
    Idle,
    /// A SUBSCRIBE is in flight.
    Subscribing { proxy: Role },
    /// Accepted by the proxy until `expires_at`; a refresh is scheduled.
    Active { proxy: Role, expires_at: Instant },
    /// The last attempt failed; the next starts a new dialog at `at`.
    WaitingToRetry { at: Instant },
    /// The notifier ended it for good (`rejected`, `noresource`, `invariant`).
    Terminated,
}

/// The event package of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Package {
    Dialog,
    MessageSummary,
}

impl Package {
    fn event(self) -> &'static str {
        match self {
            Package::Dialog => "dialog",
            Package::MessageSummary => "message-summary",
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Package::Dialog => "application/dialog-info+xml",
            Package::MessageSummary => "application/simple-message-summary",
        }
    }
}

/// The dialog a subscription lives in.
#[derive(Debug, Clone)]
struct SubscribeDialog {
    call_id: String,
    local_tag: String,
    /// The notifier's tag, from the 2xx or the first NOTIFY.
    remote_tag: Option<String>,
    /// The notifier's Contact, the Request-URI of refreshes.
    remote_target: Option<String>,
    /// Record-Route of the 2xx, reversed.
    route_set: Vec<String>,
    placement: Placement,
    /// The subscribed resource: the Request-URI of the initial SUBSCRIBE, and To.
    resource: SipUri,
    /// Our AOR at the time, in From.
    aor: SipUri,
}

impl SubscribeDialog {
    fn is_established(&self) -> bool {
        self.remote_tag.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingKind {
    Initial,
    Refresh,
}

#[derive(Debug, Clone)]
struct PendingSubscribe {
    request: RequestId,
    kind: PendingKind,
    requested_expires: u32,
}

#[derive(Debug)]
struct Subscription {
    package: Package,
    /// The extension (BLF) or the line's user (MWI).
    user: String,
    period: Duration,
    state: SubscriptionState,
    dialog: Option<SubscribeDialog>,
    pending: Option<PendingSubscribe>,
    min_expires: Option<u32>,
    /// The placement of the last SUBSCRIBE sent.
    last_placement: Option<Placement>,
}

#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    items: Vec<Subscription>,
    /// un-SUBSCRIBEs in flight; their outcome changes nothing.
    unsubscribes: BTreeSet<RequestId>,
    /// (Call-ID, our tag) of dialogs the phone ended, for their last NOTIFYs.
    ended: VecDeque<(String, String)>,
    display_name: Option<String>,
    user: Option<String>,
}

impl Subscriptions {
    pub fn new(settings: &CoreSettings) -> Subscriptions {
        let Some(user) = settings.line.user_name.clone() else { return Subscriptions::default() };
        let timers = &settings.phone_timers;
        let items = settings
            .subscriptions
            .iter()
            .map(|wanted| {
                let (package, resource_user, period) = match wanted {
                    SubscriptionSetting::BusyLampField { extension } => {
                        (Package::Dialog, extension.clone(), timers.subscription_period)
                    }
                    SubscriptionSetting::MessageWaiting => {
                        (Package::MessageSummary, user.clone(), timers.mwi_subscription_period)
                    }
                };
                Subscription {
                    package,
                    user: resource_user,
                    period,
                    state: SubscriptionState::Idle,
                    dialog: None,
                    pending: None,
                    min_expires: None,
                    last_placement: None,
                }
            })
            .collect();
        Subscriptions {
            items,
            unsubscribes: BTreeSet::new(),
            ended: VecDeque::new(),
            display_name: settings.line.display_name.clone(),
            user: Some(user),
        }
    }

    pub fn states(&self) -> Vec<SubscriptionState> {
        self.items.iter().map(|s| s.state.clone()).collect()
    }

    /// The subscription a request belongs to (an un-SUBSCRIBE belongs to the first, for dispatch).
    pub fn owner_of(&self, request: RequestId) -> Option<usize> {
        if self.unsubscribes.contains(&request) {
            return Some(0);
        }
        self.items.iter().position(|s| s.pending.as_ref().is_some_and(|p| p.request == request))
    }

    /// Boot: subscriptions start one after another, each when the previous first SUBSCRIBE got
    /// its answer (as the vendor's phone does), so the order on the wire is always the same.
    pub fn start(&mut self, now: Instant, context: &mut Context, sender: &mut RequestSender, failover: &Failover) {
        self.start_next_idle(now, context, sender, failover);
    }

    /// Starts the first subscription not started yet, if none is being started.
    fn start_next_idle(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
    ) {
        if self.items.iter().any(|item| item.pending.as_ref().is_some_and(|p| p.kind == PendingKind::Initial)) {
            return;
        }
        if let Some(index) = self.items.iter().position(|item| item.state == SubscriptionState::Idle) {
            let placement = Self::desired(context, failover);
            self.subscribe_anew(now, context, sender, failover, index, placement);
        }
    }

    /// Whether every subscription has been started.
    pub fn all_started(&self) -> bool {
        self.items.iter().all(|item| item.state != SubscriptionState::Idle)
    }

    /// Where subscriptions belong now (`subscriptions-stay`: at the primary proxy whatever happens).
    fn desired(context: &Context, failover: &Failover) -> Placement {
        let mut placement = failover.active();
        if context.quirk(Quirk::SubscriptionsStay) {
            placement.proxy = Role::Primary;
        }
        placement
    }

    /// Whether two placements put a subscription at the same proxy through the same outbound proxy.
    fn same_place(a: Placement, b: Placement) -> bool {
        a.proxy == b.proxy && a.outbound == b.outbound
    }

    pub fn on_timer(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        id: TimerId,
    ) {
        match id {
            TimerId::SubscriptionRefresh(index) => {
                let Some(item) = self.items.get(index) else { return };
                if item.pending.is_some() || !matches!(item.state, SubscriptionState::Active { .. }) {
                    return;
                }
                let desired = Self::desired(context, failover);
                match &item.dialog {
                    Some(dialog) if Self::same_place(dialog.placement, desired) => {
                        let expires = self.expires_of(index);
                        self.send_in_dialog(now, context, sender, failover, index, expires, PendingKind::Refresh);
                    }
                    _ => self.subscribe_anew(now, context, sender, failover, index, desired),
                }
            }
            TimerId::SubscriptionRetry(index) => {
                let Some(item) = self.items.get(index) else { return };
                if item.pending.is_some() || !matches!(item.state, SubscriptionState::WaitingToRetry { .. }) {
                    return;
                }
                let desired = Self::desired(context, failover);
                self.subscribe_anew(now, context, sender, failover, index, desired);
            }
            _ => {}
        }
    }

    /// Moves every subscription to the active placement, as a new dialog; at failback the old
    /// dialog at the backup is un-SUBSCRIBEd first.
    pub fn reconcile(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        why: Why,
    ) {
        let desired = Self::desired(context, failover);
        for index in 0..self.items.len() {
            let item = &self.items[index];
            if matches!(item.state, SubscriptionState::Idle | SubscriptionState::Terminated) {
                continue;
            }
            let here = match (&item.pending, &item.dialog, item.last_placement) {
                (Some(_), Some(dialog), _) => Self::same_place(dialog.placement, desired),
                (None, _, Some(last)) => Self::same_place(last, desired),
                _ => false,
            };
            if here {
                continue;
            }
            if let Some(pending) = self.items[index].pending.take() {
                sender.abandon(context, pending.request);
            }
            if why == Why::Failback {
                self.unsubscribe_current(now, context, sender, failover, index);
            }
            self.subscribe_anew_when_allowed(now, context, sender, failover, index, desired);
        }
    }

    /// Starts subscription `index` anew at `placement` now, or when its proxy's Retry-After runs out.
    fn subscribe_anew_when_allowed(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        placement: Placement,
    ) {
        let at = context.not_before(failover.proxy(placement), now);
        if at > now {
            self.retry_after(now, context, index, at - now);
        } else {
            self.subscribe_anew(now, context, sender, failover, index, placement);
        }
    }

    /// After a failure: subscribe again at once if the active placement moved since, else retry later.
    pub fn resume(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        timed_out: bool,
    ) {
        let Some(item) = self.items.get(index) else { return };
        if item.pending.is_some() {
            return;
        }
        let desired = Self::desired(context, failover);
        if item.last_placement.is_none_or(|last| !Self::same_place(last, desired)) {
            self.subscribe_anew_when_allowed(now, context, sender, failover, index, desired);
        } else {
            self.retry_later(now, context, failover, index, timed_out);
        }
    }

    /// Waits `sip subscription timeout retry timer` (no answer) or `sip subscription failed retry
    /// timer` (refused) before a new subscription.
    pub fn retry_later(
        &mut self,
        now: Instant,
        context: &mut Context,
        failover: &Failover,
        index: usize,
        timed_out: bool,
    ) {
        let timers = &context.settings.timers;
        let delay = if timed_out { timers.subscription_timeout_retry } else { timers.subscription_failed_retry };
        // Never before the proxy's Retry-After (RFC 3261 §21.5.4).
        let at = context.not_before(failover.proxy(Self::desired(context, failover)), now + delay);
        self.retry_after(now, context, index, at - now);
    }

    fn retry_after(&mut self, now: Instant, context: &mut Context, index: usize, delay: Duration) {
        let Some(item) = self.items.get_mut(index) else { return };
        let at = now + delay;
        item.state = SubscriptionState::WaitingToRetry { at };
        context.cancel_timer(TimerId::SubscriptionRefresh(index));
        context.set_timer(TimerId::SubscriptionRetry(index), at);
        tracing::info!(
            "{} subscription for {}: next attempt in {:.3}s",
            item.package.event(),
            item.user,
            delay.as_secs_f64()
        );
    }

    pub fn on_request_event(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        event: RequestEvent,
    ) -> Option<ServerDown> {
        if self.unsubscribes.contains(&event.request()) {
            if !matches!(event, RequestEvent::Provisional { .. }) {
                self.unsubscribes.remove(&event.request());
                tracing::debug!("un-SUBSCRIBE done: {event:?}");
            }
            return None;
        }
        let down = self.on_own_event(now, context, sender, failover, index, event);
        if !self.all_started() {
            self.start_next_idle(now, context, sender, failover);
        }
        down
    }

    fn on_own_event(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        event: RequestEvent,
    ) -> Option<ServerDown> {
        let item = self.items.get_mut(index)?;
        let pending = item.pending.clone().filter(|p| p.request == event.request())?;
        let placement = item.dialog.as_ref().map(|d| d.placement)?;
        match event {
            RequestEvent::Provisional { .. } => None,
            RequestEvent::Failed { cause, .. } => {
                item.pending = None;
                let proxy = failover.proxy(placement).map(|p| p.host.to_string()).unwrap_or_default();
                Some(ServerDown::no_response(Target::Proxy, placement, &cause, &format!("SUBSCRIBE to {proxy}")))
            }
            RequestEvent::Final { response, .. } => {
                item.pending = None;
                self.on_final_response(now, context, sender, failover, index, pending, placement, &response)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_final_response(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        pending: PendingSubscribe,
        placement: Placement,
        response: &Message,
    ) -> Option<ServerDown> {
        let status = response.status()?;
        let item = &mut self.items[index];
        match status {
            200..=299 => {
                let granted = response.expires().ok().flatten().unwrap_or(pending.requested_expires);
                if let Some(dialog) = &mut item.dialog {
                    if dialog.remote_tag.is_none() {
                        dialog.remote_tag = response.to().ok().and_then(|to| to.tag().map(str::to_owned));
                    }
                    if let Some(contact) =
                        response.contacts().ok().and_then(|c| c.into_iter().find_map(|c| c.address().cloned()))
                    {
                        dialog.remote_target = Some(contact.uri.to_string());
                    }
                    if pending.kind == PendingKind::Initial {
                        let mut routes: Vec<String> =
                            response.record_routes().unwrap_or_default().into_iter().map(|r| r.to_string()).collect();
                        routes.reverse();
                        dialog.route_set = routes;
                    }
                }
                if granted == 0 {
                    tracing::info!(
                        "{} subscription for {}: the proxy granted expires=0",
                        item.package.event(),
                        item.user
                    );
                    self.retry_later(now, context, failover, index, false);
                    return None;
                }
                let granted_for = Duration::from_secs(u64::from(granted));
                let expires_at = now + granted_for;
                if pending.kind == PendingKind::Initial {
                    tracing::info!(
                        "{} subscription for {} active at the {} proxy, expires={granted}",
                        item.package.event(),
                        item.user,
                        placement.proxy
                    );
                }
                item.state = SubscriptionState::Active { proxy: placement.proxy, expires_at };
                context.set_timer(TimerId::SubscriptionRefresh(index), now + granted_for / 2);
                None
            }
            481 if pending.kind == PendingKind::Refresh => {
                if context.quirk(Quirk::Ignore481) {
                    tracing::info!("481 to a refresh; refreshing the same dialog later (quirk ignore-481)");
                    item.state = SubscriptionState::Active { proxy: placement.proxy, expires_at: now };
                    let delay = context.settings.timers.subscription_failed_retry;
                    context.set_timer(TimerId::SubscriptionRefresh(index), now + delay);
                    return None;
                }
                if context.quirk(Quirk::NoResubscribeOn481) {
                    tracing::info!("481 to a refresh; dropping the subscription (quirk no-resubscribe-on-481)");
                    item.state = SubscriptionState::Terminated;
                    context.cancel_timer(TimerId::SubscriptionRefresh(index));
                    self.forget_dialog(sender, index);
                    return None;
                }
                tracing::info!(
                    "{} subscription for {}: 481 to a refresh (the proxy forgot the dialog); subscribing anew",
                    item.package.event(),
                    item.user
                );
                let desired = Self::desired(context, failover);
                self.subscribe_anew(now, context, sender, failover, index, desired);
                None
            }
            423 => {
                match response.min_expires() {
                    Ok(Some(min)) if min > pending.requested_expires => {
                        item.min_expires = Some(min);
                        let expires = self.expires_of(index);
                        let kind = pending.kind;
                        self.send_in_dialog(now, context, sender, failover, index, expires, kind);
                    }
                    _ => self.retry_later(now, context, failover, index, false),
                }
                None
            }
            status if response_means_server_failed(&Method::Subscribe, status, &context.settings.quirks) => {
                let proxy = failover.proxy(placement).map(|p| p.host.to_string()).unwrap_or_default();
                Some(ServerDown::by_response(Target::Proxy, placement, response, &format!("SUBSCRIBE to {proxy}")))
            }
            _ => {
                tracing::warn!(
                    "{} subscription for {} refused: {status} {}",
                    item.package.event(),
                    item.user,
                    sip::reason_phrase(status)
                );
                self.retry_later(now, context, failover, index, false);
                None
            }
        }
    }

    /// Answers a NOTIFY: 200 for a dialog the phone has (or just ended), 481 otherwise. A
    /// `terminated` state with reason `deactivated` or `timeout` starts a new subscription at once.
    pub fn on_notify(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        notify: &Message,
    ) -> u16 {
        let (Ok(call_id), Ok(to), Ok(from)) = (notify.call_id(), notify.to(), notify.from()) else { return 400 };
        let (Some(our_tag), Some(their_tag)) = (to.tag(), from.tag()) else { return 481 };
        let found = self.items.iter().position(|item| {
            item.dialog.as_ref().is_some_and(|d| {
                d.call_id == call_id
                    && d.local_tag == our_tag
                    && d.remote_tag.as_deref().is_none_or(|remote| remote == their_tag)
            })
        });
        let Some(index) = found else {
            let ended = self.ended.iter().any(|(c, t)| c == call_id && t == our_tag);
            return if ended { 200 } else { 481 };
        };
        if let Some(dialog) = &mut self.items[index].dialog
            && dialog.remote_tag.is_none()
        {
            dialog.remote_tag = Some(their_tag.to_owned());
        }
        let Ok(Some(state)) = notify.subscription_state() else { return 200 };
        if state.state != "terminated" {
            self.follow_notifier_expiry(now, context, index, &state);
            return 200;
        }
        let item = &self.items[index];
        let reason = state.reason().map(str::to_ascii_lowercase);
        tracing::info!(
            "{} subscription for {} terminated by the notifier (reason {})",
            item.package.event(),
            item.user,
            reason.as_deref().unwrap_or("none")
        );
        self.forget_dialog(sender, index);
        if let Some(pending) = self.items[index].pending.take() {
            sender.abandon(context, pending.request);
        }
        match reason.as_deref() {
            None | Some("deactivated") | Some("timeout") => {
                let desired = Self::desired(context, failover);
                self.subscribe_anew(now, context, sender, failover, index, desired);
            }
            Some("probation") | Some("giveup") => {
                let delay = state
                    .params
                    .value("retry-after")
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(context.settings.timers.subscription_failed_retry);
                self.retry_after(now, context, index, delay);
            }
            Some(_) => {
                self.items[index].state = SubscriptionState::Terminated;
                context.cancel_timer(TimerId::SubscriptionRefresh(index));
            }
        }
        200
    }

    /// RFC 6665 §4.1.3: `active` or `pending` with `expires=N` is the notifier's word on when the
    /// subscription ends; when that is sooner than the phone thought, refresh at half of it.
    fn follow_notifier_expiry(
        &mut self,
        now: Instant,
        context: &mut Context,
        index: usize,
        state: &sip::SubscriptionState,
    ) {
        let Some(seconds) = state.params.value("expires").and_then(|v| v.trim().parse::<u64>().ok()) else { return };
        let item = &mut self.items[index];
        let SubscriptionState::Active { proxy, expires_at } = item.state else { return };
        let notified_end = now + Duration::from_secs(seconds);
        if notified_end >= expires_at || item.pending.is_some() {
            return;
        }
        tracing::info!(
            "{} subscription for {}: the notifier says it ends in {seconds}s; refreshing sooner",
            item.package.event(),
            item.user
        );
        item.state = SubscriptionState::Active { proxy, expires_at: notified_end };
        context.set_timer(TimerId::SubscriptionRefresh(index), now + Duration::from_secs(seconds) / 2);
    }

    /// Remembers the current dialog as ended (its late NOTIFYs get 200) and drops it.
    fn forget_dialog(&mut self, sender: &mut RequestSender, index: usize) {
        if let Some(dialog) = self.items[index].dialog.take() {
            self.ended.push_back((dialog.call_id, dialog.local_tag));
            while self.ended.len() > ENDED_DIALOGS_KEPT {
                // Long ended (an un-SUBSCRIBE and its retries are over): its numbering goes too,
                // unless a dialog lives on with that Call-ID (`reuse-subscription-dialog`).
                if let Some((call_id, _)) = self.ended.pop_front()
                    && !self.items.iter().any(|i| i.dialog.as_ref().is_some_and(|d| d.call_id == call_id))
                {
                    sender.release_call_id(&call_id);
                }
            }
        }
    }

    fn expires_of(&self, index: usize) -> u32 {
        let item = &self.items[index];
        whole_seconds(item.period).max(item.min_expires.unwrap_or(0))
    }

    /// un-SUBSCRIBEs (`Expires: 0`) the established dialog of subscription `index`, if any.
    fn unsubscribe_current(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
    ) {
        let established = self.items[index].dialog.as_ref().is_some_and(SubscribeDialog::is_established);
        if !established {
            return;
        }
        if context.quirk(Quirk::NoUnsubscribeBackup) {
            tracing::info!("not un-SUBSCRIBEing the old dialog (quirk no-unsubscribe-backup)");
            return;
        }
        if let Some(request) = self.send_in_dialog(now, context, sender, failover, index, 0, PendingKind::Refresh) {
            self.items[index].pending = None;
            self.unsubscribes.insert(request);
        }
    }

    /// Starts subscription `index` in a new dialog at `placement` (`reuse-subscription-dialog`:
    /// in the old dialog's Call-ID and From tag).
    fn subscribe_anew(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        placement: Placement,
    ) {
        let Some(user) = self.user.clone() else { return };
        let (Some(proxy), Some(aor_host)) = (failover.proxy(placement).cloned(), failover.aor_host(placement).cloned())
        else {
            return;
        };
        let reuse = context.quirk(Quirk::ReuseSubscriptionDialog);
        let old = if reuse { self.items[index].dialog.clone() } else { None };
        // `same-from-tag`: a subscription moving elsewhere keeps its From tag in the new dialog.
        let kept_tag = match &self.items[index].dialog {
            Some(dialog) if context.quirk(Quirk::SameFromTag) && !Self::same_place(dialog.placement, placement) => {
                Some(dialog.local_tag.clone())
            }
            _ => None,
        };
        self.forget_dialog(sender, index);
        let bind_ip = context.settings.bind_ip;
        let item = &mut self.items[index];
        let resource = SipUri::new(Scheme::Sip, Some(&item.user), proxy.host.clone(), None);
        let aor = SipUri::new(Scheme::Sip, Some(&user), Host::clone(&aor_host), None);
        let (call_id, local_tag) = match old {
            Some(old) => (old.call_id, old.local_tag),
            None => (context.ids.call_id(bind_ip), kept_tag.unwrap_or_else(|| context.ids.tag())),
        };
        item.dialog = Some(SubscribeDialog {
            call_id,
            local_tag,
            remote_tag: None,
            remote_target: None,
            route_set: Vec::new(),
            placement,
            resource,
            aor,
        });
        let expires = self.expires_of(index);
        self.send_in_dialog(now, context, sender, failover, index, expires, PendingKind::Initial);
    }

    /// Sends a SUBSCRIBE in the current dialog of `index` (initial, refresh or un-SUBSCRIBE).
    #[allow(clippy::too_many_arguments)]
    fn send_in_dialog(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        index: usize,
        expires: u32,
        kind: PendingKind,
    ) -> Option<RequestId> {
        let display_name = self.display_name.clone();
        let item = self.items.get_mut(index)?;
        let package = item.package;
        let dialog = item.dialog.as_mut()?;
        let proxy = failover.proxy(dialog.placement)?.clone();
        let hop = failover.hop(dialog.placement, &proxy);
        let in_dialog = dialog.is_established();
        let request_uri = match (&dialog.remote_target, in_dialog) {
            (Some(target), true) => target.clone(),
            _ => dialog.resource.to_string(),
        };
        let seq = sender.next_cseq(&dialog.call_id);
        let mut subscribe = Message::request(Method::Subscribe, request_uri);
        // RFC 3261 §12.2.1.1: inside a dialog the route set alone (an outbound proxy that
        // record-routed is already its first entry); the next hop stays the placement's.
        if in_dialog {
            for route in &dialog.route_set {
                subscribe.push_header(HeaderName::Route, route);
            }
        } else if let Some(route) = &hop.route {
            subscribe.push_header(HeaderName::Route, NameAddr::new(route.clone()));
        }
        subscribe.push_header(HeaderName::MaxForwards, MAX_FORWARDS);
        let mut from = NameAddr::new(dialog.aor.clone());
        from.display_name = display_name;
        from.params.set("tag", Some(&dialog.local_tag));
        subscribe.push_header(HeaderName::From, from);
        let mut to = NameAddr::new(dialog.resource.clone());
        if let (true, Some(tag)) = (in_dialog, &dialog.remote_tag) {
            to.params.set("tag", Some(tag));
        }
        subscribe.push_header(HeaderName::To, to);
        subscribe.push_header(HeaderName::CallId, &dialog.call_id);
        subscribe.push_header(HeaderName::CSeq, CSeq { seq, method: Method::Subscribe });
        subscribe.push_header(
            HeaderName::Contact,
            NameAddr::new(context.contact_uri(super::outbound::ob_in_dialogs(context))),
        );
        subscribe.push_header(HeaderName::Event, package.event());
        subscribe.push_header(HeaderName::Accept, package.accept());
        subscribe.push_header(HeaderName::Expires, expires);
        subscribe.push_header(HeaderName::UserAgent, &context.settings.user_agent);
        let placement = dialog.placement;
        let request = sender.send(now, context, &hop.next_hop, subscribe);
        item.pending = Some(PendingSubscribe { request, kind, requested_expires: expires });
        item.last_placement = Some(placement);
        if expires > 0 {
            item.state = SubscriptionState::Subscribing { proxy: placement.proxy };
            context.cancel_timer(TimerId::SubscriptionRefresh(index));
            context.cancel_timer(TimerId::SubscriptionRetry(index));
        }
        Some(request)
    }
}
