//! Service output: each unit's stdout and stderr arrive through pipes, are cut into
//! lines, stamped, written to `<state>/logs/<unit>.log` (rotated by size) and kept in
//! memory (the last lines) for `supctl logs` and `supctl status`, and broadcast to
//! followers (`supctl logs -f`).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;

use crate::control::proto::LogLine;
use crate::unit::LogLimits;

/// Lines kept in memory per unit.
pub const MEMORY_LINES: usize = 1000;
/// A line longer than this is cut into pieces (protects memory from binary output).
pub const MAX_LINE: usize = 16 * 1024;
/// Lines a slow follower may fall behind before it is told it skipped some.
const FOLLOW_BUFFER: usize = 1024;

#[derive(Debug)]
pub struct UnitLog {
    path: PathBuf,
    limits: LogLimits,
    file: Option<File>,
    size: u64,
    recent: VecDeque<LogLine>,
    /// Created for the first follower and dropped when the last one is gone: a
    /// broadcast channel preallocates its whole buffer, which most units never need.
    followers: Option<broadcast::Sender<LogLine>>,
    /// Set after a write error so the error is reported once, not per line.
    write_failed: bool,
    /// Also print each line as `UNIT: line` on supd's stderr (the console).
    forward_as: Option<String>,
}

/// Shared between the pipe readers and the control server.
#[derive(Debug, Clone)]
pub struct SharedLog(Arc<Mutex<UnitLog>>);

impl SharedLog {
    pub fn new(path: PathBuf, limits: LogLimits) -> Self {
        SharedLog(Arc::new(Mutex::new(UnitLog {
            path,
            limits,
            file: None,
            size: 0,
            recent: VecDeque::new(),
            followers: None,
            write_failed: false,
            forward_as: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, UnitLog> {
        // Every update leaves the log consistent, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Mirror every line to supd's stderr, prefixed with the unit name.
    pub fn forward_to_stderr(&self, unit: &str) {
        self.lock().forward_as = Some(unit.to_string());
    }

    /// New limits apply from the next line on (a reloaded definition).
    pub fn set_limits(&self, limits: LogLimits) {
        self.lock().limits = limits;
    }

    pub fn append(&self, stream: &str, line: &str) {
        let entry = LogLine {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            stream: stream.to_string(),
            line: line.to_string(),
        };
        self.lock().append(entry);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let log = self.lock();
        let skip = log.recent.len().saturating_sub(n);
        log.recent.iter().skip(skip).cloned().collect()
    }

    /// The last `n` lines and a receiver for every line after them, atomically.
    pub fn tail_and_follow(&self, n: usize) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let mut log = self.lock();
        let rx = log
            .followers
            .get_or_insert_with(|| broadcast::channel(FOLLOW_BUFFER).0)
            .subscribe();
        let skip = log.recent.len().saturating_sub(n);
        (log.recent.iter().skip(skip).cloned().collect(), rx)
    }
}

impl UnitLog {
    fn append(&mut self, entry: LogLine) {
        let text = if entry.stream == "stderr" {
            format!("{} [stderr] {}\n", entry.ts, entry.line)
        } else {
            format!("{} {}\n", entry.ts, entry.line)
        };
        if let Err(e) = self.write_file(text.as_bytes()) {
            if !self.write_failed {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot write unit log; keeping lines in memory only");
            }
            self.write_failed = true;
            self.file = None;
        } else {
            self.write_failed = false;
        }
        if let Some(unit) = &self.forward_as {
            eprintln!("{unit}: {}", entry.line);
        }
        if self.recent.len() >= MEMORY_LINES {
            self.recent.pop_front();
        }
        if let Some(tx) = &self.followers {
            if tx.receiver_count() == 0 {
                self.followers = None;
            } else {
                // A follower that left between the check and the send is fine.
                let _ = tx.send(entry.clone());
            }
        }
        self.recent.push_back(entry);
    }

    fn write_file(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_some() && self.size + bytes.len() as u64 > self.limits.max_size {
            self.file = None;
            rotate(&self.path, self.limits.max_files)?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.size = f.metadata()?.len();
                self.file.insert(f)
            }
        };
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// `x.log` -> `x.log.1` -> ... -> `x.log.N`; the oldest is dropped. With N = 0 the
/// live file is simply truncated.
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    if keep == 0 {
        return File::create(path).map(drop);
    }
    let numbered = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
    for i in (1..keep).rev() {
        match std::fs::rename(numbered(i), numbered(i + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, numbered(1))
}

/// Read a pipe until EOF, appending each line to `log`.
pub async fn pump(fd: OwnedFd, stream: &'static str, log: SharedLog) {
    let mut rx = match pipe::Receiver::from_owned_fd(fd) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read service output");
            return;
        }
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match rx.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        for line in split_lines(&mut pending) {
            log.append(stream, &line);
        }
    }
    if !pending.is_empty() {
        log.append(stream, &String::from_utf8_lossy(&pending));
    }
}

/// Take every complete line (and over-long pieces) out of `buf`, leaving the rest.
fn split_lines(buf: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
        let end = start + pos;
        let line = buf[start..end]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[start..end]);
        lines.push(String::from_utf8_lossy(line).into_owned());
        start = end + 1;
    }
    while buf.len() - start > MAX_LINE {
        lines.push(String::from_utf8_lossy(&buf[start..start + MAX_LINE]).into_owned());
        start += MAX_LINE;
    }
    buf.drain(..start);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let mut buf = b"one\ntwo\r\nthr".to_vec();
        assert_eq!(split_lines(&mut buf), vec!["one", "two"]);
        assert_eq!(buf, b"thr");
    }

    #[test]
    fn cuts_overlong_lines() {
        let mut buf = vec![b'x'; MAX_LINE * 2 + 5];
        let lines = split_lines(&mut buf);
        assert_eq!(lines.len(), 2);
        assert_eq!(buf.len(), 5);
    }

    #[test]
    fn rotates_by_size_and_keeps_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u.log");
        let log = SharedLog::new(
            path.clone(),
            LogLimits {
                max_size: 200,
                max_files: 2,
            },
        );
        for i in 0..40 {
            log.append("stdout", &format!("line number {i}"));
        }
        assert!(path.exists());
        assert!(dir.path().join("u.log.1").exists());
        assert!(dir.path().join("u.log.2").exists());
        assert!(!dir.path().join("u.log.3").exists());
        for f in ["u.log", "u.log.1", "u.log.2"] {
            let len = std::fs::metadata(dir.path().join(f)).expect("meta").len();
            assert!(len <= 200, "{f} is {len} bytes");
        }
        let live = std::fs::read_to_string(&path).expect("read");
        assert!(live.contains("line number 39"));
        assert_eq!(
            log.tail(2)
                .iter()
                .map(|l| l.line.as_str())
                .collect::<Vec<_>>(),
            vec!["line number 38", "line number 39"]
        );
    }
}
