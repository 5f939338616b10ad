//! The command lines of supd and supctl, kept here (not in the binaries) so that
//! their man pages and shell completions are generated from the same definitions
//! (see docs/packaging.md).

pub mod generate;
pub mod supctl;
pub mod supd;
pub mod unit_keys;
