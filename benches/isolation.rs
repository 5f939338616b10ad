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

#[path = "common/mod.rs"]
mod common;
use common::containers::{busybox_rootfs, command, compare, runner_for, sup_runner};
use common::timing::{measure, report};

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

    // Where the time goes: sup's spawn path with fewer features.
    if std::env::var_os("SUP_BENCH_BREAKDOWN").is_some() {
        let rootfs = busybox_rootfs(dir.path());
        report("sup", &measure(runs, sup_runner(&rootfs, dir.path())));
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
    for (name, samples) in compare(runs, dir.path()) {
        report(name, &samples);
    }
}
