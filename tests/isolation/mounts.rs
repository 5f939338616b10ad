//! Mounts and the root filesystem: read-only binds, tmpfs sizes, propagation,
//! pivot_root into an image, overlays, and how a failing mount is reported.

use crate::common::*;

pub fn mounts_readonly_tmpfs_size_and_no_propagation_to_the_host() {
    let sup = Sup::prepare(&[]);
    let ro = sup.path().join("ro");
    // A submount inside the read-only bind source, made (and removed) by the test.
    let submount = TmpfsMount::new(&ro.join("sub"));
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
         echo done",
        inner = inner.display(),
        r = ro_target.display(),
        s = small.display(),
    );
    sup.write_unit("mounts", &unit(&container, &report(&out, &script)));
    let sup = sup.launch();
    let seen = wait_file(&out);
    drop(submount);
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

pub fn rootfs_pivot_root_hides_the_host_and_symlinks_cannot_redirect_mounts() {
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
    let script = report(
        std::path::Path::new("/data/out"),
        "cat /etc/rootfs-marker; test -e /etc/debian_version && echo host-visible || echo host-hidden; \
         touch /etc/x 2>/dev/null && echo root-writable || echo root-readonly; \
         grep -c . /proc/self/mountinfo; echo $(ls /)",
    );
    sup.write_unit("boxed", &unit(&container, &script));
    let sup = sup.launch();
    let seen = wait_file(&results.join("out"));
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "busybox rootfs", "{seen}");
    assert_eq!(lines[1], "host-hidden", "{seen}");
    assert_eq!(lines[2], "root-readonly", "{seen}");
    // Only the container's own mounts: root, /dev and its parts, /sys, /proc + masks, /data, /escape.
    let pid = pid_of(&sup.unit("boxed"));
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

pub fn missing_bind_source_reports_step_and_errno() {
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

pub fn overlay_keeps_changes_in_supd_state_and_leaves_lower_untouched() {
    let sup = Sup::prepare(&[]);
    let lower = sup.path().join("lower");
    let view = sup.path().join("view");
    std::fs::create_dir_all(&lower).expect("mkdir");
    std::fs::create_dir_all(&view).expect("mkdir");
    std::fs::write(lower.join("base"), "from lower\n").expect("write");
    let out = sup.path().join("overlay");
    let script = report(
        &out,
        &format!(
            "cat {v}/base; echo changed > {v}/base; echo new > {v}/added; cat {v}/base",
            v = view.display()
        ),
    );
    sup.write_unit(
        "layered",
        &sh_unit(
            &format!("[[mount]]\ntype = \"overlay\"\nlower = [{lower:?}]\ntarget = {view:?}"),
            &script,
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
