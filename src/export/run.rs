//! `supctl export`: load, translate, write. The binary prints the warnings.

use std::path::Path;

use super::{Export, Host, Options};
use crate::cli::supctl::ExportCmd;

/// Runs one export: the YAML for stdout (empty with `--output`), and the
/// warnings. Errors name the file or directory and what to do.
pub fn run(cmd: &ExportCmd) -> Result<Export, String> {
    let (common, opts, kubernetes) = match cmd {
        ExportCmd::Kubernetes { common, namespace } => (
            common,
            Options {
                registry: common.registry.clone(),
                namespace: namespace.clone(),
            },
            true,
        ),
        ExportCmd::Compose { common } => (
            common,
            Options {
                registry: common.registry.clone(),
                namespace: None,
            },
            false,
        ),
    };
    let loaded = super::load(&common.units)?;
    let host = Host::read(&loaded);
    let export = match kubernetes {
        true => super::kubernetes::export(&loaded, &host, &opts)?,
        false => super::compose::export(&loaded, &host, &opts)?,
    };
    if let Some(dir) = &common.output {
        write_files(dir, &export)?;
    }
    Ok(export)
}

fn write_files(dir: &Path, export: &Export) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (stem, text) in &export.files {
        let path = dir.join(format!("{stem}.yaml"));
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
