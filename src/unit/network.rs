//! The validated model of a unit's `[network]` table and of network files
//! (`NAME.network.toml`), plus the pure parsers of their values (published
//! ports, subnets). See docs/networking.md.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Whether two subnets share an address: CIDR blocks overlap only when one
/// contains the other.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The built-in network a `mode = "bridge"` unit joins when it names none.
pub const DEFAULT_NETWORK: &str = "default";
/// Subnet of the built-in `default` network (podman uses 10.88.0.0/16; the next
/// /16 keeps both usable side by side). A `default.network.toml` replaces it.
pub const DEFAULT_SUBNET: &str = "10.89.0.0/16";
/// Longest network name: the bridge is `sup-NAME` and interface names have at
/// most 15 bytes.
pub const NETWORK_NAME_MAX: usize = 11;
/// Most networks one unit may be on (`eth0`..`eth7`).
pub const NETWORKS_PER_UNIT_MAX: usize = 8;
/// Most published ports and aliases per unit.
pub const PORTS_MAX: usize = 256;
pub const ALIASES_MAX: usize = 64;

/// How a unit is networked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The host's network namespace (no `net` namespace created).
    #[default]
    Host,
    /// A network namespace of its own with only `lo`.
    None,
    /// A network namespace attached to bridges: one `ethN` per network.
    Bridge,
    /// The network namespace of the named unit's running container.
    Unit(String),
}

impl NetworkMode {
    /// The unit-file spelling.
    pub fn shown(&self) -> String {
        match self {
            NetworkMode::Host => "host".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Bridge => "bridge".into(),
            NetworkMode::Unit(name) => format!("unit:{name}"),
        }
    }
}

/// `[network]`; [`NetworkSpec::default()`] (host networking) when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub mode: NetworkMode,
    /// Bridge mode: the networks, in `ethN` order; the first gives the default
    /// route. Empty otherwise.
    pub networks: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub aliases: Vec<String>,
    /// A fixed address (on the first network).
    pub ipv4: Option<Ipv4Addr>,
    /// The definitions of `networks`, filled in when the directory is loaded, so
    /// that editing a network changes (and restarts) the units on it.
    pub attached: Vec<NetworkDef>,
}

impl NetworkSpec {
    pub fn is_default(&self) -> bool {
        *self == NetworkSpec::default()
    }
}

/// One network file, or the built-in default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    #[serde(with = "net_str")]
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// No egress: no NAT, and nothing forwarded between the bridge and elsewhere.
    pub internal: bool,
}

impl NetworkDef {
    /// The built-in `default` network.
    pub fn builtin_default() -> NetworkDef {
        let subnet: Ipv4Net = DEFAULT_SUBNET.parse().unwrap_or_default();
        NetworkDef {
            name: DEFAULT_NETWORK.to_owned(),
            gateway: first_host(&subnet),
            subnet,
            internal: false,
        }
    }

    /// The bridge's interface name.
    pub fn bridge(&self) -> String {
        format!("sup-{}", self.name)
    }
}

/// The first usable address of a subnet: the default gateway.
pub fn first_host(subnet: &Ipv4Net) -> Ipv4Addr {
    subnet.hosts().next().unwrap_or(subnet.network())
}

mod net_str {
    use ipnet::Ipv4Net;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(net: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One entry of `ports`: `[host_ip:]host_port:container_port[/tcp|udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    /// `None`: every address of the host (including 127.0.0.1).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// Whether both would receive the same packets.
    pub fn clashes_with(&self, other: &PortSpec) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

pub const PORT_EXPECTED: &str = "\"[host_ip:]host_port:container_port[/tcp|udp]\", e.g. \"8080:80\" or \"127.0.0.1:5353:53/udp\"";

/// Parses one `ports` entry.
pub fn parse_port(text: &str) -> Result<PortSpec, String> {
    let bad = |why: &str| format!("invalid port {text:?}: {why}; expected {PORT_EXPECTED}");
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Protocol::Tcp),
        Some((rest, "udp")) => (rest, Protocol::Udp),
        Some((_, other)) => return Err(bad(&format!("unknown protocol {other:?}"))),
        None => (text, Protocol::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host_port, container_port) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
            (Some(ip).filter(|ip| !ip.is_unspecified()), *h, *c)
        }
        _ => return Err(bad("both a host port and a container port are needed")),
    };
    let port = |s: &str| {
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
        match s.parse::<u16>() {
            Ok(p) if digits => Ok(p),
            _ => Err(bad(&format!("{s:?} is not a port between 1 and 65535"))),
        }
    };
    Ok(PortSpec {
        host_ip,
        host_port: port(host_port)?,
        container_port: port(container_port)?,
        protocol,
    })
}

/// Network names become interface names: `sup-NAME`.
pub fn check_network_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= NETWORK_NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid network name {name:?}: use at most {NETWORK_NAME_MAX} characters from \
             [a-z0-9_-], starting with a letter or digit (the bridge is named sup-NAME)"
        ))
    }
}

/// Host names (unit names are already valid; aliases must be too).
pub fn check_alias(alias: &str) -> Result<(), String> {
    let ok = !alias.is_empty()
        && alias.len() <= 63
        && alias.starts_with(|c: char| c.is_ascii_alphanumeric())
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid alias {alias:?}: a host name of at most 63 characters from [A-Za-z0-9._-]"
        ))
    }
}

/// Where a network definition came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFile {
    pub def: NetworkDef,
    pub path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_like_docker() {
        let p = |s| parse_port(s).map(|p| p.to_string());
        let table = [
            ("8080:80", Ok("8080:80/tcp")),
            ("127.0.0.1:5353:53/udp", Ok("127.0.0.1:5353:53/udp")),
            ("0.0.0.0:1:2", Ok("1:2/tcp")),
            ("80", Err("both a host port")),
            ("0:80", Err("not a port")),
            ("+80:80", Err("not a port")),
            ("080:80", Err("not a port")),
            ("70000:80", Err("not a port")),
            ("a:1:2", Err("not an IPv4")),
            ("1:2/sctp", Err("unknown protocol")),
            ("1:2:3:4", Err("both a host port")),
        ];
        for (input, want) in table {
            match (p(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn clashes() {
        let p = |s| parse_port(s).unwrap();
        assert!(p("80:1").clashes_with(&p("127.0.0.1:80:2")));
        assert!(!p("127.0.0.2:80:1").clashes_with(&p("127.0.0.1:80:2")));
        assert!(!p("80:1/udp").clashes_with(&p("80:1")));
    }

    #[test]
    fn names() {
        assert!(check_network_name("backend").is_ok());
        assert!(check_network_name("backend-long").is_err());
        assert!(check_network_name("Back").is_err());
        assert!(check_alias("db.internal").is_ok());
        assert!(check_alias("-x").is_err());
    }

    #[test]
    fn builtin_default() {
        let d = NetworkDef::builtin_default();
        assert_eq!(d.subnet.to_string(), "10.89.0.0/16");
        assert_eq!(d.gateway, Ipv4Addr::new(10, 89, 0, 1));
        assert_eq!(d.bridge(), "sup-default");
    }
}
