//! Docker's default seccomp profile, read from the verbatim copy in
//! `docker-default.json`, and what it decides for one host.
//!
//! # Source
//!
//! `docker-default.json` is `seccomp/default.json` of github.com/moby/profiles at tag
//! `seccomp/v0.2.3` (commit f1a0fd6b5a369fca061b041539129661ed337ef5, git blob
//! ea5a494afb8d64898fa0f4f47ae0c4f5ba9cbbc9; unchanged at that repository's head of
//! 2026-06-30), the profile Docker Engine vendors and applies by default. Apache-2.0,
//! like sup. It is kept byte for byte so that an update is a file copy plus `cargo test`:
//! anything in a new version this reader does not understand is an error, not a
//! silently weaker filter.
//!
//! # How a rule applies (as moby's `seccomp_linux.go` describes it)
//!
//! A rule applies to a host unless `excludes` names its architecture, one of its
//! capabilities or a kernel version it reaches; and only if `includes` names its
//! architecture (when it lists any), all of its listed capabilities, and a kernel
//! version it reaches. Capabilities are those of the container's bounding set.
//! The rule's action then holds for each of its names, for the argument conditions of
//! the rule (ANDed) when it has any.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The profile file, as Docker ships it.
pub(super) const DOCKER_DEFAULT: &str = include_str!("docker-default.json");

/// How an argument is compared, with libseccomp's meaning (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

/// One argument condition of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ArgCmp {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    pub value_two: u64,
}

/// What the applicable rules decide for one syscall name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Allowed whatever the arguments.
    Allow,
    /// Fails with this errno whatever the arguments.
    Errno(u16),
    /// Allowed when one of these condition lists holds (each list ANDed).
    AllowIf(Vec<Vec<ArgCmp>>),
}

/// The host a profile is applied to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Host<'a> {
    /// Docker's (Go's) name of the architecture: `amd64`, `arm64`.
    pub arch: &'a str,
    /// Names of the bounding set's capabilities, `CAP_SYS_ADMIN` style.
    pub caps: &'a BTreeSet<String>,
    /// The running kernel's (major, minor), if known; rules with a minimum kernel are
    /// left out when it is not.
    pub kernel: Option<(u32, u32)>,
}

/// A parsed and checked profile.
#[derive(Debug, Clone)]
pub(super) struct Profile {
    /// The errno of every syscall no rule allows.
    pub default_errno: u16,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    names: Vec<String>,
    /// `None`: allow; `Some(e)`: fail with errno `e`.
    errno: Option<u16>,
    args: Vec<ArgCmp>,
    includes: Filter,
    excludes: Filter,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u16>,
    syscalls: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFile {
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u16>,
    #[serde(default)]
    args: Option<Vec<ArgFile>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArgFile {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// libseccomp's errno when a profile names none (`defaultErrnoRet` absent).
const LIBSECCOMP_DEFAULT_ERRNO: u16 = libc::EPERM as u16;

impl Profile {
    /// Docker's default profile, embedded in the binary.
    pub fn docker() -> Result<Profile, String> {
        Profile::parse(DOCKER_DEFAULT)
    }

    /// Parse a profile in Docker's format. Only what an allowlist with errno answers
    /// needs is accepted: default action `SCMP_ACT_ERRNO`, rules that allow (with or
    /// without argument conditions) or fail with an errno (without conditions).
    pub fn parse(text: &str) -> Result<Profile, String> {
        let file: ProfileFile =
            serde_json::from_str(text).map_err(|e| format!("seccomp profile: {e}"))?;
        if file.default_action != "SCMP_ACT_ERRNO" {
            return Err(format!(
                "seccomp profile: default action {} (only SCMP_ACT_ERRNO is supported)",
                file.default_action
            ));
        }
        let rules = file
            .syscalls
            .into_iter()
            .map(Rule::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Profile {
            default_errno: file.default_errno_ret.unwrap_or(LIBSECCOMP_DEFAULT_ERRNO),
            rules,
        })
    }

    /// Every syscall name any rule mentions, for any host.
    pub fn names(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }

    /// The verdict for every name some rule that applies to `host` mentions. An
    /// errno rule wins over an allowing one, an unconditional allow over conditions.
    pub fn verdicts(&self, host: &Host) -> BTreeMap<String, Verdict> {
        let mut out: BTreeMap<String, Verdict> = BTreeMap::new();
        for rule in self.rules.iter().filter(|r| r.applies(host)) {
            for name in &rule.names {
                let new = match rule.errno {
                    Some(e) => Verdict::Errno(e),
                    None if rule.args.is_empty() => Verdict::Allow,
                    None => Verdict::AllowIf(vec![rule.args.clone()]),
                };
                let merged = match (out.remove(name), new) {
                    (None, new) => new,
                    (Some(Verdict::Errno(e)), _) | (_, Verdict::Errno(e)) => Verdict::Errno(e),
                    (Some(Verdict::Allow), _) | (_, Verdict::Allow) => Verdict::Allow,
                    (Some(Verdict::AllowIf(mut a)), Verdict::AllowIf(b)) => {
                        a.extend(b);
                        Verdict::AllowIf(a)
                    }
                };
                out.insert(name.clone(), merged);
            }
        }
        out
    }
}

impl Rule {
    fn applies(&self, host: &Host) -> bool {
        let has_cap = |c: &String| host.caps.contains(c);
        // None when the running kernel or the version is unknown: such a rule is left
        // out either way (not included, or excluded).
        let kernel_reaches = |min: &str| Some(host.kernel? >= parse_version(min)?);
        let ex = &self.excludes;
        let excluded = ex.arches.iter().flatten().any(|a| a == host.arch)
            || ex.caps.iter().flatten().any(has_cap)
            || ex
                .min_kernel
                .as_deref()
                .is_some_and(|m| kernel_reaches(m) != Some(false));
        let inc = &self.includes;
        let included = inc
            .arches
            .as_ref()
            .is_none_or(|a| a.is_empty() || a.iter().any(|a| a == host.arch))
            && inc.caps.iter().flatten().all(has_cap)
            && inc
                .min_kernel
                .as_deref()
                .is_none_or(|m| kernel_reaches(m) == Some(true));
        !excluded && included
    }
}

impl TryFrom<RuleFile> for Rule {
    type Error = String;

    fn try_from(r: RuleFile) -> Result<Rule, String> {
        let args = r
            .args
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let op = parse_op(&a.op)
                    .ok_or_else(|| format!("seccomp profile: unknown comparison {}", a.op))?;
                if a.index > 5 {
                    return Err(format!("seccomp profile: argument index {}", a.index));
                }
                Ok(ArgCmp {
                    index: a.index,
                    op,
                    value: a.value,
                    value_two: a.value_two,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let errno = match (r.action.as_str(), r.errno_ret) {
            ("SCMP_ACT_ALLOW", _) => None,
            ("SCMP_ACT_ERRNO", e) if args.is_empty() => Some(e.unwrap_or(LIBSECCOMP_DEFAULT_ERRNO)),
            (action, _) => {
                return Err(format!(
                    "seccomp profile: unsupported rule {action} for {:?}",
                    r.names
                ));
            }
        };
        let includes = r.includes.unwrap_or_default();
        let excludes = r.excludes.unwrap_or_default();
        for v in [&includes.min_kernel, &excludes.min_kernel]
            .into_iter()
            .flatten()
        {
            parse_version(v).ok_or_else(|| format!("seccomp profile: kernel version {v:?}"))?;
        }
        Ok(Rule {
            names: r.names,
            errno,
            args,
            includes,
            excludes,
        })
    }
}

fn parse_op(op: &str) -> Option<CmpOp> {
    Some(match op {
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        _ => return None,
    })
}

/// `(major, minor)` of a kernel release or version: `"4.8"`, `"6.18.44-foo"`.
pub(super) fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host<'a>(arch: &'a str, caps: &'a BTreeSet<String>, kernel: (u32, u32)) -> Host<'a> {
        Host {
            arch,
            caps,
            kernel: Some(kernel),
        }
    }

    fn caps(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// A one-rule profile with the given `includes`/`excludes` JSON.
    fn one_rule(filters: &str) -> Profile {
        Profile::parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {{"names":["x"],"action":"SCMP_ACT_ALLOW"{filters}}}]}}"#
        ))
        .expect("parses")
    }

    #[test]
    fn includes_and_excludes_decide_whether_a_rule_applies() {
        let none = caps(&[]);
        let admin = caps(&["CAP_SYS_ADMIN"]);
        let both = caps(&["CAP_SYS_ADMIN", "CAP_BPF"]);
        /// (filters, arch, caps, kernel, applies)
        type Case<'a> = (&'a str, &'a str, &'a BTreeSet<String>, (u32, u32), bool);
        let cases: &[Case] = &[
            ("", "amd64", &none, (6, 1), true),
            (r#","includes":{}"#, "amd64", &none, (6, 1), true),
            (
                r#","includes":{"arches":["amd64","x32"]}"#,
                "amd64",
                &none,
                (6, 1),
                true,
            ),
            (
                r#","includes":{"arches":["arm","arm64"]}"#,
                "amd64",
                &none,
                (6, 1),
                false,
            ),
            (
                r#","includes":{"arches":["arm","arm64"]}"#,
                "arm64",
                &none,
                (6, 1),
                true,
            ),
            (
                r#","includes":{"caps":["CAP_SYS_ADMIN"]}"#,
                "amd64",
                &none,
                (6, 1),
                false,
            ),
            (
                r#","includes":{"caps":["CAP_SYS_ADMIN"]}"#,
                "amd64",
                &admin,
                (6, 1),
                true,
            ),
            (
                r#","includes":{"caps":["CAP_SYS_ADMIN","CAP_BPF"]}"#,
                "amd64",
                &admin,
                (6, 1),
                false,
            ),
            (
                r#","includes":{"caps":["CAP_SYS_ADMIN","CAP_BPF"]}"#,
                "amd64",
                &both,
                (6, 1),
                true,
            ),
            (
                r#","includes":{"minKernel":"4.8"}"#,
                "amd64",
                &none,
                (4, 4),
                false,
            ),
            (
                r#","includes":{"minKernel":"4.8"}"#,
                "amd64",
                &none,
                (4, 8),
                true,
            ),
            (
                r#","includes":{"minKernel":"4.8"}"#,
                "amd64",
                &none,
                (5, 0),
                true,
            ),
            (
                r#","excludes":{"caps":["CAP_SYS_ADMIN"]}"#,
                "amd64",
                &none,
                (6, 1),
                true,
            ),
            (
                r#","excludes":{"caps":["CAP_SYS_ADMIN"]}"#,
                "amd64",
                &admin,
                (6, 1),
                false,
            ),
            (
                r#","excludes":{"caps":["CAP_BPF","CAP_SYS_ADMIN"]}"#,
                "amd64",
                &admin,
                (6, 1),
                false,
            ),
            (
                r#","excludes":{"arches":["s390x"]}"#,
                "amd64",
                &none,
                (6, 1),
                true,
            ),
            (
                r#","excludes":{"arches":["amd64"]}"#,
                "amd64",
                &none,
                (6, 1),
                false,
            ),
            (
                r#","excludes":{"minKernel":"5.0"}"#,
                "amd64",
                &none,
                (4, 19),
                true,
            ),
            (
                r#","excludes":{"minKernel":"5.0"}"#,
                "amd64",
                &none,
                (5, 0),
                false,
            ),
        ];
        for &(filters, arch, caps, kernel, applies) in cases {
            let verdicts = one_rule(filters).verdicts(&host(arch, caps, kernel));
            assert_eq!(
                verdicts.contains_key("x"),
                applies,
                "{filters} {arch} {caps:?} {kernel:?}"
            );
        }
    }

    #[test]
    fn an_unknown_kernel_drops_rules_that_depend_on_it() {
        let none = caps(&[]);
        let unknown = Host {
            arch: "amd64",
            caps: &none,
            kernel: None,
        };
        for filters in [
            r#","includes":{"minKernel":"4.8"}"#,
            r#","excludes":{"minKernel":"4.8"}"#,
        ] {
            assert!(one_rule(filters).verdicts(&unknown).is_empty(), "{filters}");
        }
    }

    #[test]
    fn verdicts_merge_errno_over_allow_over_conditions() {
        let profile = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
                {"names":["a","b","c"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
                {"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":7,"valueTwo":2,"op":"SCMP_CMP_MASKED_EQ"}]},
                {"names":["b"],"action":"SCMP_ACT_ALLOW"},
                {"names":["c"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        )
        .expect("parses");
        let none = caps(&[]);
        let v = profile.verdicts(&host("amd64", &none, (6, 1)));
        let eq = |index, op, value, value_two| ArgCmp {
            index,
            op,
            value,
            value_two,
        };
        assert_eq!(
            v["a"],
            Verdict::AllowIf(vec![
                vec![eq(0, CmpOp::Eq, 1, 0)],
                vec![eq(1, CmpOp::MaskedEq, 7, 2)]
            ])
        );
        assert_eq!(v["b"], Verdict::Allow);
        assert_eq!(v["c"], Verdict::Errno(38));
        assert_eq!(profile.default_errno, 1);
    }

    #[test]
    fn what_the_reader_does_not_understand_is_an_error() {
        let rule = |r: &str| format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{r}]}}"#);
        for bad in [
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#.to_string(),
            rule(r#"{"names":["x"],"action":"SCMP_ACT_KILL"}"#),
            rule(
                r#"{"names":["x"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}"#,
            ),
            rule(
                r#"{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_ODD"}]}"#,
            ),
            rule(
                r#"{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}"#,
            ),
            rule(r#"{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"new"}}"#),
            "not json".to_string(),
        ] {
            assert!(Profile::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_default_profile_parses() {
        let docker = Profile::docker().expect("the embedded profile parses");
        assert_eq!(docker.default_errno, libc::EPERM as u16);
        let names = docker.names();
        assert_eq!(
            names.len(),
            426,
            "distinct names in moby/profiles seccomp/v0.2.3"
        );
        for name in ["read", "clone3", "io_uring_setup"] {
            assert_eq!(names.contains(name), name != "io_uring_setup", "{name}");
        }
    }

    #[test]
    fn kernel_versions_parse() {
        let cases = [
            ("4.8", Some((4, 8))),
            ("6.18.44-fc-v669\n", Some((6, 18))),
            ("5.10.0-30-amd64", Some((5, 10))),
            ("6.1-rc1", Some((6, 1))),
            ("6", None),
            ("x.1", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_version(text), want, "{text:?}");
        }
    }
}
