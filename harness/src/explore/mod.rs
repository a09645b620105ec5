//! The explorer (issue 14): random fault schedules from a seed, played against a phone and judged by a model of the seed's table, a failure shrunk to a minimal schedule that replays it.

pub mod model;
pub mod runner;
pub mod schedule;
pub mod shrink;

pub use model::{Change, Expected, Failure, World};
pub use runner::{Played, case_of, play};
pub use schedule::{Action, Schedule, Step};
pub use shrink::{Limits, Shrunk, candidates, shrink};
