//! `run --junit FILE`: a run's results as one JUnit XML testsuite, the form GitLab, Jenkins and CI mergers read.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::case::{CaseResult, Verdict};

/// The report's and its one testsuite's name.
pub const SUITE: &str = "sipharness";

/// One testsuite named [`SUITE`], one testcase per result in the order given: `classname` the
/// case's area (its id's first dotted segment), `name` its id, `time` its duration. `elapsed`
/// is the run's wall time (cases run at once, so it is not their sum).
pub fn report(results: &[CaseResult], elapsed: Duration) -> Report {
    let mut suite = TestSuite::new(SUITE);
    suite.set_time(elapsed);
    suite.add_test_cases(results.iter().map(test_case));
    let mut report = Report::new(SUITE);
    report.set_time(elapsed);
    report.add_test_suite(suite);
    report
}

/// Writes [`report`] as XML. quick-junit counts skipped testcases in a `disabled` attribute of
/// `<testsuite>`, which the JUnit schema Jenkins validates against (xunit's junit-10.xsd) does
/// not allow, and which carries no meaning for GitLab; the count is written as `skipped`, the
/// attribute that schema and Surefire's files use. Everything else is quick-junit's output.
pub fn write(results: &[CaseResult], elapsed: Duration, out: impl std::io::Write) -> std::io::Result<()> {
    use quick_xml::events::{BytesStart, Event};
    let mut xml = Vec::new();
    report(results, elapsed).serialize(&mut xml).map_err(std::io::Error::other)?;
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut writer = quick_xml::Writer::new(out);
    let mut buffer = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buffer).map_err(std::io::Error::other)?;
        let event = match event {
            Event::Eof => break,
            Event::Start(tag) if tag.name().as_ref() == b"testsuite" => {
                let mut renamed = BytesStart::new("testsuite");
                for attribute in tag.attributes() {
                    let attribute = attribute.map_err(std::io::Error::other)?;
                    let key = match attribute.key.as_ref() {
                        b"disabled" => b"skipped".as_slice(),
                        key => key,
                    };
                    renamed.push_attribute((key, attribute.value.as_ref()));
                }
                Event::Start(renamed)
            }
            event => event,
        };
        writer.write_event(event).map_err(std::io::Error::other)?;
        buffer.clear();
    }
    Ok(())
}

/// The case's area: the first dotted segment of its id (`failover` of `failover.no-outbound...`).
pub fn area(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

fn test_case(result: &CaseResult) -> TestCase {
    let mut case = TestCase::new(result.id.as_str(), status(result));
    case.set_classname(area(&result.id));
    case.set_time(result.duration);
    case
}

/// How each verdict reads in JUnit: `fail` and `xpass` are failures, `error` an error, `skip`
/// and `xfail` skipped; a reason goes in the message.
fn status(result: &CaseResult) -> TestCaseStatus {
    let reason = result.reason.as_deref().unwrap_or("no reason given");
    match result.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type("violation");
            match result.failures.first() {
                Some(first) => {
                    let more = match result.failures.len() {
                        1 => String::new(),
                        n => format!(" (and {} more)", n - 1),
                    };
                    status.set_message(format!("{}: {}{more}", first.requirement.id(), first.message));
                    let text: Vec<String> = result
                        .failures
                        .iter()
                        .map(|v| {
                            format!(
                                "{}: {}\n{}\nexpected: {}\narrived:  {}",
                                v.requirement.id(),
                                v.message,
                                v.requirement.sentence(),
                                v.expected,
                                v.arrived
                            )
                        })
                        .collect();
                    status.set_description(text.join("\n\n"));
                }
                None => {
                    status.set_message(reason);
                }
            }
            status
        }
        Verdict::Xpass => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type("xpass");
            status.set_message(format!("expected to fail but passed: {reason}"));
            status
        }
        Verdict::Error => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_type("harness");
            status.set_message(reason);
            status
        }
        Verdict::Skip => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(reason);
            status
        }
        Verdict::Xfail => {
            let mut status = TestCaseStatus::skipped();
            status.set_type("xfail");
            status.set_message(format!("xfail: {reason}"));
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Violation;
    use crate::requirement::Requirement;

    fn result(id: &str, verdict: Verdict, reason: Option<&str>, failures: Vec<Violation>) -> CaseResult {
        CaseResult {
            id: id.into(),
            verdict,
            duration: Duration::from_millis(1500),
            waited: Duration::ZERO,
            failures,
            reason: reason.map(Into::into),
            ladder: String::new(),
            full_ladder: String::new(),
            requirements: Vec::new(),
            trace: None,
        }
    }

    fn round_trip(results: &[CaseResult]) -> Report {
        let xml = report(results, Duration::from_secs(3)).to_string().unwrap();
        Report::deserialize_from_str(&xml).unwrap()
    }

    #[test]
    fn every_verdict_reads_as_junit_says() {
        let violation = Violation::new(
            Requirement::R1_2,
            "a REGISTER at registrar-b".into(),
            "none within 8 s".into(),
            "no failover to the backup registrar".into(),
        );
        let results = [
            result("register.no-outbound.basic.udp", Verdict::Pass, None, vec![]),
            result("failover.no-outbound.primary-registrar-fails.silent.udp", Verdict::Fail, None, vec![violation]),
            result("subscribe.x.y.udp", Verdict::Error, Some("port taken"), vec![]),
            result("subscribe.x.z.udp", Verdict::Skip, Some("no BLF"), vec![]),
            result("dns.x.y.udp", Verdict::Xfail, Some("known deviation"), vec![]),
            result("dns.x.z.udp", Verdict::Xpass, Some("known deviation"), vec![]),
        ];
        let parsed = round_trip(&results);
        assert_eq!(parsed.name.as_str(), SUITE);
        let [suite] = parsed.test_suites.as_slice() else { panic!("one testsuite: {parsed:?}") };
        assert_eq!(suite.name.as_str(), SUITE);
        assert_eq!((suite.tests, suite.failures, suite.errors, suite.disabled), (6, 2, 1, 2));
        let cases = &suite.test_cases;
        assert_eq!(cases[1].name.as_str(), "failover.no-outbound.primary-registrar-fails.silent.udp");
        assert_eq!(cases[1].classname.as_ref().map(|c| c.as_str()), Some("failover"));
        assert_eq!(cases[1].time, Some(Duration::from_millis(1500)));
        assert_eq!(cases[0].status, TestCaseStatus::success());
        let TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message, description, .. } = &cases[1].status
        else {
            panic!("{:?}", cases[1].status)
        };
        assert_eq!(message.as_ref().unwrap().as_str(), "R1.2: no failover to the backup registrar");
        let text = description.as_ref().unwrap().as_str();
        for part in [Requirement::R1_2.sentence(), "expected: a REGISTER at registrar-b", "arrived:  none within 8 s"] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(
            matches!(&cases[2].status, TestCaseStatus::NonSuccess { kind: NonSuccessKind::Error, message: Some(m), .. } if m.as_str() == "port taken")
        );
        assert!(matches!(&cases[3].status, TestCaseStatus::Skipped { message: Some(m), .. } if m.as_str() == "no BLF"));
        assert!(
            matches!(&cases[4].status, TestCaseStatus::Skipped { message: Some(m), .. } if m.as_str() == "xfail: known deviation")
        );
        assert!(matches!(
            &cases[5].status,
            TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message: Some(m), .. }
                if m.as_str() == "expected to fail but passed: known deviation"
        ));
    }

    #[test]
    fn an_empty_run_is_an_empty_testsuite() {
        let parsed = round_trip(&[]);
        assert_eq!(parsed.test_suites.len(), 1);
        assert_eq!(parsed.test_suites[0].tests, 0);
    }
}
