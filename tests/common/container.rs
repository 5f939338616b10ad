//! What the container tests build: unit texts whose service reports what it sees
//! from inside, a busybox root filesystem, and guards for what a test sets up on the
//! host (mounts, helper processes) so that it is undone even when the test fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;

/// A unit of the TOML `head` (sections before `[service]`, may be empty) whose
/// service runs `script` under `/bin/sh -c`. `[service]` comes last, so more of its
/// keys can be appended.
pub fn sh_unit(head: &str, script: &str) -> String {
    format!("{head}\n[service]\nexec = [\"/bin/sh\", \"-c\", {script:?}]\n")
}

/// A unit running `script` under `/bin/sh -c` in a container declared by the
/// `[container]` lines `container` (empty for the defaults).
pub fn unit(container: &str, script: &str) -> String {
    sh_unit(&format!("[container]\n{container}"), script) + "stop_timeout = \"2s\"\n"
}

/// A service script: run the shell `commands`, write their output to `out` in one
/// step (a temp file renamed into place, so [`super::wait_file`] never sees half of
/// it), then idle.
pub fn report(out: &Path, commands: &str) -> String {
    format!(
        "({commands}) > {o}.tmp; mv {o}.tmp {o}; exec sleep 1000",
        o = out.display()
    )
}

/// `chmod mode path` (a user-namespaced or non-root service must reach the path).
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// A new directory `name` in `parent` that every uid may write.
pub fn shared_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    set_mode(&dir, 0o777);
    dir
}

/// The test process's own namespace inode for `kind` (e.g. "net").
pub fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("readlink ns")
        .to_string_lossy()
        .into_owned()
}

/// A tiny root filesystem at `root`: static busybox and its applets, plus empty
/// mount points and a marker file, `/etc/rootfs-marker`.
pub fn busybox_rootfs(root: &Path) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox is required (apt-get install busybox-static; tests/run.sh does it)");
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp", "data"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir rootfs");
    }
    std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "ls", "cat", "echo", "mount", "hostname", "touch", "dd", "id", "sleep", "grep", "wc",
        "ps", "readlink", "test", "stat", "head", "awk", "true",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet link");
    }
    std::fs::write(root.join("etc/rootfs-marker"), "busybox rootfs\n").expect("marker");
    root.to_path_buf()
}

/// A tmpfs the test mounted on the host; unmounted when dropped.
pub struct TmpfsMount(PathBuf);

impl TmpfsMount {
    pub fn new(at: &Path) -> TmpfsMount {
        std::fs::create_dir_all(at).expect("mkdir mount point");
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", at.display()));
        TmpfsMount(at.to_path_buf())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A helper process the test started; killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
