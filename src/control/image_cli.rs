//! `supctl image ...` and `supd image ...`: the same commands, run in the
//! calling process on the store in the state directory (under its lock), so
//! they work whether or not supd runs (scripts, an initramfs builder). supd
//! is only asked to reload after an import that changed a tag a unit uses,
//! which restarts those units on the new image.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::control::client::Client;
use crate::control::proto::{Command, PROTOCOL_VERSION, Reply, Request};
use crate::image::store::{Freed, Reference, disk_usage, parse_reference};
use crate::image::{ImageError, ImportOptions, Store};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImageCmd {
    /// Import an image from a file: an OCI image layout (directory or tar), a
    /// docker-archive (`docker save`) or a root filesystem tarball (`docker export`)
    Import {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Store it as NAME:TAG (default: the name the archive carries; required
        /// for a root filesystem tarball)
        #[arg(long, value_name = "NAME:TAG")]
        name: Option<String>,
    },
    /// List the images in the store
    Ls {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show an image's config, layers, size and the units that use it (JSON)
    Inspect {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Remove images (refused while a unit uses one), then what nothing else needs
    Rm {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Remove layers and blobs that no image and no unit uses
    Prune,
}

/// Runs one command; returns what to print.
pub fn run(cmd: ImageCmd, state_dir: &Path, socket: &Path) -> Result<String, ImageError> {
    let store = Store::new(state_dir);
    match cmd {
        ImageCmd::Import { path, name } => import(&store, &path, name, socket),
        ImageCmd::Ls { json } => ls(&store, json),
        ImageCmd::Inspect { name } => inspect(&store, &name),
        ImageCmd::Rm { names } => {
            let mut out = String::new();
            for name in names {
                let freed = store.remove(&name)?;
                out.push_str(&format!("removed {name} ({})\n", freed_text(freed)));
            }
            Ok(out)
        }
        ImageCmd::Prune => Ok(format!("pruned: {}\n", freed_text(store.prune()?))),
    }
}

fn freed_text(f: Freed) -> String {
    format!(
        "{} blobs and layers, {} freed",
        f.entries,
        size_text(f.bytes)
    )
}

pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn import(
    store: &Store,
    path: &Path,
    name: Option<String>,
    socket: &Path,
) -> Result<String, ImageError> {
    let started = std::time::Instant::now();
    let done = crate::image::import(store, path, &ImportOptions { name })?;
    let mut out = format!(
        "imported {} {} ({} layers, {} unpacked) in {:.2?}\n",
        done.name,
        done.digest,
        done.layers,
        done.unpacked,
        started.elapsed()
    );
    // Units using this tag run the old image until supd reloads them, and
    // units rejected for want of this image wait for a reload too. A reload
    // leaves every other unit as it is (supd applies file edits by itself).
    let tag = Reference::Tag(done.name.clone());
    let users: Vec<String> = store
        .uses()?
        .into_iter()
        .filter(|(_, u)| {
            parse_reference(&u.reference).ok().as_ref() == Some(&tag) && u.digest != done.digest
        })
        .map(|(unit, _)| unit)
        .collect();
    let request = Request {
        v: PROTOCOL_VERSION,
        command: Command::Reload { dry_run: false },
    };
    match Client::connect(socket) {
        Ok(mut client) => match client.request(&request) {
            Ok(Reply::Reload { plan, .. }) => out.push_str(&format!(
                "supd reloaded: restarted {}; added {}\n",
                list_or_none(&plan.restarted),
                list_or_none(&plan.added)
            )),
            Ok(other) => out.push_str(&format!("supd did not reload: {other:?}\n")),
            Err(e) => out.push_str(&format!("supd did not reload ({e}): run `supctl reload`\n")),
        },
        // No supd: nothing runs the old image, unless one is unreachable.
        Err(_) if users.is_empty() => {}
        Err(e) => out.push_str(&format!(
            "units {} use {}: supd could not be asked to reload ({e}); run `supctl reload`\n",
            users.join(", "),
            done.name
        )),
    }
    Ok(out)
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn ls(store: &Store, json: bool) -> Result<String, ImageError> {
    let uses = store.uses()?;
    let mut rows = Vec::new();
    for (name, digest) in store.refs()? {
        let (layers, size) = match store.image(&digest) {
            Ok(img) => (
                img.layers.len(),
                img.manifest.layers().iter().map(|l| l.size()).sum::<u64>(),
            ),
            Err(_) => (0, 0),
        };
        let used_by: Vec<&String> = uses
            .iter()
            .filter(|(_, u)| u.digest == digest)
            .map(|(n, _)| n)
            .collect();
        rows.push(json!({"name": name, "digest": digest.as_str(), "layers": layers, "size": size, "used_by": used_by}));
    }
    if json {
        return serde_json::to_string_pretty(&rows)
            .map(|s| s + "\n")
            .map_err(|e| ImageError::new(format!("cannot encode: {e}")));
    }
    let mut out = format!(
        "{:<32} {:<19} {:>6} {:>10}  {}\n",
        "NAME", "DIGEST", "LAYERS", "SIZE", "USED BY"
    );
    for r in rows {
        let digest = r["digest"].as_str().unwrap_or_default();
        let short = digest.get(..19).unwrap_or(digest);
        let used: Vec<&str> = r["used_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        out.push_str(&format!(
            "{:<32} {:<19} {:>6} {:>10}  {}\n",
            r["name"].as_str().unwrap_or_default(),
            short,
            r["layers"],
            size_text(r["size"].as_u64().unwrap_or(0)),
            if used.is_empty() {
                "-".to_owned()
            } else {
                used.join(",")
            }
        ));
    }
    Ok(out)
}

fn inspect(store: &Store, name: &str) -> Result<String, ImageError> {
    let digest = store.lookup(name)?;
    let img = store.image(&digest)?;
    let tags: Vec<String> = store
        .refs()?
        .into_iter()
        .filter(|(_, d)| *d == digest)
        .map(|(t, _)| t)
        .collect();
    let used_by: Vec<String> = store
        .uses()?
        .into_iter()
        .filter(|(_, u)| u.digest == digest)
        .map(|(n, _)| n)
        .collect();
    let mut total = 0;
    let layers: Vec<_> = img
        .layers
        .iter()
        .zip(img.manifest.layers())
        .map(|(diff, desc)| {
            let dir = store.layer(diff);
            let disk = disk_usage(&dir);
            total += disk;
            json!({
                "diff_id": diff.as_str(),
                "blob": desc.digest().to_string(),
                "media_type": desc.media_type().to_string(),
                "compressed_size": desc.size(),
                "disk_usage": disk,
                "dir": dir,
            })
        })
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&img.raw_config).unwrap_or_default();
    let doc = json!({
        "name": name,
        "tags": tags,
        "digest": digest.as_str(),
        "config": config,
        "layers": layers,
        "size": img.manifest.layers().iter().map(|l| l.size()).sum::<u64>(),
        "disk_usage": total,
        "used_by": used_by,
    });
    serde_json::to_string_pretty(&doc)
        .map(|s| s + "\n")
        .map_err(|e| ImageError::new(format!("cannot encode: {e}")))
}
