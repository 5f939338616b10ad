//! What the escape tests share: the probe program (compiled once per test run),
//! the scene it attacks (a scratch directory, a block device node, a file in the
//! host's /tmp), unit texts that run it, and its verdicts read back from the
//! unit's log with `supctl logs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

/// The probe's source: plain Rust, no crates (see its header).
const PROBE_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/escape/probe/main.rs");

/// A syscall number newer than sup's list, which ends at 467 (`open_tree_attr`):
/// 468 is `file_getattr` (Linux 6.17). The filter answers `ENOSYS`; without it a
/// kernel that has the call answers for itself.
pub const NEW_SYSCALL: u32 = 468;

/// What a unit running as root tries.
pub const ROOT_ATTACKS: &[&str] = &[
    "supd_status",
    "cgroup_escape",
    "sys_write",
    "proc_sys_write",
    "mknod_block",
    "open_block",
    "packet_socket",
    "etc_write",
    "host_tmp",
    "open_tree_attr",
    "mount_setattr",
    "io_uring_setup",
    "kcmp",
    "new_syscall",
    "syscall_1000",
];

/// The attacks that only a seccomp filter stops.
pub const SYSCALL_ATTACKS: &[&str] = &[
    "open_tree_attr",
    "mount_setattr",
    "io_uring_setup",
    "kcmp",
    "new_syscall",
];

/// What a unit running as `nobody` tries.
pub const IDENTITY_ATTACKS: &[&str] = &["read_shadow", "setuid_root"];

/// Docker's default capabilities plus `net_raw`, which sup leaves out for a unit
/// on the host's network.
pub const WITH_NET_RAW: &str = "capabilities = [\"chown\", \"dac_override\", \"fsetid\", \"fowner\", \
     \"mknod\", \"net_raw\", \"setgid\", \"setuid\", \"setfcap\", \"setpcap\", \
     \"net_bind_service\", \"sys_chroot\", \"kill\", \"audit_write\"]";

/// Every relaxation of a root unit at once (`[container]` lines).
pub fn all_relaxed() -> String {
    [
        "control_socket = true",
        "protect_cgroups = false",
        "protect_kernel = false",
        "private_devices = false",
        "seccomp = false",
        "protect_system = \"no\"",
        "private_tmp = false",
        WITH_NET_RAW,
    ]
    .join("\n")
}

/// What lets a `nobody` unit read `/etc/shadow` and become root.
pub const NOBODY_RELAXED: &str = "ambient_capabilities = [\"dac_override\", \"setuid\"]";

static PROBE: OnceLock<PathBuf> = OnceLock::new();

fn probe_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("escape-probe-{}", std::process::id()))
}

/// The static probe binary, compiled on first use (every user may run it: units
/// run as `nobody` and in user namespaces).
pub fn probe() -> &'static Path {
    PROBE.get_or_init(|| {
        let dir = probe_dir();
        std::fs::create_dir_all(&dir).expect("probe dir");
        set_mode(&dir, 0o755);
        let bin = dir.join("probe");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(rustc)
            .args([
                "--edition",
                "2024",
                "-O",
                "-C",
                "target-feature=+crt-static",
            ])
            .arg("-o")
            .arg(&bin)
            .arg(PROBE_SOURCE)
            .output()
            .expect("run rustc");
        assert!(
            out.status.success(),
            "compiling the probe failed: {}",
            stderr(&out)
        );
        set_mode(&bin, 0o755);
        bin
    })
}

/// Remove the probe (after the last test).
pub fn remove_probe() {
    let _ = std::fs::remove_dir_all(probe_dir());
}

/// The probe's verdicts on the host itself, outside any unit, for the syscall
/// attacks: what the kernel says when no filter answers (a kernel without
/// io_uring or `file_getattr` refuses them itself).
pub fn host_syscall_verdicts() -> &'static BTreeMap<String, String> {
    static HOST: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let out = Command::new(probe())
            .arg(format!("new_syscall={NEW_SYSCALL}"))
            .args(SYSCALL_ATTACKS)
            .output()
            .expect("run the probe on the host");
        parse(&stdout(&out))
    })
}

/// `name=verdict` lines (the last word of each log line) -> map.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last()?.split_once('='))
        .filter(|(k, _)| *k != "probe")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `(attack, verdict)` pairs -> map.
pub fn verdicts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The same verdict for every attack in `attacks`.
pub fn all(attacks: &[&str], verdict: &str) -> BTreeMap<String, String> {
    attacks
        .iter()
        .map(|a| (a.to_string(), verdict.to_string()))
        .collect()
}

/// A block device of this host, `(major, minor)`: `loop0` when there is one (an
/// unbound loop device opens and reads nothing), else the first one.
pub fn block_device() -> (u64, u64) {
    let meta = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(p).ok()?.rdev();
        Some((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)))
    };
    if let Some(dev) = meta(Path::new("/dev/loop0")) {
        return dev;
    }
    let mut entries: Vec<String> = std::fs::read_dir("/sys/dev/block")
        .expect("/sys/dev/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let first = entries.first().expect("some block device");
    let (a, b) = first.split_once(':').expect("MAJOR:MINOR");
    (a.parse().expect("major"), b.parse().expect("minor"))
}

/// What the probe attacks, set up on the host: a directory any unit may write
/// (for `mknod`), a block device node made there by the test (0600, for
/// `open_block`), and a file in the host's /tmp. Removed when dropped.
pub struct Scene {
    pub scratch: PathBuf,
    pub node: PathBuf,
    pub tmp_mark: PathBuf,
    pub dev: (u64, u64),
}

impl Scene {
    pub fn new(sup: &Sup) -> Scene {
        set_mode(sup.path(), 0o755);
        let scratch = shared_dir(sup.path(), "scratch");
        let dev = block_device();
        let node = scratch.join("blk-host");
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(dev.0, dev.1),
        )
        .expect("mknod the test's block device node");
        let tmp_mark = PathBuf::from(format!("/tmp/sup-escape-{}", sup.cgroup_root()));
        std::fs::write(&tmp_mark, "the host's /tmp\n").expect("host /tmp mark");
        Scene {
            scratch,
            node,
            tmp_mark,
            dev,
        }
    }

    /// The probe's options for a unit that sees the scene at the host's paths, or
    /// (with `inside = Some(dir)`) with the scratch directory bound at `dir`.
    pub fn options(&self, sup: &Sup, inside: Option<&str>) -> Vec<String> {
        let scratch = inside.map_or_else(|| self.scratch.clone(), PathBuf::from);
        vec![
            format!("state={}", sup.state_dir().display()),
            format!("scratch={}", scratch.display()),
            format!("dev={}:{}", self.dev.0, self.dev.1),
            format!("node={}", scratch.join("blk-host").display()),
            format!("tmp_mark={}", self.tmp_mark.display()),
            format!("new_syscall={NEW_SYSCALL}"),
        ]
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp_mark);
        let _ = std::fs::remove_file(&self.node);
    }
}

/// A unit whose service runs `exec` with `args` once (`restart = "no"`), with the
/// `[container]` lines `container` (which may end in `[[mount]]` tables) and extra
/// `[service]` lines `service`.
pub fn probe_unit(container: &str, service: &str, exec: &str, args: &[String]) -> String {
    let argv: Vec<&str> = std::iter::once(exec)
        .chain(args.iter().map(String::as_str))
        .collect();
    format!(
        "[container]\n{container}\n[service]\nexec = {argv:?}\nrestart = \"no\"\n\
         stop_timeout = \"2s\"\n{service}\n"
    )
}

/// The probe's arguments: options, then attacks.
pub fn probe_args(options: &[String], attacks: &[&str]) -> Vec<String> {
    options
        .iter()
        .cloned()
        .chain(attacks.iter().map(|a| a.to_string()))
        .collect()
}

/// Wait until `unit` has run to its end (`exited`; a failure to start fails the
/// test with supd's reason) and return its output, read with `supctl logs`.
pub fn output_of(sup: &Sup, unit: &str) -> String {
    let status = sup.wait_status(&format!("{unit} to finish"), |units| {
        units
            .iter()
            .any(|u| u["name"] == unit && (u["state"] == "exited" || u["state"] == "failed"))
    });
    let u = status
        .iter()
        .find(|u| u["name"] == unit)
        .expect("unit in status");
    let mut text = String::new();
    wait_until(&format!("{unit}'s log to end with probe=done"), || {
        text = stdout(&sup.supctl(&["logs", "-n", "1000", unit]));
        text.contains("probe=done") || u["state"] == "failed"
    });
    assert_eq!(
        u["state"], "exited",
        "{unit} did not run to its end: {u:#}\nlog:\n{text}"
    );
    text
}

/// The verdicts `unit`'s probe printed.
pub fn seen(sup: &Sup, unit: &str) -> BTreeMap<String, String> {
    parse(&output_of(sup, unit))
}
