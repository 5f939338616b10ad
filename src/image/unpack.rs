//! Unpacking one layer tar into its own directory, as overlayfs wants it.
//!
//! Nothing is ever written outside the layer directory: names with `..` or a
//! leading `/` are refused (see `entry`), every parent is opened one component
//! at a time relative to the layer root with `O_NOFOLLOW` (a symlink planted by
//! an earlier entry is an error, never followed), the last component is created
//! with `*at` calls that do not follow it, and hard links are made from targets
//! resolved the same way. The store is root's alone, so nothing else changes the
//! directory while it is unpacked.
//!
//! Whiteouts become overlayfs's own form: `.wh.NAME` a 0/0 character device
//! NAME, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmodat, fstatat, makedev, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};
use xattr::FileExt;

use super::ImageError;
use super::entry::{self, Kind, Rel};

/// The xattr overlayfs reads to make a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// xattrs from the tar that are never applied: overlayfs's own would let a
/// layer forge whiteouts or redirects in the stack.
const SKIPPED_XATTRS: [&str; 2] = ["trusted.overlay.", "user.overlay."];

/// Unpacks `tar` into the existing, empty directory `dest`.
pub fn unpack<R: Read>(tar: R, dest: &Path) -> Result<(), ImageError> {
    let root = open_dir(None, dest.as_os_str()).map_err(|e| {
        ImageError::io(
            format!("cannot open layer directory {}", dest.display()),
            errno(e),
        )
    })?;
    let mut u = Unpacker {
        root,
        dest: dest.to_path_buf(),
        dir_times: Vec::new(),
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| ImageError::new(format!("layer is not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::new(format!("layer tar is damaged: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| ImageError::new(format!("layer tar entry has a bad name: {e}")))?
            .into_owned();
        u.entry(&mut entry, &path)
            .map_err(|e| e.context(&format!("layer entry {path:?}")))?;
    }
    u.finish()
}

struct Unpacker {
    root: OwnedFd,
    dest: PathBuf,
    /// Directories' mtimes, set last: entries below them change them.
    dir_times: Vec<(Rel, u64)>,
}

/// Opens a directory below `at` (or an absolute path), never following a symlink.
fn open_dir(at: Option<&OwnedFd>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    match at {
        Some(fd) => openat(fd, name, flags, Mode::empty()),
        None => openat(nix::fcntl::AT_FDCWD, name, flags, Mode::empty()),
    }
}

fn errno(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

impl Unpacker {
    /// The directory holding `parents`, created (0755, root) where missing.
    fn parent(&self, parents: &[std::ffi::OsString], create: bool) -> Result<OwnedFd, ImageError> {
        let mut cur =
            open_dir(Some(&self.root), OsStr::new(".")).map_err(|e| self.fail("open", &[], e))?;
        for (i, part) in parents.iter().enumerate() {
            let next = match open_dir(Some(&cur), part) {
                Err(Errno::ENOENT) if create => {
                    mkdirat(&cur, part.as_os_str(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| self.fail("create directory", &parents[..=i], e))?;
                    open_dir(Some(&cur), part)
                }
                other => other,
            };
            cur = next.map_err(|e| match e {
                Errno::ELOOP | Errno::ENOTDIR => ImageError::new(format!(
                    "{} is a symlink or not a directory: a layer may not write through it (refusing the layer)",
                    show(&parents[..=i])
                )),
                e => self.fail("open directory", &parents[..=i], e),
            })?;
        }
        Ok(cur)
    }

    fn fail(&self, what: &str, parts: &[std::ffi::OsString], e: Errno) -> ImageError {
        ImageError::io(
            format!("cannot {what} {} in {}", show(parts), self.dest.display()),
            errno(e),
        )
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, path: &Path) -> Result<(), ImageError> {
        let kind = entry::classify(path)?;
        let h = e.header().clone();
        let ty = h.entry_type();
        let mode = h
            .mode()
            .map_err(|e| ImageError::new(format!("bad mode: {e}")))?
            & 0o7777;
        let uid = h
            .uid()
            .map_err(|e| ImageError::new(format!("bad uid: {e}")))?;
        let gid = h
            .gid()
            .map_err(|e| ImageError::new(format!("bad gid: {e}")))?;
        let mtime = h.mtime().unwrap_or(0);
        let owner = (
            Uid::from_raw(u32::try_from(uid).unwrap_or(u32::MAX)),
            Gid::from_raw(u32::try_from(gid).unwrap_or(u32::MAX)),
        );
        let rel = match kind {
            Kind::Root => {
                // The layer root's attributes: applied to the directory itself.
                if ty.is_dir() {
                    self.set_dir_attrs(&self.root, owner, mode)?;
                }
                return Ok(());
            }
            Kind::Opaque(parents) => {
                let dir = self.parent(&parents, true)?;
                File::from(dir).set_xattr(OPAQUE_XATTR, b"y").map_err(|e| {
                    ImageError::io(
                        format!("cannot mark {} opaque ({OPAQUE_XATTR})", show(&parents)),
                        e,
                    )
                })?;
                return Ok(());
            }
            Kind::Whiteout(rel) => {
                let dir = self.parent(&rel.parents, true)?;
                self.remove(&dir, &rel)?;
                mknodat(
                    &dir,
                    rel.name.as_os_str(),
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    makedev(0, 0),
                )
                .map_err(|e| self.fail("create whiteout", &full(&rel), e))?;
                return Ok(());
            }
            Kind::Plain(rel) => rel,
        };
        let xattrs = pax_xattrs(e)?;
        let dir = self.parent(&rel.parents, true)?;
        let name = rel.name.as_os_str();
        let at = |what: &str, err: Errno| self.fail(what, &full(&rel), err);
        use tar::EntryType as T;
        match ty {
            T::Directory => {
                let existing = fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
                let is_dir = existing.is_some_and(|st| {
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
                });
                if !is_dir {
                    if existing.is_some() {
                        self.remove(&dir, &rel)?;
                    }
                    mkdirat(&dir, name, Mode::from_bits_truncate(0o700))
                        .map_err(|e| at("create directory", e))?;
                }
                let d = open_dir(Some(&dir), name).map_err(|e| at("open directory", e))?;
                self.set_dir_attrs(&d, owner, mode)?;
                set_xattrs(&File::from(d), &xattrs, &rel)?;
                self.dir_times.push((rel, mtime));
            }
            T::Regular | T::Continuous => {
                self.remove(&dir, &rel)?;
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let fd = openat(&dir, name, flags, Mode::from_bits_truncate(0o600))
                    .map_err(|e| at("create file", e))?;
                let mut file = File::from(fd);
                std::io::copy(e, &mut file).map_err(|err| {
                    ImageError::io(format!("cannot write {}", show(&full(&rel))), err)
                })?;
                nix::unistd::fchown(&file, Some(owner.0), Some(owner.1))
                    .map_err(|e| at("chown", e))?;
                // After chown, which clears setuid/setgid.
                nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))
                    .map_err(|e| at("chmod", e))?;
                set_xattrs(&file, &xattrs, &rel)?;
                let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
                nix::sys::stat::futimens(&file, &t, &t).map_err(|e| at("set mtime of", e))?;
            }
            T::Symlink => {
                let Some(target) = e
                    .link_name()
                    .map_err(|e| ImageError::new(format!("bad symlink target: {e}")))?
                else {
                    return Err(ImageError::new("symlink without a target".into()));
                };
                self.remove(&dir, &rel)?;
                // The target is stored, never followed while unpacking.
                symlinkat(target.as_os_str(), &dir, name).map_err(|e| at("create symlink", e))?;
                fchownat(
                    &dir,
                    name,
                    Some(owner.0),
                    Some(owner.1),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| at("chown", e))?;
                let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
                utimensat(&dir, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(|e| at("set mtime of", e))?;
            }
            T::Link => {
                let Some(target) = e
                    .link_name()
                    .map_err(|e| ImageError::new(format!("bad link target: {e}")))?
                else {
                    return Err(ImageError::new("hard link without a target".into()));
                };
                let Some(t) = entry::split(&target)? else {
                    return Err(ImageError::new(format!(
                        "hard link to the layer root {target:?}"
                    )));
                };
                let tdir = self.parent(&t.parents, false)?;
                self.remove(&dir, &rel)?;
                // Without AT_SYMLINK_FOLLOW a symlink target is linked itself.
                linkat(&tdir, t.name.as_os_str(), &dir, name, AtFlags::empty()).map_err(|e| {
                    self.fail(
                        &format!("hard link (to {}) as", show(&full(&t))),
                        &full(&rel),
                        e,
                    )
                })?;
            }
            T::Char | T::Block | T::Fifo => {
                let kind = match ty {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                self.remove(&dir, &rel)?;
                mknodat(
                    &dir,
                    name,
                    kind,
                    Mode::from_bits_truncate(mode),
                    makedev(major.into(), minor.into()),
                )
                .map_err(|e| at("create device node", e))?;
                fchownat(
                    &dir,
                    name,
                    Some(owner.0),
                    Some(owner.1),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| at("chown", e))?;
                // Just created by us as a node (not a symlink): following is harmless.
                fchmodat(
                    &dir,
                    name,
                    Mode::from_bits_truncate(mode),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| at("chmod", e))?;
            }
            // PAX and GNU headers are read by the tar crate itself; anything
            // else (sparse, volume labels) has no place in a layer.
            other => {
                return Err(ImageError::new(format!(
                    "unsupported tar entry type {other:?}: refusing the layer"
                )));
            }
        }
        Ok(())
    }

    /// Removes what is at `rel` in this layer (a path given twice, or a
    /// whiteout over something this same layer added); absent is fine.
    fn remove(&self, dir: &OwnedFd, rel: &Rel) -> Result<(), ImageError> {
        let name = rel.name.as_os_str();
        let Ok(st) = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            return Ok(());
        };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            // The parents were opened without following symlinks, so this path
            // names the same directory.
            let mut path = self.dest.clone();
            path.extend(full(rel));
            return std::fs::remove_dir_all(&path).map_err(|e| {
                ImageError::io(format!("cannot replace directory {}", path.display()), e)
            });
        }
        unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| self.fail("replace", &full(rel), e))
    }

    fn set_dir_attrs(&self, d: &OwnedFd, owner: (Uid, Gid), mode: u32) -> Result<(), ImageError> {
        nix::unistd::fchown(d, Some(owner.0), Some(owner.1))
            .map_err(|e| self.fail("chown directory", &[], e))?;
        nix::sys::stat::fchmod(d, Mode::from_bits_truncate(mode))
            .map_err(|e| self.fail("chmod directory", &[], e))
    }

    /// Directory mtimes, deepest first so setting one does not touch another.
    fn finish(mut self) -> Result<(), ImageError> {
        self.dir_times
            .sort_by_key(|(rel, _)| std::cmp::Reverse(rel.parents.len()));
        for (rel, mtime) in &self.dir_times {
            let Ok(dir) = self.parent(&rel.parents, false) else {
                continue; // Replaced by a later entry.
            };
            let t = TimeSpec::new(i64::try_from(*mtime).unwrap_or(0), 0);
            let _ = utimensat(
                &dir,
                rel.name.as_os_str(),
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            );
        }
        Ok(())
    }
}

/// `SCHILY.xattr.*` PAX records, less overlayfs's own.
fn pax_xattrs<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let mut out = Vec::new();
    let Some(exts) = e
        .pax_extensions()
        .map_err(|e| ImageError::new(format!("bad PAX header: {e}")))?
    else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(|e| ImageError::new(format!("bad PAX record: {e}")))?;
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.")
            && !SKIPPED_XATTRS.iter().any(|p| name.starts_with(p))
        {
            out.push((name.to_owned(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn set_xattrs(file: &File, xattrs: &[(String, Vec<u8>)], rel: &Rel) -> Result<(), ImageError> {
    for (name, value) in xattrs {
        match file.set_xattr(name, value) {
            Ok(()) => {}
            // The store's filesystem may not have that namespace: the file is
            // still usable, as containerd and umoci also accept.
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(e) => {
                return Err(ImageError::io(
                    format!("cannot set xattr {name} on {}", show(&full(rel))),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn full(rel: &Rel) -> Vec<std::ffi::OsString> {
    let mut v = rel.parents.clone();
    v.push(rel.name.clone());
    v
}

/// A path inside the layer, quoted, for messages (`.` for the layer root).
fn show(parts: &[std::ffi::OsString]) -> String {
    let p: PathBuf = parts.iter().collect();
    let p = if parts.is_empty() { Path::new(".") } else { &p };
    format!("{:?}", p.display().to_string())
}
