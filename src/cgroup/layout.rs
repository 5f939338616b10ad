//! Which cgroup hierarchies exist and where supd sits in them, parsed from
//! `/proc/self/mountinfo` and `/proc/self/cgroup`. Pure, so every layout (v1, v2,
//! hybrid) is unit-tested from text.

use std::path::{Path, PathBuf};

/// v1 controllers supd uses (others, like freezer or name=systemd, are left
/// alone). `devices` holds the device allowlists of units with `private_devices`.
const V1_CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "memory", "pids", "cpuset", "blkio", "devices",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    mount: PathBuf,
    /// supd's own cgroup in this hierarchy, relative to the mount.
    own: PathBuf,
    controllers: Vec<String>,
    v2: bool,
}

impl Hierarchy {
    pub fn mount(&self) -> &Path {
        &self.mount
    }
    pub fn own_dir(&self) -> PathBuf {
        self.mount
            .join(self.own.strip_prefix("/").unwrap_or(&self.own))
    }
    pub fn is_v2(&self) -> bool {
        self.v2
    }
    /// Whether the controller is usable here (`io` is `blkio` on v1).
    pub fn has(&self, controller: &str) -> bool {
        let name = if !self.v2 && controller == "io" {
            "blkio"
        } else {
            controller
        };
        self.controllers.iter().any(|c| c == name)
    }

    /// Whether a `/proc/PID/cgroup` text puts the process in the cgroup `dir` of
    /// this hierarchy, or below it. Which line is this hierarchy's: on v2 the one
    /// without controllers (`0::`), on v1 one naming a controller of it (each
    /// controller is bound to one hierarchy). Paths in that file are relative to
    /// the hierarchy's root, as is `dir` below the mount.
    pub fn holds(&self, proc_cgroup: &str, dir: &Path) -> bool {
        let Ok(rel) = dir.strip_prefix(&self.mount) else {
            return false;
        };
        let want = Path::new("/").join(rel);
        proc_cgroup.lines().any(|line| {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(list), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            let ours = if self.v2 {
                id == "0" && list.is_empty()
            } else {
                list.split(',')
                    .any(|c| self.controllers.iter().any(|o| o == c))
            };
            ours && Path::new(path).starts_with(&want)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Pure cgroup v2.
    Unified(Hierarchy),
    /// v1 controllers (possibly next to a cgroup2 mount without controllers).
    Legacy(Vec<Hierarchy>),
}

impl Layout {
    /// `controllers_of(dir)` returns the text of `dir/cgroup.controllers` (v2).
    pub fn detect(
        mountinfo: &str,
        proc_cgroup: &str,
        controllers_of: impl Fn(&Path) -> String,
    ) -> Option<Layout> {
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount), Some(fstype), Some(opts)) =
                (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
            else {
                continue;
            };
            match *fstype {
                "cgroup" => {
                    let controllers: Vec<String> = opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty()
                        || v1.iter().any(|h: &Hierarchy| h.controllers == controllers)
                    {
                        continue;
                    }
                    let Some(own) = own_path(proc_cgroup, |list| {
                        let mut l: Vec<&str> = list
                            .split(',')
                            .filter(|c| V1_CONTROLLERS.contains(c))
                            .collect();
                        l.sort_unstable();
                        let mut c: Vec<&str> = controllers.iter().map(String::as_str).collect();
                        c.sort_unstable();
                        l == c
                    }) else {
                        continue;
                    };
                    v1.push(Hierarchy {
                        mount: PathBuf::from(unescape(mount)),
                        own,
                        controllers,
                        v2: false,
                    });
                }
                "cgroup2" if v2.is_none() => {
                    if let Some(own) = own_path(proc_cgroup, str::is_empty) {
                        let mut h = Hierarchy {
                            mount: PathBuf::from(unescape(mount)),
                            own,
                            controllers: Vec::new(),
                            v2: true,
                        };
                        h.controllers = controllers_of(&h.own_dir())
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                        v2 = Some(h);
                    }
                }
                _ => {}
            }
        }
        if !v1.is_empty() {
            return Some(Layout::Legacy(v1));
        }
        v2.map(Layout::Unified)
    }

    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        match self {
            Layout::Unified(h) => vec![h.clone()],
            Layout::Legacy(hs) => hs.clone(),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Layout::Unified(_) => "cgroup v2",
            Layout::Legacy(_) => "cgroup v1",
        }
    }
}

/// supd's path in the hierarchy whose controller list matches.
fn own_path(proc_cgroup: &str, matches: impl Fn(&str) -> bool) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(list).then(|| PathBuf::from(path))
    })
}

/// mountinfo escapes spaces and the like as `\\040`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// `value` of the line `key value` in a flat keyed file (memory.events, ...).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
36 30 0:32 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices";
    const HYBRID_CGROUP: &str =
        "5:devices:/\n4:pids:/a\n3:cpu,cpuacct:/b\n2:memory:/c/d\n1:name=systemd:/\n0::/";

    #[test]
    fn hybrid_uses_the_v1_controllers() {
        let layout =
            Layout::detect(HYBRID_MOUNTS, HYBRID_CGROUP, |_| "hugetlb".into()).expect("layout");
        let Layout::Legacy(hs) = &layout else {
            panic!("expected v1: {layout:?}")
        };
        assert_eq!(
            hs.len(),
            4,
            "memory, cpu+cpuacct, pids, devices; not name=systemd"
        );
        let dev = hs.iter().find(|h| h.has("devices")).expect("devices");
        assert_eq!(dev.own_dir(), PathBuf::from("/sys/fs/cgroup/devices"));
        let mem = hs.iter().find(|h| h.has("memory")).expect("memory");
        assert_eq!(mem.own_dir(), PathBuf::from("/sys/fs/cgroup/memory/c/d"));
        let cpu = hs.iter().find(|h| h.has("cpu")).expect("cpu");
        assert!(cpu.has("cpuacct"));
        assert_eq!(cpu.own_dir(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/b"));
        assert!(!mem.has("io"));
    }

    #[test]
    fn pure_v2_reads_its_controllers() {
        let mounts = "31 25 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
        let layout = Layout::detect(mounts, "0::/init.scope", |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/init.scope"));
            "cpuset cpu io memory pids".into()
        })
        .expect("layout");
        let Layout::Unified(h) = layout else {
            panic!("expected v2")
        };
        assert!(h.is_v2() && h.has("memory") && h.has("io") && !h.has("hugetlb"));
    }

    #[test]
    fn no_cgroup_mounts_means_none() {
        assert_eq!(
            Layout::detect(
                "1 0 0:1 / / rw - ext4 /dev/sda rw",
                "0::/",
                |_| String::new()
            ),
            None
        );
    }

    #[test]
    fn holds_reads_the_line_of_its_own_hierarchy() {
        let layout = Layout::detect(HYBRID_MOUNTS, HYBRID_CGROUP, |_| String::new());
        let Some(Layout::Legacy(hs)) = layout else {
            panic!("expected v1")
        };
        let pids = hs.iter().find(|h| h.has("pids")).expect("pids");
        let cpu = hs.iter().find(|h| h.has("cpu")).expect("cpu");
        let v2 = Hierarchy {
            mount: PathBuf::from("/sys/fs/cgroup"),
            own: PathBuf::from("/"),
            controllers: Vec::new(),
            v2: true,
        };
        let web = |h: &Hierarchy| h.own_dir().join("sup/web");
        // hierarchy, dir, /proc/PID/cgroup text, member
        let cases: [(&Hierarchy, PathBuf, &str, bool); 11] = [
            (pids, web(pids), "4:pids:/a/sup/web\n0::/", true),
            (pids, web(pids), "4:pids:/a/sup/web/inner\n", true),
            // A sibling whose name starts alike, the parent, another unit.
            (pids, web(pids), "4:pids:/a/sup/web2\n", false),
            (pids, web(pids), "4:pids:/a/sup\n", false),
            (pids, web(pids), "4:pids:/a/sup/db\n", false),
            // The path is right, but on another hierarchy's line.
            (
                pids,
                web(pids),
                "3:cpu,cpuacct:/a/sup/web\n4:pids:/\n",
                false,
            ),
            (pids, web(pids), "0::/a/sup/web\n", false),
            (cpu, web(cpu), "3:cpu,cpuacct:/b/sup/web\n", true),
            (&v2, web(&v2), "0::/sup/web\n", true),
            (&v2, web(&v2), "4:pids:/sup/web\n0::/user.slice\n", false),
            // Nothing readable (the process is gone): not a member.
            (&v2, web(&v2), "", false),
        ];
        for (h, dir, text, member) in cases {
            assert_eq!(h.holds(text, &dir), member, "{} {text:?}", dir.display());
        }
        assert!(!pids.holds("4:pids:/x\n", Path::new("/elsewhere/x")));
    }

    #[test]
    fn keyed_values() {
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n";
        assert_eq!(keyed_value(events, "oom_kill"), Some(2));
        assert_eq!(
            keyed_value("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n", "oom_kill"),
            Some(5)
        );
        assert_eq!(keyed_value(events, "nope"), None);
    }
}
