//! Test images, built here from the host's static busybox (no network): layer
//! tars made with the `tar` crate, compressed with flate2/zstd, written as an
//! OCI image layout (directory or tar), a docker-archive or a plain rootfs
//! tarball. Hostile entries are written with raw header names, since the
//! `tar` crate's builder refuses `..` itself.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Clone, Copy, Debug)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// A layer tar being built.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    pub fn dir(self, path: &str) -> Layer {
        self.dir_mode(path, 0o755)
    }

    pub fn dir_mode(mut self, path: &str, mode: u32) -> Layer {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.0
            .append_data(&mut h, path, std::io::empty())
            .expect("dir entry");
        self
    }

    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Layer {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).expect("file entry");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0
            .append_link(&mut h, path, target)
            .expect("symlink entry");
        self
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, owner: u64) -> Layer {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(owner);
        h.set_gid(owner);
        self.0.append_data(&mut h, path, data).expect("file entry");
        self
    }

    pub fn node(mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> Layer {
        let mut h = Self::header(kind, 0o666, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.0
            .append_data(&mut h, path, std::io::empty())
            .expect("node entry");
        self
    }

    /// A PAX extended header for the next entry, with one `SCHILY.xattr.NAME` record.
    pub fn xattr_next(self, name: &str, value: &str) -> Layer {
        let body = format!(" SCHILY.xattr.{name}={value}\n");
        // The record's length counts its own digits.
        let len = (body.len()..body.len() + 8)
            .find(|n| n.to_string().len() + body.len() == *n)
            .expect("a record length");
        let record = format!("{len}{body}");
        self.raw(tar::EntryType::XHeader, "PaxHeader", "", record.as_bytes())
    }

    /// An entry with exactly these name and link bytes (no checks).
    pub fn raw(mut self, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) -> Layer {
        let mut h = Self::header(kind, 0o644, data.len() as u64);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).expect("raw entry");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish tar")
    }
}

/// A root filesystem: static busybox, its applets, /etc/passwd with `app`
/// (1234:1234), empty /data, /tmp, /proc, /dev, /sys.
pub fn busybox_base() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox")
        .or_else(|_| std::fs::read("/usr/bin/busybox"))
        .expect("busybox is required (apt-get install busybox-static)");
    let mut l = Layer::new();
    for d in ["bin", "etc", "proc", "dev", "sys", "srv"] {
        l = l.dir(d);
    }
    // Writable by the image's `app` user.
    l = l.dir_mode("data", 0o1777).dir_mode("tmp", 0o1777);
    l = l.file("bin/busybox", &busybox, 0o755);
    for applet in [
        "sh", "ls", "cat", "echo", "id", "sleep", "pwd", "test", "touch", "wc", "stat", "true",
    ] {
        l = l.symlink(&format!("bin/{applet}"), "busybox");
    }
    l.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/srv:/bin/sh\n",
        0o644,
    )
    .file("etc/group", b"root:x:0:\napp:x:1234:\n", 0o644)
    .file("etc/motd", b"lower motd\n", 0o644)
    .finish()
}

pub fn compress(tar: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::None => tar.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            e.finish().expect("gzip")
        }
        Comp::Zstd => zstd::encode_all(tar, 1).expect("zstd"),
    }
}

/// An image: layers (uncompressed tar, how to store it) and the config's `config`.
pub struct ImageDef {
    pub layers: Vec<(Vec<u8>, Comp)>,
    pub config: Value,
    /// The config's DiffIDs, when not the layers' own (a broken image).
    pub diff_ids: Option<Vec<String>>,
}

impl ImageDef {
    pub fn config_json(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = match &self.diff_ids {
            Some(ids) => ids.clone(),
            None => self.layers.iter().map(|(t, _)| sha(t)).collect(),
        };
        let doc = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        serde_json::to_vec(&doc).expect("config json")
    }
}

fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let d = sha(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    std::fs::write(blobs.join(&d["sha256:".len()..]), bytes).expect("blob");
    (d, bytes.len())
}

/// Writes an OCI image layout at `dir`, its index entry annotated with
/// `ref_name`; returns the manifest digest. Several calls add to one index.
pub fn oci_layout(dir: &Path, image: &ImageDef, ref_name: &str) -> String {
    oci_layout_for(dir, image, ref_name, "amd64")
}

/// `oci_layout` for another architecture.
pub fn oci_layout_for(dir: &Path, image: &ImageDef, ref_name: &str, arch: &str) -> String {
    std::fs::create_dir_all(dir).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let (config_digest, config_size) = put_blob(dir, &image.config_json());
    let layers: Vec<Value> = image
        .layers
        .iter()
        .map(|(tar, comp)| {
            let media = match comp {
                Comp::None => "application/vnd.oci.image.layer.v1.tar",
                Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            let (d, size) = put_blob(dir, &compress(tar, *comp));
            json!({"mediaType": media, "digest": d, "size": size})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    });
    let (md, msize) = put_blob(dir, &serde_json::to_vec(&manifest).expect("manifest"));
    let index_path = dir.join("index.json");
    let mut index: Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
    let entry = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md,
        "size": msize,
        "platform": {"architecture": arch, "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": ref_name},
    });
    index["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(entry);
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("index")).expect("index.json");
    md
}

/// A tar of a directory's contents (an oci-archive from a layout).
pub fn tar_of_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).expect("archive"));
    b.append_dir_all(".", dir).expect("archive contents");
    b.finish().expect("archive");
}

/// A docker-archive as `docker save` wrote it before Docker 25: manifest.json,
/// the config as `<hex>.json`, each layer as `<n>/layer.tar` (uncompressed).
pub fn docker_archive(out: &Path, image: &ImageDef, repo_tag: &str) {
    let mut b = tar::Builder::new(std::fs::File::create(out).expect("archive"));
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).expect("archive entry");
    };
    let config = image.config_json();
    let config_name = format!("{}.json", &sha(&config)["sha256:".len()..]);
    add(&config_name, &config);
    let mut layers = Vec::new();
    for (i, (tar, _)) in image.layers.iter().enumerate() {
        let name = format!("{i}/layer.tar");
        add(&name, tar);
        layers.push(name);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": layers}]);
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest"),
    );
    b.into_inner().expect("archive");
}
