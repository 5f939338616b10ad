//! What a file given to `image import` is, and a directory view of it: an OCI
//! image layout (`index.json`, `blobs/`), a docker-archive (`manifest.json`,
//! written by `docker save`; since Docker 25 it is also an OCI layout, and the
//! OCI view is preferred), or a plain root filesystem tarball (`docker export`).
//! Archives (tar, optionally gzip or zstd) of the first two are unpacked into
//! the import's staging directory: only regular files and directories, named
//! without `..`, and symlinks between them (old docker-archives share a layer
//! that way) made into copies, so nothing there points outside.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::ImageError;
use super::entry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI image layout directory.
    Oci(PathBuf),
    /// A docker-archive directory without `index.json` (Docker before 25).
    Docker(PathBuf),
    /// A tarball of a root filesystem: one layer, no config.
    Rootfs(PathBuf),
}

/// Compression, by the stream's magic bytes (media types are not always right:
/// `docker save` writes uncompressed layers named like the gzip type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The uncompressed stream of `r`, whatever its compression.
pub fn decompressed<'a, R: Read + 'a>(
    r: R,
) -> Result<(Compression, Box<dyn Read + 'a>), ImageError> {
    let mut buf = BufReader::with_capacity(256 * 1024, r);
    let head = buf
        .fill_buf()
        .map_err(|e| ImageError::io("cannot read".into(), e))?;
    let kind = sniff(head);
    let out: Box<dyn Read> = match kind {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buf)
                .map_err(|e| ImageError::io("cannot start zstd decoding".into(), e))?,
        ),
    };
    Ok((kind, out))
}

fn open(path: &Path) -> Result<File, ImageError> {
    File::open(path).map_err(|e| ImageError::io(format!("cannot open {}", path.display()), e))
}

/// Decides what `path` is; archives are unpacked below `staging`.
pub fn open_source(path: &Path, staging: &Path) -> Result<Source, ImageError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ImageError::io(format!("cannot read {}", path.display()), e))?;
    if meta.is_dir() {
        return dir_kind(path).ok_or_else(|| {
            ImageError::new(format!(
                "{} is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)",
                path.display()
            ))
        });
    }
    let (_, stream) = decompressed(open(path)?)?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .map_err(|e| ImageError::new(format!("{} is not a tar archive: {e}", path.display())))?;
    let mut is_image = false;
    for e in entries {
        let e = e.map_err(|e| {
            ImageError::new(format!(
                "{} is not a readable tar archive: {e}",
                path.display()
            ))
        })?;
        let Ok(name) = e.path() else { continue };
        if let Ok(Some(rel)) = entry::split(&name)
            && rel.parents.is_empty()
            && ["index.json", "manifest.json", "oci-layout"]
                .iter()
                .any(|n| rel.name == *n)
        {
            is_image = true;
            break;
        }
    }
    if !is_image {
        return Ok(Source::Rootfs(path.to_path_buf()));
    }
    let dir = staging.join("src");
    extract(path, &dir)?;
    dir_kind(&dir).ok_or_else(|| {
        ImageError::new(format!(
            "{}: archive without index.json or manifest.json",
            path.display()
        ))
    })
}

fn dir_kind(dir: &Path) -> Option<Source> {
    if dir.join("index.json").is_file() {
        Some(Source::Oci(dir.to_path_buf()))
    } else if dir.join("manifest.json").is_file() {
        Some(Source::Docker(dir.to_path_buf()))
    } else {
        None
    }
}

/// Unpacks an image archive's files (see the module comment).
fn extract(archive: &Path, dest: &Path) -> Result<(), ImageError> {
    let (_, stream) = decompressed(open(archive)?)?;
    let mut tar = tar::Archive::new(stream);
    let bad = |e: std::io::Error| ImageError::new(format!("{} is damaged: {e}", archive.display()));
    let mut links = Vec::new();
    for e in tar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let name = e.path().map_err(bad)?.into_owned();
        let Some(rel) = entry::split(&name)? else {
            continue;
        };
        let mut path = dest.to_path_buf();
        path.extend(rel.parents.iter());
        let parent = path.clone();
        path.push(&rel.name);
        let mkdir = |d: &Path| {
            std::fs::create_dir_all(d)
                .map_err(|e| ImageError::io(format!("cannot create {}", d.display()), e))
        };
        match e.header().entry_type() {
            tar::EntryType::Directory => mkdir(&path)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                mkdir(&parent)?;
                let mut f = File::create(&path)
                    .map_err(|e| ImageError::io(format!("cannot create {}", path.display()), e))?;
                std::io::copy(&mut e, &mut f)
                    .map_err(|e| ImageError::io(format!("cannot write {}", path.display()), e))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e.link_name().map_err(bad)?.unwrap_or_default().into_owned();
                // Symlink targets are relative to the link's directory, hard
                // link targets to the archive's root.
                let base: PathBuf = if e.header().entry_type() == tar::EntryType::Symlink {
                    rel.parents.iter().collect()
                } else {
                    PathBuf::new()
                };
                let resolved = inside(&base, &target).ok_or_else(|| {
                    ImageError::new(format!(
                        "{}: link {name:?} -> {target:?} points outside the archive",
                        archive.display()
                    ))
                })?;
                mkdir(&parent)?;
                links.push((dest.join(resolved), path));
            }
            _ => {}
        }
    }
    for (target, link) in links {
        std::fs::copy(&target, &link).map_err(|e| {
            ImageError::io(
                format!("cannot copy {} to {}", target.display(), link.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// `target` joined to `base` lexically, or `None` if it leaves the root.
pub fn inside(base: &Path, target: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in base.components().chain(target.components()) {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_sniffed() {
        for (head, want) in [
            (&[0x1f, 0x8b, 8][..], Compression::Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0][..], Compression::Zstd),
            (b"etc/\0\0\0", Compression::None),
            (&[][..], Compression::None),
        ] {
            assert_eq!(sniff(head), want, "{head:?}");
        }
    }

    #[test]
    fn links_stay_inside() {
        for (base, target, want) in [
            ("a", "../b/layer.tar", Some("b/layer.tar")),
            ("a/b", "../../c", Some("c")),
            ("", "x", Some("x")),
            ("a", "../../etc/passwd", None),
            ("a", "/etc/passwd", None),
        ] {
            let got = inside(Path::new(base), Path::new(target));
            assert_eq!(got.as_deref(), want.map(Path::new), "{base} {target}");
        }
    }
}
