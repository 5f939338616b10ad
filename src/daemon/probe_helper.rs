//! supd's end of a unit's probe helper (`spawn::join`): requests are one byte
//! written from the loop (non-blocking; one probe at a time, so at most one byte
//! waits in the socket), results are read by a task of their own and reach the
//! loop as `ProbeReport::Result`, then `ProbeReport::Closed` once the helper has
//! gone. Dropping the connection kills the helper: a probe past its timeout, a
//! unit no longer probed.

use std::io::Write;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::health::ProbeReport;
use super::probe_start::Joined;
use crate::spawn::join::{self, REQUEST, RESULT_HEAD};
use crate::supervise::ExitStatus;

#[derive(Debug)]
pub struct HelperConn {
    /// The number its start was registered under (`Role::Probe`), which its
    /// reports carry.
    pub id: u64,
    joined: Joined,
    reader: tokio::task::AbortHandle,
}

impl HelperConn {
    /// Take over a started helper of `unit` and read its results (or kill it and
    /// say why not). Within the runtime.
    pub fn new(
        unit: &str,
        id: u64,
        joined: Joined,
        reports: mpsc::UnboundedSender<ProbeReport>,
    ) -> Result<HelperConn, String> {
        // Non-blocking for both: the clone shares the open file.
        let rx = joined
            .sock
            .set_nonblocking(true)
            .and_then(|()| joined.sock.try_clone())
            .and_then(tokio::net::UnixStream::from_std);
        let rx = match rx {
            Ok(rx) => rx,
            Err(e) => {
                joined.helper.kill();
                return Err(format!("probe helper socket: {e}"));
            }
        };
        let unit = unit.to_string();
        let reader = tokio::spawn(read_results(unit, id, rx, reports)).abort_handle();
        Ok(HelperConn { id, joined, reader })
    }

    /// Ask for one probe.
    pub fn request(&self) -> std::io::Result<()> {
        (&self.joined.sock).write_all(&[REQUEST])
    }
}

impl Drop for HelperConn {
    fn drop(&mut self) {
        // Whoever lets go of a helper is done with it: killed, not left waiting
        // (a dead one is not hit: the pidfd names it).
        self.joined.helper.kill();
        self.reader.abort();
    }
}

/// The status a helper reports: an exit code, or minus the signal.
pub fn status_of(raw: i32) -> ExitStatus {
    if raw < 0 {
        ExitStatus::Signal(raw.saturating_neg())
    } else {
        ExitStatus::Code(raw)
    }
}

async fn read_results(
    unit: String,
    id: u64,
    mut rx: tokio::net::UnixStream,
    reports: mpsc::UnboundedSender<ProbeReport>,
) {
    let why = loop {
        let mut head = [0u8; RESULT_HEAD];
        if let Err(e) = rx.read_exact(&mut head).await {
            break match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "it exited".to_string(),
                _ => e.to_string(),
            };
        }
        let Some((raw, len)) = join::decode_head(head) else {
            break "it sent a malformed result".to_string();
        };
        let mut output = vec![0u8; len];
        if let Err(e) = rx.read_exact(&mut output).await {
            break e.to_string();
        }
        let report = ProbeReport::Result {
            unit: unit.clone(),
            id,
            status: status_of(raw),
            output: String::from_utf8_lossy(&output).into_owned(),
        };
        if reports.send(report).is_err() {
            return;
        }
    };
    // The loop is gone only when supd ends.
    let _ = reports.send(ProbeReport::Closed { unit, id, why });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_codes_or_minus_signals() {
        let table = [
            (0, ExitStatus::Code(0)),
            (1, ExitStatus::Code(1)),
            (127, ExitStatus::Code(127)),
            (-9, ExitStatus::Signal(9)),
            (-15, ExitStatus::Signal(15)),
        ];
        for (raw, want) in table {
            assert_eq!(status_of(raw), want, "{raw}");
        }
    }
}
