//! Supervision: the per-unit state machine (`machine`) and the fleet of units with
//! their dependencies (`fleet`). Both are pure: the daemon feeds them events and the
//! time, and carries out the `Action`s every call returns.

pub mod deadlines;
mod fleet;
mod graph;
pub mod health;
mod init_status;
pub mod machine;
mod reload;
mod time;
mod vocabulary;

pub use fleet::{Fleet, Slot, UnitAction};
pub use init_status::{decode_init_status, runs_under_init, service_status};
pub use machine::{
    Action, AfterStop, Event, ExitStatus, Failure, Machine, Phase, State, backoff_delay,
};
pub use reload::ReloadPlan;
pub use time::Now;

#[cfg(test)]
pub fn test_service() -> crate::unit::Service {
    use std::time::Duration;
    crate::unit::Service {
        exec: vec!["/bin/true".into()],
        env: Default::default(),
        workdir: None,
        user: None,
        group: None,
        restart: crate::unit::RestartPolicy::OnFailure,
        restart_delay: Duration::from_millis(100),
        restart_max_delay: Duration::from_secs(30),
        restart_reset_after: Duration::from_secs(10),
        start_limit: crate::unit::StartLimit {
            burst: 5,
            interval: Duration::from_secs(10),
        },
        stop_signal: nix::sys::signal::Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        success_exit_codes: vec![0],
        supplementary_groups: Vec::new(),
        umask: None,
        lifecycle: crate::unit::Lifecycle::default(),
        env_file: Vec::new(),
        credentials: Default::default(),
    }
}

#[cfg(test)]
mod fleet_tests;
