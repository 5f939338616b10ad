//! The test harness of the integration test targets (`harness = false`, through
//! `libtest-mimic`, which keeps libtest's command line: filters, `--ignored`,
//! `--list`, `--test-threads`). A test that cannot run here — it needs root, or qemu
//! and a kernel — is reported as *ignored*, never as passed, and a note on stderr
//! says why. With `SUP_TEST_STRICT=1` (tests/run.sh sets it when run as root, so
//! CI does) such a test fails instead: CI must run every test.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

/// Why a test cannot run on this machine, or `None` when it can.
pub type Gate = fn() -> Option<String>;

/// Tests that run as any user (their units declare no namespaces).
pub fn anywhere() -> Option<String> {
    None
}

/// Tests that create namespaces, cgroups and mounts, or switch users.
pub fn root() -> Option<String> {
    let uid = nix::unistd::geteuid();
    (!uid.is_root()).then(|| format!("needs root (running as uid {uid})"))
}

pub fn strict() -> bool {
    std::env::var_os("SUP_TEST_STRICT").is_some_and(|v| v == "1")
}

/// One test: `run` panics to fail, as a `#[test]` function would.
pub fn trial(name: &str, gate: Gate, run: fn()) -> (Trial, Option<String>) {
    let blocked = gate();
    let trial = match (&blocked, strict()) {
        (Some(why), true) => {
            let msg = format!("cannot run here ({why}) and SUP_TEST_STRICT=1 is set");
            Trial::test(name, move || Err(Failed::from(msg)))
        }
        (blocked, _) => Trial::test(name, move || {
            run();
            Ok(())
        })
        .with_ignored_flag(blocked.is_some()),
    };
    (trial, blocked)
}

/// `trials![gate => [test_fn, ...], ...]`: the trials for these functions, named
/// after them, each behind its gate.
macro_rules! trials {
    ($($gate:expr => [$($test:ident),+ $(,)?]),+ $(,)?) => {
        vec![$($($crate::common::harness::trial(stringify!($test), $gate, $test)),+),+]
    };
}
pub(crate) use trials;

/// Run the tests as libtest would, sorted by name; say on stderr why any are ignored.
pub fn main(trials: Vec<(Trial, Option<String>)>) -> ExitCode {
    let args = Arguments::from_args();
    let mut reasons: Vec<String> = trials.iter().filter_map(|(_, r)| r.clone()).collect();
    let mut tests: Vec<Trial> = trials.into_iter().map(|(t, _)| t).collect();
    tests.sort_by(|a, b| a.name().cmp(b.name()));
    if !args.list && !reasons.is_empty() && !strict() {
        let count = reasons.len();
        reasons.sort();
        reasons.dedup();
        eprintln!(
            "note: {count} of {} tests cannot run here and are ignored: {}",
            tests.len(),
            reasons.join("; ")
        );
    }
    libtest_mimic::run(&args, tests).exit_code()
}
