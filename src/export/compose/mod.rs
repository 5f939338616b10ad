//! Compose: one file, a service per unit, typed with `docker-compose-types`.
//! Compose runs on one host like sup, so more carries over than to Kubernetes:
//! host binds, host networking, devices, ulimits, `depends_on` conditions.

use std::time::Duration;

use docker_compose_types::{
    AdvancedNetworkSettings, AdvancedNetworks, AdvancedSecrets, AdvancedVolumes, Compose,
    ComposeNetworks, ComposeSecret, ComposeSecrets, DependsCondition, DependsOnOptions, Deploy,
    Environment, Healthcheck, HealthcheckTest, Ipam, IpamConfig, Limits, MapOrEmpty,
    NetworkSettings, Networks, Ports, Resources, Secrets, Service, Services, SingleValue,
    StringOrList, TmpfsSettings, Ulimit, Ulimits, Volumes,
};

use super::names::compose_name;
use super::quantity::{compose_bytes, compose_duration, millicores};
use super::{Export, Host, Options, Warning, document, kubernetes, warnings};
use crate::unit::names::Named;
use crate::unit::{
    IdSpec, Loaded, MountKind, Namespace, NetworkMode, OnUnhealthy, Probe, ProtectSystem,
    RestartPolicy, Rlimit, RlimitResource, ServiceType, Unit,
};

/// The compose file for every unit of `loaded`, as one `compose` file.
pub fn export(loaded: &Loaded, host: &Host, opts: &Options) -> Result<Export, String> {
    let defaults = warnings::default_unit();
    let mut out = Export::default();
    let mut services = Vec::new();
    let mut secrets = Vec::new();
    for unit in loaded.units.values() {
        let mut w = warnings::common(unit, defaults.as_ref());
        let name = compose_name(&unit.name);
        if name != unit.name {
            w.push(format!("named {name:?} in compose"));
        }
        for (key, path) in &unit.service.credentials {
            let secret = format!("{name}-{key}");
            secrets.push((
                secret,
                Some(ComposeSecret::File(path.display().to_string())),
            ));
        }
        services.push((name, Some(service(unit, loaded, host, opts, &mut w))));
        out.warnings.extend(w.into_iter().map(|message| Warning {
            unit: unit.name.clone(),
            message,
        }));
    }
    let compose = Compose {
        services: Services(services.into_iter().collect()),
        networks: networks(loaded),
        secrets: (!secrets.is_empty()).then(|| ComposeSecrets(secrets.into_iter().collect())),
        ..Compose::default()
    };
    out.files.push(("compose".into(), document(&compose)?));
    Ok(out)
}

/// The networks the units attach to, with their subnets and `internal`.
fn networks(loaded: &Loaded) -> ComposeNetworks {
    let used = |net: &str| {
        loaded.units.values().any(|u| {
            u.network.mode == NetworkMode::Bridge && u.network.networks.iter().any(|n| n == net)
        })
    };
    ComposeNetworks(
        loaded
            .networks
            .values()
            .filter(|def| used(&def.name))
            .map(|def| {
                let settings = NetworkSettings {
                    internal: def.internal,
                    ipam: Some(Ipam {
                        driver: None,
                        config: vec![IpamConfig {
                            subnet: def.subnet.to_string(),
                            gateway: Some(def.gateway.to_string()),
                        }],
                    }),
                    ..NetworkSettings::default()
                };
                (def.name.clone(), MapOrEmpty::Map(settings))
            })
            .collect(),
    )
}

fn service(
    unit: &Unit,
    loaded: &Loaded,
    host: &Host,
    opts: &Options,
    w: &mut Vec<String>,
) -> Service {
    let s = &unit.service;
    let c = &unit.container;
    let mut env: Vec<(String, Option<SingleValue>)> = s
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Some(SingleValue::String(v.clone()))))
        .collect();
    if !s.credentials.is_empty() {
        let dir = crate::spawn::credentials::container_dir(&unit.name)
            .display()
            .to_string();
        env.push((
            "CREDENTIALS_DIRECTORY".into(),
            Some(SingleValue::String(dir)),
        ));
    }
    if s.env_file.iter().any(|f| f.optional) {
        w.push(
            "optional env_file (\"-PATH\") is not expressed: compose needs the file to exist"
                .into(),
        );
    }
    let _ = host;
    let mut svc = Service {
        image: Some(kubernetes::image(unit, &compose_name(&unit.name), opts, w)),
        entrypoint: Some(s.exec.clone())
            .filter(|e| !e.is_empty())
            .map(docker_compose_types::Entrypoint::List),
        command: c
            .image
            .as_ref()
            .map(|i| i.args.clone())
            .filter(|a| !a.is_empty())
            .map(docker_compose_types::Command::Args),
        environment: Environment::KvPair(env.into_iter().collect()),
        env_file: Some(StringOrList::List(
            s.env_file
                .iter()
                .map(|f| f.path.display().to_string())
                .collect(),
        ))
        .filter(|l| !matches!(l, StringOrList::List(v) if v.is_empty())),
        working_dir: s.workdir.as_ref().map(|d| d.display().to_string()),
        user: user(s.user.as_ref(), s.group.as_ref()),
        group_add: s.supplementary_groups.iter().map(group).collect(),
        hostname: c.hostname.clone(),
        domainname: c.domainname.clone(),
        init: c.init,
        read_only: c.readonly_root || c.protection.protect_system == ProtectSystem::Strict,
        cap_drop: vec!["ALL".into()],
        cap_add: c
            .capabilities
            .iter()
            .map(|cap| cap.name().trim_start_matches("CAP_").to_owned())
            .collect(),
        security_opt: security_opt(unit),
        stop_signal: Some(s.stop_signal.as_str().to_owned()),
        stop_grace_period: Some(compose_duration(s.stop_timeout)),
        restart: Some(restart(unit, w)),
        healthcheck: healthcheck(unit, w),
        deploy: deploy(unit, w),
        mem_reservation: unit.resources.memory_high.map(compose_bytes),
        ulimits: ulimits(unit, w),
        devices: c
            .protection
            .devices
            .iter()
            .map(|d| {
                let p = d.path.display();
                format!("{p}:{p}:{}", d.access)
            })
            .collect(),
        depends_on: depends_on(unit, loaded),
        secrets: secrets(unit),
        ..Service::default()
    };
    network(unit, &mut svc, w);
    volumes(unit, &mut svc, w);
    if c.namespaces.contains(&Namespace::User) {
        w.push("the user namespace is not expressed: use the daemon's userns-remap".into());
    }
    if !s.lifecycle.exec_start_pre.is_empty() {
        w.push(
            "exec_start_pre is not expressed: compose runs no command before the service".into(),
        );
    }
    if unit.resources.cpu_weight.is_some() {
        w.push("cpu_weight is not expressed".into());
    }
    if unit.health.is_none() && s.lifecycle.kind == ServiceType::Notify {
        w.push("type = \"notify\" (READY=1) is not expressed: without a [health] check the service is ready once it runs".into());
    }
    svc
}

fn user(user: Option<&IdSpec>, group: Option<&IdSpec>) -> Option<String> {
    let shown = |id: &IdSpec| match id {
        IdSpec::Name(n) => n.clone(),
        IdSpec::Id(i) => i.to_string(),
    };
    match (user, group) {
        (Some(u), Some(g)) => Some(format!("{}:{}", shown(u), shown(g))),
        (Some(u), None) => Some(shown(u)),
        // Without a user sup runs as root; a group alone needs one.
        (None, Some(g)) => Some(format!("0:{}", shown(g))),
        (None, None) => None,
    }
}

fn group(id: &IdSpec) -> docker_compose_types::Group {
    match id {
        IdSpec::Name(n) => docker_compose_types::Group::Named(n.clone()),
        IdSpec::Id(i) => docker_compose_types::Group::Gid(*i),
    }
}

fn security_opt(unit: &Unit) -> Vec<String> {
    let c = &unit.container;
    let mut opts = Vec::new();
    if c.no_new_privs {
        opts.push("no-new-privileges:true".to_owned());
    }
    if !c.seccomp {
        opts.push("seccomp:unconfined".to_owned());
    }
    opts
}

fn restart(unit: &Unit, w: &mut Vec<String>) -> String {
    let policy = unit.service.restart;
    if policy == RestartPolicy::OnAbnormal {
        w.push(
            "restart = \"on-abnormal\" becomes \"on-failure\" (compose has no signal-only policy)"
                .into(),
        );
    }
    match policy {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure | RestartPolicy::OnAbnormal => "on-failure",
        RestartPolicy::Always => "always",
    }
    .into()
}

/// Compose runs a command in the container: tcp and http checks become shell
/// one-liners that need `bash` or `curl` in the image.
fn healthcheck(unit: &Unit, w: &mut Vec<String>) -> Option<Healthcheck> {
    let h = unit.health.as_ref()?;
    let test = match &h.probe {
        Probe::Exec(argv) => std::iter::once("CMD".to_owned())
            .chain(argv.iter().cloned())
            .collect(),
        Probe::Tcp(addr) => {
            w.push(
                "the tcp health check runs bash's /dev/tcp in the container: the image needs bash"
                    .into(),
            );
            let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
            vec!["CMD".into(), "bash".into(), "-c".into(), script]
        }
        Probe::Http { addr, path, .. } => {
            w.push("the http health check runs curl in the container: the image needs curl".into());
            let url = format!("http://{addr}{path}");
            vec![
                "CMD".into(),
                "curl".into(),
                "-fsS".into(),
                "-o".into(),
                "/dev/null".into(),
                url,
            ]
        }
    };
    match h.on_unhealthy {
        OnUnhealthy::Restart => w.push("on_unhealthy = \"restart\" is not expressed: compose only marks the container unhealthy".into()),
        OnUnhealthy::Stop => w.push("on_unhealthy = \"stop\" is not expressed".into()),
        OnUnhealthy::None => {}
    }
    let d = |d: Duration| Some(compose_duration(d));
    Some(Healthcheck {
        test: Some(HealthcheckTest::Multiple(test)),
        interval: d(h.interval),
        timeout: d(h.timeout),
        retries: i64::from(h.retries),
        start_period: Some(h.start_period).filter(|p| !p.is_zero()).and_then(d),
        start_interval: d(h.start_interval),
        disable: false,
    })
}

fn deploy(unit: &Unit, _w: &mut [String]) -> Option<Deploy> {
    let r = &unit.resources;
    if r.memory_max.is_none() && r.cpu_max.is_none() {
        return None;
    }
    let cpus = r.cpu_max.map(|cpu| {
        let m = millicores(cpu);
        format!("{}.{:03}", m / 1000, m % 1000)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    });
    Some(Deploy {
        resources: Some(Resources {
            limits: Some(Limits {
                cpus,
                memory: r.memory_max.map(compose_bytes),
                devices: None,
            }),
            reservations: None,
        }),
        ..Deploy::default()
    })
}

fn ulimits(unit: &Unit, w: &mut Vec<String>) -> Ulimits {
    let value = |n: u64| i64::try_from(n).ok().filter(|_| n != Rlimit::UNLIMITED);
    let mut out = Vec::new();
    for (res, limit) in &unit.container.rlimits {
        match (res, value(limit.soft), value(limit.hard)) {
            (RlimitResource::As, _, _) | (_, None, _) | (_, _, None) => {
                w.push(format!("rlimit {} is not expressed", res.name()));
            }
            (_, Some(soft), Some(hard)) => {
                use docker_compose_types::StringOrUnsigned::Unsigned;
                let u = Ulimit::SoftHard {
                    soft: Unsigned(soft),
                    hard: Unsigned(hard),
                };
                out.push((res.name().to_owned(), u));
            }
        }
    }
    Ulimits(out.into_iter().collect())
}

/// `requires` must be up (healthy where it has a check, done for a oneshot);
/// `after` and `wants` only order, and may be missing.
fn depends_on(unit: &Unit, loaded: &Loaded) -> DependsOnOptions {
    let condition = |dep: &str| match loaded.units.get(dep) {
        Some(d) if d.service.lifecycle.kind == ServiceType::Oneshot => {
            DependsCondition::service_completed_successfully()
        }
        Some(d) if d.health.is_some() => DependsCondition::service_healthy(),
        _ => DependsCondition::service_started(),
    };
    let mut deps = Vec::new();
    for dep in &unit.requires {
        deps.push((compose_name(dep), condition(dep).with_required(true)));
    }
    for dep in unit.after.iter().chain(&unit.wants) {
        if !deps.iter().any(|(d, _)| *d == compose_name(dep)) {
            deps.push((compose_name(dep), condition(dep).with_required(false)));
        }
    }
    DependsOnOptions::Conditional(deps.into_iter().collect())
}

fn secrets(unit: &Unit) -> Option<Secrets> {
    let name = compose_name(&unit.name);
    let list: Vec<AdvancedSecrets> = unit
        .service
        .credentials
        .keys()
        .map(|key| AdvancedSecrets {
            source: format!("{name}-{key}"),
            target: Some(
                crate::spawn::credentials::container_dir(&unit.name)
                    .join(key)
                    .display()
                    .to_string(),
            ),
            mode: Some("0400".into()),
            ..AdvancedSecrets::default()
        })
        .collect();
    (!list.is_empty()).then_some(Secrets::Advanced(list))
}

fn network(unit: &Unit, svc: &mut Service, w: &mut Vec<String>) {
    let net = &unit.network;
    match &net.mode {
        NetworkMode::Host => svc.network_mode = Some("host".into()),
        NetworkMode::None => svc.network_mode = Some("none".into()),
        NetworkMode::Unit(other) => {
            svc.network_mode = Some(format!("service:{}", compose_name(other)))
        }
        NetworkMode::Bridge => {
            let settings = net.networks.iter().enumerate().map(|(i, n)| {
                let s = AdvancedNetworkSettings {
                    ipv4_address: net.ipv4.filter(|_| i == 0).map(|ip| ip.to_string()),
                    aliases: net.aliases.clone(),
                    ..AdvancedNetworkSettings::default()
                };
                (n.clone(), MapOrEmpty::Map(s))
            });
            svc.networks = Networks::Advanced(AdvancedNetworks(settings.collect()));
            svc.ports = Ports::Short(net.ports.iter().map(|p| p.to_string()).collect());
        }
    }
    if !net.ports.is_empty() && net.mode != NetworkMode::Bridge {
        w.push("published ports outside bridge mode are not expressed".into());
    }
}

/// Binds stay binds (compose runs on one host, like sup); tmpfs mounts and a
/// private /tmp stay tmpfs; `writable_paths` of a unit on the host's root are
/// the host's directories, bound at the same path.
fn volumes(unit: &Unit, svc: &mut Service, w: &mut Vec<String>) {
    let c = &unit.container;
    for m in &c.mounts {
        let target = m.target.display().to_string();
        match &m.kind {
            MountKind::Bind { source, .. } => {
                let ro = if m.readonly { ":ro" } else { "" };
                svc.volumes.push(Volumes::Simple(format!(
                    "{}:{target}{ro}",
                    source.display()
                )));
            }
            MountKind::Tmpfs { size, .. } => svc.volumes.push(Volumes::Advanced(AdvancedVolumes {
                source: None,
                target,
                _type: "tmpfs".into(),
                read_only: m.readonly,
                bind: None,
                volume: None,
                tmpfs: size.map(|size| TmpfsSettings { size }),
            })),
            _ => {}
        }
    }
    let has_tmp = c.mounts.iter().any(|m| m.target.as_os_str() == "/tmp");
    if c.protection.private_tmp && !has_tmp {
        svc.tmpfs = Some(docker_compose_types::Tmpfs::List(vec!["/tmp".into()]));
    }
    let on_host_root = c.image.is_none() && c.rootfs.is_none();
    for path in &c.protection.writable_paths {
        let p = path.display();
        if on_host_root {
            svc.volumes.push(Volumes::Simple(format!("{p}:{p}")));
        } else {
            w.push(format!(
                "writable path {p} is not expressed: declare a volume for it"
            ));
        }
    }
}

#[cfg(test)]
mod tests;
