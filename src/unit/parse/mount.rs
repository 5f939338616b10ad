//! Top-level `[[mount]]` entries -> [`MountSpec`]s.

use std::path::{Component, PathBuf};

use toml::Spanned;

use super::container::{NsContext, expected_name};
use super::limits;
use super::reader::{Reader, Span, Table, Value};
use crate::unit::isolation::{MountKind, MountSpec, MountType, Namespace, Propagation};
use crate::unit::names::Named;
use crate::unit::values::{self, SIZE_EXPECTED};

pub(super) const MOUNT_KEYS: &[&str] = &[
    "type",
    "source",
    "target",
    "readonly",
    "recursive",
    "nosuid",
    "nodev",
    "noexec",
    "propagation",
    "size",
    "mode",
    "lower",
];

/// Keys that belong to a single type.
const TYPE_KEYS: [(&str, MountType); 5] = [
    ("source", MountType::Bind),
    ("recursive", MountType::Bind),
    ("size", MountType::Tmpfs),
    ("mode", MountType::Tmpfs),
    ("lower", MountType::Overlay),
];

pub(super) fn read_mounts(v: Option<Value>, ns: &NsContext, r: &mut Reader) -> Vec<MountSpec> {
    let expected = "an array of mount tables ([[mount]])";
    let Some(list) = r.array(v, expected, "mount", limits::LIST) else {
        return Vec::new();
    };
    let mut mounts = Vec::new();
    for (i, entry) in list.into_inner().into_iter().enumerate() {
        if i == 0 {
            ns.check(Namespace::Mnt, "[[mount]]", entry.span(), r);
        }
        if let Some(t) = r.table(Some(entry), MOUNT_KEYS)
            && let Some(mount) = read_mount(t, r)
        {
            mounts.push(mount);
        }
    }
    mounts
}

/// One entry; `None` when it has errors (all of them reported).
fn read_mount(mut t: Table, r: &mut Reader) -> Option<MountSpec> {
    let header = t.span();
    let target = read_target(t.take("target"), &header, r);
    let flag = |r: &mut Reader, v| r.boolean(v).is_some_and(Spanned::into_inner);
    let readonly = flag(r, t.take("readonly"));
    let nosuid = flag(r, t.take("nosuid"));
    let nodev = flag(r, t.take("nodev"));
    let noexec = flag(r, t.take("noexec"));
    let propagation = t.take("propagation");
    let propagation = r.scalar(propagation, &expected_name::<Propagation>(), values::named);
    let expected = expected_name::<MountType>();
    let missing = format!("missing type in [[mount]]: expected type = {expected}");
    let ty = r.required(t.take("type"), &header, &missing);
    let ty = r.scalar(ty, &expected, values::named)?;
    let ty = ty.into_inner();
    let mut wrong_key = false;
    for (key, owner) in TYPE_KEYS {
        if owner == ty {
            continue;
        }
        if let Some((at, _)) = t.take_entry(key) {
            wrong_key = true;
            r.report(
                at,
                format!(
                    "{key} is only valid for type = {:?} (this mount has type = {:?}): remove it",
                    owner.name(),
                    ty.name()
                ),
            );
        }
    }
    let kind = read_kind(ty, &mut t, &header, r);
    if wrong_key {
        return None;
    }
    Some(MountSpec {
        kind: kind?,
        target: target?,
        readonly,
        nosuid,
        nodev,
        noexec,
        propagation: propagation.map(Spanned::into_inner),
    })
}

/// The type-specific settings; keys of other types were already taken.
fn read_kind(ty: MountType, t: &mut Table, header: &Span, r: &mut Reader) -> Option<MountKind> {
    Some(match ty {
        MountType::Bind => {
            let source = read_source(t.take("source"), header, r);
            let recursive = r.boolean(t.take("recursive"));
            MountKind::Bind {
                source: source?,
                recursive: recursive.is_none_or(Spanned::into_inner),
            }
        }
        MountType::Tmpfs => {
            let size = r.scalar(t.take("size"), SIZE_EXPECTED, |v| {
                match values::size(v, "tmpfs size", limits::MEMORY)? {
                    0 => Err("tmpfs size must be at least 1 byte: omit size for the kernel default (half of RAM)".to_owned()),
                    n => Ok(n),
                }
            });
            let mode = r.scalar(t.take("mode"), r#"an octal string like "1777""#, |v| {
                values::octal(v, 0o7777, "mode")
            });
            MountKind::Tmpfs {
                size: size.map(Spanned::into_inner),
                mode: mode.map(Spanned::into_inner),
            }
        }
        MountType::Proc => MountKind::Proc,
        MountType::Sysfs => MountKind::Sysfs,
        MountType::Dev => MountKind::Dev,
        MountType::Overlay => MountKind::Overlay {
            lower: read_lower(t.take("lower"), header, r)?,
        },
    })
}

fn read_source(v: Option<Value>, header: &Span, r: &mut Reader) -> Option<PathBuf> {
    let missing = "missing source in [[mount]] with type = \"bind\": expected the absolute host path to bind, e.g. source = \"/srv/data\"";
    let v = r.required(v, header, missing);
    r.absolute_path(v, "mount source").map(Spanned::into_inner)
}

fn read_lower(v: Option<Value>, header: &Span, r: &mut Reader) -> Option<Vec<PathBuf>> {
    let missing = "missing lower in [[mount]] with type = \"overlay\": expected the absolute lower directories, e.g. lower = [\"/srv/base\"]";
    let v = r.required(v, header, missing);
    let lower = r.array(
        v,
        "an array of absolute directories",
        "lower",
        limits::OVERLAY_LOWER,
    )?;
    if lower.get_ref().is_empty() {
        r.report(
            lower.span(),
            "lower must not be empty: list at least one absolute directory",
        );
    }
    let dirs = r.each(lower.into_inner(), |r, d| {
        r.absolute_path(Some(d), "overlay lower")
    });
    Some(dirs.into_iter().map(Spanned::into_inner).collect())
}

fn read_target(v: Option<Value>, header: &Span, r: &mut Reader) -> Option<PathBuf> {
    let missing = "missing target in [[mount]]: expected the absolute path to mount on inside the container, e.g. target = \"/data\"";
    let v = r.required(v, header, missing);
    let target = r.absolute_path(v, "mount target")?;
    if target
        .get_ref()
        .components()
        .any(|c| c == Component::ParentDir)
    {
        let msg = format!(
            "mount target {:?} must not contain \"..\" components",
            target.get_ref()
        );
        r.report(target.span(), msg);
        return None;
    }
    Some(target.into_inner())
}
