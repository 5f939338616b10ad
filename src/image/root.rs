//! A unit's root: an overlay of its image's layers (read-only, shared with
//! every unit and image that has them) and the unit's own upper layer, mounted
//! by supd at `STATE/images/units/UNIT/root` before the unit's first start and
//! kept (with its upper layer) across restarts. The spawn helper then uses it
//! like any `rootfs`: bound into the unit's mount namespace and pivoted into.
//! `reset` unmounts it and discards the upper layer.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::{ImageError, Store};
use crate::unit::ResolvedImage;

/// Where the default mounts of a container go.
const MOUNT_POINTS: [&str; 3] = ["proc", "dev", "sys"];

/// overlayfs's mount options for these layers.
pub fn options(r: &ResolvedImage) -> String {
    let lower: Vec<String> = r
        .lower
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        r.upper.display(),
        r.work.display()
    )
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ImageError {
    ImageError::io(format!("cannot {what} {}", path.display()), e)
}

/// `path` is a mount point: on another device than its parent.
fn is_mount_point(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(path);
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Mounts the unit's root at `root` unless it is mounted with these layers already.
pub fn prepare(
    state_dir: &Path,
    unit: &str,
    r: &ResolvedImage,
    root: &Path,
) -> Result<(), ImageError> {
    let store = Store::new(state_dir);
    let dir = store.unit_dir(unit);
    let data = options(r);
    let record = dir.join("mounted");
    let current =
        || is_mount_point(root) && std::fs::read_to_string(&record).is_ok_and(|m| m == data);
    // A restart: mounted already, no need to wait for an import's lock.
    if current() {
        return Ok(());
    }
    let _lock = store.lock()?;
    for d in [&r.upper, &r.work, &root.to_path_buf()] {
        std::fs::create_dir_all(d).map_err(|e| io("create", d, e))?;
    }
    if is_mount_point(root) {
        if std::fs::read_to_string(&record).is_ok_and(|m| m == data) {
            return Ok(());
        }
        // Another image (a tag imported again): the new layers under the same upper.
        let old = std::fs::metadata(root).map(|m| m.dev()).ok();
        nix::mount::umount2(root, MntFlags::MNT_DETACH)
            .map_err(|e| io("unmount the old root", root, e.into()))?;
        if let Some(dev) = old
            && !wait_released(dev, RELEASE_WAIT)
        {
            tracing::warn!(
                unit,
                "the old overlay root is still held after {RELEASE_WAIT:?}; mounting the new one anyway"
            );
        }
    }
    // Mount points a minimal image (an exported tarball) may lack: made here,
    // as root, since a unit in a user namespace could not create them.
    for point in MOUNT_POINTS {
        if !r.lower.iter().any(|l| l.join(point).exists()) {
            let d = r.upper.join(point);
            if let Err(e) = std::fs::create_dir(&d)
                && e.kind() != std::io::ErrorKind::AlreadyExists
            {
                return Err(io("create", &d, e));
            }
        }
    }
    // The layers it stacks, for `prune` (it may be an image no tag names any more).
    let lowers: Vec<String> = r
        .lower
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let lowers_path = dir.join("lowers");
    std::fs::write(&lowers_path, lowers.join("\n")).map_err(|e| io("write", &lowers_path, e))?;
    nix::mount::mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| {
        let hint = if data.len() > 4000 {
            " (too many layers for one mount's options: squash the image)"
        } else {
            ""
        };
        ImageError::io(
            format!(
                "cannot mount the overlay root of {unit} at {}{hint}",
                root.display()
            ),
            e.into(),
        )
    })?;
    std::fs::write(&record, &data).map_err(|e| io("write", &record, e))
}

/// Unmounts a unit's root and discards its upper layer: the next start begins
/// from the image as it is. Nothing to do for a unit that never started.
pub fn reset(state_dir: &Path, unit: &str) -> Result<(), ImageError> {
    let store = Store::new(state_dir);
    let _lock = store.lock()?;
    let dir = store.unit_dir(unit);
    let root = dir.join("root");
    if is_mount_point(&root) {
        nix::mount::umount2(&root, MntFlags::MNT_DETACH)
            .map_err(|e| io("unmount", &root, e.into()))?;
    }
    super::store::remove(&dir)
}

/// How long a remount waits for the old overlay to be let go.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (bounded) until no process's mount table has the overlay `dev` any
/// more: the namespace of a container that just exited may hold it for a
/// moment, and overlayfs over an upper layer another live overlay uses is
/// undefined (the kernel warns so). Only after an image change, so reading
/// every process's mountinfo is affordable.
fn wait_released(dev: u64, limit: std::time::Duration) -> bool {
    let needle = format!(
        " {}:{} ",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    let deadline = std::time::Instant::now() + limit;
    loop {
        if !held(&needle) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Some process's mount table has a mount whose device field is `needle`.
fn held(needle: &str) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let numeric = p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit());
        numeric
            && std::fs::read_to_string(p.path().join("mountinfo"))
                .is_ok_and(|info| info.lines().any(|l| l.contains(needle)))
    })
}

/// Unmounts a unit's root, keeping its writable layer (the unit was removed).
pub fn release(state_dir: &Path, unit: &str) {
    let dir = Store::new(state_dir).unit_dir(unit);
    let root = dir.join("root");
    if is_mount_point(&root)
        && let Err(err) = nix::mount::umount2(&root, MntFlags::MNT_DETACH)
    {
        tracing::warn!("cannot unmount image root {}: {err}", root.display());
        return;
    }
    let _ = std::fs::remove_file(dir.join("mounted"));
}

/// Unmounts every unit root (supd exiting: every unit has stopped). Upper
/// layers stay; the next start mounts the root again.
pub fn unmount_all(state_dir: &Path) {
    let units = Store::new(state_dir).root().join("units");
    let Ok(list) = std::fs::read_dir(&units) else {
        return;
    };
    for e in list.flatten() {
        let root = e.path().join("root");
        if is_mount_point(&root) {
            if let Err(err) = nix::mount::umount2(&root, MntFlags::MNT_DETACH) {
                tracing::warn!("cannot unmount image root {}: {err}", root.display());
            }
            let _ = std::fs::remove_file(e.path().join("mounted"));
        }
    }
}
