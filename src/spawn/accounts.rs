//! The user and group databases, read from the files `/etc/passwd` and
//! `/etc/group` of the root the service will see: the host's, or its own `rootfs`
//! (as runc and Docker resolve `user` in the image). No NSS: a static supd, an
//! initramfs and an image have no NSS modules, and a host's LDAP users are no
//! business of a container. Files are opened confined to the root
//! (`openat2(RESOLVE_IN_ROOT)`), so a link in an image cannot make supd read a
//! host file.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::Mode;

use super::{SpawnError, Step};

/// Larger account files are refused rather than read into memory.
const MAX_FILE: u64 = 16 << 20;

/// One line of `passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// One line of `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The accounts of one root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    pub users: Vec<UserEntry>,
    pub groups: Vec<GroupEntry>,
}

impl Accounts {
    /// Read `etc/passwd` and `etc/group` below `root`; a missing file is empty.
    pub fn read(root: &Path) -> Result<Accounts, SpawnError> {
        let dir = open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed(root, "", e))?;
        let passwd = read_confined(&dir, root, "etc/passwd")?;
        let group = read_confined(&dir, root, "etc/group")?;
        Ok(Accounts::parse(&passwd, &group))
    }

    /// Parse the two files; malformed lines are skipped, as libc does.
    pub fn parse(passwd: &str, group: &str) -> Accounts {
        let users = passwd
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                let [name, _, uid, gid, _, home, ..] = f.as_slice() else {
                    return None;
                };
                Some(UserEntry {
                    name: valid_name(name)?,
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                    home: PathBuf::from(home),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                let [name, _, gid, members, ..] = f.as_slice() else {
                    return None;
                };
                Some(GroupEntry {
                    name: valid_name(name)?,
                    gid: gid.parse().ok()?,
                    members: members
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            })
            .collect();
        Accounts { users, groups }
    }

    pub fn user_by_name(&self, name: &str) -> Option<&UserEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&UserEntry> {
        self.users.iter().find(|u| u.uid == uid)
    }

    pub fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The groups `user` is a member of, with its primary group `gid`.
    pub fn memberships(&self, user: &str, gid: u32) -> Vec<u32> {
        let mut out = vec![gid];
        out.extend(
            self.groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == user))
                .map(|g| g.gid),
        );
        out
    }
}

/// Comments and NIS `+`/`-` lines are not accounts.
fn valid_name(name: &str) -> Option<String> {
    let ok = !name.is_empty() && !name.starts_with(['#', '+', '-']);
    ok.then(|| name.to_string())
}

fn failed(root: &Path, file: &str, e: Errno) -> SpawnError {
    let path = root.join(file);
    SpawnError::new(
        Step::ReadAccounts,
        Some(&path.to_string_lossy()),
        Some(e),
        "",
    )
}

/// A regular file below the root, resolved with the root as `/`; "" if absent.
fn read_confined(dir: &OwnedFd, root: &Path, file: &str) -> Result<String, SpawnError> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(dir, file, how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(failed(root, file, e)),
    };
    let mut f = std::fs::File::from(fd);
    let meta = f.metadata().map_err(|e| failed(root, file, io_errno(&e)))?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(failed(root, file, Errno::EINVAL));
    }
    let mut text = String::new();
    (&mut f)
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| failed(root, file, io_errno(&e)))?;
    Ok(text)
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
        broken:x:notanumber:1:::\n\
        +nisuser:::::\n\
        app:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:app,syslog\nwww-data:x:33:\napp:x:1000:\nweird\n";

    #[test]
    fn parses_the_files_like_libc_and_skips_the_rest() {
        let a = Accounts::parse(PASSWD, GROUP);
        let names: Vec<&str> = a.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, vec!["root", "www-data", "app"]);
        let www = a.user_by_name("www-data").expect("www-data");
        assert_eq!((www.uid, www.gid), (33, 33));
        assert_eq!(www.home, PathBuf::from("/var/www"));
        assert_eq!(a.user_by_uid(1000).map(|u| u.name.as_str()), Some("app"));
        assert_eq!(a.group_by_name("adm").map(|g| g.gid), Some(4));
        assert_eq!(a.memberships("app", 1000), vec![1000, 4]);
        assert_eq!(a.memberships("www-data", 33), vec![33]);
    }

    #[test]
    fn reads_inside_the_root_only() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("etc")).expect("etc");
        // An image whose /etc/passwd points at the host's file: resolved inside
        // the root, it names a file the image does not have.
        std::os::unix::fs::symlink("/etc/hostname-of-host", root.path().join("etc/passwd"))
            .expect("symlink");
        std::fs::write(root.path().join("etc/group"), "g:x:7:\n").expect("group");
        let a = Accounts::read(root.path()).expect("read");
        assert!(a.users.is_empty(), "{a:?}");
        assert_eq!(a.group_by_name("g").map(|g| g.gid), Some(7));
        // The host's own files.
        let host = Accounts::read(Path::new("/")).expect("host");
        assert_eq!(host.user_by_uid(0).map(|u| u.name.as_str()), Some("root"));
    }
}
