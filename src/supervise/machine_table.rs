//! The whole transition table, tested: every phase × every event, against a grid a
//! reader can check by eye. Rows are the phase before, columns the event; a cell is
//! the phase after, then (after `:`) the actions in order: `S` spawn, `t` stop
//! signal, `k` kill everything, `x` kill a stray spawn, `R` release the cgroup, `P`
//! run the stop-post hooks, `F`/`f` the process failed for good / will be restarted.
//!
//! The sample service is a `notify` service with a 5 s watchdog and a 20 s start
//! timeout, restarted on failure. The sample machine in each row is what that phase
//! looks like in a real run: a unit in Waiting, Spawning, Starting, Running or
//! Restarting is wanted up; one in Stopping or Cleaning was stopped by the operator.
//! `Spawned` and `SpawnFailed` carry the current attempt; `Spawned` reports pid 8,
//! `Exited` the main pid 7 with exit code 1; `Timer` fires after every deadline.

use super::*;
use crate::supervise::test_service;
use crate::unit::{OnUnhealthy, ServiceType};

const TABLE: &str = "
            Start      Stop        Restart     ResetFailed DepsReady   DepsDown    Spawned     SpawnFailed Exited       Timer        ReqFailed   KillNow     Ready      Watchdog   Extend     Unhealthy   PostDone
Inactive    Waiting    Inactive    Waiting     Inactive    Inactive    Inactive    Inactive:x  Inactive    Inactive     Inactive     Inactive    Inactive    Inactive   Inactive   Inactive   Inactive    Inactive
Waiting     Waiting    Inactive:R  Waiting     Waiting     Spawning:S  Waiting     Waiting:x   Waiting     Waiting      Waiting      Failed:R    Waiting     Waiting    Waiting    Waiting    Waiting     Waiting
Spawning    Spawning   Spawning    Spawning    Spawning    Spawning    Spawning    Starting    Restarting:f Spawning    Spawning     Spawning    Spawning    Spawning   Spawning   Spawning   Spawning    Spawning
Starting    Starting   Starting    Stopping:t  Starting    Starting    Starting    Starting:x  Starting    Restarting:kf Stopping:t  Stopping:t  Starting:k  Running    Starting   Starting   Stopping:t  Starting
Running     Running    Running     Stopping:t  Running     Running     Running     Running:x   Running     Restarting:kf Stopping:k  Stopping:t  Running:k   Running    Running    Running    Stopping:t  Running
Stopping    Stopping   Stopping    Stopping    Stopping    Stopping    Stopping    Stopping:x  Stopping    Inactive:kR  Stopping:k   Stopping    Stopping:k  Stopping   Stopping   Stopping   Stopping    Stopping
Cleaning    Cleaning   Cleaning    Cleaning    Cleaning    Cleaning    Cleaning    Cleaning:x  Cleaning    Cleaning     Inactive:kR  Cleaning    Cleaning:k  Cleaning   Cleaning   Cleaning   Cleaning    Inactive:R
Restarting  Waiting    Inactive:R  Waiting     Restarting  Restarting  Restarting  Restarting:x Restarting Restarting   Waiting      Failed:R    Restarting  Restarting Restarting Restarting Restarting  Restarting
Exited      Waiting    Exited      Waiting     Exited      Exited      Exited      Exited:x    Exited      Exited       Exited       Exited      Exited      Exited     Exited     Exited     Exited      Exited
Failed      Waiting    Failed      Waiting     Inactive    Failed      Failed      Failed:x    Failed      Failed       Failed       Failed      Failed      Failed     Failed     Failed     Failed      Failed
";

/// The sample service of the table.
fn service() -> Service {
    let mut svc = test_service();
    svc.lifecycle.kind = ServiceType::Notify;
    svc.lifecycle.watchdog = Some(Duration::from_secs(5));
    svc.lifecycle.start_timeout = Some(Duration::from_secs(20));
    svc
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Inactive => "Inactive",
        Phase::Waiting => "Waiting",
        Phase::Spawning { .. } => "Spawning",
        Phase::Starting { .. } => "Starting",
        Phase::Running { .. } => "Running",
        Phase::Stopping { .. } => "Stopping",
        Phase::Cleaning { .. } => "Cleaning",
        Phase::Restarting { .. } => "Restarting",
        Phase::Exited => "Exited",
        Phase::Failed(_) => "Failed",
    }
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::Start => "Start",
        Event::Stop => "Stop",
        Event::Restart => "Restart",
        Event::ResetFailed => "ResetFailed",
        Event::DependenciesReady => "DepsReady",
        Event::DependentsDown => "DepsDown",
        Event::Spawned { .. } => "Spawned",
        Event::SpawnFailed { .. } => "SpawnFailed",
        Event::Exited { .. } => "Exited",
        Event::Timer => "Timer",
        Event::RequirementFailed { .. } => "ReqFailed",
        Event::KillNow => "KillNow",
        Event::Ready => "Ready",
        Event::WatchdogPing => "Watchdog",
        Event::ExtendStart(_) => "Extend",
        Event::Unhealthy(_) => "Unhealthy",
        Event::StopPostDone { .. } => "PostDone",
    }
}

fn action_code(a: &Action) -> char {
    match a {
        Action::Spawn { .. } => 'S',
        Action::StopSignal { .. } => 't',
        Action::Kill { .. } => 'k',
        Action::KillStray { .. } => 'x',
        Action::ReleaseCgroup => 'R',
        Action::RunStopPost { .. } => 'P',
        Action::Failed { for_good: true, .. } => 'F',
        Action::Failed {
            for_good: false, ..
        } => 'f',
    }
}

/// A machine in `phase` as it is found in a real run (see the module comment).
fn machine_in(phase: Phase, base: Now) -> Machine {
    let mut m = Machine::new(base);
    m.want_up = matches!(
        phase,
        Phase::Waiting
            | Phase::Spawning { .. }
            | Phase::Starting { .. }
            | Phase::Running { .. }
            | Phase::Restarting { .. }
    );
    m.attempt = 3;
    m.phase = phase;
    m
}

fn sample_phases(base: Now) -> Vec<Phase> {
    vec![
        Phase::Inactive,
        Phase::Waiting,
        Phase::Spawning {
            early_exits: Vec::new(),
            ready_early: false,
        },
        Phase::Starting {
            pid: 7,
            started: base.mono,
            deadline: Some(base.mono + Duration::from_secs(20)),
        },
        Phase::Running {
            pid: 7,
            started: base.mono,
            watchdog: Some(base.mono + Duration::from_secs(5)),
        },
        Phase::Stopping {
            pid: 7,
            deadline: Some(base.mono + Duration::from_secs(10)),
            then: AfterStop::Rest,
        },
        Phase::Cleaning {
            deadline: base.mono + Duration::from_secs(10),
            then: AfterStop::Rest,
        },
        Phase::Restarting {
            at: base.mono + Duration::from_millis(100),
            at_wall: base.wall,
        },
        Phase::Exited,
        Phase::Failed(Failure::Exit(ExitStatus::Code(1))),
    ]
}

fn sample_events() -> Vec<Event> {
    vec![
        Event::Start,
        Event::Stop,
        Event::Restart,
        Event::ResetFailed,
        Event::DependenciesReady,
        Event::DependentsDown,
        Event::Spawned { attempt: 3, pid: 8 },
        Event::SpawnFailed {
            attempt: 3,
            start_pre: false,
        },
        Event::Exited {
            attempt: 3,
            pid: 7,
            status: ExitStatus::Code(1),
            oom_killed: false,
        },
        Event::Timer,
        Event::RequirementFailed { unit: "db".into() },
        Event::KillNow,
        Event::Ready,
        Event::WatchdogPing,
        Event::ExtendStart(Duration::from_secs(60)),
        Event::Unhealthy(OnUnhealthy::Restart),
        Event::StopPostDone { attempt: 3 },
    ]
}

#[test]
fn every_phase_and_event_follows_the_table() {
    let svc = service();
    let base = Now::read();
    // Late enough for every deadline of the sample phases.
    let late = base.plus(Duration::from_secs(3600));
    let mut lines = TABLE.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    let events = sample_events();
    let names: Vec<&str> = events.iter().map(event_name).collect();
    assert_eq!(header, names, "table columns = every event, in order");
    let phases = sample_phases(base);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), phases.len(), "table rows = every phase");
    let mut wrong = Vec::new();
    for (phase, row) in phases.into_iter().zip(&rows) {
        assert_eq!(row[0], phase_name(&phase), "row order");
        assert_eq!(row.len(), events.len() + 1, "row {}", row[0]);
        for (event, want) in events.iter().zip(&row[1..]) {
            let mut m = machine_in(phase.clone(), base);
            let actions = m.handle(event.clone(), late, &svc);
            let codes: String = actions.iter().map(action_code).collect();
            let got = if codes.is_empty() {
                phase_name(m.phase()).to_string()
            } else {
                format!("{}:{codes}", phase_name(m.phase()))
            };
            if got != *want {
                wrong.push(format!(
                    "{} + {}: table says {want}, machine did {got}",
                    row[0],
                    event_name(event)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn signals_go_to_the_right_group() {
    let svc = test_service();
    let base = Now::read();
    let mut m = machine_in(
        Phase::Running {
            pid: 7,
            started: base.mono,
            watchdog: None,
        },
        base,
    );
    // A stale spawn's process is killed by its own pid, never the running one's.
    assert_eq!(
        m.handle(Event::Spawned { attempt: 2, pid: 8 }, base, &svc),
        vec![Action::KillStray { pgid: 8 }]
    );
    assert_eq!(m.pid(), Some(7));
    // Another pid's exit (a spawn helper) changes nothing.
    let other = Event::Exited {
        attempt: 3,
        pid: 99,
        status: ExitStatus::Code(0),
        oom_killed: false,
    };
    assert!(m.handle(other, base, &svc).is_empty());
    assert_eq!(m.pid(), Some(7));
    // The same pid in an earlier attempt is another process (pids wrap): its exit
    // must not end this one.
    let stale = Event::Exited {
        attempt: 2,
        pid: 7,
        status: ExitStatus::Code(0),
        oom_killed: false,
    };
    assert!(m.handle(stale, base, &svc).is_empty());
    assert_eq!(m.state(), State::Running);
}
