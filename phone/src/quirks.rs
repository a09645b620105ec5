//! Quirks: named, deliberate breakages of the reference phone, so each conformance case can prove it fails (BRIEF §6).

use std::collections::BTreeSet;
use std::fmt;

use crate::error::PhoneError;

/// One deliberate breakage. Each breaks exactly one behaviour a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quirk {
    /// Never uses the backup registrar; keeps retrying the primary (breaks R1.2).
    NoBackupRegistrar,
    /// Refreshes a registration only after it expired: at 1.25x the granted expiry instead of 0.5x.
    LateRefresh,
}

impl Quirk {
    pub const ALL: [Quirk; 2] = [Quirk::NoBackupRegistrar, Quirk::LateRefresh];

    /// The name given to `--quirk`.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::NoBackupRegistrar => "no-backup-registrar",
            Quirk::LateRefresh => "late-refresh",
        }
    }

    /// What the quirk breaks, for `--list-quirks`.
    pub fn breaks(self) -> &'static str {
        match self {
            Quirk::NoBackupRegistrar => {
                "never registers at the backup registrar; keeps retrying the primary after every failure (R1.2)"
            }
            Quirk::LateRefresh => {
                "refreshes a registration at 1.25x the granted expiry, after the binding expired, instead of 0.5x"
            }
        }
    }

    pub fn parse(name: &str) -> Result<Quirk, PhoneError> {
        Quirk::ALL.into_iter().find(|q| q.name() == name).ok_or_else(|| PhoneError::UnknownQuirk {
            name: name.to_owned(),
            known: Quirk::ALL.map(Quirk::name).join(", "),
        })
    }
}

impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The quirks switched on for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks(BTreeSet<Quirk>);

impl Quirks {
    pub fn none() -> Quirks {
        Quirks::default()
    }

    pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Quirks, PhoneError> {
        names.iter().map(|n| Quirk::parse(n.as_ref())).collect::<Result<BTreeSet<_>, _>>().map(Quirks)
    }

    pub fn has(&self, quirk: Quirk) -> bool {
        self.0.contains(&quirk)
    }

    pub fn with(mut self, quirk: Quirk) -> Quirks {
        self.0.insert(quirk);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Quirk> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quirk_parses_back_from_its_name() {
        for quirk in Quirk::ALL {
            assert_eq!(Quirk::parse(quirk.name()).unwrap(), quirk);
        }
    }

    #[test]
    fn an_unknown_quirk_lists_the_known_ones() {
        let err = Quirk::parse("no-such").unwrap_err().to_string();
        assert!(err.contains("no-backup-registrar") && err.contains("late-refresh"), "{err}");
    }
}
