//! The clean, validated unit model that the rest of supd codes against.
//!
//! Everything here has already passed validation in [`super::parse`]; consumers
//! never need to re-check ranges or syntax.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Serialize, Serializer};

use super::isolation::ContainerSpec;
use super::lifecycle::{HealthSpec, Lifecycle};
use super::names::Named;
use super::network::NetworkSpec;
use super::resources::ResourceSpec;

/// One service definition, loaded from `<dir>/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// File stem: `units/web.toml` -> `"web"`.
    pub name: String,
    /// Path the unit was read from.
    pub path: PathBuf,
    /// 12 hex chars: FNV-1a-64 of the canonical semantic definition (see
    /// [`Unit::compute_hash`]). Used to decide whether a reload changed a unit.
    pub hash: String,
    /// Free text; default `""`.
    pub description: String,
    /// Units that must be started before this one (ordering only).
    pub after: Vec<String>,
    /// Units this one needs; implies `after` as well.
    pub requires: Vec<String>,
    /// Units started with this one, whose failure does not affect it (no ordering).
    pub wants: Vec<String>,
    /// How to run and restart the process.
    pub service: Service,
    /// Log rotation limits.
    pub logs: LogLimits,
    /// Isolation settings: `[container]` plus the top-level `[[mount]]`
    /// entries; [`ContainerSpec::default()`] when neither is written.
    pub container: ContainerSpec,
    /// cgroup limits from `[resources]`; [`ResourceSpec::default()`] (no
    /// limits) when the section is not written.
    pub resources: ResourceSpec,
    /// The `[health]` check, if any.
    pub health: Option<HealthSpec>,
    /// `[network]`: host networking when absent.
    pub network: NetworkSpec,
    /// Source locations of `after`/`requires` entries, kept so the graph
    /// check can point at the offending entry. Ignored by `==` and the hash.
    #[serde(skip)]
    pub(super) deps: DepLocations,
}

/// The `[service]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// argv; non-empty, `exec[0]` non-empty.
    pub exec: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory; always absolute.
    pub workdir: Option<PathBuf>,
    /// User to run as.
    pub user: Option<IdSpec>,
    /// Group to run as.
    pub group: Option<IdSpec>,
    /// When to restart after an exit.
    pub restart: RestartPolicy,
    /// First backoff delay.
    pub restart_delay: Duration,
    /// Backoff cap; `>= restart_delay`.
    pub restart_max_delay: Duration,
    /// Uptime after which the backoff resets to `restart_delay`.
    pub restart_reset_after: Duration,
    /// Rate limit on starts.
    pub start_limit: StartLimit,
    /// Signal sent to ask the process to stop.
    #[serde(serialize_with = "serialize_signal")]
    pub stop_signal: Signal,
    /// Grace period before SIGKILL.
    pub stop_timeout: Duration,
    /// Exit codes counted as success; each in `0..=255`.
    pub success_exit_codes: Vec<i32>,
    /// Extra groups, in file order; default empty.
    pub supplementary_groups: Vec<IdSpec>,
    /// File mode creation mask, `0..=0o777`; `None` keeps the inherited one.
    pub umask: Option<u32>,
    /// When it counts as started, hooks and failure actions. Left out of the hash
    /// when default, so units that do not use it keep their hash.
    #[serde(skip_serializing_if = "Lifecycle::is_default")]
    pub lifecycle: Lifecycle,
    /// `env_file`: environment files read at each start, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// `[credentials]`: name -> host file, copied into the container at each start.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, PathBuf>,
}

/// One `env_file` entry: `"-/path"` is optional (a missing file is skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvFile {
    /// Absolute.
    pub path: PathBuf,
    /// Written with a leading `-`.
    pub optional: bool,
}

/// At most `burst` starts within `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StartLimit {
    /// Maximum number of starts in the window; `>= 1`.
    pub burst: u32,
    /// Length of the window.
    pub interval: Duration,
}

/// The `[logs]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogLimits {
    /// Rotate the live log when it reaches this many bytes (`>= 4096`).
    pub max_size: u64,
    /// Rotated files kept besides the live one (`0..=100`).
    pub max_files: u32,
}

/// A user or group, by name or numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IdSpec {
    /// Looked up in the user/group database at start time.
    Name(String),
    /// Used as-is.
    Id(u32),
}

/// When a unit is restarted after its process exits.
///
/// A stop requested by the operator never restarts, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Restart when the exit code is not in `success_exit_codes` or the
    /// process was killed by a signal.
    OnFailure,
    /// Restart only when the process was killed by a signal.
    OnAbnormal,
    /// Restart after any exit.
    Always,
}

impl Named for RestartPolicy {
    const VARIANTS: &'static [Self] = &[
        RestartPolicy::No,
        RestartPolicy::OnFailure,
        RestartPolicy::OnAbnormal,
        RestartPolicy::Always,
    ];
    const WHAT: &'static str = "restart policy";

    fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::OnAbnormal => "on-abnormal",
            RestartPolicy::Always => "always",
        }
    }
}

/// A 1-based source position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Pos {
    /// Used when no better location is known (file-level errors).
    pub(super) const START: Pos = Pos { line: 1, column: 1 };
}

impl Default for Pos {
    fn default() -> Self {
        Pos::START
    }
}

/// Where each `after`/`requires` entry was written: `after[i]` is the
/// position of `Unit::after[i]`, likewise for `requires`.
///
/// Comparison always succeeds so that two units with the same semantic
/// definition are `==` no matter how their files were laid out.
#[derive(Debug, Clone, Default)]
pub(super) struct DepLocations {
    pub(super) after: Vec<Pos>,
    pub(super) requires: Vec<Pos>,
    pub(super) wants: Vec<Pos>,
    /// `[network]`: the `networks` list (or `mode`), each `ports` entry, `ipv4`.
    pub(super) networks: Pos,
    pub(super) ports: Vec<Pos>,
    pub(super) ipv4: Pos,
}

impl PartialEq for DepLocations {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DepLocations {}

/// Signals are hashed/serialised by name so the hash does not depend on
/// nix's internal representation.
fn serialize_signal<S: Serializer>(signal: &Signal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(signal.as_str())
}

/// The fields that make up a unit's semantic definition (everything except
/// name, path, hash and source locations).
#[derive(Debug, Serialize)]
struct Canonical<'a> {
    description: &'a str,
    after: &'a [String],
    requires: &'a [String],
    /// Skipped when empty, so units without `wants` keep their hash.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    wants: &'a [String],
    service: &'a Service,
    logs: &'a LogLimits,
    container: &'a ContainerSpec,
    /// `None` (serialised as `null`) when no limit is set, so units without
    /// limits keep the hash they had before `[resources]` existed.
    resources: Option<&'a ResourceSpec>,
    /// Skipped when absent, so units without `[health]` keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a HealthSpec>,
    /// Skipped for host networking, so units without `[network]` keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<&'a NetworkSpec>,
}

impl Unit {
    /// FNV-1a-64 over a JSON serialisation of the semantic definition,
    /// rendered as the top 48 bits in 12 lowercase hex digits.
    ///
    /// Hashing the parsed model (not the file bytes) means reformatting,
    /// comments and key order never look like a change. Struct fields
    /// serialise in declaration order and maps are `BTreeMap`s, so the
    /// serialisation is deterministic.
    pub fn compute_hash(&self) -> String {
        let canonical = Canonical {
            description: &self.description,
            after: &self.after,
            requires: &self.requires,
            wants: &self.wants,
            service: &self.service,
            logs: &self.logs,
            container: &self.container,
            resources: Some(&self.resources).filter(|r| !r.is_empty()),
            health: self.health.as_ref(),
            network: Some(&self.network).filter(|n| !n.is_default()),
        };
        // Serialising plain structs, strings, numbers and BTreeMaps with
        // string keys cannot fail; fall back to Debug just in case.
        let bytes = serde_json::to_vec(&canonical)
            .unwrap_or_else(|_| format!("{canonical:?}").into_bytes());
        format!("{:012x}", fnv1a64(&bytes) >> 16)
    }
}

/// True when `a` and `b` have the same definition apart from what supd applies to
/// a running unit (or reads only when it starts, `wants`): its `resources` (written to its cgroup) and the settings of
/// an existing `[health]` check (its probes start over). Adding or removing the
/// check changes when the unit is ready: not live. Name, path and hash are
/// ignored, like in [`Unit::compute_hash`].
pub fn same_except_live_settings(a: &Unit, b: &Unit) -> bool {
    // Destructured so that a new field must be considered here.
    let Unit {
        name: _,
        path: _,
        hash: _,
        description,
        after,
        requires,
        // Only read when the unit starts: a change applies to its next start.
        wants: _,
        service,
        logs,
        container,
        resources: _,
        health,
        network,
        deps: _,
    } = a;
    *description == b.description
        && *after == b.after
        && *requires == b.requires
        && *service == b.service
        && *logs == b.logs
        && *container == b.container
        && health.is_some() == b.health.is_some()
        && *network == b.network
}

/// 64-bit FNV-1a: tiny, dependency-free and stable across Rust versions
/// (unlike `DefaultHasher`).
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
