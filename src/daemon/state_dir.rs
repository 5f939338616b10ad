//! The state directory holds the control socket and the unit logs: supd must own it,
//! and nobody else may write to it, or another user could plant a log file for root
//! to append service output to, or swap the socket for one of their own.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Create `dir` (mode 0755) if it is missing, then check it can be trusted.
pub fn prepare(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
    check(dir, meta.is_dir(), meta.uid(), meta.permissions().mode())
}

/// Pure part of `prepare`: a directory owned by supd's user, not writable by group or
/// others.
fn check(dir: &Path, is_dir: bool, owner: u32, mode: u32) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    if !is_dir {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let problem = if owner != me {
        Some(format!("is owned by uid {owner}, not by supd's uid {me}"))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "is writable by group or others (mode {:o})",
            mode & 0o7777
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(what) => Err(format!(
            "refusing state directory {d}: it {what}; supd keeps its control socket and the \
             unit logs there and trusts nothing another user can change. Fix it with \
             `chown {me} {d} && chmod go-w {d}`, or pass another --state-dir",
            d = dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_own_directory_nobody_else_can_write_is_trusted() {
        let me = nix::unistd::geteuid().as_raw();
        let dir = Path::new("/run/x");
        assert!(check(dir, true, me, 0o755).is_ok());
        assert!(check(dir, true, me, 0o700).is_ok());
        let other = check(dir, true, me.wrapping_add(1), 0o755).unwrap_err();
        assert!(
            other.contains("is owned by uid") && other.contains("chown"),
            "{other}"
        );
        let writable = check(dir, true, me, 0o775).unwrap_err();
        assert!(
            writable.contains("writable by group or others"),
            "{writable}"
        );
        assert!(
            check(dir, true, me, 0o1777).is_err(),
            "sticky /tmp-like dirs too"
        );
        assert!(check(dir, false, me, 0o755).is_err());
    }
}
