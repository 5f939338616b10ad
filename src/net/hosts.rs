//! The `/etc/hosts` and `/etc/resolv.conf` a bridged unit sees: pure text.
//!
//! Names are served by a per-unit hosts file rather than a DNS server: nothing
//! to run, nothing to crash, and every resolver (glibc, musl, Go, busybox) reads
//! it. The file is bind-mounted read-only and rewritten in place when a peer's
//! address changes (see docs/networking.md).

use std::fmt::Write;
use std::net::Ipv4Addr;

/// One name-bearing peer: an address and the names it answers to.
pub struct Entry<'a> {
    pub address: Ipv4Addr,
    pub names: Vec<&'a str>,
}

/// The unit's own names first, then every peer on a shared network, in the
/// order given (the caller sorts them).
pub fn hosts_file(entries: &[Entry]) -> String {
    let mut out = String::from(
        "# Written by supd: the units that share a network with this one.\n\
         127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for e in entries {
        let _ = writeln!(out, "{}\t{}", e.address, e.names.join(" "));
    }
    out
}

/// The host's resolv.conf, minus loopback name servers (unreachable from the
/// container's own network namespace); if none is left, the upstream list of
/// systemd-resolved when there is one, else nothing (names outside the
/// network then do not resolve, rather than hang).
pub fn resolv_conf(host: &str, resolved_upstream: Option<&str>) -> String {
    let is_loopback = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_some_and(|a| a.is_loopback())
    };
    let has_server = |text: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with("nameserver") && !is_loopback(l))
    };
    let source = match resolved_upstream {
        Some(up) if !has_server(host) && has_server(up) => up,
        _ => host,
    };
    let mut out = String::from("# Written by supd from the host's resolv.conf.\n");
    for line in source.lines().filter(|l| !is_loopback(l)) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_peers_with_aliases() {
        let text = hosts_file(&[
            Entry {
                address: "10.89.0.5".parse().unwrap(),
                names: vec!["api"],
            },
            Entry {
                address: "10.89.0.9".parse().unwrap(),
                names: vec!["postgres", "db"],
            },
        ]);
        assert!(text.contains("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.89.0.5\tapi\n"));
        assert!(text.contains("10.89.0.9\tpostgres db\n"));
    }

    #[test]
    fn resolv_drops_loopback_servers() {
        let host = "nameserver 127.0.0.53\noptions edns0\nsearch lan\n";
        let up = "nameserver 192.168.1.1\n";
        let got = resolv_conf(host, Some(up));
        assert!(got.contains("nameserver 192.168.1.1"));
        assert!(!got.contains("127.0.0.53"));
        let plain = resolv_conf("nameserver 10.0.0.2\nsearch lan\n", Some(up));
        assert!(plain.contains("nameserver 10.0.0.2") && plain.contains("search lan"));
        assert!(!resolv_conf("nameserver ::1\n", None).contains("::1"));
    }
}
