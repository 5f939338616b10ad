//! The content-addressed image store, `STATE/images/`:
//!
//! ```text
//! lock                  flock(2): one writer at a time (imports, rm, prune, mounts)
//! blobs/sha256/HEX      manifests and configs, named by their digest
//! layers/sha256/HEX     each layer unpacked once, named by its DiffID (the
//!                       uncompressed tar's digest), shared by every image and unit
//! refs.json             {"NAME:TAG": "sha256:<manifest>"}
//! in-use.json           written by supd: {"UNIT": {"reference", "digest"}}
//! units/UNIT/           a unit's root: upper/, work/, root/ (the overlay), lowers
//! tmp/                  staging of imports, moved into place once verified
//! ```
//!
//! Compressed layer blobs are not kept once unpacked: nothing reads them again,
//! and keeping them would double the disk an image takes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};

use super::{Digest, ImageError};

pub struct Store {
    root: PathBuf,
}

/// Held while the store is changed; released on drop.
pub struct Lock {
    _flock: Flock<File>,
}

/// An image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config blob as stored (for fields oci-spec does not model: Healthcheck).
    pub raw_config: Vec<u8>,
    /// Layers by DiffID, bottom first.
    pub layers: Vec<Digest>,
}

/// A unit that uses an image, as supd last loaded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    pub reference: String,
    pub digest: Digest,
}

/// How a reference names an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `NAME:TAG` (`:latest` added when no tag is written).
    Tag(String),
    /// `NAME@sha256:...` or a bare `sha256:...`: the manifest digest.
    Digest(Digest),
}

/// Parses an image reference as written in a unit or on the command line.
pub fn parse_reference(s: &str) -> Result<Reference, ImageError> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ImageError::new(format!(
            "image reference {s:?} must be NAME:TAG, NAME@sha256:HEX or sha256:HEX, without spaces"
        )));
    }
    if let Some((_, digest)) = s.split_once('@') {
        return Ok(Reference::Digest(Digest::parse(digest)?));
    }
    if s.starts_with("sha256:") {
        return Ok(Reference::Digest(Digest::parse(s)?));
    }
    // A `:` after the last `/` is the tag's (before it, a registry's port).
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.is_empty() || last.starts_with(':') {
        return Err(ImageError::new(format!(
            "image reference {s:?} has no name"
        )));
    }
    if last.ends_with(':') {
        return Err(ImageError::new(format!(
            "image reference {s:?} has an empty tag"
        )));
    }
    if last.contains(':') {
        Ok(Reference::Tag(s.to_owned()))
    } else {
        Ok(Reference::Tag(format!("{s}:latest")))
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ImageError {
    ImageError::io(format!("cannot {what} {}", path.display()), e)
}

impl Store {
    /// The store of the supd whose state directory is `state_dir`.
    pub fn new(state_dir: &Path) -> Store {
        Store {
            root: state_dir.join("images"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn layer(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn unit_dir(&self, unit: &str) -> PathBuf {
        self.root.join("units").join(unit)
    }

    /// Creates the store's directories and takes its lock, waiting for
    /// another writer. The store is 0711: other users cannot list which
    /// images, layers and units it has; not 0700, because a unit in a user
    /// namespace must still reach its root (`units/UNIT/root`) by path.
    pub fn lock(&self) -> Result<Lock, ImageError> {
        self.create_dirs()?;
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| io("lock", &path, std::io::Error::from(e)))?;
        Ok(Lock { _flock: flock })
    }

    fn create_dirs(&self) -> Result<(), ImageError> {
        use std::os::unix::fs::PermissionsExt;
        for d in ["blobs/sha256", "layers/sha256", "tmp", "units"] {
            let p = self.root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
        }
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| io("set the mode of", &self.root, e))
    }

    /// A new staging directory under `tmp/`, flocked for as long as the
    /// returned lock lives, so `prune` leaves it alone. An import unpacks
    /// there without the store's lock (which it takes only to move what it
    /// verified into place): reloads and unit starts do not wait for it.
    pub fn staging(&self, prefix: &str) -> Result<(PathBuf, Flock<File>), ImageError> {
        self.create_dirs()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = self
            .tmp()
            .join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| io("create", &dir, e))?;
        let file = File::open(&dir).map_err(|e| io("open", &dir, e))?;
        let flock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io("lock", &dir, std::io::Error::from(e)))?;
        Ok((dir, flock))
    }

    /// Tags and the manifests they name.
    pub fn refs(&self) -> Result<BTreeMap<String, Digest>, ImageError> {
        read_json(&self.root.join("refs.json"))
    }

    pub fn write_refs(
        &self,
        refs: &BTreeMap<String, Digest>,
        _lock: &Lock,
    ) -> Result<(), ImageError> {
        write_json(&self.root.join("refs.json"), refs)
    }

    /// Units using images, as supd last loaded them.
    pub fn uses(&self) -> Result<BTreeMap<String, Use>, ImageError> {
        read_json(&self.root.join("in-use.json"))
    }

    pub fn write_uses(&self, uses: &BTreeMap<String, Use>, _lock: &Lock) -> Result<(), ImageError> {
        write_json(&self.root.join("in-use.json"), uses)
    }

    /// The manifest digest a reference names, if the store has it.
    pub fn lookup(&self, reference: &str) -> Result<Digest, ImageError> {
        let not_found = || {
            ImageError::new(format!(
                "image {reference:?} is not in the store {}: import it with `supctl image import FILE --name {reference}`",
                self.root.display()
            ))
        };
        match parse_reference(reference)? {
            Reference::Tag(tag) => self.refs()?.remove(&tag).ok_or_else(not_found),
            Reference::Digest(d) if self.blob(&d).is_file() => Ok(d),
            Reference::Digest(_) => Err(not_found()),
        }
    }

    /// Reads an image's manifest and config.
    pub fn image(&self, digest: &Digest) -> Result<Image, ImageError> {
        let path = self.blob(digest);
        let bytes = std::fs::read(&path).map_err(|e| io("read manifest", &path, e))?;
        let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| {
            ImageError::new(format!("manifest {digest} in the store is damaged: {e}"))
        })?;
        let config_digest = Digest::parse(manifest.config().digest().as_ref())?;
        let path = self.blob(&config_digest);
        let raw_config = std::fs::read(&path).map_err(|e| io("read image config", &path, e))?;
        let config = ImageConfiguration::from_reader(&raw_config[..]).map_err(|e| {
            ImageError::new(format!("image config {config_digest} is damaged: {e}"))
        })?;
        let layers = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Image {
            digest: digest.clone(),
            manifest,
            config,
            raw_config,
            layers,
        })
    }

    /// Removes the tag `reference` (refused while a unit uses it), then what no
    /// other tag or unit needs. Returns what was freed.
    pub fn remove(&self, reference: &str) -> Result<Freed, ImageError> {
        let lock = self.lock()?;
        let mut refs = self.refs()?;
        let digest = self.lookup(reference)?;
        let users: Vec<String> = self
            .uses()?
            .into_iter()
            .filter(|(_, u)| match parse_reference(reference) {
                Ok(Reference::Tag(tag)) => {
                    parse_reference(&u.reference).ok() == Some(Reference::Tag(tag))
                }
                _ => u.digest == digest,
            })
            .map(|(unit, _)| unit)
            .collect();
        if !users.is_empty() {
            return Err(ImageError::new(format!(
                "image {reference:?} is used by unit(s) {}: remove or change those units (and `supctl reload`) first",
                users.join(", ")
            )));
        }
        match parse_reference(reference)? {
            Reference::Tag(tag) => {
                refs.remove(&tag);
            }
            Reference::Digest(d) => refs.retain(|_, v| *v != d),
        }
        self.write_refs(&refs, &lock)?;
        self.collect(&lock, false)
    }

    /// Removes every blob, layer and staging directory no tag or unit needs,
    /// and the writable layers of units supd no longer has.
    pub fn prune(&self) -> Result<Freed, ImageError> {
        let lock = self.lock()?;
        self.collect(&lock, true)
    }

    fn collect(&self, _lock: &Lock, clean_units: bool) -> Result<Freed, ImageError> {
        let mut freed = Freed::default();
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        let mut manifests: BTreeSet<Digest> = self.refs()?.into_values().collect();
        manifests.extend(self.uses()?.into_values().map(|u| u.digest));
        for m in &manifests {
            // An image whose blobs are gone cannot keep anything.
            let Ok(img) = self.image(m) else { continue };
            keep_blobs.insert(m.hex().to_owned());
            keep_blobs.insert(
                Digest::parse(img.manifest.config().digest().as_ref())?
                    .hex()
                    .to_owned(),
            );
            keep_layers.extend(img.layers.iter().map(|l| l.hex().to_owned()));
        }
        // Layers a unit's mounted root stacks (it may run on an older image).
        for lowers in self.mounted_lowers(clean_units, &mut freed)? {
            keep_layers.extend(lowers);
        }
        for (dir, keep) in [
            ("blobs/sha256", &keep_blobs),
            ("layers/sha256", &keep_layers),
        ] {
            let dir = self.root.join(dir);
            for e in std::fs::read_dir(&dir).map_err(|e| io("list", &dir, e))? {
                let e = e.map_err(|e| io("list", &dir, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                freed.bytes += disk_usage(&e.path());
                remove(&e.path())?;
                freed.entries += 1;
            }
        }
        let tmp = self.tmp();
        for e in std::fs::read_dir(&tmp).map_err(|e| io("list", &tmp, e))? {
            let e = e.map_err(|e| io("list", &tmp, e))?;
            // An import still at work holds its staging directory's flock.
            let busy = File::open(e.path())
                .ok()
                .is_some_and(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err());
            if busy {
                continue;
            }
            freed.bytes += disk_usage(&e.path());
            remove(&e.path())?;
        }
        Ok(freed)
    }

    /// The layer DiffIDs (hex) of every unit root that is mounted; the
    /// directories (writable layers) of units neither mounted nor in use are
    /// removed when `clean` is set.
    fn mounted_lowers(
        &self,
        clean: bool,
        freed: &mut Freed,
    ) -> Result<Vec<Vec<String>>, ImageError> {
        let units = self.root.join("units");
        let used = self.uses()?;
        let mut out = Vec::new();
        let Ok(list) = std::fs::read_dir(&units) else {
            return Ok(out);
        };
        for e in list.flatten() {
            let dir = e.path();
            if !dir.join("mounted").exists() {
                let name = e.file_name().to_string_lossy().into_owned();
                if clean && !used.contains_key(&name) {
                    freed.bytes += disk_usage(&dir);
                    remove(&dir)?;
                }
                continue;
            }
            let path = dir.join("lowers");
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push(text.lines().map(str::to_owned).collect());
            }
        }
        Ok(out)
    }
}

/// What removal freed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Freed {
    pub entries: usize,
    pub bytes: u64,
}

/// Bytes a file tree takes on disk (allocated blocks), without following symlinks.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(list) = std::fs::read_dir(path)
    {
        total += list.flatten().map(|e| disk_usage(&e.path())).sum::<u64>();
    }
    total
}

pub(super) fn remove(path: &Path) -> Result<(), ImageError> {
    let r = if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path, e)),
        _ => Ok(()),
    }
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, ImageError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::new(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(io("read", path, e)),
    }
}

/// Written to a temporary file and renamed, so a reader sees the old or the new.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ImageError> {
    let tmp = path.with_extension("json.new");
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| ImageError::new(format!("cannot encode {}: {e}", path.display())))?;
    std::fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename into", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised() {
        let hex = "ab".repeat(32);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        let cases: Vec<(String, Option<Reference>)> = vec![
            ("web".into(), Some(Reference::Tag("web:latest".into()))),
            ("web:1.2".into(), Some(Reference::Tag("web:1.2".into()))),
            (
                "reg:5000/a/web".into(),
                Some(Reference::Tag("reg:5000/a/web:latest".into())),
            ),
            (
                "reg:5000/web:v1".into(),
                Some(Reference::Tag("reg:5000/web:v1".into())),
            ),
            (
                format!("web@sha256:{hex}"),
                Some(Reference::Digest(d.clone())),
            ),
            (format!("sha256:{hex}"), Some(Reference::Digest(d))),
            ("web@sha256:12".into(), None),
            ("web:".into(), None),
            (":tag".into(), None),
            ("a b".into(), None),
            ("".into(), None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_reference(&input).ok(), want, "{input}");
        }
    }
}
