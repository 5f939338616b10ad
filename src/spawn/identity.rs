//! Who a service runs as: `user`, `group` and `supplementary_groups` looked up in
//! the user and group databases (in supd, before the container exists), then
//! turned into uid, gid and groups by a pure function, as systemd's User=/Group=.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, User, getegid, geteuid, getgrouplist};

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
pub struct Account {
    pub name: String,
    pub home: PathBuf,
}

/// What the service runs as: its credentials (None: supd's own, unchanged) and
/// its account (None: no `user`, or one without a database entry).
pub fn resolve(
    user: Option<&IdSpec>,
    group: Option<&IdSpec>,
    supplementary: &[IdSpec],
) -> Result<(Option<Credentials>, Option<Account>), SpawnError> {
    let record = match user {
        Some(spec) => lookup_user(spec)?,
        None => None,
    };
    let who = match (user, &record) {
        (_, Some(u)) => Who::Listed {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            memberships: memberships(u),
        },
        (Some(IdSpec::Id(uid)), None) => Who::Unlisted(*uid),
        _ => Who::Supd {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
        },
    };
    let group = group.map(group_id).transpose()?;
    let extra = supplementary
        .iter()
        .map(group_id)
        .collect::<Result<Vec<_>, _>>()?;
    let account = record.map(|u| Account {
        name: u.name,
        home: u.dir,
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
fn lookup_user(spec: &IdSpec) -> Result<Option<User>, SpawnError> {
    let found = match spec {
        IdSpec::Name(name) => User::from_name(name),
        IdSpec::Id(uid) => User::from_uid((*uid).into()),
    };
    let shown = shown(spec, "user");
    match answer(found, Step::ResolveUser, &shown)? {
        Some(u) => Ok(Some(u)),
        None if matches!(spec, IdSpec::Id(_)) => Ok(None),
        None => Err(missing(
            Step::ResolveUser,
            &shown,
            "user database (/etc/passwd)",
        )),
    }
}

fn group_id(spec: &IdSpec) -> Result<u32, SpawnError> {
    let name = match spec {
        IdSpec::Id(gid) => return Ok(*gid),
        IdSpec::Name(name) => name,
    };
    let shown = shown(spec, "group");
    answer(Group::from_name(name), Step::ResolveGroup, &shown)?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| missing(Step::ResolveGroup, &shown, "group database (/etc/group)"))
}

/// A database lookup's result, its failure naming what was looked up.
fn answer<T>(
    found: nix::Result<Option<T>>,
    step: Step,
    shown: &str,
) -> Result<Option<T>, SpawnError> {
    found.map_err(|e| SpawnError::new(step, None, Some(e), format!("looking up {shown}")))
}

fn missing(step: Step, shown: &str, database: &str) -> SpawnError {
    SpawnError::new(step, None, None, format!("no {shown} in the {database}"))
}

/// The groups a user is a member of (with its primary group); none if the
/// database cannot say.
fn memberships(u: &User) -> Vec<u32> {
    let Ok(name) = CString::new(u.name.as_bytes()) else {
        return Vec::new();
    };
    getgrouplist(&name, u.gid)
        .map(|list| list.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
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
        let name = IdSpec::Name("no-such-user-sup-test".into());
        let e = lookup_user(&name).expect_err("missing user is an error");
        assert_eq!(
            e.to_string(),
            "resolve user: no user \"no-such-user-sup-test\" in the user database (/etc/passwd)"
        );
        let e = group_id(&IdSpec::Name("no-such-group-sup-test".into()))
            .expect_err("missing group is an error");
        assert_eq!(
            e.to_string(),
            "resolve group: no group \"no-such-group-sup-test\" in the group database (/etc/group)"
        );
        assert_eq!(shown(&IdSpec::Id(1234), "user"), "uid 1234");
        assert_eq!(shown(&IdSpec::Id(4), "group"), "gid 4");
        assert_eq!(
            lookup_user(&IdSpec::Id(3_999_999_999)).ok(),
            Some(None),
            "a numeric user needs no entry"
        );
    }
}
