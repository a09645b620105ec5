//! `sipharness provision`: the cfg files a phone is served for one case, written to a directory.

use std::io::Write as _;

use super::{EXIT_OK, select, usage_error};
use crate::case::Case;
use crate::dut::Profile;

/// The one case `--case` names: its exact id, or a filter matching it alone.
fn one_case<'a>(catalog: &'a [Case], wanted: &str) -> Result<&'a Case, String> {
    if let Some(case) = catalog.iter().find(|c| c.id == wanted) {
        return Ok(case);
    }
    match select(catalog, Some(wanted)).as_slice() {
        [] => Err(format!("no case matches {wanted:?}")),
        [case] => Ok(case),
        [first, second, rest @ ..] => Err(format!(
            "--case {wanted:?} matches {} cases ({}, {}{}); name one",
            rest.len() + 2,
            first.id,
            second.id,
            if rest.is_empty() { "" } else { ", ..." }
        )),
    }
}

pub(super) fn provision(
    catalog: &[Case],
    phone: &str,
    wanted: &str,
    out: &std::path::Path,
    lab: Option<std::sync::Arc<crate::topology::Topology>>,
    by_address: bool,
) -> u8 {
    let profile = match Profile::parse(phone) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    let case = match one_case(catalog, wanted) {
        Ok(case) => case,
        Err(message) => return usage_error(&message),
    };
    let (mut provisioning, topology) = match crate::runner::provisioning_for(case, &profile, lab.as_ref()) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if by_address && let Err(e) = provisioning.by_address(&topology) {
        return usage_error(&format!("--addressing ip: {e}"));
    }
    let files = [
        ("aastra.cfg".to_owned(), &provisioning.global_cfg),
        (format!("{}.cfg", provisioning.mac), &provisioning.mac_cfg),
    ];
    if let Err(e) = std::fs::create_dir_all(out) {
        return usage_error(&format!("--out {}: {e}", out.display()));
    }
    let mut stdout = std::io::stdout().lock();
    for (name, text) in files {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            return usage_error(&format!("{}: {e}", path.display()));
        }
        let _ = writeln!(stdout, "{}", path.display());
    }
    EXIT_OK
}
