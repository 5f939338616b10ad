//! supd as PID 1 of a VM (issue 6), booted under qemu with software emulation
//! (KVM is not usable on these machines) and checked from the serial console.
//! Also the only place pure cgroup v2 with real controllers is exercised (issue 4).
//! Needs root (the Debian kernel image is readable by root only), qemu-system-x86,
//! linux-image-amd64 and busybox-static, which tests/run.sh installs; without them
//! the test is reported as ignored.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::harness::{self, trials};

const QEMU: &str = "qemu-system-x86_64";

/// Boot, the units' work and the power-off take well under a minute when the
/// machine is idle; software emulation on a busy one can be several times slower.
const VM_PATIENCE: Duration = Duration::from_secs(300);

fn main() -> std::process::ExitCode {
    harness::main(trials![can_boot_a_vm => [
        supd_boots_a_vm_as_pid1_runs_containers_and_powers_off,
    ]])
}

/// Root (to read the kernel image), qemu and a kernel to boot.
fn can_boot_a_vm() -> Option<String> {
    let mut missing = Vec::new();
    missing.extend(harness::root());
    if !on_path(QEMU) {
        missing.push(format!("needs {QEMU} (apt-get install qemu-system-x86)"));
    }
    if kernel().is_none() {
        missing.push("needs a kernel in /boot (apt-get install linux-image-amd64)".into());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn kernel() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    found.sort();
    found.pop()
}

fn position(lines: &[String], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

fn supd_boots_a_vm_as_pid1_runs_containers_and_powers_off() {
    let kernel = kernel().expect("a kernel in /boot");
    let dir = tempfile::tempdir().expect("tempdir");
    // A container image inside the initramfs: busybox and a marker.
    let image = common::busybox_rootfs(&dir.path().join("extra/images/box"));
    std::fs::write(image.join("etc/box-marker"), "busybox-image\n").expect("marker");
    // The mount point of the device units' tmpfs.
    std::fs::create_dir_all(dir.path().join("extra/devtest")).expect("devtest");
    let initrd = dir.path().join("initrd.cpio.gz");
    let built = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/mkinitramfs.sh"
        ))
        .arg(&initrd)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/units"))
        .arg(dir.path().join("extra"))
        .status()
        .expect("mkinitramfs");
    assert!(built.success(), "building the initramfs failed");

    let t0 = Instant::now();
    let mut qemu = Command::new(QEMU)
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-kernel",
        ])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 quiet panic=-1 SUPD_LOG=info,sup::spawn=debug",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu");
    let (tx, rx) = mpsc::channel();
    let stdout = qemu.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.replace('\r', ""));
        }
    });
    // The console closes when qemu exits (the VM powered off).
    let mut lines = Vec::new();
    let deadline = t0 + VM_PATIENCE;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = qemu.kill();
                let _ = qemu.wait();
                panic!(
                    "the VM did not power off within {VM_PATIENCE:?}; console:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let status = qemu.wait().expect("wait qemu");
    let console = lines.join("\n");
    let took = t0.elapsed();
    eprintln!("VM run took {took:?}");
    assert!(
        status.success(),
        "qemu exited with {status}; console:\n{console}"
    );
    assert!(
        console.contains("cgroups ready layout=\"cgroup v2\"")
            || console.contains("layout=cgroup v2"),
        "pure cgroup v2: {console}"
    );
    assert!(
        console.contains("inside host=boxed pid=2 root=busybox-image"),
        "namespaces + rootfs: {console}"
    );
    assert!(
        console.contains("limits memory=67108864 pids=20"),
        "cgroup v2 limits: {console}"
    );
    assert!(
        console.contains("OOM-killed"),
        "the hog is OOM-killed: {console}"
    );
    let oom = position(&lines, "OOM-killed").expect("oom");
    assert!(
        lines[oom..].iter().any(|l| l.contains("started unit=hog")),
        "and restarted: {console}"
    );
    assert!(console.contains("zombies=0"), "orphans reaped: {console}");
    assert!(
        console.contains(
            "devices default null=ok mknull=ok opennull=ok mkloop=refused mkkmsg=refused"
        ),
        "the device allowlist as a BPF program on cgroup v2: {console}"
    );
    assert!(
        console.contains("devices relaxed mkloop=ok mkkmsg=ok openkmsg=ok"),
        "private_devices = false lifts it: {console}"
    );
    assert!(
        console.contains(
            "web protections cgroup=readonly view=own sys=readonly etc=readonly state=hidden dev=private"
        ),
        "a default unit is protected with the initramfs as root: {console}"
    );
    // Pure cgroup v2: the fork server creates each helper inside its unit's
    // cgroup (CLONE_INTO_CGROUP) instead of moving it there.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("helper created inside its cgroup") && l.contains("unit=limits")),
        "helpers forked into their cgroup: {console}"
    );
    // Each container's init is the small sup-init, found beside /bin/supd.
    assert!(
        !console.contains("sup-init is missing"),
        "sup-init installed: {console}"
    );
    let table_end = position(&lines, "status-done").expect("status printed");
    for unit in ["base", "web", "boxed", "limits", "orphans", "final"] {
        assert!(
            lines[..table_end]
                .iter()
                .any(|l| l.contains(&format!("final: {unit} ")) && l.contains("running")),
            "{unit} running in supctl status: {console}"
        );
    }
    let web = position(&lines, "process exited unit=web").expect("web stopped");
    let base = position(&lines, "process exited unit=base").expect("base stopped");
    assert!(web < base, "reverse dependency order: web before base");
    assert!(
        console.contains("supd: exit code 42 (on_failure = \"exit\")"),
        "the failed unit's code on the console: {console}"
    );
    assert!(console.contains("powering off"), "{console}");
}
