//! The examples in `examples/`: every unit directory passes `supd --check`, and the
//! microservices stack runs end to end (nginx, the API, postgres, redis on two
//! bridge networks) inside a network namespace the test creates, so the host's
//! network is never touched. The end-to-end test needs root, `ip`, `nft`,
//! `nsenter`, curl and the Debian packages tests/run.sh installs (nginx-light,
//! postgresql, redis-server, python3); it is reported as ignored otherwise.

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../network/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::harness::{self, trials};
use common::{SUPD, Sup, pid_of, stderr, stdout, wait_until_within};
use support::Netns;

/// Where the examples' units expect the example to be installed; the test
/// substitutes its own directory.
const INSTALLED: &str = "/srv/sup-example";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn every_example_passes_supd_check() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(examples()).expect("examples/") {
        let units = entry.expect("entry").path().join("units");
        if !units.is_dir() {
            continue;
        }
        let out = Command::new(SUPD)
            .arg("--check")
            .arg("--units")
            .arg(&units)
            .output()
            .expect("run supd --check");
        assert!(
            out.status.success(),
            "supd --check --units {}:\n{}{}",
            units.display(),
            stdout(&out),
            stderr(&out)
        );
        checked.push(units.parent().unwrap().file_name().unwrap().to_owned());
    }
    checked.sort();
    assert_eq!(checked, ["hardened", "microservices", "vm-appliance"]);
}

fn e2e_gate() -> Option<String> {
    if let Some(why) = harness::root() {
        return Some(why);
    }
    let missing: Vec<&str> = [
        "ip",
        "nft",
        "nsenter",
        "curl",
        "nginx",
        "redis-server",
        "psql",
    ]
    .into_iter()
    .filter(|tool| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .collect();
    if !Path::new("/usr/bin/python3").exists() {
        return Some("needs /usr/bin/python3".into());
    }
    (!missing.is_empty()).then(|| format!("needs {}", missing.join(", ")))
}

/// `src`'s tree copied to `dst`, with every file's `INSTALLED` replaced by `to`.
fn copy_templated(src: &Path, dst: &Path, to: &str) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read example") {
        let path = entry.expect("entry").path();
        let target = dst.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_templated(&path, &target, to);
        } else if path.extension().is_some_and(|e| e != "md") {
            let text = std::fs::read_to_string(&path).expect("read");
            // initdb's closing fsync can wait a minute behind a busy machine's
            // writeback (a CI build); a test database need not be durable.
            let text = text
                .replace(INSTALLED, to)
                .replace("/initdb\" -D", "/initdb\" --no-sync -D");
            std::fs::write(&target, text).expect("write");
        }
    }
}

/// `curl` from inside the namespace: the body, or `ERR ...`.
fn curl(ns: &Netns, url: &str) -> String {
    let out = ns.exec(&["curl", "-sS", "--max-time", "3", "--fail", url]);
    if out.status.success() {
        stdout(&out).trim().to_owned()
    } else {
        format!("ERR {}", stderr(&out).trim())
    }
}

/// The processes in this test's cgroup subtree.
fn processes_in(cgroup_root: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains(cgroup_root) {
            let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!("{name}: {}", cmd.replace('\0', " ")));
        }
    }
    found
}

fn microservices_run_heal_and_leave_nothing() {
    let began = Instant::now();
    let ns = Netns::new("ex");
    let sup = Sup::prepare(&[]);
    // The units run as postgres, redis, nobody and www-data: they must reach
    // their files (tempdir makes the directory 0700).
    std::fs::set_permissions(
        sup.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let here = sup.path().to_string_lossy().into_owned();
    copy_templated(&examples().join("microservices"), sup.path(), &here);
    let cgroup_root = sup.cgroup_root();
    let mut sup = ns.launch(sup);
    // postgres' initdb takes a few seconds on a busy machine.
    let long = Duration::from_secs(120);
    let mut last = String::new();
    wait_until_within("the API through nginx", long, || {
        last = curl(&ns, "http://127.0.0.1:8080/api/hits");
        last.contains("\"hits\"")
    });
    let first: serde_json::Value = serde_json::from_str(&last).expect("json");
    let page = curl(&ns, "http://127.0.0.1:8080/");
    assert!(page.contains("supervised by sup"), "{page}");
    let second: serde_json::Value =
        serde_json::from_str(&curl(&ns, "http://127.0.0.1:8080/api/hits")).expect("json");
    assert_eq!(second["hits"], first["hits"].as_i64().unwrap() + 1);
    assert_eq!(second["visits"], first["visits"].as_i64().unwrap() + 1);
    let units = sup.wait_all_running_or_exited();
    assert_eq!(units.len(), 5, "{units:?}");

    // Break it: the API is killed; supd restarts it and nginx answers again.
    let api = pid_of(&sup.unit("api"));
    let out = sup.supctl(&["kill", "-s", "KILL", "api"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let killed = Instant::now();
    let mut healed = String::new();
    wait_until_within("the API back through nginx", long, || {
        healed = curl(&ns, "http://127.0.0.1:8080/api/hits");
        healed.contains("\"hits\"")
    });
    // A restart keeps the address and its MAC: nginx's ARP entry for api stays
    // right (with a new MAC it would take ~30 s to go stale and be re-learned).
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "healed only after {took:?}");
    let healed: serde_json::Value = serde_json::from_str(&healed).expect("json");
    assert_ne!(
        healed["started"], first["started"],
        "a new API process answers"
    );
    assert!(
        healed["hits"].as_i64() > second["hits"].as_i64(),
        "{healed}"
    );
    let now = sup.unit("api");
    assert_ne!(pid_of(&now), api, "{now}");

    let status = sup.stop();
    assert!(status.success(), "supd: {status}; log:\n{}", sup.log.text());
    wait_until_within("no bridge or veth left", long, || {
        ns.links("sup-").is_empty() && ns.links("sv").is_empty()
    });
    assert!(!ns.has_sup_table(), "the nft table outlived supd");
    let left = processes_in(&cgroup_root);
    assert!(left.is_empty(), "processes left: {left:?}");
    eprintln!(
        "microservices end to end: {:?} (healed {took:?} after the kill)",
        began.elapsed()
    );
}

trait AllUp {
    fn wait_all_running_or_exited(&self) -> Vec<serde_json::Value>;
}

impl AllUp for Sup {
    /// Every unit running, or a oneshot that stays `exited`.
    fn wait_all_running_or_exited(&self) -> Vec<serde_json::Value> {
        self.wait_status("every unit up", |s| {
            s.iter()
                .all(|u| u["state"] == "running" || u["state"] == "exited")
        })
    }
}

fn main() -> std::process::ExitCode {
    harness::main(trials![
        harness::anywhere => [every_example_passes_supd_check],
        e2e_gate => [microservices_run_heal_and_leave_nothing],
    ])
}
