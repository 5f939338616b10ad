//! The driver on v1, hybrid and v2 hosts laid out in a temporary directory, over
//! the cgroupfs model of `fake.rs`: no root needed, no real cgroup touched.

mod devices;
mod kill;

use std::path::{Path, PathBuf};

use super::fake::{FakeFs, Mount};
use super::fs::{CgroupFs, Files, Kernel};
use super::layout::Layout;
use super::{CgroupError, CgroupTree, RawUsage};
use crate::unit::{CpuMax, ResourceSpec};

/// supd's own cgroup on the test hosts, in every hierarchy.
const OWN: &str = "host";
const SUBTREE: &str = "sup";

/// The v1 hierarchies of a typical host: (mount directory, controllers).
const V1_MOUNTS: &[(&str, &[&str])] = &[
    ("memory", &["memory"]),
    ("cpu,cpuacct", &["cpu", "cpuacct"]),
    ("pids", &["pids"]),
    ("cpuset", &["cpuset"]),
    ("blkio", &["blkio"]),
];

/// What the v2 root offers on the test hosts.
const V2_OFFERED: &str = "cpuset cpu io memory hugetlb pids rdma";

/// A host's cgroup mounts below a temporary directory, with supd's own cgroup.
struct Host {
    tmp: tempfile::TempDir,
    fs: FakeFs,
    mountinfo: String,
    proc_cgroup: String,
}

impl Host {
    fn new() -> Host {
        Host {
            tmp: tempfile::tempdir().expect("tempdir"),
            fs: FakeFs::default(),
            mountinfo: String::new(),
            proc_cgroup: String::new(),
        }
    }

    /// v1 hierarchies; `hybrid` adds a cgroup2 mount without controllers.
    fn v1(mounts: &[(&str, &[&'static str])], hybrid: bool) -> Host {
        let mut host = Host::new();
        let mut list = Vec::new();
        for (i, (dir, controllers)) in mounts.iter().enumerate() {
            let mount = host.path(dir);
            std::fs::create_dir(&mount).expect("mount dir");
            // The root cgroup of a cpuset hierarchy has every CPU and node.
            std::fs::write(mount.join("cpuset.cpus"), "0-3").expect("root cpus");
            std::fs::write(mount.join("cpuset.mems"), "0").expect("root mems");
            host.add_mount(
                i,
                &mount,
                "cgroup",
                &format!("rw,{}", controllers.join(",")),
            );
            host.proc_cgroup += &format!("{}:{}:/{OWN}\n", i + 1, controllers.join(","));
            list.push(Mount {
                path: mount,
                v2: false,
                controllers: controllers.to_vec(),
            });
        }
        if hybrid {
            let unified = host.path("unified");
            std::fs::create_dir_all(unified.join(OWN)).expect("unified");
            host.add_mount(99, &unified, "cgroup2", "rw");
            host.proc_cgroup += &format!("0::/{OWN}\n");
        }
        host.fs = FakeFs::new(list);
        for (dir, controllers) in mounts {
            let own = host.path(dir).join(OWN);
            host.fs.mkdir(&own).expect("own cgroup");
            if controllers.contains(&"cpuset") {
                host.fs
                    .write(&own.join("cpuset.cpus"), "0-3")
                    .expect("cpus");
                host.fs.write(&own.join("cpuset.mems"), "0").expect("mems");
            }
        }
        host.join_own_cgroups();
        host
    }

    /// Pure v2 offering `offered`; supd in the root cgroup or in `/host`.
    fn v2(offered: &str, at_root: bool) -> Host {
        let mut host = Host::new();
        let mount = host.path("v2");
        std::fs::create_dir(&mount).expect("mount dir");
        for (file, text) in [
            ("cgroup.controllers", offered),
            ("cgroup.subtree_control", offered),
            ("cgroup.procs", ""),
        ] {
            std::fs::write(mount.join(file), text).expect("root file");
        }
        host.add_mount(0, &mount, "cgroup2", "rw,nsdelegate");
        host.proc_cgroup = if at_root {
            "0::/\n".into()
        } else {
            format!("0::/{OWN}\n")
        };
        host.fs = FakeFs::new(vec![Mount {
            path: mount.clone(),
            v2: true,
            controllers: Vec::new(),
        }]);
        if !at_root {
            host.fs.mkdir(&mount.join(OWN)).expect("own cgroup");
        }
        host.join_own_cgroups();
        host
    }

    fn add_mount(&mut self, i: usize, mount: &Path, fstype: &str, opts: &str) {
        self.mountinfo += &format!(
            "{} 25 0:{} / {} rw - {fstype} {fstype} {opts}\n",
            30 + i,
            40 + i,
            mount.display()
        );
    }

    /// This process (standing for supd) in its own cgroup of every hierarchy.
    fn join_own_cgroups(&self) {
        for h in self.layout().hierarchies() {
            let procs = h.own_dir().join("cgroup.procs");
            self.fs
                .write(&procs, &std::process::id().to_string())
                .expect("join");
        }
    }

    fn layout(&self) -> Layout {
        Layout::detect(&self.mountinfo, &self.proc_cgroup, |dir| {
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default()
        })
        .expect("layout")
    }

    fn tree(&self) -> CgroupTree {
        self.tree_on(self.fs.clone())
    }

    fn tree_on(&self, fs: FakeFs) -> CgroupTree {
        CgroupTree::with_fs(Box::new(fs), self.layout(), SUBTREE).expect("subtree")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `<mount>/host/sup/<rest>`.
    fn sub(&self, mount: &str, rest: &str) -> PathBuf {
        self.path(mount).join(OWN).join(SUBTREE).join(rest)
    }

    fn read(&self, mount: &str, rest: &str) -> String {
        let file = self.sub(mount, rest);
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }

    /// Set a counter the kernel would keep (read-only to the driver).
    fn set(&self, mount: &str, rest: &str, text: &str) {
        std::fs::write(self.sub(mount, rest), text).expect("set");
    }
}

fn cpu_20_percent() -> CpuMax {
    CpuMax {
        quota_us: 20000,
        period_us: 100000,
    }
}

#[test]
fn create_writes_each_limit_to_its_file_on_v1_and_v2() {
    // (limits, v1 files, v2 files); files as (mount, path below the subtree, value).
    type Expected = &'static [(&'static str, &'static str, &'static str)];
    let cases: Vec<(ResourceSpec, Expected, Expected)> = vec![
        (
            ResourceSpec {
                memory_max: Some(64 << 20),
                memory_high: Some(32 << 20),
                memory_swap_max: Some(0),
                ..Default::default()
            },
            &[
                ("memory", "web/memory.limit_in_bytes", "67108864"),
                ("memory", "web/memory.soft_limit_in_bytes", "33554432"),
                ("memory", "web/memory.memsw.limit_in_bytes", "67108864"),
            ],
            &[
                ("v2", "web/memory.max", "67108864"),
                ("v2", "web/memory.high", "33554432"),
                ("v2", "web/memory.swap.max", "0"),
            ],
        ),
        (
            ResourceSpec {
                cpu_max: Some(cpu_20_percent()),
                cpu_weight: Some(200),
                ..Default::default()
            },
            &[
                ("cpu,cpuacct", "web/cpu.cfs_period_us", "100000"),
                ("cpu,cpuacct", "web/cpu.cfs_quota_us", "20000"),
                ("cpu,cpuacct", "web/cpu.shares", "2048"),
            ],
            &[
                ("v2", "web/cpu.max", "20000 100000"),
                ("v2", "web/cpu.weight", "200"),
            ],
        ),
        (
            ResourceSpec {
                pids_max: Some(32),
                io_weight: Some(50),
                ..Default::default()
            },
            &[
                ("pids", "web/pids.max", "32"),
                ("blkio", "web/blkio.weight", "250"),
            ],
            &[("v2", "web/pids.max", "32"), ("v2", "web/io.weight", "50")],
        ),
        (
            // A v1 cpuset cgroup inherits what the unit does not set.
            ResourceSpec {
                cpuset_cpus: Some("1".into()),
                ..Default::default()
            },
            &[
                ("cpuset", "web/cpuset.cpus", "1"),
                ("cpuset", "web/cpuset.mems", "0"),
            ],
            &[
                ("v2", "web/cpuset.cpus", "1"),
                ("v2", "web/cpuset.mems", ""),
            ],
        ),
    ];
    for (res, v1_files, v2_files) in cases {
        for (host, files) in [
            (Host::v1(V1_MOUNTS, true), v1_files),
            (Host::v2(V2_OFFERED, false), v2_files),
        ] {
            host.tree().create("web", &res).expect("create");
            for (mount, rest, value) in files {
                assert_eq!(host.read(mount, rest), *value, "{mount}/{rest} for {res:?}");
            }
        }
    }
}

#[test]
fn v1_units_join_only_the_hierarchies_they_use_and_place_joins_those() {
    let host = Host::v1(V1_MOUNTS, true);
    let tree = host.tree();
    let memory_only = ResourceSpec {
        memory_max: Some(1 << 30),
        ..Default::default()
    };
    tree.create("web", &memory_only).expect("create");
    tree.place("web", 4242).expect("place");
    for mount in ["memory", "cpu,cpuacct", "pids"] {
        assert_eq!(host.read(mount, "web/cgroup.procs"), "4242", "{mount}");
    }
    for mount in ["cpuset", "blkio"] {
        assert!(!host.sub(mount, "web").exists(), "{mount} joined");
    }
    assert!(!host.path("unified").join(OWN).join(SUBTREE).exists());

    // A reload adding a cpuset limit joins cpuset, with every process of the unit.
    tree.place("web", 4243).expect("place");
    let with_cpuset = ResourceSpec {
        cpuset_cpus: Some("2-3".into()),
        ..memory_only
    };
    tree.apply("web", &with_cpuset).expect("apply");
    assert_eq!(host.read("cpuset", "web/cgroup.procs"), "4242\n4243");
    assert_eq!(host.read("cpuset", "web/cpuset.cpus"), "2-3");
    assert_eq!(host.read("cpuset", "web/cpuset.mems"), "0");
    assert!(!host.sub("blkio", "web").exists());
}

/// The files a helper writes `0` into: v1's `tasks` (a thread moving itself
/// skips the kernel's global lock), v2's `cgroup.procs`; every hierarchy.
#[test]
fn join_files_are_tasks_on_v1_and_cgroup_procs_on_v2() {
    let host = Host::v1(V1_MOUNTS, true);
    let files = host.tree().join_files("web");
    for mount in ["memory", "cpu,cpuacct", "pids", "cpuset", "blkio"] {
        assert!(
            files.contains(&host.sub(mount, "web/tasks")),
            "{mount}: {files:?}"
        );
    }
    assert!(files.iter().all(|f| f.ends_with("tasks")), "{files:?}");
    let host = Host::v2(V2_OFFERED, false);
    let files = host.tree().join_files("web");
    assert_eq!(files, vec![host.sub("v2", "web/cgroup.procs")]);
}

#[test]
fn v2_enables_only_the_offered_controllers_with_supd_in_a_leaf() {
    let pid = std::process::id().to_string();
    for (offered, line) in [
        (V2_OFFERED, "cpu memory pids io cpuset"),
        ("memory pids hugetlb", "memory pids"),
    ] {
        let host = Host::v2(offered, false);
        host.tree();
        let own = host.path("v2").join(OWN);
        let read = |p: &Path| std::fs::read_to_string(p).expect("read");
        assert_eq!(read(&own.join("cgroup.subtree_control")), line);
        assert_eq!(host.read("v2", "cgroup.subtree_control"), line);
        assert_eq!(host.read("v2", ".supd/cgroup.procs"), pid);
        assert_eq!(read(&own.join("cgroup.procs")), "");
    }
    // In the root cgroup, supd stays where it is (the root may have processes).
    let host = Host::v2(V2_OFFERED, true);
    host.tree();
    let sup = host.path("v2").join(SUBTREE);
    assert!(!sup.join(".supd").exists());
    assert_eq!(
        std::fs::read_to_string(sup.join("cgroup.subtree_control")).expect("read"),
        "cpu memory pids io cpuset"
    );
}

#[test]
fn a_limit_without_its_controller_is_an_error_naming_the_key() {
    let io = ResourceSpec {
        io_weight: Some(100),
        ..Default::default()
    };
    for host in [
        Host::v1(&V1_MOUNTS[..3], false),
        Host::v2("cpu memory pids", false),
    ] {
        let err = host
            .tree()
            .create("web", &io)
            .expect_err("no io controller");
        assert!(
            matches!(
                err,
                CgroupError::MissingController {
                    key: "io_weight",
                    controller: "io"
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.errno(), None);
    }
}

#[test]
fn oom_kills_and_usage_read_the_files_of_each_version() {
    let res = ResourceSpec::default();
    let v1 = Host::v1(V1_MOUNTS, true);
    let tree = v1.tree();
    tree.create("web", &res).expect("create");
    assert_eq!(tree.oom_kills("web"), 0);
    v1.set(
        "memory",
        "web/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    v1.set("memory", "web/memory.usage_in_bytes", "1000\n");
    v1.set("memory", "web/memory.max_usage_in_bytes", "2000\n");
    v1.set("cpu,cpuacct", "web/cpuacct.usage", "5000000\n");
    v1.set("pids", "web/pids.current", "4\n");
    assert_eq!(tree.oom_kills("web"), 3);
    let want = RawUsage {
        memory_current: Some(1000),
        memory_peak: Some(2000),
        cpu_usage_usec: Some(5000),
        tasks: Some(4),
    };
    assert_eq!(tree.usage("web"), want);
    assert_eq!(tree.usage_of(&["web".to_string()]), [want]);

    let v2 = Host::v2(V2_OFFERED, false);
    let tree = v2.tree();
    tree.create("web", &res).expect("create");
    v2.set(
        "v2",
        "web/memory.events",
        "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n",
    );
    v2.set("v2", "web/memory.current", "1000\n");
    v2.set("v2", "web/memory.peak", "2000\n");
    v2.set("v2", "web/cpu.stat", "usage_usec 5000\nuser_usec 4000\n");
    v2.set("v2", "web/pids.current", "4\n");
    assert_eq!(tree.oom_kills("web"), 2);
    assert_eq!(tree.usage("web"), want);

    // A unit without a cgroup has nothing to report.
    assert_eq!(tree.oom_kills("other"), 0);
    assert_eq!(tree.usage("other"), RawUsage::default());
    // Read for many units at once (on several threads), each as alone, in order.
    let mut units: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    for unit in &units {
        tree.create(unit, &res).expect("create");
        v2.set(
            "v2",
            &format!("{unit}/pids.current"),
            &format!("{}\n", unit.len()),
        );
    }
    units.extend(["web".to_string(), "other".to_string()]);
    let each: Vec<RawUsage> = units.iter().map(|u| tree.usage(u)).collect();
    assert_eq!(tree.usage_of(&units), each);
    assert_eq!(each[0].tasks, Some(2));
    assert_eq!(each[300..], [want, RawUsage::default()]);
}

#[test]
fn kill_all_empties_the_unit_and_remove_deletes_it() {
    let res = ResourceSpec {
        pids_max: Some(10),
        ..Default::default()
    };
    // v1 has no cgroup.kill: each member is killed; v2 writes cgroup.kill.
    for (host, mounts, killed) in [
        (
            Host::v1(V1_MOUNTS, true),
            &["memory", "cpu,cpuacct", "pids"][..],
            vec![7001, 7002],
        ),
        (Host::v2(V2_OFFERED, false), &["v2"][..], vec![]),
    ] {
        let tree = host.tree();
        tree.create("web", &res).expect("create");
        tree.place("web", 7001).expect("place");
        tree.place("web", 7002).expect("place");
        tree.kill_all("web").expect("kill_all");
        assert_eq!(host.fs.killed(), killed);
        for mount in mounts {
            assert_eq!(host.read(mount, "web/cgroup.procs"), "", "{mount}");
        }
        tree.remove("web").expect("remove");
        for mount in mounts {
            assert!(!host.sub(mount, "web").exists(), "{mount}");
            assert!(host.sub(mount, "").exists(), "{mount}: the subtree stays");
        }
        // Already gone is fine, and so is a unit that never had a cgroup.
        tree.remove("web").expect("remove again");
        tree.kill_all("never").expect("kill_all of nothing");
    }
}

/// A subtree with two units, each with a process.
fn tree_with_two_units(host: &Host) -> CgroupTree {
    let tree = host.tree();
    for (unit, member) in [("a", 7101), ("b", 7102)] {
        tree.create(unit, &ResourceSpec::default()).expect("create");
        tree.place(unit, member).expect("place");
    }
    tree
}

#[test]
fn teardown_removes_every_unit_and_the_subtree() {
    let pid = std::process::id().to_string();
    for host in [Host::v1(V1_MOUNTS, true), Host::v2(V2_OFFERED, true)] {
        tree_with_two_units(&host).teardown().expect("teardown");
        for h in host.layout().hierarchies() {
            assert!(
                !h.own_dir().join(SUBTREE).exists(),
                "{}",
                h.mount().display()
            );
            let procs = std::fs::read_to_string(h.own_dir().join("cgroup.procs")).expect("own");
            assert_eq!(procs, pid, "supd still in its own cgroup");
        }
    }
}

/// Known limit: on v2 below the root, supd's own cgroup keeps the controllers
/// it enabled for the subtree, so the kernel refuses supd's move back into it
/// (no internal processes) and the leaf and the subtree stay after the units are
/// gone. Disabling them there would take them from any sibling subtree too.
#[test]
fn leftovers_of_an_earlier_supd_are_killed_and_removed() {
    for host in [Host::v1(V1_MOUNTS, true), Host::v2(V2_OFFERED, true)] {
        // An earlier supd ran units a and b, then died without tearing down.
        drop(tree_with_two_units(&host));
        let tree = host.tree();
        let mut found = tree.clear_leftovers();
        found.sort_by(|x, y| x.unit.cmp(&y.unit));
        let summary: Vec<(&str, usize)> = found
            .iter()
            .map(|l| (l.unit.as_str(), l.processes))
            .collect();
        assert_eq!(summary, vec![("a", 1), ("b", 1)]);
        // The model refuses rmdir while processes are in a cgroup: no error means
        // they were killed (cgroup.kill on v2, a SIGKILL each on v1).
        assert!(found.iter().all(|l| l.error.is_none()), "{found:?}");
        assert!(
            tree.clear_leftovers().is_empty(),
            "nothing left the second time"
        );
    }
}

#[test]
fn teardown_on_v2_below_the_root_removes_the_units_but_cannot_leave_the_leaf() {
    let host = Host::v2(V2_OFFERED, false);
    let err = tree_with_two_units(&host)
        .teardown()
        .expect_err("supd cannot go back");
    let own_procs = host.path("v2").join(OWN).join("cgroup.procs");
    assert!(
        matches!(&err, CgroupError::Write { path, .. } if path == &own_procs),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(libc::EBUSY));
    assert!(!host.sub("v2", "a").exists() && !host.sub("v2", "b").exists());
    assert!(host.sub("v2", ".supd").exists());
}

#[test]
fn remove_gives_up_on_a_cgroup_that_keeps_a_process() {
    let host = Host::v2(V2_OFFERED, false);
    let tree = host.tree();
    tree.create("web", &ResourceSpec::default())
        .expect("create");
    tree.place("web", 7201).expect("place");
    let err = tree.remove("web").expect_err("busy");
    assert!(matches!(&err, CgroupError::Rmdir { path, .. } if path == &host.sub("v2", "web")));
    assert_eq!(err.errno(), Some(libc::EBUSY));
}

#[test]
fn errors_name_the_step_and_the_path_and_keep_the_errno() {
    // A missing interface file (v2 without swap accounting).
    let host = Host::v2(V2_OFFERED, false);
    let tree = host.tree_on(host.fs.clone().without(&["memory.swap.max"]));
    let swap = ResourceSpec {
        memory_swap_max: Some(0),
        ..Default::default()
    };
    let err = tree.create("web", &swap).expect_err("no memory.swap.max");
    let file = host.sub("v2", "web/memory.swap.max");
    assert!(
        matches!(&err, CgroupError::Write { path, value, .. } if path == &file && value == "0"),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(libc::ENOENT));
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );

    // A read-only one.
    let files = Files::new(Box::new(host.fs.clone()));
    let err = files
        .write(&host.sub("v2", "web/memory.current"), "0")
        .expect_err("read-only");
    assert_eq!(err.errno(), Some(libc::EACCES), "{err:?}");

    // mkdir where supd's own cgroup is gone.
    let gone = Host::v2(V2_OFFERED, false);
    std::fs::remove_dir_all(gone.path("v2").join(OWN)).expect("remove own");
    let err = CgroupTree::with_fs(Box::new(gone.fs.clone()), gone.layout(), SUBTREE)
        .expect_err("no parent");
    assert!(matches!(err, CgroupError::Mkdir { .. }), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ENOENT));
}

#[test]
fn the_kernel_fs_never_creates_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("memory.max");
    let err = Kernel.write(&file, "1").expect_err("missing");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(!file.exists());
    std::fs::write(&file, "max\n").expect("fixture");
    Kernel.write(&file, "4096").expect("write");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "4096");
}
