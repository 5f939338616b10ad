//! `[container]` -> [`ContainerSpec`]; id maps and `[[mount]]` entries have
//! their own modules. Checks that involve what is created or joined use
//! [`NsContext`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use toml::Spanned;

use super::reader::{Reader, Span, Table, Value};
use super::{id_map, limits, mount, protection};
use crate::unit::isolation::{ContainerSpec, Namespace, Propagation, Rlimit, RlimitResource};
use crate::unit::names::Named;
use crate::unit::values::{self, CAPABILITY_EXPECTED, RLIMIT_EXPECTED};

pub(super) const CONTAINER_KEYS: &[&str] = &[
    "namespaces",
    "join",
    "hostname",
    "domainname",
    "uid_map",
    "gid_map",
    "userns_base",
    "rootfs",
    "readonly_root",
    "root_propagation",
    "init",
    "capabilities",
    "no_new_privs",
    "seccomp",
    "rlimits",
    "oom_score_adj",
    "protect_system",
    "writable_paths",
    "private_tmp",
    "private_devices",
    "protect_kernel",
    "protect_cgroups",
    "control_socket",
    "ambient_capabilities",
    "image",
    "args",
];

/// Longest hostname/domainname accepted (`__NEW_UTS_LEN`).
const MAX_UTS_NAME_LEN: usize = 64;

/// Everything the checks need to know about what is created or joined.
pub(super) struct NsContext {
    pub(super) created: BTreeSet<Namespace>,
    joined: BTreeSet<Namespace>,
}

impl NsContext {
    /// `None` when `ns` is created; otherwise what to tell the user.
    pub(super) fn require(&self, ns: Namespace, what: &str) -> Option<String> {
        if self.created.contains(&ns) {
            return None;
        }
        let name = ns.as_str();
        let why = if self.joined.contains(&ns) {
            format!("the {name} namespace is joined, not created")
        } else {
            format!("namespaces does not include {name:?}")
        };
        Some(format!(
            "{what} needs a {name} namespace created by the unit, but {why}: add {name:?} to [container] namespaces"
        ))
    }

    /// Reports `what` at `span` unless `ns` is created.
    pub(super) fn check(&self, ns: Namespace, what: &str, span: Span, r: &mut Reader) {
        if let Some(msg) = self.require(ns, what) {
            r.report(span, msg);
        }
    }
}

/// Builds the container spec from `[container]` and the top-level `mount`
/// array; either may be absent.
pub(super) fn read_container(
    container: Option<Value>,
    mounts: Option<Value>,
    devices: Option<Value>,
    own_net: bool,
    r: &mut Reader,
) -> ContainerSpec {
    let defaults = ContainerSpec::default();
    // Absent (or not a table, already reported): as if empty.
    let mut t = r
        .table(container, CONTAINER_KEYS)
        .unwrap_or_else(Table::empty);
    let header = t.span();

    let namespaces = t.take("namespaces");
    let explicit_namespaces = namespaces.is_some();
    let listed = read_namespaces(namespaces, r);
    let user_entry = listed.as_ref().and_then(|list| {
        let user = list.iter().find(|ns| *ns.get_ref() == Namespace::User);
        user.map(Spanned::span)
    });
    let created: BTreeSet<Namespace> = match listed {
        Some(list) => list.into_iter().map(Spanned::into_inner).collect(),
        None => defaults.namespaces.clone(),
    };
    let join = read_join(t.take("join"), &created, explicit_namespaces, r);
    let ns = NsContext {
        joined: join.keys().copied().collect(),
        created,
    };

    let maps = id_map::Written {
        base: t.take("userns_base"),
        uid_map: t.take("uid_map"),
        gid_map: t.take("gid_map"),
    };
    let (uid_map, gid_map) = id_map::read_id_maps(&ns, user_entry.unwrap_or(header), maps, r);

    let hostname = read_uts_name("hostname", t.take("hostname"), &ns, r);
    let domainname = read_uts_name("domainname", t.take("domainname"), &ns, r);

    let rootfs = t.take("rootfs");
    if let Some(root) = &rootfs {
        ns.check(Namespace::Mnt, "rootfs", root.span(), r);
    }
    let rootfs = r.absolute_path(rootfs, "rootfs").map(Spanned::into_inner);
    let image = read_image(t.take("image"), t.take("args"), &ns, rootfs.is_some(), r);
    let readonly_root = r.boolean(t.take("readonly_root")).is_some_and(|ro| {
        if *ro.get_ref() {
            ns.check(Namespace::Mnt, "readonly_root = true", ro.span(), r);
        }
        ro.into_inner()
    });
    let propagation = t.take("root_propagation");
    let propagation = r.scalar(propagation, &expected_name::<Propagation>(), values::named);
    let root_propagation = propagation.map_or(Propagation::Private, |p| {
        ns.check(Namespace::Mnt, "root_propagation", p.span(), r);
        p.into_inner()
    });
    // Without its own network namespace a unit shares the host's interfaces, where
    // raw and packet sockets reach the host's traffic: net_raw is then not in the
    // default set (listing it in `capabilities` keeps it).
    let capabilities = read_capabilities(t.take("capabilities"), r).unwrap_or_else(|| {
        let mut caps: BTreeSet<_> = ContainerSpec::DEFAULT_CAPABILITIES.into_iter().collect();
        if !ns.created.contains(&Namespace::Net) && !own_net {
            caps.remove(&crate::unit::Capability(caps::Capability::CAP_NET_RAW));
        }
        caps
    });
    let flag = |r: &mut Reader, v, default| r.boolean(v).map_or(default, Spanned::into_inner);
    let init = flag(r, t.take("init"), defaults.init);
    let no_new_privs = flag(r, t.take("no_new_privs"), defaults.no_new_privs);
    let seccomp = flag(r, t.take("seccomp"), defaults.seccomp);
    let rlimits = read_rlimits(t.take("rlimits"), r);
    let oom_score_adj = r.int_in(t.take("oom_score_adj"), -1000, 1000, "oom_score_adj");
    let mounts = mount::read_mounts(mounts, &ns, r);
    let protection = protection::read_protection(
        &mut t,
        devices,
        &ns,
        rootfs.is_some() || image.is_some(),
        &capabilities,
        r,
    );

    ContainerSpec {
        namespaces: ns.created,
        join,
        hostname,
        domainname,
        uid_map,
        gid_map,
        rootfs,
        readonly_root,
        root_propagation,
        init,
        capabilities,
        no_new_privs,
        seccomp,
        rlimits,
        oom_score_adj: oom_score_adj.map(|n| *n.get_ref() as i32),
        mounts,
        protection,
        image,
    }
}

/// `args` (in `[container]` or `[service]`): strings, NUL-free like `exec`.
pub(super) fn read_args(v: Value, r: &mut Reader) -> Vec<String> {
    let Some(list) = r.array(Some(v), "an array of strings", "args", limits::ARGS) else {
        return Vec::new();
    };
    let args = r.each(list.into_inner(), |r, a| r.string(Some(a)));
    for arg in args.iter().filter(|a| a.get_ref().contains('\0')) {
        r.report(arg.span(), "args must not contain NUL bytes");
    }
    args.into_iter().map(Spanned::into_inner).collect()
}

/// `image` (a reference, checked against the store when supd loads the unit)
/// and `args`, which only an image unit takes.
fn read_image(
    image: Option<Value>,
    args: Option<Value>,
    ns: &NsContext,
    has_rootfs: bool,
    r: &mut Reader,
) -> Option<crate::unit::ImageSpec> {
    let args_span = args.as_ref().map(Spanned::span);
    let args = args.map_or_else(Vec::new, |v| read_args(v, r));
    let Some(image) = r.string(image) else {
        if let Some(span) = args_span {
            r.report(
                span,
                "args needs `image` in [container]: without an image, write the arguments in exec",
            );
        }
        return None;
    };
    let span = image.span();
    let reference = image.into_inner();
    if reference.is_empty()
        || reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        r.report(
            span.clone(),
            format!("image {reference:?} must be NAME:TAG, NAME@sha256:HEX or sha256:HEX"),
        );
    }
    ns.check(Namespace::Mnt, "image", span.clone(), r);
    if has_rootfs {
        r.report(
            span,
            "image and rootfs are both set: an image unit's root is the image, remove rootfs",
        );
    }
    Some(crate::unit::ImageSpec {
        reference,
        args,
        stop_signal_written: false,
        resolved: None,
    })
}

/// "one of ..." for type errors on a named value.
pub(super) fn expected_name<T: Named>() -> String {
    format!("one of {}", T::expected())
}

/// The listed namespaces (`None` when the key is absent or not an array);
/// unknown names are reported and left out.
fn read_namespaces(v: Option<Value>, r: &mut Reader) -> Option<Vec<Spanned<Namespace>>> {
    let list = r.array(v, "an array of namespace names", "namespaces", limits::LIST)?;
    let expected = expected_name::<Namespace>();
    Some(r.each(list.into_inner(), |r, v| {
        r.scalar(Some(v), &expected, values::named)
    }))
}

fn read_join(
    v: Option<Value>,
    created: &BTreeSet<Namespace>,
    explicit_namespaces: bool,
    r: &mut Reader,
) -> BTreeMap<Namespace, PathBuf> {
    let mut join = BTreeMap::new();
    for (key, path) in r.entries(v, "join", limits::LIST).unwrap_or_default() {
        let ns = match Namespace::parse(key.get_ref()) {
            Ok(ns) => ns,
            Err(e) => {
                r.report(key.span(), format!("{e} in [container.join]"));
                continue;
            }
        };
        if created.contains(&ns) {
            let name = ns.as_str();
            let how = if explicit_namespaces {
                format!("remove {name:?} from namespaces or from [container.join]")
            } else {
                let defaults: Vec<&str> = Namespace::DEFAULTS.iter().map(|n| n.as_str()).collect();
                format!(
                    "it is created by default (namespaces defaults to [{}]); write namespaces without {name:?}",
                    defaults.join(", ")
                )
            };
            r.report(
                key.span(),
                format!("the {name} namespace cannot be both created and joined: {how}"),
            );
        }
        let what = format!("[container.join] {} path", ns.as_str());
        let Some(path) = r.absolute_path(Some(path), &what) else {
            continue;
        };
        join.insert(ns, path.into_inner());
    }
    join
}

/// hostname/domainname: RFC 1123 characters, 1..=64 bytes, UTS created.
fn read_uts_name(key: &str, v: Option<Value>, ns: &NsContext, r: &mut Reader) -> Option<String> {
    let raw = r.string(v)?;
    let name = raw.get_ref();
    ns.check(Namespace::Uts, key, raw.span(), r);
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if name.is_empty() || name.len() > MAX_UTS_NAME_LEN || !ok_chars {
        r.report(
            raw.span(),
            format!(
                "invalid {key} {name:?}: expected 1 to {MAX_UTS_NAME_LEN} characters from A-Z, a-z, 0-9, '-' and '.'"
            ),
        );
        return None;
    }
    Some(raw.into_inner())
}

fn read_capabilities(
    v: Option<Value>,
    r: &mut Reader,
) -> Option<BTreeSet<crate::unit::Capability>> {
    let expected = "an array of capability names";
    let list = r.array(v, expected, "capabilities", limits::LIST)?;
    let caps = r.each(list.into_inner(), |r, c| {
        r.scalar(Some(c), CAPABILITY_EXPECTED, values::capability)
    });
    Some(caps.into_iter().map(Spanned::into_inner).collect())
}

/// `[container.rlimits]`: each value is `1024`, `"unlimited"` or
/// `[soft, hard]`, with `soft <= hard`.
fn read_rlimits(v: Option<Value>, r: &mut Reader) -> BTreeMap<RlimitResource, Rlimit> {
    let mut rlimits = BTreeMap::new();
    for (name, value) in r.entries(v, "rlimits", limits::LIST).unwrap_or_default() {
        let resource = RlimitResource::parse(name.get_ref());
        let limit = read_rlimit(value, r);
        match (resource, limit) {
            (Ok(resource), Some(limit)) => {
                rlimits.insert(resource, limit);
            }
            (Err(msg), _) => r.report(name.span(), msg),
            (Ok(_), None) => {}
        }
    }
    rlimits
}

fn read_rlimit(v: Value, r: &mut Reader) -> Option<Rlimit> {
    let span = v.span();
    if !v.get_ref().is_array() {
        let n = r.scalar(Some(v), RLIMIT_EXPECTED, values::rlimit_bound)?;
        let n = n.into_inner();
        return Some(Rlimit { soft: n, hard: n });
    }
    let pair = r.array(Some(v), RLIMIT_EXPECTED, "an rlimit pair", limits::LIST)?;
    if pair.get_ref().len() != 2 {
        let message = format!(
            "an rlimit pair needs exactly two values [soft, hard]; expected {RLIMIT_EXPECTED}"
        );
        r.report(span, message);
        return None;
    }
    let bounds = r.each(pair.into_inner(), |r, b| {
        r.scalar(
            Some(b),
            r#"a non-negative integer or "unlimited""#,
            values::rlimit_bound,
        )
    });
    // A bad bound was reported; there is nothing to compare.
    let [soft, hard] = bounds.as_slice() else {
        return None;
    };
    let (soft, hard) = (*soft.get_ref(), *hard.get_ref());
    if soft > hard {
        let show = |n: u64| {
            if n == Rlimit::UNLIMITED {
                "unlimited".to_owned()
            } else {
                n.to_string()
            }
        };
        r.report(
            span,
            format!(
                "soft limit {} is above hard limit {}: the soft limit must be <= the hard limit",
                show(soft),
                show(hard)
            ),
        );
        return None;
    }
    Some(Rlimit { soft, hard })
}
