//! The protection keys of `[container]` and `[[device]]`.

use super::container::container;
use super::*;
use crate::unit::{DeviceSpec, ProtectSystem, Protection};

fn has_net_raw(c: &ContainerSpec) -> bool {
    c.capabilities
        .iter()
        .any(|cap| cap.0 == caps::Capability::CAP_NET_RAW)
}

#[test]
fn defaults_follow_the_unit_shape() {
    // The default unit sees the host's files: everything on.
    let p = container("").protection;
    assert_eq!(p, Protection::default());
    assert_eq!(p.protect_system, ProtectSystem::Full);
    assert!(p.private_tmp && p.private_devices && p.protect_kernel && p.protect_cgroups);
    assert!(!p.control_socket && p.ambient_capabilities.is_empty());
    // Its own root: the host's system files are not there.
    let p = container("[container]\nrootfs = \"/srv/root\"\n").protection;
    assert_eq!(p.protect_system, ProtectSystem::No);
    assert!(!p.private_tmp && p.private_devices && p.protect_kernel);
    // No mount namespace: file-system protections cannot apply, and say so.
    let p = container("[container]\nnamespaces = []\n").protection;
    assert_eq!(p, Protection::defaults(false, false));
    assert_eq!(p.protect_system, ProtectSystem::No);
    assert!(!p.private_tmp && !p.private_devices && !p.protect_kernel && !p.protect_cgroups);
}

#[test]
fn every_key_relaxes_or_sets_its_protection() {
    let p = container(
        "[container]\nprotect_system = \"strict\"\nwritable_paths = [\"/var/lib/app\"]\n\
         private_tmp = false\nprivate_devices = true\nprotect_kernel = false\n\
         protect_cgroups = false\ncontrol_socket = true\nuser_ns_dummy = 1\n"
            .replace("user_ns_dummy = 1\n", "")
            .as_str(),
    )
    .protection;
    assert_eq!(p.protect_system, ProtectSystem::Strict);
    assert_eq!(
        p.writable_paths,
        vec![std::path::PathBuf::from("/var/lib/app")]
    );
    assert!(!p.private_tmp && p.private_devices && !p.protect_kernel && !p.protect_cgroups);
    assert!(p.control_socket);
}

#[test]
fn devices_are_listed_with_their_access() {
    let c = container(
        "[[device]]\npath = \"/dev/fuse\"\n[[device]]\npath = \"/dev/kvm\"\naccess = \"rwm\"\n",
    );
    assert_eq!(
        c.protection.devices,
        vec![
            DeviceSpec {
                path: "/dev/fuse".into(),
                access: "rw".into()
            },
            DeviceSpec {
                path: "/dev/kvm".into(),
                access: "rwm".into()
            },
        ]
    );
}

#[test]
fn protection_mistakes_are_located() {
    assert_err(
        &with("[container]\nnamespaces = []\nprotect_system = \"full\"\n"),
        5,
        18,
        "protect_system needs a mnt namespace",
    );
    assert_err(
        &with("[container]\nnamespaces = [\"pid\"]\nprivate_tmp = true\n"),
        5,
        15,
        "private_tmp = true needs a mnt namespace",
    );
    assert_err(
        &with("[container]\nprotect_system = \"readonly\"\n"),
        4,
        18,
        "\"no\", \"yes\", \"full\", \"strict\"",
    );
    assert_err(
        &with("[container]\nprivate_devices = false\n[[device]]\npath = \"/dev/fuse\"\n"),
        5,
        1,
        "[[device]] needs private_devices",
    );
    assert_err(
        &with("[[device]]\npath = \"/etc/passwd\"\n"),
        4,
        8,
        "must be below /dev/",
    );
    assert_err(
        &with("[[device]]\npath = \"/dev/fuse\"\naccess = \"wr\"\n"),
        5,
        10,
        "invalid device access \"wr\"",
    );
    assert_err(
        &with("[[device]]\naccess = \"r\"\n"),
        3,
        1,
        "missing path in [[device]]",
    );
    assert_err(
        &with("[container]\nambient_capabilities = [\"sys_admin\"]\n"),
        4,
        25,
        "ambient capability CAP_SYS_ADMIN is not kept",
    );
}

#[test]
fn ambient_capabilities_must_be_kept_ones() {
    let c = container(
        "[container]\ncapabilities = [\"net_bind_service\", \"chown\"]\n\
         ambient_capabilities = [\"net_bind_service\"]\n",
    );
    let names: Vec<String> = c
        .protection
        .ambient_capabilities
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, vec!["CAP_NET_BIND_SERVICE"]);
}

#[test]
fn net_raw_is_only_a_default_with_a_network_namespace_of_its_own() {
    assert!(!has_net_raw(&container("")), "host network: no raw sockets");
    let own = container("[container]\nnamespaces = [\"mnt\", \"pid\", \"net\"]\n");
    assert!(has_net_raw(&own), "own network: Docker's default set");
    let asked = container("[container]\ncapabilities = [\"net_raw\"]\n");
    assert!(has_net_raw(&asked), "listed explicitly: kept");
}
