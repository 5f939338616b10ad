//! `supctl audit`: how exposed each unit leaves the host and supd, protection by
//! protection, in the spirit of `systemd-analyze security`, but over both views: the
//! container (namespaces, capabilities, seccomp, file system) and the supervisor
//! (can the unit command supd, leave its limits, exhaust the host).
//!
//! Pure: a unit's definition (and what the host offers) in, a report out. Each check
//! has an exposure weight; the unit's score is the weighted share of exposure it
//! has, from 0.0 (every protection) to 10.0 (none), rated on systemd's scale.

use crate::unit::{Capability, MountKind, Namespace, ProtectSystem, Unit};

/// What the host gives supd, which decides whether some protections can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// supd has a cgroup subtree (limits, whole-unit kill, peer identification).
    pub cgroups: bool,
}

/// One protection of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Stable identifier, e.g. `user-namespace`.
    pub id: &'static str,
    /// What the protection does, in words.
    pub description: &'static str,
    /// Whether this unit has it.
    pub ok: bool,
    /// How much exposure its absence adds (0.0 when `ok`).
    pub exposure: f64,
    /// How to get it (or what this unit has instead).
    pub hint: String,
}

/// The report for one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub checks: Vec<Check>,
    /// 0.0 (every protection) to 10.0 (none).
    pub score: f64,
    pub rating: &'static str,
}

/// Capabilities that are close to root on the host, with their weight.
const DANGEROUS_CAPABILITIES: &[(caps::Capability, f64)] = &[
    (caps::Capability::CAP_SYS_ADMIN, 1.0),
    (caps::Capability::CAP_SYS_MODULE, 1.0),
    (caps::Capability::CAP_SYS_RAWIO, 0.8),
    (caps::Capability::CAP_SYS_PTRACE, 0.5),
    (caps::Capability::CAP_DAC_READ_SEARCH, 0.5),
    (caps::Capability::CAP_NET_ADMIN, 0.5),
    (caps::Capability::CAP_SYS_BOOT, 0.5),
    (caps::Capability::CAP_BPF, 0.5),
    (caps::Capability::CAP_SYS_TIME, 0.3),
    (caps::Capability::CAP_MAC_ADMIN, 0.3),
];

/// Assess one unit.
pub fn assess(unit: &Unit, host: HostFacts) -> Report {
    let c = &unit.container;
    let p = &c.protection;
    let has = |ns: Namespace| c.namespaces.contains(&ns);
    // A user who may setuid(0) is root whenever it likes.
    let may_setuid = p
        .ambient_capabilities
        .iter()
        .any(|x| x.0 == caps::Capability::CAP_SETUID);
    let declared_root = runs_as_root(unit);
    let root = declared_root || may_setuid;
    let own_files = has(Namespace::Mnt) && c.rootfs.is_none();
    let mut checks = Vec::new();
    let mut check = |id, description, ok: bool, weight: f64, hint: String| {
        checks.push(Check {
            id,
            description,
            ok,
            exposure: if ok { 0.0 } else { weight },
            hint,
        })
    };

    check(
        "control-socket",
        "cannot command supd (stop units, power off)",
        !p.control_socket,
        1.0,
        "remove control_socket = true".into(),
    );
    check(
        "user-namespace",
        "root in the container is not root on the host",
        has(Namespace::User) || !root,
        0.9,
        "add \"user\" to namespaces (with userns_base or uid_map/gid_map), or run as a non-root user".into(),
    );
    check(
        "non-root",
        "runs as a non-root user",
        !root,
        0.6,
        if !declared_root {
            "remove setuid from ambient_capabilities (it can setuid(0))".into()
        } else {
            "set user = \"...\" in [service]".into()
        },
    );
    let (cap_exposure, cap_names) = dangerous_capabilities(unit, declared_root);
    check(
        "capabilities",
        "holds no capability close to root (sys_admin, sys_module, ...)",
        cap_names.is_empty(),
        cap_exposure.min(1.0),
        if cap_names.is_empty() {
            "none kept".into()
        } else {
            format!("drop {} from capabilities", cap_names.join(", "))
        },
    );
    check(
        "seccomp",
        "system calls limited to an allowlist",
        c.seccomp,
        0.5,
        "remove seccomp = false".into(),
    );
    check(
        "no-new-privs",
        "setuid binaries and file capabilities grant nothing",
        c.no_new_privs,
        0.3,
        "remove no_new_privs = false".into(),
    );
    check(
        "mount-namespace",
        "has its own mount table (needed by every file-system protection)",
        has(Namespace::Mnt),
        0.4,
        "add \"mnt\" to namespaces".into(),
    );
    check(
        "pid-namespace",
        "cannot see or signal host processes",
        has(Namespace::Pid),
        0.3,
        "add \"pid\" to namespaces".into(),
    );
    // A sidecar (`mode = "unit:NAME"`) joins its peer's namespace at start.
    let own_network = has(Namespace::Net)
        || c.join.contains_key(&Namespace::Net)
        || matches!(unit.network.mode, crate::unit::NetworkMode::Unit(_));
    check(
        "network-namespace",
        "does not share the host's network interfaces",
        own_network,
        0.4,
        "set [network] mode = \"bridge\" (or \"none\"): a network of its own".into(),
    );
    let raw = c
        .capabilities
        .contains(&Capability(caps::Capability::CAP_NET_RAW));
    check(
        "raw-sockets",
        "cannot open raw or packet sockets on the host's network",
        !(raw
            && !own_network
            && (root
                || p.ambient_capabilities
                    .iter()
                    .any(|x| x.0 == caps::Capability::CAP_NET_RAW))),
        0.3,
        "drop net_raw from capabilities, or give the unit its own network".into(),
    );
    check(
        "ipc-uts-cgroup-namespaces",
        "own IPC objects, hostname and cgroup view",
        has(Namespace::Ipc) && has(Namespace::Uts) && has(Namespace::Cgroup),
        0.2,
        "add \"ipc\", \"uts\" and \"cgroup\" to namespaces".into(),
    );
    let (system_ok, system_weight) = match p.protect_system {
        _ if !own_files && has(Namespace::Mnt) => (true, 0.0),
        ProtectSystem::Strict | ProtectSystem::Full => (true, 0.0),
        ProtectSystem::Yes => (false, 0.3),
        ProtectSystem::No => (false, 0.6),
    };
    check(
        "protect-system",
        "cannot rewrite the host's system files (/usr, /etc, ...)",
        system_ok,
        system_weight,
        if c.rootfs.is_some() {
            "has a root file system of its own".into()
        } else {
            "set protect_system = \"full\" or \"strict\"".into()
        },
    );
    check(
        "private-tmp",
        "does not share the host's /tmp",
        p.private_tmp || (has(Namespace::Mnt) && c.rootfs.is_some()),
        0.2,
        "remove private_tmp = false".into(),
    );
    check(
        "private-devices",
        "sees only pseudo devices; others cannot be opened",
        p.private_devices,
        0.5,
        "remove private_devices = false".into(),
    );
    check(
        "protect-kernel",
        "cannot change kernel tunables (/proc/sys, /sys)",
        p.protect_kernel,
        0.6,
        "remove protect_kernel = false".into(),
    );
    check(
        "protect-cgroups",
        "cannot leave its cgroup or change its limits",
        p.protect_cgroups && host.cgroups,
        0.5,
        if host.cgroups {
            "remove protect_cgroups = false".into()
        } else {
            "supd has no cgroups on this host".into()
        },
    );
    let writable_binds: Vec<String> = c
        .mounts
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Bind { .. }) && !m.readonly)
        .map(|m| m.target.display().to_string())
        .collect();
    check(
        "host-writes",
        "writes no host directory through a bind mount",
        writable_binds.is_empty(),
        (0.2 * writable_binds.len() as f64).min(0.6),
        if writable_binds.is_empty() {
            "no writable bind mount".into()
        } else {
            format!("writable binds at {}", writable_binds.join(", "))
        },
    );
    let limited = unit.resources.memory_max.is_some() && unit.resources.pids_max.is_some();
    check(
        "resource-limits",
        "cannot exhaust the host's memory or process table",
        limited && host.cgroups,
        0.3,
        "set memory_max and pids_max in [resources]".into(),
    );
    let total: f64 = checks.iter().map(|c| max_weight(c.id)).sum();
    let exposure: f64 = checks.iter().map(|c| c.exposure).sum();
    let score = if total > 0.0 {
        (exposure * 100.0 / total).round() / 10.0
    } else {
        0.0
    };
    Report {
        checks,
        score,
        rating: rating(score),
    }
}

/// Each check's largest possible exposure.
fn max_weight(id: &str) -> f64 {
    match id {
        "control-socket" | "capabilities" => 1.0,
        "user-namespace" => 0.9,
        "non-root" | "protect-system" | "protect-kernel" | "host-writes" => 0.6,
        "seccomp" | "private-devices" | "protect-cgroups" => 0.5,
        "mount-namespace" | "network-namespace" => 0.4,
        "no-new-privs" | "pid-namespace" | "raw-sockets" | "resource-limits" => 0.3,
        _ => 0.2,
    }
}

/// Whether the service runs as uid 0 (in its namespace): no `user`, or user 0 or
/// "root".
fn runs_as_root(unit: &Unit) -> bool {
    use crate::unit::IdSpec;
    match &unit.service.user {
        None => true,
        Some(IdSpec::Id(0)) => true,
        Some(IdSpec::Name(n)) => n == "root",
        Some(IdSpec::Id(_)) => false,
    }
}

/// What a non-root user gains most from an ambient capability: reading and
/// writing files by any owner (`/etc/shadow`). Root holds these by default and is
/// judged by the `non-root` and `user-namespace` checks instead.
const DANGEROUS_FOR_A_USER: &[(caps::Capability, f64)] =
    &[(caps::Capability::CAP_DAC_OVERRIDE, 0.5)];

/// The dangerous capabilities the service holds, and their summed weight.
fn dangerous_capabilities(unit: &Unit, root: bool) -> (f64, Vec<String>) {
    let held = if root {
        &unit.container.capabilities
    } else {
        &unit.container.protection.ambient_capabilities
    };
    let extra: &[(caps::Capability, f64)] = if root { &[] } else { DANGEROUS_FOR_A_USER };
    let mut total = 0.0;
    let mut names = Vec::new();
    for (cap, weight) in DANGEROUS_CAPABILITIES.iter().chain(extra) {
        if held.contains(&Capability(*cap)) {
            total += weight;
            names.push(
                cap.to_string()
                    .trim_start_matches("CAP_")
                    .to_ascii_lowercase(),
            );
        }
    }
    (total, names)
}

/// systemd-analyze's words for a score.
pub fn rating(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "UNSAFE",
        s if s >= 7.5 => "EXPOSED",
        s if s >= 5.0 => "MEDIUM",
        s if s >= 1.0 => "OK",
        s if s > 0.0 => "SAFE",
        _ => "PERFECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn unit(text: &str) -> Unit {
        let full = format!("{text}\n[service]\nexec = [\"/bin/true\"]\n");
        crate::unit::parse_unit("u", Path::new("/u.toml"), &full).expect("valid unit")
    }

    fn with_service(container: &str, service: &str) -> Unit {
        let full = format!("{container}\n[service]\nexec = [\"/bin/true\"]\n{service}\n");
        crate::unit::parse_unit("u", Path::new("/u.toml"), &full).expect("valid unit")
    }

    const HOST: HostFacts = HostFacts { cgroups: true };

    fn failed(r: &Report) -> Vec<&str> {
        r.checks.iter().filter(|c| !c.ok).map(|c| c.id).collect()
    }

    #[test]
    fn a_bare_host_process_is_exposed_and_a_locked_down_unit_is_not() {
        let bare = unit(
            "[container]\nnamespaces = []\nseccomp = false\nno_new_privs = false\n\
             capabilities = [\"sys_admin\", \"net_raw\"]\ncontrol_socket = true\n",
        );
        let r = assess(&bare, HOST);
        assert!(r.score >= 9.0, "{} {:?}", r.score, failed(&r));
        assert_eq!(r.rating, "UNSAFE");

        let locked = with_service(
            "[container]\nnamespaces = [\"user\", \"mnt\", \"pid\", \"net\", \"ipc\", \"uts\", \"cgroup\"]\n\
             userns_base = 100000\ncapabilities = []\nprotect_system = \"strict\"\n\
             [resources]\nmemory_max = \"64M\"\npids_max = 64\n",
            "user = 1000",
        );
        let r = assess(&locked, HOST);
        assert_eq!(failed(&r), Vec::<&str>::new());
        assert_eq!((r.score, r.rating), (0.0, "PERFECT"));
    }

    #[test]
    fn the_default_unit_names_what_it_lacks() {
        let r = assess(&unit(""), HOST);
        let missing = failed(&r);
        for id in [
            "user-namespace",
            "non-root",
            "network-namespace",
            "resource-limits",
        ] {
            assert!(missing.contains(&id), "{id} in {missing:?}");
        }
        for id in [
            "control-socket",
            "seccomp",
            "protect-kernel",
            "private-devices",
            "raw-sockets",
        ] {
            assert!(!missing.contains(&id), "{id} should hold: {missing:?}");
        }
        assert!(r.score > 0.0 && r.score < 7.5, "{}", r.score);
    }

    #[test]
    fn each_relaxation_raises_the_score() {
        let base = assess(&unit(""), HOST).score;
        for relax in [
            "control_socket = true",
            "protect_kernel = false",
            "private_devices = false",
            "protect_system = \"no\"",
            "seccomp = false",
            "capabilities = [\"sys_admin\"]",
        ] {
            let r = assess(&unit(&format!("[container]\n{relax}\n")), HOST);
            assert!(r.score > base, "{relax}: {} <= {base}", r.score);
        }
    }

    #[test]
    fn a_user_with_ambient_setuid_counts_as_root() {
        let nobody = assess(&with_service("", "user = \"nobody\""), HOST);
        assert!(!failed(&nobody).contains(&"non-root"));
        let may_setuid = with_service(
            "[container]\nambient_capabilities = [\"setuid\"]",
            "user = \"nobody\"",
        );
        let r = assess(&may_setuid, HOST);
        let missing = failed(&r);
        assert!(
            missing.contains(&"non-root") && missing.contains(&"user-namespace"),
            "{missing:?}"
        );
        assert!(r.score > nobody.score, "{} <= {}", r.score, nobody.score);
    }

    #[test]
    fn a_user_with_ambient_dac_override_holds_a_dangerous_capability() {
        let nobody = assess(&with_service("", "user = \"nobody\""), HOST);
        let reader = assess(
            &with_service(
                "[container]\nambient_capabilities = [\"dac_override\"]",
                "user = \"nobody\"",
            ),
            HOST,
        );
        assert!(
            failed(&reader).contains(&"capabilities"),
            "{:?}",
            failed(&reader)
        );
        assert!(reader.score > nobody.score);
        let root = assess(&unit(""), HOST);
        assert!(
            !failed(&root).contains(&"capabilities"),
            "root's default set is judged by non-root, not here"
        );
    }

    #[test]
    fn ratings_follow_systemd() {
        let cases = [
            (10.0, "UNSAFE"),
            (9.0, "UNSAFE"),
            (8.0, "EXPOSED"),
            (5.0, "MEDIUM"),
            (1.0, "OK"),
            (0.5, "SAFE"),
            (0.0, "PERFECT"),
        ];
        for (score, want) in cases {
            assert_eq!(rating(score), want, "{score}");
        }
    }
}
