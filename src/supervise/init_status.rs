//! What sup's container init reports when its service ends, turned back into
//! what happened to the service: the one place that knows the init's encoding.

use super::ExitStatus;
use crate::unit::{ContainerSpec, Namespace};

/// Whether the unit's main process is the container init (own PID namespace).
pub fn runs_under_init(c: &ContainerSpec) -> bool {
    c.init && c.namespaces.contains(&Namespace::Pid)
}

/// The container init cannot die by the service's signal (a PID 1 cannot kill
/// itself), so it exits 128+N; turn that back into "killed by signal N" so restart
/// policies and status see what happened to the service.
pub fn decode_init_status(status: ExitStatus) -> ExitStatus {
    match status {
        ExitStatus::Code(c) if (129..=128 + 64).contains(&c) => ExitStatus::Signal(c - 128),
        other => other,
    }
}

/// The service's own status from its unit's main process's: decoded when that
/// process is sup's init.
pub fn service_status(c: &ContainerSpec, status: ExitStatus) -> ExitStatus {
    match runs_under_init(c) {
        true => decode_init_status(status),
        false => status,
    }
}
