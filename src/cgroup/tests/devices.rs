//! The device allowlist through the driver: v1 `devices` files in order, v2
//! device programs attached, replaced on restart and removed, and the errors.

use super::*;
use crate::cgroup::devices::{Access, DeviceAllowlist, DeviceKind, DeviceRule};

/// The typical hierarchies plus `devices`.
const WITH_DEVICES: &[(&str, &[&str])] = &[
    ("memory", &["memory"]),
    ("cpu,cpuacct", &["cpu", "cpuacct"]),
    ("pids", &["pids"]),
    ("devices", &["devices"]),
];

/// The defaults plus a `[[device]]` for /dev/fuse with `rw`.
fn with_fuse() -> DeviceAllowlist {
    DeviceAllowlist::new([DeviceRule {
        kind: DeviceKind::Char,
        major: Some(10),
        minor: Some(229),
        access: Access::parse("rw").expect("rw"),
    }])
}

#[test]
fn v1_denies_all_then_allows_each_rule_in_order_and_place_joins() {
    let host = Host::v1(WITH_DEVICES, true);
    let tree = host.tree();
    let res = ResourceSpec::default();
    let list = with_fuse();
    tree.create_with("web", &res, Some(&list)).expect("create");
    // The model empties devices.list on `a` to devices.deny and appends each
    // allow line: this is the list only if the deny came first, then the rules.
    assert_eq!(
        host.read("devices", "web/devices.list"),
        list.v1_lines().join("\n")
    );
    assert!(
        host.read("devices", "web/devices.list")
            .ends_with("c 10:229 rw")
    );
    tree.place("web", 4242).expect("place");
    assert_eq!(host.read("devices", "web/cgroup.procs"), "4242");

    // A unit without private_devices stays out of the devices hierarchy.
    tree.create("open", &res).expect("create");
    assert!(!host.sub("devices", "open").exists());
    assert!(host.sub("pids", "open").exists());
}

#[test]
fn restarts_undo_what_the_last_run_had_and_this_one_does_not() {
    let res = ResourceSpec::default();
    // v1: the unit turned private_devices off; its devices cgroup goes, so the
    // next place does not put the process under the old rules.
    let host = Host::v1(WITH_DEVICES, true);
    let tree = host.tree();
    tree.create_with("web", &res, Some(&with_fuse()))
        .expect("create");
    tree.create_with("web", &res, None).expect("again, open");
    assert!(!host.sub("devices", "web").exists());
    tree.place("web", 4242).expect("place");
    assert_eq!(host.read("pids", "web/cgroup.procs"), "4242");

    // v2: each start leaves exactly one program, a new one; none when open.
    let host = Host::v2(V2_OFFERED, false);
    let tree = host.tree();
    let dir = host.sub("v2", "web");
    let mut seen = Vec::new();
    for _ in 0..3 {
        tree.create_with("web", &res, Some(&with_fuse()))
            .expect("create");
        let ids = host.fs.program_ids(&dir);
        assert_eq!(ids.len(), 1, "one program, not stacked: {ids:?}");
        assert!(!seen.contains(&ids[0]), "a new program each start");
        seen.push(ids[0]);
    }
    tree.create_with("web", &res, None).expect("open");
    assert_eq!(host.fs.program_ids(&dir), Vec::<u32>::new());
    tree.remove("web").expect("remove");
}

#[test]
fn v2_program_on_the_units_cgroup_denies_what_the_list_does_not_allow() {
    let host = Host::v2(V2_OFFERED, true);
    let tree = host.tree();
    tree.create_with("web", &ResourceSpec::default(), Some(&with_fuse()))
        .expect("create");
    let dir = host.path("v2").join(SUBTREE).join("web");
    let rw = Access::READ.union(Access::WRITE);
    use DeviceKind::{Block, Char};
    for (kind, major, minor, access, want) in [
        (Char, 1, 3, rw, true),
        (Char, 1, 9, Access::READ, true),
        (Char, 136, 2, rw, true),
        (Char, 10, 229, rw, true),
        (Char, 10, 229, Access::MKNOD, false),
        (Block, 7, 0, Access::MKNOD, false),
        (Block, 7, 0, rw, false),
        (Block, 8, 0, Access::READ, false),
        (Char, 1, 1, Access::READ, false),
    ] {
        assert_eq!(
            host.fs.device_allows(&dir, kind, major, minor, access),
            want,
            "{kind:?} {major}:{minor} {access}"
        );
    }
}

#[test]
fn no_device_control_is_an_error_naming_the_relaxation() {
    let host = Host::v1(V1_MOUNTS, true);
    let tree = host.tree();
    let err = tree
        .create_with("web", &ResourceSpec::default(), Some(&with_fuse()))
        .expect_err("no devices hierarchy");
    assert!(
        matches!(&err, CgroupError::Devices(inner) if matches!(**inner, CgroupError::NoDeviceControl)),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("device allowlist: "), "{text}");
    assert!(text.contains("private_devices = false"), "{text}");
    assert!(!host.sub("memory", "web").exists(), "nothing was created");
}

#[test]
fn device_step_errors_keep_the_step_the_path_and_the_errno() {
    let res = ResourceSpec::default();
    // v2: a kernel refusing the attach; the program of the last start stays.
    let host = Host::v2(V2_OFFERED, false);
    host.tree()
        .create_with("web", &res, Some(&with_fuse()))
        .expect("create");
    let dir = host.sub("v2", "web");
    let before = host.fs.program_ids(&dir);
    let refusing = host.tree_on(host.fs.clone().failing_bpf("attach", libc::EPERM));
    let err = refusing
        .create_with("web", &res, Some(&with_fuse()))
        .expect_err("attach refused");
    assert_eq!(err.errno(), Some(libc::EPERM));
    let text = err.to_string();
    assert!(text.starts_with("device allowlist: attach on "), "{text}");
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert_eq!(host.fs.program_ids(&dir), before, "never unfiltered");

    // A query that fails matters only when there is a program to attach.
    let no_bpf = host.tree_on(host.fs.clone().failing_bpf("query", libc::EINVAL));
    no_bpf.create_with("web", &res, None).expect("open");
    let err = no_bpf
        .create_with("web", &res, Some(&with_fuse()))
        .expect_err("query");
    assert_eq!(err.errno(), Some(libc::EINVAL));

    // v1: a rule the parent does not allow (the model refuses a bad deny).
    let host = Host::v1(WITH_DEVICES, false);
    let tree = host.tree();
    tree.create_with("web", &res, Some(&with_fuse()))
        .expect("create");
    let files = Files::new(Box::new(host.fs.clone()));
    let deny = host.sub("devices", "web/devices.deny");
    let err = files.write(&deny, "c 1:3 rwm").expect_err("model: only a");
    assert_eq!(err.errno(), Some(libc::EINVAL));
    assert!(err.to_string().contains("devices.deny"), "{err}");
}
