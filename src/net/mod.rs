//! Bridge networking (docs/networking.md): the pure parts (address assignment,
//! hosts files, the firewall table) and the few kernel calls that make it
//! (netlink, nft, sysctls, port reservations).
//!
//! Who does what:
//! - supd, at each load: assigns addresses, writes every bridged unit's hosts
//!   file, creates the bridges, and replaces its nftables table;
//! - a start: makes sure its bridges exist and reserves its published ports;
//! - the spawn helper: creates the veth pairs, the container end directly in
//!   the new network namespace;
//! - the container's first process: addresses, links up, the default route.

pub mod firewall;
pub mod hosts;
pub mod ipam;
pub mod netlink;
pub mod setup;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::unit::{NetworkDef, PortSpec};

/// The prefix of every interface supd creates on the host: bridges are
/// `sup-NETWORK`, host ends of veth pairs `sv` + a hash of the unit + `-N`.
pub const BRIDGE_PREFIX: &str = "sup-";
pub const VETH_PREFIX: &str = "sv";
/// Interface aliases say who made an interface and for what, so leftovers can
/// be found (`ip -d link` shows them).
pub const ALIAS_PREFIX: &str = "sup ";

/// One interface of a bridged unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub network: String,
    pub bridge: String,
    /// The host end of the veth pair.
    pub host_name: String,
    /// The host end's alias.
    pub alias: String,
    /// `ethN` inside the container.
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Set on the first interface of a non-internal network: the default route.
    pub gateway: Option<Ipv4Addr>,
}

/// What the helper and the container do to network a bridged unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub interfaces: Vec<Interface>,
    /// Files bind-mounted read-only on `/etc/hosts` and `/etc/resolv.conf`.
    pub hosts: PathBuf,
    pub resolv: PathBuf,
}

/// Everything a start of a bridged unit needs, made by supd at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitNet {
    pub attachment: Attachment,
    pub networks: Vec<NetworkDef>,
    pub ports: Vec<PortSpec>,
    pub hosts_text: String,
    pub resolv_text: String,
}

/// How a start is networked besides what the unit file says.
#[derive(Debug, Clone)]
pub enum NetStart {
    Bridge(std::sync::Arc<UnitNet>),
    /// `mode = "unit:NAME"`: NAME's network namespace, and NAME's hosts files
    /// when it is bridged.
    Join {
        netns: PathBuf,
        peer: Option<std::sync::Arc<UnitNet>>,
    },
}

/// The host end of the `index`th veth pair of start `attempt` of `unit`: `sv`, 8
/// hex digits of a hash of the unit, 4 of the attempt, the index (15 bytes, the
/// most an interface name has). A name of its own per start: the previous
/// container's veth may still exist (the kernel tears a network namespace down
/// in the background), and deleting it first would cost a start tens of
/// milliseconds of RCU waits. Two units whose hashes collide (1 in 2^32 per
/// pair) are told apart by the alias before anything is deleted.
pub fn veth_name(unit: &str, attempt: u64, index: usize) -> String {
    let hash = crate::unit::fingerprint(unit.as_bytes()) as u32;
    let attempt = attempt & 0xffff;
    format!("{VETH_PREFIX}{hash:08x}{attempt:04x}{}", index % 10)
}
