//! Namespaces and identity: which namespaces a unit gets, joining one by path, its
//! hostname, user namespace maps, and SysV IPC.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;

const KINDS: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// A service script that records its namespaces into `out`, then idles.
fn ns_probe(out: &Path) -> String {
    report(
        out,
        &format!(
            "for n in {}; do echo $n $(readlink /proc/self/ns/$n); done",
            KINDS.join(" ")
        ),
    )
}

fn parse_ns(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn namespaces_differ_exactly_for_the_declared_kinds() {
    let sup = Sup::prepare(&[]);
    // The user-namespaced unit writes as host uid 200000.
    set_mode(sup.path(), 0o755);
    let out = shared_dir(sup.path(), "out");
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "all",
            &KINDS,
            "namespaces = [\"user\", \"mnt\", \"pid\", \"uts\", \"ipc\", \"net\", \"cgroup\"]\nuserns_base = 200000",
        ),
        ("some", &["net", "uts"], "namespaces = [\"net\", \"uts\"]"),
        ("host", &[], "namespaces = []"),
        ("default", &["cgroup", "ipc", "mnt", "pid", "uts"], ""),
    ];
    for (name, _, container) in &cases {
        sup.write_unit(name, &unit(container, &ns_probe(&out.join(name))));
    }
    let _running = sup.launch();
    for (name, declared, _) in &cases {
        let seen = parse_ns(&wait_file(&out.join(name)));
        for kind in KINDS {
            let differs = seen[kind] != host_ns(kind);
            assert_eq!(
                differs,
                declared.contains(&kind),
                "unit {name}: {kind} namespace {} vs host {}",
                seen[kind],
                host_ns(kind)
            );
        }
    }
}

pub fn joining_a_namespace_by_path_gives_the_same_inode() {
    // A process of the test's own in a fresh network namespace.
    let holder = KillOnDrop(
        std::process::Command::new("unshare")
            .args(["--net", "sleep", "1000"])
            .spawn()
            .expect("unshare"),
    );
    let path = format!("/proc/{}/ns/net", holder.0.id());
    let host = host_ns("net");
    let mut target = String::new();
    wait_until("unshare to enter a new network namespace", || {
        target = std::fs::read_link(&path)
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        !target.is_empty() && target != host
    });
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("joined");
    sup.write_unit(
        "joiner",
        &unit(
            &format!("namespaces = []\n[container.join]\nnet = {path:?}"),
            &ns_probe(&out),
        ),
    );
    let sup = sup.launch();
    let seen = parse_ns(&wait_file(&out));
    drop(holder);
    assert_eq!(seen["net"], target);
    assert_eq!(seen["uts"], host_ns("uts"), "nothing else changes");
    drop(sup);
}

pub fn uts_hostname_is_the_declared_one_and_the_host_keeps_its_own() {
    let host_before = nix::unistd::gethostname().expect("hostname");
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("names");
    sup.write_unit(
        "named",
        &unit(
            "namespaces = [\"uts\"]\nhostname = \"sup-box\"\ndomainname = \"sup.test\"",
            &report(&out, "echo $(hostname) $(cat /proc/sys/kernel/domainname)"),
        ),
    );
    let sup = sup.launch();
    assert_eq!(wait_file(&out).trim(), "sup-box sup.test");
    assert_eq!(nix::unistd::gethostname().expect("hostname"), host_before);
    drop(sup);
}

pub fn user_namespace_maps_are_the_declared_ones_and_files_get_mapped_owners() {
    let sup = Sup::prepare(&[]);
    set_mode(sup.path(), 0o755);
    let data = shared_dir(sup.path(), "data");
    // Without a rootfs, mount targets are host paths and must exist.
    let target = sup.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let container = format!(
        "namespaces = [\"user\", \"mnt\"]\n\
         uid_map = [{{ inside = 0, outside = 300000, count = 1000 }}, {{ inside = 1000, outside = 400000, count = 10 }}]\n\
         gid_map = [{{ inside = 0, outside = 300000, count = 1000 }}, {{ inside = 1000, outside = 400000, count = 10 }}]\n\
         [[mount]]\ntype = \"bind\"\nsource = {data:?}\ntarget = {target:?}"
    );
    let script = report(
        &target.join("maps"),
        &format!(
            "touch {t}/by-root; cat /proc/self/uid_map /proc/self/gid_map",
            t = target.display()
        ),
    );
    sup.write_unit("userns", &unit(&container, &script));
    let sup = sup.launch();
    let maps = wait_file(&data.join("maps"));
    let rows: Vec<Vec<u64>> = maps
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|n| n.parse().expect("num"))
                .collect()
        })
        .collect();
    let expected = [vec![0, 300000, 1000], vec![1000, 400000, 10]];
    assert_eq!(rows[..2], expected[..], "uid_map: {maps}");
    assert_eq!(rows[2..], expected[..], "gid_map: {maps}");
    let meta = std::fs::metadata(data.join("by-root")).expect("created file");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (300000, 300000),
        "container root is host 300000"
    );
    drop(sup);
}

/// A SysV shared memory segment of the test's; removed when dropped.
struct ShmSegment(libc::c_int);

impl ShmSegment {
    fn new() -> ShmSegment {
        // SAFETY: shmget(2) takes no pointers; IPC_PRIVATE always makes a new
        // segment, owned by this guard from here on.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        ShmSegment(id)
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed;
        // the id is the segment this guard created.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

pub fn ipc_namespace_hides_host_shared_memory() {
    let segment = ShmSegment::new();
    let shmid = segment.0.to_string();
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("ipc");
    sup.write_unit(
        "ipc",
        &unit(
            "",
            &report(&out, "awk 'NR > 1 {print $2}' /proc/sysvipc/shm; echo end"),
        ),
    );
    let sup = sup.launch();
    let seen = wait_file(&out);
    let host = std::fs::read_to_string("/proc/sysvipc/shm").expect("host shm");
    drop(segment);
    assert!(
        host.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(shmid.as_str())),
        "host sees it"
    );
    assert_eq!(seen.trim(), "end", "the container sees no segment: {seen}");
    drop(sup);
}
