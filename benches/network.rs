//! Benchmark of issue 13 (not a timed test): what bridge networking adds to a
//! container start. 100 starts of `/bin/true` one after another, each with its own
//! network namespace, as supd makes them (helper, clone, mounts, init, cgroup),
//! `mode = "none"` (only `lo`) against `mode = "bridge"` (a veth pair into the
//! bridge, the container end configured with its address and default route, the
//! start's bridge check and hosts files). Reports median and p99 start-to-exit.
//!
//! Run as root: `cargo bench --bench network` (SUP_BENCH_RUNS=100 by default). The
//! benchmark first moves itself into a network namespace of its own, so the bridge
//! never touches the host's network.

use std::ffi::CString;
use std::path::Path;
use std::sync::Arc;

use nix::sched::{CloneFlags, unshare};
use sup::net::{Attachment, Interface, NetStart, UnitNet, setup};
use sup::reaper::Registry;
use sup::spawn;
use sup::unit::NetworkDef;

#[path = "common/timing.rs"]
mod timing;
use timing::{report, time};

const SUPD: &str = env!("CARGO_BIN_EXE_supd");

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("network benchmark: run it as root with `cargo bench --bench network`");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("network benchmark needs root");
        return;
    }
    // Before any thread exists: everything below lives in this namespace.
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare net");
    let runs: usize = std::env::var("SUP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = |mode: &str| {
        let text = format!("[network]\nmode = \"{mode}\"\n[service]\nexec = [\"/bin/true\"]\n");
        sup::unit::parse_unit("bench", Path::new("/bench.toml"), &text).expect("unit")
    };
    let def = NetworkDef::builtin_default();
    let net = Arc::new(UnitNet {
        attachment: Attachment {
            interfaces: vec![Interface {
                network: def.name.clone(),
                bridge: def.bridge(),
                host_name: String::new(),
                alias: "sup unit bench network default".into(),
                name: "eth0".into(),
                address: "10.89.0.2".parse().expect("ip"),
                prefix: def.subnet.prefix_len(),
                gateway: Some(def.gateway),
            }],
            hosts: dir.path().join("bench.hosts"),
            resolv: dir.path().join("bench.resolv"),
        },
        networks: vec![def],
        ports: Vec::new(),
        hosts_text: "127.0.0.1\tlocalhost\n10.89.0.2\tbench\n".into(),
        resolv_text: String::new(),
    });
    // Alternated, one of each in turn: a busy machine slows both alike, and the
    // difference of each pair is what bridging adds.
    let mut none_run = runner(&unit("none"), dir.path(), None);
    let mut bridge_run = runner(&unit("bridge"), dir.path(), Some(net));
    none_run();
    bridge_run();
    let (mut none, mut bridge, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let a = time(&mut none_run);
        let b = time(&mut bridge_run);
        none.push(a);
        bridge.push(b);
        added.push(b.as_secs_f64() - a.as_secs_f64());
    }
    report("mode = none", &none);
    report("mode = bridge", &bridge);
    added.sort_by(f64::total_cmp);
    println!(
        "bridge networking adds {:.2} ms to a start (median of {} pairs; p90 {:.2} ms)",
        added[added.len() / 2] * 1000.0,
        added.len(),
        added[added.len() * 9 / 10] * 1000.0
    );
}

/// One start as supd makes it, from the start's network work to the reaped exit.
fn runner(unit: &sup::unit::Unit, state: &Path, net: Option<Arc<UnitNet>>) -> impl FnMut() + use<> {
    let base = spawn::plan(unit, state).expect("plan");
    let helper = CString::new(SUPD).expect("path");
    let registry = Registry::default();
    let mut attempt = 0;
    move || {
        attempt += 1;
        let mut plan = base.clone();
        if let Some(net) = &net {
            // As supd names them: a veth of its own per start.
            let mut this = UnitNet::clone(net);
            this.attachment.interfaces[0].host_name = sup::net::veth_name("bench", attempt, 0);
            spawn::attach_network(&mut plan, &NetStart::Bridge(Arc::new(this)));
            for def in &net.networks {
                setup::ensure_bridge(def).expect("bridge");
            }
            for (path, text) in [
                (&net.attachment.hosts, &net.hosts_text),
                (&net.attachment.resolv, &net.resolv_text),
            ] {
                setup::write_in_place(path, text).expect("hosts");
            }
        }
        let owner = sup::reaper::ChildOf::main("bench", attempt);
        let spawned = spawn::spawn_with_helper(&helper, &plan, &registry, &owner).expect("spawn");
        timing::wait_success(spawned.pid);
    }
}
