//! Benchmark of issue 14 (not a timed test):
//!
//! - import of a ~100 MB image (an OCI layout: the busybox base and a layer of
//!   100 files of 1 MiB of incompressible bytes, gzip): time, blob size, disk
//!   use in the store; then the same import again (layers present: verified,
//!   not unpacked);
//! - container start from an image (overlay root, mounted once as supd does)
//!   against the same busybox root as a plain `rootfs` directory, both
//!   read-only with pid, mnt, uts, ipc and net namespaces, `/bin/true`, start
//!   to reaped exit; no cgroup placement, so the difference is the root;
//! - the overlay mount itself (a unit's first start, or after its image changed).
//!
//! Run as root: `cargo bench --bench images` (SUP_BENCH_RUNS=100 by default).

#[path = "../tests/images/build.rs"]
#[allow(dead_code)]
mod build;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use build::{Comp, ImageDef, Layer, busybox_base};
use sup::image::{ImportOptions, Store};
use sup::reaper::Registry;
use sup::spawn;

#[path = "common/timing.rs"]
mod timing;
use timing::{measure, report};

const SUPD: &str = env!("CARGO_BIN_EXE_supd");

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("images benchmark: run it as root with `cargo bench --bench images`");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("images benchmark needs root");
        return;
    }
    let runs: usize = std::env::var("SUP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::Builder::new()
        .prefix("sup-bench-images-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    let state = dir.path().join("state");
    let _unmount = Unmount(state.clone());
    import_bench(dir.path(), &state);
    start_bench(dir.path(), &state, runs);
}

/// Unmounts the unit roots when the benchmark ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        sup::image::root::unmount_all(&self.0);
    }
}

fn config(script: &[&str]) -> serde_json::Value {
    serde_json::json!({ "Cmd": script, "Env": ["PATH=/bin"] })
}

fn import_bench(dir: &Path, state: &Path) {
    // xorshift: incompressible, so the blob is as big as the files.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut big = Layer::new().dir("data");
    for i in 0..100 {
        let bytes: Vec<u8> = (0..(1 << 20) / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        big = big.file(&format!("data/f{i:03}"), &bytes, 0o644);
    }
    let image = ImageDef {
        layers: vec![(busybox_base(), Comp::Gzip), (big.finish(), Comp::Gzip)],
        config: config(&["/bin/true"]),
        diff_ids: None,
    };
    let layout = dir.join("big");
    build::oci_layout(&layout, &image, "1");
    let blobs = sup::image::store::disk_usage(&layout.join("blobs"));
    let store = Store::new(state);
    let opts = ImportOptions {
        name: Some("big:1".into()),
    };
    let t0 = Instant::now();
    let done = sup::image::import(&store, &layout, &opts).expect("import");
    let first = t0.elapsed();
    let t0 = Instant::now();
    sup::image::import(&store, &layout, &opts).expect("import again");
    let again = t0.elapsed();
    let image = store.image(&done.digest).expect("image");
    let disk: u64 = image
        .layers
        .iter()
        .map(|l| sup::image::store::disk_usage(&store.layer(l)))
        .sum();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "import {:.1} MiB layout: {:.2} s ({:.0} MiB/s); store {:.1} MiB on disk; again {:.2} s (verified, not unpacked)",
        mib(blobs),
        first.as_secs_f64(),
        mib(blobs) / first.as_secs_f64(),
        mib(disk),
        again.as_secs_f64()
    );
}

fn start_bench(dir: &Path, state: &Path, runs: usize) {
    let base = busybox_base();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).expect("rootfs dir");
    sup::image::unpack::unpack(&base[..], &rootfs).expect("unpack rootfs");
    let image = ImageDef {
        layers: vec![(base, Comp::Gzip)],
        config: config(&["/bin/true"]),
        diff_ids: None,
    };
    build::oci_layout(&dir.join("bb"), &image, "1");
    let store = Store::new(state);
    let opts = ImportOptions {
        name: Some("bb:1".into()),
    };
    sup::image::import(&store, &dir.join("bb"), &opts).expect("import busybox");

    let head = "[container]\nnamespaces = [\"pid\", \"mnt\", \"uts\", \"ipc\", \"net\"]\nreadonly_root = true\n";
    let plain = format!("{head}rootfs = {rootfs:?}\n[service]\nexec = [\"/bin/true\"]\n");
    let from_image = format!("{head}image = \"bb:1\"\n[service]\nexec = [\"/bin/true\"]\n");
    let plain = plan_for("plain", &plain, state);
    let from_image = plan_for("img", &from_image, state);
    // Alternating rounds, so drift of the machine hits both the same.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        a.extend(measure(runs / 4, || run(&plain)));
        b.extend(measure(runs / 4, || run(&from_image)));
    }
    report("rootfs dir", &a);
    report("image", &b);

    let unit = resolved("img", &format!("{head}image = \"bb:1\"\n"), state);
    let r = unit
        .container
        .image
        .as_ref()
        .and_then(|i| i.resolved.clone())
        .expect("resolved");
    let root = unit.container.rootfs.clone().expect("root");
    // The mount alone (what a first start adds); the unmount before it untimed.
    let mounts: Vec<Duration> = (0..runs)
        .map(|_| {
            sup::image::root::release(state, "img");
            let t0 = Instant::now();
            sup::image::root::prepare(state, "img", &r, &root).expect("mount");
            t0.elapsed()
        })
        .collect();
    report("overlay mount", &mounts);
}

/// A unit as supd loads it: parsed, its image resolved in the store.
fn resolved(name: &str, text: &str, state: &Path) -> sup::unit::Unit {
    let unit = sup::unit::parse_unit(name, Path::new("/bench.toml"), text).expect("unit");
    let mut loaded = sup::unit::Loaded {
        units: BTreeMap::from([(name.to_owned(), unit)]),
        ..sup::unit::Loaded::default()
    };
    sup::image::units::resolve_units(&mut loaded, state);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded.units.remove(name).expect("resolved unit")
}

fn plan_for(name: &str, text: &str, state: &Path) -> spawn::LaunchPlan {
    // The first plan of an image unit mounts its root, as supd's first start does.
    spawn::plan(&resolved(name, text, state), state).expect("plan")
}

fn run(plan: &spawn::LaunchPlan) {
    let helper = CString::new(SUPD).expect("path");
    let registry = Registry::default();
    let owner = sup::reaper::ChildOf::main("bench", 1);
    let spawned = spawn::spawn_with_helper(&helper, plan, &registry, &owner).expect("spawn");
    timing::wait_success(spawned.pid);
}
