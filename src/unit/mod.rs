//! Unit files: one TOML file per service in the units directory.
//!
//! - [`parse_unit`] turns one file's text into a validated [`Unit`].
//! - [`load_dir`] reads every `*.toml` file in a directory, parses it, and
//!   runs [`check_graph`] so that `Loaded::units` only contains units whose
//!   whole dependency closure is loadable.
//! - Every problem is a [`UnitError`] with a file, line and column.
//!
//! The file format is documented in `docs/units.md`.

mod container;
mod error;
mod graph;
mod load;
mod model;
mod parse;
mod resources;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use container::{
    ContainerSpec, IdMapRange, MountKind, MountSpec, Namespace, Propagation, Rlimit,
};
pub use error::UnitError;
pub use model::{
    IdSpec, LogLimits, RestartPolicy, Service, StartLimit, Unit, same_except_resources,
};
pub use resources::{CpuMax, ResourceSpec};

/// The result of loading a directory: the good units and every error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Units that parsed and whose dependencies all resolve, by name.
    pub units: BTreeMap<String, Unit>,
    /// All problems, sorted by path, then line and column.
    pub errors: Vec<UnitError>,
    /// FNV-1a 64 of the bytes of every file read (valid or rejected), by unit name:
    /// tells whether the file on disk is the loaded definition.
    pub fingerprints: BTreeMap<String, u64>,
}

/// Parses one unit file.
///
/// `name` is the file stem and must be a valid unit name
/// (`[A-Za-z0-9][A-Za-z0-9_.@-]*`, at most 64 bytes). Dependencies are not
/// checked here; that needs the other units (see [`check_graph`]). On
/// failure the first problem in the file is returned.
pub fn parse_unit(name: &str, path: &Path, text: &str) -> Result<Unit, UnitError> {
    parse::parse_unit(name, path, text)
}

/// Loads every unit in `dir`.
///
/// Only `*.toml` files count; hidden files and editor temp files (`~`,
/// `.swp`) are ignored. A bad file never prevents good ones from loading.
/// Returns `Err` only when the directory itself cannot be read.
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    load::load_dir(dir)
}

/// Checks `after`/`requires` across units.
///
/// `invalid` holds names of units whose files exist but failed to parse:
/// `after` on them is allowed (ordering only), `requires` on them is an
/// error. Also rejects unknown names, self-references and cycles, then
/// repeatedly drops units whose `requires` no longer resolve.
pub fn check_graph(units: BTreeMap<String, Unit>, invalid: &BTreeSet<String>) -> Loaded {
    graph::check_graph(units, invalid)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod container_tests;

#[cfg(test)]
mod resources_tests;
