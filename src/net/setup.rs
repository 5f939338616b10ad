//! The kernel calls of bridge networking, each a small step with its error.
//! Runs in supd's blocking threads (bridges, files, ports, nft) and in the spawn
//! helper and container (veths, addresses).

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::netlink::{Netlink, NetlinkError};
use super::{ALIAS_PREFIX, Attachment, BRIDGE_PREFIX};
use crate::unit::{NetworkDef, PortSpec, Protocol};

/// Bridge creation and file rewrites from concurrent starts and loads go one at
/// a time.
static NET_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    NET_LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates `def`'s bridge with its gateway address if missing, sets it up, and
/// sets the sysctls it needs: `route_localnet` (ports published on 127.0.0.1)
/// and, for a network with egress, `ip_forward`.
pub fn ensure_bridge(def: &NetworkDef) -> Result<(), String> {
    let _held = lock();
    let bridge = def.bridge();
    let fail = |e: NetlinkError| format!("network {:?}: {e}", def.name);
    let mut nl = Netlink::open().map_err(fail)?;
    let links = nl.links().map_err(fail)?;
    let addresses = nl.addresses().map_err(fail)?;
    // A subnet the host already uses elsewhere would take over its routes.
    let subnet = def.subnet;
    for (index, ip, prefix) in &addresses {
        let Some(link) = links.iter().find(|l| l.index == *index) else {
            continue;
        };
        // Other networks' bridges: their subnets were checked against this one
        // at load (a stale one is about to be removed).
        let ours = link
            .alias
            .as_deref()
            .is_some_and(|a| a.starts_with(ALIAS_PREFIX));
        if link.name == "lo" || ours {
            continue;
        }
        let theirs = ipnet::Ipv4Net::new(*ip, *prefix).map(|n| n.trunc()).ok();
        if theirs.map_or(subnet.contains(ip), |n| {
            crate::unit::network::overlaps(&subnet, &n)
        }) {
            return Err(format!(
                "network {:?}: subnet {subnet} overlaps {ip}/{prefix} of interface {}: \
                 choose another subnet in {}.network.toml",
                def.name, link.name, def.name
            ));
        }
    }
    let index = match links.iter().find(|l| l.name == bridge) {
        Some(link) => link.index,
        None => {
            let alias = format!("{ALIAS_PREFIX}network {}", def.name);
            nl.add_bridge(&bridge, &alias).map_err(fail)?;
            nl.index_of(&bridge)
                .map_err(fail)?
                .ok_or_else(|| format!("network {:?}: bridge {bridge} vanished", def.name))?
        }
    };
    // An edited subnet leaves the old gateway address behind: it goes.
    let prefix = def.subnet.prefix_len();
    for (_, ip, p) in addresses.iter().filter(|(i, ..)| *i == index) {
        if (*ip, *p) != (def.gateway, prefix) {
            nl.delete_address(index, *ip, *p).map_err(fail)?;
        }
    }
    match nl.add_address(index, def.gateway, prefix) {
        Err(e) if e.errno() != Some(libc::EEXIST) => return Err(fail(e)),
        _ => {}
    }
    nl.set_up(&bridge).map_err(fail)?;
    let sysctl = |path: &str| {
        std::fs::write(path, "1").map_err(|e| format!("network {:?}: write {path}: {e}", def.name))
    };
    sysctl(&format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))?;
    if !def.internal {
        let forwarding = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(forwarding).is_ok_and(|v| v.trim() == "0") {
            FORWARDING_IS_OURS.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        sysctl(forwarding)?;
    }
    Ok(())
}

/// supd turned `ip_forward` on (it was off): the host forwards nothing but its
/// units' traffic, as before (see `firewall`).
static FORWARDING_IS_OURS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

pub fn forwarding_is_ours() -> bool {
    FORWARDING_IS_OURS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Deletes every bridge supd made that is not in `keep` (networks removed, or
/// left by a supd that was killed).
pub fn remove_bridges_except(keep: &[String]) -> Result<Vec<String>, String> {
    let _held = lock();
    let mut nl = Netlink::open().map_err(|e| e.to_string())?;
    let links = nl.links().map_err(|e| e.to_string())?;
    let mut removed = Vec::new();
    for link in links {
        let ours = link.name.starts_with(BRIDGE_PREFIX)
            && link
                .alias
                .as_deref()
                .is_some_and(|a| a.starts_with(ALIAS_PREFIX));
        if ours && !keep.contains(&link.name) {
            nl.delete(&link.name).map_err(|e| e.to_string())?;
            removed.push(link.name);
        }
    }
    Ok(removed)
}

/// Writes `text` into `path` in place (same inode: a bind mount of it sees the
/// new text), only if it differs. Never follows a symlink.
pub fn write_in_place(path: &Path, text: &str) -> io::Result<()> {
    let _held = lock();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut old = String::new();
    // Not UTF-8 (someone else's bytes): rewritten below.
    let _ = file.read_to_string(&mut old);
    if old == text {
        return Ok(());
    }
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(text.as_bytes())
}

/// Holds each published host port with a listening socket while the unit runs,
/// so that another program cannot take it (its traffic would be DNAT'ed away
/// from it anyway) and a port already in use is a clear start error.
pub fn reserve_ports(ports: &[PortSpec]) -> Result<Vec<(PortSpec, OwnedFd)>, String> {
    let mut held = Vec::new();
    for p in ports {
        let ip = p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        let addr = std::net::SocketAddrV4::new(ip, p.host_port);
        let bound = match p.protocol {
            Protocol::Tcp => std::net::TcpListener::bind(addr).map(OwnedFd::from),
            Protocol::Udp => std::net::UdpSocket::bind(addr).map(OwnedFd::from),
        };
        let fd = bound.map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AddrInUse {
                ": the port is in use by a process outside sup (see `ss -ltnup`)"
            } else {
                ""
            };
            format!("cannot publish port {p}: {e}{hint}")
        })?;
        held.push((*p, fd));
    }
    Ok(held)
}

/// In the helper, before the child runs: one veth pair per interface, the host
/// end up in its bridge, the other end created directly in the child's network
/// namespace. A leftover host end of the same name (the unit's previous
/// container, whose namespace the kernel is still tearing down) is replaced.
pub fn create_veths(attachment: &Attachment, child: u32) -> Result<(), NetlinkError> {
    let mut nl = Netlink::open()?;
    for iface in &attachment.interfaces {
        let bridge = nl.index_of(&iface.bridge)?.ok_or_else(|| NetlinkError {
            what: format!("find bridge {}", iface.bridge),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        let mac = mac_of(iface.address);
        let add = |nl: &mut Netlink| {
            nl.add_veth(
                &iface.host_name,
                &iface.alias,
                bridge,
                &iface.name,
                mac,
                child,
            )
        };
        match add(&mut nl) {
            // Only a leftover of this very unit is replaced; anything else is an
            // error, never deleted.
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                let alias = nl.find(&iface.host_name)?.and_then(|l| l.alias);
                if alias.as_deref() != Some(iface.alias.as_str()) {
                    return Err(e);
                }
                nl.delete(&iface.host_name)?;
                add(&mut nl)?;
            }
            other => other?,
        }
    }
    Ok(())
}

/// The MAC address of a container interface with `address`: derived from the
/// address (locally administered, as Docker's `02:42:` + the IPv4 address), so a
/// unit restarted on the same address has the same MAC too, and its peers' ARP
/// entries for it stay right. A random one would leave them sending to the old
/// container's MAC until their entry goes stale (up to about 30 s).
pub fn mac_of(address: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x53, a, b, c, d]
}

/// In the container's first process, in its own network namespace: `lo` and
/// every `ethN` up with its address, and the default route.
pub fn configure_inside(attachment: &Attachment) -> Result<(), NetlinkError> {
    let mut nl = Netlink::open()?;
    nl.set_up("lo")?;
    for iface in &attachment.interfaces {
        let index = nl.index_of(&iface.name)?.ok_or_else(|| NetlinkError {
            what: format!("find {}", iface.name),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        nl.add_address(index, iface.address, iface.prefix)?;
        nl.set_up(&iface.name)?;
    }
    for iface in &attachment.interfaces {
        if let Some(gateway) = iface.gateway {
            nl.add_default_route(gateway)?;
            break;
        }
    }
    Ok(())
}

/// How long `nft` may take to apply supd's table.
const NFT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies an nft JSON transaction with `nft -j -f -`, as a child of supd
/// registered with its reaper.
pub fn apply_nft(
    registry: &crate::reaper::Registry,
    rules: &nftables::schema::Nftables,
) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let json = serde_json::to_vec(rules).map_err(|e| format!("encode nft rules: {e}"))?;
    let spawned = registry.spawn_watched(|| {
        let child = Command::new("nft")
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok::<_, io::Error>((child.id() as i32, child))
    });
    let (mut child, exit) = spawned.map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            " (install nftables: bridge networks need `nft` in supd's PATH)"
        } else {
            ""
        };
        format!("run nft: {e}{hint}")
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows as nft's own error below.
        let _ = stdin.write_all(&json);
    }
    let mut errors = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(64 * 1024).read_to_string(&mut errors);
    }
    let status = match exit.recv_timeout(NFT_TIMEOUT) {
        Ok(status) => status,
        Err(_) => {
            // Not reaped yet (else its status would have come): still our child.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(format!("nft did not finish within {NFT_TIMEOUT:?}"));
        }
    };
    match status {
        crate::supervise::ExitStatus::Code(0) => Ok(()),
        other => Err(format!("nft failed ({other}): {}", errors.trim())),
    }
}
