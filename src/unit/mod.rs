//! Unit files: one TOML file per service in the units directory.
//!
//! - [`parse_unit`] turns one file's text into a validated [`Unit`], or
//!   every problem in it.
//! - [`load_dir`] reads every `*.toml` file in a directory, parses it, and
//!   runs [`check_graph`] so that `Loaded::units` only contains units whose
//!   whole dependency closure is loadable.
//! - Every problem is a [`UnitError`] with a file, line and column.
//!
//! The file format is documented in `docs/units.md`.

mod cache;
mod error;
mod graph;
mod image;
mod isolation;
pub mod lifecycle;
mod load;
mod model;
pub mod names;
mod netcheck;
pub mod network;
mod parse;
pub use parse::keys_by_section;
pub mod protection;
mod resources;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use cache::ParseCache;
pub use error::UnitError;
pub use image::{ImageSpec, ResolvedImage};
pub use isolation::{
    Capability, ContainerSpec, IdMapRange, MountKind, MountSpec, MountType, Namespace, Propagation,
    Rlimit, RlimitResource,
};
pub use lifecycle::{HealthSpec, Lifecycle, OnFailure, OnUnhealthy, Probe, ServiceType};
pub use model::{
    EnvFile, IdSpec, LogLimits, RestartPolicy, Service, StartLimit, Unit, same_except_live_settings,
};
pub use network::{NetworkDef, NetworkMode, NetworkSpec, PortSpec, Protocol};
pub use protection::{DeviceSpec, ProtectSystem, Protection};
pub use resources::{CpuMax, ResourceSpec};

/// The result of loading a directory: the good units and every error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Units that parsed and whose dependencies all resolve, by name.
    pub units: BTreeMap<String, Unit>,
    /// All problems, sorted by path, then line and column; a file can
    /// have several.
    pub errors: Vec<UnitError>,
    /// [`fingerprint`] of the bytes of every unit file read whole, valid
    /// or rejected, by unit name. A file that was not read (unreadable,
    /// not a regular file, over the size cap) has no entry.
    pub fingerprints: BTreeMap<String, u64>,
    /// Every valid network: the `*.network.toml` files and the built-in
    /// `default` (unless a file replaces it).
    pub networks: BTreeMap<String, NetworkDef>,
}

/// Parses one unit file.
///
/// `name` is the file stem and must be a valid unit name
/// (`[A-Za-z0-9][A-Za-z0-9_.@-]*`, at most 64 bytes). Dependencies are not
/// checked here; that needs the other units (see [`check_graph`]). On
/// failure every problem found in the file is returned, sorted by line and
/// column (a TOML syntax error is always alone).
pub fn parse_unit(name: &str, path: &Path, text: &str) -> Result<Unit, Vec<UnitError>> {
    parse::parse_unit(name, path, text)
}

/// FNV-1a 64 of a unit file's bytes, as in [`Loaded::fingerprints`]: lets
/// a caller tell whether a file changed since it was loaded.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    model::fnv1a64(bytes)
}

/// Loads every unit in `dir`.
///
/// Only `*.toml` files count; hidden files and editor temp files (`~`,
/// `.swp`) are ignored. Only regular files (symlinks followed) of at most
/// 1 MiB are read; anything else is an error for that unit. A bad file
/// never prevents good ones from loading.
/// Returns `Err` only when the directory itself cannot be read.
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    load::load_dir(dir, &BTreeSet::new(), &mut ParseCache::default())
}

/// [`load_dir`], where a clash over a host port or a fixed address is settled in
/// favour of `incumbents` (the units already loaded): a new unit cannot take a
/// running unit's port. Between two incumbents, or two newcomers, name order.
pub fn load_dir_preferring(dir: &Path, incumbents: &BTreeSet<String>) -> std::io::Result<Loaded> {
    load::load_dir(dir, incumbents, &mut ParseCache::default())
}

/// [`load_dir_preferring`] that parses only the files whose bytes are not those
/// `cache` kept from the last call (see [`ParseCache`]): the result is the same as
/// without it.
pub fn load_dir_cached(
    dir: &Path,
    incumbents: &BTreeSet<String>,
    cache: &mut ParseCache,
) -> std::io::Result<Loaded> {
    load::load_dir(dir, incumbents, cache)
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
