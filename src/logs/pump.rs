//! Reading a service's output pipe and cutting it into lines.

use std::os::fd::OwnedFd;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::{MAX_LINE, SharedLog, Stream};

/// Pump a started process's stdout and stderr into `log`, each in its own task.
pub fn pump_both(stdout: OwnedFd, stderr: OwnedFd, log: SharedLog) {
    tokio::spawn(pump(stdout, Stream::Stdout, log.clone()));
    tokio::spawn(pump(stderr, Stream::Stderr, log));
}

/// Read a pipe until EOF, appending each line to `log`.
pub async fn pump(fd: OwnedFd, stream: Stream, log: SharedLog) {
    log.pipe_opened();
    read_lines(fd, stream, &log).await;
    log.pipe_closed().await;
}

async fn read_lines(fd: OwnedFd, stream: Stream, log: &SharedLog) {
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
            log.append(stream, line).await;
        }
    }
    if !pending.is_empty() {
        log.append(stream, String::from_utf8_lossy(&pending).into_owned())
            .await;
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
}
