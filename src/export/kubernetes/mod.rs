//! Kubernetes: per unit a Deployment (a StatefulSet when it keeps state, a Job
//! when it is a oneshot), Services under its name and aliases, a ConfigMap for
//! its environment and a Secret for its credentials. Typed `k8s-openapi`
//! objects, one YAML document each.

mod pod;
mod probes;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, Secret, Service,
    ServicePort, ServiceSpec, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::dns_label;
use super::{Export, Host, Options, Warning, document, warnings};
use crate::unit::{Loaded, NetworkMode, RestartPolicy, ServiceType, Unit};

/// The label every object of a unit carries, and its pods are selected by.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Size of each volume claim made for a unit's state: the unit does not say.
pub const CLAIM_SIZE: &str = "1Gi";

/// Translates every unit of `loaded`. Fails only when two units (or aliases)
/// would get the same object name.
pub fn export(loaded: &Loaded, host: &Host, opts: &Options) -> Result<Export, String> {
    check_names(loaded)?;
    let defaults = warnings::default_unit();
    let mut out = Export::default();
    for unit in loaded.units.values() {
        let mut w = warnings::common(unit, defaults.as_ref());
        let mut text = String::new();
        for object in unit_objects(unit, host, opts, &mut w)? {
            text.push_str(&object);
        }
        out.files.push((unit.name.clone(), text));
        out.warnings.extend(w.into_iter().map(|message| Warning {
            unit: unit.name.clone(),
            message,
        }));
    }
    Ok(out)
}

/// Two units, or an alias and a unit, that map to one DNS name would make one
/// overwrite the other in the cluster.
fn check_names(loaded: &Loaded) -> Result<(), String> {
    // label -> (unit, what), the first to claim it.
    let mut seen: BTreeMap<String, (&str, String)> = BTreeMap::new();
    for unit in loaded.units.values() {
        let aliases = unit.network.aliases.iter().map(|a| (a, "alias "));
        for (name, what) in std::iter::once((&unit.name, "")).chain(aliases) {
            let label = dns_label(name);
            let this = format!("{what}{name:?} of unit {}", unit.name);
            match seen.get(&label) {
                // A unit's own alias that maps to its own name: one Service.
                Some((owner, _)) if *owner == unit.name => {}
                Some((_, other)) => {
                    return Err(format!(
                        "{other} and {this} both become the Kubernetes name {label:?}: rename one"
                    ));
                }
                None => {
                    seen.insert(label, (&unit.name, this));
                }
            }
        }
    }
    Ok(())
}

fn meta(name: &str, unit: &str, opts: &Options) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: opts.namespace.clone(),
        labels: Some(BTreeMap::from([
            (NAME_LABEL.to_owned(), unit.to_owned()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "supctl-export".to_owned(),
            ),
        ])),
        ..ObjectMeta::default()
    }
}

/// The image reference, behind `--registry`; a placeholder for units that run
/// host binaries or a rootfs directory, which have no image yet.
pub fn image(unit: &Unit, name: &str, opts: &Options, w: &mut Vec<String>) -> String {
    let prefix = opts.registry.as_deref().map(|r| r.trim_end_matches('/'));
    match (&unit.container.image, prefix) {
        (Some(spec), Some(prefix)) => format!("{prefix}/{}", spec.reference),
        (Some(spec), None) => spec.reference.clone(),
        (None, prefix) => {
            let image = format!("{}/{name}:latest", prefix.unwrap_or("registry.invalid"));
            let what = match (&unit.container.rootfs, unit.service.exec.first()) {
                (Some(root), _) => format!("the root file system {}", root.display()),
                (None, Some(program)) => format!("the host's {program}"),
                (None, None) => "host binaries".to_owned(),
            };
            w.push(format!(
                "has no image (it runs {what}): build one and push it as {image} (placeholder)"
            ));
            image
        }
    }
}

fn unit_objects(
    unit: &Unit,
    host: &Host,
    opts: &Options,
    w: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let name = dns_label(&unit.name);
    if name != unit.name {
        w.push(format!("named {name:?} in Kubernetes (DNS-1123)"));
    }
    let mut docs = Vec::new();
    let env = environment(unit, host, w);
    let env_config_map = (!env.is_empty()).then(|| format!("{name}-env"));
    if let Some(cm) = &env_config_map {
        docs.push(document(&ConfigMap {
            metadata: meta(cm, &name, opts),
            data: Some(env),
            ..ConfigMap::default()
        })?);
    }
    let creds = &unit.service.credentials;
    let secret = (!creds.is_empty()).then(|| format!("{name}-credentials"));
    if let Some(secret) = &secret {
        let files: Vec<String> = creds
            .iter()
            .map(|(k, path)| format!("--from-file={k}={}", path.display()))
            .collect();
        w.push(format!(
            "Secret {secret} is written with empty values (credential contents are never exported): fill it with `kubectl create secret generic {secret} {}`",
            files.join(" ")
        ));
        docs.push(document(&Secret {
            metadata: meta(secret, &name, opts),
            string_data: Some(creds.keys().map(|k| (k.clone(), String::new())).collect()),
            ..Secret::default()
        })?);
    }
    for service in services(unit, &name, opts, w) {
        docs.push(document(&service)?);
    }
    let ctx = pod::Ctx {
        unit,
        host,
        image: image(unit, &name, opts, w),
        name: name.clone(),
        env_config_map,
        secret,
    };
    docs.push(workload(&ctx, opts, w)?);
    dependencies(unit, w);
    Ok(docs)
}

/// `env_file`s in order, then `env` over them, as sup applies them.
pub fn environment(unit: &Unit, host: &Host, w: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for file in &unit.service.env_file {
        match host.env_files.get(&file.path) {
            Some(Ok(vars)) => env.extend(vars.iter().cloned()),
            Some(Err(why)) => w.push(format!(
                "env_file {} cannot be read ({why}); its variables are missing",
                file.path.display()
            )),
            None => w.push(format!(
                "env_file {} was not read; its variables are missing",
                file.path.display()
            )),
        }
    }
    env.extend(unit.service.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

fn workload(ctx: &pod::Ctx, opts: &Options, w: &mut Vec<String>) -> Result<String, String> {
    let unit = ctx.unit;
    let name = &ctx.name;
    let pod::Pod {
        mut spec,
        persistent,
    } = pod::pod(ctx, w);
    let labels = BTreeMap::from([(NAME_LABEL.to_owned(), name.clone())]);
    let selector = LabelSelector {
        match_labels: Some(labels.clone()),
        ..LabelSelector::default()
    };
    let restart = unit.service.restart;
    if unit.service.lifecycle.kind == ServiceType::Oneshot {
        spec.restart_policy = Some(
            if restart == RestartPolicy::No {
                "Never"
            } else {
                "OnFailure"
            }
            .into(),
        );
        // A Job has no claim templates: its state lives as long as the pod.
        for p in &persistent {
            w.push(format!(
                "{} is an emptyDir: a Job keeps no state (share it through a volume of your own)",
                p.what
            ));
            spec.volumes.get_or_insert_with(Vec::new).push(Volume {
                name: p.volume.clone(),
                empty_dir: Some(Default::default()),
                ..Volume::default()
            });
        }
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..ObjectMeta::default()
            }),
            spec: Some(spec),
        };
        return document(&Job {
            metadata: meta(name, name, opts),
            spec: Some(JobSpec {
                template,
                backoff_limit: (restart == RestartPolicy::No).then_some(0),
                // A oneshot's start_timeout bounds the whole job, as under sup.
                active_deadline_seconds: unit
                    .service
                    .lifecycle
                    .start_timeout
                    .map(|t| i64::from(crate::export::quantity::seconds(t, 1))),
                ..JobSpec::default()
            }),
            ..Job::default()
        });
    }
    if restart != RestartPolicy::Always {
        w.push(format!(
            "restart = \"{}\" is not expressed: a Deployment or StatefulSet restarts its pod after every exit",
            crate::unit::names::Named::name(restart)
        ));
    }
    spec.restart_policy = Some("Always".into());
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    };
    if persistent.is_empty() {
        return document(&Deployment {
            metadata: meta(name, name, opts),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector,
                template,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        });
    }
    for p in &persistent {
        w.push(format!(
            "{} (state kept on the host) becomes the {CLAIM_SIZE} PersistentVolumeClaim {} of a StatefulSet: size it and copy the host's data into it",
            p.what, p.volume
        ));
    }
    let claims = persistent
        .iter()
        .map(|p| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(p.volume.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(CLAIM_SIZE.into()),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        })
        .collect();
    document(&StatefulSet {
        metadata: meta(name, name, opts),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            selector,
            service_name: Some(name.clone()),
            template,
            volume_claim_templates: Some(claims),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

/// A headless Service under the unit's name and one per alias, so the names
/// units use on sup's bridges resolve to the pod (any port, like a bridge
/// address); a LoadBalancer Service for its published ports.
fn services(unit: &Unit, name: &str, opts: &Options, w: &mut Vec<String>) -> Vec<Service> {
    let net = &unit.network;
    let selector = BTreeMap::from([(NAME_LABEL.to_owned(), name.to_owned())]);
    match &net.mode {
        NetworkMode::Bridge => {}
        NetworkMode::Host => {
            w.push("runs in the host's network: the pod gets its own (no Service; hostNetwork is not set)".into());
            return Vec::new();
        }
        NetworkMode::None => {
            w.push("network mode \"none\" is not expressed: the pod has a network".into());
            return Vec::new();
        }
        NetworkMode::Unit(other) => {
            w.push(format!("shares {other}'s network namespace: not expressed (make it a container of {other}'s pod)"));
            return Vec::new();
        }
    }
    let isolated =
        net.networks.iter().any(|n| n != "default") || net.attached.iter().any(|n| n.internal);
    if isolated {
        w.push(format!(
            "networks {} are not expressed: every pod reaches every other (write NetworkPolicies)",
            net.networks.join(", ")
        ));
    }
    if net.ipv4.is_some() {
        w.push("ipv4 (a fixed address) is not expressed".into());
    }
    let listening: Vec<ServicePort> = pod::ports(unit)
        .into_iter()
        .map(|p| ServicePort {
            name: p.name,
            port: p.container_port,
            protocol: p.protocol,
            target_port: Some(IntOrString::Int(p.container_port)),
            ..ServicePort::default()
        })
        .collect();
    let mut out: Vec<Service> = Vec::new();
    let names = std::iter::once(unit.name.as_str()).chain(net.aliases.iter().map(String::as_str));
    for service_name in names {
        let label = dns_label(service_name);
        if out
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(label.as_str()))
        {
            continue;
        }
        if service_name != unit.name && label != service_name {
            w.push(format!(
                "alias {service_name:?} becomes the Service {label:?} (DNS-1123)"
            ));
        }
        out.push(Service {
            metadata: meta(&label, name, opts),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                selector: Some(selector.clone()),
                ports: Some(listening.clone()).filter(|p| !p.is_empty()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
    }
    if !net.ports.is_empty() {
        if net.ports.iter().any(|p| p.host_ip.is_some()) {
            w.push("the host address of published ports is not expressed: the LoadBalancer listens on all".into());
        }
        let ports = net
            .ports
            .iter()
            .map(|p| ServicePort {
                name: Some(format!("{}-{}", p.protocol.as_str(), p.host_port)),
                port: i32::from(p.host_port),
                protocol: Some(p.protocol.as_str().to_uppercase()),
                target_port: Some(IntOrString::Int(i32::from(p.container_port))),
                ..ServicePort::default()
            })
            .collect();
        out.push(Service {
            metadata: meta(&format!("{name}-published"), name, opts),
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                selector: Some(selector),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
    }
    out
}

/// `after`/`requires`: Kubernetes starts every object at once.
fn dependencies(unit: &Unit, w: &mut Vec<String>) {
    let mut order: Vec<&str> = unit
        .requires
        .iter()
        .chain(&unit.after)
        .map(String::as_str)
        .collect();
    order.sort_unstable();
    order.dedup();
    if !order.is_empty() {
        w.push(format!(
            "starts after {} under sup: not expressed (pods start together; clients must retry until the readiness probes pass)",
            order.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests;
