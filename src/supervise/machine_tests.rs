//! Scenario tests of the unit state machine: sequences of events as they happen in
//! real runs (crash loops, stops, OOM kills). The exhaustive phase × event table is
//! in `machine_table.rs`.

use super::*;
use crate::supervise::test_service;
use crate::unit::RestartPolicy;

fn t0() -> Now {
    Now::read()
}

/// Feed one event; shorthand for the tests.
fn ev(m: &mut Machine, e: Event, now: Now, svc: &Service) -> Vec<Action> {
    m.handle(e, now, svc)
}

/// An exit of the current attempt's process `pid`.
fn exit(m: &Machine, pid: i32, status: ExitStatus) -> Event {
    Event::Exited {
        attempt: m.attempt(),
        pid,
        status,
        oom_killed: false,
    }
}

/// Feed an exit of the current attempt: `(pid, status)`.
fn ev_exit(
    m: &mut Machine,
    (pid, status): (i32, ExitStatus),
    now: Now,
    svc: &Service,
) -> Vec<Action> {
    let e = exit(m, pid, status);
    m.handle(e, now, svc)
}

fn spawned(m: &Machine, pid: i32) -> Event {
    Event::Spawned {
        attempt: m.attempt(),
        pid,
    }
}

fn running(m: &mut Machine, now: Now, svc: &Service, pid: i32) {
    ev(m, Event::Start, now, svc);
    let acts = ev(m, Event::DependenciesReady, now, svc);
    assert_eq!(
        acts,
        vec![Action::Spawn {
            attempt: m.attempt()
        }]
    );
    let e = spawned(m, pid);
    ev(m, e, now, svc);
    assert_eq!(m.pid(), Some(pid));
}

#[test]
fn backoff_doubles_and_caps() {
    let ms = Duration::from_millis;
    assert_eq!(backoff_delay(ms(100), ms(1000), 0), ms(100));
    assert_eq!(backoff_delay(ms(100), ms(1000), 1), ms(200));
    assert_eq!(backoff_delay(ms(100), ms(1000), 3), ms(800));
    assert_eq!(backoff_delay(ms(100), ms(1000), 4), ms(1000));
    assert_eq!(backoff_delay(ms(100), ms(1000), 200), ms(1000));
}

#[test]
fn crash_restarts_with_growing_delay_then_hits_start_limit() {
    let mut svc = test_service();
    svc.start_limit.burst = 3;
    svc.start_limit.interval = Duration::from_secs(60);
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 10);
    let mut t = now;
    let mut delays = Vec::new();
    for pid in 10..12 {
        t = t.plus(Duration::from_millis(5));
        ev_exit(&mut m, (pid, ExitStatus::Code(1)), t, &svc);
        let Phase::Restarting { at, .. } = *m.phase() else {
            panic!("expected restarting, got {:?}", m.phase())
        };
        assert_eq!(
            m.restarts() as i32,
            pid - 9,
            "the restart under way counts during its backoff"
        );
        delays.push(at - t.mono);
        t = Now {
            mono: at,
            wall: t.wall,
        };
        ev(&mut m, Event::Timer, t, &svc);
        assert!(matches!(
            ev(&mut m, Event::DependenciesReady, t, &svc)[..],
            [Action::Spawn { .. }]
        ));
        let e = spawned(&m, pid + 1);
        ev(&mut m, e, t, &svc);
    }
    assert_eq!(
        delays,
        vec![Duration::from_millis(100), Duration::from_millis(200)]
    );
    ev_exit(&mut m, (12, ExitStatus::Code(1)), t, &svc);
    let Phase::Restarting { at, .. } = *m.phase() else {
        panic!()
    };
    let t = Now {
        mono: at,
        wall: t.wall,
    };
    ev(&mut m, Event::Timer, t, &svc);
    assert_eq!(
        ev(&mut m, Event::DependenciesReady, t, &svc),
        vec![
            Action::Failed {
                for_good: true,
                exit_code: 1
            },
            Action::ReleaseCgroup
        ],
        "refused: the unit settles as failed (for on_failure) and gives up its cgroup"
    );
    assert_eq!(m.state(), State::Failed);
    assert_eq!(m.sub_state(&svc), "start-limit");
    assert_eq!(m.restarts(), 2, "the refused third restart did not happen");
    // The operator acts: a fresh budget.
    ev(&mut m, Event::Restart, t, &svc);
    assert!(matches!(
        ev(&mut m, Event::DependenciesReady, t, &svc)[..],
        [Action::Spawn { .. }]
    ));
    assert_eq!(m.restarts(), 0);
}

#[test]
fn backoff_resets_after_stable_uptime() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 1);
    ev_exit(&mut m, (1, ExitStatus::Code(1)), now, &svc);
    let t1 = now.plus(Duration::from_secs(1));
    ev(&mut m, Event::Timer, t1, &svc);
    ev(&mut m, Event::DependenciesReady, t1, &svc);
    let e = spawned(&m, 2);
    ev(&mut m, e, t1, &svc);
    let later = t1.plus(svc.restart_reset_after);
    ev_exit(&mut m, (2, ExitStatus::Code(1)), later, &svc);
    let Phase::Restarting { at, .. } = *m.phase() else {
        panic!()
    };
    assert_eq!(at - later.mono, svc.restart_delay);
}

#[test]
fn policies_decide_restart() {
    let now = t0();
    let cases = [
        (RestartPolicy::No, ExitStatus::Code(1), State::Failed),
        (RestartPolicy::No, ExitStatus::Code(0), State::Exited),
        (RestartPolicy::OnFailure, ExitStatus::Code(0), State::Exited),
        (
            RestartPolicy::OnFailure,
            ExitStatus::Code(3),
            State::Restarting,
        ),
        (
            RestartPolicy::OnFailure,
            ExitStatus::Signal(9),
            State::Restarting,
        ),
        (
            RestartPolicy::OnAbnormal,
            ExitStatus::Code(3),
            State::Failed,
        ),
        (
            RestartPolicy::OnAbnormal,
            ExitStatus::Signal(11),
            State::Restarting,
        ),
        (
            RestartPolicy::Always,
            ExitStatus::Code(0),
            State::Restarting,
        ),
    ];
    for (policy, status, want) in cases {
        let mut svc = test_service();
        svc.restart = policy;
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 5);
        ev_exit(&mut m, (5, status), now, &svc);
        assert_eq!(m.state(), want, "{policy:?} {status:?}");
    }
}

#[test]
fn oom_kill_explains_the_exit_and_follows_the_policy() {
    let mut svc = test_service();
    svc.restart = RestartPolicy::No;
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 5);
    let oom = |m: &Machine, pid| Event::Exited {
        attempt: m.attempt(),
        pid,
        status: ExitStatus::Signal(9),
        oom_killed: true,
    };
    let e = oom(&m, 5);
    ev(&mut m, e, now, &svc);
    assert_eq!(m.state(), State::Failed);
    assert_eq!(m.sub_state(&svc), "oom-killed");
    assert!(m.last_exit_oom());
    assert_eq!(m.oom_kills(), 1);
    svc.restart = RestartPolicy::OnFailure;
    running(&mut m, now, &svc, 6);
    let e = oom(&m, 6);
    ev(&mut m, e, now, &svc);
    assert_eq!(
        m.state(),
        State::Restarting,
        "an OOM kill is a failure for on-failure"
    );
    assert_eq!(m.oom_kills(), 2);
}

#[test]
fn success_exit_codes_count_as_success() {
    let mut svc = test_service();
    svc.success_exit_codes = vec![0, 42];
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 5);
    ev_exit(&mut m, (5, ExitStatus::Code(42)), now, &svc);
    assert_eq!(m.state(), State::Exited);
}

#[test]
fn stop_signals_then_kills_after_timeout() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 7);
    assert!(ev(&mut m, Event::Stop, now, &svc).is_empty());
    let acts = ev(&mut m, Event::DependentsDown, now, &svc);
    assert_eq!(
        acts[0],
        Action::StopSignal {
            pgid: 7,
            signal: Signal::SIGTERM
        }
    );
    assert_eq!(m.sub_state(&svc), "term");
    assert!(
        ev(&mut m, Event::Timer, now, &svc).is_empty(),
        "not yet due"
    );
    let due = now.plus(svc.stop_timeout);
    assert_eq!(
        ev(&mut m, Event::Timer, due, &svc),
        vec![Action::Kill { pgid: Some(7) }]
    );
    assert_eq!(m.deadline(), None);
    assert!(m.killed_at_stop_timeout(), "the escalation is remembered");
    let acts = ev_exit(&mut m, (7, ExitStatus::Signal(9)), due, &svc);
    assert_eq!(acts.last(), Some(&Action::ReleaseCgroup));
    assert_eq!(m.state(), State::Inactive);
    assert!(!m.want_up());
}

#[test]
fn operator_stop_never_restarts() {
    let mut svc = test_service();
    svc.restart = RestartPolicy::Always;
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 7);
    ev(&mut m, Event::Stop, now, &svc);
    ev(&mut m, Event::DependentsDown, now, &svc);
    ev_exit(&mut m, (7, ExitStatus::Signal(15)), now, &svc);
    assert_eq!(m.state(), State::Inactive);
}

#[test]
fn exit_seen_before_spawn_outcome_is_not_lost() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    ev(&mut m, Event::Start, now, &svc);
    ev(&mut m, Event::DependenciesReady, now, &svc);
    ev_exit(&mut m, (9, ExitStatus::Code(2)), now, &svc);
    let e = spawned(&m, 9);
    ev(&mut m, e, now, &svc);
    assert_eq!(m.state(), State::Restarting);
    assert_eq!(m.last_exit().map(|e| e.0), Some(ExitStatus::Code(2)));
}

#[test]
fn ready_seen_before_spawn_outcome_is_not_lost() {
    // A notify service's READY=1 and the helper's last report travel apart: the
    // READY may be handled first (seen with postgres under load).
    let mut svc = test_service();
    svc.lifecycle.kind = crate::unit::ServiceType::Notify;
    let now = t0();
    let mut m = Machine::new(now);
    ev(&mut m, Event::Start, now, &svc);
    ev(&mut m, Event::DependenciesReady, now, &svc);
    assert_eq!(ev(&mut m, Event::Ready, now, &svc), vec![]);
    let e = spawned(&m, 9);
    ev(&mut m, e, now, &svc);
    assert_eq!(m.state(), State::Running);
    // Without it, the same service waits for its READY.
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 9);
    assert_eq!(m.state(), State::Starting);
}

#[test]
fn spawn_error_follows_policy() {
    let mut svc = test_service();
    svc.restart = RestartPolicy::No;
    let now = t0();
    let mut m = Machine::new(now);
    ev(&mut m, Event::Start, now, &svc);
    ev(&mut m, Event::DependenciesReady, now, &svc);
    let attempt = m.attempt();
    ev(
        &mut m,
        Event::SpawnFailed {
            attempt,
            start_pre: false,
        },
        now,
        &svc,
    );
    assert_eq!(m.state(), State::Failed);
    assert_eq!(m.sub_state(&svc), "spawn-error");
}

#[test]
fn stale_spawn_outcomes_are_not_taken_for_the_current_attempt() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    ev(&mut m, Event::Start, now, &svc);
    ev(&mut m, Event::DependenciesReady, now, &svc);
    let stale = m.attempt().wrapping_sub(1);
    assert_eq!(
        ev(
            &mut m,
            Event::Spawned {
                attempt: stale,
                pid: 44
            },
            now,
            &svc
        ),
        vec![Action::KillStray { pgid: 44 }],
        "an unwanted process is killed, never adopted"
    );
    assert!(
        ev(
            &mut m,
            Event::SpawnFailed {
                attempt: stale,
                start_pre: false
            },
            now,
            &svc
        )
        .is_empty()
    );
    assert_eq!(m.state(), State::Starting);
}

#[test]
fn stop_while_spawning_stops_once_spawned() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    ev(&mut m, Event::Start, now, &svc);
    ev(&mut m, Event::DependenciesReady, now, &svc);
    ev(&mut m, Event::Stop, now, &svc);
    let e = spawned(&m, 4);
    let acts = ev(&mut m, e, now, &svc);
    assert_eq!(
        acts[0],
        Action::StopSignal {
            pgid: 4,
            signal: Signal::SIGTERM
        }
    );
    assert_eq!(m.state(), State::Stopping);
}

#[test]
fn restart_of_running_unit_stops_then_waits_to_start() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 4);
    ev(&mut m, Event::Restart, now, &svc);
    ev_exit(&mut m, (4, ExitStatus::Signal(15)), now, &svc);
    assert_eq!(m.state(), State::Starting);
    assert_eq!(m.sub_state(&svc), "waiting");
}

#[test]
fn requirement_failure_stops_and_fails() {
    let svc = test_service();
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 4);
    ev(
        &mut m,
        Event::RequirementFailed { unit: "db".into() },
        now,
        &svc,
    );
    ev_exit(&mut m, (4, ExitStatus::Signal(15)), now, &svc);
    assert_eq!(m.state(), State::Failed);
    assert_eq!(m.sub_state(&svc), "dependency");
    assert_eq!(
        m.phase(),
        &Phase::Failed(Failure::RequirementFailed { unit: "db".into() })
    );
}

#[test]
fn extreme_durations_never_panic() {
    let mut svc = test_service();
    svc.restart_delay = Duration::MAX;
    svc.restart_max_delay = Duration::MAX;
    svc.stop_timeout = Duration::MAX;
    svc.restart_reset_after = Duration::MAX;
    svc.start_limit.interval = Duration::MAX;
    let now = t0();
    let mut m = Machine::new(now);
    running(&mut m, now, &svc, 3);
    ev_exit(&mut m, (3, ExitStatus::Code(1)), now, &svc);
    assert!(m.deadline().is_some_and(|d| d > now.mono));
    running(&mut m, now, &svc, 4);
    ev(&mut m, Event::Stop, now, &svc);
    ev(&mut m, Event::DependentsDown, now, &svc);
    assert!(m.deadline().is_some_and(|d| d > now.mono));
}
