//! A unit's pod: its container (command, environment, security context,
//! resources, probes), the init containers of `exec_start_pre`, and volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::probes;
use crate::export::Host;
use crate::export::quantity::{k8s_bytes, millicores, seconds, weight_millicores};
use crate::unit::{MountKind, Namespace, NetworkMode, ProtectSystem, Unit};

/// What the pod is built from besides the unit.
pub struct Ctx<'a> {
    pub unit: &'a Unit,
    pub host: &'a Host,
    /// The DNS-1123 name of the unit's objects.
    pub name: String,
    pub image: String,
    /// The ConfigMap holding its environment, if it has one.
    pub env_config_map: Option<String>,
    /// The Secret holding its credentials, if it has any.
    pub secret: Option<String>,
}

/// The pod spec, and its volumes that hold state that must outlive the pod (a
/// StatefulSet's volumeClaimTemplates).
pub struct Pod {
    pub spec: PodSpec,
    pub persistent: Vec<Persistent>,
}

/// A volume whose contents sup keeps on the host.
pub struct Persistent {
    pub volume: String,
    /// What it is under sup, for the warning: "bind /srv/data from the host".
    pub what: String,
}

pub fn pod(ctx: &Ctx, w: &mut Vec<String>) -> Pod {
    let unit = ctx.unit;
    let (volumes, mounts, persistent) = volumes(ctx, w);
    let security = security_context(unit, w);
    let mut env = Vec::new();
    if ctx.secret.is_some() {
        env.push(EnvVar {
            name: "CREDENTIALS_DIRECTORY".into(),
            value: Some(credentials_dir(unit)),
            value_from: None,
        });
    }
    let env_from = ctx.env_config_map.as_ref().map(|name| {
        vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: name.clone(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]
    });
    let (command, args) = command(unit);
    let base = Container {
        image: Some(ctx.image.clone()),
        env: Some(env).filter(|e| !e.is_empty()),
        env_from,
        working_dir: unit
            .service
            .workdir
            .as_ref()
            .map(|d| d.display().to_string()),
        security_context: Some(security),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        ..Container::default()
    };
    let init: Vec<Container> = unit
        .service
        .lifecycle
        .exec_start_pre
        .iter()
        .enumerate()
        .map(|(i, argv)| Container {
            name: format!("exec-start-pre-{i}"),
            command: Some(argv.clone()),
            ..base.clone()
        })
        .collect();
    let probes = probes::probes(unit, w);
    let container = Container {
        name: ctx.name.clone(),
        command,
        args,
        ports: Some(ports(unit)).filter(|p| !p.is_empty()),
        resources: resources(unit, w),
        startup_probe: probes.startup,
        readiness_probe: probes.readiness,
        liveness_probe: probes.liveness,
        ..base
    };
    let spec = PodSpec {
        containers: vec![container],
        init_containers: Some(init.clone()).filter(|i| !i.is_empty()),
        volumes: Some(volumes).filter(|v| !v.is_empty()),
        hostname: unit
            .container
            .hostname
            .as_deref()
            .map(crate::export::names::dns_label),
        host_users: unit
            .container
            .namespaces
            .contains(&Namespace::User)
            .then_some(false),
        // sup's init reaps orphans as the container's PID 1; with a shared
        // process namespace the pod's pause process does that.
        share_process_namespace: unit.container.init.then_some(true),
        security_context: pod_security(ctx, w),
        termination_grace_period_seconds: Some(i64::from(seconds(unit.service.stop_timeout, 0))),
        ..PodSpec::default()
    };
    if !init.is_empty() {
        w.push("exec_start_pre runs as initContainers, in containers of their own: only what they write to the pod's volumes reaches the service".into());
    }
    if !unit.container.rlimits.is_empty() {
        w.push("rlimits are not expressed: a pod takes the container runtime's limits".into());
    }
    if !unit.container.protection.devices.is_empty() {
        w.push("[[device]] host devices are not expressed".into());
    }
    if unit.container.domainname.is_some() {
        w.push("domainname is not expressed".into());
    }
    if unit.service.stop_signal != nix::sys::signal::Signal::SIGTERM {
        w.push(format!(
            "stop_signal = {} is not expressed: the kubelet sends SIGTERM (set STOPSIGNAL in the image)",
            unit.service.stop_signal.as_str()
        ));
    }
    Pod { spec, persistent }
}

/// Where sup mounts the credentials, which the service finds in
/// `$CREDENTIALS_DIRECTORY`.
pub fn credentials_dir(unit: &Unit) -> String {
    crate::spawn::credentials::container_dir(&unit.name)
        .to_string_lossy()
        .into_owned()
}

/// `command` replaces the image's Entrypoint and `args` its Cmd, as sup's `exec`
/// and `args` do (docs/units.md, `image`).
fn command(unit: &Unit) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let exec = Some(unit.service.exec.clone()).filter(|e| !e.is_empty());
    let args = unit
        .container
        .image
        .as_ref()
        .map(|i| i.args.clone())
        .filter(|a| !a.is_empty());
    (exec, args)
}

/// The ports it listens on, as far as the unit says: published container ports
/// and its health check's. Informational in Kubernetes, but named in Services.
pub fn ports(unit: &Unit) -> Vec<ContainerPort> {
    let mut seen = BTreeMap::new();
    if unit.network.mode == NetworkMode::Bridge {
        for p in &unit.network.ports {
            seen.insert((p.container_port, p.protocol.as_str().to_uppercase()), ());
        }
    }
    if let Some(port) = unit.health.as_ref().and_then(probes::port) {
        seen.insert((port, "TCP".into()), ());
    }
    seen.into_keys()
        .map(|(port, protocol)| ContainerPort {
            container_port: i32::from(port),
            name: Some(format!("{}-{port}", protocol.to_lowercase())),
            protocol: Some(protocol),
            ..ContainerPort::default()
        })
        .collect()
}

fn resources(unit: &Unit, w: &mut Vec<String>) -> Option<ResourceRequirements> {
    let r = &unit.resources;
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if let Some(bytes) = r.memory_max {
        limits.insert("memory".to_owned(), Quantity(k8s_bytes(bytes)));
    }
    if let Some(bytes) = r.memory_high {
        w.push(
            "memory_high (a throttle) becomes the memory request (what the scheduler reserves)"
                .into(),
        );
        requests.insert("memory".to_owned(), Quantity(k8s_bytes(bytes)));
    }
    let limit = r.cpu_max.map(millicores);
    if let Some(m) = limit {
        limits.insert("cpu".to_owned(), Quantity(format!("{m}m")));
    }
    if let Some(weight) = r.cpu_weight {
        // A request above the limit is invalid; the limit bounds it.
        let m = weight_millicores(weight).min(limit.unwrap_or(u64::MAX));
        requests.insert("cpu".to_owned(), Quantity(format!("{m}m")));
    }
    if limits.is_empty() && requests.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        limits: Some(limits).filter(|l| !l.is_empty()),
        requests: Some(requests).filter(|r| !r.is_empty()),
        ..ResourceRequirements::default()
    })
}

fn security_context(unit: &Unit, w: &mut Vec<String>) -> SecurityContext {
    let c = &unit.container;
    let add: Vec<String> = c
        .capabilities
        .iter()
        .map(|cap| cap.name().trim_start_matches("CAP_").to_owned())
        .collect();
    let sys_admin = add.iter().any(|c| c == "SYS_ADMIN");
    // The API server refuses allowPrivilegeEscalation=false next to SYS_ADMIN.
    let escalation = match (c.no_new_privs, sys_admin) {
        (true, true) => {
            w.push("no_new_privs with CAP_SYS_ADMIN cannot be expressed (the API refuses allowPrivilegeEscalation=false with it)".into());
            None
        }
        (no_new_privs, _) => Some(!no_new_privs),
    };
    let strict = c.protection.protect_system == ProtectSystem::Strict;
    let image_or_rootfs = c.image.is_some() || c.rootfs.is_some();
    if !c.readonly_root
        && !strict
        && !image_or_rootfs
        && c.protection.protect_system != ProtectSystem::No
    {
        w.push("protect_system = \"yes\"/\"full\" is not expressed: the root file system is writable (readOnlyRootFilesystem is all or nothing)".into());
    }
    SecurityContext {
        capabilities: Some(Capabilities {
            add: Some(add).filter(|a| !a.is_empty()),
            drop: Some(vec!["ALL".into()]),
        }),
        allow_privilege_escalation: escalation,
        read_only_root_filesystem: Some(c.readonly_root || strict),
        seccomp_profile: Some(SeccompProfile {
            type_: if c.seccomp {
                "RuntimeDefault"
            } else {
                "Unconfined"
            }
            .into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// runAsUser/runAsGroup/supplementalGroups, resolved offline where possible.
fn pod_security(ctx: &Ctx, w: &mut Vec<String>) -> Option<PodSecurityContext> {
    let unit = ctx.unit;
    let s = &unit.service;
    let mut sc = PodSecurityContext::default();
    if let Some(user) = &s.user {
        match ctx.host.uid(unit, user) {
            Some(uid) => {
                sc.run_as_user = Some(i64::from(uid));
                sc.run_as_non_root = (uid != 0).then_some(true);
            }
            None => w.push(format!(
                "user {user:?} cannot be resolved offline: set runAsUser by hand"
            )),
        }
    }
    let gid = match (&s.group, &s.user) {
        (Some(group), _) => {
            let gid = ctx.host.gid(unit, group);
            if gid.is_none() {
                w.push(format!(
                    "group {group:?} cannot be resolved offline: set runAsGroup by hand"
                ));
            }
            gid
        }
        (None, Some(user)) => ctx.host.primary_gid(unit, user),
        (None, None) => None,
    };
    sc.run_as_group = gid.map(i64::from);
    let mut extra = Vec::new();
    for g in &s.supplementary_groups {
        match ctx.host.gid(unit, g) {
            Some(gid) => extra.push(i64::from(gid)),
            None => w.push(format!(
                "supplementary group {g:?} cannot be resolved offline"
            )),
        }
    }
    sc.supplemental_groups = Some(extra).filter(|e| !e.is_empty());
    (sc != PodSecurityContext::default()).then_some(sc)
}

type Volumes = (Vec<Volume>, Vec<VolumeMount>, Vec<Persistent>);

/// tmpfs mounts and a private /tmp as memory-backed emptyDirs; writable binds
/// and `writable_paths` as persistent volumes (state sup keeps on the host);
/// credentials as a Secret volume. Read-only host binds have no counterpart.
fn volumes(ctx: &Ctx, w: &mut Vec<String>) -> Volumes {
    let unit = ctx.unit;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut persistent = Vec::new();
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let memory = |size: Option<u64>| EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: size.map(|s| Quantity(k8s_bytes(s))),
    };
    let c = &unit.container;
    for (i, m) in c.mounts.iter().enumerate() {
        let target = m.target.display().to_string();
        match &m.kind {
            MountKind::Tmpfs { size, .. } => {
                let name = format!("tmpfs-{i}");
                volumes.push(Volume {
                    name: name.clone(),
                    empty_dir: Some(memory(*size)),
                    ..Volume::default()
                });
                mounts.push(mount(&name, &target, m.readonly));
            }
            MountKind::Bind { source, .. } if !m.readonly => {
                let name = format!("data-{i}");
                mounts.push(mount(&name, &target, false));
                persistent.push(Persistent {
                    volume: name,
                    what: format!("bind {} from the host at {target}", source.display()),
                });
            }
            MountKind::Bind { source, .. } => w.push(format!(
                "bind {} from the host at {target} cannot be expressed; put the files in the image or a ConfigMap",
                source.display()
            )),
            _ => {}
        }
    }
    let has_tmp = c.mounts.iter().any(|m| m.target.as_os_str() == "/tmp");
    if c.protection.private_tmp && !has_tmp {
        volumes.push(Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        mounts.push(mount("tmp", "/tmp", false));
    }
    for (i, path) in c.protection.writable_paths.iter().enumerate() {
        let name = format!("state-{i}");
        let path = path.display().to_string();
        mounts.push(mount(&name, &path, false));
        persistent.push(Persistent {
            volume: name,
            what: format!("writable path {path}"),
        });
    }
    if let Some(secret) = &ctx.secret {
        volumes.push(Volume {
            name: "credentials".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("credentials", &credentials_dir(unit), true));
    }
    (volumes, mounts, persistent)
}
