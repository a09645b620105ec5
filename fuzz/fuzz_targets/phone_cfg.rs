//! Any text as a vendor cfg file to the reference phone: an error or settings, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use phone::config::PhoneConfig;

fuzz_target!(|text: &str| {
    let mut config = PhoneConfig::default();
    if config.apply(Path::new("fuzz.cfg"), text).is_err() {
        return;
    }
    for line in 1..=9 {
        let line = config.line(line);
        for server in [&line.proxy, &line.backup_proxy, &line.registrar, &line.backup_registrar] {
            let _ = server.as_ref().map(|s| (s.uses_srv(), s.to_string()));
        }
    }
    let _ = config.timers();
    let _ = config.phone_timers();
    let _ = config.subscriptions();
});
