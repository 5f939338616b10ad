//! What an image's config gives a unit that runs from it, where the unit does
//! not say otherwise (Docker's merge, moby daemon/commit.go): the command
//! (`exec` replaces Entrypoint and Cmd; `args` replaces Cmd), Env by key,
//! WorkingDir, User (`user`, `uid`, `user:group`...; names are looked up in the
//! image's own /etc/passwd and /etc/group when the unit starts), StopSignal,
//! and Docker's Healthcheck as `[health]`. ExposedPorts are only shown. Pure.

use std::path::PathBuf;
use std::time::Duration;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use crate::unit::{HealthSpec, IdSpec, OnUnhealthy, Probe, Unit};

/// The fields of an image config a unit takes defaults from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Healthcheck>,
}

/// Docker's Healthcheck (not in the OCI spec, so not in oci-spec's types).
/// Durations are integer nanoseconds; 0 means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub start_interval: u64,
    #[serde(default)]
    pub retries: u32,
}

impl ImageDefaults {
    /// From the parsed config, and its raw bytes for the Healthcheck.
    pub fn from_config(config: &ImageConfiguration, raw: &[u8]) -> ImageDefaults {
        #[derive(Deserialize)]
        struct Raw {
            config: Option<RawConfig>,
        }
        #[derive(Deserialize)]
        struct RawConfig {
            #[serde(rename = "Healthcheck")]
            healthcheck: Option<Healthcheck>,
        }
        let healthcheck = serde_json::from_slice::<Raw>(raw)
            .ok()
            .and_then(|r| r.config)
            .and_then(|c| c.healthcheck);
        let Some(c) = config.config() else {
            return ImageDefaults {
                healthcheck,
                ..ImageDefaults::default()
            };
        };
        let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
        exposed_ports.sort();
        ImageDefaults {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
            exposed_ports,
            stop_signal: c.stop_signal().clone().filter(|s| !s.is_empty()),
            healthcheck,
        }
    }
}

/// Docker's healthcheck defaults (docker/cli, moby daemon/health.go).
const DOCKER_INTERVAL: Duration = Duration::from_secs(30);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(30);

/// Fills in what `unit` leaves to its image. Errors say what is missing.
pub fn apply(unit: &mut Unit, d: &ImageDefaults) -> Result<(), String> {
    let Some(spec) = unit.container.image.as_ref() else {
        return Ok(());
    };
    let args = spec.args.clone();
    let stop_signal_written = spec.stop_signal_written;
    let svc = &mut unit.service;
    svc.exec = if svc.exec.is_empty() {
        let tail = if args.is_empty() { &d.cmd } else { &args };
        d.entrypoint.iter().chain(tail).cloned().collect()
    } else {
        svc.exec.iter().chain(&args).cloned().collect()
    };
    match svc.exec.first() {
        None => {
            return Err(format!(
                "image {:?} has no Entrypoint or Cmd: write exec = [...] in [service]",
                spec.reference
            ));
        }
        Some(p) if p.is_empty() => {
            return Err("the image's command starts with an empty program".into());
        }
        Some(_) => {}
    }
    for kv in &d.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !k.is_empty() && !svc.env.contains_key(k) {
            svc.env.insert(k.to_owned(), v.to_owned());
        }
    }
    if svc.workdir.is_none()
        && let Some(w) = &d.working_dir
    {
        // Docker takes a relative WorkingDir from `/`.
        svc.workdir = Some(PathBuf::from("/").join(w));
    }
    if svc.user.is_none()
        && svc.group.is_none()
        && let Some(u) = &d.user
    {
        let (user, group) = match u.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (u.as_str(), None),
        };
        svc.user = Some(id_spec(user));
        svc.group = group.filter(|g| !g.is_empty()).map(id_spec);
    }
    if !stop_signal_written && let Some(s) = &d.stop_signal {
        svc.stop_signal = crate::unit::values::parse_signal(s)
            .map_err(|e| format!("the image's StopSignal: {e}; set stop_signal in [service]"))?;
    }
    if unit.health.is_none()
        && let Some(h) = &d.healthcheck
    {
        unit.health = health(h);
    }
    Ok(())
}

/// Numeric parts are ids even when the image's passwd lacks them (Docker's rule).
fn id_spec(s: &str) -> IdSpec {
    s.parse()
        .map_or_else(|_| IdSpec::Name(s.to_owned()), IdSpec::Id)
}

/// `["CMD", ...]` runs the command, `["CMD-SHELL", cmd]` runs it with /bin/sh;
/// `[]` and `["NONE"]` mean no check. Like Docker's, it does not delay readiness.
pub fn health(h: &Healthcheck) -> Option<HealthSpec> {
    let argv: Vec<String> = match h.test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((kind, [cmd])) if kind == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
        }
        _ => return None,
    };
    let nanos = |n: u64, default: Duration| {
        if n == 0 {
            default
        } else {
            Duration::from_nanos(n)
        }
    };
    let interval = nanos(h.interval, DOCKER_INTERVAL);
    Some(HealthSpec {
        probe: Probe::Exec(argv),
        interval,
        start_interval: nanos(h.start_interval, interval),
        timeout: nanos(h.timeout, DOCKER_TIMEOUT),
        retries: if h.retries == 0 {
            HealthSpec::DEFAULT_RETRIES
        } else {
            h.retries
        },
        start_period: Duration::from_nanos(h.start_period),
        on_unhealthy: OnUnhealthy::Restart,
        ready_on_healthy: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(text: &str) -> Unit {
        crate::unit::parse_unit("u", std::path::Path::new("/u.toml"), text)
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn defaults() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            env: vec![
                "PATH=/usr/bin:/bin".into(),
                "MODE=image".into(),
                "EMPTY".into(),
            ],
            working_dir: Some("srv".into()),
            user: Some("app:1000".into()),
            exposed_ports: vec!["80/tcp".into()],
            stop_signal: Some("SIGQUIT".into()),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "test -e /ok".into()],
                interval: 2_000_000_000,
                ..Healthcheck::default()
            }),
        }
    }

    #[test]
    fn the_unit_overrides_what_it_writes() {
        let base = "[container]\nimage = \"app:1\"\n";
        // (unit text, exec, MODE, workdir, user, stop signal, health probe)
        type Case<'a> = (
            String,
            Vec<&'a str>,
            &'a str,
            &'a str,
            IdSpec,
            &'a str,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                base.to_owned(),
                vec!["/bin/app", "--serve"],
                "image",
                "/srv",
                IdSpec::Name("app".into()),
                "SIGQUIT",
                true,
            ),
            (
                format!("{base}args = [\"--once\", \"x\"]\n"),
                vec!["/bin/app", "--once", "x"],
                "image",
                "/srv",
                IdSpec::Name("app".into()),
                "SIGQUIT",
                true,
            ),
            (
                format!(
                    "{base}args = [\"-v\"]\n[service]\nexec = [\"/bin/other\"]\nenv = {{ MODE = \"unit\" }}\nworkdir = \"/w\"\nuser = 7\nstop_signal = \"SIGTERM\"\n[health]\nexec = [\"/bin/true\"]\n"
                ),
                vec!["/bin/other", "-v"],
                "unit",
                "/w",
                IdSpec::Id(7),
                "SIGTERM",
                false,
            ),
        ];
        for (text, exec, mode, workdir, user, signal, from_image) in cases {
            let mut u = unit(&text);
            apply(&mut u, &defaults()).unwrap();
            assert_eq!(u.service.exec, exec, "{text}");
            assert_eq!(u.service.env["MODE"], mode, "{text}");
            assert_eq!(u.service.env["EMPTY"], "", "{text}");
            assert_eq!(
                u.service.workdir.as_deref(),
                Some(std::path::Path::new(workdir)),
                "{text}"
            );
            assert_eq!(u.service.user, Some(user), "{text}");
            assert_eq!(u.service.stop_signal.as_str(), signal, "{text}");
            let probe = u.health.as_ref().map(|h| h.probe.clone());
            let image_probe =
                Probe::Exec(vec!["/bin/sh".into(), "-c".into(), "test -e /ok".into()]);
            assert_eq!(probe == Some(image_probe), from_image, "{text}");
        }
    }

    #[test]
    fn an_image_without_a_command_needs_exec() {
        let mut u = unit("[container]\nimage = \"app:1\"\n");
        let err = apply(&mut u, &ImageDefaults::default()).unwrap_err();
        assert!(err.contains("write exec"), "{err}");
    }

    #[test]
    fn healthchecks_map_to_probes() {
        let h = |test: &[&str]| Healthcheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            retries: 5,
            timeout: 1_000_000,
            ..Healthcheck::default()
        };
        assert_eq!(health(&h(&[])), None);
        assert_eq!(health(&h(&["NONE"])), None);
        assert_eq!(health(&h(&["CMD"])), None);
        let spec = health(&h(&["CMD", "/bin/check", "-q"])).unwrap();
        assert_eq!(
            spec.probe,
            Probe::Exec(vec!["/bin/check".into(), "-q".into()])
        );
        assert_eq!(
            (spec.interval, spec.timeout, spec.retries),
            (DOCKER_INTERVAL, Duration::from_millis(1), 5)
        );
        assert!(!spec.ready_on_healthy);
    }

    #[test]
    fn user_and_group_split_into_names_and_ids() {
        for (user, want_user, want_group) in [
            ("app", IdSpec::Name("app".into()), None),
            ("1000", IdSpec::Id(1000), None),
            (
                "app:staff",
                IdSpec::Name("app".into()),
                Some(IdSpec::Name("staff".into())),
            ),
            ("0:0", IdSpec::Id(0), Some(IdSpec::Id(0))),
        ] {
            let mut u = unit("[container]\nimage = \"app:1\"\n");
            let d = ImageDefaults {
                user: Some(user.into()),
                ..defaults()
            };
            apply(&mut u, &d).unwrap();
            assert_eq!(u.service.user, Some(want_user), "{user}");
            assert_eq!(u.service.group, want_group, "{user}");
        }
    }
}
