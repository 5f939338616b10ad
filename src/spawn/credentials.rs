//! `[credentials]` (systemd's `LoadCredential=`): at each start supd copies each
//! named host file into a tmpfs of the unit's own, `STATE/credentials/UNIT`
//! (in supd's state directory, which units never see), made read-only once
//! filled; the container gets it bound read-only at `/run/credentials/UNIT`,
//! and `CREDENTIALS_DIRECTORY` names that. The directory is mode 0500 and each
//! file 0400, owned by the service's user (its host id through the unit's user
//! namespace). Nothing here ever quotes a credential's content: errors name the
//! credential and its host path only.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::mounts::PlannedMount;
use super::{Credentials, SpawnError, Step};
use crate::unit::{ContainerSpec, IdMapRange, MountKind, MountSpec, Namespace};

/// The largest credential file copied (systemd's limit too).
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Where a unit finds its credentials.
pub fn container_dir(unit: &str) -> PathBuf {
    Path::new("/run/credentials").join(unit)
}

/// The host side: a tmpfs per unit below the state directory.
pub fn host_dir(state_dir: &Path, unit: &str) -> PathBuf {
    state_dir.join("credentials").join(unit)
}

/// The id `id` of the container as the host sees it: through `map` with a user
/// namespace, itself without one; `None` when the map leaves it out.
pub fn host_id(id: u32, map: &[IdMapRange], userns: bool) -> Option<u32> {
    if !userns {
        return Some(id);
    }
    map.iter().find_map(|r| {
        let offset = id.checked_sub(r.inside)?;
        (offset < r.count).then(|| r.outside.checked_add(offset))?
    })
}

fn error(name: Option<&str>, path: &Path, e: impl std::fmt::Display) -> SpawnError {
    let detail = match name {
        Some(n) => format!("credential {n}: {e}"),
        None => e.to_string(),
    };
    SpawnError::new(
        Step::Credentials,
        Some(&path.to_string_lossy()),
        None,
        detail,
    )
}

/// Fill the unit's credentials tmpfs afresh (a previous one is detached) and
/// return the mount that shows it in the container. Blocking; supd only.
pub fn prepare(
    unit: &str,
    credentials: &BTreeMap<String, PathBuf>,
    container: &ContainerSpec,
    who: Option<&Credentials>,
    state_dir: &Path,
) -> Result<PlannedMount, SpawnError> {
    let userns = container.namespaces.contains(&Namespace::User);
    // Without `user`: the namespace's root with a user namespace, else supd's ids.
    let (inside_uid, inside_gid) = match who {
        Some(c) => (c.uid, c.gid),
        None if userns => (0, 0),
        None => (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ),
    };
    let uid = host_id(inside_uid, &container.uid_map, userns);
    let gid = host_id(inside_gid, &container.gid_map, userns);
    let (Some(uid), Some(gid)) = (uid, gid) else {
        let detail = format!(
            "the service's uid {inside_uid} / gid {inside_gid} is not mapped by the unit's user namespace"
        );
        return Err(SpawnError::new(Step::Credentials, None, None, detail));
    };
    // Read everything first: a missing file fails the start before any mount.
    let mut contents = Vec::new();
    for (name, path) in credentials {
        let read = std::fs::File::open(path).and_then(|f| {
            let mut bytes = Vec::new();
            f.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) if bytes.len() as u64 > MAX_SIZE => {
                let e = format!("larger than {MAX_SIZE} bytes");
                return Err(error(Some(name), path, e));
            }
            Ok(bytes) => contents.push((name, bytes)),
            Err(e) => return Err(error(Some(name), path, e)),
        }
    }
    let dir = host_dir(state_dir, unit);
    let parent = dir.parent().unwrap_or(state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| error(None, parent, e))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(error(None, &dir, e));
        }
        _ => {}
    }
    // The previous start's tmpfs (its container is gone, or keeps its own copy).
    while umount2(&dir, MntFlags::MNT_DETACH).is_ok() {}
    let total: u64 = contents.iter().map(|(_, b)| b.len() as u64 + 4096).sum();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let data = format!(
        "mode=0500,uid={uid},gid={gid},size={},nr_inodes={}",
        total + 64 * 1024,
        contents.len() + 16
    );
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| error(None, &dir, e))?;
    let filled = fill(&dir, &contents, uid, gid).and_then(|()| {
        let ro = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &dir, None::<&str>, ro, Some(data.as_str()))
            .map_err(|e| error(None, &dir, e))
    });
    if let Err(e) = filled {
        let _ = umount2(&dir, MntFlags::MNT_DETACH);
        return Err(e);
    }
    let target = container_dir(unit);
    let in_tmpfs = in_own_tmpfs(container, &target);
    if container.rootfs.is_none() && !in_tmpfs {
        // The mount point, on the host's own tree the container sees: an empty
        // directory (a rootfs, or a tmpfs of the unit's, gets it made inside by
        // the mount plan).
        std::fs::create_dir_all(&target).map_err(|e| error(None, &target, e))?;
    }
    let mut spec = MountSpec::plain(
        MountKind::Bind {
            source: dir,
            recursive: false,
        },
        target,
    );
    spec.readonly = true;
    spec.nosuid = true;
    spec.nodev = true;
    spec.noexec = true;
    Ok(PlannedMount {
        in_fresh_mount: in_tmpfs,
        ..PlannedMount::new(spec)
    })
}

/// Whether the deepest mount the unit declares over `target` is a tmpfs (its
/// own `/run`, say): then the mount point is made in that tmpfs, never on the
/// host.
fn in_own_tmpfs(container: &ContainerSpec, target: &Path) -> bool {
    container
        .mounts
        .iter()
        .filter(|m| target.starts_with(&m.target))
        .max_by_key(|m| m.target.components().count())
        .is_some_and(|m| matches!(m.kind, MountKind::Tmpfs { .. }))
}

fn fill(dir: &Path, contents: &[(&String, Vec<u8>)], uid: u32, gid: u32) -> Result<(), SpawnError> {
    for (name, bytes) in contents {
        let path = dir.join(name);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, bytes)?;
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
            });
        written.map_err(|e| error(Some(name), &path, e))?;
    }
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| error(None, dir, e))
}

/// At supd's exit: every unit's credentials tmpfs goes.
pub fn teardown(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("credentials")) else {
        return;
    };
    for e in entries.flatten() {
        remove(&e.path());
    }
}

/// One unit's credentials tmpfs (`host_dir`) unmounted and its mount point removed.
pub fn remove(dir: &Path) {
    while umount2(dir, MntFlags::MNT_DETACH).is_ok() {}
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_point_is_made_in_the_units_own_tmpfs() {
        let container = |mounts: &str| {
            crate::unit::parse_unit(
                "app",
                Path::new("/u/app.toml"),
                &format!("[service]\nexec = [\"/bin/true\"]\n{mounts}"),
            )
            .expect("unit")
            .container
        };
        let target = container_dir("app");
        let tmpfs = |at: &str| format!("[[mount]]\ntype = \"tmpfs\"\ntarget = \"{at}\"\n");
        let bind = |at: &str| {
            format!("[[mount]]\ntype = \"bind\"\nsource = \"/srv\"\ntarget = \"{at}\"\n")
        };
        let cases = [
            (String::new(), false),
            (tmpfs("/run"), true),
            (tmpfs("/run/credentials"), true),
            (tmpfs("/srv"), false),
            (bind("/run"), false),
            (tmpfs("/run") + &bind("/run/credentials"), false),
            (bind("/run") + &tmpfs("/run/credentials"), true),
        ];
        for (mounts, want) in cases {
            assert_eq!(in_own_tmpfs(&container(&mounts), &target), want, "{mounts}");
        }
    }

    #[test]
    fn ids_map_through_the_user_namespace() {
        let map = [
            IdMapRange {
                inside: 0,
                outside: 100_000,
                count: 1000,
            },
            IdMapRange {
                inside: 1000,
                outside: 5000,
                count: 1,
            },
        ];
        let cases = [
            (0, true, Some(100_000)),
            (999, true, Some(100_999)),
            (1000, true, Some(5000)),
            (1001, true, None),
            (1001, false, Some(1001)),
            (0, false, Some(0)),
        ];
        for (id, userns, want) in cases {
            assert_eq!(host_id(id, &map, userns), want, "{id} {userns}");
        }
        assert_eq!(host_id(u32::MAX, &map, true), None);
    }
}
