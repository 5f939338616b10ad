//! Process restrictions applied in the spawn helper just before exec: resource
//! limits and the capability keep-list (bounding, permitted, effective, inheritable
//! and ambient sets all reduced to exactly the list).

use std::collections::BTreeSet;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::errno::Errno;
use nix::sys::resource::setrlimit;

use super::{SpawnError, Step};
use crate::unit::names::Named;
use crate::unit::{Capability, RlimitResource};

/// Names and values were checked when the unit was loaded, so the only
/// failure left is the kernel refusing the limit.
pub fn set_rlimit(resource: &RlimitResource, soft: u64, hard: u64) -> Result<(), SpawnError> {
    let value = |v: u64| {
        if v == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            v
        }
    };
    setrlimit(resource.resource(), value(soft), value(hard)).map_err(|e| {
        SpawnError::new(
            Step::Setrlimit,
            Some(resource.name()),
            Some(e),
            format!("{soft}/{hard}"),
        )
    })
}

fn keep_set(keep: &BTreeSet<Capability>) -> CapsHashSet {
    keep.iter().map(|c| c.0).collect()
}

fn caps_error(step: &str, e: caps::errors::CapsError) -> SpawnError {
    SpawnError::new(
        Step::Capabilities,
        None,
        Some(Errno::last()),
        format!("{step}: {e}"),
    )
}

/// Remove every capability not kept from the bounding set, so nothing the service
/// execs can regain it. Needs CAP_SETPCAP; without it (supd not root) the bounding
/// set is left as it is, since the process then holds no capabilities anyway.
pub fn drop_bounding(keep: &BTreeSet<Capability>) -> Result<(), SpawnError> {
    let keep = keep_set(keep);
    if !caps::has_cap(None, CapSet::Effective, Cap::CAP_SETPCAP).unwrap_or(false) {
        return Ok(());
    }
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| caps_error("read bounding", e))?;
    for cap in bounding.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| caps_error("drop bounding", e))?;
    }
    Ok(())
}

/// Permitted, effective and inheritable become the keep-list (as far as the process
/// holds those capabilities). What crosses the exec depends on who the service is:
/// root gets the keep-list back from the kernel; a non-root service gets only its
/// `ambient` capabilities (the ambient set, the only one a non-root exec keeps),
/// none by default, so `user = "nobody"` means no root powers. The container's init
/// (`for_init`) also keeps CAP_KILL in its own permitted and effective sets, so it
/// can forward signals even after the service changed its uid; CAP_KILL is outside
/// the bounding, inheritable and ambient sets (unless kept), so the service never
/// gets it.
pub fn set_capabilities(
    keep: &BTreeSet<Capability>,
    ambient: Option<&BTreeSet<Capability>>,
    for_init: bool,
) -> Result<(), SpawnError> {
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(|e| caps_error("read permitted", e))?;
    let target: CapsHashSet = keep_set(keep).intersection(&permitted).copied().collect();
    let crossing: CapsHashSet = match ambient {
        None => target.clone(),
        Some(ambient) => keep_set(ambient).intersection(&target).copied().collect(),
    };
    let mut own = target.clone();
    if for_init && permitted.contains(&Cap::CAP_KILL) {
        own.insert(Cap::CAP_KILL);
    }
    caps::set(None, CapSet::Effective, &own).map_err(|e| caps_error("set effective", e))?;
    caps::set(None, CapSet::Permitted, &own).map_err(|e| caps_error("set permitted", e))?;
    caps::set(None, CapSet::Inheritable, &crossing)
        .map_err(|e| caps_error("set inheritable", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| caps_error("clear ambient", e))?;
    for cap in &crossing {
        caps::raise(None, CapSet::Ambient, *cap).map_err(|e| caps_error("raise ambient", e))?;
    }
    Ok(())
}
