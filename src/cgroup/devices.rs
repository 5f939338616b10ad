//! The device allowlist of a unit with `private_devices`: which device nodes its
//! processes may create (mknod) and open, enforced by the kernel at open and
//! mknod time (the v1 `devices` controller, or a BPF device program on v2, see
//! `bpf`). Pure apart from [`DeviceAllowlist::for_unit`], which stats the
//! `[[device]]` paths on the host.
//!
//! The default list is runc's and Docker's minimal set (null, zero, full, random,
//! urandom, tty, ptmx and the pts range), minus two things they allow:
//! - `/dev/console` (c 5:1, Docker only): a supd service has no terminal, and the
//!   host's console is the machine's;
//! - mknod of every char and block device (runc's `c *:* m`, `b *:* m`): a node
//!   made in a host directory the unit can write would be opened by host
//!   processes, which the allowlist does not cover. A unit may mknod exactly the
//!   devices it may open.

use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::unit::DeviceSpec;

/// Block or character device (the kernel's `DEVCG_DEV_BLOCK`/`_CHAR`, the v1 `b`/`c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Block,
    Char,
}

impl DeviceKind {
    fn letter(self) -> char {
        match self {
            DeviceKind::Block => 'b',
            DeviceKind::Char => 'c',
        }
    }

    /// The type in the low 16 bits of a BPF device program's `access_type`.
    pub fn bpf_type(self) -> u32 {
        match self {
            DeviceKind::Block => 1,
            DeviceKind::Char => 2,
        }
    }
}

/// What may be done with a device, as the kernel's bits (`DEVCG_ACC_*`, the high
/// 16 bits of a BPF device program's `access_type`): mknod 1, read 2, write 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u32);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);

    /// `r`, `w`, `m` letters in that order (the `[[device]]` `access` key, the v1
    /// syntax); None for anything else, and for no letter at all.
    pub fn parse(letters: &str) -> Option<Access> {
        let mut bits = 0;
        let mut rest = letters;
        for (letter, bit) in [
            ("r", Access::READ),
            ("w", Access::WRITE),
            ("m", Access::MKNOD),
        ] {
            if let Some(r) = rest.strip_prefix(letter) {
                bits |= bit.0;
                rest = r;
            }
        }
        (rest.is_empty() && bits != 0).then_some(Access(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// Every bit of `other` is in `self`.
    pub fn covers(self, other: Access) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (letter, bit) in [
            ('r', Access::READ),
            ('w', Access::WRITE),
            ('m', Access::MKNOD),
        ] {
            if self.covers(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One allowed device or range: `None` for a number is any (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    const fn char(major: u32, minor: Option<u32>) -> DeviceRule {
        DeviceRule {
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access: Access::ALL,
        }
    }

    /// The line for the v1 `devices.allow` file, e.g. `c 136:* rwm`.
    pub fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            self.access
        )
    }

    /// Whether this rule lets `access` happen to the device `kind major:minor`.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        self.kind == kind
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && self.access.covers(access)
    }
}

/// The devices every unit with `private_devices` may use (all of r, w, m).
pub const DEFAULT_DEVICES: &[(&str, DeviceRule)] = &[
    ("/dev/null", DeviceRule::char(1, Some(3))),
    ("/dev/zero", DeviceRule::char(1, Some(5))),
    ("/dev/full", DeviceRule::char(1, Some(7))),
    ("/dev/random", DeviceRule::char(1, Some(8))),
    ("/dev/urandom", DeviceRule::char(1, Some(9))),
    ("/dev/tty", DeviceRule::char(5, Some(0))),
    ("/dev/ptmx", DeviceRule::char(5, Some(2))),
    ("/dev/pts/*", DeviceRule::char(136, None)),
];

/// Every device a unit may use; anything else is denied (open, mknod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAllowlist {
    rules: Vec<DeviceRule>,
}

/// Why a `[[device]]` cannot be allowed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("[[device]] {path}: stat: {source}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("[[device]] {path} is not a device node (it is {what})")]
    NotADevice { path: PathBuf, what: &'static str },
    #[error("[[device]] {path}: invalid access {access:?}")]
    Access { path: PathBuf, access: String },
}

impl DeviceError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            DeviceError::Stat { source, .. } => source.raw_os_error(),
            DeviceError::NotADevice { .. } | DeviceError::Access { .. } => None,
        }
    }
}

impl DeviceAllowlist {
    /// The default devices, then `extra` in order.
    pub fn new(extra: impl IntoIterator<Item = DeviceRule>) -> DeviceAllowlist {
        let mut rules: Vec<DeviceRule> = DEFAULT_DEVICES.iter().map(|(_, r)| *r).collect();
        rules.extend(extra);
        DeviceAllowlist { rules }
    }

    /// The defaults plus the unit's `[[device]]` entries, each stat'ed now: its
    /// type and numbers are those of the host node at this start.
    pub fn for_unit(devices: &[DeviceSpec]) -> Result<DeviceAllowlist, DeviceError> {
        let mut extra = Vec::new();
        for d in devices {
            let meta = std::fs::metadata(&d.path).map_err(|source| DeviceError::Stat {
                path: d.path.clone(),
                source,
            })?;
            extra.push(rule_for_node(
                &d.path,
                &meta.file_type(),
                meta.rdev(),
                &d.access,
            )?);
        }
        Ok(DeviceAllowlist::new(extra))
    }

    pub fn rules(&self) -> &[DeviceRule] {
        &self.rules
    }

    /// The `devices.allow` lines, in order (after `a` to `devices.deny`).
    pub fn v1_lines(&self) -> Vec<String> {
        self.rules.iter().map(DeviceRule::v1_line).collect()
    }

    /// The reference semantics both kernel mechanisms implement: some rule allows
    /// the whole access.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        self.rules
            .iter()
            .any(|r| r.allows(kind, major, minor, access))
    }
}

/// The rule for the node at `path` of type `ft` and device number `rdev`.
fn rule_for_node(
    path: &Path,
    ft: &std::fs::FileType,
    rdev: u64,
    access: &str,
) -> Result<DeviceRule, DeviceError> {
    let kind = if ft.is_char_device() {
        DeviceKind::Char
    } else if ft.is_block_device() {
        DeviceKind::Block
    } else {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_file() {
            "a regular file"
        } else {
            "not a char or block device"
        };
        return Err(DeviceError::NotADevice {
            path: path.to_path_buf(),
            what,
        });
    };
    let access = Access::parse(access).ok_or_else(|| DeviceError::Access {
        path: path.to_path_buf(),
        access: access.to_string(),
    })?;
    Ok(DeviceRule {
        kind,
        major: Some(nix::sys::stat::major(rdev) as u32),
        minor: Some(nix::sys::stat::minor(rdev) as u32),
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_letters_round_trip_in_rwm_order_only() {
        for (text, want) in [
            ("r", Some(2)),
            ("w", Some(4)),
            ("m", Some(1)),
            ("rw", Some(6)),
            ("rm", Some(3)),
            ("wm", Some(5)),
            ("rwm", Some(7)),
            ("", None),
            ("wr", None),
            ("rr", None),
            ("rwx", None),
            ("a", None),
        ] {
            let got = Access::parse(text);
            assert_eq!(got.map(Access::bits), want, "{text:?}");
            if let Some(a) = got {
                assert_eq!(a.to_string(), text);
            }
        }
    }

    #[test]
    fn default_v1_lines_are_runcs_minimal_set_without_console_or_blanket_mknod() {
        assert_eq!(
            DeviceAllowlist::new([]).v1_lines(),
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
            ]
        );
        let extra = DeviceRule {
            kind: DeviceKind::Block,
            major: Some(7),
            minor: Some(0),
            access: Access::READ,
        };
        assert_eq!(
            DeviceAllowlist::new([extra])
                .v1_lines()
                .last()
                .map(String::as_str),
            Some("b 7:0 r")
        );
    }

    #[test]
    fn allows_is_kind_numbers_and_every_access_bit() {
        use DeviceKind::{Block, Char};
        let list = DeviceAllowlist::new([DeviceRule {
            kind: Char,
            major: Some(10),
            minor: Some(229),
            access: Access::parse("rw").expect("rw"),
        }]);
        let rw = Access::READ.union(Access::WRITE);
        for (kind, major, minor, access, want) in [
            (Char, 1, 3, rw, true),
            (Char, 1, 3, Access::MKNOD, true),
            (Char, 1, 4, Access::READ, false), // /dev/port
            (Block, 1, 3, Access::READ, false),
            (Char, 5, 1, Access::WRITE, false), // console
            (Char, 136, 7, rw, true),
            (Char, 137, 0, rw, false),
            (Block, 7, 0, Access::MKNOD, false),
            (Block, 8, 0, Access::READ, false),
            (Char, 10, 229, rw, true),
            (Char, 10, 229, Access::MKNOD, false),
            (Char, 10, 229, Access::ALL, false),
        ] {
            assert_eq!(
                list.allows(kind, major, minor, access),
                want,
                "{kind:?} {major}:{minor} {access}"
            );
        }
    }

    #[test]
    fn host_nodes_are_stat_ed_and_non_devices_refused() {
        let spec = |path: &str, access: &str| DeviceSpec {
            path: path.into(),
            access: access.into(),
        };
        let list = DeviceAllowlist::for_unit(&[spec("/dev/null", "r")]).expect("/dev/null");
        let last = list.rules().last().copied();
        assert_eq!(
            last,
            Some(DeviceRule {
                kind: DeviceKind::Char,
                major: Some(1),
                minor: Some(3),
                access: Access::READ
            })
        );

        let err = DeviceAllowlist::for_unit(&[spec("/dev/sup-no-such-device", "rw")])
            .expect_err("missing");
        assert_eq!(err.errno(), Some(libc::ENOENT));
        assert!(err.to_string().contains("/dev/sup-no-such-device"), "{err}");

        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("plain");
        std::fs::write(&file, "").expect("file");
        for (path, what) in [
            (file.as_path(), "a regular file"),
            (tmp.path(), "a directory"),
        ] {
            let err = DeviceAllowlist::for_unit(&[DeviceSpec {
                path: path.to_path_buf(),
                access: "rw".into(),
            }])
            .expect_err("not a device");
            assert!(
                matches!(&err, DeviceError::NotADevice { what: w, .. } if *w == what),
                "{err:?}"
            );
        }
        let err = DeviceAllowlist::for_unit(&[spec("/dev/null", "x")]).expect_err("access");
        assert!(matches!(err, DeviceError::Access { .. }), "{err:?}");
    }
}
