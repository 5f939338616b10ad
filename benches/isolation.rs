//! Benchmark of issue 3 (not a timed test): start 100 containers one after another,
//! each running `/bin/true` with pid, mnt, uts, ipc and net namespaces and a
//! read-only root, and report median and p99 start-to-exit time for
//!
//! - sup: the spawn path supd uses (helper re-exec of the supd binary, clone into the
//!   namespaces, mounts, pivot_root, capabilities, seccomp, init, exec), waited for
//!   with waitpid;
//! - `unshare -fpimnu /bin/true` (the floor: namespaces only, host root);
//! - `bwrap` with the same namespaces, the rootfs bound read-only, /proc and /dev;
//! - `runc run` on an OCI bundle with the same rootfs (read-only), when installed.
//!
//! Run as root: `cargo bench --bench isolation` (SUP_BENCH_RUNS=100 by default).
//! The rootfs is a static busybox (`apt-get install busybox-static`).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sup::reaper::Registry;
use sup::spawn;

#[path = "common/timing.rs"]
mod timing;
use timing::{measure, report};

const SUPD: &str = env!("CARGO_BIN_EXE_supd");

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("isolation benchmark: run it as root with `cargo bench --bench isolation`");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("isolation benchmark needs root");
        return;
    }
    let runs: usize = std::env::var("SUP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(dir.path());

    report("sup", &measure(runs, sup_runner(&rootfs, dir.path())));
    // Where the time goes: the same spawn path with fewer features.
    if std::env::var_os("SUP_BENCH_BREAKDOWN").is_some() {
        for (name, text) in [
            ("ns-only", "[container]\nnamespaces = [\"pid\", \"mnt\", \"uts\", \"ipc\", \"net\"]\n[service]\nexec = [\"/bin/true\"]\n".to_string()),
            ("ns-noinit", "[container]\ninit = false\nnamespaces = [\"pid\", \"mnt\", \"uts\", \"ipc\", \"net\"]\n[service]\nexec = [\"/bin/true\"]\n".to_string()),
            ("no-ns", "[container]\nnamespaces = []\n[service]\nexec = [\"/bin/true\"]\n".to_string()),
            ("no-ns-noseccomp", "[container]\nnamespaces = []\nseccomp = false\n[service]\nexec = [\"/bin/true\"]\n".to_string()),
            ("net-only", "[container]\nnamespaces = [\"net\"]\ninit=false\n[service]\nexec = [\"/bin/true\"]\n".to_string()),
        ] {
            report(name, &measure(runs, runner_for(&text, dir.path())));
        }
        report(
            "unshare -n",
            &measure(runs, command(&["unshare", "-n", "/bin/true"])),
        );
        report("true", &measure(runs, command(&["/bin/true"])));
        return;
    }
    report(
        "unshare -fpimnu",
        &measure(runs, command(&["unshare", "-fpimnu", "/bin/true"])),
    );
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
        report("bwrap", &measure(runs, command(&args)));
    } else {
        println!("bwrap: not installed (apt-get install bubblewrap)");
    }
    if which("runc") {
        let bundle = runc_bundle(dir.path(), &rootfs);
        let mut i = 0;
        let samples = measure(runs, move || {
            i += 1;
            let id = format!("sup-bench-{}-{i}", std::process::id());
            run(Command::new("runc")
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id));
        });
        report("runc", &samples);
    } else {
        println!("runc: not installed (apt-get install runc)");
    }
}

/// sup's own spawn path, from plan to reaped exit.
fn sup_runner(rootfs: &Path, state: &Path) -> impl FnMut() {
    let text = format!(
        "[container]\nnamespaces = [\"pid\", \"mnt\", \"uts\", \"ipc\", \"net\"]\nrootfs = {:?}\nreadonly_root = true\n\
         [service]\nexec = [\"/bin/true\"]\n",
        rootfs
    );
    runner_for(&text, state)
}

fn runner_for(text: &str, state: &Path) -> impl FnMut() + use<> {
    let unit = sup::unit::parse_unit("bench", Path::new("/bench.toml"), text).expect("unit");
    let plan = spawn::plan(&unit, state).expect("plan");
    let helper = CString::new(SUPD).expect("path");
    let registry = Registry::default();
    // Cgroup placement included, as supd does it: the unit's cgroup is created
    // (kept between runs, as for a restart) and the helper written into it.
    let root = format!("sup-bench-{}-{}", std::process::id(), unit_counter());
    let cgroups = CgroupGuard(sup::cgroup::CgroupTree::init(&root).expect("cgroups"));
    cgroups.0.create("bench", &unit.resources).expect("cgroup");
    let mut attempt = 0;
    move || {
        let cg = &cgroups.0;
        attempt += 1;
        let owner = sup::reaper::ChildOf::main("bench", attempt);
        let spawned = spawn::spawn_with_helper(&helper, &plan, &registry, &owner, &mut |pid| {
            cg.place("bench", pid)
                .map_err(|e| spawn::SpawnError::new(spawn::Step::Cgroup, None, None, e.to_string()))
        })
        .expect("spawn");
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

fn command(args: &[&str]) -> impl FnMut() + use<> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    move || run(Command::new(&args[0]).args(&args[1..]))
}

fn run(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn busybox_rootfs(at: &Path) -> PathBuf {
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
