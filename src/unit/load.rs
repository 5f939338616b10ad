//! Reading a units directory.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::cache::{BadText, ParseCache, Parsed};
use super::error::UnitError;
use super::model::fnv1a64;
use super::{Loaded, NetworkDef, graph, netcheck, parse};

/// Largest unit file read (1 MiB): real units are a few hundred bytes, and
/// the cap bounds memory and parse time whatever lands in the directory.
pub(super) const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// See [`super::load_dir`]; unit files whose bytes are those `cache` saw last
/// time are not parsed again.
pub(super) fn load_dir(
    dir: &Path,
    incumbents: &BTreeSet<String>,
    cache: &mut ParseCache,
) -> io::Result<Loaded> {
    // With the type readdir gave (no stat for a regular file: most of them); a
    // symlink or a type the file system does not report is looked at by path.
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        let path = entry.path();
        if is_unit_file(&path, regular) {
            files.push((path, regular));
        }
    }
    files.sort();

    let mut units = BTreeMap::new();
    let mut invalid = BTreeSet::new();
    let mut errors = Vec::new();
    let mut fingerprints = BTreeMap::new();
    let mut broken_networks = BTreeSet::new();
    // The built-in `default` first (unless a file replaces it), so that no
    // network file overlaps it either.
    let default_file = files.iter().any(|(p, _)| {
        netcheck::network_file_name(p).as_deref() == Some(super::network::DEFAULT_NETWORK)
    });
    let mut networks = match default_file {
        true => BTreeMap::new(),
        false => netcheck::with_default(BTreeMap::new()),
    };
    cache.begin();
    for (path, regular) in files {
        if let Some(name) = netcheck::network_file_name(&path) {
            let parsed = read_unit_file(&path, regular).and_then(|bytes| {
                let text = utf8(bytes, "network file")?;
                parse::parse_network(&name, &path, &text).map_err(Failure::Parse)
            });
            match parsed {
                Ok(def) => match overlapping(&networks, &def) {
                    Some(other) => {
                        let message = format!(
                            "subnet {} overlaps network {other:?}'s: networks need disjoint subnets",
                            def.subnet
                        );
                        errors.push(at_start(&format!("{name}.network"), &path, message));
                        broken_networks.insert(name);
                    }
                    None => {
                        networks.insert(name, def);
                    }
                },
                Err(failure) => {
                    broken_networks.insert(name.clone());
                    let shown = format!("{name}.network");
                    match failure {
                        Failure::Read(message) => errors.push(at_start(&shown, &path, message)),
                        Failure::Parse(mut list) => errors.append(&mut list),
                    }
                }
            }
            continue;
        }
        let name = unit_name(&path);
        let parsed = read_unit_file(&path, regular).and_then(|bytes| {
            fingerprints.insert(name.clone(), fnv1a64(&bytes));
            cache
                .parse(&path, bytes, |bytes| parse_bytes(&name, &path, bytes))
                .map_err(|bad| match bad {
                    BadText::NotUtf8(message) => Failure::Read(message),
                    BadText::Parse(list) => Failure::Parse(list),
                })
        });
        match parsed {
            Ok(unit) => {
                units.insert(name, unit);
            }
            Err(failure) => {
                invalid.insert(name.clone());
                match failure {
                    Failure::Read(message) => errors.push(at_start(&name, &path, message)),
                    Failure::Parse(mut list) => errors.append(&mut list),
                }
            }
        }
    }
    cache.end();
    let before: BTreeSet<String> = units.keys().cloned().collect();
    netcheck::check_networks(
        &mut units,
        &networks,
        &broken_networks,
        incumbents,
        &mut errors,
    );
    invalid.extend(before.into_iter().filter(|name| !units.contains_key(name)));
    let mut loaded = graph::check_graph(units, &invalid);
    errors.append(&mut loaded.errors);
    loaded.networks = networks;
    // Stable sort: errors within one file keep line/column order.
    errors.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    loaded.errors = errors;
    loaded.fingerprints = fingerprints;
    Ok(loaded)
}

/// Why a file gave no unit.
enum Failure {
    /// The file could not be read as a whole; one message at 1:1.
    Read(String),
    /// Every problem found in its text.
    Parse(Vec<UnitError>),
}

/// `*.toml`, not hidden, not an editor temp file, and not a directory
/// (`regular`: readdir said it is a regular file, so it is not).
fn is_unit_file(path: &Path, regular: bool) -> bool {
    let Some(file_name) = path.file_name().map(OsStr::to_string_lossy) else {
        return false;
    };
    let ignored =
        file_name.starts_with('.') || file_name.ends_with('~') || file_name.ends_with(".swp");
    !ignored && file_name.ends_with(".toml") && (regular || !path.is_dir())
}

/// The file stem; a non-UTF-8 stem is kept lossily and then fails the name
/// check in `parse_unit` with a readable message.
fn unit_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn at_start(name: &str, path: &Path, message: String) -> UnitError {
    UnitError {
        unit: name.to_owned(),
        path: PathBuf::from(path),
        line: 1,
        column: 1,
        message,
    }
}

/// The bytes of a regular file (a symlink is followed) of at most
/// [`MAX_FILE_SIZE`] bytes.
///
/// Anything else in the directory (a FIFO, a device, a socket) is refused
/// before it is opened, so a read can never block or run forever; the
/// open itself uses `O_NONBLOCK` (and `O_NOCTTY`, as supd may be a session
/// leader) and the type is checked again on the open file, in case the
/// path was replaced in between. `regular`: readdir said the entry is a regular
/// file, which spares the check before the open (the one after it stays).
fn read_unit_file(path: &Path, regular: bool) -> Result<Vec<u8>, Failure> {
    let cannot_read = |e: io::Error| Failure::Read(format!("cannot read unit file: {e}"));
    if !regular {
        check_regular(&fs::metadata(path).map_err(cannot_read)?)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    check_regular(&meta)?;
    read_capped(file, meta.len()).map_err(|e| match e {
        Some(e) => cannot_read(e),
        None => Failure::Read(format!(
            "unit file is larger than the limit of 1 MiB ({MAX_FILE_SIZE} bytes)"
        )),
    })
}

fn check_regular(meta: &fs::Metadata) -> Result<(), Failure> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(Failure::Read(format!(
        "not a regular file ({kind}): unit files must be regular files or symlinks to them"
    )))
}

/// Reads at most one byte past the cap, so a file that grew past it is
/// noticed without reading all of it. `Err(None)` means too large.
/// `size` (from fstat) sizes the buffer at once: a few hundred bytes read in
/// one go, not grown from a small probe.
fn read_capped(file: File, size: u64) -> Result<Vec<u8>, Option<io::Error>> {
    let capacity = usize::try_from(size.min(MAX_FILE_SIZE) + 1).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(Some)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(None);
    }
    Ok(bytes)
}

fn parse_bytes(name: &str, path: &Path, bytes: &[u8]) -> Parsed {
    let text =
        std::str::from_utf8(bytes).map_err(|e| BadText::NotUtf8(not_utf8("unit file", &e)))?;
    parse::parse_unit(name, path, text).map_err(BadText::Parse)
}

fn not_utf8(what: &str, e: &std::str::Utf8Error) -> String {
    format!(
        "{what} is not valid UTF-8 (first bad byte at offset {})",
        e.valid_up_to()
    )
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, Failure> {
    String::from_utf8(bytes).map_err(|e| Failure::Read(not_utf8(what, &e.utf8_error())))
}

/// A network already loaded whose subnet shares addresses with `def`'s.
fn overlapping(networks: &BTreeMap<String, NetworkDef>, def: &NetworkDef) -> Option<String> {
    networks
        .values()
        .find(|other| super::network::overlaps(&other.subnet, &def.subnet))
        .map(|other| other.name.clone())
}
