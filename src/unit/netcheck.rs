//! Network checks across files, run after every unit and network file has been
//! parsed: the networks a unit names exist, fixed addresses fit their subnet and
//! are not taken twice, no two units publish the same host port, and a unit
//! sharing another's namespace names one that has its own. Each unit that
//! passes gets the definitions of its networks (so editing a network changes its
//! units' hash, and a reload restarts them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use super::error::UnitError;
use super::model::{Pos, Unit};
use super::network::{NetworkDef, NetworkMode, PortSpec};

/// Drops units with network problems (each with an error) and fills in
/// `network.attached` for the rest. `networks` holds every valid network
/// (the built-in `default` included unless a file replaced it); `broken` names
/// network files that failed to parse.
pub(super) fn check_networks(
    units: &mut BTreeMap<String, Unit>,
    networks: &BTreeMap<String, NetworkDef>,
    broken: &BTreeSet<String>,
    incumbents: &BTreeSet<String>,
    errors: &mut Vec<UnitError>,
) {
    let mut rejected = BTreeSet::new();
    let mut report = |unit: &Unit, at: Pos, message: String| {
        rejected.insert(unit.name.clone());
        errors.push(UnitError {
            unit: unit.name.clone(),
            path: unit.path.clone(),
            line: at.line,
            column: at.column,
            message,
        });
    };
    // Fixed addresses and ports, first come (in name order) first served.
    let mut fixed: BTreeMap<(String, Ipv4Addr), String> = BTreeMap::new();
    let mut published: Vec<(PortSpec, String)> = Vec::new();
    // Incumbents first: what they hold, they keep.
    let (first, then): (Vec<&Unit>, Vec<&Unit>) =
        units.values().partition(|u| incumbents.contains(&u.name));
    for unit in first.into_iter().chain(then) {
        let net = &unit.network;
        let at = &unit.deps;
        for name in &net.networks {
            if networks.contains_key(name) {
                continue;
            }
            let why = if broken.contains(name) {
                format!("network {name:?} is invalid: see the errors of {name}.network.toml")
            } else {
                format!(
                    "no network {name:?}: define it in {name}.network.toml in the units directory"
                )
            };
            report(unit, at.networks, why);
        }
        if let (Some(ip), Some(first)) = (net.ipv4, net.networks.first())
            && let Some(def) = networks.get(first)
        {
            if !super::parse::network::usable(&def.subnet, ip) || ip == def.gateway {
                let message = format!(
                    "ipv4 {ip} is not a free address of network {first:?} ({}, gateway {})",
                    def.subnet, def.gateway
                );
                report(unit, at.ipv4, message);
            } else if let Some(owner) = fixed.get(&(first.clone(), ip)) {
                report(
                    unit,
                    at.ipv4,
                    format!("ipv4 {ip} is already unit {owner:?}'s"),
                );
            } else {
                fixed.insert((first.clone(), ip), unit.name.clone());
            }
        }
        for (i, port) in net.ports.iter().enumerate() {
            let pos = at.ports.get(i).copied().unwrap_or(at.networks);
            if let Some((_, owner)) = published.iter().find(|(p, _)| p.clashes_with(port)) {
                let message = format!(
                    "host port {} ({port}) is already published by unit {owner:?}",
                    port.host_port
                );
                report(unit, pos, message);
            } else if net.ports[..i].iter().any(|p| p.clashes_with(port)) {
                report(
                    unit,
                    pos,
                    format!("host port {} is published twice", port.host_port),
                );
            }
        }
        for port in &net.ports {
            published.push((*port, unit.name.clone()));
        }
        if let NetworkMode::Unit(peer) = &net.mode
            && let Some(peer_unit) = units.get(peer)
            && !matches!(
                peer_unit.network.mode,
                NetworkMode::None | NetworkMode::Bridge
            )
        {
            report(
                unit,
                at.networks,
                format!(
                    "mode = \"unit:{peer}\": unit {peer:?} has no network namespace of its own \
                     (its mode is {:?}; give it mode = \"bridge\" or \"none\")",
                    peer_unit.network.mode.shown()
                ),
            );
        }
    }
    units.retain(|name, _| !rejected.contains(name));
    for unit in units.values_mut() {
        let attached: Vec<NetworkDef> = unit
            .network
            .networks
            .iter()
            .filter_map(|n| networks.get(n).cloned())
            .collect();
        if !attached.is_empty() {
            unit.network.attached = attached;
            unit.hash = unit.compute_hash();
        }
    }
}

/// The networks of a directory: the built-in `default` unless a file replaces it.
pub(super) fn with_default(
    mut networks: BTreeMap<String, NetworkDef>,
) -> BTreeMap<String, NetworkDef> {
    networks
        .entry(super::network::DEFAULT_NETWORK.to_owned())
        .or_insert_with(NetworkDef::builtin_default);
    networks
}

/// `backend.network.toml` -> `backend`.
pub(super) fn network_file_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    file.strip_suffix(".network.toml").map(str::to_owned)
}
