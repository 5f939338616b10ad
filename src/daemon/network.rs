//! The daemon's side of bridge networking: at each load, assign addresses (kept
//! in `STATE/net/addresses.json` so they survive restarts of supd), make each
//! bridged unit's start data and hosts file, and queue the host work (files,
//! bridges, nftables) on a worker thread of its own, in load order. Starts make
//! sure their own bridges exist, so a start never waits for that queue.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::worker::SerialWorker;
use crate::net::{Attachment, Interface, NetStart, UnitNet, firewall, hosts, ipam, setup};
use crate::reaper::Registry;
use crate::unit::{NetworkDef, NetworkMode, Unit};

/// Assignments by network, then unit.
type Assigned = BTreeMap<String, BTreeMap<String, Ipv4Addr>>;

pub struct Networks {
    dir: PathBuf,
    assigned: Assigned,
    units: HashMap<String, Arc<UnitNet>>,
    /// The networks that have a bridge now (what the last load asked for).
    in_use: BTreeMap<String, NetworkDef>,
    /// Each bridged unit's published ports, at its address.
    forwards: BTreeMap<String, Vec<firewall::Forward>>,
    /// Units whose ports are published now: running, their host ports held. Only
    /// theirs are forwarded, so a unit that is stopped, or failed to get its
    /// port, never takes a port's traffic from whoever has it.
    publishing: std::collections::BTreeSet<String>,
    /// The table last asked for.
    firewall: Option<firewall::Wanted>,
    worker: SerialWorker,
    registry: Registry,
}

/// Addresses remembered for units that are gone (or not loaded this time), per
/// network: they come back to the same address unless it was taken meanwhile.
const REMEMBERED_MAX: usize = 4096;

impl Networks {
    pub fn new(state_dir: &Path, registry: Registry) -> Networks {
        let dir = state_dir.join("net");
        let assigned = std::fs::read(dir.join("addresses.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Networks {
            dir,
            assigned,
            units: HashMap::new(),
            in_use: BTreeMap::new(),
            forwards: BTreeMap::new(),
            publishing: Default::default(),
            firewall: None,
            worker: SerialWorker::new("sup-net"),
            registry,
        }
    }

    /// The start data of every bridged unit among `units`, from scratch, and the
    /// host brought in line (in the background). Returns the units whose
    /// addresses changed (a fixed `ipv4` took one): running, they must restart.
    pub fn apply<'a>(&mut self, units: impl Iterator<Item = &'a Unit> + Clone) -> Vec<String> {
        let bridged: Vec<&Unit> = units
            .clone()
            .filter(|u| u.network.mode == NetworkMode::Bridge)
            .collect();
        let mut in_use: BTreeMap<String, NetworkDef> = BTreeMap::new();
        for u in &bridged {
            for def in &u.network.attached {
                in_use.insert(def.name.clone(), def.clone());
            }
        }
        let mut assigned = Assigned::new();
        for (name, def) in &in_use {
            let wanted: Vec<ipam::Wanted> = bridged
                .iter()
                .filter(|u| u.network.networks.contains(name))
                .map(|u| ipam::Wanted {
                    unit: &u.name,
                    // A fixed address is on the unit's first network.
                    fixed: u
                        .network
                        .ipv4
                        .filter(|_| u.network.networks.first() == Some(name)),
                })
                .collect();
            let previous = self.assigned.get(name).cloned().unwrap_or_default();
            let mut now = ipam::assign(def, &wanted, &previous);
            // Units not loaded now keep their address on file, unless taken.
            let taken: std::collections::BTreeSet<Ipv4Addr> = now.values().copied().collect();
            let kept: Vec<(String, Ipv4Addr)> = previous
                .into_iter()
                .filter(|(unit, ip)| !now.contains_key(unit) && !taken.contains(ip))
                .take(REMEMBERED_MAX)
                .collect();
            now.extend(kept);
            assigned.insert(name.clone(), now);
        }
        // Networks no unit is on now are remembered as they were.
        for (name, previous) in &self.assigned {
            assigned
                .entry(name.clone())
                .or_insert_with(|| previous.clone());
        }
        let moved: Vec<String> = self
            .units
            .iter()
            .filter(|(unit, net)| {
                net.attachment.interfaces.iter().any(|i| {
                    assigned.get(&i.network).and_then(|a| a.get(*unit)) != Some(&i.address)
                })
            })
            .map(|(unit, _)| unit.clone())
            .collect();
        let resolv = resolv_text();
        let mut per_unit = HashMap::new();
        for u in &bridged {
            let interfaces: Vec<Interface> = u
                .network
                .attached
                .iter()
                .enumerate()
                .filter_map(|(i, def)| {
                    let address = *assigned.get(&def.name)?.get(&u.name)?;
                    Some(Interface {
                        network: def.name.clone(),
                        bridge: def.bridge(),
                        // Named per start: see `for_start`.
                        host_name: String::new(),
                        alias: format!(
                            "{}unit {} network {}",
                            crate::net::ALIAS_PREFIX,
                            u.name,
                            def.name
                        ),
                        name: format!("eth{i}"),
                        address,
                        prefix: def.subnet.prefix_len(),
                        gateway: (!def.internal).then_some(def.gateway),
                    })
                })
                .collect();
            // A full network leaves the unit without an address there: its
            // starts fail with that reason (see `for_start`).
            if interfaces.len() != u.network.attached.len() {
                continue;
            }
            let unit_dir = self.dir.join("units");
            let net = UnitNet {
                attachment: Attachment {
                    interfaces,
                    hosts: unit_dir.join(format!("{}.hosts", u.name)),
                    resolv: unit_dir.join(format!("{}.resolv.conf", u.name)),
                },
                networks: u.network.attached.clone(),
                ports: u.network.ports.clone(),
                hosts_text: hosts_for(u, &bridged, &assigned),
                resolv_text: resolv.clone(),
            };
            per_unit.insert(u.name.clone(), Arc::new(net));
        }
        let forwards: BTreeMap<String, Vec<firewall::Forward>> = bridged
            .iter()
            .filter_map(|u| {
                let first = u.network.networks.first()?;
                let to = *assigned.get(first)?.get(&u.name)?;
                let list = u
                    .network
                    .ports
                    .iter()
                    .map(|p| firewall::Forward { port: *p, to });
                Some((u.name.clone(), list.collect()))
            })
            .collect();
        let save = (assigned != self.assigned).then(|| assigned.clone());
        let files: Vec<Arc<UnitNet>> = per_unit
            .iter()
            .filter(|(name, net)| self.units.get(*name) != Some(*net))
            .map(|(_, net)| net.clone())
            .collect();
        let gone: Vec<String> = self
            .units
            .keys()
            .filter(|u| !per_unit.contains_key(*u))
            .cloned()
            .collect();
        let job = HostJob {
            dir: self.dir.clone(),
            save,
            files,
            gone,
            networks: Some(in_use.values().cloned().collect()),
            firewall: None,
            had_table: false,
            registry: self.registry.clone(),
        };
        self.assigned = assigned;
        self.units = per_unit;
        self.in_use = in_use;
        self.forwards = forwards;
        self.queue(job);
        moved
    }

    /// A unit's host ports are held (its service runs) or let go: its ports are
    /// forwarded, or not, from now on.
    pub fn set_publishing(&mut self, unit: &str, publishing: bool) {
        let changed = match publishing {
            true => self.publishing.insert(unit.to_owned()),
            false => self.publishing.remove(unit),
        };
        if changed {
            let job = HostJob::only_firewall(&self.dir, &self.registry);
            self.queue(job);
        }
    }

    /// Runs `job` on the worker, with the table brought up to date if it changed.
    fn queue(&mut self, mut job: HostJob) {
        let forwards = self
            .forwards
            .iter()
            .filter(|(unit, _)| self.publishing.contains(*unit))
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        let wanted = firewall::Wanted {
            networks: self.in_use.values().cloned().collect(),
            forwards,
            fence_host: false,
        };
        if self.firewall.as_ref() != Some(&wanted) {
            job.had_table = self
                .firewall
                .as_ref()
                .is_some_and(|w| !w.networks.is_empty());
            job.firewall = Some(wanted.clone());
            self.firewall = Some(wanted);
        }
        self.worker.run(move || job.run());
    }

    /// How a start of `unit` is networked; `peer_pid` is the running main process
    /// of a `mode = "unit:NAME"` unit's peer.
    pub fn for_start(
        &self,
        unit: &Unit,
        attempt: u64,
        peer_pid: Option<i32>,
    ) -> Result<Option<NetStart>, String> {
        match &unit.network.mode {
            NetworkMode::Host | NetworkMode::None => Ok(None),
            NetworkMode::Bridge => match self.units.get(&unit.name) {
                Some(net) => {
                    let mut net = UnitNet::clone(net);
                    for (i, iface) in net.attachment.interfaces.iter_mut().enumerate() {
                        iface.host_name = crate::net::veth_name(&unit.name, attempt, i);
                    }
                    Ok(Some(NetStart::Bridge(Arc::new(net))))
                }
                None => Err(format!(
                    "no free address on network(s) {}: widen the subnet",
                    unit.network.networks.join(", ")
                )),
            },
            NetworkMode::Unit(peer) => match peer_pid {
                Some(pid) => Ok(Some(NetStart::Join {
                    netns: PathBuf::from(format!("/proc/{pid}/ns/net")),
                    peer: self.units.get(peer).cloned(),
                })),
                None => Err(format!(
                    "unit {peer:?} is not running: its network namespace is joined"
                )),
            },
        }
    }

    /// Addresses of a unit, `network=address`, for status.
    pub fn addresses(&self, unit: &str) -> Vec<(String, Ipv4Addr)> {
        self.units
            .get(unit)
            .map(|n| {
                n.attachment
                    .interfaces
                    .iter()
                    .map(|i| (i.network.clone(), i.address))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// At supd's exit: its table and bridges go (blocking).
    pub async fn teardown(mut self) {
        let had_table = self
            .firewall
            .as_ref()
            .is_some_and(|w| !w.networks.is_empty());
        let registry = self.registry.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        // On the worker, after every job queued before it: a table rebuilt by a
        // late job (a unit's ports let go while stopping) would outlive supd.
        self.worker.run(move || {
            if had_table && let Err(e) = setup::apply_nft(&registry, &firewall::ruleset(None)) {
                tracing::warn!("removing supd's nftables table: {e}");
            }
            match setup::remove_bridges_except(&[]) {
                Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "bridges removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!("removing supd's bridges: {e}"),
            }
            let _ = done.send(());
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), finished).await;
    }
}

/// The host-side work of one load, done in order on the network worker.
struct HostJob {
    dir: PathBuf,
    save: Option<Assigned>,
    files: Vec<Arc<UnitNet>>,
    /// Units no longer bridged: their hosts files go.
    gone: Vec<String>,
    /// `None`: the bridges are left as they are (a firewall-only job).
    networks: Option<Vec<NetworkDef>>,
    firewall: Option<firewall::Wanted>,
    /// The previous load made a table.
    had_table: bool,
    registry: Registry,
}

impl HostJob {
    fn only_firewall(dir: &Path, registry: &Registry) -> HostJob {
        HostJob {
            dir: dir.to_owned(),
            save: None,
            files: Vec::new(),
            gone: Vec::new(),
            networks: None,
            firewall: None,
            had_table: false,
            registry: registry.clone(),
        }
    }

    fn run(self) {
        let units = self.dir.join("units");
        if let Err(e) = crate::daemon::state_dir::prepare(&self.dir)
            .and_then(|()| crate::daemon::state_dir::prepare(&units))
        {
            tracing::error!("network state directory: {e}");
            return;
        }
        if let Some(assigned) = &self.save {
            let written = serde_json::to_vec_pretty(assigned)
                .map_err(std::io::Error::other)
                .and_then(|bytes| write_atomically(&self.dir.join("addresses.json"), &bytes));
            if let Err(e) = written {
                tracing::warn!("saving network addresses: {e}");
            }
        }
        for net in &self.files {
            write_files(net);
        }
        for unit in &self.gone {
            for name in [format!("{unit}.hosts"), format!("{unit}.resolv.conf")] {
                let _ = std::fs::remove_file(units.join(name));
            }
        }
        let mut removed = Vec::new();
        if let Some(networks) = &self.networks {
            // Stale bridges first: one may still hold a subnet a network now has.
            let keep: Vec<String> = networks.iter().map(NetworkDef::bridge).collect();
            match setup::remove_bridges_except(&keep) {
                Ok(list) => removed = list,
                Err(e) => tracing::warn!("removing unused bridges: {e}"),
            }
            if !removed.is_empty() {
                tracing::info!(?removed, "bridges removed");
            }
            for def in networks {
                if let Err(e) = setup::ensure_bridge(def) {
                    tracing::error!("{e}");
                }
            }
        }
        // Without bridges (and none left over) supd has no table either: `nft`
        // is not needed on hosts that do not use bridge networking.
        let firewall = self
            .firewall
            .filter(|w| !w.networks.is_empty() || !removed.is_empty() || self.had_table);
        if let Some(mut wanted) = firewall {
            // Known once a bridge has been made (here, or by a start), and kept
            // in the state directory for the next supd (which finds it on).
            let marker = self.dir.join("ip_forward-was-off");
            if setup::forwarding_is_ours() && !marker.exists() {
                let _ = std::fs::write(&marker, "supd turned net.ipv4.ip_forward on\n");
            }
            wanted.fence_host = marker.exists();
            let rules = firewall::ruleset((!wanted.networks.is_empty()).then_some(&wanted));
            match setup::apply_nft(&self.registry, &rules) {
                Ok(()) => tracing::info!(
                    networks = wanted.networks.len(),
                    ports = wanted.forwards.len(),
                    "nftables table sup applied"
                ),
                Err(e) => {
                    tracing::error!("nftables: {e}: published ports and egress NAT do not work")
                }
            }
        }
    }
}

/// A unit's hosts and resolv.conf files, rewritten in place.
pub fn write_files(net: &UnitNet) {
    let a = &net.attachment;
    for (path, text) in [(&a.hosts, &net.hosts_text), (&a.resolv, &net.resolv_text)] {
        if let Err(e) = setup::write_in_place(path, text) {
            tracing::error!(path = %path.display(), "writing network file: {e}");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// `unit` itself first, then every other bridged unit that shares a network with
/// it, at its address on the first network they share.
fn hosts_for(unit: &Unit, bridged: &[&Unit], assigned: &Assigned) -> String {
    let names = |u: &'_ Unit| {
        let mut n: Vec<String> = vec![u.name.clone()];
        n.extend(u.network.aliases.iter().cloned());
        n
    };
    let mut lines: Vec<(Ipv4Addr, Vec<String>)> = Vec::new();
    for other in bridged {
        let shared = unit
            .network
            .networks
            .iter()
            .find(|n| other.network.networks.contains(n));
        if let Some(net) = shared
            && let Some(ip) = assigned.get(net).and_then(|a| a.get(&other.name))
        {
            let own = other.name == unit.name;
            let entry = (*ip, names(other));
            if own {
                lines.insert(0, entry);
            } else {
                lines.push(entry);
            }
        }
    }
    let entries: Vec<hosts::Entry> = lines
        .iter()
        .map(|(address, names)| hosts::Entry {
            address: *address,
            names: names.iter().map(String::as_str).collect(),
        })
        .collect();
    hosts::hosts_file(&entries)
}

fn resolv_text() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    hosts::resolv_conf(&host, upstream.as_deref())
}
