//! Tests for `[container]`, `[[mount]]` and the container-related
//! `[service]` keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::tests::{MINIMAL, assert_err, parse, parse_err};
use super::*;

/// MINIMAL plus `rest`; `rest` starts on line 3.
fn with(rest: &str) -> String {
    format!("{MINIMAL}{rest}")
}

fn container(rest: &str) -> ContainerSpec {
    match parse(&with(rest)) {
        Ok(u) => u.container,
        Err(e) => panic!("{e}"),
    }
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

fn caps(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|c| (*c).to_owned()).collect()
}

const FULL_CONTAINER: &str = r#"
[container]
namespaces = ["user", "mnt", "pid", "uts", "ipc", "cgroup", "mnt"]
hostname = "web-1.example"
domainname = "example"
uid_map = [{ inside = 0, outside = 100000, count = 1000 }, { inside = 1000, outside = 1000, count = 1 }]
gid_map = [{ inside = 0, outside = 200000, count = 65536 }]
rootfs = "/var/lib/sup/web/rootfs"
readonly_root = true
root_propagation = "slave"
init = false
capabilities = ["net_bind_service", "CAP_CHOWN", "Cap_Kill", "chown"]
no_new_privs = false
seccomp = false
oom_score_adj = -500

[container.join]
net = "/run/netns/web"

[container.rlimits]
nofile = [1024, 4096]
core = 0
stack = "unlimited"
memlock = [65536, "unlimited"]

[[mount]]
type = "bind"
source = "/srv/data"
target = "/data"
readonly = true
recursive = false
nosuid = true
nodev = true
noexec = true
propagation = "shared"

[[mount]]
type = "tmpfs"
target = "/tmp"
size = "64M"
mode = "1777"

[[mount]]
type = "proc"
target = "/proc"

[[mount]]
type = "sysfs"
target = "/sys"
readonly = true

[[mount]]
type = "dev"
target = "/dev"

[[mount]]
type = "overlay"
target = "/usr"
lower = ["/srv/layers/b", "/srv/layers/a"]
"#;

fn mount(kind: MountKind, target: &str) -> MountSpec {
    MountSpec::plain(kind, target)
}

#[test]
fn full_container_section() {
    let c = container(FULL_CONTAINER);
    let want = ContainerSpec {
        namespaces: set(&[
            Namespace::User,
            Namespace::Mnt,
            Namespace::Pid,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Cgroup,
        ]),
        join: [(Namespace::Net, PathBuf::from("/run/netns/web"))]
            .into_iter()
            .collect(),
        hostname: Some("web-1.example".into()),
        domainname: Some("example".into()),
        uid_map: vec![
            IdMapRange {
                inside: 0,
                outside: 100_000,
                count: 1000,
            },
            IdMapRange {
                inside: 1000,
                outside: 1000,
                count: 1,
            },
        ],
        gid_map: vec![IdMapRange {
            inside: 0,
            outside: 200_000,
            count: 65536,
        }],
        rootfs: Some(PathBuf::from("/var/lib/sup/web/rootfs")),
        readonly_root: true,
        root_propagation: Propagation::Slave,
        init: false,
        capabilities: caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        no_new_privs: false,
        seccomp: false,
        rlimits: [
            (
                "nofile",
                Rlimit {
                    soft: 1024,
                    hard: 4096,
                },
            ),
            ("core", Rlimit { soft: 0, hard: 0 }),
            (
                "stack",
                Rlimit {
                    soft: Rlimit::UNLIMITED,
                    hard: Rlimit::UNLIMITED,
                },
            ),
            (
                "memlock",
                Rlimit {
                    soft: 65536,
                    hard: u64::MAX,
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        oom_score_adj: Some(-500),
        mounts: vec![
            MountSpec {
                readonly: true,
                nosuid: true,
                nodev: true,
                noexec: true,
                propagation: Some(Propagation::Shared),
                ..mount(
                    MountKind::Bind {
                        source: "/srv/data".into(),
                        recursive: false,
                    },
                    "/data",
                )
            },
            mount(
                MountKind::Tmpfs {
                    size: Some(67_108_864),
                    mode: Some(0o1777),
                },
                "/tmp",
            ),
            mount(MountKind::Proc, "/proc"),
            MountSpec {
                readonly: true,
                ..mount(MountKind::Sysfs, "/sys")
            },
            mount(MountKind::Dev, "/dev"),
            mount(
                MountKind::Overlay {
                    lower: vec!["/srv/layers/b".into(), "/srv/layers/a".into()],
                },
                "/usr",
            ),
        ],
    };
    assert_eq!(c, want);
    // The hash serialises the model as JSON; namespace map keys must work.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["join"]["net"], "/run/netns/web");
    assert_eq!(json["namespaces"][0], "user");
}

#[test]
fn defaults_when_absent() {
    let c = parse(MINIMAL).unwrap().container;
    assert_eq!(c, ContainerSpec::default());
    assert_eq!(
        c.namespaces,
        set(&[
            Namespace::Mnt,
            Namespace::Pid,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Cgroup
        ])
    );
    assert!(c.join.is_empty());
    assert_eq!((c.hostname, c.domainname), (None, None));
    assert!(c.uid_map.is_empty() && c.gid_map.is_empty());
    assert_eq!((c.rootfs, c.readonly_root), (None, false));
    assert_eq!(c.root_propagation, Propagation::Private);
    assert!(c.init && c.no_new_privs && c.seccomp);
    assert_eq!(
        c.capabilities,
        caps(&[
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ])
    );
    assert!(c.rlimits.is_empty());
    assert_eq!(c.oom_score_adj, None);
    assert!(c.mounts.is_empty());

    // An empty [container] section is the same as none.
    assert_eq!(container("[container]\n"), ContainerSpec::default());
    let s = parse(MINIMAL).unwrap().service;
    assert!(s.supplementary_groups.is_empty());
    assert_eq!(s.umask, None);
}

#[test]
fn empty_namespaces_and_capabilities() {
    let c = container("[container]\nnamespaces = []\ncapabilities = []\n");
    assert!(c.namespaces.is_empty(), "host namespaces");
    assert!(c.capabilities.is_empty());
    // Settings that need no namespace stay allowed.
    let c = container("[container]\nnamespaces = []\ninit = false\nreadonly_root = false\n");
    assert!(!c.init && !c.readonly_root);
}

#[test]
fn unknown_namespace_and_key() {
    assert_err(
        &with("[container]\nnamespaces = [\"mnt\", \"network\"]\n"),
        4,
        22,
        r#"unknown namespace "network": expected one of "user", "mnt", "pid", "uts", "ipc", "net", "cgroup""#,
    );
    assert_err(
        &with("[container]\nimage = \"x\"\n"),
        4,
        1,
        "unknown field `image`",
    );
    assert_err(
        &with("[container.join]\nnetwork = \"/run/netns/x\"\n"),
        4,
        1,
        r#"unknown namespace "network""#,
    );
}

#[test]
fn join_and_create_conflict() {
    let c = container("[container]\nnamespaces = [\"mnt\"]\njoin = { pid = \"/proc/1/ns/pid\" }\n");
    assert_eq!(c.join[&Namespace::Pid], PathBuf::from("/proc/1/ns/pid"));
    assert_err(
        &with("[container]\nnamespaces = [\"net\"]\n[container.join]\nnet = \"/run/netns/x\"\n"),
        6,
        1,
        "the net namespace cannot be both created and joined: remove \"net\" from namespaces",
    );
    // pid is created by default.
    assert_err(
        &with("[container.join]\npid = \"/proc/1/ns/pid\"\n"),
        4,
        1,
        "it is created by default",
    );
    assert_err(
        &with("[container.join]\nnet = \"run/netns/x\"\n"),
        4,
        7,
        "must be an absolute path",
    );
}

#[test]
fn settings_need_their_namespace() {
    assert_err(
        &with("[container]\nnamespaces = [\"mnt\"]\nhostname = \"web\"\n"),
        5,
        12,
        "hostname needs a uts namespace created by the unit, but namespaces does not include \"uts\"",
    );
    assert_err(
        &with("[container]\nnamespaces = [\"mnt\"]\ndomainname = \"web\"\n"),
        5,
        14,
        "domainname needs a uts namespace",
    );
    assert_err(
        &with(
            "[container]\nnamespaces = [\"pid\"]\njoin.mnt = \"/proc/1/ns/mnt\"\nrootfs = \"/r\"\n",
        ),
        6,
        10,
        "rootfs needs a mnt namespace created by the unit, but the mnt namespace is joined, not created",
    );
    assert_err(
        &with("[container]\nnamespaces = []\nreadonly_root = true\n"),
        5,
        17,
        "readonly_root = true needs a mnt namespace",
    );
    assert_err(
        &with("[container]\nnamespaces = []\nroot_propagation = \"shared\"\n"),
        5,
        20,
        "root_propagation needs a mnt namespace",
    );
    assert_err(
        &with("[container]\nnamespaces = []\n\n[[mount]]\ntype = \"proc\"\ntarget = \"/proc\"\n"),
        6,
        1,
        "[[mount]] needs a mnt namespace",
    );
    for bad in ["", "web_1", "a b", &"a".repeat(65)] {
        assert_err(
            &with(&format!("[container]\nhostname = {bad:?}\n")),
            4,
            12,
            "invalid hostname",
        );
    }
    assert_eq!(
        container(&format!("[container]\nhostname = \"{}\"\n", "a".repeat(64)))
            .hostname
            .map(|h| h.len()),
        Some(64)
    );
}

#[test]
fn id_maps() {
    let user = "[container]\nnamespaces = [\"user\", \"mnt\"]\n";
    // Overlap inside: [0, 100) and [50, 150).
    assert_err(
        &with(&format!(
            "{user}uid_map = [\n  {{ inside = 0, outside = 1000, count = 100 }},\n  {{ inside = 50, outside = 5000, count = 100 }},\n]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        7,
        14,
        "uid_map ranges overlap on the inside side: uid_map[1] covers 50..=149 and an earlier range covers 0..=99",
    );
    // Overlap outside, in gid_map.
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 1, count = 1 }}]\ngid_map = [\n  {{ inside = 0, outside = 1000, count = 10 }},\n  {{ inside = 10, outside = 1009, count = 1 }},\n]\n"
        )),
        8,
        28,
        "gid_map ranges overlap on the outside side",
    );
    // Adjacent ranges are fine.
    let c = container(&format!(
        "{user}uid_map = [{{ inside = 0, outside = 10, count = 10 }}, {{ inside = 10, outside = 0, count = 10 }}]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
    ));
    assert_eq!(c.uid_map.len(), 2);
    // Overflow of u32 and count 0.
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 4294967295, count = 2 }}]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        5,
        56,
        "outside 4294967295 + count 2 goes past 4294967296",
    );
    let c = container(&format!(
        "{user}uid_map = [{{ inside = 0, outside = 4294967295, count = 1 }}]\ngid_map = [{{ inside = 4294967295, outside = 1, count = 1 }}]\n"
    ));
    assert_eq!(c.uid_map[0].outside, u32::MAX);
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 1, count = 0 }}]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        5,
        47,
        "uid_map[0].count 0 is out of range",
    );
    // Too many ranges.
    let many: Vec<String> = (0..341)
        .map(|i| format!("{{ inside = {i}, outside = {}, count = 1 }}", 1000 + i))
        .collect();
    assert_err(
        &with(&format!(
            "{user}gid_map = [{{ inside = 0, outside = 1, count = 1 }}]\nuid_map = [{}]\n",
            many.join(", ")
        )),
        6,
        11,
        "uid_map has 341 ranges: the kernel accepts at most 340",
    );
    // A created user namespace needs both maps ...
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        4,
        15,
        "a created user namespace needs uid_map and gid_map, but gid_map is missing",
    );
    // ... and maps need a created user namespace.
    assert_err(
        &with("[container]\ngid_map = [{ inside = 0, outside = 1, count = 1 }]\n"),
        4,
        11,
        "gid_map needs a user namespace created by the unit",
    );
}

#[test]
fn userns_base_shorthand() {
    let c =
        container("[container]\nnamespaces = [\"user\", \"mnt\", \"pid\"]\nuserns_base = 100000\n");
    let range = IdMapRange {
        inside: 0,
        outside: 100_000,
        count: 65536,
    };
    assert_eq!((c.uid_map, c.gid_map), (vec![range], vec![range]));
    assert_err(
        &with(
            "[container]\nnamespaces = [\"user\"]\nuserns_base = 100000\nuid_map = [{ inside = 0, outside = 1, count = 1 }]\n",
        ),
        5,
        15,
        "write either userns_base or the maps, not both",
    );
    assert_err(
        &with("[container]\nnamespaces = [\"user\"]\nuserns_base = 4294901761\n"),
        5,
        15,
        "userns_base 4294901761 is out of range",
    );
    assert_err(
        &with("[container]\nuserns_base = 100000\n"),
        4,
        15,
        "userns_base needs a user namespace",
    );
}

#[test]
fn capabilities() {
    let c =
        container("[container]\ncapabilities = [\"sys_admin\", \"CAP_NET_ADMIN\", \"cap_bpf\"]\n");
    assert_eq!(
        c.capabilities,
        caps(&["CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"])
    );
    assert_err(
        &with("[container]\ncapabilities = [\"chown\", \"net_bind\"]\n"),
        4,
        26,
        r#"unknown capability "net_bind": expected a capability name from capabilities(7)"#,
    );
    assert_err(
        &with("[container]\ncapabilities = [\"\"]\n"),
        4,
        17,
        "unknown capability \"\"",
    );
}

#[test]
fn rlimits() {
    let c = container(
        "[container.rlimits]\nnofile = 1024\nnproc = [10, 20]\ncore = \"unlimited\"\nstack = [8388608, \"unlimited\"]\n",
    );
    let r = |soft, hard| Rlimit { soft, hard };
    let want: BTreeMap<String, Rlimit> = [
        ("nofile", r(1024, 1024)),
        ("nproc", r(10, 20)),
        ("core", r(u64::MAX, u64::MAX)),
        ("stack", r(8_388_608, u64::MAX)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(c.rlimits, want);
    assert_err(
        &with("[container.rlimits]\nnofile = [4096, 1024]\n"),
        4,
        10,
        "soft limit 4096 is above hard limit 1024",
    );
    assert_err(
        &with("[container.rlimits]\nnofile = [\"unlimited\", 1]\n"),
        4,
        10,
        "soft limit unlimited is above hard limit 1",
    );
    assert_err(
        &with("[container.rlimits]\nnofile = [1, 2, 3]\n"),
        4,
        10,
        "exactly two values",
    );
    assert_err(
        &with("[container.rlimits]\nnofile = -1\n"),
        4,
        10,
        "cannot be negative",
    );
    assert_err(
        &with("[container.rlimits]\nnofile = \"lots\"\n"),
        4,
        10,
        r#"invalid rlimit "lots""#,
    );
    assert_err(
        &with("[container.rlimits]\nNOFILE = 1\n"),
        4,
        1,
        "unknown rlimit \"NOFILE\": expected one of as, core, cpu",
    );
    assert_err(
        &with("[container]\noom_score_adj = 1001\n"),
        4,
        17,
        "oom_score_adj 1001 is out of range: expected an integer between -1000 and 1000",
    );
}

#[test]
fn mount_types_and_defaults() {
    let c = container(
        "[[mount]]\ntype = \"bind\"\nsource = \"/srv\"\ntarget = \"/srv\"\n\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/run\"\n",
    );
    assert_eq!(
        c.mounts,
        [
            mount(
                MountKind::Bind {
                    source: "/srv".into(),
                    recursive: true
                },
                "/srv"
            ),
            mount(
                MountKind::Tmpfs {
                    size: None,
                    mode: None
                },
                "/run"
            ),
        ]
    );
    // Inline array-of-tables form works too (before any [section]).
    let text =
        format!("mount = [{{ type = \"tmpfs\", target = \"/tmp\", size = \"64M\" }}]\n{MINIMAL}");
    let c = parse(&text).unwrap().container;
    assert_eq!(
        c.mounts[0].kind,
        MountKind::Tmpfs {
            size: Some(67_108_864),
            mode: None
        }
    );
    assert_eq!(
        container("[[mount]]\ntype = \"tmpfs\"\ntarget = \"/tmp\"\nsize = 4096\n").mounts[0].kind,
        MountKind::Tmpfs {
            size: Some(4096),
            mode: None
        }
    );
}

#[test]
fn mount_errors() {
    let m = |body: &str| with(&format!("\n[[mount]]\n{body}"));
    assert_err(
        &m("type = \"bind\"\nsource = \"/a\"\ntarget = \"/b\"\nsize = \"64M\"\n"),
        8,
        1,
        r#"size is only valid for type = "tmpfs" (this mount has type = "bind")"#,
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/b\"\nsource = \"/a\"\n"),
        7,
        1,
        r#"source is only valid for type = "bind""#,
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/proc\"\nlower = [\"/a\"]\n"),
        7,
        1,
        r#"lower is only valid for type = "overlay""#,
    );
    assert_err(
        &m("type = \"dev\"\ntarget = \"/dev\"\nrecursive = true\n"),
        7,
        1,
        r#"recursive is only valid for type = "bind""#,
    );
    assert_err(
        &m("type = \"sysfs\"\ntarget = \"/sys\"\nmode = \"0755\"\n"),
        7,
        1,
        r#"mode is only valid for type = "tmpfs""#,
    );
    assert_err(&m("target = \"/b\"\n"), 4, 1, "missing type in [[mount]]");
    assert_err(
        &m("type = \"nfs\"\ntarget = \"/b\"\n"),
        5,
        8,
        r#"unknown mount type "nfs": expected one of "bind", "tmpfs", "proc", "sysfs", "dev", "overlay""#,
    );
    assert_err(&m("type = \"proc\"\n"), 4, 1, "missing target in [[mount]]");
    assert_err(
        &m("type = \"bind\"\ntarget = \"/b\"\n"),
        4,
        1,
        "missing source",
    );
    assert_err(
        &m("type = \"bind\"\nsource = \"a\"\ntarget = \"/b\"\n"),
        6,
        10,
        "mount source \"a\" must be an absolute path",
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"proc\"\n"),
        6,
        10,
        "must be an absolute path",
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/x/../etc\"\n"),
        6,
        10,
        "must not contain \"..\" components",
    );
    assert_err(
        &m("type = \"overlay\"\ntarget = \"/usr\"\n"),
        4,
        1,
        "missing lower",
    );
    assert_err(
        &m("type = \"overlay\"\ntarget = \"/usr\"\nlower = []\n"),
        7,
        9,
        "lower must not be empty",
    );
    assert_err(
        &m("type = \"overlay\"\ntarget = \"/usr\"\nlower = [\"/a\", \"b\"]\n"),
        7,
        16,
        "overlay lower \"b\" must be an absolute path",
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/t\"\nsize = \"1.5M\"\n"),
        7,
        8,
        "fractions are not allowed",
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/t\"\nsize = 0\n"),
        7,
        8,
        "tmpfs size must be at least 1 byte",
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/t\"\nmode = \"17777\"\n"),
        7,
        8,
        "mode \"17777\" is too large",
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/p\"\npropagation = \"rshared\"\n"),
        7,
        15,
        r#"unknown propagation "rshared": expected one of "private", "slave", "shared", "unbindable""#,
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/p\"\nreadonyl = true\n"),
        7,
        1,
        "unknown field `readonyl`",
    );
    // The second mount's error points at the second header.
    assert_err(
        &m("type = \"proc\"\ntarget = \"/p\"\n\n[[mount]]\ntype = \"dev\"\n"),
        8,
        1,
        "missing target",
    );
}

#[test]
fn service_umask_and_groups() {
    let u = parse(&with(
        "umask = \"0027\"\nsupplementary_groups = [\"adm\", 4]\n",
    ))
    .unwrap();
    assert_eq!(u.service.umask, Some(0o27));
    assert_eq!(
        u.service.supplementary_groups,
        [IdSpec::Name("adm".into()), IdSpec::Id(4)]
    );
    assert_eq!(
        parse(&with("umask = \"777\"\n")).unwrap().service.umask,
        Some(0o777)
    );
    assert_err(&with("umask = \"0028\"\n"), 3, 9, r#"invalid umask "0028""#);
    assert_err(
        &with("umask = \"1000\"\n"),
        3,
        9,
        r#"umask "1000" is too large"#,
    );
    assert_err(
        &with("umask = 27\n"),
        3,
        9,
        "umask must be an octal string like \"0027\", not the integer 27",
    );
    assert_err(
        &with("supplementary_groups = [\"adm\", -1]\n"),
        3,
        32,
        "invalid id -1",
    );
}

/// Every default written out, in a different order and spelling.
const SPELLED_OUT_DEFAULTS: &str = r#"
[container]
capabilities = [
  "audit_write", "KILL", "cap_sys_chroot", "NET_BIND_SERVICE", "setpcap", "setfcap",
  "setuid", "setgid", "net_raw", "mknod", "fowner", "fsetid", "dac_override", "chown",
]
seccomp = true
no_new_privs = true
init = true
root_propagation = "private"
readonly_root = false
namespaces = ["cgroup", "ipc", "uts", "pid", "mnt"]
join = {}
rlimits = {}
"#;

#[test]
fn hash_covers_container_semantically() {
    let plain = parse(MINIMAL).unwrap();
    let spelled = parse(&with(SPELLED_OUT_DEFAULTS)).unwrap();
    assert_eq!(plain, spelled);
    assert_eq!(plain.hash, spelled.hash);

    let a = parse(&with("[container]\ncapabilities = [\"net_admin\"]\n")).unwrap();
    let b = parse(&with("[container]\ncapabilities = [\"CAP_NET_ADMIN\"]\n")).unwrap();
    assert_eq!(a.hash, b.hash);
    assert_ne!(a.hash, plain.hash);

    // Every kind of change shows up in the hash.
    for rest in [
        "[container]\nnamespaces = []\n",
        "[container]\nhostname = \"x\"\n",
        "[container]\ninit = false\n",
        "[container]\nseccomp = false\n",
        "[container.rlimits]\nnofile = 10\n",
        "[container]\noom_score_adj = 0\n",
        "[container.join]\nnet = \"/run/netns/a\"\n",
        "[[mount]]\ntype = \"dev\"\ntarget = \"/dev\"\n",
        "umask = \"0022\"\n",
        "supplementary_groups = [1]\n",
    ] {
        let u = parse(&with(rest)).unwrap();
        assert_ne!(u.hash, plain.hash, "{rest}");
    }
    let ro = |ro: bool| {
        parse(&with(&format!(
            "[[mount]]\ntype = \"dev\"\ntarget = \"/dev\"\nreadonly = {ro}\n"
        )))
        .unwrap()
        .hash
    };
    assert_ne!(ro(true), ro(false));
}

#[test]
fn namespace_names_round_trip() {
    for ns in Namespace::ALL {
        assert_eq!(Namespace::from_name(ns.as_str()), Some(ns));
    }
    let c = container("[container]\nnamespaces = [\"user\", \"net\"]\nuserns_base = 0\n");
    assert_eq!(c.namespaces, set(&[Namespace::User, Namespace::Net]));
    let err = parse_err(&with("[container]\nnamespaces = \"mnt\"\n"));
    assert!(err.message.contains("invalid type"), "{err}");
}
