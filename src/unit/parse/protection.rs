//! The protection keys of `[container]` and the top-level `[[device]]` entries ->
//! [`Protection`], resolved against the unit's namespaces and rootfs.

use std::collections::BTreeSet;

use toml::Spanned;

use super::container::{NsContext, expected_name};
use super::limits;
use super::reader::{Reader, Table, Value};
use crate::unit::isolation::{Capability, Namespace};
use crate::unit::protection::{DeviceSpec, ProtectSystem, Protection};
use crate::unit::values::{self, CAPABILITY_EXPECTED};

pub(super) const DEVICE_KEYS: &[&str] = &["path", "access"];

/// Reads the protection keys from `t` and the `[[device]]` array.
pub(super) fn read_protection(
    t: &mut Table,
    devices: Option<Value>,
    ns: &NsContext,
    own_rootfs: bool,
    capabilities: &BTreeSet<Capability>,
    r: &mut Reader,
) -> Protection {
    let own_mounts = ns.created.contains(&Namespace::Mnt);
    let defaults = Protection::defaults(own_mounts, own_rootfs);
    let protect_system = t.take("protect_system");
    let protect_system = r
        .scalar(
            protect_system,
            &expected_name::<ProtectSystem>(),
            values::named,
        )
        .map_or(defaults.protect_system, |p| {
            if *p.get_ref() != ProtectSystem::No {
                ns.check(Namespace::Mnt, "protect_system", p.span(), r);
            }
            p.into_inner()
        });
    let writable_paths = read_paths(t.take("writable_paths"), r);
    // A protection switched on needs what it works with: a mount namespace.
    let mut switch = |key: &str, default: bool, r: &mut Reader| {
        r.boolean(t.take(key)).map_or(default, |on| {
            if *on.get_ref() {
                ns.check(Namespace::Mnt, &format!("{key} = true"), on.span(), r);
            }
            on.into_inner()
        })
    };
    let private_tmp = switch("private_tmp", defaults.private_tmp, r);
    let private_devices = switch("private_devices", defaults.private_devices, r);
    let protect_kernel = switch("protect_kernel", defaults.protect_kernel, r);
    let protect_cgroups = switch("protect_cgroups", defaults.protect_cgroups, r);
    let control_socket = r
        .boolean(t.take("control_socket"))
        .is_some_and(Spanned::into_inner);
    let ambient_capabilities = read_ambient(t.take("ambient_capabilities"), capabilities, r);
    let devices = read_devices(devices, private_devices, r);
    Protection {
        protect_system,
        writable_paths,
        private_tmp,
        private_devices,
        devices,
        protect_kernel,
        protect_cgroups,
        control_socket,
        ambient_capabilities,
    }
}

fn read_paths(v: Option<Value>, r: &mut Reader) -> Vec<std::path::PathBuf> {
    let expected = "an array of absolute paths";
    let Some(list) = r.array(v, expected, "writable_paths", limits::LIST) else {
        return Vec::new();
    };
    let paths = r.each(list.into_inner(), |r, p| {
        r.absolute_path(Some(p), "writable_paths entry")
    });
    paths.into_iter().map(Spanned::into_inner).collect()
}

/// Ambient capabilities must be among the kept ones: a capability outside the
/// bounding set cannot be raised.
fn read_ambient(
    v: Option<Value>,
    kept: &BTreeSet<Capability>,
    r: &mut Reader,
) -> BTreeSet<Capability> {
    let expected = "an array of capability names";
    let Some(list) = r.array(v, expected, "ambient_capabilities", limits::LIST) else {
        return BTreeSet::new();
    };
    let caps = r.each(list.into_inner(), |r, c| {
        r.scalar(Some(c), CAPABILITY_EXPECTED, values::capability)
    });
    let mut out = BTreeSet::new();
    for cap in caps {
        if kept.contains(cap.get_ref()) {
            out.insert(cap.into_inner());
        } else {
            let name = cap.get_ref().name();
            r.report(
                cap.span(),
                format!(
                    "ambient capability {name} is not kept: add {:?} to [container] capabilities too",
                    name.trim_start_matches("CAP_").to_ascii_lowercase()
                ),
            );
        }
    }
    out
}

fn read_devices(v: Option<Value>, private_devices: bool, r: &mut Reader) -> Vec<DeviceSpec> {
    let expected = "an array of device tables ([[device]])";
    let Some(list) = r.array(v, expected, "device", limits::LIST) else {
        return Vec::new();
    };
    let mut devices = Vec::new();
    for (i, entry) in list.into_inner().into_iter().enumerate() {
        if i == 0 && !private_devices {
            r.report(
                entry.span(),
                "[[device]] needs private_devices (without it the host's /dev is visible and no device is restricted): remove private_devices = false",
            );
        }
        let Some(mut t) = r.table(Some(entry), DEVICE_KEYS) else {
            continue;
        };
        let header = t.span();
        let missing = "missing path in [[device]]: expected path = \"/dev/NAME\"";
        let path = r.required(t.take("path"), &header, missing);
        let path = r.absolute_path(path, "device path");
        let access = read_access(t.take("access"), r);
        if let (Some(path), Some(access)) = (path, access) {
            if !path.get_ref().starts_with("/dev/") {
                let shown = path.get_ref().display();
                r.report(
                    path.span(),
                    format!("device path {shown} must be below /dev/"),
                );
                continue;
            }
            devices.push(DeviceSpec {
                path: path.into_inner(),
                access,
            });
        }
    }
    devices
}

/// `r`, `w`, `m` in that order, at least one; default `rw`.
fn read_access(v: Option<Value>, r: &mut Reader) -> Option<String> {
    let Some(v) = v else {
        return Some("rw".into());
    };
    let s = r.string(Some(v))?;
    let text = s.get_ref();
    let valid = ["r", "w", "m", "rw", "rm", "wm", "rwm"].contains(&text.as_str());
    if !valid {
        r.report(
            s.span(),
            format!("invalid device access {text:?}: expected letters from \"rwm\" in that order, e.g. \"rw\""),
        );
        return None;
    }
    Some(s.into_inner())
}
