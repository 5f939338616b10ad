//! Isolation (issue 3): every check is made from inside the container, by the
//! service itself, and compared with the host. These tests need root; without it
//! they are reported as ignored.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::harness::{self, root, trials};
use common::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        namespaces_differ_exactly_for_the_declared_kinds,
        joining_a_namespace_by_path_gives_the_same_inode,
        uts_hostname_is_the_declared_one_and_the_host_keeps_its_own,
        pid_namespace_hides_the_host_reaps_orphans_and_stops_a_term_ignoring_service,
        user_namespace_maps_are_the_declared_ones_and_files_get_mapped_owners,
        mounts_readonly_tmpfs_size_and_no_propagation_to_the_host,
        rootfs_pivot_root_hides_the_host_and_symlinks_cannot_redirect_mounts,
        ipc_namespace_hides_host_shared_memory,
        security_caps_no_new_privs_seccomp_and_masked_paths,
        missing_bind_source_reports_step_and_errno,
        process_settings_rlimits_umask_oom_groups_and_loopback,
        overlay_keeps_changes_in_supd_state_and_leaves_lower_untouched,
        init_forwards_any_signal_and_reports_signal_deaths_as_signals,
    ]])
}

const KINDS: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// A service script that records its namespaces into `out`, then idles.
fn ns_probe(out: &Path) -> String {
    format!(
        "for n in {}; do echo $n $(readlink /proc/self/ns/$n); done > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
        KINDS.join(" "),
        o = out.display()
    )
}

fn parse_ns(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn unit(container: &str, script: &str) -> String {
    format!(
        "[container]\n{container}\n[service]\nexec = [\"/bin/sh\", \"-c\", {script:?}]\nstop_timeout = \"2s\"\n"
    )
}

fn namespaces_differ_exactly_for_the_declared_kinds() {
    let sup = Sup::prepare(&[]);
    // The user-namespaced unit writes as host uid 200000.
    std::fs::set_permissions(sup.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = sup.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).expect("chmod");
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

fn joining_a_namespace_by_path_gives_the_same_inode() {
    // A process of the test's own in a fresh network namespace.
    let mut holder = std::process::Command::new("unshare")
        .args(["--net", "sleep", "1000"])
        .spawn()
        .expect("unshare");
    let path = format!("/proc/{}/ns/net", holder.id());
    let target = wait_until_ns_differs(&path);
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
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(seen["net"], target);
    assert_eq!(seen["uts"], host_ns("uts"), "nothing else changes");
    drop(sup);
}

fn wait_until_ns_differs(path: &str) -> String {
    let host = host_ns("net");
    for _ in 0..500 {
        if let Ok(l) = std::fs::read_link(path) {
            let l = l.to_string_lossy().into_owned();
            if l != host {
                return l;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("unshare never entered a new network namespace");
}

fn uts_hostname_is_the_declared_one_and_the_host_keeps_its_own() {
    let host_before = nix::unistd::gethostname().expect("hostname");
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("names");
    sup.write_unit(
        "named",
        &unit(
            "namespaces = [\"uts\"]\nhostname = \"sup-box\"\ndomainname = \"sup.test\"",
            &format!(
                "echo $(hostname) $(cat /proc/sys/kernel/domainname) > {}; exec sleep 1000",
                out.display()
            ),
        ),
    );
    let sup = sup.launch();
    assert_eq!(wait_file(&out).trim(), "sup-box sup.test");
    assert_eq!(nix::unistd::gethostname().expect("hostname"), host_before);
    drop(sup);
}

fn pid_namespace_hides_the_host_reaps_orphans_and_stops_a_term_ignoring_service() {
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("pid");
    // Orphans: each subshell's sleep is re-parented to the container's init.
    let script = format!(
        "trap '' TERM; for i in 1 2 3 4 5; do (sleep 0.2 &); done; sleep 1; \
         zombies=$(cat /proc/[0-9]*/stat | awk '$3 == \"Z\"' | wc -l); \
         echo $$ $(cat /proc/1/comm) $(ls /proc | grep -c '^[0-9]') $zombies > {o}.tmp; mv {o}.tmp {o}; \
         while true; do sleep 1; done",
        o = out.display()
    );
    sup.write_unit("pidns", &unit("", &script));
    let sup = sup.launch();
    let seen = wait_file(&out);
    let fields: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(
        fields[0], "2",
        "the service is pid 2 under the init: {seen}"
    );
    assert_eq!(fields[1], "sup-init", "{seen}");
    let visible: usize = fields[2].parse().expect("count");
    assert!(
        visible <= 6,
        "only the container's few processes are visible: {seen}"
    );
    assert_eq!(fields[3], "0", "no zombies: orphans were reaped: {seen}");

    let pid = sup.unit("pidns")["pid"].as_i64().expect("pid") as i32;
    let out = sup.supctl(&["stop", "--wait", "pidns"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sup.unit("pidns")["state"], "inactive");
    assert!(!pid_alive(pid), "the container's init is gone");
}

fn user_namespace_maps_are_the_declared_ones_and_files_get_mapped_owners() {
    let sup = Sup::prepare(&[]);
    std::fs::set_permissions(sup.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = sup.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // Without a rootfs, mount targets are host paths and must exist.
    let target = sup.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let container = format!(
        "namespaces = [\"user\", \"mnt\"]\n\
         uid_map = [{{ inside = 0, outside = 300000, count = 1000 }}, {{ inside = 1000, outside = 400000, count = 10 }}]\n\
         gid_map = [{{ inside = 0, outside = 300000, count = 1000 }}, {{ inside = 1000, outside = 400000, count = 10 }}]\n\
         [[mount]]\ntype = \"bind\"\nsource = {data:?}\ntarget = {target:?}"
    );
    let script = format!(
        "touch {t}/by-root; cat /proc/self/uid_map /proc/self/gid_map > {t}/maps.tmp; mv {t}/maps.tmp {t}/maps; exec sleep 1000",
        t = target.display()
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
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (300000, 300000),
        "container root is host 300000"
    );
    drop(sup);
}

fn mounts_readonly_tmpfs_size_and_no_propagation_to_the_host() {
    let sup = Sup::prepare(&[]);
    let ro = sup.path().join("ro");
    std::fs::create_dir_all(ro.join("sub")).expect("mkdir");
    // A submount inside the read-only bind source, made (and removed) by the test.
    nix::mount::mount(
        Some("tmpfs"),
        &ro.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("test tmpfs");
    let inner = sup.path().join("inner");
    std::fs::create_dir(&inner).expect("mkdir");
    let out = sup.path().join("mounts");
    let (ro_target, small) = (sup.path().join("ro-view"), sup.path().join("small"));
    std::fs::create_dir(&ro_target).expect("mkdir");
    std::fs::create_dir(&small).expect("mkdir");
    let container = format!(
        "capabilities = [\"SYS_ADMIN\"]\nseccomp = false\n\
         [[mount]]\ntype = \"bind\"\nsource = {ro:?}\ntarget = {ro_target:?}\nreadonly = true\n\
         [[mount]]\ntype = \"tmpfs\"\ntarget = {small:?}\nsize = \"1M\""
    );
    let script = format!(
        "touch {r}/x 2>/dev/null && echo ro-writable || echo ro-refused; \
         touch {r}/sub/x 2>/dev/null && echo sub-writable || echo sub-refused; \
         dd if=/dev/zero of={s}/fill bs=1024 count=2048 2>/dev/null && echo small-unbounded || echo small-full; \
         echo $(stat -c %s {s}/fill); \
         mount -t tmpfs inside {inner} && touch {inner}/made-inside && echo mounted; \
         echo done) > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
        inner = inner.display(),
        r = ro_target.display(),
        s = small.display(),
        o = out.display()
    );
    sup.write_unit("mounts", &unit(&container, &format!("({script}")));
    let sup = sup.launch();
    let seen = wait_file(&out);
    let _ = nix::mount::umount2(&ro.join("sub"), nix::mount::MntFlags::MNT_DETACH);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "ro-refused", "{seen}");
    assert_eq!(
        lines[1], "sub-refused",
        "read-only applies to submounts: {seen}"
    );
    assert_eq!(lines[2], "small-full", "{seen}");
    let size: u64 = lines[3].parse().expect("size");
    assert!(size <= 1024 * 1024, "tmpfs size enforced: {size}");
    assert_eq!(lines[4], "mounted", "{seen}");
    assert!(
        !inner.join("made-inside").exists(),
        "the container's mount is invisible on the host"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mountinfo.contains(&inner.display().to_string()),
        "no propagation to the host"
    );
    drop(sup);
}

fn rootfs_pivot_root_hides_the_host_and_symlinks_cannot_redirect_mounts() {
    let sup = Sup::prepare(&[]);
    let root = busybox_rootfs(&sup.path().join("rootfs"));
    let outside = sup.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    // An image symlink pointing at a host path: the mount must stay in the image.
    std::os::unix::fs::symlink(&outside, root.join("escape")).expect("symlink");
    let results = sup.path().join("results");
    std::fs::create_dir(&results).expect("mkdir");
    let container = format!(
        "rootfs = {root:?}\nreadonly_root = true\n\
         [[mount]]\ntype = \"bind\"\nsource = {results:?}\ntarget = \"/data\"\n\
         [[mount]]\ntype = \"tmpfs\"\ntarget = \"/escape\""
    );
    let script = "(cat /etc/rootfs-marker; test -e /etc/debian_version && echo host-visible || echo host-hidden; \
         touch /etc/x 2>/dev/null && echo root-writable || echo root-readonly; \
         grep -c . /proc/self/mountinfo; echo $(ls /)) > /data/out.tmp; mv /data/out.tmp /data/out; exec sleep 1000";
    sup.write_unit("boxed", &unit(&container, script));
    let sup = sup.launch();
    let seen = wait_file(&results.join("out"));
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "busybox rootfs", "{seen}");
    assert_eq!(lines[1], "host-hidden", "{seen}");
    assert_eq!(lines[2], "root-readonly", "{seen}");
    // Only the container's own mounts: root, /dev and its parts, /sys, /proc + masks, /data, /escape.
    let pid = sup.unit("boxed")["pid"].as_i64().expect("pid");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let outside_str = outside.display().to_string();
    assert!(
        mountinfo
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(outside_str.as_str()) && l.contains(" - tmpfs ")),
        "the tmpfs landed inside the rootfs at the symlink's target: {mountinfo}"
    );
    assert!(
        std::fs::read_dir(&outside)
            .expect("outside")
            .next()
            .is_none()
    );
    let host_mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !host_mountinfo.contains(&outside_str),
        "nothing mounted on the host path"
    );
    let roots = mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/"))
        .count();
    assert_eq!(
        roots, 1,
        "only the new root is mounted at /; the old root is gone: {mountinfo}"
    );
    drop(sup);
}

fn ipc_namespace_hides_host_shared_memory() {
    // SAFETY: plain SysV calls; the segment is removed below.
    let shmid = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
    assert!(shmid >= 0, "shmget");
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("ipc");
    sup.write_unit(
        "ipc",
        &unit("", &format!("awk 'NR > 1 {{print $2}}' /proc/sysvipc/shm > {o}.tmp; echo end >> {o}.tmp; mv {o}.tmp {o}; exec sleep 1000", o = out.display())),
    );
    let sup = sup.launch();
    let seen = wait_file(&out);
    let host = std::fs::read_to_string("/proc/sysvipc/shm").expect("host shm");
    // SAFETY: removes the segment created above.
    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    assert!(
        host.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&shmid.to_string())),
        "host sees it"
    );
    assert_eq!(seen.trim(), "end", "the container sees no segment: {seen}");
    drop(sup);
}

fn security_caps_no_new_privs_seccomp_and_masked_paths() {
    let sup = Sup::prepare(&[]);
    let caps_out = sup.path().join("caps");
    let caps_script = format!(
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|NoNewPrivs)' /proc/self/status > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
        o = caps_out.display()
    );
    sup.write_unit(
        "keep",
        &unit(
            "capabilities = [\"net_bind_service\", \"CAP_KILL\"]",
            &caps_script,
        ),
    );
    // With CAP_SYS_ADMIN kept, only the seccomp filter can refuse unshare(2); the same
    // unit without the filter shows that it would otherwise work.
    let probe = |o: &Path| {
        format!(
            "(unshare --uts true 2>&1 && echo unshare-allowed || echo unshare-refused; \
             echo timer_list=$(cat /proc/timer_list | wc -c); \
             cat /proc/sys/kernel/panic > /proc/sys/kernel/panic 2>/dev/null && echo sys-writable || echo sys-readonly) > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
            o = o.display()
        )
    };
    let (filtered, open) = (sup.path().join("filtered"), sup.path().join("open"));
    sup.write_unit(
        "filtered",
        &unit("capabilities = [\"SYS_ADMIN\"]", &probe(&filtered)),
    );
    sup.write_unit(
        "open",
        &unit(
            "capabilities = [\"SYS_ADMIN\"]\nseccomp = false",
            &probe(&open),
        ),
    );
    let sup = sup.launch();

    let seen = wait_file(&caps_out);
    let keep = format!("{:016x}", (1u64 << 10) | (1u64 << 5));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
        assert!(
            seen.lines()
                .any(|l| l.starts_with(set) && l.ends_with(&keep)),
            "{set} must be exactly {keep}: {seen}"
        );
    }
    assert!(seen.contains("NoNewPrivs:\t1"), "{seen}");

    let filtered = wait_file(&filtered);
    assert!(
        filtered.contains("Operation not permitted") && filtered.contains("unshare-refused"),
        "{filtered}"
    );
    assert!(
        filtered.contains("timer_list=0"),
        "masked path reads empty: {filtered}"
    );
    assert!(filtered.contains("sys-readonly"), "{filtered}");
    let open = wait_file(&open);
    assert!(
        open.contains("unshare-allowed"),
        "without the filter unshare works: {open}"
    );
    drop(sup);
}

fn missing_bind_source_reports_step_and_errno() {
    let sup = Sup::prepare(&[]);
    let target = sup.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    sup.write_unit(
        "broken",
        &format!(
            "[[mount]]\ntype = \"bind\"\nsource = \"/nonexistent/sup-src\"\ntarget = {target:?}\n\
             [service]\nexec = [\"/bin/true\"]\nrestart = \"no\"\n"
        ),
    );
    let sup = sup.launch();
    let unit = sup.wait_state("broken", "failed");
    let reason = unit["reason"].as_str().expect("reason");
    let expected = format!(
        "bind mount /nonexistent/sup-src -> {}: ENOENT",
        target.display()
    );
    assert!(reason.contains(&expected), "{reason}");
    let out = sup.supctl(&["status", "broken"]);
    assert!(stdout(&out).contains("ENOENT"), "{}", stdout(&out));
}

fn process_settings_rlimits_umask_oom_groups_and_loopback() {
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("settings");
    let script = format!(
        "(ulimit -n; ulimit -Hn; umask; cat /proc/self/oom_score_adj; id -G; \
          ip -o link show | wc -l; ip -o link show lo | grep -c 'UP') > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
        o = out.display()
    );
    sup.write_unit(
        "settings",
        &format!(
            "[container]\nnamespaces = [\"mnt\", \"pid\", \"net\"]\noom_score_adj = 321\n\
             [container.rlimits]\nnofile = [123, 456]\n\
             [service]\nexec = [\"/bin/sh\", \"-c\", {script:?}]\numask = \"0027\"\nsupplementary_groups = [4242]\n"
        ),
    );
    let sup = sup.launch();
    let seen = wait_file(&out);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "123", "soft nofile: {seen}");
    assert_eq!(lines[1], "456", "hard nofile: {seen}");
    assert_eq!(lines[2], "0027", "umask: {seen}");
    assert_eq!(lines[3], "321", "oom_score_adj: {seen}");
    assert!(
        lines[4].split_whitespace().any(|g| g == "4242"),
        "supplementary group: {seen}"
    );
    assert_eq!(lines[5], "1", "a new network namespace has only lo: {seen}");
    assert_eq!(lines[6], "1", "lo is up: {seen}");
    drop(sup);
}

fn overlay_keeps_changes_in_supd_state_and_leaves_lower_untouched() {
    let sup = Sup::prepare(&[]);
    let lower = sup.path().join("lower");
    let view = sup.path().join("view");
    std::fs::create_dir_all(&lower).expect("mkdir");
    std::fs::create_dir_all(&view).expect("mkdir");
    std::fs::write(lower.join("base"), "from lower\n").expect("write");
    let out = sup.path().join("overlay");
    let script = format!(
        "(cat {v}/base; echo changed > {v}/base; echo new > {v}/added; cat {v}/base) > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
        v = view.display(),
        o = out.display()
    );
    sup.write_unit(
        "layered",
        &format!(
            "[[mount]]\ntype = \"overlay\"\nlower = [{lower:?}]\ntarget = {view:?}\n\
             [service]\nexec = [\"/bin/sh\", \"-c\", {script:?}]\n"
        ),
    );
    let sup = sup.launch();
    assert_eq!(wait_file(&out), "from lower\nchanged\n");
    assert_eq!(
        std::fs::read_to_string(lower.join("base")).expect("lower"),
        "from lower\n",
        "lower untouched"
    );
    let escaped = view
        .display()
        .to_string()
        .trim_start_matches('/')
        .replace('/', "%2F");
    let upper = sup
        .state_dir()
        .join("overlay/layered")
        .join(escaped)
        .join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("added")).expect("upper"),
        "new\n",
        "changes land in supd's upper dir"
    );
    drop(sup);
}

fn init_forwards_any_signal_and_reports_signal_deaths_as_signals() {
    let sup = Sup::start(&[
        (
            // Ignores real-time signal 40; a real-time signal to the init must not
            // crash it (it is forwarded like any other).
            "steady",
            "[service]\nexec = [\"/bin/sh\", \"-c\", \"trap '' 40; while true; do sleep 1; done\"]\n",
        ),
        (
            "segv",
            "[service]\nexec = [\"/bin/sh\", \"-c\", \"sleep 0.2; kill -SEGV $$\"]\nrestart = \"on-abnormal\"\nrestart_delay = \"5s\"\n",
        ),
    ]);
    let steady = sup.wait_state("steady", "running");
    let pid = steady["pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).expect("alive");
    // SAFETY: kill(2) with a real-time signal number.
    assert_eq!(unsafe { libc::kill(pid, 40) }, 0);
    let segv = sup.wait_state("segv", "restarting");
    assert_eq!(segv["last_exit"]["signal"], "SIGSEGV", "{segv}");
    let steady = sup.unit("steady");
    assert_eq!(steady["state"], "running");
    assert_eq!(
        steady["pid"].as_i64(),
        Some(pid as i64),
        "the init survived the real-time signal"
    );
}
