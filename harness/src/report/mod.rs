//! Reports a finished run writes for other tools and people to read (BRIEF §5: `run --junit FILE`, `run --report DIR`, `run --pcap-dir DIR`).

pub mod html;
pub mod junit;
pub mod pcap;

pub use html::HtmlReport;
