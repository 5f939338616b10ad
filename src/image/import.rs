//! Importing an image file into the store. Everything is read, verified
//! (every blob's sha256 and size against its descriptor, every layer's
//! uncompressed digest against the config's DiffIDs) and unpacked into a
//! staging directory under the store's `tmp/`; only then are the layers, blobs
//! and tag moved into place (renames on one filesystem). Any error leaves the
//! store as it was: the staging directory is removed.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageConfigurationBuilder, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use serde::Deserialize;

use super::digest::{self, Hashing};
use super::source::{self, Compression, Source};
use super::store::{Reference, parse_reference, remove};
use super::{Digest, ImageError, Store};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `NAME:TAG` to store the image as; else the name the archive carries.
    pub name: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub name: String,
    pub digest: Digest,
    /// The manifest the tag named before, if it named another.
    pub replaced: Option<Digest>,
    pub layers: usize,
    /// Layers unpacked now (the others were in the store already).
    pub unpacked: usize,
}

/// The annotations tools write on index.json entries.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Removes the staging directory when the import ends, however it ends (then
/// its flock goes).
struct Staging {
    dir: PathBuf,
    _flock: nix::fcntl::Flock<std::fs::File>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One layer to read: the file and, for OCI, what its descriptor promises.
struct LayerSrc {
    path: PathBuf,
    digest: Option<Digest>,
    size: Option<u64>,
}

/// One layer read: its blob's digest and size, its DiffID, its compression.
struct LayerDone {
    blob: Digest,
    size: u64,
    diff_id: Digest,
    compression: Compression,
}

pub fn import(store: &Store, path: &Path, opts: &ImportOptions) -> Result<Imported, ImageError> {
    let wanted = opts.name.as_deref().map(tag_of).transpose()?;
    let (dir, flock) = store.staging("import")?;
    let staging = Staging { dir, _flock: flock };
    let layers_dir = staging.dir.join("layers");
    std::fs::create_dir_all(&layers_dir)
        .map_err(|e| ImageError::io(format!("cannot create {}", layers_dir.display()), e))?;
    let source = source::open_source(path, &staging.dir)?;
    let ctx = Ctx {
        store,
        layers_dir: &layers_dir,
    };
    let Sourced {
        name_hint,
        manifest: manifest_bytes,
        config: config_bytes,
        layers,
        unpacked,
    } = match &source {
        Source::Oci(dir) => ctx.oci(dir, wanted.as_deref())?,
        Source::Docker(dir) => ctx.docker(dir, wanted.as_deref())?,
        Source::Rootfs(file) => ctx.rootfs(file)?,
    };
    let name = match (wanted, name_hint) {
        (Some(n), _) => n,
        (None, Some(hint)) => tag_of(&hint)?,
        (None, None) => {
            return Err(ImageError::new(format!(
                "{} carries no image name: give one with --name NAME:TAG",
                path.display()
            )));
        }
    };
    // Verified: move into place, under the store's lock. A layer another
    // import added meanwhile stays (the same content, by its digest); one this
    // import found in the store must still be there (a prune may have run).
    let lock = store.lock()?;
    for diff in &layers {
        let staged = layers_dir.join(diff.hex());
        let target = store.layer(diff);
        if target.exists() {
            continue;
        }
        if !staged.exists() {
            return Err(ImageError::new(format!(
                "layer {diff} was removed from the store during the import (a prune?): import again"
            )));
        }
        std::fs::rename(&staged, &target).map_err(|e| {
            ImageError::io(format!("cannot move layer into {}", target.display()), e)
        })?;
    }
    let manifest_digest = Digest::of(&manifest_bytes);
    let config_digest = Digest::of(&config_bytes);
    for (d, bytes) in [
        (&config_digest, &config_bytes),
        (&manifest_digest, &manifest_bytes),
    ] {
        let staged = staging.dir.join(d.hex());
        std::fs::write(&staged, bytes)
            .map_err(|e| ImageError::io(format!("cannot write {}", staged.display()), e))?;
        let target = store.blob(d);
        std::fs::rename(&staged, &target).map_err(|e| {
            ImageError::io(format!("cannot move blob into {}", target.display()), e)
        })?;
    }
    let mut refs = store.refs()?;
    let replaced = refs
        .insert(name.clone(), manifest_digest.clone())
        .filter(|old| *old != manifest_digest);
    store.write_refs(&refs, &lock)?;
    Ok(Imported {
        name,
        digest: manifest_digest,
        replaced,
        layers: layers.len(),
        unpacked,
    })
}

/// `NAME:TAG` from a name written with or without a tag.
fn tag_of(name: &str) -> Result<String, ImageError> {
    match parse_reference(name)? {
        Reference::Tag(t) => Ok(t),
        Reference::Digest(_) => Err(ImageError::new(format!(
            "{name:?} is a digest: an imported image is named NAME:TAG"
        ))),
    }
}

/// What reading a source gave: verified, its new layers unpacked in staging.
struct Sourced {
    /// The name the source carries, if any.
    name_hint: Option<String>,
    manifest: Vec<u8>,
    config: Vec<u8>,
    /// DiffIDs, bottom first.
    layers: Vec<Digest>,
    /// How many layers were unpacked (the others were in the store).
    unpacked: usize,
}

struct Ctx<'a> {
    store: &'a Store,
    layers_dir: &'a Path,
}

impl Ctx<'_> {
    fn oci(&self, dir: &Path, wanted: Option<&str>) -> Result<Sourced, ImageError> {
        let index_path = dir.join("index.json");
        let index = ImageIndex::from_file(&index_path).map_err(|e| {
            ImageError::new(format!(
                "{} is not an image index: {e}",
                index_path.display()
            ))
        })?;
        let (desc, hint) = choose(dir, &index, wanted, 0)?;
        let manifest_bytes = read_blob(dir, &desc, "manifest")?;
        let manifest = ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| {
            ImageError::new(format!(
                "manifest {} is not an image manifest: {e}",
                desc.digest()
            ))
        })?;
        let config_bytes = read_blob(dir, manifest.config(), "config")?;
        let config = parse_config(&config_bytes)?;
        let diff_ids = diff_ids(&config, manifest.layers().len())?;
        let mut unpacked = 0;
        for (desc, want) in manifest.layers().iter().zip(&diff_ids) {
            let d = Digest::parse(desc.digest().as_ref())?;
            let src = LayerSrc {
                path: blob_path(dir, &d),
                size: Some(desc.size()),
                digest: Some(d),
            };
            if self.layer(&src, Some(want))?.1 {
                unpacked += 1;
            }
        }
        Ok(Sourced {
            name_hint: hint,
            manifest: manifest_bytes,
            config: config_bytes,
            layers: diff_ids,
            unpacked,
        })
    }

    fn docker(&self, dir: &Path, wanted: Option<&str>) -> Result<Sourced, ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| ImageError::io(format!("cannot read {}", path.display()), e))?;
        let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| {
            ImageError::new(format!(
                "{} is not a docker-archive manifest: {e}",
                path.display()
            ))
        })?;
        let tags = |e: &Entry| e.repo_tags.clone().unwrap_or_default();
        let entry = entries
            .iter()
            .find(|e| {
                wanted.is_some_and(|w| tags(e).iter().any(|t| tag_of(t).ok().as_deref() == Some(w)))
            })
            .or(entries.first())
            .ok_or_else(|| ImageError::new(format!("{} lists no image", path.display())))?;
        let in_dir = |p: &str| {
            source::inside(Path::new(""), Path::new(p))
                .map(|rel| dir.join(rel))
                .ok_or_else(|| {
                    ImageError::new(format!("{}: path {p:?} leaves the archive", path.display()))
                })
        };
        let config_path = in_dir(&entry.config)?;
        let config_bytes = std::fs::read(&config_path)
            .map_err(|e| ImageError::io(format!("cannot read {}", config_path.display()), e))?;
        let config = parse_config(&config_bytes)?;
        let diff_ids = diff_ids(&config, entry.layers.len())?;
        let mut descs = Vec::new();
        let mut unpacked = 0;
        for (p, want) in entry.layers.iter().zip(&diff_ids) {
            let src = LayerSrc {
                path: in_dir(p)?,
                digest: None,
                size: None,
            };
            let (done, new) = self.layer(&src, Some(want))?;
            unpacked += usize::from(new);
            descs.push(layer_descriptor(&done)?);
        }
        let manifest_bytes = synthesize_manifest(&config_bytes, descs)?;
        let hint = tags(entry).into_iter().next();
        Ok(Sourced {
            name_hint: hint,
            manifest: manifest_bytes,
            config: config_bytes,
            layers: diff_ids,
            unpacked,
        })
    }

    fn rootfs(&self, file: &Path) -> Result<Sourced, ImageError> {
        let src = LayerSrc {
            path: file.to_path_buf(),
            digest: None,
            size: None,
        };
        let (done, new) = self.layer(&src, None)?;
        let rootfs = RootFsBuilder::default()
            .diff_ids(vec![done.diff_id.to_string()])
            .build()
            .map_err(|e| ImageError::new(format!("cannot describe the layer: {e}")))?;
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .rootfs(rootfs)
            .build()
            .map_err(|e| ImageError::new(format!("cannot make an image config: {e}")))?;
        let config_bytes = config
            .to_string()
            .map_err(|e| ImageError::new(format!("cannot encode the image config: {e}")))?
            .into_bytes();
        let manifest_bytes = synthesize_manifest(&config_bytes, vec![layer_descriptor(&done)?])?;
        Ok(Sourced {
            name_hint: None,
            manifest: manifest_bytes,
            config: config_bytes,
            layers: vec![done.diff_id],
            unpacked: usize::from(new),
        })
    }

    /// Reads one layer, verifying it; unpacks it into staging unless the store
    /// has it already. Returns whether it was unpacked.
    fn layer(
        &self,
        src: &LayerSrc,
        want: Option<&Digest>,
    ) -> Result<(LayerDone, bool), ImageError> {
        let shown = src.path.display().to_string();
        let file = File::open(&src.path)
            .map_err(|e| ImageError::io(format!("cannot open layer {shown}"), e))?;
        let mut outer = Hashing::new(file);
        // In the store, or earlier in this same image: verified, not unpacked again.
        let have = want.is_some_and(|w| {
            self.store.layer(w).is_dir() || self.layers_dir.join(w.hex()).is_dir()
        });
        let staged = self.layers_dir.join("unpacking");
        let (compression, stream) = source::decompressed(&mut outer)?;
        let mut inner = Hashing::new(stream);
        if have {
            std::io::copy(&mut inner, &mut std::io::sink())
                .map_err(|e| ImageError::io(format!("cannot read layer {shown}"), e))?;
        } else {
            let _ = remove(&staged);
            std::fs::create_dir(&staged)
                .map_err(|e| ImageError::io(format!("cannot create {}", staged.display()), e))?;
            super::unpack::unpack(&mut inner, &staged)
                .map_err(|e| e.context(&format!("layer {shown}")))?;
        }
        let (diff_id, _) = inner
            .finish()
            .map_err(|e| ImageError::io(format!("cannot read layer {shown}"), e))?;
        let (blob, size) = outer
            .finish()
            .map_err(|e| ImageError::io(format!("cannot read layer {shown}"), e))?;
        if let Some(d) = &src.digest {
            digest::check("layer", d, src.size, &blob, size)?;
        }
        if let Some(w) = want {
            digest::check(
                "layer (uncompressed, the config's DiffID)",
                w,
                None,
                &diff_id,
                0,
            )?;
        }
        // Known only now for a tarball: the store may have had it all along.
        let stored = !have && self.store.layer(&diff_id).is_dir();
        if stored {
            remove(&staged)?;
        } else if !have {
            let target = self.layers_dir.join(diff_id.hex());
            if target.exists() {
                // The same layer twice in one image: unpacked once.
                remove(&staged)?;
            } else {
                std::fs::rename(&staged, &target).map_err(|e| {
                    ImageError::io(format!("cannot rename {}", staged.display()), e)
                })?;
            }
        }
        let done = LayerDone {
            blob,
            size,
            diff_id,
            compression,
        };
        Ok((done, !have && !stored))
    }
}

/// The manifest to use from an index: the entry named `wanted` if any, else the
/// first for linux/amd64 (or with no platform); nested indexes are followed.
fn choose(
    dir: &Path,
    index: &ImageIndex,
    wanted: Option<&str>,
    depth: u8,
) -> Result<(Descriptor, Option<String>), ImageError> {
    if depth > 4 {
        return Err(ImageError::new("image indexes nested too deep".into()));
    }
    let name_of = |d: &Descriptor| -> Option<String> {
        let a: &HashMap<String, String> = d.annotations().as_ref()?;
        a.get(CONTAINERD_NAME).cloned().or_else(|| {
            a.get(REF_NAME)
                .filter(|n| n.contains(':') || n.contains('/'))
                .cloned()
        })
    };
    let platform_ok = |d: &Descriptor| {
        d.platform()
            .as_ref()
            .is_none_or(|p| *p.architecture() == Arch::Amd64 && *p.os() == Os::Linux)
    };
    let is_index = |d: &Descriptor| {
        *d.media_type() == MediaType::ImageIndex
            || d.media_type().to_string()
                == "application/vnd.docker.distribution.manifest.list.v2+json"
    };
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| platform_ok(d))
        .collect();
    let named = wanted.and_then(|w| {
        candidates.iter().find(|d| {
            name_of(d).and_then(|n| tag_of(&n).ok()).as_deref() == Some(w)
                || d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|tag| w.ends_with(&format!(":{tag}")))
        })
    });
    let Some(desc) = named.or(candidates.first()).copied() else {
        return Err(ImageError::new(format!(
            "{}/index.json has no manifest for linux/amd64",
            dir.display()
        )));
    };
    if is_index(desc) {
        let bytes = read_blob(dir, desc, "index")?;
        let nested = ImageIndex::from_reader(&bytes[..]).map_err(|e| {
            ImageError::new(format!("nested index {} is damaged: {e}", desc.digest()))
        })?;
        let (d, hint) = choose(dir, &nested, wanted, depth + 1)?;
        return Ok((d, hint.or_else(|| name_of(desc))));
    }
    Ok((desc.clone(), name_of(desc)))
}

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

/// A small blob (index, manifest, config), verified against its descriptor.
fn read_blob(dir: &Path, desc: &Descriptor, what: &str) -> Result<Vec<u8>, ImageError> {
    let d = Digest::parse(desc.digest().as_ref())?;
    // Manifests and configs are small; a huge one is a broken or hostile image.
    const MAX: u64 = 16 << 20;
    if desc.size() > MAX {
        return Err(ImageError::new(format!(
            "{what} {d} is {} bytes, over the 16 MiB a {what} may take",
            desc.size()
        )));
    }
    let path = blob_path(dir, &d);
    let file = File::open(&path)
        .map_err(|e| ImageError::io(format!("cannot open {what} blob {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.take(MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io(format!("cannot read {}", path.display()), e))?;
    digest::check(
        what,
        &d,
        Some(desc.size()),
        &Digest::of(&bytes),
        bytes.len() as u64,
    )?;
    Ok(bytes)
}

fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ImageError> {
    ImageConfiguration::from_reader(bytes)
        .map_err(|e| ImageError::new(format!("image config is damaged: {e}")))
}

fn diff_ids(config: &ImageConfiguration, layers: usize) -> Result<Vec<Digest>, ImageError> {
    let ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() != layers {
        return Err(ImageError::new(format!(
            "the image has {layers} layers but its config lists {} DiffIDs: the image is corrupt",
            ids.len()
        )));
    }
    Ok(ids)
}

fn layer_descriptor(done: &LayerDone) -> Result<Descriptor, ImageError> {
    let media = match done.compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    };
    Ok(Descriptor::new(media, done.size, oci_digest(&done.blob)?))
}

fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, ImageError> {
    d.as_str()
        .parse()
        .map_err(|e| ImageError::new(format!("digest {d}: {e}")))
}

/// An OCI manifest for a config and layers that came without one.
fn synthesize_manifest(config: &[u8], layers: Vec<Descriptor>) -> Result<Vec<u8>, ImageError> {
    let config_desc = Descriptor::new(
        MediaType::ImageConfig,
        config.len() as u64,
        oci_digest(&Digest::of(config))?,
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layers)
        .build()
        .map_err(|e| ImageError::new(format!("cannot make a manifest: {e}")))?;
    manifest
        .to_string()
        .map(String::into_bytes)
        .map_err(|e| ImageError::new(format!("cannot encode the manifest: {e}")))
}
