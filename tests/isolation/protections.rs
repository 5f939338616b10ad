//! The default protections (issue 11), probed from inside units: a default unit
//! cannot reach supd's state directory, write kernel or cgroup state, see the
//! host's devices, write system files or share the host's /tmp; each protection
//! comes back when its key relaxes it, so every probe can fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A host device a private /dev leaves out (the first that exists here).
fn host_only_device() -> &'static str {
    [
        "/dev/loop0",
        "/dev/sda",
        "/dev/vda",
        "/dev/nvme0n1",
        "/dev/kmsg",
        "/dev/loop-control",
    ]
    .into_iter()
    .find(|d| Path::new(d).exists())
    .expect("some host device")
}

/// The cgroup.procs file at the top of the (first) cgroup hierarchy, as a shell
/// expression: the cgroup2 root on v2, the pids hierarchy on v1.
const CGROUP_PROCS: &str =
    "f=/sys/fs/cgroup/cgroup.procs; [ -e $f ] || f=/sys/fs/cgroup/pids/cgroup.procs";

/// Shell lines printing `name=value` for each protection. Files are only opened
/// for writing (`: >` writes nothing), so a relaxed unit changes nothing.
fn probes(state: &Path, device: &str, tmp_mark: &str) -> String {
    format!(
        "{CGROUP_PROCS}; \
         test -S {state}/control.sock && echo supd=visible || echo supd=hidden; \
         (: > /sys/power/state) 2>/dev/null && echo sys=writable || echo sys=readonly; \
         (: > /proc/sys/kernel/panic) 2>/dev/null && echo procsys=writable || echo procsys=readonly; \
         (: > $f) 2>/dev/null && echo cgroup=writable || echo cgroup=readonly; \
         grep -qx $$ $f && echo view=own || echo view=host; \
         test -e {device} && echo dev=host || echo dev=private; \
         (: >> /etc/passwd) 2>/dev/null && echo etc=writable || echo etc=readonly; \
         test -e /tmp/{tmp_mark}-host && echo tmp=host || echo tmp=private; \
         touch /tmp/{tmp_mark}-$SUP_UNIT",
        state = state.display(),
    )
}

/// `name=value` lines -> map.
fn parse(report: &str) -> BTreeMap<String, String> {
    report
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Files a test put into the host's /tmp (or its units did); removed when dropped.
struct HostTmpFiles(Vec<PathBuf>);

impl Drop for HostTmpFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

pub fn default_protections_hold_and_each_key_relaxes_its_own() {
    let sup = Sup::prepare(&[]);
    let mark = format!("sup-probe-{}", sup.cgroup_root());
    let device = host_only_device();
    // (unit, key relaxed, the probes it flips)
    type Relaxed = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let relaxed: &[Relaxed] = &[
        ("system", "protect_system = \"no\"", &[("etc", "writable")]),
        ("tmp", "private_tmp = false", &[("tmp", "host")]),
        ("devices", "private_devices = false", &[("dev", "host")]),
        (
            "kernel",
            "protect_kernel = false",
            &[("sys", "writable"), ("procsys", "writable")],
        ),
        (
            "cgroups",
            "protect_cgroups = false",
            &[("cgroup", "writable"), ("view", "host")],
        ),
        ("socket", "control_socket = true", &[("supd", "visible")]),
    ];
    let mut host_files = HostTmpFiles(vec![PathBuf::from(format!("/tmp/{mark}-host"))]);
    std::fs::write(&host_files.0[0], "the host's\n").expect("host /tmp file");
    let probe = probes(&sup.state_dir(), device, &mark);
    // The default unit also tries the real escape: moving itself to the root cgroup.
    let escape = format!(
        "{CGROUP_PROCS}; echo $$ > $f 2>/dev/null && echo escape=moved || echo escape=refused"
    );
    let dir = sup.path().to_path_buf();
    let out = |name: &str| dir.join(name);
    sup.write_unit(
        "default",
        &unit("", &report(&out("default"), &format!("{probe}; {escape}"))),
    );
    for (name, key, _) in relaxed {
        sup.write_unit(name, &unit(key, &report(&out(name), &probe)));
    }
    let sup = sup.launch();
    let defaults: BTreeMap<&str, &str> = [
        ("supd", "hidden"),
        ("sys", "readonly"),
        ("procsys", "readonly"),
        ("cgroup", "readonly"),
        ("view", "own"),
        ("dev", "private"),
        ("etc", "readonly"),
        ("tmp", "private"),
    ]
    .into();
    let seen = parse(&wait_file(&out("default")));
    let mut want: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.insert("escape".into(), "refused".into());
    assert_eq!(seen, want, "a default unit");
    for (name, key, flips) in relaxed {
        let seen = parse(&wait_file(&out(name)));
        let mut want = defaults.clone();
        want.extend(flips.iter().copied());
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(seen, want, "{key} relaxes exactly its own protection");
    }
    // What a unit writes to its private /tmp stays there; with the host's /tmp it
    // lands on the host.
    for (name, _, _) in relaxed {
        let written = PathBuf::from(format!("/tmp/{mark}-{name}"));
        assert_eq!(
            written.exists(),
            *name == "tmp",
            "{name}: {} on the host",
            written.display()
        );
        host_files.0.push(written);
    }
    assert!(!Path::new(&format!("/tmp/{mark}-default")).exists());
    drop(sup);
}

pub fn strict_leaves_only_writable_paths_and_declared_mounts_writable() {
    let sup = Sup::prepare(&[]);
    let writable = shared_dir(sup.path(), "writable");
    let other = shared_dir(sup.path(), "other");
    let data = shared_dir(sup.path(), "data");
    let view = shared_dir(sup.path(), "view");
    let results = shared_dir(sup.path(), "results");
    let container = format!(
        "protect_system = \"strict\"\nwritable_paths = [{writable:?}, {results:?}]\n\
         [[mount]]\ntype = \"bind\"\nsource = {data:?}\ntarget = {view:?}"
    );
    let try_write = |what: &str, dir: &Path| {
        format!(
            "touch {d}/x 2>/dev/null && echo {what}=writable || echo {what}=readonly",
            d = dir.display()
        )
    };
    let script = [
        try_write("writable_path", &writable),
        try_write("other", &other),
        try_write("bind", &view),
        try_write("tmp", Path::new("/tmp")),
        try_write("dev_shm", Path::new("/dev/shm")),
        "(: >> /etc/passwd) 2>/dev/null && echo etc=writable || echo etc=readonly".into(),
    ]
    .join("; ");
    sup.write_unit(
        "strict",
        &unit(&container, &report(&results.join("out"), &script)),
    );
    let sup = sup.launch();
    let seen = parse(&wait_file(&results.join("out")));
    let want: BTreeMap<String, String> = [
        ("writable_path", "writable"),
        ("other", "readonly"),
        ("bind", "writable"),
        ("tmp", "writable"),
        ("dev_shm", "writable"),
        ("etc", "readonly"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(seen, want);
    assert!(writable.join("x").exists() && data.join("x").exists());
    assert!(!other.join("x").exists());
    drop(sup);
}

pub fn declared_devices_are_the_hosts_nodes_in_a_private_dev() {
    let candidates = ["/dev/fuse", "/dev/net/tun", "/dev/loop-control", "/dev/kvm"];
    let devices: Vec<&str> = candidates
        .into_iter()
        .filter(|d| Path::new(d).exists())
        .take(2)
        .collect();
    assert!(!devices.is_empty(), "no candidate device on this host");
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("devices");
    let declared: String = devices
        .iter()
        .map(|d| format!("[[device]]\npath = {d:?}\n"))
        .collect();
    let script = devices
        .iter()
        .map(|d| format!("stat -c '%n %t:%T' {d}"))
        .chain([format!(
            "test -e {} && echo more || echo only",
            host_only_device()
        )])
        .collect::<Vec<_>>()
        .join("; ");
    sup.write_unit(
        "devices",
        &(declared + &sh_unit("", &report(&out, &script)) + "stop_timeout = \"2s\"\n"),
    );
    let sup = sup.launch();
    let seen = wait_file(&out);
    for d in &devices {
        let host = std::process::Command::new("stat")
            .args(["-c", "%n %t:%T", d])
            .output()
            .expect("stat");
        assert!(
            seen.contains(stdout(&host).trim()),
            "{d} is the host's node: {seen}"
        );
    }
    assert!(
        seen.ends_with("only\n"),
        "nothing else of the host's: {seen}"
    );
    drop(sup);
}

pub fn every_container_shape_is_protected_rootfs_userns_without_net_included() {
    let sup = Sup::prepare(&[]);
    set_mode(sup.path(), 0o755);
    let results = shared_dir(sup.path(), "results");
    let root = busybox_rootfs(&sup.path().join("rootfs"));
    let device = host_only_device();
    let probe = |out: &Path| {
        let lines = [
            CGROUP_PROCS.to_string(),
            format!(
                "test -S {}/control.sock && echo supd=visible || echo supd=hidden",
                sup.state_dir().display()
            ),
            "(: > /sys/power/state) 2>/dev/null && echo sys=writable || echo sys=readonly".into(),
            "test -d /sys/kernel && echo sys_seen=yes || echo sys_seen=no".into(),
            "(: > $f) 2>/dev/null && echo cgroup=writable || echo cgroup=readonly".into(),
            "(: > /proc/sys/kernel/panic) 2>/dev/null && echo procsys=writable || echo procsys=readonly".into(),
            "echo timer_list=$(cat /proc/timer_list | wc -c)".into(),
            format!("test -e {device} && echo dev=host || echo dev=private"),
        ];
        report(out, &lines.join("; "))
    };
    let shapes = [
        // A mount namespace only: the host's /proc, no IPC namespace.
        (
            "mnt_only",
            "namespaces = [\"mnt\"]\n".to_string(),
            results.clone(),
        ),
        (
            "userns",
            "namespaces = [\"user\", \"mnt\", \"pid\", \"ipc\", \"cgroup\"]\n\
             userns_base = 200000\n"
                .to_string(),
            results.clone(),
        ),
        // A new sysfs needs a network namespace owned by the user namespace:
        // without `net` the host's /sys is bound read-only instead.
        (
            "rootfs_userns",
            format!(
                "rootfs = {root:?}\n\
                 namespaces = [\"user\", \"mnt\", \"pid\", \"uts\", \"ipc\", \"cgroup\"]\n\
                 userns_base = 200000\n\
                 [[mount]]\ntype = \"bind\"\nsource = {results:?}\ntarget = \"/data\""
            ),
            PathBuf::from("/data"),
        ),
    ];
    for (name, container, dir) in &shapes {
        sup.write_unit(name, &unit(container, &probe(&dir.join(name))));
    }
    let sup = sup.launch();
    for (name, _, _) in &shapes {
        let seen = parse(&wait_file(&results.join(name)));
        let want: BTreeMap<String, String> = [
            ("supd", "hidden"),
            ("sys", "readonly"),
            ("sys_seen", "yes"),
            ("cgroup", "readonly"),
            ("procsys", "readonly"),
            ("timer_list", "0"),
            ("dev", "private"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(seen, want, "{name}");
    }
    let boxed = pid_of(&sup.unit("rootfs_userns"));
    let mountinfo = std::fs::read_to_string(format!("/proc/{boxed}/mountinfo")).expect("mountinfo");
    let sys = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/sys"))
        .unwrap_or_else(|| panic!("no /sys: {mountinfo}"));
    assert!(
        sys.split(' ').nth(5).is_some_and(|o| o.starts_with("ro,")),
        "read-only: {sys}"
    );
    drop(sup);
}
