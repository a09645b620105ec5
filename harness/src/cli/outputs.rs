//! What `run` and `explore` write besides their lines on stdout: JUnit XML, the HTML report, a pcap per case.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::case::CaseResult;
use crate::report::HtmlReport;
use crate::report::pcap::PcapWriter;

/// The report flags, shared by `run` and `explore`.
#[derive(clap::Args, Debug, Default)]
pub(super) struct Outputs {
    /// Also write the results as JUnit XML to FILE when the run ends (failed cases too): one
    /// testsuite `sipharness`, one testcase per case (classname its area, name its id); a
    /// fail or xpass is a failure, an error an error, a skip or xfail skipped. A FILE that
    /// cannot be written stops the run before any case starts.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a static HTML report into DIR (created if missing; open DIR/index.html from
    /// disk, nothing is fetched): the cases with their verdicts and filters, and per case its
    /// failures with the spec's sentences and the message ladder as a diagram, the failing
    /// check's window shaded and each message's text on click. Each case's page is written as
    /// it finishes; the index at the end (also after Ctrl-C, saying so).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Also write each case's messages as DIR/<case id>.pcapng (DIR created if missing), for
    /// Wireshark or tshark: every message at its real addresses and ports, DNS included, TLS
    /// flows as the clear SIP they carried (decode with `-d tcp.port==5061,sip`), and, when run as
    /// root, what the phone sent to a `refuse`d port with the kernel's ICMP or RST answer.
    #[arg(long, value_name = "DIR")]
    pcap_dir: Option<PathBuf>,
}

impl Outputs {
    /// Creates every file and directory asked for, so one that cannot be written stops the run
    /// before any case starts; the error is the one line to print.
    pub(super) fn open(&self) -> Result<Writers<'_>, String> {
        let junit = match self.junit.as_deref() {
            None => None,
            Some(path) => {
                Some((path, std::fs::File::create(path).map_err(|e| format!("--junit {}: {e}", path.display()))?))
            }
        };
        let report = match self.report.as_deref() {
            None => None,
            Some(dir) => Some((dir, HtmlReport::create(dir).map_err(|e| format!("--report {}: {e}", dir.display()))?)),
        };
        let pcaps = match self.pcap_dir.as_deref() {
            None => None,
            Some(dir) => {
                Some((dir, PcapWriter::create(dir).map_err(|e| format!("--pcap-dir {}: {e}", dir.display()))?))
            }
        };
        Ok(Writers { junit, report, pcaps, failed: None })
    }
}

/// The open reports of one run.
pub(super) struct Writers<'a> {
    junit: Option<(&'a Path, std::fs::File)>,
    report: Option<(&'a Path, HtmlReport)>,
    pcaps: Option<(&'a Path, PcapWriter)>,
    /// The first report that could not be written, said at the end.
    failed: Option<String>,
}

impl Writers<'_> {
    /// Writes a result's page and pcap as it lands, then drops its trace: a long run holds no
    /// traces.
    pub(super) fn add(&mut self, result: &mut CaseResult) {
        if let Some((dir, writer)) = &mut self.report
            && let Err(e) = writer.add(result)
        {
            self.failed.get_or_insert_with(|| format!("--report {}: {e}", dir.display()));
        }
        if let Some((dir, writer)) = &mut self.pcaps
            && let Err(e) = writer.write(result)
        {
            self.failed.get_or_insert_with(|| format!("--pcap-dir {}: {e}", dir.display()));
        }
        result.trace = None;
    }

    /// Writes the HTML index and the JUnit file, each whatever became of the other; the error
    /// is the first report that could not be written, the one line to print (exit 2).
    pub(super) fn finish(self, results: &[CaseResult], title: &str, elapsed: Duration) -> Result<(), String> {
        let mut failed = self.failed;
        if let Some((dir, report)) = self.report
            && let Err(e) = report.finish(title, elapsed)
        {
            failed.get_or_insert_with(|| format!("--report {}: {e}", dir.display()));
        }
        if let Some((path, file)) = self.junit {
            let mut writer = std::io::BufWriter::new(file);
            if let Err(e) = crate::report::junit::write(results, elapsed, &mut writer).and_then(|()| writer.flush()) {
                failed.get_or_insert_with(|| format!("--junit {}: {e}", path.display()));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// A run cut short: no JUnit file (a CI job that merges reports finds it missing); the HTML
    /// index, for a person, shows what finished.
    pub(super) fn interrupted(self, title: &str, elapsed: Duration) {
        if let Some((path, _)) = self.junit {
            let _ = std::fs::remove_file(path);
        }
        if let Some((_, report)) = self.report {
            let _ = report.finish(&format!("{title} (interrupted)"), elapsed);
        }
    }
}
