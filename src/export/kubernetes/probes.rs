//! `[health]` and `start_timeout` as a container's startup, readiness and
//! liveness probes.

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::export::quantity::seconds;
use crate::unit::{HealthSpec, Lifecycle, OnUnhealthy, Probe as Check, ServiceType, Unit};

/// The three probes of a container; any may be absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Probes {
    pub startup: Option<Probe>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
}

/// The probes for `unit`, and what of its readiness they cannot express.
pub fn probes(unit: &Unit, w: &mut Vec<String>) -> Probes {
    let lifecycle = &unit.service.lifecycle;
    let Some(health) = &unit.health else {
        if lifecycle.kind == ServiceType::Notify {
            w.push("type = \"notify\" (READY=1) is not expressed: without a [health] check the pod is ready once it runs".into());
        }
        return Probes::default();
    };
    let base = handler(&health.probe);
    let timeout = Some(seconds(health.timeout, 1));
    let retries = i32::try_from(health.retries).unwrap_or(i32::MAX);
    // The startup probe covers sup's start: probes every start_interval, for as
    // long as sup waits (start_timeout) or ignores failures (start_period).
    let start_every = seconds(health.start_interval, 1);
    let window = lifecycle
        .start_timeout
        .unwrap_or(Lifecycle::DEFAULT_START_TIMEOUT)
        .max(health.start_period);
    let startup = Probe {
        period_seconds: Some(start_every),
        timeout_seconds: timeout,
        failure_threshold: Some(ceil_div(seconds(window, 1), start_every).max(retries)),
        ..base.clone()
    };
    let steady = Probe {
        period_seconds: Some(seconds(health.interval, 1)),
        timeout_seconds: timeout,
        failure_threshold: Some(retries),
        ..base
    };
    let liveness = match health.on_unhealthy {
        OnUnhealthy::Restart => Some(steady.clone()),
        OnUnhealthy::Stop => {
            w.push("on_unhealthy = \"stop\" is not expressed: the pod is only marked not ready (no livenessProbe)".into());
            None
        }
        OnUnhealthy::None => None,
    };
    Probes {
        startup: Some(startup),
        readiness: Some(steady),
        liveness,
    }
}

/// The port a health check talks to, if it is a network check.
pub fn port(health: &HealthSpec) -> Option<u16> {
    match &health.probe {
        Check::Tcp(addr) | Check::Http { addr, .. } => Some(addr.port()),
        Check::Exec(_) => None,
    }
}

/// The check itself. sup probes from inside the container's network namespace;
/// the kubelet probes the pod's IP, the same namespace from outside, so the
/// port carries over (a service listening on 127.0.0.1 only would not answer).
fn handler(check: &Check) -> Probe {
    match check {
        Check::Exec(argv) => Probe {
            exec: Some(ExecAction {
                command: Some(argv.clone()),
            }),
            ..Probe::default()
        },
        Check::Tcp(addr) => Probe {
            tcp_socket: Some(TCPSocketAction {
                host: None,
                port: IntOrString::Int(i32::from(addr.port())),
            }),
            ..Probe::default()
        },
        // The URL's host is an IP address or localhost (sup checks it), so no Host
        // header is needed: the kubelet's default is the pod's IP.
        Check::Http { addr, path, .. } => Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.clone()),
                port: IntOrString::Int(i32::from(addr.port())),
                scheme: Some("HTTP".into()),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        },
    }
}

/// `a / b` rounded up, for positive `b` (i32::div_ceil is unstable).
fn ceil_div(a: i32, b: i32) -> i32 {
    a.saturating_add(b - 1) / b.max(1)
}
