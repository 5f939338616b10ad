//! `[network]` -> [`NetworkSpec`], and network files -> [`NetworkDef`].
//! Checks that need other files (does the network exist, is a port or address
//! taken) run later, in `unit::netcheck`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::reader::{Reader, Value};
use crate::unit::network::{
    self, ALIASES_MAX, NETWORKS_PER_UNIT_MAX, NetworkDef, NetworkMode, NetworkSpec, PORTS_MAX,
};

pub(super) const NETWORK_KEYS: &[&str] = &["mode", "networks", "ports", "aliases", "ipv4"];
const NETWORK_FILE_KEYS: &[&str] = &["subnet", "gateway", "internal"];

const MODE_EXPECTED: &str = "\"host\", \"none\", \"bridge\" or \"unit:NAME\"";

/// The `[network]` table; `mode_written` is where `mode` was written, if it was
/// (the caller derives the mode from `namespaces` otherwise).
pub(super) struct Read {
    pub(super) spec: NetworkSpec,
    pub(super) mode_written: Option<Spanned<()>>,
    /// Where `networks`, `ports` and `ipv4` were written, for the checks that
    /// need the other files.
    pub(super) at: Locations,
}

#[derive(Default)]
pub(super) struct Locations {
    pub(super) networks: Option<super::reader::Span>,
    pub(super) ports: Vec<super::reader::Span>,
    pub(super) ipv4: Option<super::reader::Span>,
}

pub(super) fn read_network(v: Option<Value>, r: &mut Reader) -> Read {
    let Some(mut t) = r.table(v, NETWORK_KEYS) else {
        return Read {
            spec: NetworkSpec::default(),
            mode_written: None,
            at: Locations::default(),
        };
    };
    let mode = r.scalar(t.take("mode"), MODE_EXPECTED, |v| {
        parse_mode(v.string(MODE_EXPECTED)?)
    });
    let mode_written = mode.as_ref().map(|m| Spanned::new(m.span(), ()));
    let mode = mode.map(Spanned::into_inner).unwrap_or_default();
    let mut strings = |key: &str, max: usize, r: &mut Reader| -> Vec<Spanned<String>> {
        let Some(list) = r.array(t.take(key), "an array of strings", key, max) else {
            return Vec::new();
        };
        r.each(list.into_inner(), |r, v| r.string(Some(v)))
    };
    let networks_written = strings("networks", NETWORKS_PER_UNIT_MAX, r);
    let ports = strings("ports", PORTS_MAX, r);
    let aliases = strings("aliases", ALIASES_MAX, r);
    let ipv4 = r.string(t.take("ipv4"));

    let mut networks = Vec::new();
    for n in &networks_written {
        match network::check_network_name(n.get_ref()) {
            Err(msg) => r.report(n.span(), msg),
            Ok(()) if networks.contains(n.get_ref()) => r.report(
                n.span(),
                format!("network {:?} is listed twice", n.get_ref()),
            ),
            Ok(()) => networks.push(n.get_ref().clone()),
        }
    }
    let bridge = mode == NetworkMode::Bridge;
    if !bridge {
        let only_bridge = |what: &str| {
            format!(
                "{what} needs mode = \"bridge\" (the unit's mode is {:?})",
                mode.shown()
            )
        };
        if let Some(n) = networks_written.first() {
            r.report(n.span(), only_bridge("networks"));
        }
        if let Some(a) = aliases.first() {
            r.report(a.span(), only_bridge("aliases"));
        }
        if let Some(i) = &ipv4 {
            r.report(i.span(), only_bridge("ipv4"));
        }
        if let Some(p) = ports.first() {
            let why = match &mode {
                NetworkMode::Host => {
                    "with host networking the service binds the host's ports itself"
                }
                NetworkMode::None => "its namespace has no way in but lo",
                // Ports of a unit sharing another's namespace are that unit's to publish.
                NetworkMode::Unit(peer) => {
                    &format!("publish them in unit {peer:?}, whose network it shares")
                }
                NetworkMode::Bridge => "",
            };
            r.report(
                p.span(),
                format!(
                    "ports can only be published for mode = \"bridge\" (the unit's mode is {:?}): {why}",
                    mode.shown()
                ),
            );
        }
    } else if networks.is_empty() && networks_written.is_empty() {
        networks.push(network::DEFAULT_NETWORK.to_owned());
    }
    let at = Locations {
        networks: networks_written.first().map(Spanned::span),
        ports: ports.iter().map(Spanned::span).collect(),
        ipv4: ipv4.as_ref().map(Spanned::span),
    };
    let ports = ports
        .iter()
        .filter_map(|p| match network::parse_port(p.get_ref()) {
            Ok(spec) => Some(spec),
            Err(msg) => {
                r.report(p.span(), msg);
                None
            }
        })
        .collect();
    let aliases = aliases
        .iter()
        .filter_map(|a| match network::check_alias(a.get_ref()) {
            Ok(()) => Some(a.get_ref().clone()),
            Err(msg) => {
                r.report(a.span(), msg);
                None
            }
        })
        .collect();
    let ipv4 = ipv4.and_then(|s| match s.get_ref().parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            r.report(
                s.span(),
                format!("ipv4 {:?} is not an IPv4 address", s.get_ref()),
            );
            None
        }
    });
    Read {
        spec: NetworkSpec {
            mode,
            networks,
            ports,
            aliases,
            ipv4,
            attached: Vec::new(),
        },
        mode_written,
        at,
    }
}

/// Makes `mode` and `[container]` agree: `none` and `bridge` create a network
/// namespace, `unit:NAME` joins one, `host` neither; without `mode` it is derived
/// from `namespaces` (`"net"` listed: `none`).
pub(super) fn reconcile(
    unit: &str,
    spec: &mut NetworkSpec,
    mode_at: Option<super::reader::Span>,
    container: &mut crate::unit::ContainerSpec,
    r: &mut Reader,
) {
    use crate::unit::Namespace::Net;
    let Some(at) = mode_at else {
        if container.namespaces.contains(&Net) {
            spec.mode = NetworkMode::None;
        }
        return;
    };
    let shown = spec.mode.shown();
    if container.join.contains_key(&Net) {
        r.report(
            at.clone(),
            format!(
                "mode = {shown:?} conflicts with [container] join.net: remove one \
                 (mode = \"unit:NAME\" joins another unit's network and survives its restarts)"
            ),
        );
        return;
    }
    match &spec.mode {
        NetworkMode::Host | NetworkMode::Unit(_) if container.namespaces.contains(&Net) => {
            r.report(
                at,
                format!(
                    "mode = {shown:?} conflicts with \"net\" in [container] namespaces: \
                     remove \"net\" from namespaces"
                ),
            );
        }
        NetworkMode::Unit(peer) if peer == unit => {
            r.report(at, "mode = \"unit:NAME\" must name another unit");
        }
        NetworkMode::Host | NetworkMode::Unit(_) => {}
        NetworkMode::Bridge if !container.namespaces.contains(&crate::unit::Namespace::Mnt) => {
            r.report(
                at,
                "mode = \"bridge\" needs a mount namespace (its names come in /etc/hosts): \
                 keep \"mnt\" in [container] namespaces",
            );
        }
        NetworkMode::None | NetworkMode::Bridge => {
            container.namespaces.insert(Net);
        }
    }
}

fn parse_mode(s: &str) -> Result<NetworkMode, String> {
    match s {
        "host" => Ok(NetworkMode::Host),
        "none" => Ok(NetworkMode::None),
        "bridge" => Ok(NetworkMode::Bridge),
        _ => match s.strip_prefix("unit:") {
            Some(name) if super::check_name(name).is_ok() => Ok(NetworkMode::Unit(name.to_owned())),
            Some(name) => Err(format!("mode {s:?}: {name:?} is not a valid unit name")),
            None => Err(format!(
                "unknown network mode {s:?}, expected {MODE_EXPECTED}"
            )),
        },
    }
}

/// A network file's text -> its definition. `name` is the file name without
/// `.network.toml`.
pub(super) fn read_network_file(
    name: &str,
    doc: Spanned<DeTable>,
    r: &mut Reader,
) -> Option<NetworkDef> {
    if let Err(msg) = network::check_network_name(name) {
        r.report(0..0, msg);
    }
    let root = Spanned::new(0..0, DeValue::Table(doc.into_inner()));
    let mut t = r.table(Some(root), NETWORK_FILE_KEYS)?;
    let subnet = r.string(t.take("subnet"));
    let gateway = r.string(t.take("gateway"));
    let internal = r
        .boolean(t.take("internal"))
        .is_some_and(Spanned::into_inner);
    let subnet = match &subnet {
        None => NetworkDef::builtin_default().subnet,
        Some(s) => match s.get_ref().parse::<Ipv4Net>() {
            Ok(net) if net.prefix_len() <= 30 => match reserved(&net.trunc()) {
                None => net.trunc(),
                Some(what) => {
                    r.report(
                        s.span(),
                        format!(
                            "subnet {} is {what}: use a private range such as 10.90.0.0/24",
                            net.trunc()
                        ),
                    );
                    return None;
                }
            },
            Ok(_) => {
                r.report(
                    s.span(),
                    "subnet is too small: use a prefix of /30 or shorter",
                );
                return None;
            }
            Err(_) => {
                r.report(
                    s.span(),
                    format!(
                        "subnet {:?} is not an IPv4 CIDR like \"10.90.0.0/24\"",
                        s.get_ref()
                    ),
                );
                return None;
            }
        },
    };
    let gateway = match gateway {
        None => network::first_host(&subnet),
        Some(g) => match g.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) if usable(&subnet, ip) => ip,
            Ok(ip) => {
                r.report(
                    g.span(),
                    format!("gateway {ip} is not a usable address of subnet {subnet}"),
                );
                return None;
            }
            Err(_) => {
                r.report(
                    g.span(),
                    format!("gateway {:?} is not an IPv4 address", g.get_ref()),
                );
                return None;
            }
        },
    };
    Some(NetworkDef {
        name: name.to_owned(),
        subnet,
        gateway,
        internal,
    })
}

/// Why a subnet cannot be a network's: it reaches into addresses that mean
/// something else (this host, link-local, multicast, reserved), or is too wide.
fn reserved(net: &Ipv4Net) -> Option<&'static str> {
    const SPECIAL: [(&str, &str); 5] = [
        ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
    ];
    if net.prefix_len() < 8 {
        return Some("wider than /8");
    }
    SPECIAL.iter().find_map(|(range, what)| {
        let range: Ipv4Net = range.parse().ok()?;
        crate::unit::network::overlaps(&range, net).then_some(*what)
    })
}

/// Inside the subnet and neither its network nor its broadcast address.
pub(crate) fn usable(subnet: &Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}
