//! A DUT that is not a process: the test or the user drives the phone's address itself (harness tests, `serve`).

use std::path::Path;
use std::time::Duration;

use super::{Capabilities, Dut, LabAddresses, Stimulus};
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
            capabilities: Capabilities::reference(vec![Transport::Udp, Transport::Tcp, Transport::Tls], Duration::ZERO),
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
