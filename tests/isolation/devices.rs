//! The device allowlist (issue 11): a default unit may create and open only the
//! standard devices, a `[[device]]` adds one, `private_devices = false` lifts the
//! list. Device nodes are made by the test on the host and by the units in a
//! tmpfs of their own, so nothing depends on what the container's `/dev` holds.

use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sup::cgroup::bpf::device_program;
use sup::cgroup::devices::DeviceAllowlist;
use sup::cgroup::fs::{CgroupFs, Kernel};
use sup::cgroup::layout::Layout;

use crate::common::*;

/// Shell functions for the units: `try NAME PATH` opens PATH read-write, `mk NAME
/// PATH TYPE MAJOR MINOR` makes a node; each prints `NAME ok` or `NAME refused:
/// <the error>`.
const PROBES: &str = r#"try() { if e=$( { : <> "$2"; } 2>&1 ); then echo "$1 ok"; else echo "$1 refused: $e"; fi; }
mk() { if e=$(mknod "$2" "$3" "$4" "$5" 2>&1); then echo "$1 ok"; else echo "$1 refused: $e"; fi; }
"#;

/// The refusal of the device cgroup (v1) or program (v2) at open or mknod.
const EPERM: &str = "Operation not permitted";

/// `b 7:0` (a loop device) and `c 10:237` (loop-control) made by the test, as
/// `loop` and `ctl` in `dir`.
fn host_nodes(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir nodes");
    for (name, kind, major, minor) in [
        ("loop", SFlag::S_IFBLK, 7, 0),
        ("ctl", SFlag::S_IFCHR, 10, 237),
    ] {
        mknod(
            &dir.join(name),
            kind,
            Mode::from_bits_truncate(0o600),
            makedev(major, minor),
        )
        .unwrap_or_else(|e| panic!("mknod {name}: {e}"));
    }
}

/// What the probes printed, as `name -> "ok" | "refused: ..."`.
fn outcome<'a>(seen: &'a str, name: &str) -> &'a str {
    seen.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} line in: {seen}"))
}

fn assert_refused(seen: &str, name: &str) {
    let got = outcome(seen, name);
    assert!(
        got.starts_with("refused") && got.contains(EPERM),
        "{name} must be refused with EPERM by the allowlist: {seen}"
    );
}

pub fn device_allowlist_refuses_block_devices_and_unlisted_ones_and_relaxes_on_request() {
    let sup = Sup::prepare(&[]);
    let nodes = sup.path().join("nodes");
    host_nodes(&nodes);
    let scratch = sup.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir scratch");
    // The nodes bound in, and a tmpfs for the units' own mknod; both allow
    // device files (nodev = false), so only the allowlist can refuse.
    let mounts = format!(
        "[[mount]]\ntype = \"bind\"\nsource = {nodes:?}\ntarget = {nodes:?}\nnodev = false\n\
         [[mount]]\ntype = \"tmpfs\"\ntarget = {scratch:?}\nnodev = false\n"
    );
    let probes = |out: &Path| {
        let script = format!(
            "{PROBES}try devnull /dev/null; \
             mk mknull {s}/null c 1 3; try null {s}/null; \
             mk mkloop {s}/loop b 7 0; \
             try loop {n}/loop; try ctl {n}/ctl",
            s = scratch.display(),
            n = nodes.display(),
        );
        report(out, &script)
    };
    let outs: Vec<PathBuf> = ["plain", "listed", "relaxed"]
        .iter()
        .map(|u| sup.path().join(format!("{u}.out")))
        .collect();
    let units = [
        ("plain", String::new(), String::new()),
        (
            "listed",
            String::new(),
            "[[device]]\npath = \"/dev/loop-control\"\n".to_string(),
        ),
        (
            "relaxed",
            "private_devices = false\n".to_string(),
            String::new(),
        ),
    ];
    for ((name, container, devices), out) in units.iter().zip(&outs) {
        let head = format!("[container]\n{container}{mounts}{devices}");
        let text = sh_unit(&head, &probes(out)) + "stop_timeout = \"2s\"\n";
        sup.write_unit(name, &text);
    }
    sup.write_unit(
        "missing",
        "[[device]]\npath = \"/dev/sup-no-such-device\"\n\
         [service]\nexec = [\"/bin/true\"]\nrestart = \"no\"\n",
    );
    let sup = sup.launch();

    let plain = wait_file(&outs[0]);
    for name in ["devnull", "mknull", "null"] {
        assert_eq!(outcome(&plain, name), "ok", "{name}: {plain}");
    }
    // The attack: no block device node, neither made nor found.
    assert_refused(&plain, "mkloop");
    assert_refused(&plain, "loop");
    assert_refused(&plain, "ctl");

    let listed = wait_file(&outs[1]);
    assert_eq!(
        outcome(&listed, "ctl"),
        "ok",
        "[[device]] adds it: {listed}"
    );
    assert_eq!(outcome(&listed, "null"), "ok", "{listed}");
    assert_refused(&listed, "loop");
    // `access` defaults to rw: not m.
    assert_refused(&listed, "mkloop");

    // The explicit relaxation lifts the list: the probes can fail.
    let relaxed = wait_file(&outs[2]);
    for name in ["devnull", "mkloop", "loop", "ctl"] {
        assert_eq!(outcome(&relaxed, name), "ok", "{name}: {relaxed}");
    }

    let missing = sup.wait_state("missing", "failed");
    let reason = missing["reason"].as_str().expect("reason");
    assert!(
        reason.contains("device allowlist: [[device]] /dev/sup-no-such-device")
            && reason.contains("os error 2"),
        "{reason}"
    );
}

/// A cgroup2 directory made (and removed) by the test.
struct Cgroup2Dir(PathBuf);

impl Drop for Cgroup2Dir {
    fn drop(&mut self) {
        // The probe has exited; its cgroup may stay busy for a moment.
        wait_until("the probe's cgroup to be removable", || {
            std::fs::remove_dir(&self.0).is_ok() || !self.0.exists()
        });
    }
}

/// This process's cgroup in the cgroup2 hierarchy: on a hybrid host the
/// controller-less mount beside the v1 ones, which still runs device programs.
fn own_cgroup2_dir() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let v2_only: String = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroup");
    match Layout::detect(&v2_only, &own, |_| String::new()) {
        Some(Layout::Unified(h)) => h.own_dir(),
        other => panic!("no cgroup2 mount: {other:?}"),
    }
}

/// The v2 mechanism on whatever host runs the tests (a hybrid host's supd uses
/// the v1 controller): the program supd generates is accepted by this kernel's
/// verifier, attached, replaced without stacking, and refuses what it must.
pub fn bpf_device_program_is_accepted_replaced_and_enforced_by_this_kernel() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = tmp.path().join("nodes");
    host_nodes(&nodes);
    let dir = own_cgroup2_dir().join(format!("sup-devtest-{}", std::process::id()));
    Kernel.mkdir(&dir).expect("mkdir cgroup");
    let cgroup = Cgroup2Dir(dir.clone());

    let program = device_program(&DeviceAllowlist::new([]));
    Kernel
        .attach_device_program(&cgroup.0, &program)
        .unwrap_or_else(|e| panic!("load and attach on {}: {e}", dir.display()));
    let first = Kernel.device_programs(&dir).expect("query");
    assert_eq!(first.len(), 1, "{first:?}");
    // A restart: the new program first, then the old one detached.
    Kernel.attach_device_program(&dir, &program).expect("again");
    Kernel
        .detach_device_program(&dir, first[0])
        .expect("detach");
    let now = Kernel.device_programs(&dir).expect("query");
    assert_eq!(now.len(), 1, "not stacked: {now:?}");
    assert_ne!(now, first);

    let script = format!(
        "echo $$ > {procs}; {PROBES}try devnull /dev/null; \
         mk mknull {t}/null c 1 3; try null {t}/null; mk mkloop {t}/mkloop b 7 0; \
         try loop {n}/loop; try ctl {n}/ctl",
        procs = dir.join("cgroup.procs").display(),
        t = tmp.path().display(),
        n = nodes.display(),
    );
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .expect("run the probe");
    let seen = String::from_utf8_lossy(&out.stdout);
    for name in ["devnull", "mknull", "null"] {
        assert_eq!(outcome(&seen, name), "ok", "{name}: {seen}");
    }
    for name in ["mkloop", "loop", "ctl"] {
        assert_refused(&seen, name);
    }
}
