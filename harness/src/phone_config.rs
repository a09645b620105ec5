//! What `sipharness serve --phone-config` writes for a real phone on the bench: the vendor's cfg files, or baresip's `accounts` and `config`, for the topology being served.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::HarnessError;
use crate::provision::Provisioning;
use crate::tls::CA_CERTIFICATE_FILE;
use crate::topology::{Element, Topology};
use crate::trace::Transport;

/// The phones `--phone-config` knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneKind {
    /// The vendor's phones: `aastra.cfg` and `<MAC>.cfg` (BRIEF §2).
    Aastra,
    /// baresip: an `accounts` line and a minimal `config`.
    Baresip,
}

impl PhoneKind {
    pub const NAMES: &'static str = "aastra or baresip";

    pub fn parse(name: &str) -> Option<PhoneKind> {
        match name {
            "aastra" => Some(PhoneKind::Aastra),
            "baresip" => Some(PhoneKind::Baresip),
            _ => None,
        }
    }
}

/// Writes the settings `kind` needs for `topology` into `dir` (created if need be), with the
/// lab CA beside them as `lab-ca.pem`; returns the files written.
pub fn write(
    kind: PhoneKind,
    provisioning: &Provisioning,
    topology: &Topology,
    ca_pem: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, HarnessError> {
    // The files name each other (baresip's `sip_cafile`), and a phone may not start where we did.
    let dir =
        &std::path::absolute(dir).map_err(|e| HarnessError::Other(format!("--phone-config {}: {e}", dir.display())))?;
    let files = match kind {
        PhoneKind::Aastra => aastra(provisioning),
        PhoneKind::Baresip => baresip(provisioning, topology, &dir.join(CA_CERTIFICATE_FILE), RowOneRoute::Proxies),
    };
    let failed =
        |path: &Path, e: std::io::Error| HarnessError::Other(format!("--phone-config {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let mut written = Vec::new();
    for (name, text) in files.into_iter().chain([(CA_CERTIFICATE_FILE.to_owned(), ca_pem.to_owned())]) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// The vendor's two files, without the keys only refphone reads.
fn aastra(provisioning: &Provisioning) -> Vec<(String, String)> {
    let mut global = String::new();
    for line in provisioning.global_cfg.lines().filter(|l| !l.starts_with("refphone ")) {
        let _ = writeln!(global, "{line}");
    }
    let _ = writeln!(global, "# The lab CA for TLS is lab-ca.pem beside this file; the phone must trust it.");
    vec![("aastra.cfg".to_owned(), global), (format!("{}.cfg", provisioning.mac), provisioning.mac_cfg.clone())]
}

/// A SIP URI naming `element` over `transport` (baresip picks 5061 for TLS by itself).
fn uri(topology: &Topology, element: Element, transport: Transport) -> String {
    format!("sip:{};transport={transport}", topology.fqdn(element))
}

/// Where baresip's one route goes in row 1, where the vendor's phone has a proxy and a registrar
/// apart: baresip sends every request through its outbound proxy (and `outbound2` when that
/// fails), so it can reach only one of them directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOneRoute {
    /// Through proxy-a, then proxy-b, each passing REGISTER on to the registrar of its side and
    /// serving SUBSCRIBE and INVITE itself (`serve`: every kind of request reaches the lab).
    Proxies,
    /// Straight to registrar-a, then registrar-b (or the registrars' SIP service), each passing
    /// SUBSCRIBE and INVITE on to its proxy (the `baresip` profile: cases judge the registrar).
    Registrars,
}

/// baresip's account line and config. baresip has one server per account, its outbound proxy
/// (and a second one to fail over to), where the vendor has a proxy, a registrar and their
/// backups: row 1 as `row_one` says, rows 2 and 3 through outbound-a then outbound-b; the AOR is
/// the primary proxy's, as the vendor's is.
pub(crate) fn baresip(
    provisioning: &Provisioning,
    topology: &Topology,
    ca_file: &Path,
    row_one: RowOneRoute,
) -> Vec<(String, String)> {
    let configuration = provisioning.configuration;
    let transport = provisioning.transport;
    let line = &provisioning.line;
    let (first, second) = if configuration.has_outbound_proxies() {
        (uri(topology, Element::OutboundA, transport), Some(uri(topology, Element::OutboundB, transport)))
    } else if row_one == RowOneRoute::Proxies {
        (uri(topology, Element::ProxyA, transport), Some(uri(topology, Element::ProxyB, transport)))
    } else if provisioning.registrar_service {
        // RFC 3263 on the service name: NAPTR, then SRV naming both registrars (F5).
        (format!("sip:{};transport={transport}", topology.registrar_service()), None)
    } else {
        (uri(topology, Element::RegistrarA, transport), Some(uri(topology, Element::RegistrarB, transport)))
    };
    let mut account = format!(
        "\"{}\" <sip:{}@{};transport={transport}>;auth_user={};auth_pass={};outbound=\"{first}\"",
        line.display_name,
        line.user,
        topology.fqdn(Element::ProxyA),
        line.auth_name,
        line.password,
    );
    if let Some(second) = &second {
        account.push_str(&format!(";outbound2=\"{second}\""));
    }
    account.push_str(&format!(
        ";regint={};mwi={}",
        provisioning.timers.registration_period.as_secs(),
        if provisioning.subscriptions { "yes" } else { "no" }
    ));
    if configuration.sip_outbound() {
        // RFC 5626: +sip.instance, reg-id and keep-alives.
        account.push_str(";sipnat=outbound");
    }
    let accounts = format!(
        "# sipharness: line 1 for the {} topology over {transport}, through {first}{}.\n{account}\n",
        configuration.id_segment(),
        second.as_deref().map(|s| format!(" then {s}")).unwrap_or_default()
    );
    let config = format!(
        "# sipharness: a minimal baresip config for this block; the DNS address changes when\n\
         # the lab DNS runs on a high port, so write it again after each start. uuid.so keeps the\n\
         # +sip.instance in this directory (SIP outbound needs one); no media NAT modules.\n\
         poll_method\t\tepoll\n\
         sip_listen\t\t{phone}:5060\n\
         net_interface\t\t{phone}\n\
         sip_cafile\t\t{}\n\
         sip_verify_server\tyes\n\
         dns_server\t\t{}\n\
         dns_getaddrinfo\t\tno\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tuuid.so\n\
         module\t\t\tg711.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmwi.so\n\
         module_app\t\tmenu.so\n",
        ca_file.display(),
        topology.dns_addr(),
        phone = topology.phone_ip(),
    );
    vec![("accounts".to_owned(), accounts), ("config".to_owned(), config)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::{Configuration, DEFAULT_MAC, Timers};

    fn provisioning(configuration: Configuration, topology: &Topology) -> Provisioning {
        Provisioning::new(configuration, Transport::Tcp, topology, Timers::lab(), true, false, DEFAULT_MAC)
    }

    #[test]
    fn baresip_goes_through_the_rows_first_hop() {
        let topology = Topology::new(std::net::Ipv4Addr::new(127, 100, 0, 16), "lab.test");
        let ca = Path::new("/lab/lab-ca.pem");
        let row1 = baresip(&provisioning(Configuration::NoOutbound, &topology), &topology, ca, RowOneRoute::Proxies);
        let account = row1[0].1.lines().nth(1).unwrap();
        assert!(account.starts_with("\"Lab Phone 1001\" <sip:1001@proxy-a.lab.test;transport=tcp>;"), "{account}");
        assert!(account.contains(";auth_pass=secret-1001;"), "{account}");
        assert!(account.contains(";outbound=\"sip:proxy-a.lab.test;transport=tcp\";"), "{account}");
        assert!(account.contains(";outbound2=\"sip:proxy-b.lab.test;transport=tcp\";"), "{account}");
        assert!(account.ends_with(";regint=60;mwi=yes"), "{account}");
        assert!(row1[1].1.contains("sip_listen\t\t127.100.0.26:5060\n"), "{}", row1[1].1);
        assert!(row1[1].1.contains("dns_server\t\t127.100.0.17:53\n"), "{}", row1[1].1);
        assert!(row1[1].1.contains("sip_cafile\t\t/lab/lab-ca.pem\n"), "{}", row1[1].1);

        let row2 =
            baresip(&provisioning(Configuration::FullBackupRfc5626, &topology), &topology, ca, RowOneRoute::Registrars);
        let account = row2[0].1.lines().nth(1).unwrap();
        assert!(account.contains(";outbound=\"sip:outbound-a.lab.test;transport=tcp\";"), "{account}");
        assert!(account.ends_with(";sipnat=outbound"), "{account}");
    }

    #[test]
    fn aastra_leaves_out_refphones_own_keys() {
        let topology = Topology::new(std::net::Ipv4Addr::new(127, 100, 0, 16), "lab.test");
        let files = aastra(&provisioning(Configuration::OutboundOnly, &topology));
        assert_eq!(files[1].0, format!("{DEFAULT_MAC}.cfg"));
        assert!(files[0].1.contains("sip outbound proxy: outbound-a.lab.test\n"), "{}", files[0].1);
        assert!(!files[0].1.contains("refphone"), "{}", files[0].1);
        assert!(files[1].1.contains("sip line1 password: secret-1001\n"), "{}", files[1].1);
    }
}
