//! What a unit's `[resources]` mean in cgroup files: which file gets which value
//! on v1 and on v2, which v1 hierarchies a unit joins, and which controllers supd
//! enables on v2. Pure, so it is table-tested without any cgroup.

use super::layout::Hierarchy;
use crate::unit::ResourceSpec;

/// Controllers supd asks for on cgroup v2.
const V2_CONTROLLERS: &[&str] = &["cpu", "memory", "pids", "io", "cpuset"];

/// One file to write for one `[resources]` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The `[resources]` key, named in errors.
    pub key: &'static str,
    /// The controller by its v2 name (`io` is `blkio` on v1, see `Hierarchy::has`).
    pub controller: &'static str,
    pub v2_file: &'static str,
    pub v2_value: String,
    pub v1_file: &'static str,
    pub v1_value: String,
}

impl Setting {
    /// A setting whose value reads the same on both versions.
    fn same(
        key: &'static str,
        controller: &'static str,
        v2_file: &'static str,
        v1_file: &'static str,
        value: String,
    ) -> Setting {
        Setting {
            key,
            controller,
            v2_file,
            v2_value: value.clone(),
            v1_file,
            v1_value: value,
        }
    }

    /// The file and value for a hierarchy of this version.
    pub fn for_version(&self, v2: bool) -> (&'static str, &str) {
        if v2 {
            (self.v2_file, &self.v2_value)
        } else {
            (self.v1_file, &self.v1_value)
        }
    }
}

/// The files to write for a resource spec, in an order the kernel accepts: on v1
/// `cpu.cfs_period_us` before `cpu.cfs_quota_us`, and `memory.limit_in_bytes`
/// before `memory.memsw.limit_in_bytes` (memsw may never be below it).
pub fn settings(res: &ResourceSpec) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(m) = res.memory_max {
        out.push(Setting::same(
            "memory_max",
            "memory",
            "memory.max",
            "memory.limit_in_bytes",
            m.to_string(),
        ));
    }
    if let Some(m) = res.memory_high {
        out.push(Setting::same(
            "memory_high",
            "memory",
            "memory.high",
            "memory.soft_limit_in_bytes",
            m.to_string(),
        ));
    }
    if let Some(s) = res.memory_swap_max {
        // v1 limits memory+swap together.
        let v1 = res.memory_max.map_or(u64::MAX, |m| m.saturating_add(s));
        out.push(Setting {
            key: "memory_swap_max",
            controller: "memory",
            v2_file: "memory.swap.max",
            v2_value: s.to_string(),
            v1_file: "memory.memsw.limit_in_bytes",
            v1_value: v1.to_string(),
        });
    }
    if let Some(c) = res.cpu_max {
        // v1 has two files for v2's one line; v2 gets the same line twice, which
        // keeps the list one entry per v1 file and costs nothing.
        let line = format!("{} {}", c.quota_us, c.period_us);
        for (v1_file, v1_value) in [
            ("cpu.cfs_period_us", c.period_us),
            ("cpu.cfs_quota_us", c.quota_us),
        ] {
            out.push(Setting {
                key: "cpu_max",
                controller: "cpu",
                v2_file: "cpu.max",
                v2_value: line.clone(),
                v1_file,
                v1_value: v1_value.to_string(),
            });
        }
    }
    if let Some(w) = res.cpu_weight {
        // v1 shares: the v2 default weight 100 is 1024 shares.
        out.push(Setting {
            key: "cpu_weight",
            controller: "cpu",
            v2_file: "cpu.weight",
            v2_value: w.to_string(),
            v1_file: "cpu.shares",
            v1_value: (u64::from(w) * 1024 / 100).max(2).to_string(),
        });
    }
    if let Some(p) = res.pids_max {
        out.push(Setting::same(
            "pids_max",
            "pids",
            "pids.max",
            "pids.max",
            p.to_string(),
        ));
    }
    if let Some(w) = res.io_weight {
        // v1 blkio.weight is 10..=1000; the v2 default 100 maps to 500.
        out.push(Setting {
            key: "io_weight",
            controller: "io",
            v2_file: "io.weight",
            v2_value: w.to_string(),
            v1_file: "blkio.weight",
            v1_value: (u64::from(w) * 5).clamp(10, 1000).to_string(),
        });
    }
    if let Some(c) = &res.cpuset_cpus {
        out.push(Setting::same(
            "cpuset_cpus",
            "cpuset",
            "cpuset.cpus",
            "cpuset.cpus",
            c.clone(),
        ));
    }
    if let Some(m) = &res.cpuset_mems {
        out.push(Setting::same(
            "cpuset_mems",
            "cpuset",
            "cpuset.mems",
            "cpuset.mems",
            m.clone(),
        ));
    }
    out
}

/// Whether a unit joins this hierarchy. Every v1 migration costs (the kernel
/// synchronises RCU for it), so a unit joins only what it uses: pids (membership,
/// kill, tasks), memory (usage, OOM kills) and cpuacct (CPU time) always, cpu,
/// cpuset and blkio only for their limits, devices only for a device allowlist
/// (`restricted`). v2 is one hierarchy: always.
pub fn joined(h: &Hierarchy, res: &ResourceSpec, restricted: bool) -> bool {
    h.is_v2()
        || (h.has("devices") && restricted)
        || h.has("pids")
        || h.has("memory")
        || h.has("cpuacct")
        || (h.has("cpu") && (res.cpu_max.is_some() || res.cpu_weight.is_some()))
        || (h.has("cpuset") && (res.cpuset_cpus.is_some() || res.cpuset_mems.is_some()))
        || (h.has("io") && res.io_weight.is_some())
}

/// The `cgroup.subtree_control` line enabling the controllers supd wants among
/// those the kernel offers (`offered`, from `cgroup.controllers`); None when it
/// offers none of them. Only these, never every controller the kernel has.
pub fn v2_enable_line(offered: impl Fn(&str) -> bool) -> Option<String> {
    let wanted: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| offered(c))
        .map(|c| format!("+{c}"))
        .collect();
    (!wanted.is_empty()).then(|| wanted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::layout::Layout;
    use crate::unit::CpuMax;

    /// A setting as one line of a table: `key: v2 file=value | v1 file=value`.
    fn rows(res: &ResourceSpec) -> Vec<String> {
        settings(res)
            .iter()
            .map(|s| {
                format!(
                    "{}: {}={} | {}={}",
                    s.key, s.v2_file, s.v2_value, s.v1_file, s.v1_value
                )
            })
            .collect()
    }

    #[test]
    fn files_and_values_per_version_in_write_order() {
        let cpu = CpuMax {
            quota_us: 20000,
            period_us: 100000,
        };
        let cases: Vec<(ResourceSpec, &[&str])> = vec![
            (ResourceSpec::default(), &[]),
            (
                ResourceSpec {
                    memory_max: Some(1 << 20),
                    memory_high: Some(1 << 19),
                    memory_swap_max: Some(4096),
                    ..Default::default()
                },
                &[
                    "memory_max: memory.max=1048576 | memory.limit_in_bytes=1048576",
                    "memory_high: memory.high=524288 | memory.soft_limit_in_bytes=524288",
                    // v1 counts memory and swap together.
                    "memory_swap_max: memory.swap.max=4096 | memory.memsw.limit_in_bytes=1052672",
                ],
            ),
            (
                ResourceSpec {
                    memory_swap_max: Some(0),
                    ..Default::default()
                },
                &[
                    "memory_swap_max: memory.swap.max=0 | memory.memsw.limit_in_bytes=18446744073709551615",
                ],
            ),
            (
                ResourceSpec {
                    cpu_max: Some(cpu),
                    cpu_weight: Some(100),
                    ..Default::default()
                },
                &[
                    "cpu_max: cpu.max=20000 100000 | cpu.cfs_period_us=100000",
                    "cpu_max: cpu.max=20000 100000 | cpu.cfs_quota_us=20000",
                    "cpu_weight: cpu.weight=100 | cpu.shares=1024",
                ],
            ),
            (
                ResourceSpec {
                    cpu_weight: Some(1),
                    io_weight: Some(1),
                    ..Default::default()
                },
                &[
                    "cpu_weight: cpu.weight=1 | cpu.shares=10",
                    "io_weight: io.weight=1 | blkio.weight=10",
                ],
            ),
            (
                ResourceSpec {
                    io_weight: Some(10000),
                    ..Default::default()
                },
                &["io_weight: io.weight=10000 | blkio.weight=1000"],
            ),
            (
                ResourceSpec {
                    pids_max: Some(32),
                    cpuset_cpus: Some("0-1".into()),
                    cpuset_mems: Some("0".into()),
                    ..Default::default()
                },
                &[
                    "pids_max: pids.max=32 | pids.max=32",
                    "cpuset_cpus: cpuset.cpus=0-1 | cpuset.cpus=0-1",
                    "cpuset_mems: cpuset.mems=0 | cpuset.mems=0",
                ],
            ),
        ];
        for (res, want) in cases {
            assert_eq!(rows(&res), want, "{res:?}");
        }
    }

    #[test]
    fn controllers_by_key() {
        let res = ResourceSpec {
            memory_max: Some(4096),
            cpu_weight: Some(5),
            pids_max: Some(1),
            io_weight: Some(5),
            cpuset_cpus: Some("0".into()),
            ..Default::default()
        };
        let got: Vec<(&str, &str)> = settings(&res)
            .iter()
            .map(|s| (s.key, s.controller))
            .collect();
        assert_eq!(
            got,
            [
                ("memory_max", "memory"),
                ("cpu_weight", "cpu"),
                ("pids_max", "pids"),
                ("io_weight", "io"),
                ("cpuset_cpus", "cpuset")
            ]
        );
    }

    #[test]
    fn v1_units_join_only_the_hierarchies_they_use() {
        let mounts = "\
32 30 0:28 / /cg/memory rw - cgroup cgroup rw,memory
33 30 0:29 / /cg/cpuacct rw - cgroup cgroup rw,cpuacct
34 30 0:30 / /cg/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /cg/cpuset rw - cgroup cgroup rw,cpuset
36 30 0:32 / /cg/blkio rw - cgroup cgroup rw,blkio
37 30 0:33 / /cg/cpu rw - cgroup cgroup rw,cpu
38 30 0:34 / /cg/devices rw - cgroup cgroup rw,devices";
        let own = "8:devices:/\n7:cpu:/\n6:blkio:/\n5:cpuset:/\n4:pids:/\n3:cpuacct:/\n2:memory:/";
        let layout = Layout::detect(mounts, own, |_| String::new()).expect("layout");
        let hs = layout.hierarchies();
        let joined_mounts = |res: &ResourceSpec, restricted: bool| -> Vec<String> {
            hs.iter()
                .filter(|h| joined(h, res, restricted))
                .map(|h| h.mount().display().to_string())
                .collect()
        };
        let always = ["/cg/memory", "/cg/cpuacct", "/cg/pids"];
        let cases: Vec<(ResourceSpec, Vec<&str>)> = vec![
            (ResourceSpec::default(), always.to_vec()),
            (
                ResourceSpec {
                    memory_max: Some(4096),
                    pids_max: Some(1),
                    ..Default::default()
                },
                always.to_vec(),
            ),
            (
                ResourceSpec {
                    cpuset_mems: Some("0".into()),
                    ..Default::default()
                },
                [&always[..], &["/cg/cpuset"]].concat(),
            ),
            (
                ResourceSpec {
                    cpu_weight: Some(100),
                    ..Default::default()
                },
                [&always[..], &["/cg/cpu"]].concat(),
            ),
            (
                ResourceSpec {
                    io_weight: Some(100),
                    ..Default::default()
                },
                [&always[..], &["/cg/blkio"]].concat(),
            ),
        ];
        for (res, want) in cases {
            assert_eq!(joined_mounts(&res, false), want, "{res:?}");
            // A device allowlist adds the devices hierarchy, and only it.
            let with_devices = [&want[..], &["/cg/devices"]].concat();
            assert_eq!(joined_mounts(&res, true), with_devices, "{res:?}");
        }
    }

    #[test]
    fn enable_line_lists_only_wanted_and_offered_controllers() {
        for (available, want) in [
            (
                "cpuset cpu io memory hugetlb pids rdma misc",
                Some("+cpu +memory +pids +io +cpuset"),
            ),
            ("memory pids", Some("+memory +pids")),
            ("hugetlb rdma", None),
            ("", None),
        ] {
            let offered = |c: &str| available.split_whitespace().any(|a| a == c);
            assert_eq!(v2_enable_line(offered).as_deref(), want, "{available:?}");
        }
    }
}
