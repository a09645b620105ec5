//! The manual profile, for any phone the harness cannot drive: per case, the settings to enter (as the vendor's cfg keys) and the actions to take are printed for the engineer, and the phone's traffic is judged as any other's.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{Capabilities, Dut, LabAddresses, Stimulus};
use crate::error::HarnessError;
use crate::provision::Provisioning;

/// How long the engineer has to enter a case's settings and restart the phone.
pub const SETUP: Duration = Duration::from_secs(300);

/// How long the engineer has to do what a case asks (dial, reboot).
pub const REACTION: Duration = Duration::from_secs(30);

/// What a phone driven by hand is assumed to have: what the vendor's phone declares (the engineer
/// enters what the phone offers; a case it cannot run fails, and says what it expected), with a
/// person's time to set it up and to act.
pub fn capabilities(vendor_floors: bool) -> Capabilities {
    Capabilities { startup: SETUP, reaction: REACTION, ..super::aastra::capabilities(vendor_floors) }
}

/// Tells the engineer what to do, on stderr (stdout carries the results).
pub struct ManualDriver {
    name: String,
    capabilities: Capabilities,
}

impl ManualDriver {
    pub fn new(name: String, vendor_floors: bool) -> ManualDriver {
        ManualDriver { name, capabilities: capabilities(vendor_floors) }
    }
}

/// `manual` takes one option, `floors=vendor|none` (default vendor): whether the phone's timers
/// are raised to the vendor's minimums. The floors it names, or what is wrong.
pub fn vendor_floors(profile: &super::Profile) -> Result<bool, String> {
    if let Some((key, _)) = profile.options.iter().find(|(k, _)| k != "floors") {
        return Err(format!("manual takes only floors=vendor|none, not {key:?}"));
    }
    let mut values = profile.values("floors");
    let floors = values.next();
    if values.next().is_some() {
        return Err("manual takes one floors=".into());
    }
    super::aastra::floors_option(floors)
}

/// Writes instructions for the engineer: whole lines at once, so concurrent output cannot split them.
fn tell(text: &str) -> Result<(), HarnessError> {
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(text.as_bytes())?;
    stderr.flush()?;
    Ok(())
}

/// The instructions for one case: where the phone sits, the settings to enter (the vendor's cfg
/// keys and values, without refphone's own), and what to do next.
pub fn instructions(provisioning: &Provisioning, lab: &LabAddresses) -> String {
    let mut text = format!(
        "manual: configure the phone for a {} case over {}, then restart it so it registers now\n",
        provisioning.configuration.id_segment(),
        provisioning.transport
    );
    text.push_str(&format!("manual:   phone address: {}\n", lab.phone));
    text.push_str(&format!("manual:   DNS server: {}\n", lab.dns));
    text.push_str(&format!("manual:   lab CA (for TLS): {}\n", lab.ca_file.display()));
    for line in provisioning.global_cfg.lines().chain(provisioning.mac_cfg.lines()) {
        if line.starts_with('#') || line.starts_with("refphone ") || line.trim().is_empty() {
            continue;
        }
        text.push_str(&format!("manual:   {line}\n"));
    }
    text.push_str(&format!("manual: waiting up to {} s for the phone's first request\n", SETUP.as_secs()));
    text
}

#[async_trait::async_trait]
impl Dut for ManualDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn provision(
        &mut self,
        provisioning: &Provisioning,
        lab: &LabAddresses,
        _dir: &Path,
    ) -> Result<(), HarnessError> {
        tell(&instructions(provisioning, lab))
    }

    async fn start(&mut self) -> Result<(), HarnessError> {
        Ok(())
    }

    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError> {
        match stimulus {
            Stimulus::Dial(number) => tell(&format!("manual: dial {number} on the phone now\n")),
            Stimulus::Reset => tell("manual: reboot the phone now (keep its settings)\n"),
        }
    }

    fn check_alive(&mut self) -> Result<(), HarnessError> {
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), HarnessError> {
        tell("manual: case over; the phone may stay as it is\n")
    }
}
