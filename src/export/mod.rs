//! `supctl export`: a unit directory turned into manifests another engine runs
//! (Kubernetes objects, or a compose file), offline, with sup's own loader. What
//! a unit says that the target cannot express is a [`Warning`], never dropped
//! silently. See docs/export.md.
//!
//! - [`host`] reads what the translation needs from the host (env files, the
//!   user databases); everything else here is pure and table-tested.
//! - [`kubernetes`] and [`compose`] build typed objects (`k8s-openapi`,
//!   `docker-compose-types`) and serialize them as YAML (`serde-saphyr`).

pub mod compose;
pub mod host;
pub mod kubernetes;
mod names;
mod quantity;
pub mod run;
mod warnings;

use std::fmt::Write as _;
use std::path::Path;

use crate::unit::Loaded;

pub use host::Host;
pub use warnings::Warning;

/// What the user chose on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Prepended to every image reference (`registry.example/team`), where the
    /// images were pushed.
    pub registry: Option<String>,
    /// Kubernetes namespace put on every object; none: kubectl's current one.
    pub namespace: Option<String>,
}

/// The result of an export: YAML per unit (in unit name order) and the warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    /// `(file stem, YAML text)`: one entry per unit for Kubernetes (a
    /// multi-document stream each), one `compose` entry for compose.
    pub files: Vec<(String, String)>,
    pub warnings: Vec<Warning>,
}

impl Export {
    /// Every file as one multi-document YAML stream (what stdout gets).
    pub fn stream(&self) -> String {
        let mut out = String::new();
        for (_, text) in &self.files {
            out.push_str(text);
        }
        out
    }
}

/// Loads `dir` like `supd --check`; any error in any file fails the export, as a
/// partial export would silently drop a unit. The message names every problem.
pub fn load(dir: &Path) -> Result<Loaded, String> {
    let loaded = crate::unit::load_dir(dir)
        .map_err(|e| format!("cannot read unit directory {}: {e}", dir.display()))?;
    if loaded.errors.is_empty() {
        if loaded.units.is_empty() {
            return Err(format!(
                "no units in {}: expected NAME.toml unit files",
                dir.display()
            ));
        }
        return Ok(loaded);
    }
    let mut message = format!(
        "{} has errors; fix them (`supd --check --units {}` shows the same) and export again:",
        dir.display(),
        dir.display()
    );
    for e in &loaded.errors {
        let _ = write!(message, "\n  {e}");
    }
    Err(message)
}

/// Serializes one typed object as a YAML document, with its `---` separator.
fn document<T: serde::Serialize>(object: &T) -> Result<String, String> {
    let text = serde_saphyr::to_string(object).map_err(|e| format!("cannot write YAML: {e}"))?;
    Ok(format!("---\n{text}"))
}

/// Units parsed from `(name, text)` pairs, as the loader would hold them (tests).
#[cfg(test)]
fn loaded(units: &[(&str, &str)]) -> crate::unit::Loaded {
    let units = units
        .iter()
        .map(|(name, text)| {
            let path = format!("/units/{name}.toml");
            let unit = crate::unit::parse_unit(name, std::path::Path::new(&path), text)
                .expect("unit parses");
            (name.to_string(), unit)
        })
        .collect();
    crate::unit::Loaded {
        units,
        ..crate::unit::Loaded::default()
    }
}
