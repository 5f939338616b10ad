//! `[container]` and the container-related `[service]` keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;
use crate::unit::names::Named;

/// The container spec of MINIMAL plus `rest`.
pub(super) fn container(rest: &str) -> ContainerSpec {
    match parse(&with(rest)) {
        Ok(u) => u.container,
        Err(e) => panic!("{e:#?}"),
    }
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

fn caps(names: &[&str]) -> BTreeSet<Capability> {
    let cap = |c: &&str| Capability::try_from(c.to_string()).unwrap();
    names.iter().map(cap).collect()
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
        .map(|(k, v)| (RlimitResource::from_name(k).unwrap(), v))
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
        // A rootfs of its own: the host's system files are not there to protect.
        protection: crate::unit::Protection::defaults(true, true),
        image: None,
    };
    assert_eq!(c, want);
    // The hash serialises the model as JSON; namespace map keys must work.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["join"]["net"], "/run/netns/web");
    assert_eq!(json["namespaces"][0], "user");
    // Typed capabilities and rlimits serialise as their names, in name
    // order, and the launch plan reads them back.
    assert_eq!(json["capabilities"][0], "CAP_CHOWN");
    assert_eq!(json["rlimits"]["memlock"]["soft"], 65536);
    let back: ContainerSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
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
        &with("[container]\nvolume = \"x\"\n"),
        4,
        1,
        "unknown field `volume`",
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
    let want: BTreeMap<RlimitResource, Rlimit> = [
        ("nofile", r(1024, 1024)),
        ("nproc", r(10, 20)),
        ("core", r(u64::MAX, u64::MAX)),
        ("stack", r(8_388_608, u64::MAX)),
    ]
    .into_iter()
    .map(|(k, v)| (RlimitResource::from_name(k).unwrap(), v))
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
        r#"unknown rlimit "NOFILE": expected one of "as", "core", "cpu""#,
    );
    assert_err(
        &with("[container]\noom_score_adj = 1001\n"),
        4,
        17,
        "oom_score_adj 1001 is out of range: expected an integer between -1000 and 1000",
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
  "setuid", "setgid", "mknod", "fowner", "fsetid", "dac_override", "chown",
]
seccomp = true
no_new_privs = true
init = true
root_propagation = "private"
readonly_root = false
namespaces = ["cgroup", "ipc", "uts", "pid", "mnt"]
join = {}
rlimits = {}
protect_system = "full"
private_tmp = true
private_devices = true
protect_kernel = true
protect_cgroups = true
control_socket = false
writable_paths = []
ambient_capabilities = []
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
