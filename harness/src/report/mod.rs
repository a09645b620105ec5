//! Reports a finished run writes for other tools to read (BRIEF §5: `run --junit FILE`).

pub mod junit;
