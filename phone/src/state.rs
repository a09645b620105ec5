//! What survives a reboot (`--state-dir`): the phone's RFC 5626 `+sip.instance`, generated once and kept in `DIR/instance`.

use std::path::{Path, PathBuf};

use rand::Rng;

use crate::error::PhoneError;

/// The file in the state directory that holds the instance URN.
pub const INSTANCE_FILE: &str = "instance";

/// The phone's instance URN (`urn:uuid:<version 4 UUID>`): read from `dir/instance`, or made and
/// written there when the file is missing or unreadable as one; `fresh` (`new-instance-each-boot`)
/// always makes a new one. Without a state directory the URN lasts one run.
pub fn load_or_create_instance(dir: Option<&Path>, fresh: bool) -> Result<String, PhoneError> {
    let Some(dir) = dir else { return Ok(new_instance()) };
    let path = dir.join(INSTANCE_FILE);
    if !fresh && let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        if is_instance_urn(text) {
            tracing::debug!("+sip.instance {text} read from {}", path.display());
            return Ok(text.to_owned());
        }
        tracing::warn!("{} does not hold a urn:uuid; making a new instance", path.display());
    }
    let instance = new_instance();
    write_atomically(dir, &path, &format!("{instance}\n"))?;
    tracing::info!("+sip.instance {instance} made and kept in {}", path.display());
    Ok(instance)
}

/// A new `urn:uuid:` with a random (version 4) UUID.
pub fn new_instance() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Whether `text` is `urn:uuid:` and a UUID in its 8-4-4-4-12 hex form.
pub fn is_instance_urn(text: &str) -> bool {
    let Some(uuid) = text.strip_prefix("urn:uuid:") else { return false };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Writes `text` to `path` through a temporary file and a rename, so a crash never leaves half a file.
fn write_atomically(dir: &Path, path: &Path, text: &str) -> Result<(), PhoneError> {
    let error = |path: &PathBuf, cause: std::io::Error| PhoneError::StateDir { path: path.clone(), cause };
    std::fs::create_dir_all(dir).map_err(|e| error(&dir.to_path_buf(), e))?;
    let temporary = dir.join(format!(".{INSTANCE_FILE}.tmp"));
    std::fs::write(&temporary, text).map_err(|e| error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| error(&path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_instance_is_a_version_4_uuid_urn() {
        let instance = new_instance();
        assert!(is_instance_urn(&instance), "{instance}");
        assert_eq!(&instance[23..24], "4", "{instance}");
        assert!("89ab".contains(&instance[28..29]), "{instance}");
        assert_ne!(new_instance(), instance);
    }

    #[test]
    fn the_instance_survives_a_restart_with_the_same_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_instance(Some(dir.path()), false).unwrap();
        let second = load_or_create_instance(Some(dir.path()), false).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read_to_string(dir.path().join(INSTANCE_FILE)).unwrap().trim(), first);
    }

    #[test]
    fn quirk_new_instance_each_boot_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_instance(Some(dir.path()), false).unwrap();
        let second = load_or_create_instance(Some(dir.path()), true).unwrap();
        assert_ne!(first, second);
        assert_eq!(load_or_create_instance(Some(dir.path()), false).unwrap(), second);
    }

    #[test]
    fn a_garbled_instance_file_is_replaced_and_a_missing_dir_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join(INSTANCE_FILE), "garbage").unwrap();
        let instance = load_or_create_instance(Some(&nested), false).unwrap();
        assert!(is_instance_urn(&instance));
        let fresh_dir = dir.path().join("new");
        assert!(is_instance_urn(&load_or_create_instance(Some(&fresh_dir), false).unwrap()));
    }

    #[test]
    fn urns_are_checked_for_their_form() {
        assert!(is_instance_urn("urn:uuid:00000000-0000-1000-8000-00085d0a0b0c"));
        assert!(!is_instance_urn("urn:uuid:0000-0000"));
        assert!(!is_instance_urn("uuid:00000000-0000-1000-8000-00085d0a0b0c"));
        assert!(!is_instance_urn("urn:uuid:0000000g-0000-1000-8000-00085d0a0b0c"));
    }
}
