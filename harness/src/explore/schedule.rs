//! A fault schedule as data: its steps, the text form `--replay` reads and a failure prints (one `step` line each), and the seeded generator that draws one.

use std::fmt;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::model::{Change, World, elements};
use crate::faults::{Event, Fault};
use crate::provision::Configuration;
use crate::topology::Element;
use crate::trace::Transport;

/// What one step does to the lab or the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A lasting fault on a healthy element: `silent`, `refuse` or `reject 503` (or 408); the DNS
    /// takes `silent` and `refuse`.
    Fail { element: Element, fault: Fault },
    /// The fault lifted from a failed element.
    Restore { element: Element },
    /// A one-off event on a working SIP element: `reset` (its TCP/TLS flows reset) or `restart`
    /// (its bindings and subscriptions forgotten).
    Upset { element: Element, event: Event },
    /// The phone rebooted (`Command: Reset`).
    Reboot,
    /// The phone dials (`Dial:`): the INVITE must reach the active proxy.
    Dial,
    /// The registrars' SRV records changed to prefer `registrar` (a lab whose registrar is named
    /// by its SIP service only).
    Dns { prefer: Element },
}

impl Action {
    /// Whether the step is one the phone meets settled only (the runner checks it against a
    /// converged phone): a DNS change, a reboot, a call, a `reset` or `restart`. A one-off event
    /// in the middle of a move kills the transaction that makes it (a SUBSCRIBE to the backup
    /// whose flow a restart resets), and the phone then retries that subscription on `sip
    /// subscription failed retry timer`, which the harness does not provision (found by the
    /// explorer against refphone, seeds 21 and 34).
    pub fn needs_a_settled_phone(&self) -> bool {
        matches!(self, Action::Reboot | Action::Dial | Action::Dns { .. } | Action::Upset { .. })
    }
}

/// One step: an action, and whether the phone is given time to converge before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    /// `true`: the next step waits until the phone converged to the model and held its steady
    /// state. `false` (`mid-move` in the text): the next step follows as soon as the phone sent
    /// its next request, so it meets the phone in the middle of this step's move.
    pub settle: bool,
}

impl Step {
    pub fn change(&self) -> Change {
        match self.action {
            Action::Fail { element, fault } => Change::Fail(element, fault),
            Action::Restore { element } => Change::Restore(element),
            Action::Upset { element, event } => Change::Event(element, event),
            Action::Reboot => Change::Reboot,
            Action::Dial => Change::Dial,
            Action::Dns { prefer } => Change::Dns(prefer),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Fail { element, fault } => write!(f, "fail {element} {fault}")?,
            Action::Restore { element } => write!(f, "restore {element}")?,
            Action::Upset { element, event } => write!(f, "{} {element}", event.id_segment())?,
            Action::Reboot => f.write_str("reboot")?,
            Action::Dial => f.write_str("dial")?,
            Action::Dns { prefer } => write!(f, "dns prefer {prefer}")?,
        }
        if !self.settle {
            f.write_str(" mid-move")?;
        }
        Ok(())
    }
}

/// A whole schedule: the lab it runs in and its steps, played in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub configuration: Configuration,
    pub transport: Transport,
    /// Row 1 with the registrar named by the registrars' SIP service (`registrar=srv` in the text):
    /// the lab where DNS record changes are drawn.
    pub registrar_service: bool,
    /// The seed it was drawn from (kept through shrinking; absent in a hand-written one).
    pub seed: Option<u64>,
    pub steps: Vec<Step>,
}

/// The configurations the explorer draws (rows 1-3, SIP outbound off in this step).
pub const CONFIGURATIONS: [Configuration; 3] =
    [Configuration::NoOutbound, Configuration::FullBackup, Configuration::OutboundOnly];
/// The transports it draws.
pub const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];
/// The faults it draws on a SIP element: one per detection path (the transaction timer, ICMP/RST,
/// an answer: 503, and 408, which the vendor treats as a timeout), and a slow but healthy server
/// (`delay`, half the fast timers' 800 ms transaction timer, as the suites' `*-slow` cases).
pub const FAULTS: [Fault; 5] = [
    Fault::Silent,
    Fault::Refuse,
    Fault::Reject { code: 503, retry_after: None },
    Fault::Reject { code: 408, retry_after: None },
    Fault::Delay { ms: MOST_DELAY_MS },
];
/// The longest `delay` explored: within the transaction timer, so no failure (BRIEF §2).
pub const MOST_DELAY_MS: u32 = 400;
/// The faults it draws on the DNS (the DNS takes no others: BRIEF §2).
pub const DNS_FAULTS: [Fault; 2] = [Fault::Silent, Fault::Refuse];
/// The one-off events it draws.
pub const EVENTS: [Event; 2] = [Event::Reset, Event::Restart];

/// The faults the model judges: a `stall`ed primary serves new flows (a phone may rightly move
/// back, or not: the suites judge it apart), and a Retry-After would need its quiet period
/// modelled; a `delay` longer than half the transaction timer may rightly time a request out.
fn judged(element: Element, fault: Fault) -> bool {
    if element == Element::Dns {
        return DNS_FAULTS.contains(&fault);
    }
    match fault {
        Fault::Delay { ms } => ms <= MOST_DELAY_MS,
        _ => matches!(fault, Fault::Silent | Fault::Refuse | Fault::Reject { code: 503 | 408, retry_after: None }),
    }
}

impl Schedule {
    /// The case id of its result (BRIEF §5's shape): `explore.<configuration>.seed-<N>.<transport>`.
    pub fn id(&self) -> String {
        let name = match self.seed {
            Some(seed) => format!("seed-{seed}"),
            None => "replay".to_owned(),
        };
        format!("explore.{}.{name}.{}", self.configuration.id_segment(), self.transport)
    }

    /// The states before each step and after the last: `worlds()[i]` is the state step `i + 1` meets.
    pub fn worlds(&self) -> Vec<World> {
        let mut worlds = vec![World::of_lab(self.configuration, self.registrar_service)];
        for (i, step) in self.steps.iter().enumerate() {
            let next = worlds[i].after(step.change(), i + 1);
            worlds.push(next);
        }
        worlds
    }

    /// Whether the schedule can be played: only healthy elements of the configuration failed
    /// (within the model's limits, `World::may_fail_since`), only failed ones restored, only
    /// judged faults; one-off events on working elements; a DNS change only in a lab whose
    /// registrar is a SIP service; a reboot, a call, a DNS change, a reset or a restart only
    /// settled and after a settled step (the runner checks them against a converged phone).
    pub fn check(&self) -> Result<(), String> {
        if !CONFIGURATIONS.contains(&self.configuration) {
            return Err(format!("configuration {} is not explored yet", self.configuration.id_segment()));
        }
        if self.registrar_service && self.configuration != Configuration::NoOutbound {
            return Err("registrar=srv is explored in no-outbound only".into());
        }
        let mut world = World::of_lab(self.configuration, self.registrar_service);
        let mut recent = world.clone();
        for (i, step) in self.steps.iter().enumerate() {
            let number = i + 1;
            let failed_now = || world.failed.keys().map(|e| format!("{e} is failed")).collect::<Vec<_>>().join(", ");
            if step.action.needs_a_settled_phone() {
                if !step.settle {
                    return Err(format!("step {number}: `{step}`: a {} is never mid-move", kind(&step.action)));
                }
                if i > 0 && !self.steps[i - 1].settle {
                    return Err(format!("step {number}: a {} must follow a settled step", kind(&step.action)));
                }
            }
            match step.action {
                Action::Fail { element, fault } => {
                    if !judged(element, fault) {
                        return Err(format!(
                            "step {number}: fault {fault} on {element} is not explored (silent, refuse, reject 503|408, delay up to 400; the dns silent or refuse)"
                        ));
                    }
                    if element != Element::Dns && !elements(self.configuration).contains(&element) {
                        return Err(format!(
                            "step {number}: {element} is not explored in {}",
                            self.configuration.id_segment()
                        ));
                    }
                    if world.is_faulted(element) {
                        return Err(format!("step {number}: {element} is already failed"));
                    }
                    if !world.may_fail(element) {
                        return Err(format!(
                            "step {number}: {element} may not fail while {} (the model does not judge that state yet)",
                            if world.failed.is_empty() {
                                "the registrar is an SRV service".to_owned()
                            } else {
                                failed_now()
                            }
                        ));
                    }
                    if !world.may_fail_since(&recent, element) {
                        return Err(format!(
                            "step {number}: {element} may not fail while the phone may still count {} as failed (restored mid-move)",
                            recent.failed.keys().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                Action::Restore { element } if !world.is_faulted(element) => {
                    return Err(format!("step {number}: {element} is not failed"));
                }
                Action::Restore { .. } => {}
                Action::Upset { element, .. } if !world.may_upset(element) => {
                    return Err(format!(
                        "step {number}: `{step}`: only a working SIP element of {} gets a one-off event, while the dns answers",
                        self.configuration.id_segment()
                    ));
                }
                Action::Upset { .. } => {}
                Action::Reboot if !world.may_reboot() => {
                    return Err(format!("step {number}: no reboot while the dns is failed"));
                }
                Action::Dial if !world.may_dial() => {
                    return Err(format!("step {number}: no call while {}", failed_now()));
                }
                Action::Reboot | Action::Dial => {}
                Action::Dns { prefer } if !world.may_prefer(prefer) => {
                    return Err(format!(
                        "step {number}: `{step}`: a DNS change needs registrar=srv, a working dns, and a registrar not yet preferred"
                    ));
                }
                Action::Dns { .. } => {}
            }
            world = world.after(step.change(), number);
            recent = recent.since_settled(&world, step.settle);
        }
        Ok(())
    }

    /// Parses the text form (see [`Schedule`]'s `Display`): a `schedule CONFIGURATION TRANSPORT
    /// [registrar=srv] [seed=N]` line, then `step N ...` lines numbered from 1; blank lines and `#`
    /// comments are skipped. The error names the line.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut header = None;
        let mut steps = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let at = |e: String| format!("line {}: {e}", index + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["schedule", rest @ ..] if header.is_none() => header = Some(parse_header(rest).map_err(at)?),
                ["schedule", ..] => return Err(at("a second schedule line".into())),
                ["step", number, rest @ ..] => {
                    if header.is_none() {
                        return Err(at("a step before the `schedule` line".into()));
                    }
                    let expected = steps.len() + 1;
                    if number.parse::<usize>().ok() != Some(expected) {
                        return Err(at(format!("expected step {expected}, got step {number}")));
                    }
                    steps.push(parse_step(rest).map_err(at)?);
                }
                _ => return Err(at(format!("expected `schedule ...` or `step N ...`, got {line:?}"))),
            }
        }
        let header = header.ok_or("no `schedule CONFIGURATION TRANSPORT` line")?;
        let schedule = Schedule {
            configuration: header.configuration,
            transport: header.transport,
            registrar_service: header.registrar_service,
            seed: header.seed,
            steps,
        };
        schedule.check()?;
        Ok(schedule)
    }

    /// A schedule drawn from `seed`: its configuration, transport (row 1 with its registrar named
    /// by its SIP service one time in two) and `steps` steps over every element the configuration
    /// uses, backups and the DNS included, with one-off events, reboots, calls and (with
    /// `registrar=srv`) DNS record changes among them; about one fail or restore in four
    /// mid-move (the other steps meet a settled phone: `Action::needs_a_settled_phone`). The same
    /// seed gives the same schedule on every machine (ChaCha8).
    pub fn generate(seed: u64, steps: usize) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let configuration = CONFIGURATIONS[rng.random_range(0..CONFIGURATIONS.len())];
        let transport = TRANSPORTS[rng.random_range(0..TRANSPORTS.len())];
        let registrar_service = configuration == Configuration::NoOutbound && rng.random_bool(0.5);
        let mut world = World::of_lab(configuration, registrar_service);
        let mut recent = world.clone();
        let mut drawn: Vec<Step> = Vec::with_capacity(steps);
        for number in 1..=steps {
            let after_settled = drawn.last().is_none_or(|s| s.settle);
            let action = match draw(&mut rng, &world, &recent, after_settled) {
                Some(action) => action,
                None => {
                    // Nothing may follow the mid-move step before: it is made a settled one.
                    if let Some(last) = drawn.last_mut() {
                        last.settle = true;
                    }
                    recent = world.clone();
                    draw(&mut rng, &world, &recent, true).unwrap_or(Action::Reboot)
                }
            };
            let settle = action.needs_a_settled_phone() || !rng.random_bool(0.25);
            let step = Step { action, settle };
            world = world.after(step.change(), number);
            recent = recent.since_settled(&world, settle);
            drawn.push(step);
        }
        Schedule { configuration, transport, registrar_service, seed: Some(seed), steps: drawn }
    }
}

/// One action drawn for `world`. Restores grow likelier with every element down, so schedules
/// come back up (the DNS is restored at once: nothing else happens while it is down); otherwise a
/// fault (weight 6: they make the moves), a one-off event (1 each), a reboot (1), a call (1) and a
/// DNS change (2, with registrar=srv), each only where `check` allows it; `None` when nothing
/// may follow a mid-move step.
fn draw(rng: &mut ChaCha8Rng, world: &World, recent: &World, after_settled: bool) -> Option<Action> {
    let failed: Vec<Element> = world.failed.keys().copied().collect();
    if world.is_failed(Element::Dns) {
        return Some(Action::Restore { element: Element::Dns });
    }
    let candidates = || elements(world.configuration).iter().copied().chain([Element::Dns]);
    let may_fail: Vec<Element> = candidates().filter(|e| world.may_fail_since(recent, *e)).collect();
    let upsettable: Vec<Element> = candidates().filter(|e| after_settled && world.may_upset(*e)).collect();
    let restore =
        !failed.is_empty() && (may_fail.is_empty() || rng.random_bool(failed.len() as f64 / (failed.len() + 1) as f64));
    if restore {
        return Some(Action::Restore { element: failed[rng.random_range(0..failed.len())] });
    }
    let other = if world.srv_prefers == Element::RegistrarA { Element::RegistrarB } else { Element::RegistrarA };
    let kinds: [(u32, bool); 6] = [
        (6, !may_fail.is_empty()),
        (1, !upsettable.is_empty()),
        (1, !upsettable.is_empty()),
        (1, after_settled && world.may_reboot()),
        (1, after_settled && world.may_dial()),
        (2, after_settled && world.may_prefer(other)),
    ];
    let total: u32 = kinds.iter().filter(|(_, allowed)| *allowed).map(|(w, _)| w).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rng.random_range(0..total);
    let mut chosen = 0;
    for (i, (weight, allowed)) in kinds.iter().enumerate() {
        if !allowed {
            continue;
        }
        if pick < *weight {
            chosen = i;
            break;
        }
        pick -= weight;
    }
    Some(match chosen {
        0 => {
            let element = may_fail[rng.random_range(0..may_fail.len())];
            let faults: &[Fault] = if element == Element::Dns { &DNS_FAULTS } else { &FAULTS };
            Action::Fail { element, fault: faults[rng.random_range(0..faults.len())] }
        }
        1 | 2 => {
            Action::Upset { element: upsettable[rng.random_range(0..upsettable.len())], event: EVENTS[chosen - 1] }
        }
        3 => Action::Reboot,
        4 => Action::Dial,
        _ => Action::Dns { prefer: other },
    })
}

/// A step's kind in words, for the errors of `check`.
fn kind(action: &Action) -> &'static str {
    match action {
        Action::Reboot => "reboot",
        Action::Dial => "call",
        Action::Upset { .. } => "reset or restart",
        _ => "DNS change",
    }
}

/// The `schedule` line's words after the keyword.
struct Header {
    configuration: Configuration,
    transport: Transport,
    registrar_service: bool,
    seed: Option<u64>,
}

fn parse_header(words: &[&str]) -> Result<Header, String> {
    let usage = "expected `schedule CONFIGURATION TRANSPORT [registrar=srv] [seed=N]`";
    let [configuration, transport, options @ ..] = words else { return Err(usage.into()) };
    let configuration = CONFIGURATIONS
        .into_iter()
        .find(|c| c.id_segment() == *configuration)
        .ok_or_else(|| format!("unknown configuration {configuration:?}: no-outbound, full-backup or outbound-only"))?;
    let transport = Transport::parse(transport).ok_or_else(|| format!("unknown transport {transport:?}"))?;
    let mut header = Header { configuration, transport, registrar_service: false, seed: None };
    for option in options {
        if *option == "registrar=srv" && !header.registrar_service && header.seed.is_none() {
            header.registrar_service = true;
        } else if let Some(seed) = option.strip_prefix("seed=")
            && header.seed.is_none()
        {
            header.seed = Some(seed.parse().map_err(|_| format!("expected seed=N, got {option:?}"))?);
        } else {
            return Err(format!("{usage}, got {option:?}"));
        }
    }
    Ok(header)
}

fn parse_step(words: &[&str]) -> Result<Step, String> {
    let (words, settle) = match words.split_last() {
        Some((&"mid-move", rest)) => (rest, false),
        _ => (words, true),
    };
    let element = |name: &str| Element::parse(name).ok_or_else(|| format!("unknown element {name:?}"));
    let action = match words {
        ["fail", name, fault @ ..] => Action::Fail { element: element(name)?, fault: Fault::parse_words(fault)? },
        ["restore", name] => Action::Restore { element: element(name)? },
        ["reset", name] => Action::Upset { element: element(name)?, event: Event::Reset },
        ["restart", name] => Action::Upset { element: element(name)?, event: Event::Restart },
        ["reboot"] => Action::Reboot,
        ["dial"] => Action::Dial,
        ["dns", "prefer", name] => Action::Dns { prefer: element(name)? },
        _ => {
            return Err(format!(
                "expected `fail ELEMENT FAULT`, `restore ELEMENT`, `reset ELEMENT`, `restart ELEMENT`, `reboot`, `dial` or `dns prefer REGISTRAR`, got {:?}",
                words.join(" ")
            ));
        }
    };
    Ok(Step { action, settle })
}

impl fmt::Display for Schedule {
    /// The text form: `schedule no-outbound udp registrar=srv seed=7`, then `step 1 fail
    /// registrar-a silent`, ..., one line each; [`Schedule::parse`] reads it back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule {} {}", self.configuration.id_segment(), self.transport)?;
        if self.registrar_service {
            f.write_str(" registrar=srv")?;
        }
        if let Some(seed) = self.seed {
            write!(f, " seed={seed}")?;
        }
        writeln!(f)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "step {} {step}", i + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        for seed in 0..20 {
            assert_eq!(Schedule::generate(seed, 30), Schedule::generate(seed, 30));
        }
        // Pinned, so a change of generator (or of rand_chacha) is seen: replay files name seeds.
        let first = Schedule::generate(1, 3).to_string();
        assert_eq!(first, Schedule::generate(1, 3).to_string());
        assert!(first.starts_with("schedule "), "{first}");
    }

    #[test]
    fn different_seeds_draw_different_schedules() {
        let drawn: std::collections::HashSet<String> = (0..20).map(|s| Schedule::generate(s, 10).to_string()).collect();
        assert_eq!(drawn.len(), 20);
    }

    #[test]
    fn drawn_schedules_are_valid_and_cover_every_element_and_kind() {
        let mut failed = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        let mut faults = std::collections::HashSet::new();
        let mut mid_move = 0;
        for seed in 0..60 {
            let schedule = Schedule::generate(seed, 40);
            schedule.check().unwrap_or_else(|e| panic!("seed {seed}: {e}\n{schedule}"));
            for step in &schedule.steps {
                if let Action::Fail { element, fault } = step.action {
                    failed.insert((schedule.configuration, element));
                    faults.insert(fault);
                }
                let word = step.to_string().split_whitespace().next().unwrap_or_default().to_owned();
                kinds.insert((word, schedule.registrar_service));
                mid_move += usize::from(!step.settle);
            }
        }
        for configuration in CONFIGURATIONS {
            for element in elements(configuration).iter().chain([&Element::Dns]) {
                assert!(failed.contains(&(configuration, *element)), "{configuration:?} never fails {element}");
            }
        }
        for kind in ["fail", "restore", "reset", "restart", "reboot", "dial"] {
            assert!(kinds.contains(&(kind.to_owned(), false)), "never drawn: {kind}");
        }
        assert!(kinds.contains(&("dns".to_owned(), true)), "never drawn: a DNS change");
        for fault in FAULTS.iter().chain(&DNS_FAULTS) {
            assert!(faults.contains(fault), "never drawn: {fault}");
        }
        assert!(mid_move > 0);
    }

    #[test]
    fn the_text_form_reads_back_exactly() {
        for seed in 0..30 {
            let schedule = Schedule::generate(seed, 25);
            let text = schedule.to_string();
            assert!(text.lines().skip(1).all(|l| l.starts_with("step ")));
            let parsed = Schedule::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(parsed, schedule);
            assert_eq!(parsed.to_string(), text);
        }
        let hand = "# a comment\nschedule full-backup tcp\n\nstep 1 fail registrar-a reject 503 mid-move\nstep 2 restore registrar-a\n";
        let parsed = Schedule::parse(hand).unwrap();
        assert_eq!(parsed.seed, None);
        assert_eq!(
            parsed.to_string(),
            "schedule full-backup tcp\nstep 1 fail registrar-a reject 503 mid-move\nstep 2 restore registrar-a\n"
        );
        let every_kind = "schedule no-outbound udp registrar=srv seed=9\nstep 1 dns prefer registrar-b\nstep 2 reboot\n\
                          step 3 dial\nstep 4 reset proxy-a\nstep 5 restart proxy-b\n\
                          step 6 fail dns refuse\nstep 7 restore dns\nstep 8 dns prefer registrar-a\n";
        let parsed = Schedule::parse(every_kind).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.registrar_service);
        assert_eq!(parsed.steps[0].action, Action::Dns { prefer: Element::RegistrarB });
        assert_eq!(
            parsed.steps[3],
            Step { action: Action::Upset { element: Element::ProxyA, event: Event::Reset }, settle: true }
        );
        assert_eq!(parsed.to_string(), every_kind);
    }

    #[test]
    fn bad_text_is_one_line_naming_the_line() {
        let bad = [
            ("", "no `schedule"),
            ("step 1 restore proxy-a", "line 1: a step before"),
            ("schedule no-outbound udp\nstep 1 restore proxy-a", "step 1: proxy-a is not failed"),
            ("schedule no-outbound udp\nstep 2 fail proxy-a silent", "line 2: expected step 1"),
            ("schedule no-outbound udp\nstep 1 fail proxy-a stall", "not explored"),
            ("schedule no-outbound udp\nstep 1 fail proxy-a delay 900", "not explored"),
            ("schedule no-outbound udp\nstep 1 fail proxy-a delay 400\nstep 2 fail proxy-a silent", "already failed"),
            ("schedule no-outbound udp\nstep 1 fail outbound-a silent", "not explored in no-outbound"),
            ("schedule row-9 udp", "unknown configuration"),
            ("schedule no-outbound sctp", "unknown transport"),
            ("schedule no-outbound udp seed=x", "expected seed=N"),
            ("schedule no-outbound udp\nstep 1 fail nowhere silent", "unknown element"),
            ("schedule no-outbound udp\nstep 1 explode proxy-a", "expected `fail"),
            ("schedule no-outbound udp\nstep 1 dns prefer registrar-b", "needs registrar=srv"),
            ("schedule no-outbound udp registrar=srv\nstep 1 dns prefer registrar-a", "not yet preferred"),
            ("schedule no-outbound udp registrar=srv\nstep 1 fail registrar-a silent", "registrar is an SRV service"),
            ("schedule full-backup udp registrar=srv", "no-outbound only"),
            ("schedule no-outbound udp\nstep 1 reboot mid-move", "never mid-move"),
            (
                "schedule no-outbound udp\nstep 1 fail proxy-a silent mid-move\nstep 2 dial",
                "must follow a settled step",
            ),
            ("schedule no-outbound udp\nstep 1 fail dns silent\nstep 2 reboot", "no reboot while the dns"),
            ("schedule no-outbound udp\nstep 1 fail dns silent\nstep 2 fail proxy-a silent", "may not fail while dns"),
            ("schedule no-outbound udp\nstep 1 fail dns reject 503", "not explored"),
            ("schedule no-outbound udp\nstep 1 fail proxy-a silent\nstep 2 reset proxy-a", "one-off event"),
            ("schedule no-outbound udp\nstep 1 restart proxy-a mid-move\nstep 2 fail proxy-b silent", "never mid-move"),
            (
                "schedule outbound-only udp\nstep 1 fail outbound-a silent\nstep 2 restore outbound-a mid-move\nstep 3 fail outbound-b silent",
                "may still count outbound-a as failed",
            ),
            (
                "schedule no-outbound udp\nstep 1 fail proxy-a silent mid-move\nstep 2 restore proxy-a mid-move\nstep 3 fail proxy-b silent",
                "may still count proxy-a as failed",
            ),
            (
                "schedule no-outbound udp\nstep 1 fail registrar-a silent\nstep 2 fail registrar-b silent\nstep 3 dial",
                "no call while",
            ),
            (
                "schedule full-backup udp\nstep 1 fail proxy-a silent\nstep 2 fail registrar-a silent",
                "may not fail while proxy-a is failed",
            ),
        ];
        for (text, wanted) in bad {
            let error = Schedule::parse(text).expect_err(text);
            assert!(error.contains(wanted), "{text:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
