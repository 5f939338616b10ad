//! Issue 10, point 5: the control socket holds nothing without bound. Silent clients
//! are dropped, followers that do not read never hold supd back, connections are
//! capped, and a flood under a low descriptor limit leaves supd working once it
//! ends. supd raises its own soft descriptor limit; services get 1024.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::probe::*;

const SLEEPER: &str = "[service]\nexec = [\"/bin/sleep\", \"100000\"]\nstop_timeout = \"2s\"\n";

/// A unit printing numbered lines as fast as supd takes them, with a small log on
/// disk.
const LOUD: &str = r#"[service]
exec = ["/bin/sh", "-c", "i=0; while :; do seq $i $((i + 4999)); i=$((i + 5000)); sleep 0.05; done"]
stop_timeout = "2s"
[logs]
max_size = "1M"
max_files = 1
"#;

fn supd_pid(sup: &Sup) -> i32 {
    sup.child.as_ref().expect("supd running").id() as i32
}

fn connect(sup: &Sup) -> UnixStream {
    UnixStream::connect(sup.state_dir().join("control.sock")).expect("connect")
}

fn follow_request(unit: &str) -> String {
    format!("{{\"v\":1,\"cmd\":\"logs\",\"unit\":\"{unit}\",\"lines\":0,\"follow\":true}}\n")
}

/// Everything supd sends on `stream` until it closes it, within `timeout`.
fn read_to_close(stream: &UnixStream, timeout: Duration) -> String {
    read_all_to_close(std::slice::from_ref(stream), timeout).remove(0)
}

/// Everything supd sends on each of `streams` until it closes them, all within
/// `timeout`.
fn read_all_to_close(streams: &[UnixStream], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    streams
        .iter()
        .enumerate()
        .map(|(i, stream)| {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("read timeout");
            let mut text = String::new();
            BufReader::new(stream)
                .read_to_string(&mut text)
                .unwrap_or_else(|e| {
                    panic!("supd kept connection {i} open for over {timeout:?}: {e}")
                });
            text
        })
        .collect()
}

/// The soft descriptor limit of the test process goes up to its hard limit: these
/// tests hold hundreds of client sockets at once, next to the other tests.
fn more_descriptors() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// `supctl status` answers (successfully) within `within`.
fn status_answers(sup: &Sup, within: Duration) {
    let t0 = Instant::now();
    let out = sup.supctl_within(&["status"], PATIENCE);
    assert!(out.status.success(), "status: {}", stderr(&out));
    assert!(t0.elapsed() < within, "status took {:?}", t0.elapsed());
}

pub fn silent_clients_are_dropped_after_the_request_timeout() {
    more_descriptors();
    let sup = Sup::start(&[("svc", SLEEPER)]);
    sup.wait_state("svc", "running");
    let base = fd_count(supd_pid(&sup));
    let t0 = Instant::now();
    let silent: Vec<UnixStream> = (0..100).map(|_| connect(&sup)).collect();
    // They hold connections (accepted, or waiting to be): status is not held up.
    status_answers(&sup, Duration::from_secs(2));
    for reply in read_all_to_close(&silent, Duration::from_secs(20)) {
        assert!(
            reply.contains("\"code\":\"timeout\"") && reply.contains("within 5s"),
            "{reply}"
        );
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(15),
        "dropped after {took:?}, not after the 5 s request timeout"
    );
    let after = settle(PATIENCE, || fd_count(supd_pid(&sup)), |n| *n <= base);
    assert!(after <= base, "{after} descriptors, {base} before");
}

pub fn followers_that_never_read_neither_block_status_nor_stay() {
    more_descriptors();
    let sup = Sup::start(&[("loud", LOUD)]);
    sup.wait_state("loud", "running");
    let base = fd_count(supd_pid(&sup));
    let stuck: Vec<UnixStream> = (0..300)
        .map(|_| {
            let mut s = connect(&sup);
            s.write_all(follow_request("loud").as_bytes())
                .expect("request");
            s
        })
        .collect();
    // While their buffers fill up and their writes time out, status stays quick.
    let t0 = Instant::now();
    let mut answers = 0;
    while t0.elapsed() < Duration::from_secs(12) {
        status_answers(&sup, Duration::from_secs(2));
        answers += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each is given up (10 s write timeout) or was refused: supd holds none of them.
    let after = settle(PATIENCE, || fd_count(supd_pid(&sup)), |n| *n <= base);
    assert!(after <= base, "{after} descriptors, {base} before");
    let mut busy = 0;
    for text in read_all_to_close(&stuck, PATIENCE) {
        let first = text.lines().next().unwrap_or_default();
        if first.contains("\"code\":\"busy\"") {
            assert!(
                first.contains("256 following or waiting clients"),
                "{first}"
            );
            busy += 1;
        } else {
            assert!(first.contains("\"type\":\"log\""), "{first}");
        }
    }
    assert_eq!(busy, 300 - 256, "long-lived connections are capped at 256");
    eprintln!("300 stuck followers: {answers} status answers meanwhile, {busy} refused");
}

/// The newest line of `loud` as a number.
fn newest_line(sup: &Sup) -> u64 {
    let out = sup.supctl_within(&["logs", "-n", "1", "loud"], Duration::from_secs(10));
    stdout(&out)
        .split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

pub fn a_follower_that_falls_behind_is_dropped_with_a_message() {
    let sup = Sup::start(&[("loud", LOUD)]);
    sup.wait_state("loud", "running");
    let mut follower = connect(&sup);
    follower
        .write_all(follow_request("loud").as_bytes())
        .expect("request");
    let mut reader = BufReader::new(follower.try_clone().expect("clone"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("first line");
    let start: u64 = serde_json::from_str::<serde_json::Value>(&first).expect("json")["line"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .expect("a numbered line");
    // Not reading while the unit prints far more than the socket buffer and the
    // follower's 1024 lines hold; well within the 10 s write timeout.
    wait_until_within(
        "the unit to print 20000 lines",
        Duration::from_secs(8),
        || newest_line(&sup) > start + 20_000,
    );
    let rest = read_to_close(&follower, PATIENCE);
    let last = rest.lines().last().unwrap_or_default();
    assert!(
        last.contains("[supd: follower dropped: it fell") && last.contains("lines behind"),
        "last line: {last}"
    );
}

pub fn connections_beyond_512_are_told_busy_and_short_requests_recover() {
    more_descriptors();
    let sup = Sup::start(&[("svc", SLEEPER)]);
    sup.wait_state("svc", "running");
    let base = fd_count(supd_pid(&sup));
    let t0 = Instant::now();
    let clients: Vec<UnixStream> = (0..600).map(|_| connect(&sup)).collect();
    for c in &clients {
        c.set_nonblocking(true).expect("nonblocking");
    }
    // The 88 beyond the cap are told at once; the 512 wait for their requests.
    let mut busy = vec![false; clients.len()];
    wait_until("88 connections to be told busy", || {
        for (c, seen) in clients.iter().zip(busy.iter_mut()) {
            let mut buf = [0u8; 512];
            if !*seen && let Ok(n) = (&*c).read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                *seen =
                    text.contains("\"code\":\"busy\"") && text.contains("512 connections at most");
            }
        }
        busy.iter().filter(|b| **b).count() >= 88
    });
    assert_eq!(busy.iter().filter(|b| **b).count(), 88);
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "told at once, not after a timeout"
    );
    // At the cap a short request is told busy at once (exit 7), never left hanging.
    let out = sup.supctl_within(&["status"], Duration::from_secs(5));
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("connections at most"),
            "{}",
            stderr(&out)
        );
    }
    drop(clients);
    // supd frees a slot when it sees its client's hang-up: `busy` until it has
    // seen enough of the 512, then answers (never hangs).
    wait_until_within(
        "status to answer once the clients left",
        Duration::from_secs(10),
        || {
            let out = sup.supctl_within(&["status"], Duration::from_secs(5));
            assert!(
                out.status.success() || out.status.code() == Some(7),
                "{}",
                stderr(&out)
            );
            out.status.success()
        },
    );
    let after = settle(PATIENCE, || fd_count(supd_pid(&sup)), |n| *n <= base);
    assert!(after <= base, "{after} descriptors, {base} before");
}

pub fn a_connection_flood_at_a_low_fd_limit_leaves_status_and_starts_working() {
    more_descriptors();
    let sup = Sup::prepare(&[("svc", SLEEPER)]).launch_via(&["prlimit", "--nofile=128:256"]);
    let pid = supd_pid(&sup);
    assert_eq!(
        limits_of(pid, "Max open files"),
        ("256".into(), "256".into()),
        "supd raised its soft limit to the hard one"
    );
    let first = sup.wait_state("svc", "running");
    let base = fd_count(pid);
    // More clients than supd has descriptors: accept fails with EMFILE.
    let flood: Vec<UnixStream> = (0..400).map(|_| connect(&sup)).collect();
    sup.log.wait_for("accept on control socket failed");
    drop(flood);
    // Once the flood ends, everything works again.
    let out = sup.supctl_within(&["restart", "--wait", "svc"], PATIENCE);
    assert!(
        out.status.success(),
        "restart: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_ne!(sup.unit("svc")["pid"], first["pid"]);
    sup.write_unit("late", SLEEPER);
    sup.wait_state("late", "running");
    status_answers(&sup, Duration::from_secs(2));
    let after = settle(PATIENCE, || fd_count(pid), |n| *n <= base + 4);
    // `late` holds a few descriptors of its own (pidfd, output pipes).
    assert!(after <= base + 4, "{after} descriptors, {base} before");
}

/// The process running `sleep` in the unit: the main process, or the service under
/// the container's init.
fn sleeper_of(pid: i32) -> i32 {
    if comm(pid) == "sleep" {
        return pid;
    }
    let mut found = 0;
    wait_until("the service under its init", || {
        found = children_of(pid)
            .into_iter()
            .find(|p| comm(*p) == "sleep")
            .unwrap_or(0);
        found != 0
    });
    found
}

pub fn supd_raises_its_soft_fd_limit_and_services_get_1024_unless_set() {
    let own = "[container.rlimits]\nnofile = [2048, 4096]\n";
    let sup = Sup::prepare(&[
        ("plain", SLEEPER),
        ("host", &format!("[container]\nnamespaces = []\n{SLEEPER}")),
        ("own", &format!("{own}{SLEEPER}")),
    ])
    .launch_via(&["prlimit", "--nofile=512:8192"]);
    let nofile = |pid| limits_of(pid, "Max open files");
    assert_eq!(nofile(supd_pid(&sup)), ("8192".into(), "8192".into()));
    for name in ["plain", "host"] {
        let pid = sleeper_of(pid_of(&sup.wait_state(name, "running")));
        assert_eq!(nofile(pid), ("1024".into(), "8192".into()), "{name}");
    }
    let pid = sleeper_of(pid_of(&sup.wait_state("own", "running")));
    assert_eq!(nofile(pid), ("2048".into(), "4096".into()));
}
