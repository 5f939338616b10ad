//! Opening mount targets inside the container's root, never outside it.
//!
//! Every target is opened with `openat2(RESOLVE_IN_ROOT)`, so the kernel resolves
//! symlinks as if the root were `/` (no lookup can leave it, however many links,
//! and nothing can swap a component between check and use); missing components
//! are created with `mkdirat` below an already-resolved parent; and the mount is
//! made on `/proc/self/fd/N` of the opened descriptor.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, mkdirat};

/// What to create when a target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    No,
    Dir,
    File,
}

/// The root everything is resolved in, as an open directory.
pub struct Root {
    fd: OwnedFd,
    /// Missing targets may be created (only inside a rootfs, never on the host).
    may_create: bool,
}

/// The kernel's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// The magic-link path through which a syscall that takes a path reaches `fd`.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Root {
    pub fn open(path: &Path, may_create: bool) -> Result<Root, Errno> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = open(path, flags, Mode::empty())?;
        Ok(Root { fd, may_create })
    }

    pub fn may_create(&self) -> bool {
        self.may_create
    }

    /// `openat2` below the root, with the root as `/` and no magic links.
    fn open_in(&self, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(&self.fd, path, how)
    }

    /// Whether `path` (inside the root, its last component not followed) is a
    /// symlink.
    pub fn is_symlink(&self, path: &Path) -> bool {
        self.open_in(&relative(path), OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .and_then(|fd| nix::sys::stat::fstat(&fd))
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    }

    /// Open `path` (as the container sees it) inside the root, creating what is
    /// missing when allowed.
    pub fn resolve(&self, path: &Path, create: Create) -> Result<OwnedFd, Errno> {
        self.resolve_creating(path, create, self.may_create)
    }

    /// `resolve`, creating what is missing when `may_create`: only for a path the
    /// caller knows lies in a fresh mount of supd's (the unit's private `/tmp`).
    pub fn resolve_creating(
        &self,
        path: &Path,
        create: Create,
        may_create: bool,
    ) -> Result<OwnedFd, Errno> {
        let relative = relative(path);
        match self.open_in(&relative, OFlag::O_PATH) {
            Err(Errno::ENOENT) if create != Create::No && may_create => {}
            other => return other,
        }
        // Walk down, creating each missing component below its resolved parent. A
        // dangling symlink is followed by hand (inside the root, as often as the
        // kernel would), so its target is created inside the root too.
        let mut pending: VecDeque<OsString> = relative.iter().map(|p| p.to_os_string()).collect();
        let mut prefix = PathBuf::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                prefix.pop();
                continue;
            }
            let candidate = prefix.join(&part);
            if self.open_in(&candidate, OFlag::O_PATH).is_ok() {
                prefix = candidate;
                continue;
            }
            let parent = self.open_in(&as_dir(&prefix), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            if let Ok(link) = readlinkat(&parent, part.as_os_str()) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let link = PathBuf::from(link);
                if link.is_absolute() {
                    prefix = PathBuf::new();
                }
                for (k, c) in self::relative(&link).iter().enumerate() {
                    pending.insert(k, c.to_os_string());
                }
                continue;
            }
            let last = pending.is_empty();
            match make(&parent, &part, last && create == Create::File) {
                Ok(()) | Err(Errno::EEXIST) => prefix = candidate,
                Err(e) => return Err(e),
            }
        }
        self.open_in(&as_dir(&prefix), OFlag::O_PATH)
    }
}

/// Create `name` below `parent`: an empty file or a directory. Neither follows a
/// symlink in the last component (`O_NOFOLLOW`, and mkdirat never does).
fn make(parent: &OwnedFd, name: &OsString, file: bool) -> Result<(), Errno> {
    if file {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        openat(
            parent,
            name.as_os_str(),
            flags,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    } else {
        mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o755))
    }
}

fn as_dir(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    }
}

/// `/a/b` -> `a/b` (`.` for `/`), dropping `.` components.
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    as_dir(&rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(root: &Root, p: &str, create: Create) -> Result<PathBuf, Errno> {
        let fd = root.resolve(Path::new(p), create)?;
        std::fs::read_link(fd_path(&fd)).map_err(|_| Errno::EIO)
    }

    #[test]
    fn relative_paths() {
        for (path, rel) in [
            ("/", "."),
            ("/a/b", "a/b"),
            ("/a/./b/", "a/b"),
            ("/a/../b", "a/../b"),
        ] {
            assert_eq!(relative(Path::new(path)), Path::new(rel), "{path}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_creation_stays_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().canonicalize().expect("canonical");
        let rootdir = base.join("root");
        std::fs::create_dir_all(rootdir.join("real")).expect("mkdir");
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, rootdir.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../../outside", rootdir.join("rel")).expect("symlink");
        std::os::unix::fs::symlink("real", rootdir.join("inside")).expect("symlink");
        // A chain longer than the kernel's 40 links must fail, not escape.
        std::os::unix::fs::symlink(&outside, rootdir.join("l40")).expect("symlink");
        for i in (0..40).rev() {
            std::os::unix::fs::symlink(format!("l{}", i + 1), rootdir.join(format!("l{i}")))
                .expect("symlink");
        }
        let root = Root::open(&rootdir, true).expect("root");
        assert_eq!(
            resolved(&root, "/abs/x", Create::Dir).expect("abs"),
            rootdir
                .join(outside.strip_prefix("/").expect("abs"))
                .join("x")
        );
        assert_eq!(
            resolved(&root, "/inside/y", Create::Dir).expect("inside"),
            rootdir.join("real/y")
        );
        assert!(
            resolved(&root, "/rel", Create::No).is_err()
                || resolved(&root, "/rel", Create::No)
                    .expect("rel")
                    .starts_with(&rootdir)
        );
        assert!(resolved(&root, "/l0/made", Create::Dir).is_err());
        assert!(
            std::fs::read_dir(&outside)
                .expect("outside")
                .next()
                .is_none(),
            "nothing created outside the root"
        );
        let file = resolved(&root, "/etc/hosts", Create::File).expect("file");
        assert!(file.is_file());
    }

    #[test]
    fn nothing_is_created_without_permission() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Root::open(dir.path(), false).expect("root");
        assert_eq!(
            root.resolve(Path::new("/missing/dir"), Create::Dir).err(),
            Some(Errno::ENOENT)
        );
        assert!(!dir.path().join("missing").exists());
    }
}
