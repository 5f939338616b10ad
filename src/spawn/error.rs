//! What went wrong while starting a service, precise enough to act on: the step,
//! the path it worked on and the errno. Travels from the helper to supd as JSON.

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// Which step failed, on what, with which errno.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}{}: {}", .path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(), describe_errno(*.errno, .detail))]
pub struct SpawnError {
    pub step: String,
    pub path: Option<String>,
    pub errno: Option<i32>,
    pub detail: String,
}

fn describe_errno(errno: Option<i32>, detail: &str) -> String {
    match errno {
        Some(e) => {
            let e = Errno::from_raw(e);
            if detail.is_empty() {
                format!("{e:?} ({})", e.desc())
            } else {
                format!("{e:?} ({}): {detail}", e.desc())
            }
        }
        None => detail.to_string(),
    }
}

impl SpawnError {
    pub fn new(
        step: &str,
        path: Option<&str>,
        errno: Option<Errno>,
        detail: impl Into<String>,
    ) -> Self {
        SpawnError {
            step: step.into(),
            path: path.map(str::to_string),
            errno: errno.map(|e| e as i32),
            detail: detail.into(),
        }
    }
}

pub(crate) fn io_error(step: &str, e: std::io::Error) -> SpawnError {
    SpawnError::new(
        step,
        None,
        e.raw_os_error().map(Errno::from_raw),
        e.to_string(),
    )
}
