//! A DUT that is not a process: the test or the user drives the phone's address itself (harness tests, `serve`).

use std::path::Path;
use std::time::Duration;

use super::{Capabilities, Dut, LabAddresses, Stimulus, TimeoutModel};
use crate::error::HarnessError;
use crate::provision::Provisioning;
use crate::trace::Transport;

/// A phone played by whoever holds the lab: it starts nothing and refuses stimuli.
pub struct ScriptedPhone {
    capabilities: Capabilities,
}

impl Default for ScriptedPhone {
    fn default() -> ScriptedPhone {
        ScriptedPhone {
            capabilities: Capabilities {
                backup_registrar: true,
                backup_proxy: true,
                transports: vec![Transport::Udp],
                reads_icmp: true,
                timeout_model: TimeoutModel::TransactionTimer,
                startup: Duration::ZERO,
                expected_failures: Vec::new(),
            },
        }
    }
}

#[async_trait::async_trait]
impl Dut for ScriptedPhone {
    fn name(&self) -> &str {
        "scripted"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn provision(&mut self, _: &Provisioning, _: &LabAddresses, _: &Path) -> Result<(), HarnessError> {
        Ok(())
    }

    async fn start(&mut self) -> Result<(), HarnessError> {
        Ok(())
    }

    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError> {
        Err(HarnessError::Other(format!("a scripted phone takes no stimulus ({stimulus:?})")))
    }

    fn check_alive(&mut self) -> Result<(), HarnessError> {
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), HarnessError> {
        Ok(())
    }
}
