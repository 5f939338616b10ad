//! supd's side of image units, when it loads the unit directory: each unit's
//! image is looked up in the store and its config's defaults applied, the
//! manifest digest and layer directories recorded in the unit (so its hash
//! changes when the tag is imported again: the reload restarts it), and the
//! units using images written to `in-use.json` for `image rm`/`prune`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::defaults::{self, ImageDefaults};
use super::store::Use;
use super::{ImageError, Store};
use crate::unit::{Loaded, ResolvedImage, Unit, UnitError};

/// Resolves every image unit of `loaded`; a unit whose image cannot be used is
/// rejected like a unit file with an error (and units requiring it with it).
pub fn resolve_units(loaded: &mut Loaded, state_dir: &Path) {
    let store = Store::new(state_dir);
    let names: Vec<String> = loaded
        .units
        .iter()
        .filter(|(_, u)| u.container.image.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    if names.is_empty() && !store.root().join("in-use.json").exists() {
        return;
    }
    let lock = store.lock();
    let mut uses = BTreeMap::new();
    let mut rejected = Vec::new();
    for name in names {
        let Some(unit) = loaded.units.get_mut(&name) else {
            continue;
        };
        let result = match &lock {
            Ok(_) => resolve_one(&store, unit),
            Err(e) => Err(format!("image store unavailable: {e}")),
        };
        match result {
            Ok(u) => {
                unit.hash = unit.compute_hash();
                uses.insert(name, u);
            }
            Err(message) => rejected.push(UnitError {
                unit: name.clone(),
                path: unit.path.clone(),
                line: 1,
                column: 1,
                message,
            }),
        }
    }
    if let Ok(lock) = &lock
        && let Err(e) = store.write_uses(&uses, lock)
    {
        tracing::warn!("cannot record which units use images: {e}");
    }
    if rejected.is_empty() {
        return;
    }
    // Units that require a rejected one go too, as for a file with errors.
    let invalid: BTreeSet<String> = rejected.iter().map(|e| e.unit.clone()).collect();
    let mut units = std::mem::take(&mut loaded.units);
    units.retain(|n, _| !invalid.contains(n));
    let checked = crate::unit::check_graph(units, &invalid);
    loaded.units = checked.units;
    loaded.errors.extend(rejected);
    loaded.errors.extend(checked.errors);
    loaded
        .errors
        .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
}

fn resolve_one(store: &Store, unit: &mut Unit) -> Result<Use, String> {
    let Some(spec) = unit.container.image.clone() else {
        return Err("no image".into());
    };
    let err = |e: ImageError| e.to_string();
    let digest = store.lookup(&spec.reference).map_err(err)?;
    let image = store.image(&digest).map_err(err)?;
    let mut lower = Vec::new();
    for layer in image.layers.iter().rev() {
        let dir = store.layer(layer);
        // The same layer twice: overlayfs refuses a lower directory given
        // twice, and the lower copy is shadowed by the upper one entirely.
        if lower.contains(&dir) {
            continue;
        }
        if !dir.is_dir() {
            return Err(format!(
                "layer {layer} of image {:?} is missing from {}: import the image again",
                spec.reference,
                store.root().display()
            ));
        }
        lower.push(dir);
    }
    let d = ImageDefaults::from_config(&image.config, &image.raw_config);
    defaults::apply(unit, &d)?;
    let dir = store.unit_dir(&unit.name);
    unit.container.rootfs = Some(dir.join("root"));
    if let Some(img) = unit.container.image.as_mut() {
        img.resolved = Some(ResolvedImage {
            digest: digest.to_string(),
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            exposed_ports: d.exposed_ports,
        });
    }
    Ok(Use {
        reference: spec.reference,
        digest,
    })
}
