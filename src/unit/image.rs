//! `[container] image`: a unit run from an imported image. Parsing keeps the
//! reference as written; supd fills in `resolved` when it loads the unit (see
//! `crate::image::units`), so the manifest digest is part of the unit's hash
//! and a re-imported tag restarts the units that use it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// `NAME:TAG`, `NAME@sha256:HEX` or `sha256:HEX`, as written.
    pub reference: String,
    /// `[container] args`: the command's arguments, after the image's
    /// Entrypoint (in place of its Cmd) or after `exec`, like `docker run IMAGE ARGS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `[service] stop_signal` was written: the image's StopSignal does not apply.
    #[serde(default)]
    pub stop_signal_written: bool,
    /// Filled in by supd from the image store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedImage>,
}

/// What supd found in the store for a unit's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedImage {
    /// The manifest's digest.
    pub digest: String,
    /// The layer directories, topmost first (overlayfs `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// The unit's writable layer and overlayfs's work directory, kept across
    /// restarts (`supctl reset UNIT` discards them).
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The image's ExposedPorts (`80/tcp`): shown, never published by themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
}
