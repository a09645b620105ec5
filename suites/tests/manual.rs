//! The `manual` profile end to end: the test plays the engineer, entering exactly the settings `sipharness run --phone manual` prints (stdin closed) into refphone, on loopback and, with `--lab`, on a LAN of two network namespaces.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What the engineer is told for one case: the phone's address, DNS server, CA, and the cfg lines.
#[derive(Debug, Default)]
struct Instructions {
    phone: String,
    dns: String,
    ca: String,
    cfg: Vec<String>,
}

/// Kills a process when dropped before it was reaped, so a failed assertion leaves no run or
/// phone behind (disarmed once reaped: its pid may then belong to another process).
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// `sipharness run CASE --phone manual:floors=none ARGS`, prefixed by `wrapper` (`ip netns exec`).
fn start_run(wrapper: &[&str], case: &str, args: &[&str], tmp: &Path) -> Child {
    let sipharness = env!("CARGO_BIN_EXE_sipharness");
    let (program, rest) = match wrapper.split_first() {
        Some((program, rest)) => (*program, [rest, &[sipharness]].concat()),
        None => (sipharness, Vec::new()),
    };
    Command::new(program)
        .args(rest)
        .args(["run", case, "--phone", "manual:floors=none"])
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the printed settings, enters them into refphone (run under `wrapper`) as an engineer
/// would, and returns the run's output once the case is over.
fn follow_instructions(mut run: Child, wrapper: &[&str], tmp: &Path) -> (Instructions, Output) {
    let mut run_guard = KillOnDrop(Some(run.id()));
    let stderr = run.stderr.take().unwrap();
    let (told, instructions) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Instructions::default();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Some(said) = line.strip_prefix("manual:") else { continue };
            if let Some(setting) = said.strip_prefix("   ") {
                if let Some(phone) = setting.strip_prefix("phone address: ") {
                    got.phone = phone.to_owned();
                } else if let Some(dns) = setting.strip_prefix("DNS server: ") {
                    got.dns = dns.to_owned();
                } else if let Some(ca) = setting.strip_prefix("lab CA (for TLS): ") {
                    got.ca = ca.to_owned();
                } else {
                    got.cfg.push(setting.to_owned());
                }
            } else if said.starts_with(" waiting") {
                let _ = told.send(std::mem::take(&mut got));
            }
        }
    });
    let told = instructions.recv_timeout(Duration::from_secs(30)).expect("the settings were printed");
    assert!(told.cfg.iter().any(|l| l.starts_with("sip registrar ip: registrar-a.")), "{told:?}");
    assert!(told.cfg.iter().any(|l| l.starts_with("sip line1 password: ")), "{told:?}");
    assert!(
        told.cfg.iter().all(|l| !l.starts_with("refphone ")),
        "refphone's own keys are not the engineer's: {told:?}"
    );

    // The engineer types the settings into the phone (here refphone's cfg) and restarts it.
    let cfg = tmp.join("typed-in.cfg");
    std::fs::write(&cfg, told.cfg.join("\n") + "\n").unwrap();
    let state = tmp.join("phone-state");
    std::fs::create_dir_all(&state).unwrap();
    let refphone = harness::dut::find_refphone().expect("refphone is built with the workspace");
    let refphone = refphone.to_string_lossy().to_string();
    let (program, rest) = match wrapper.split_first() {
        Some((program, rest)) => (*program, [rest, &[refphone.as_str()]].concat()),
        None => (refphone.as_str(), Vec::new()),
    };
    let mut phone = Command::new(program)
        .args(rest)
        .args(["--config", &cfg.to_string_lossy(), "--bind", &told.phone, "--dns", &told.dns, "--ca", &told.ca])
        .args(["--state-dir", &state.to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut phone_guard = KillOnDrop(Some(phone.id()));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(run.wait_with_output());
    });
    let output = finished.recv_timeout(Duration::from_secs(60)).expect("the case ended").unwrap();
    run_guard.0 = None;
    let _ = phone.kill();
    let _ = phone.wait();
    phone_guard.0 = None;
    (told, output)
}

#[test]
fn an_engineer_following_the_printed_settings_gets_a_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let run = start_run(&[], "register.no-outbound.basic.udp", &[], tmp.path());
    let (_, output) = follow_instructions(run, &[], tmp.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS  register.no-outbound.basic.udp"), "{stdout}");
}

/// Two network namespaces joined by a veth pair, made by the test and removed when dropped: the
/// harness's host (the elements on 192.0.2.1-7, the console on .9) and the phone's (.10). The
/// addresses exist only inside them.
struct Lan {
    harness: String,
    phone: String,
}

impl Lan {
    fn create() -> Lan {
        let id = std::process::id() % 100_000;
        let lan = Lan { harness: format!("sh-lab-h{id}"), phone: format!("sh-lab-p{id}") };
        let (veth_h, veth_p) = (format!("shh{id}"), format!("shp{id}"));
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("iproute2's ip runs");
            assert!(status.success(), "ip {} failed (network namespaces need root)", args.join(" "));
        };
        ip(&["netns", "add", &lan.harness]);
        ip(&["netns", "add", &lan.phone]);
        ip(&[
            "link",
            "add",
            &veth_h,
            "netns",
            &lan.harness,
            "type",
            "veth",
            "peer",
            "name",
            &veth_p,
            "netns",
            &lan.phone,
        ]);
        for last in [1, 2, 3, 4, 5, 6, 7, 9] {
            ip(&["-n", &lan.harness, "addr", "add", &format!("192.0.2.{last}/24"), "dev", &veth_h]);
        }
        ip(&["-n", &lan.phone, "addr", "add", "192.0.2.10/24", "dev", &veth_p]);
        for (ns, dev) in [(&lan.harness, &veth_h), (&lan.phone, &veth_p)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.harness, &self.phone] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `--lab` puts the elements and the DNS (port 53) on the addresses of a real interface, and a
/// phone on another host of that LAN (here another namespace) registers and is judged.
#[test]
fn a_lab_file_puts_the_lab_on_a_lan_where_a_phone_elsewhere_registers() {
    let tmp = tempfile::tempdir().unwrap();
    let lan = Lan::create();
    let lab = tmp.path().join("lab.txt");
    std::fs::write(
        &lab,
        "# the lab's LAN: elements on the harness's interface, the phone on its own host\n\
         dns 192.0.2.1\nproxy-a 192.0.2.2\nproxy-b 192.0.2.3\nregistrar-a 192.0.2.4\nregistrar-b 192.0.2.5\n\
         outbound-a 192.0.2.6\noutbound-b 192.0.2.7\nconsole 192.0.2.9\nphone 192.0.2.10\n",
    )
    .unwrap();
    let on_harness = ["ip", "netns", "exec", lan.harness.as_str()];
    let on_phone = ["ip", "netns", "exec", lan.phone.as_str()];
    let run = start_run(&on_harness, "register.no-outbound.basic.udp", &["--lab", &lab.to_string_lossy()], tmp.path());
    let (told, output) = follow_instructions(run, &on_phone, tmp.path());
    assert_eq!(told.phone, "192.0.2.10");
    assert_eq!(told.dns, "192.0.2.1:53", "a phone on a LAN asks port 53");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("PASS  register.no-outbound.basic.udp"), "{stdout}");
}

#[test]
fn a_bad_lab_file_is_a_usage_error_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab.txt");
    std::fs::write(&lab, "dns 192.0.2.1\nproxy-c 192.0.2.2\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sipharness"))
        .args(["run", "register", "--phone", "refphone", "--lab", &lab.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lab.txt: line 2: unknown element \"proxy-c\""), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A lab file whose addresses are on no interface here is an environment error before any case
/// runs: one line, exit 2 (not an `error` verdict per case). Nothing is sent: binding fails.
#[test]
fn a_lab_file_with_addresses_not_on_this_host_is_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab.txt");
    std::fs::write(
        &lab,
        "dns 192.0.2.1\nproxy-a 192.0.2.2\nproxy-b 192.0.2.3\nregistrar-a 192.0.2.4\nregistrar-b 192.0.2.5\n\
         outbound-a 192.0.2.6\noutbound-b 192.0.2.7\nphone 192.0.2.10\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sipharness"))
        .args(["run", "register", "--phone", "refphone", "--json", "--lab", &lab.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "no case ran: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("192.0.2."), "{stderr}");
}
