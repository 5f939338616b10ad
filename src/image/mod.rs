//! OCI images, imported from files and stored once (see docs/images.md).
//!
//! - `digest`: sha256 digests and a hashing reader;
//! - `entry`, `unpack`: one layer tar unpacked safely into its own directory,
//!   whiteouts in overlayfs's form;
//! - `source`: what a file to import is (OCI layout, docker-archive, rootfs
//!   tarball) and where its manifest, config and layers are;
//! - `import`: verify and unpack into a staging directory, then move into the store;
//! - `store`: the content-addressed store in the state directory, its lock,
//!   tags, listing, removal and pruning;
//! - `defaults`: what an image's config gives a unit that uses it (pure);
//! - `units`: supd resolving its image units against the store;
//! - `root`: a unit's root, an overlay of the image's layers and its own upper.

pub mod defaults;
pub mod digest;
mod entry;
pub mod import;
pub mod root;
mod source;
pub mod store;
pub mod units;
pub mod unpack;

pub use digest::Digest;
pub use import::{ImportOptions, import};
pub use store::{Image, Store};

/// An image operation that failed: what, on which path, and the OS error, with
/// what to do where there is something to do.
#[derive(Debug)]
pub struct ImageError {
    message: String,
}

impl ImageError {
    pub fn new(message: String) -> ImageError {
        ImageError { message }
    }

    /// `what` failed with the OS error `e` (its errno is shown).
    pub fn io(what: String, e: std::io::Error) -> ImageError {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                " (importing and running images needs root: owners, device nodes and overlay xattrs)"
            }
            Some(libc::ENOSPC) => {
                " (the state directory's filesystem is full: `supctl image prune` frees unused layers)"
            }
            _ => "",
        };
        ImageError {
            message: format!("{what}: {e}{hint}"),
        }
    }

    /// The same error, said to have happened while doing `what`.
    pub fn context(self, what: &str) -> ImageError {
        ImageError {
            message: format!("{what}: {}", self.message),
        }
    }
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImageError {}
