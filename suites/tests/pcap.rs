//! `--pcap-dir`'s files as Wireshark reads them (issue 11 item 2): two cases run against refphone, their pcaps written with `PcapWriter` and read back by `tshark`, which must find the REGISTERs, the DNS queries, the REGISTERs sent to a refused port, and the SIP inside a TLS flow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::dut::Profile;
use harness::report::pcap::PcapWriter;
use harness::runner::run_case;
use harness::trace::{Payload, RefusedAttempt};
use harness::{Case, CaseResult, Verdict};

const REFUSE_UDP: &str = "failover.no-outbound.primary-registrar-fails.refuse.udp";
const SILENT_TLS: &str = "failover.no-outbound.primary-registrar-fails.silent.tls";

/// How long one tshark run may take.
const TSHARK_DEADLINE: Duration = Duration::from_secs(60);

fn case(id: &str) -> Case {
    suites::catalog().cases.iter().find(|c| c.id == id).cloned().unwrap_or_else(|| panic!("no case {id}"))
}

fn profile(text: &str) -> Profile {
    Profile::parse(text).expect("profile parses")
}

/// Whether this process may open raw sockets (CAP_NET_RAW, bit 13 of the effective set): the
/// loopback capture of refused ports needs it.
fn can_capture() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 13) != 0)
}

fn tshark_path() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("tshark")).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("tshark is not installed (Debian package `tshark`): run `cargo xtask test`, which installs it")
        })
}

/// `tshark -r FILE ARGS... -T fields -e FIELDS...`: one line per packet the filter keeps, its
/// fields tab-separated. Bounded by [`TSHARK_DEADLINE`]; killed if it overruns.
async fn tshark(file: &Path, args: &[&str], fields: &[&str]) -> Vec<String> {
    let mut command = tokio::process::Command::new(tshark_path());
    command.arg("-n").arg("-r").arg(file).args(args).args(["-T", "fields"]);
    for field in fields {
        command.args(["-e", field]);
    }
    command.kill_on_drop(true).stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(TSHARK_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("tshark took over {TSHARK_DEADLINE:?} on {}", file.display()))
        .expect("tshark runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tshark {args:?} on {}: {}\n{stderr}", file.display(), output.status);
    String::from_utf8_lossy(&output.stdout).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

fn explain(result: &CaseResult) -> String {
    let failures: Vec<String> = result.failures.iter().map(ToString::to_string).collect();
    format!("{} {:?} {:?}\n{}\n{}", result.id, result.verdict, result.reason, failures.join("\n"), result.full_ladder)
}

#[test]
fn tshark_reads_the_sip_dns_refused_attempts_and_tls_flows_in_the_pcaps() {
    // Missing tshark fails here, before the cases run.
    tshark_path();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (refuse_case, tls_case) = (case(REFUSE_UDP), case(SILENT_TLS));
        let (quirked, plain) = (profile("refphone:quirk=no-backup-registrar"), profile("refphone"));
        let (refuse, tls) = tokio::join!(run_case(&refuse_case, &quirked), run_case(&tls_case, &plain));
        assert_eq!(refuse.verdict, Verdict::Fail, "the quirked phone fails: {}", explain(&refuse));
        assert_eq!(tls.verdict, Verdict::Pass, "{}", explain(&tls));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut writer = PcapWriter::create(&dir.path().join("pcaps")).expect("the directory");
        let refuse_file = writer.write(&refuse).expect("written").expect("the case has a trace");
        let tls_file = writer.write(&tls).expect("written").expect("the case has a trace");
        assert_eq!(refuse_file.file_name().and_then(|n| n.to_str()), Some(&*format!("{REFUSE_UDP}.pcapng")));
        let mut names: Vec<String> = std::fs::read_dir(writer.dir())
            .expect("listed")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [format!("{REFUSE_UDP}.pcapng"), format!("{SILENT_TLS}.pcapng")]);

        let refuse_trace = refuse.trace.as_ref().expect("a trace");
        let registrar_a = refuse_trace.topology.ip(harness::topology::Element::RegistrarA).to_string();
        for file in [&refuse_file, &tls_file] {
            let queries = tshark(file, &["-Y", "dns.flags.response == 0"], &["dns.qry.name", "dns.qry.type"]).await;
            assert!(queries.iter().any(|q| q.contains("lab.test")), "{}: DNS queries {queries:?}", file.display());
            let answers = tshark(file, &["-Y", "dns.flags.response == 1"], &["dns.qry.name"]).await;
            assert!(!answers.is_empty(), "{}: no DNS answers", file.display());
        }

        // UDP: every REGISTER, those to the refused port among them.
        let registers =
            tshark(&refuse_file, &["-Y", "sip.Method == \"REGISTER\""], &["ip.dst", "udp.dstport", "frame.comment"])
                .await;
        assert!(registers.len() >= 2, "REGISTERs: {registers:?}");
        let refused_in_trace = refuse_trace
            .events
            .iter()
            .filter(|e| matches!(&e.payload, Payload::Refused(RefusedAttempt::Datagram(p)) if matches!(**p, Payload::Sip(_))))
            .count();
        let refused_in_pcap: Vec<&String> = registers.iter().filter(|l| l.contains("refused")).collect();
        if can_capture() {
            assert!(refused_in_trace > 0, "the capture recorded nothing refused:\n{}", refuse.full_ladder);
            assert!(
                refuse.full_ladder.contains("REGISTER") && refuse.full_ladder.contains("[refused: ICMP port unreachable]"),
                "{}",
                refuse.full_ladder
            );
            assert_eq!(refused_in_pcap.len(), refused_in_trace, "{registers:?}");
            assert!(refused_in_pcap.iter().all(|l| l.starts_with(&format!("{registrar_a}\t5060"))), "{refused_in_pcap:?}");
            let unreachable = tshark(
                &refuse_file,
                &["-Y", &format!("icmp.type == 3 && icmp.code == 3 && ip.src == {registrar_a}")],
                &["ip.dst"],
            )
            .await;
            assert_eq!(unreachable.len(), refused_in_trace, "one ICMP port unreachable per refused datagram");
        } else {
            assert_eq!(refused_in_trace, 0);
            let reported = refuse.failures.iter().any(|v| v.arrived.contains("is not recorded"));
            assert!(reported, "without the capture the failure says so: {}", explain(&refuse));
        }

        // TLS: decrypted SIP on 5061, read as SIP when told to.
        let tls_registers = tshark(
            &tls_file,
            &["-d", "tcp.port==5061,sip", "-Y", "sip.Method == \"REGISTER\" && tcp.port == 5061"],
            &["ip.dst", "tcp.dstport"],
        )
        .await;
        assert!(!tls_registers.is_empty(), "no REGISTER over TLS (port 5061) in {}", tls_file.display());
        let responses =
            tshark(&tls_file, &["-d", "tcp.port==5061,sip", "-Y", "sip.Status-Code == 200"], &["sip.CSeq.method"]).await;
        assert!(responses.iter().any(|r| r.contains("REGISTER")), "200 to REGISTER over TLS: {responses:?}");
    });
}
