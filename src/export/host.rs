//! What an export reads from the host: the units' env files and the user
//! databases that resolve `user`/`group` names to ids. Kept apart so that the
//! translation stays pure and tests can hand in a [`Host`] of their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::spawn::accounts::Accounts;
use crate::unit::{IdSpec, Loaded, Unit};

/// Env files (read or why not) and account databases, by root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Each `env_file` path: its variables in order, or why it could not be read.
    pub env_files: BTreeMap<PathBuf, Result<Vec<(String, String)>, String>>,
    /// `/etc/passwd` and `/etc/group` of the host (`/`) and of each `rootfs`.
    pub accounts: BTreeMap<PathBuf, Accounts>,
}

impl Host {
    /// Reads what the units of `loaded` refer to. Nothing here fails the export:
    /// an unreadable file becomes a warning where it is used.
    pub fn read(loaded: &Loaded) -> Host {
        let mut host = Host::default();
        for unit in loaded.units.values() {
            for file in &unit.service.env_file {
                let vars = read_env_file(&file.path, file.optional);
                host.env_files.insert(file.path.clone(), vars);
            }
            if let Some(root) = account_root(unit)
                && let std::collections::btree_map::Entry::Vacant(slot) = host.accounts.entry(root)
                && let Ok(accounts) = Accounts::read(slot.key())
            {
                slot.insert(accounts);
            }
        }
        host
    }

    /// The uid of `user` as the unit would see it, if known offline.
    pub fn uid(&self, unit: &Unit, user: &IdSpec) -> Option<u32> {
        match user {
            IdSpec::Id(id) => Some(*id),
            IdSpec::Name(name) => {
                let accounts = self.accounts.get(&account_root(unit)?)?;
                accounts.user_by_name(name).map(|u| u.uid)
            }
        }
    }

    /// The gid of `group`, if known offline.
    pub fn gid(&self, unit: &Unit, group: &IdSpec) -> Option<u32> {
        match group {
            IdSpec::Id(id) => Some(*id),
            IdSpec::Name(name) => {
                let accounts = self.accounts.get(&account_root(unit)?)?;
                accounts.group_by_name(name).map(|g| g.gid)
            }
        }
    }

    /// The primary gid of the unit's user (what sup uses without `group`).
    pub fn primary_gid(&self, unit: &Unit, user: &IdSpec) -> Option<u32> {
        let accounts = self.accounts.get(&account_root(unit)?)?;
        let entry = match user {
            IdSpec::Id(id) => accounts.user_by_uid(*id),
            IdSpec::Name(name) => accounts.user_by_name(name),
        };
        entry.map(|u| u.gid)
    }
}

/// Whose `/etc/passwd` names the unit's users: its rootfs, or the host's. An
/// image's is not on this machine in a form read offline: `None`.
fn account_root(unit: &Unit) -> Option<PathBuf> {
    if unit.container.image.is_some() {
        return None;
    }
    Some(
        unit.container
            .rootfs
            .clone()
            .unwrap_or_else(|| PathBuf::from("/")),
    )
}

fn read_env_file(path: &Path, optional: bool) -> Result<Vec<(String, String)>, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
            crate::spawn::envfile::parse(&text, path)
        }
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}
