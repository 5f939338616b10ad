//! A small synchronous rtnetlink client: the few link, address and route requests
//! sup makes, built from `netlink-packet-route`'s message types and sent on a
//! `netlink-sys` socket. Synchronous because its two users are a blocking thread
//! of supd and the single-threaded spawn helper (no runtime there); each request
//! waits for the kernel's acknowledgement, so an error belongs to its request.
//!
//! A socket belongs to the network namespace of the thread that opened it: the
//! helper opens one in the host's namespace (the bridge side) and the container
//! opens its own (the `eth0` side).

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A failed request: what was asked, and the kernel's errno.
#[derive(Debug, thiserror::Error)]
#[error("netlink: {what}: {source}")]
pub struct NetlinkError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// An open rtnetlink socket in the caller's network namespace.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

/// A link as listed by [`Netlink::links`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
}

type Result<T> = std::result::Result<T, NetlinkError>;

/// An IPv4 `address/prefix` on link `index`, as added or deleted.
fn address_message(index: u32, address: Ipv4Addr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(address.into()));
    msg.attributes
        .push(AddressAttribute::Address(address.into()));
    msg
}

fn link_of(link: LinkMessage) -> Link {
    let mut out = Link {
        index: link.header.index,
        name: String::new(),
        alias: None,
    };
    for attr in link.attributes {
        match attr {
            LinkAttribute::IfName(n) => out.name = n,
            LinkAttribute::IfAlias(a) => out.alias = Some(a),
            _ => {}
        }
    }
    out
}

impl Netlink {
    pub fn open() -> Result<Netlink> {
        let fail = |source| NetlinkError {
            what: "open socket".into(),
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "list links",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .map(link_of)
            .collect())
    }

    /// The index of the link called `name`, if there is one.
    pub fn index_of(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self.find(name)?.map(|l| l.index))
    }

    /// The link called `name`, if there is one.
    pub fn find(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let what = format!("find link {name}");
        match self.request(RouteNetlinkMessage::GetLink(msg), 0, &what) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link_of(link)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge (`EEXIST` if it is there already).
    pub fn add_bridge(&mut self, name: &str, alias: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create(
            RouteNetlinkMessage::NewLink(msg),
            &format!("create bridge {name}"),
        )?;
        self.set_alias(name, alias)
    }

    /// Creates a veth pair: `host` here, in `bridge`, and `peer` (with MAC address
    /// `peer_mac`) directly in the network namespace of process `peer_pid`, so it
    /// is never visible on the host.
    pub fn add_veth(
        &mut self,
        host: &str,
        alias: &str,
        bridge: u32,
        peer: &str,
        peer_mac: [u8; 6],
        peer_pid: u32,
    ) -> Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg.attributes.push(LinkAttribute::NetNsPid(peer_pid));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        msg.attributes.push(LinkAttribute::Controller(bridge));
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_owned()));
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        let what = format!("create veth {host}");
        self.create(RouteNetlinkMessage::NewLink(msg), &what)?;
        // The kernel ignores an alias given at creation.
        self.set_alias(host, alias)
    }

    pub fn set_alias(&mut self, name: &str, alias: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_owned()));
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            0,
            &format!("name link {name}"),
        )
        .map(drop)
    }

    /// Sets the link up.
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            0,
            &format!("set {name} up"),
        )
        .map(drop)
    }

    /// Deletes a link; one that is already gone is not an error.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(
            RouteNetlinkMessage::DelLink(msg),
            0,
            &format!("delete {name}"),
        ) {
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Adds `address/prefix` to link `index` (`EEXIST` if it has it).
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> Result<()> {
        let msg = address_message(index, address, prefix);
        let what = format!("add address {address}/{prefix}");
        self.create(RouteNetlinkMessage::NewAddress(msg), &what)
    }

    /// Every IPv4 address of the namespace: (link index, address, prefix length).
    pub fn addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(msg),
            NLM_F_DUMP,
            "list addresses",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .filter_map(|a| {
                let ip = a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(std::net::IpAddr::V4(ip))
                    | AddressAttribute::Address(std::net::IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
                Some((a.header.index, ip, a.header.prefix_len))
            })
            .collect())
    }

    /// Removes `address/prefix` from link `index`.
    pub fn delete_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> Result<()> {
        let msg = address_message(index, address, prefix);
        let what = format!("delete address {address}/{prefix}");
        self.request(RouteNetlinkMessage::DelAddress(msg), 0, &what)
            .map(drop)
    }

    /// The default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.create(
            RouteNetlinkMessage::NewRoute(msg),
            &format!("add default route via {gateway}"),
        )
    }

    fn create(&mut self, msg: RouteNetlinkMessage, what: &str) -> Result<()> {
        self.request(msg, NLM_F_CREATE | NLM_F_EXCL, what).map(drop)
    }

    /// Sends one request and reads until its acknowledgement (or, for a dump, its
    /// end), returning the messages that came with it.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let fail = |source: io::Error| NetlinkError {
            what: what.to_owned(),
            source,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(fail)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full().map_err(fail)?;
            let mut offset = 0;
            while offset < bytes.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
                    .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number != self.sequence {
                    offset += length.max(1);
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(fail(io::Error::from_raw_os_error(-code.get()))),
                        };
                    }
                    NetlinkPayload::Done(_) if dump => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }
}
