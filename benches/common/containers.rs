//! Container starts, timed from start to reaped exit: sup's own spawn path and
//! its peers (`unshare`, bwrap, runc) on the same busybox root. Shared by the
//! isolation benchmark and the side-by-side comparison (benches/peers.rs).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sup::reaper::Registry;
use sup::spawn;

use super::timing::{self, measure};

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");

/// `runs` timed starts of each tool, after a warm-up each, in a fixed order:
/// sup, `unshare -fpimnu`, then bwrap and runc when installed (a missing one is
/// reported and left out).
pub fn compare(runs: usize, dir: &Path) -> Vec<(&'static str, Vec<Duration>)> {
    let rootfs = busybox_rootfs(dir);
    let sup = measure(runs, sup_runner(&rootfs, dir));
    let mut out = vec![
        ("sup", sup),
        (
            "unshare -fpimnu",
            measure(runs, command(&["unshare", "-fpimnu", "/bin/true"])),
        ),
    ];
    if which("bwrap") {
        let root = rootfs.display().to_string();
        let args = [
            "bwrap",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--ro-bind",
            &root,
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "/bin/true",
        ];
        out.push(("bwrap", measure(runs, command(&args))));
    } else {
        println!("bwrap: not installed (apt-get install bubblewrap)");
    }
    if which("runc") {
        let bundle = runc_bundle(dir, &rootfs);
        let mut i = 0;
        let samples = measure(runs, move || {
            i += 1;
            let id = format!("sup-bench-{}-{i}", std::process::id());
            run(Command::new("runc")
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id));
        });
        out.push(("runc", samples));
    } else {
        println!("runc: not installed (apt-get install runc)");
    }
    out
}

/// sup's own spawn path, from plan to reaped exit, cgroup placement included.
pub fn sup_runner(rootfs: &Path, state: &Path) -> impl FnMut() + use<> {
    let text = format!(
        "[container]\nnamespaces = [\"pid\", \"mnt\", \"uts\", \"ipc\", \"net\"]\nrootfs = {:?}\nreadonly_root = true\n\
         [service]\nexec = [\"/bin/true\"]\n",
        rootfs
    );
    runner_for(&text, state)
}

pub fn runner_for(text: &str, state: &Path) -> impl FnMut() + use<> {
    let unit = sup::unit::parse_unit("bench", Path::new("/bench.toml"), text).expect("unit");
    let mut plan = spawn::plan(&unit, state).expect("plan");
    let helper = CString::new(SUPD).expect("path");
    let registry = Registry::default();
    // Cgroup placement included, as supd does it: the unit's cgroup is created
    // (kept between runs, as for a restart) and the helper writes itself into it.
    let root = format!("sup-bench-{}-{}", std::process::id(), unit_counter());
    let cgroups = CgroupGuard(sup::cgroup::CgroupTree::init(&root).expect("cgroups"));
    cgroups.0.create("bench", &unit.resources).expect("cgroup");
    plan.cgroup_join = cgroups.0.join_files("bench");
    let mut attempt = 0;
    move || {
        let _held = &cgroups;
        attempt += 1;
        let owner = sup::reaper::ChildOf::main("bench", attempt);
        let spawned = spawn::spawn_with_helper(&helper, &plan, &registry, &owner).expect("spawn");
        // The helper and the container are both our children; wait for the container.
        timing::wait_success(spawned.pid);
    }
}

fn unit_counter() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// Removes the benchmark's cgroups when the runner is dropped.
struct CgroupGuard(sup::cgroup::CgroupTree);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let _ = self.0.teardown();
    }
}

pub fn command(args: &[&str]) -> impl FnMut() + use<> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    move || run(Command::new(&args[0]).args(&args[1..]))
}

pub fn run(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

pub fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn busybox_rootfs(at: &Path) -> PathBuf {
    let root = at.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static");
    std::fs::copy(busybox, root.join("bin/busybox")).expect("copy");
    for applet in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("link");
    }
    root
}

/// An OCI bundle for runc: its default spec, adjusted to run /bin/true read-only.
fn runc_bundle(at: &Path, rootfs: &Path) -> PathBuf {
    let bundle = at.join("bundle");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    run(Command::new("runc").args(["spec", "--bundle"]).arg(&bundle));
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read spec")).expect("json");
    spec["root"]["path"] = serde_json::json!(rootfs);
    spec["root"]["readonly"] = serde_json::json!(true);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).expect("json")).expect("write spec");
    bundle
}
