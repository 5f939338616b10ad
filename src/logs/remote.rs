//! Unit output sent to the system's log (`supd --log-target journald,syslog`).
//!
//! journald gets one datagram per line in its native protocol on
//! `/run/systemd/journal/socket`; syslog gets one RFC 3164 line per datagram on
//! `/dev/log`. Each target has its own thread behind a lossy queue: a slow, stuck or
//! missing log daemon drops lines (counted, and said once it takes lines again)
//! instead of slowing a service or supd. A line waits at most `SEND_TIMEOUT` for a
//! full socket.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use syslog::{Facility, Formatter3164, LogFormat, Severity};

use super::{Entry, Stream};

/// journald's socket for the native protocol.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The local syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Lines waiting for one target before lines are dropped there.
const REMOTE_QUEUE: usize = 4096;
/// How long one line may wait for room in a log daemon's socket.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// Where unit output goes. Every line is also kept in memory (`supctl logs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// `STATE/logs/UNIT.log`, rotated.
    pub files: bool,
    /// journald's native socket.
    pub journald: Option<PathBuf>,
    /// A syslog datagram socket.
    pub syslog: Option<PathBuf>,
}

impl Default for Targets {
    /// Files only (supd's default).
    fn default() -> Self {
        Targets {
            files: true,
            journald: None,
            syslog: None,
        }
    }
}

impl Targets {
    /// Every socket named must exist and be a socket: a target that cannot take
    /// lines at start is a configuration error, not something to find out later.
    pub fn check(&self) -> Result<(), String> {
        let sockets = [("journald", &self.journald), ("syslog", &self.syslog)];
        for (name, path) in sockets {
            if let Some(path) = path {
                match std::fs::metadata(path) {
                    Ok(m) if m.file_type().is_socket() => {}
                    Ok(_) => return Err(format!("{name}: {} is not a socket", path.display())),
                    Err(e) => {
                        return Err(format!(
                            "{name}: no socket at {} ({e}); is {} running?",
                            path.display(),
                            if name == "journald" {
                                "systemd-journald"
                            } else {
                                "a syslog daemon"
                            }
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// How lines are encoded for one log daemon.
trait Encode: Send + 'static {
    fn line(&self, unit: &str, entry: &Entry) -> Vec<u8>;
    /// supd's own warning (lines dropped).
    fn notice(&self, text: &str) -> Vec<u8>;
}

/// One field of journald's native protocol: `NAME=value\n`, or, for a value with a
/// newline, `NAME\n`, its length as 64-bit little endian, the bytes and `\n`.
fn journal_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The journal's priority of a stream: info (6) for stdout, err (3) for stderr.
fn priority(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "6",
        Stream::Stderr => "3",
    }
}

/// One line of unit output as a journal entry.
fn journal_record(unit: &str, entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry.line.len() + 2 * unit.len() + 100);
    journal_field(&mut out, "MESSAGE", entry.line.as_bytes());
    journal_field(&mut out, "PRIORITY", priority(entry.stream).as_bytes());
    journal_field(&mut out, "SYSLOG_FACILITY", b"3");
    journal_field(&mut out, "SYSLOG_IDENTIFIER", unit.as_bytes());
    journal_field(&mut out, "SUP_UNIT", unit.as_bytes());
    journal_field(&mut out, "SUP_STREAM", entry.stream.as_str().as_bytes());
    out
}

struct Journal;

impl Encode for Journal {
    fn line(&self, unit: &str, entry: &Entry) -> Vec<u8> {
        journal_record(unit, entry)
    }
    fn notice(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        journal_field(&mut out, "MESSAGE", text.as_bytes());
        journal_field(&mut out, "PRIORITY", b"4");
        journal_field(&mut out, "SYSLOG_FACILITY", b"3");
        journal_field(&mut out, "SYSLOG_IDENTIFIER", b"supd");
        out
    }
}

/// RFC 3164 as syslog(3) writes it to /dev/log: facility daemon, the unit as the
/// tag with supd's pid, no hostname (the daemon adds it).
struct Syslog {
    pid: u32,
}

impl Syslog {
    fn format(&self, tag: &str, severity: Severity, text: &str) -> Vec<u8> {
        let formatter = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            hostname: None,
            process: tag.to_string(),
            pid: self.pid,
        };
        let mut out = Vec::with_capacity(text.len() + tag.len() + 40);
        // Writing into a Vec does not fail.
        let _ = formatter.format(&mut out, severity, text);
        out
    }
}

/// One line of unit output as a syslog datagram.
fn syslog_line(unit: &str, pid: u32, entry: &Entry) -> Vec<u8> {
    let severity = match entry.stream {
        Stream::Stdout => Severity::LOG_INFO,
        Stream::Stderr => Severity::LOG_ERR,
    };
    Syslog { pid }.format(unit, severity, &entry.line)
}

impl Encode for Syslog {
    fn line(&self, unit: &str, entry: &Entry) -> Vec<u8> {
        syslog_line(unit, self.pid, entry)
    }
    fn notice(&self, text: &str) -> Vec<u8> {
        self.format("supd", Severity::LOG_WARNING, text)
    }
}

/// How long supd's exit waits for lines still queued for a log daemon.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

enum Message {
    Line(Arc<str>, Entry),
    /// Answered once every line queued before it is sent (or dropped).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A handle to one target's thread.
pub(super) struct Remote {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

impl Remote {
    pub(super) fn journald(path: &Path) -> io::Result<Remote> {
        Remote::start("journald", path, Journal)
    }

    pub(super) fn syslog(path: &Path) -> io::Result<Remote> {
        Remote::start(
            "syslog",
            path,
            Syslog {
                pid: std::process::id(),
            },
        )
    }

    fn start(name: &'static str, path: &Path, encode: impl Encode) -> io::Result<Remote> {
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        let (tx, rx) = sync_channel::<Message>(REMOTE_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let shared = dropped.clone();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name(format!("supd-{name}"))
            .spawn(move || {
                // Set while sends fail, so a missing daemon is reported once.
                let mut failing = false;
                for message in rx {
                    let lost = shared.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let text = format!(
                            "{lost} lines of unit output dropped: {name} too slow or unavailable"
                        );
                        if socket.send_to(&encode.notice(&text), &path).is_ok() {
                            tracing::warn!("{text}");
                        } else {
                            shared.fetch_add(lost, Ordering::Relaxed);
                        }
                    }
                    let (unit, entry) = match message {
                        Message::Line(unit, entry) => (unit, entry),
                        Message::Flush(done) => {
                            let _ = done.send(());
                            continue;
                        }
                    };
                    match socket.send_to(&encode.line(&unit, &entry), &path) {
                        Ok(_) => failing = false,
                        Err(e) => {
                            if !failing {
                                tracing::warn!(path = %path.display(), error = %e, "cannot send unit output to {name}; dropping lines until it takes them again");
                            }
                            failing = true;
                            shared.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })?;
        Ok(Remote { tx, dropped })
    }

    /// Queue a line; never waits (a full queue drops it and counts it).
    pub(super) fn send(&self, unit: &Arc<str>, entry: &Entry) {
        let line = Message::Line(unit.clone(), entry.clone());
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wait until the lines queued so far are sent, for at most `FLUSH_TIMEOUT`
    /// (supd exits: a stuck daemon must not hold that up).
    pub(super) async fn flush(&self) {
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        let (done, wait) = tokio::sync::oneshot::channel();
        let mut flush = Message::Flush(done);
        loop {
            match self.tx.try_send(flush) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if tokio::time::Instant::now() < deadline => {
                    flush = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return,
            }
        }
        let _ = tokio::time::timeout_at(deadline, wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn entry(stream: Stream, line: &str) -> Entry {
        Entry {
            at: SystemTime::now(),
            stream,
            line: line.into(),
        }
    }

    /// Parse a native-protocol datagram the way journald does.
    fn parse_journal(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let end = data.iter().position(|b| *b == b'\n').expect("newline");
            let head = &data[..end];
            if let Some(eq) = head.iter().position(|b| *b == b'=') {
                fields.push((
                    String::from_utf8(head[..eq].to_vec()).expect("name"),
                    head[eq + 1..].to_vec(),
                ));
                data = &data[end + 1..];
            } else {
                let name = String::from_utf8(head.to_vec()).expect("name");
                let rest = &data[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().expect("len")) as usize;
                fields.push((name, rest[8..8 + len].to_vec()));
                assert_eq!(rest[8 + len], b'\n', "value ends with a newline");
                data = &rest[8 + len + 1..];
            }
        }
        fields
    }

    fn get<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
        &fields
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in {fields:?}"))
            .1
    }

    #[test]
    fn journal_records_carry_the_unit_stream_and_priority() {
        let out = journal_record("web", &entry(Stream::Stdout, "hello = world"));
        let text = String::from_utf8(out.clone()).expect("utf8");
        assert_eq!(
            text,
            "MESSAGE=hello = world\nPRIORITY=6\nSYSLOG_FACILITY=3\nSYSLOG_IDENTIFIER=web\nSUP_UNIT=web\nSUP_STREAM=stdout\n"
        );
        let err = parse_journal(&journal_record("db", &entry(Stream::Stderr, "oops")));
        assert_eq!(get(&err, "PRIORITY"), b"3");
        assert_eq!(get(&err, "SUP_STREAM"), b"stderr");
        assert_eq!(get(&err, "SYSLOG_IDENTIFIER"), b"db");
    }

    #[test]
    fn journal_values_with_newlines_are_length_prefixed() {
        let line = "first\nPRIORITY=0\nSUP_UNIT=forged";
        let out = journal_record("web", &entry(Stream::Stdout, line));
        let mut expected = b"MESSAGE\n".to_vec();
        expected.extend_from_slice(&(line.len() as u64).to_le_bytes());
        expected.extend_from_slice(line.as_bytes());
        expected.extend_from_slice(b"\nPRIORITY=6\n");
        assert!(out.starts_with(&expected), "{out:?}");
        let fields = parse_journal(&out);
        assert_eq!(get(&fields, "MESSAGE"), line.as_bytes());
        assert_eq!(fields.iter().filter(|(n, _)| n == "PRIORITY").count(), 1);
        assert_eq!(get(&fields, "SUP_UNIT"), b"web");
        // An empty value and one of only a newline.
        let mut out = Vec::new();
        journal_field(&mut out, "A", b"");
        journal_field(&mut out, "B", b"\n");
        assert_eq!(
            parse_journal(&out),
            vec![("A".into(), vec![]), ("B".into(), b"\n".to_vec())]
        );
    }

    #[test]
    fn syslog_lines_are_rfc3164_with_facility_daemon() {
        let out = String::from_utf8(syslog_line("web", 42, &entry(Stream::Stdout, "hi there")))
            .expect("utf8");
        // <30>: daemon (3) * 8 + info (6).
        assert!(out.starts_with("<30>"), "{out}");
        assert!(out.ends_with(" web[42]: hi there"), "{out}");
        // `Mmm dd hh:mm:ss` between the priority and the tag.
        let stamp = &out[4..out.len() - " web[42]: hi there".len()];
        assert_eq!(stamp.len(), 15, "{stamp:?}");
        let err =
            String::from_utf8(syslog_line("db", 1, &entry(Stream::Stderr, "x"))).expect("utf8");
        // daemon * 8 + err (3).
        assert!(err.starts_with("<27>"), "{err}");
    }

    #[test]
    fn targets_must_be_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("journal");
        let _bound = UnixDatagram::bind(&sock).expect("bind");
        let mut t = Targets {
            files: false,
            journald: Some(sock),
            syslog: None,
        };
        assert_eq!(t.check(), Ok(()));
        t.syslog = Some(dir.path().join("missing"));
        let e = t.check().expect_err("missing");
        assert!(
            e.starts_with("syslog: no socket at") && e.contains("missing"),
            "{e}"
        );
        std::fs::write(dir.path().join("plain"), "").expect("file");
        t.syslog = Some(dir.path().join("plain"));
        assert!(t.check().expect_err("plain").contains("not a socket"));
    }

    /// Nobody reads the socket: lines are dropped and counted, never waited for, and
    /// a flush (supd exiting) gives up after a second.
    #[tokio::test]
    async fn a_stuck_daemon_drops_lines_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("journal");
        let server = UnixDatagram::bind(&sock).expect("bind");
        let remote = Remote::journald(&sock).expect("start");
        let unit: Arc<str> = "u".into();
        let started = std::time::Instant::now();
        for i in 0..(REMOTE_QUEUE * 3) {
            remote.send(&unit, &entry(Stream::Stdout, &format!("line {i}")));
        }
        assert!(started.elapsed() < Duration::from_secs(2), "never waits");
        assert!(
            remote.dropped.load(Ordering::Relaxed) > 0,
            "dropped and counted"
        );
        let flushing = std::time::Instant::now();
        remote.flush().await;
        let waited = flushing.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        // The oldest line is never the one dropped (a notice of drops may come
        // first when the thread started after the queue filled).
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).expect("recv");
        let mut fields = parse_journal(&buf[..n]);
        if get(&fields, "SYSLOG_IDENTIFIER") == b"supd" {
            let notice = String::from_utf8_lossy(get(&fields, "MESSAGE")).into_owned();
            assert!(
                notice.ends_with(" lines of unit output dropped: journald too slow or unavailable"),
                "{notice}"
            );
            let n = server.recv(&mut buf).expect("recv");
            fields = parse_journal(&buf[..n]);
        }
        assert_eq!(get(&fields, "MESSAGE"), b"line 0");
    }
}
