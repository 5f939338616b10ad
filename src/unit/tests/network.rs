//! `[network]`, network files and the checks across them.

use std::fs;

use super::graph::unit_names;
use super::*;

#[test]
fn bridge_defaults_and_what_each_mode_creates() {
    let u = parse(&with("[network]\nmode = \"bridge\"\n")).unwrap();
    assert_eq!(u.network.networks, ["default"]);
    assert!(u.container.namespaces.contains(&Namespace::Net));
    let none = parse(&with("[network]\nmode = \"none\"\n")).unwrap();
    assert!(none.container.namespaces.contains(&Namespace::Net));
    let host = parse(MINIMAL).unwrap();
    assert_eq!(host.network.mode, NetworkMode::Host);
    assert!(!host.container.namespaces.contains(&Namespace::Net));
    // "net" in namespaces without [network] is mode "none", as before.
    let listed = parse(&with("[container]\nnamespaces = [\"net\", \"mnt\"]\n")).unwrap();
    assert_eq!(listed.network.mode, NetworkMode::None);
    // A sidecar needs its peer first, and goes with it.
    let side = parse(&with("[network]\nmode = \"unit:db\"\n")).unwrap();
    assert_eq!(
        (side.after.as_slice(), side.requires.as_slice()),
        (&["db".to_owned()][..], &["db".to_owned()][..])
    );
    assert_eq!(
        parse(MINIMAL).unwrap().hash,
        parse(&with("[network]\nmode = \"host\"\n")).unwrap().hash,
        "host networking written out keeps the hash"
    );
}

#[test]
fn network_errors_are_located() {
    let table = [
        (
            "[network]\nmode = \"bridged\"\n",
            4,
            8,
            "unknown network mode",
        ),
        (
            "[network]\nmode = \"unit:\"\n",
            4,
            8,
            "not a valid unit name",
        ),
        ("[network]\nmode = \"unit:web\"\n", 4, 8, "another unit"),
        (
            "[network]\nports = [\"80:80\"]\n",
            4,
            10,
            "mode = \"bridge\"",
        ),
        (
            "[network]\nmode = \"none\"\nnetworks = [\"x\"]\n",
            5,
            13,
            "needs mode = \"bridge\"",
        ),
        (
            "[network]\nmode = \"bridge\"\nports = [\"80\"]\n",
            5,
            10,
            "both a host port",
        ),
        (
            "[network]\nmode = \"bridge\"\nnetworks = [\"Back\"]\n",
            5,
            13,
            "invalid network name",
        ),
        (
            "[network]\nmode = \"bridge\"\nnetworks = [\"a\", \"a\"]\n",
            5,
            18,
            "listed twice",
        ),
        (
            "[network]\nmode = \"bridge\"\naliases = [\"-x\"]\n",
            5,
            12,
            "invalid alias",
        ),
        (
            "[network]\nmode = \"bridge\"\nipv4 = \"10.1\"\n",
            5,
            8,
            "not an IPv4",
        ),
        (
            "[network]\nmode = \"host\"\n[container]\nnamespaces = [\"net\"]\n",
            4,
            8,
            "conflicts with \"net\"",
        ),
        (
            "[network]\nmode = \"bridge\"\n[container]\njoin = { net = \"/proc/1/ns/net\" }\n",
            4,
            8,
            "join.net",
        ),
        ("[network]\nmtu = 1400\n", 4, 1, "unknown field"),
        (
            "[network]\nmode = \"bridge\"\n[container]\nnamespaces = []\n",
            4,
            8,
            "needs a mount namespace",
        ),
        (
            "[network]\nmode = \"unit:db\"\nports = [\"1:2\"]\n",
            5,
            10,
            "publish them in unit \"db\"",
        ),
    ];
    for (rest, line, column, needle) in table {
        assert_has_err(&with(rest), line, column, needle);
    }
}

/// `units` and `networks` (`NAME.network.toml` contents) loaded from a directory.
fn load(units: &[(&str, &str)], networks: &[(&str, &str)]) -> (Loaded, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, rest) in units {
        fs::write(dir.path().join(format!("{name}.toml")), with(rest)).unwrap();
    }
    for (name, text) in networks {
        fs::write(dir.path().join(format!("{name}.network.toml")), text).unwrap();
    }
    (load_dir(dir.path()).unwrap(), dir)
}

fn messages(l: &Loaded) -> Vec<String> {
    l.errors
        .iter()
        .map(|e| format!("{}:{}:{} {}", e.unit, e.line, e.column, e.message))
        .collect()
}

#[test]
fn checks_across_files() {
    let bridge = "[network]\nmode = \"bridge\"\n";
    let (l, _dir) = load(
        &[
            (
                "a",
                "[network]\nmode = \"bridge\"\nports = [\"8080:80\"]\nipv4 = \"10.89.0.10\"\n",
            ),
            (
                "b",
                "[network]\nmode = \"bridge\"\nports = [\"127.0.0.1:8080:81\"]\n",
            ),
            ("c", "[network]\nmode = \"bridge\"\nipv4 = \"10.89.0.10\"\n"),
            (
                "d",
                "[network]\nmode = \"bridge\"\nnetworks = [\"nowhere\"]\n",
            ),
            (
                "e",
                "[network]\nmode = \"bridge\"\nnetworks = [\"broken\"]\n",
            ),
            (
                "f",
                "[network]\nmode = \"bridge\"\nnetworks = [\"back\"]\nipv4 = \"10.89.0.11\"\n",
            ),
            ("g", "[network]\nmode = \"unit:host\"\n"),
            ("host", ""),
            ("h", "[network]\nmode = \"unit:a\"\n"),
            ("i", bridge),
        ],
        &[
            ("back", "subnet = \"10.90.0.0/24\"\n"),
            ("broken", "subnet = \"10.300.0.0/24\"\n"),
            ("over", "subnet = \"10.90.0.128/25\"\n"),
        ],
    );
    assert_eq!(unit_names(&l), ["a", "h", "host", "i"]);
    let shown = messages(&l);
    let expect = [
        "b:5:10 host port 8080 (127.0.0.1:8080:81/tcp) is already published by unit \"a\"",
        "c:5:8 ipv4 10.89.0.10 is already unit \"a\"'s",
        "d:5:13 no network \"nowhere\"",
        "e:5:13 network \"broken\" is invalid",
        "f:6:8 ipv4 10.89.0.11 is not a free address of network \"back\"",
        "g:4:8 mode = \"unit:host\": unit \"host\" has no network namespace",
        "broken.network:1:10 subnet \"10.300.0.0/24\" is not an IPv4 CIDR",
        "over.network:1:1 subnet 10.90.0.128/25 overlaps network \"back\"",
    ];
    for want in expect {
        assert!(
            shown.iter().any(|s| s.starts_with(want)),
            "no {want:?} in {shown:#?}"
        );
    }
    // The definitions of its networks are part of a unit (and of its hash).
    let a = &l.units["a"];
    assert_eq!(a.network.attached, [NetworkDef::builtin_default()]);
    let (other, _dir2) = load(
        &[(
            "a",
            "[network]\nmode = \"bridge\"\nports = [\"8080:80\"]\nipv4 = \"10.89.0.10\"\n",
        )],
        &[("default", "subnet = \"10.89.0.0/16\"\ninternal = true\n")],
    );
    assert_ne!(
        other.units["a"].hash, a.hash,
        "editing a network changes its units"
    );
    assert!(l.networks.contains_key("back") && l.networks.contains_key("default"));
}

#[test]
fn an_own_network_keeps_net_raw_whichever_way_it_is_written() {
    let raw = Capability(caps::Capability::CAP_NET_RAW);
    for rest in [
        "[network]\nmode = \"bridge\"\n",
        "[network]\nmode = \"none\"\n",
        "[container]\nnamespaces = [\"net\", \"mnt\"]\n",
    ] {
        let u = parse(&with(rest)).unwrap();
        assert!(u.container.capabilities.contains(&raw), "{rest}");
    }
    assert!(
        !parse(MINIMAL)
            .unwrap()
            .container
            .capabilities
            .contains(&raw)
    );
}

#[test]
fn subnets_that_mean_something_else_are_refused() {
    for subnet in [
        "0.0.0.0/0",
        "127.0.0.0/24",
        "224.0.0.0/24",
        "169.254.0.0/16",
        "255.255.255.252/30",
        "10.0.0.0/7",
    ] {
        let (l, _dir) = load(&[], &[("odd", &format!("subnet = \"{subnet}\"\n"))]);
        assert!(!l.networks.contains_key("odd"), "{subnet} accepted");
        assert!(
            messages(&l)[0].contains("private range"),
            "{subnet}: {:?}",
            messages(&l)
        );
    }
    // The built-in default counts for overlaps too.
    let (l, _dir) = load(&[], &[("c1", "subnet = \"10.89.5.0/24\"\n")]);
    assert!(
        messages(&l)[0].contains("overlaps network \"default\""),
        "{:?}",
        messages(&l)
    );
    let (l, _dir) = load(
        &[],
        &[
            ("default", "subnet = \"10.50.0.0/16\"\n"),
            ("c1", "subnet = \"10.89.5.0/24\"\n"),
        ],
    );
    assert!(
        l.errors.is_empty(),
        "a replaced default frees its range: {:?}",
        messages(&l)
    );
}
