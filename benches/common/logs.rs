//! Log throughput: one unit writing lines to stdout as fast as it can, into
//! supd's log file, against the same producer piped into `s6-log`; and how
//! long `supctl status` takes meanwhile.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Supd, write_units};

pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");

/// The producer both sides run: `lines` lines of 40 bytes, then exit.
fn producer(lines: usize) -> String {
    format!("yes 0123456789012345678901234567890123456789 | head -n {lines}")
}

pub struct SupLogRun {
    pub lines_per_sec: f64,
    /// `supctl status` latencies while the unit wrote.
    pub status: Vec<Duration>,
}

/// supd with one unit running the producer: time from supd's start until its
/// log file holds all `lines` lines, asking `supctl status` every 50 ms
/// meanwhile.
pub fn sup(dir: &Path, lines: usize) -> SupLogRun {
    let unit = format!(
        "[service]\nexec = [\"/bin/sh\", \"-c\", {:?}]\nrestart = \"no\"\n[logs]\nmax_size = \"1T\"\n",
        producer(lines)
    );
    write_units(dir, &[("writer".to_string(), unit)]);
    let log = dir.join("state/logs/writer.log");
    let t0 = Instant::now();
    let mut supd = Supd::start(dir);
    supd.drain_log();
    let mut status = Vec::new();
    let mut seen = 0;
    let mut file = None;
    let mut buf = vec![0u8; 1 << 20];
    let mut next_status = Instant::now();
    while seen < lines {
        if t0.elapsed() > Duration::from_secs(300) {
            panic!("{seen} of {lines} lines logged after 300 s");
        }
        if Instant::now() >= next_status {
            let t = Instant::now();
            let ok = Command::new(SUPCTL)
                .arg("status")
                .env("SUP_STATE_DIR", dir.join("state"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                status.push(t.elapsed());
            }
            next_status = Instant::now() + Duration::from_millis(50);
        }
        // Count the lines as they land (the file is only appended to).
        if file.is_none() {
            file = std::fs::File::open(&log).ok();
        }
        let mut got = 0;
        if let Some(f) = file.as_mut() {
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got += n;
                seen += buf[..n].iter().filter(|b| **b == b'\n').count();
            }
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let elapsed = t0.elapsed();
    drop(supd);
    SupLogRun {
        lines_per_sec: lines as f64 / elapsed.as_secs_f64(),
        status,
    }
}

/// The same producer piped into `s6-log` (ISO 8601 timestamps, like sup's;
/// 16 MiB files), until s6-log has written everything and exited.
pub fn s6_log(dir: &Path, lines: usize) -> f64 {
    let logdir = dir.join("s6-log");
    std::fs::create_dir_all(&logdir).expect("mkdir");
    let script = format!(
        "{} | s6-log -b n100 s16777215 T {}",
        producer(lines),
        logdir.display()
    );
    let t0 = Instant::now();
    let ok = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let elapsed = t0.elapsed();
    assert!(ok, "s6-log failed");
    lines as f64 / elapsed.as_secs_f64()
}
