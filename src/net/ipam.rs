//! Address assignment on one network: pure, so it is table-tested.
//!
//! A unit keeps the address it had (supd remembers assignments in its state
//! directory, so they survive restarts of units and of supd); a new unit gets
//! the first free address from a point picked by a hash of its name, so the
//! same directory gives the same addresses on a fresh host too. Fixed `ipv4`
//! addresses are served first and always win.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::unit::NetworkDef;

/// One unit on the network: its name and fixed address, if any.
pub struct Wanted<'a> {
    pub unit: &'a str,
    pub fixed: Option<Ipv4Addr>,
}

/// Addresses by unit; units that found no free address are left out (the
/// network is full: their start fails with that reason).
pub fn assign(
    def: &NetworkDef,
    wanted: &[Wanted],
    previous: &BTreeMap<String, Ipv4Addr>,
) -> BTreeMap<String, Ipv4Addr> {
    let first = u32::from(def.subnet.network()).saturating_add(1);
    let last = u32::from(def.subnet.broadcast()).saturating_sub(1);
    let usable = |ip: Ipv4Addr| (first..=last).contains(&u32::from(ip)) && ip != def.gateway;
    let mut taken: BTreeSet<Ipv4Addr> = BTreeSet::from([def.gateway]);
    let mut out = BTreeMap::new();
    for w in wanted {
        if let Some(ip) = w.fixed.filter(|ip| usable(*ip) && taken.insert(*ip)) {
            out.insert(w.unit.to_owned(), ip);
        }
    }
    for w in wanted.iter().filter(|w| w.fixed.is_none()) {
        if let Some(ip) = previous.get(w.unit).copied()
            && usable(ip)
            && taken.insert(ip)
        {
            out.insert(w.unit.to_owned(), ip);
        }
    }
    let size = u64::from(last.saturating_sub(first)) + 1;
    for w in wanted.iter().filter(|w| w.fixed.is_none()) {
        if out.contains_key(w.unit) || first > last {
            continue;
        }
        let start = crate::unit::fingerprint(w.unit.as_bytes()) % size;
        // At most one address per unit is taken, so a free one is found within
        // `taken.len() + 1` steps.
        let steps = (taken.len() as u64 + 1).min(size);
        for step in 0..steps {
            let offset = (start + step) % size;
            let ip = Ipv4Addr::from(first.saturating_add(offset as u32));
            if usable(ip) && taken.insert(ip) {
                out.insert(w.unit.to_owned(), ip);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnet: &str) -> NetworkDef {
        let subnet: ipnet::Ipv4Net = subnet.parse().unwrap();
        NetworkDef {
            name: "n".into(),
            gateway: crate::unit::network::first_host(&subnet),
            subnet,
            internal: false,
        }
    }

    fn want(units: &[(&'static str, Option<&str>)]) -> Vec<Wanted<'static>> {
        units
            .iter()
            .map(|(u, f)| Wanted {
                unit: u,
                fixed: f.map(|f| f.parse().unwrap()),
            })
            .collect()
    }

    #[test]
    fn stable_distinct_and_fixed_first() {
        let def = net("10.90.0.0/29"); // hosts .1-.6, gateway .1
        let units = want(&[
            ("a", None),
            ("b", Some("10.90.0.3")),
            ("c", None),
            ("d", None),
        ]);
        let got = assign(&def, &units, &BTreeMap::new());
        assert_eq!(got.len(), 4);
        let ips: BTreeSet<_> = got.values().collect();
        assert_eq!(ips.len(), 4, "distinct: {got:?}");
        assert_eq!(got["b"], "10.90.0.3".parse::<Ipv4Addr>().unwrap());
        assert!(!ips.contains(&def.gateway));
        // The same input gives the same answer, and previous addresses are kept
        // even when the set of units changes.
        assert_eq!(assign(&def, &units, &BTreeMap::new()), got);
        let fewer = want(&[("d", None), ("c", None)]);
        let again = assign(&def, &fewer, &got);
        assert_eq!(again["c"], got["c"]);
        assert_eq!(again["d"], got["d"]);
    }

    #[test]
    fn a_fixed_address_displaces_a_remembered_one() {
        let def = net("10.90.0.0/29");
        let previous = BTreeMap::from([("a".to_owned(), "10.90.0.4".parse().unwrap())]);
        let units = want(&[("a", None), ("b", Some("10.90.0.4"))]);
        let got = assign(&def, &units, &previous);
        assert_eq!(got["b"], "10.90.0.4".parse::<Ipv4Addr>().unwrap());
        assert_ne!(got["a"], got["b"]);
    }

    #[test]
    fn full_network_leaves_units_out() {
        let def = net("10.90.0.0/30"); // one host besides the gateway
        let got = assign(&def, &want(&[("a", None), ("b", None)]), &BTreeMap::new());
        assert_eq!(got.len(), 1);
    }
}
