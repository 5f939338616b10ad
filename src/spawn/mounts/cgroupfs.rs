//! The cgroup hierarchies mounted at `/sys/fs/cgroup`, as supd sees them in its
//! own `/proc/self/mountinfo`. A container with a cgroup namespace gets the same
//! hierarchies mounted fresh (a mount made inside a cgroup namespace is rooted
//! at the container's own cgroup, so it sees only its subtree) and read-only:
//! on cgroup v2 one `cgroup2` mount, on v1 and hybrid hosts a tmpfs with each
//! hierarchy in its directory, as Docker does. Pure, so each layout is tested
//! from text.

use serde::{Deserialize, Serialize};

use super::Fs;

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One hierarchy to mount in the container's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMount {
    /// Its directory below `/sys/fs/cgroup`; empty for a `cgroup2` mounted at
    /// `/sys/fs/cgroup` itself (pure v2: then it is the only one).
    pub dir: String,
    /// `Fs::Cgroup` (v1) or `Fs::Cgroup2`.
    pub fs: Fs,
    /// mount(2) data that selects the existing v1 hierarchy (its controllers or
    /// `none,name=...`); empty for v2.
    pub options: String,
    /// Names of links to `dir` next to it (`cpu` -> `cpu,cpuacct`).
    pub links: Vec<String>,
}

/// v1 mount options that are flags of the superblock, not part of what selects a
/// hierarchy (a mismatch there only makes the kernel warn).
const V1_FLAGS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// The hierarchies at `/sys/fs/cgroup` in `mountinfo` text, in mount order. A
/// mount stacked on the same directory replaces the one below.
pub fn from_mountinfo(mountinfo: &str) -> Vec<CgroupMount> {
    let mut found: Vec<CgroupMount> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(fstype), Some(opts)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
        else {
            continue;
        };
        let fs = match *fstype {
            "cgroup" => Fs::Cgroup,
            "cgroup2" => Fs::Cgroup2,
            _ => {
                if *point == CGROUP_ROOT {
                    // A new tmpfs over the whole directory hides what was there.
                    found.clear();
                }
                continue;
            }
        };
        let dir = match point.strip_prefix(CGROUP_ROOT) {
            Some("") => "",
            Some(rest) => match rest.strip_prefix('/') {
                // One level down, and no escaped characters (\040 and the like).
                Some(d) if !d.is_empty() && !d.contains(['/', '\\']) => d,
                _ => continue,
            },
            None => continue,
        };
        let options = match fs {
            Fs::Cgroup => v1_options(opts),
            _ => String::new(),
        };
        if dir.is_empty() {
            found.clear();
        }
        found.retain(|m| m.dir != dir && !m.dir.is_empty());
        found.push(CgroupMount {
            dir: dir.to_string(),
            fs,
            options,
            links: Vec::new(),
        });
    }
    // Joined controllers get a link per controller, as systemd makes them, unless
    // a hierarchy of that name is mounted itself.
    let dirs: Vec<String> = found.iter().map(|m| m.dir.clone()).collect();
    for m in &mut found {
        if m.fs == Fs::Cgroup && m.dir.contains(',') {
            m.links = m
                .dir
                .split(',')
                .filter(|part| !dirs.iter().any(|d| d == part))
                .map(str::to_string)
                .collect();
        }
    }
    found
}

/// The options that select a v1 hierarchy: its controllers and `name=`, with
/// `none` when it has no controller.
fn v1_options(super_opts: &str) -> String {
    let kept: Vec<&str> = super_opts
        .split(',')
        .filter(|o| !V1_FLAGS.contains(o) && (!o.contains('=') || o.starts_with("name=")))
        .collect();
    if kept.iter().all(|o| o.starts_with("name=")) {
        std::iter::once("none")
            .chain(kept)
            .collect::<Vec<_>>()
            .join(",")
    } else {
        kept.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(dir: &str, options: &str, links: &[&str]) -> CgroupMount {
        CgroupMount {
            dir: dir.into(),
            fs: Fs::Cgroup,
            options: options.into(),
            links: links.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn v2(dir: &str) -> CgroupMount {
        CgroupMount {
            dir: dir.into(),
            fs: Fs::Cgroup2,
            options: String::new(),
            links: Vec::new(),
        }
    }

    /// A line of mountinfo for `point` of `fstype` with super options `opts`.
    fn line(point: &str, fstype: &str, opts: &str) -> String {
        format!("31 23 0:28 / {point} rw,relatime - {fstype} {fstype} {opts}\n")
    }

    #[test]
    fn hierarchies_are_found_in_every_layout() {
        let hybrid = [
            line("/sys", "sysfs", "rw"),
            line("/sys/fs/cgroup", "tmpfs", "rw,mode=755"),
            line("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
            line("/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
            line(
                "/sys/fs/cgroup/systemd",
                "cgroup",
                "rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd",
            ),
            line("/sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate"),
        ]
        .concat();
        let pure_v2 = [
            line("/sys", "sysfs", "rw"),
            line(
                "/sys/fs/cgroup",
                "cgroup2",
                "rw,nsdelegate,memory_recursiveprot",
            ),
        ]
        .concat();
        let cases = [
            (
                hybrid.clone(),
                vec![
                    v1("cpu,cpuacct", "cpu,cpuacct", &["cpu", "cpuacct"]),
                    v1("pids", "pids", &[]),
                    v1("systemd", "none,name=systemd", &[]),
                    v2("unified"),
                ],
            ),
            (pure_v2.clone(), vec![v2("")]),
            // Stacked: a later tmpfs over the directory hides what was below.
            (
                hybrid.clone() + &line("/sys/fs/cgroup", "tmpfs", "rw"),
                Vec::new(),
            ),
            // A hierarchy mounted twice on the same directory counts once.
            (
                line("/sys/fs/cgroup/pids", "cgroup", "rw,pids").repeat(2),
                vec![v1("pids", "pids", &[])],
            ),
            // Elsewhere, deeper, or with escaped characters: not part of the view.
            (
                [
                    line("/cgroup/pids", "cgroup", "rw,pids"),
                    line("/sys/fs/cgroup/a/b", "cgroup", "rw,pids"),
                    line("/sys/fs/cgroup/a\\040b", "cgroup", "rw,pids"),
                ]
                .concat(),
                Vec::new(),
            ),
            ("garbage\n\n".to_string(), Vec::new()),
        ];
        for (text, want) in cases {
            assert_eq!(from_mountinfo(&text), want, "{text}");
        }
    }

    #[test]
    fn a_separately_mounted_controller_gets_no_link() {
        let text = [
            line("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
            line("/sys/fs/cgroup/cpu", "cgroup", "rw,cpu,cpuacct"),
        ]
        .concat();
        assert_eq!(
            from_mountinfo(&text)[0].links,
            vec!["cpuacct".to_string()],
            "cpu is a directory of its own"
        );
    }
}
