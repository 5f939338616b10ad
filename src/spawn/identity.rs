//! Who a service runs as: `user`, `group` and `supplementary_groups` looked up in
//! the account files of the root it will see (`accounts`, in supd, before the
//! container exists), then turned into uid, gid and groups by a pure function, as
//! systemd's User=/Group=.

use std::path::{Path, PathBuf};

use nix::unistd::{getegid, geteuid};

use super::accounts::{Accounts, UserEntry};
use super::{Credentials, SpawnError, Step};
use crate::unit::IdSpec;

/// The service's user as the database knows it.
#[derive(Debug, Clone, PartialEq)]
enum Who {
    /// No `user`: supd's own ids.
    Supd { uid: u32, gid: u32 },
    /// A user with an entry: its primary group and the groups it is a member of.
    Listed {
        uid: u32,
        gid: u32,
        memberships: Vec<u32>,
    },
    /// A numeric `user` without an entry (common for users of an image).
    Unlisted(u32),
}

/// The account behind `user`, for HOME, USER and LOGNAME.
#[derive(Debug)]
pub struct Account {
    pub name: String,
    pub home: PathBuf,
}

/// What the service runs as: its credentials (None: supd's own, unchanged) and
/// its account (None: no `user`, or one without an entry). Names are looked up in
/// the account files below `root` (the unit's rootfs, or `/`), read only when a
/// name or an account is asked for.
pub fn resolve(
    root: &Path,
    user: Option<&IdSpec>,
    group: Option<&IdSpec>,
    supplementary: &[IdSpec],
) -> Result<(Option<Credentials>, Option<Account>), SpawnError> {
    if user.is_none() && group.is_none() && supplementary.is_empty() {
        return Ok((None, None));
    }
    let db = Accounts::read(root)?;
    let record = match user {
        Some(spec) => lookup_user(&db, spec)?,
        None => None,
    };
    let who = match (user, &record) {
        (_, Some(u)) => Who::Listed {
            uid: u.uid,
            gid: u.gid,
            memberships: db.memberships(&u.name, u.gid),
        },
        (Some(IdSpec::Id(uid)), None) => Who::Unlisted(*uid),
        _ => Who::Supd {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
        },
    };
    let group = group.map(|g| group_id(&db, g)).transpose()?;
    let extra = supplementary
        .iter()
        .map(|g| group_id(&db, g))
        .collect::<Result<Vec<_>, _>>()?;
    let account = record.map(|u| Account {
        name: u.name.clone(),
        home: u.home.clone(),
    });
    Ok((credentials(&who, group, &extra), account))
}

/// uid, primary gid and groups. A listed user brings its primary group and its
/// memberships; `group` overrides the primary group. An unlisted numeric user
/// has neither, so (as systemd does) its gid is its uid and it gets no groups
/// but the declared ones: never supd's root group.
fn credentials(who: &Who, group: Option<u32>, extra: &[u32]) -> Option<Credentials> {
    let (uid, gid, mut groups) = match who {
        Who::Supd { .. } if group.is_none() && extra.is_empty() => return None,
        Who::Supd { uid, gid } => {
            let gid = group.unwrap_or(*gid);
            (*uid, gid, vec![gid])
        }
        Who::Listed {
            uid,
            gid,
            memberships,
        } => {
            let gid = group.unwrap_or(*gid);
            let mut groups = vec![gid];
            groups.extend_from_slice(memberships);
            (*uid, gid, groups)
        }
        Who::Unlisted(uid) => (*uid, group.unwrap_or(*uid), Vec::new()),
    };
    groups.extend_from_slice(extra);
    groups.sort_unstable();
    groups.dedup();
    Some(Credentials { uid, gid, groups })
}

/// A user's entry; None for a numeric id without one (a name must exist).
fn lookup_user<'a>(db: &'a Accounts, spec: &IdSpec) -> Result<Option<&'a UserEntry>, SpawnError> {
    let found = match spec {
        IdSpec::Name(name) => db.user_by_name(name),
        IdSpec::Id(uid) => db.user_by_uid(*uid),
    };
    match found {
        Some(u) => Ok(Some(u)),
        None if matches!(spec, IdSpec::Id(_)) => Ok(None),
        None => Err(missing(
            Step::ResolveUser,
            &shown(spec, "user"),
            "user database (/etc/passwd)",
        )),
    }
}

fn group_id(db: &Accounts, spec: &IdSpec) -> Result<u32, SpawnError> {
    let name = match spec {
        IdSpec::Id(gid) => return Ok(*gid),
        IdSpec::Name(name) => name,
    };
    db.group_by_name(name).map(|g| g.gid).ok_or_else(|| {
        missing(
            Step::ResolveGroup,
            &shown(spec, "group"),
            "group database (/etc/group)",
        )
    })
}

fn missing(step: Step, shown: &str, database: &str) -> SpawnError {
    SpawnError::new(step, None, None, format!("no {shown} in the {database}"))
}

/// `user "www"` or `uid 1234` (`group "adm"`, `gid 4`), for messages.
fn shown(spec: &IdSpec, kind: &str) -> String {
    match (spec, kind) {
        (IdSpec::Name(name), _) => format!("{kind} {name:?}"),
        (IdSpec::Id(id), "user") => format!("uid {id}"),
        (IdSpec::Id(id), _) => format!("gid {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32, gid: u32, groups: &[u32]) -> Option<Credentials> {
        Some(Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
        })
    }

    #[test]
    fn credentials_follow_systemd_rules() {
        let supd = Who::Supd { uid: 0, gid: 0 };
        let listed = Who::Listed {
            uid: 33,
            gid: 33,
            memberships: vec![33, 4],
        };
        let unlisted = Who::Unlisted(1234);
        // (who, group, supplementary) -> credentials
        let cases = [
            (&supd, None, vec![], None),
            (&supd, Some(5), vec![], creds(0, 5, &[5])),
            (&supd, None, vec![7], creds(0, 0, &[0, 7])),
            (&listed, None, vec![], creds(33, 33, &[4, 33])),
            (&listed, Some(5), vec![9], creds(33, 5, &[4, 5, 9, 33])),
            // No entry: the uid doubles as gid, and supd's groups are not inherited.
            (&unlisted, None, vec![], creds(1234, 1234, &[])),
            (&unlisted, Some(5), vec![], creds(1234, 5, &[])),
            (&unlisted, None, vec![7, 7], creds(1234, 1234, &[7])),
        ];
        for (who, group, extra, want) in cases {
            assert_eq!(credentials(who, group, &extra), want, "{who:?} {group:?}");
        }
    }

    #[test]
    fn messages_name_the_user_not_rust_values() {
        let db = Accounts::parse("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n");
        let name = IdSpec::Name("no-such-user-sup-test".into());
        let e = lookup_user(&db, &name).expect_err("missing user is an error");
        assert_eq!(
            e.to_string(),
            "resolve user: no user \"no-such-user-sup-test\" in the user database (/etc/passwd)"
        );
        let e = group_id(&db, &IdSpec::Name("no-such-group-sup-test".into()))
            .expect_err("missing group is an error");
        assert_eq!(
            e.to_string(),
            "resolve group: no group \"no-such-group-sup-test\" in the group database (/etc/group)"
        );
        assert_eq!(shown(&IdSpec::Id(1234), "user"), "uid 1234");
        assert_eq!(shown(&IdSpec::Id(4), "group"), "gid 4");
        assert_eq!(
            lookup_user(&db, &IdSpec::Id(3_999_999_999)).ok(),
            Some(None),
            "a numeric user needs no entry"
        );
    }
}

#[cfg(test)]
mod rootfs_tests {
    use super::*;

    /// A `user` named in an image resolves in the image's files, not the host's.
    #[test]
    fn names_resolve_in_the_root_the_service_sees() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("etc")).expect("etc");
        std::fs::write(
            root.path().join("etc/passwd"),
            "redis:x:999:998::/var/lib/redis:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(
            root.path().join("etc/group"),
            "redis:x:998:\nextra:x:42:redis\n",
        )
        .expect("group");
        let user = IdSpec::Name("redis".into());
        let (creds, account) =
            resolve(root.path(), Some(&user), None, &[]).expect("resolved in the rootfs");
        assert_eq!(
            creds,
            Some(Credentials {
                uid: 999,
                gid: 998,
                groups: vec![42, 998]
            })
        );
        assert_eq!(
            account.map(|a| a.home),
            Some(PathBuf::from("/var/lib/redis"))
        );
        let err = resolve(root.path(), Some(&IdSpec::Name("root".into())), None, &[])
            .expect_err("not in the image");
        assert!(err.to_string().contains("no user \"root\""), "{err}");
    }
}
