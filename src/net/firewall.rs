//! supd's nftables table, `ip sup`: egress NAT, published ports, and the walls
//! between networks. The whole table is rebuilt from the loaded units and
//! applied in one `nft -j -f -` transaction (delete and re-create), so it is
//! never half-applied and never drifts; deleting it removes every rule supd made.
//!
//! Built with the `nftables` crate's model of nft's JSON (no hand-written rule
//! syntax); `nft` itself is run as a child registered with supd's reaper (see
//! [`crate::reaper::Registry::spawn_watched`]), as supd owns the only wait.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix,
};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::unit::{NetworkDef, PortSpec};

/// The table's name (family `ip`).
pub const TABLE: &str = "sup";

/// One published port and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub port: PortSpec,
    pub to: Ipv4Addr,
}

/// What the table is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The networks that have a bridge.
    pub networks: Vec<NetworkDef>,
    pub forwards: Vec<Forward>,
    /// supd turned `ip_forward` on: forward nothing that is not a unit's.
    pub fence_host: bool,
}

/// The transaction that replaces the table with one for `wanted`; `None` builds
/// the one that only deletes it.
pub fn ruleset(wanted: Option<&Wanted>) -> Nftables<'static> {
    let table = Table {
        family: NfFamily::IP,
        name: TABLE.into(),
        handle: None,
    };
    // `add` first so `delete` never fails on a host that has no table yet.
    let mut objects = vec![
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table.clone()))),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table.clone()))),
    ];
    if let Some(wanted) = wanted {
        objects.push(NfObject::ListObject(NfListObject::Table(table)));
        objects.extend(build(wanted).into_iter().map(NfObject::ListObject));
    }
    Nftables {
        objects: objects.into(),
    }
}

fn build(w: &Wanted) -> Vec<NfListObject<'static>> {
    let mut out = vec![
        base("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
        base("output", NfChainType::NAT, NfHook::Output, -100),
        base("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
        base("forward", NfChainType::Filter, NfHook::Forward, 0),
        // Before conntrack and NAT: what a unit sends, as it sent it.
        base("guard", NfChainType::Filter, NfHook::Prerouting, -300),
        chain("ports"),
    ];
    // `route_localnet` lets 127.0.0.0/8 leave for the bridges (published ports
    // on 127.0.0.1); nothing may come from them to it (a unit with raw sockets
    // would reach the host's loopback-only services: CVE-2020-8558). Replies to
    // the published ports arrive addressed to the gateway, so they pass.
    out.push(rule(
        "guard",
        vec![
            matches(meta(MetaKey::Iifname), string("sup-*")),
            matches(field("ip", "daddr"), prefix(Ipv4Addr::LOCALHOST, 8)),
            Statement::Drop(None),
        ],
    ));
    // Published ports: only for packets to one of the host's own addresses.
    for hook in ["prerouting", "output"] {
        out.push(rule(
            hook,
            vec![matches(fib_daddr_type(), string("local")), jump("ports")],
        ));
    }
    for f in &w.forwards {
        let mut stmts = Vec::new();
        if let Some(ip) = f.port.host_ip {
            stmts.push(matches(field("ip", "daddr"), string(ip.to_string())));
        }
        let proto = f.port.protocol.as_str();
        stmts.push(matches(
            field(proto, "dport"),
            Expression::Number(f.port.host_port.into()),
        ));
        stmts.push(Statement::DNAT(Some(NAT {
            addr: Some(string(f.to.to_string())),
            family: Some(NATFamily::IP),
            port: Some(Expression::Number(f.port.container_port.into())),
            flags: None,
        })));
        out.push(rule("ports", stmts));
    }
    // Replies to published ports and to connections from 127.0.0.1 (which needs
    // `route_localnet` on the bridge) must come back through the host.
    out.push(rule(
        "postrouting",
        vec![
            is_dnat(),
            matches(field("ip", "saddr"), prefix(Ipv4Addr::LOCALHOST, 8)),
            Statement::Masquerade(None),
        ],
    ));
    // Published ports in, and replies to what units opened, pass; nothing else
    // reaches a unit from elsewhere (as Docker since 28.0): not the LAN, which
    // could route to the subnets, nor another network.
    out.push(rule("forward", vec![is_dnat(), Statement::Accept(None)]));
    out.push(rule(
        "forward",
        vec![ct_is("state", "established"), Statement::Accept(None)],
    ));
    out.push(rule(
        "forward",
        vec![ct_is("state", "related"), Statement::Accept(None)],
    ));
    if w.fence_host {
        out.push(rule(
            "forward",
            vec![
                not_matches(meta(MetaKey::Iifname), string("sup-*")),
                not_matches(meta(MetaKey::Oifname), string("sup-*")),
                Statement::Drop(None),
            ],
        ));
    }
    for net in &w.networks {
        let bridge = net.bridge();
        let subnet = || prefix(net.subnet.network(), net.subnet.prefix_len().into());
        // A unit reaching a published port of a peer on its own network through
        // the host's address (hairpin).
        out.push(rule(
            "postrouting",
            vec![
                is_dnat(),
                matches(field("ip", "saddr"), subnet()),
                matches(meta(MetaKey::Oifname), string(bridge.clone())),
                Statement::Masquerade(None),
            ],
        ));
        // Nothing new from elsewhere into the network.
        out.push(rule(
            "forward",
            vec![
                matches(meta(MetaKey::Oifname), string(bridge.clone())),
                not_matches(meta(MetaKey::Iifname), string(bridge.clone())),
                Statement::Drop(None),
            ],
        ));
        if net.internal {
            // And nothing out.
            out.push(rule(
                "forward",
                vec![
                    matches(meta(MetaKey::Iifname), string(bridge.clone())),
                    not_matches(meta(MetaKey::Oifname), string(bridge)),
                    Statement::Drop(None),
                ],
            ));
            continue;
        }
        // Egress: masquerade what leaves the network for elsewhere.
        out.push(rule(
            "postrouting",
            vec![
                matches(field("ip", "saddr"), subnet()),
                not_matches(meta(MetaKey::Oifname), string(bridge)),
                Statement::Masquerade(None),
            ],
        ));
    }
    out
}

fn base(name: &'static str, kind: NfChainType, hook: NfHook, prio: i32) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..chain_fields(name)
    })
}

fn chain(name: &'static str) -> NfListObject<'static> {
    NfListObject::Chain(chain_fields(name))
}

fn chain_fields(name: &'static str) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

fn rule(chain: &'static str, stmts: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: chain.into(),
        expr: stmts.into(),
        ..Rule::default()
    })
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn not_matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

fn jump(target: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.into(),
    })
}

fn string(s: impl Into<Cow<'static, str>>) -> Expression<'static> {
    Expression::String(s.into())
}

fn field(protocol: &'static str, name: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: name.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn prefix(addr: Ipv4Addr, len: u32) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(string(addr.to_string())),
        len,
    }))
}

/// `ct KEY VALUE` for a flag key (`state`, `status`): the flag is set.
fn ct_is(key: &'static str, flag: &'static str) -> Statement<'static> {
    let left = Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None,
        dir: None,
    }));
    Statement::Match(Match {
        left,
        right: string(flag),
        op: Operator::IN,
    })
}

/// `ct status dnat`: the DNAT bit is set (a flag test, not an equality: the
/// status has other bits too).
fn is_dnat() -> Statement<'static> {
    ct_is("status", "dnat")
}

fn fib_daddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Daddr]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::network::parse_port;

    #[test]
    fn ruleset_replaces_the_table_atomically() {
        let wanted = Wanted {
            networks: vec![NetworkDef::builtin_default()],
            forwards: vec![Forward {
                port: parse_port("127.0.0.1:8080:80").unwrap(),
                to: "10.89.0.7".parse().unwrap(),
            }],
            fence_host: false,
        };
        let json = serde_json::to_string(&ruleset(Some(&wanted))).unwrap();
        let add = json.find(r#"{"add":{"table""#).unwrap();
        let delete = json.find(r#"{"delete":{"table""#).unwrap();
        assert!(add < delete, "{json}");
        assert!(
            json.contains(r#""dnat":{"addr":"10.89.0.7","family":"ip","port":80}"#),
            "{json}"
        );
        assert!(json.contains(r#""right":8080"#), "{json}");
        assert!(json.contains(r#""masquerade""#), "{json}");
        let only_delete = serde_json::to_string(&ruleset(None)).unwrap();
        assert!(!only_delete.contains("chain"), "{only_delete}");
    }

    #[test]
    fn internal_networks_get_walls_not_nat() {
        let mut net = NetworkDef::builtin_default();
        net.internal = true;
        let rules = build(&Wanted {
            networks: vec![net],
            forwards: vec![],
            fence_host: false,
        });
        let json = serde_json::to_string(&rules).unwrap();
        // Loopback guard, nothing in, nothing out.
        assert_eq!(json.matches(r#""drop""#).count(), 3, "{json}");
        // Only the localhost and hairpin masquerades, no egress NAT.
        assert_eq!(json.matches(r#""masquerade""#).count(), 2, "{json}");
    }
}
