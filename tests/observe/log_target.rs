//! `supd --log-target journald,syslog`: unit output reaches a journal socket and a
//! syslog socket the test binds itself (`--journal-socket`, `--syslog-socket`).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::common::{self, Sup, stderr, stdout};
use super::launch_exact;

/// Prints on both streams, then a line that looks like journal fields.
const TALKER: &str = "[service]\nexec = [\"/bin/sh\", \"-c\", \"echo out-line; echo err-line >&2; printf 'MESSAGE=forged\\\\nPRIORITY=0\\\\n'; exec sleep 100\"]\n";

/// Every datagram received on `socket` until `done` holds of them, for at most 20 s.
fn receive_until(socket: &UnixDatagram, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 17];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&got) {
        assert!(
            Instant::now() < deadline,
            "not all datagrams came: {:?}",
            got.iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect::<Vec<_>>()
        );
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

/// A datagram of journald's native protocol as its fields, the way journald reads
/// it (`NAME=value\n`, or `NAME\n` + 64-bit LE length + bytes + `\n`).
fn journal_fields(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let end = data.iter().position(|b| *b == b'\n').expect("newline");
        let head = &data[..end];
        let name_end = head.iter().position(|b| *b == b'=');
        let (name, value, rest) = match name_end {
            Some(eq) => (&head[..eq], head[eq + 1..].to_vec(), &data[end + 1..]),
            None => {
                let rest = &data[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().expect("len")) as usize;
                assert_eq!(rest[8 + len], b'\n');
                (head, rest[8..8 + len].to_vec(), &rest[8 + len + 1..])
            }
        };
        let name = String::from_utf8(name.to_vec()).expect("field name");
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "valid field name {name:?}"
        );
        fields.push((name, value));
        data = rest;
    }
    fields
}

fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| std::str::from_utf8(v).expect("utf8"))
}

fn launch_with(sup: Sup, extra: &[&str]) -> Sup {
    let mut args = vec![common::SUPD.to_owned()];
    args.extend(
        sup.supd_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let wrapper: Vec<&str> = std::iter::once("/usr/bin/env")
        .chain(args.iter().map(String::as_str))
        .collect();
    launch_exact(sup, &wrapper)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

pub fn unit_output_goes_to_journald_and_syslog_sockets() {
    let sup = Sup::prepare(&[("talk", TALKER)]);
    let journal_path = sup.path().join("journal.sock");
    let syslog_path = sup.path().join("syslog.sock");
    let journal = UnixDatagram::bind(&journal_path).expect("bind journal");
    let syslog = UnixDatagram::bind(&syslog_path).expect("bind syslog");
    let mut sup = launch_with(
        sup,
        &[
            "--log-target",
            "journald,syslog",
            "--journal-socket",
            path_str(&journal_path),
            "--syslog-socket",
            path_str(&syslog_path),
        ],
    );
    let has = |d: &[Vec<u8>], needle: &str| {
        d.iter()
            .any(|d| String::from_utf8_lossy(d).contains(needle))
    };
    let records = receive_until(&journal, |d| {
        has(d, "MESSAGE=out-line\n") && has(d, "MESSAGE=err-line\n") && has(d, "PRIORITY=0")
    });
    let records: Vec<_> = records.iter().map(|d| journal_fields(d)).collect();
    let talk: Vec<_> = records
        .iter()
        .filter(|f| field(f, "SUP_UNIT") == Some("talk"))
        .collect();
    let line = |msg: &str| {
        *talk
            .iter()
            .find(|f| field(f, "MESSAGE") == Some(msg))
            .unwrap_or_else(|| panic!("{msg} in {talk:?}"))
    };
    let out = line("out-line");
    assert_eq!(field(out, "PRIORITY"), Some("6"));
    assert_eq!(field(out, "SYSLOG_IDENTIFIER"), Some("talk"));
    assert_eq!(field(out, "SUP_STREAM"), Some("stdout"));
    let err = line("err-line");
    assert_eq!(field(err, "PRIORITY"), Some("3"));
    assert_eq!(field(err, "SUP_STREAM"), Some("stderr"));
    assert_eq!(field(err, "SYSLOG_IDENTIFIER"), Some("talk"));
    // Output that looks like fields stays inside MESSAGE: one PRIORITY per record.
    let forged = line("PRIORITY=0");
    assert_eq!(field(forged, "PRIORITY"), Some("6"));
    for f in &records {
        assert_eq!(
            f.iter().filter(|(n, _)| n == "PRIORITY").count(),
            1,
            "{f:?}"
        );
        assert_eq!(f.iter().filter(|(n, _)| n == "MESSAGE").count(), 1);
    }

    let lines = receive_until(&syslog, |d| {
        has(d, "talk[") && has(d, ": out-line") && has(d, ": err-line")
    });
    let lines: Vec<String> = lines
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    let find = |suffix: &str| {
        lines
            .iter()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in {lines:?}"))
            .clone()
    };
    let pid = sup.child.as_ref().expect("supd").id();
    // daemon (3) * 8 + info (6) / err (3); the unit is the tag.
    let out = find(&format!(" talk[{pid}]: out-line"));
    assert!(out.starts_with("<30>"), "{out}");
    let err = find(&format!(" talk[{pid}]: err-line"));
    assert!(err.starts_with("<27>"), "{err}");

    // Not written to a file, still in memory for `supctl logs`.
    assert!(!sup.state_dir().join("logs/talk.log").exists());
    assert_eq!(sup.unit("talk")["log_file"], "", "no log file in status");
    let logs = sup.supctl(&["logs", "talk"]);
    assert!(
        stdout(&logs).contains("out-line") && stdout(&logs).contains("err-line"),
        "{}{}",
        stdout(&logs),
        stderr(&logs)
    );
    sup.stop();
}

pub fn a_missing_journal_socket_stops_supd_at_start() {
    let sup = Sup::prepare(&[]);
    let missing = sup.path().join("no-journal.sock");
    let out = Command::new(common::SUPD)
        .args(sup.supd_args())
        .args(["--log-target", "file,journald", "--journal-socket"])
        .arg(&missing)
        .output()
        .expect("supd");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("--log-target: journald: no socket at") && text.contains("no-journal.sock"),
        "{text}"
    );
    assert!(!sup.state_dir().join("control.sock").exists());
}

/// Floods its output, then says one more line a little later.
const SPEWER: &str = "[service]\nexec = [\"/bin/sh\", \"-c\", \"seq 1 100000; sleep 3; echo after-flood; exec sleep 100\"]\n";

/// A journal that reads nothing for a while: the unit's output is not slowed (every
/// line reaches memory at once), lines are dropped, and once the journal reads again
/// supd says how many it dropped.
pub fn a_stuck_journal_drops_lines_and_never_slows_the_unit() {
    let sup = Sup::prepare(&[("spew", SPEWER)]);
    let journal_path = sup.path().join("journal.sock");
    let journal = UnixDatagram::bind(&journal_path).expect("bind journal");
    let mut sup = launch_with(
        sup,
        &[
            "--log-target",
            "journald",
            "--journal-socket",
            path_str(&journal_path),
        ],
    );
    // Nobody reads the journal, yet the whole flood reaches memory quickly.
    let started = Instant::now();
    common::wait_until_within("the flood in memory", Duration::from_secs(10), || {
        stdout(&sup.supctl(&["logs", "-n", "1", "spew"])).contains("100000")
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    let records = receive_until(&journal, |d| {
        d.iter()
            .any(|d| String::from_utf8_lossy(d).contains("MESSAGE=after-flood\n"))
    });
    let notice = records
        .iter()
        .map(|d| journal_fields(d))
        .find(|f| {
            field(f, "MESSAGE").is_some_and(|m| {
                m.contains("lines of unit output dropped: journald too slow or unavailable")
            })
        })
        .expect("a notice of dropped lines");
    assert_eq!(field(&notice, "SYSLOG_IDENTIFIER"), Some("supd"));
    assert_eq!(field(&notice, "PRIORITY"), Some("4"));
    sup.log.wait_for("lines of unit output dropped");
    let received = records
        .iter()
        .filter(|d| String::from_utf8_lossy(d).contains("SUP_UNIT=spew\n"))
        .count();
    assert!(received < 100_001, "some were dropped: {received}");
    sup.stop();
}

/// supd's own log names a main process's exit as status does (`signal=SIGTERM`, not
/// the `exit code 143` a container's init reports for it).
pub fn supd_log_names_exits_as_status_does() {
    let mut sup = Sup::start(&[("sleepy", "[service]\nexec = [\"/bin/sleep\", \"100\"]\n")]);
    sup.wait_state("sleepy", "running");
    let out = sup.supctl(&["stop", "sleepy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = sup.wait_state("sleepy", "inactive");
    assert_eq!(unit["last_exit"]["signal"], "SIGTERM", "{unit}");
    let line = sup
        .log
        .wait_for_all(&["process exited", "unit=sleepy", "exit=signal=SIGTERM"]);
    assert!(!line.contains("143"), "{line}");
    sup.stop();
}
