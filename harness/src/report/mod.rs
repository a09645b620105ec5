//! Reports a finished run writes for other tools to read (BRIEF §5: `run --junit FILE`, `--pcap-dir DIR`).

pub mod junit;
pub mod pcap;
