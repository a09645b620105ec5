//! A fault schedule as data: its steps, the text form `--replay` reads and a failure prints (one `step` line each), and the seeded generator that draws one.

use std::fmt;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::model::{Change, World, elements};
use crate::faults::Fault;
use crate::provision::Configuration;
use crate::topology::Element;
use crate::trace::Transport;

/// What one step does to the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A lasting fault on a healthy element: `silent`, `refuse` or `reject 503` (or 408).
    Fail { element: Element, fault: Fault },
    /// The fault lifted from a failed element.
    Restore { element: Element },
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
        }
    }

    pub fn element(&self) -> Element {
        match self.action {
            Action::Fail { element, .. } | Action::Restore { element } => element,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Fail { element, fault } => write!(f, "fail {element} {fault}")?,
            Action::Restore { element } => write!(f, "restore {element}")?,
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
    /// The seed it was drawn from (kept through shrinking; absent in a hand-written one).
    pub seed: Option<u64>,
    pub steps: Vec<Step>,
}

/// The configurations the explorer draws (rows 1-3, SIP outbound off in this step).
pub const CONFIGURATIONS: [Configuration; 3] =
    [Configuration::NoOutbound, Configuration::FullBackup, Configuration::OutboundOnly];
/// The transports it draws.
pub const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];
/// The faults it draws: one per detection path (the transaction timer, ICMP/RST, an answer).
pub const FAULTS: [Fault; 3] = [Fault::Silent, Fault::Refuse, Fault::Reject { code: 503, retry_after: None }];

/// The faults the model judges: a `stall`ed primary serves new flows (a phone may rightly move
/// back), a `delay`ed one is no failure, and a Retry-After would need its quiet period modelled.
fn judged(fault: Fault) -> bool {
    matches!(fault, Fault::Silent | Fault::Refuse | Fault::Reject { code: 503 | 408, retry_after: None })
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
        let mut worlds = vec![World::new(self.configuration)];
        for (i, step) in self.steps.iter().enumerate() {
            let next = worlds[i].after(step.change(), i + 1);
            worlds.push(next);
        }
        worlds
    }

    /// Whether the schedule can be played: only healthy elements of the configuration failed
    /// (within the model's limits), only failed ones restored, only judged faults.
    pub fn check(&self) -> Result<(), String> {
        if !CONFIGURATIONS.contains(&self.configuration) {
            return Err(format!("configuration {} is not explored yet", self.configuration.id_segment()));
        }
        let mut world = World::new(self.configuration);
        for (i, step) in self.steps.iter().enumerate() {
            let number = i + 1;
            match step.action {
                Action::Fail { element, fault } => {
                    if !judged(fault) {
                        return Err(format!(
                            "step {number}: fault {fault} is not explored (silent, refuse, reject 503|408)"
                        ));
                    }
                    if !elements(self.configuration).contains(&element) {
                        return Err(format!(
                            "step {number}: {element} is not explored in {}",
                            self.configuration.id_segment()
                        ));
                    }
                    if world.is_failed(element) {
                        return Err(format!("step {number}: {element} is already failed"));
                    }
                    if !world.may_fail(element) {
                        return Err(format!(
                            "step {number}: {element} may not fail while {} (the model does not judge that state yet)",
                            world.failed.keys().map(|e| format!("{e} is failed")).collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                Action::Restore { element } if !world.is_failed(element) => {
                    return Err(format!("step {number}: {element} is not failed"));
                }
                Action::Restore { .. } => {}
            }
            world = world.after(step.change(), number);
        }
        Ok(())
    }

    /// Parses the text form (see [`Schedule`]'s `Display`): a `schedule CONFIGURATION TRANSPORT
    /// [seed=N]` line, then `step N ...` lines numbered from 1; blank lines and `#` comments are
    /// skipped. The error names the line.
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
        let (configuration, transport, seed) = header.ok_or("no `schedule CONFIGURATION TRANSPORT` line")?;
        let schedule = Schedule { configuration, transport, seed, steps };
        schedule.check()?;
        Ok(schedule)
    }

    /// A schedule drawn from `seed`: its configuration, transport and `steps` steps over every
    /// element the configuration uses, backups included; about one step in four mid-move. The
    /// same seed gives the same schedule on every machine (ChaCha8).
    pub fn generate(seed: u64, steps: usize) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let configuration = CONFIGURATIONS[rng.random_range(0..CONFIGURATIONS.len())];
        let transport = TRANSPORTS[rng.random_range(0..TRANSPORTS.len())];
        let mut world = World::new(configuration);
        let mut drawn = Vec::with_capacity(steps);
        for number in 1..=steps {
            let may_fail: Vec<Element> =
                elements(configuration).iter().copied().filter(|e| world.may_fail(*e)).collect();
            let failed: Vec<Element> = world.failed.keys().copied().collect();
            // Restores grow likelier with every element down, so schedules come back up.
            let restore = !failed.is_empty()
                && (may_fail.is_empty() || rng.random_bool(failed.len() as f64 / (failed.len() + 1) as f64));
            let action = if restore {
                Action::Restore { element: failed[rng.random_range(0..failed.len())] }
            } else {
                let element = may_fail[rng.random_range(0..may_fail.len())];
                Action::Fail { element, fault: FAULTS[rng.random_range(0..FAULTS.len())] }
            };
            let step = Step { action, settle: !rng.random_bool(0.25) };
            world = world.after(step.change(), number);
            drawn.push(step);
        }
        Schedule { configuration, transport, seed: Some(seed), steps: drawn }
    }
}

fn parse_header(words: &[&str]) -> Result<(Configuration, Transport, Option<u64>), String> {
    let (configuration, transport, seed) = match words {
        [c, t] => (c, t, None),
        [c, t, s] => (c, t, Some(s)),
        _ => return Err("expected `schedule CONFIGURATION TRANSPORT [seed=N]`".into()),
    };
    let configuration = CONFIGURATIONS
        .into_iter()
        .find(|c| c.id_segment() == *configuration)
        .ok_or_else(|| format!("unknown configuration {configuration:?}: no-outbound, full-backup or outbound-only"))?;
    let transport = Transport::parse(transport).ok_or_else(|| format!("unknown transport {transport:?}"))?;
    let seed = match seed {
        None => None,
        Some(s) => Some(
            s.strip_prefix("seed=")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("expected seed=N, got {s:?}"))?,
        ),
    };
    Ok((configuration, transport, seed))
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
        _ => return Err(format!("expected `fail ELEMENT FAULT` or `restore ELEMENT`, got {:?}", words.join(" "))),
    };
    Ok(Step { action, settle })
}

impl fmt::Display for Schedule {
    /// The text form: `schedule no-outbound udp seed=7`, then `step 1 fail registrar-a silent`,
    /// ..., one line each; [`Schedule::parse`] reads it back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule {} {}", self.configuration.id_segment(), self.transport)?;
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
    fn drawn_schedules_are_valid_and_cover_every_element() {
        let mut failed = std::collections::HashSet::new();
        let mut mid_move = 0;
        for seed in 0..50 {
            let schedule = Schedule::generate(seed, 40);
            schedule.check().unwrap_or_else(|e| panic!("seed {seed}: {e}\n{schedule}"));
            for step in &schedule.steps {
                if let Action::Fail { element, .. } = step.action {
                    failed.insert((schedule.configuration, element));
                }
                mid_move += usize::from(!step.settle);
            }
        }
        for configuration in CONFIGURATIONS {
            for element in elements(configuration) {
                assert!(failed.contains(&(configuration, *element)), "{configuration:?} never fails {element}");
            }
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
    }

    #[test]
    fn bad_text_is_one_line_naming_the_line() {
        let bad = [
            ("", "no `schedule"),
            ("step 1 restore proxy-a", "line 1: a step before"),
            ("schedule no-outbound udp\nstep 1 restore proxy-a", "step 1: proxy-a is not failed"),
            ("schedule no-outbound udp\nstep 2 fail proxy-a silent", "line 2: expected step 1"),
            ("schedule no-outbound udp\nstep 1 fail proxy-a stall", "not explored"),
            ("schedule no-outbound udp\nstep 1 fail outbound-a silent", "not explored in no-outbound"),
            ("schedule row-9 udp", "unknown configuration"),
            ("schedule no-outbound sctp", "unknown transport"),
            ("schedule no-outbound udp seed=x", "expected seed=N"),
            ("schedule no-outbound udp\nstep 1 fail nowhere silent", "unknown element"),
            ("schedule no-outbound udp\nstep 1 explode proxy-a", "expected `fail"),
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
