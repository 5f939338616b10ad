//! Keys written as a string or an integer: one [`StrOrInt`] as read from
//! the file, and one small function per value kind that turns it into the
//! typed value or a message. The caller attaches the location.

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{
    DURATION_EXPECTED, SIZE_EXPECTED, parse_cpu_max, parse_duration, parse_octal, parse_signal,
    parse_size, signal_from_number,
};
use crate::unit::isolation::{Capability, Rlimit};
use crate::unit::model::{IdSpec, RestartPolicy};
use crate::unit::names::Named;
use crate::unit::resources::CpuMax;

/// A scalar as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOrInt<'a> {
    /// A TOML string.
    Str(&'a str),
    /// A TOML integer.
    Int(i64),
}

impl<'a> StrOrInt<'a> {
    /// The string, or serde's "invalid type" wording for an integer.
    pub fn string(self, expected: &str) -> Result<&'a str, String> {
        match self {
            StrOrInt::Str(s) => Ok(s),
            StrOrInt::Int(n) => Err(format!("invalid type: integer `{n}`, expected {expected}")),
        }
    }
}

/// A duration string, at most `max` (`what` names the key).
pub fn duration(v: StrOrInt, what: &str, max: Duration) -> Result<Duration, String> {
    let s = v.string(DURATION_EXPECTED)?;
    let d = parse_duration(s)?;
    if d > max {
        return Err(format!(
            "{what} {s:?} is too long: at most {:?} is allowed",
            humantime::format_duration(max).to_string()
        ));
    }
    Ok(d)
}

/// A size string or a non-negative integer number of bytes, at most `max`.
pub fn size(v: StrOrInt, what: &str, max: u64) -> Result<u64, String> {
    let bytes = match v {
        StrOrInt::Str(s) => parse_size(s)?,
        StrOrInt::Int(n) => u64::try_from(n).map_err(|_| {
            format!("invalid size {n}: sizes cannot be negative; expected {SIZE_EXPECTED}")
        })?,
    };
    if bytes > max {
        return Err(format!(
            "{what} of {bytes} bytes is too large: at most {max} bytes is allowed"
        ));
    }
    Ok(bytes)
}

/// A memory limit: a size, or `"max"` for no limit (`None`).
pub fn memory(v: StrOrInt, what: &str, max: u64) -> Result<Option<u64>, String> {
    match v {
        StrOrInt::Str("max") => Ok(None),
        v => size(v, what, max)
            .map(Some)
            .map_err(|e| format!("{e}, or \"max\" for no limit")),
    }
}

/// A signal name or number.
pub fn signal(v: StrOrInt) -> Result<Signal, String> {
    match v {
        StrOrInt::Str(s) => parse_signal(s),
        StrOrInt::Int(n) => signal_from_number(n),
    }
}

/// A user or group: a string is a name, an integer a numeric id.
pub fn id(v: StrOrInt) -> Result<IdSpec, String> {
    match v {
        StrOrInt::Str("") => {
            Err("empty name: expected a name (string) or a numeric id (integer)".to_owned())
        }
        StrOrInt::Str(s) if s.contains('\0') => {
            Err("name must not contain NUL characters".to_owned())
        }
        StrOrInt::Str(s) => Ok(IdSpec::Name(s.to_owned())),
        StrOrInt::Int(n) => u32::try_from(n).map(IdSpec::Id).map_err(|_| {
            format!(
                "invalid id {n}: expected an integer between 0 and {}",
                u32::MAX
            )
        }),
    }
}

/// An octal string such as `"0027"`, at most `max`. An integer is refused:
/// `27` would be read as decimal, which is never what is meant.
pub fn octal(v: StrOrInt, max: u32, what: &str) -> Result<u32, String> {
    match v {
        StrOrInt::Str(s) => parse_octal(s, max, what),
        StrOrInt::Int(n) => Err(format!(
            "{what} must be an octal string like \"0027\", not the integer {n} (an integer would be read as decimal)"
        )),
    }
}

/// One of the names of `T` (a namespace, a propagation, a mount type...).
pub fn named<T: Named>(v: StrOrInt) -> Result<T, String> {
    let expected = format!("one of {}", T::expected());
    T::parse(v.string(&expected)?)
}

/// A restart policy. "unless-stopped" gets a tailored message because
/// people coming from Docker will try it.
pub fn restart(v: StrOrInt) -> Result<RestartPolicy, String> {
    if v == StrOrInt::Str("unless-stopped") {
        return Err(
            "restart policy \"unless-stopped\" is not supported: use \"always\" — \
             sup never restarts a unit the operator stopped, so \"always\" already \
             behaves like \"unless-stopped\""
                .to_owned(),
        );
    }
    named(v)
}

/// What a capability looks like.
pub const CAPABILITY_EXPECTED: &str =
    r#"a capability name from capabilities(7) like "net_bind_service" or "CAP_NET_BIND_SERVICE""#;

/// A capability name in any case, with or without the `CAP_` prefix.
pub fn capability(v: StrOrInt) -> Result<Capability, String> {
    let s = v.string(CAPABILITY_EXPECTED)?;
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&name)
        .map(Capability)
        .map_err(|_| format!("unknown capability {s:?}: expected {CAPABILITY_EXPECTED}"))
}

/// What an rlimit value looks like.
pub const RLIMIT_EXPECTED: &str =
    r#"an integer (soft = hard), "unlimited", or a [soft, hard] pair like [1024, 4096]"#;

/// One side of an rlimit: a non-negative integer or `"unlimited"`.
pub fn rlimit_bound(v: StrOrInt) -> Result<u64, String> {
    match v {
        StrOrInt::Str("unlimited") => Ok(Rlimit::UNLIMITED),
        StrOrInt::Str(s) => Err(format!("invalid rlimit {s:?}: expected {RLIMIT_EXPECTED}")),
        StrOrInt::Int(n) => u64::try_from(n).map_err(|_| {
            format!("invalid rlimit {n}: limits cannot be negative; expected {RLIMIT_EXPECTED}")
        }),
    }
}

/// The kernel's `PID_MAX_LIMIT` on 64-bit: `pids.max` refuses more.
pub const PIDS_MAX: u64 = 4_194_304;
/// What `pids_max` looks like.
pub const PIDS_EXPECTED: &str = r#"an integer from 1 to 4194304 like 512, or "max" for no limit"#;

/// `pids_max`: an integer in `1..=PIDS_MAX` or `"max"` (`None`).
pub fn pids(v: StrOrInt) -> Result<Option<u64>, String> {
    match v {
        StrOrInt::Str("max") => Ok(None),
        StrOrInt::Str(s) => Err(format!("invalid pids_max {s:?}: expected {PIDS_EXPECTED}")),
        StrOrInt::Int(n) => match u64::try_from(n) {
            Ok(n) if (1..=PIDS_MAX).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "pids_max {n} is out of range: expected {PIDS_EXPECTED}"
            )),
        },
    }
}

/// `cpu_max`: `"150%"`, `"quota/period"` or `"max"` (`None`).
pub fn cpu_max(v: StrOrInt) -> Result<Option<CpuMax>, String> {
    match v {
        StrOrInt::Str("max") => Ok(None),
        StrOrInt::Str(s) => parse_cpu_max(s).map(Some),
        StrOrInt::Int(n) => Err(format!(
            "cpu_max must be a string, not the integer {n}: expected {}",
            super::CPU_MAX_EXPECTED
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::StrOrInt::{Int, Str};
    use super::*;
    use crate::unit::Namespace;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn durations_are_strings_and_bounded() {
        assert_eq!(duration(Str("1d"), "x", DAY), Ok(DAY));
        let cases = [
            (Int(10), "invalid type: integer `10`, expected a duration"),
            (
                Str("25h"),
                "x \"25h\" is too long: at most \"1day\" is allowed",
            ),
            (Str("500000000000y"), "too long"),
            (Str("600000000000y"), "invalid duration"),
        ];
        for (v, want) in cases {
            let err = duration(v, "x", DAY).unwrap_err();
            assert!(err.contains(want), "{v:?}: {err}");
        }
    }

    #[test]
    fn sizes_and_memory() {
        assert_eq!(size(Str("1K"), "s", 1024), Ok(1024));
        assert_eq!(size(Int(1024), "s", 1024), Ok(1024));
        assert_eq!(memory(Str("max"), "m", 1), Ok(None));
        assert_eq!(memory(Int(5), "m", 5), Ok(Some(5)));
        let cases = [
            (size(Str("2K"), "s", 1024), "s of 2048 bytes is too large"),
            (size(Int(-1), "s", 1024), "cannot be negative"),
        ];
        for (got, want) in cases {
            let err = got.unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let err = memory(Str("x"), "m", 1).unwrap_err();
        assert!(err.contains("or \"max\" for no limit"), "{err}");
        let err = memory(Int(6), "m", 5).unwrap_err();
        assert!(err.contains("at most 5 bytes"), "{err}");
    }

    #[test]
    fn ids_signals_octal() {
        assert_eq!(id(Str("www")), Ok(IdSpec::Name("www".into())));
        assert_eq!(id(Int(33)), Ok(IdSpec::Id(33)));
        assert!(id(Str("")).unwrap_err().contains("empty name"));
        assert!(id(Str("a\0")).unwrap_err().contains("NUL"));
        assert!(id(Int(-1)).unwrap_err().contains("invalid id -1"));
        assert_eq!(signal(Int(9)), Ok(Signal::SIGKILL));
        assert_eq!(signal(Str("INT")), Ok(Signal::SIGINT));
        assert_eq!(octal(Str("0027"), 0o777, "umask"), Ok(0o27));
        let err = octal(Int(27), 0o777, "umask").unwrap_err();
        assert!(err.contains("not the integer 27"), "{err}");
    }

    #[test]
    fn names() {
        assert_eq!(named(Str("net")), Ok(Namespace::Net));
        let err = named::<Namespace>(Str("network")).unwrap_err();
        assert!(err.starts_with("unknown namespace \"network\": expected one of \"user\""));
        let err = named::<Namespace>(Int(1)).unwrap_err();
        assert!(err.starts_with("invalid type: integer `1`, expected one of \"user\""));
        assert_eq!(restart(Str("always")), Ok(RestartPolicy::Always));
        assert!(
            restart(Str("unless-stopped"))
                .unwrap_err()
                .contains("use \"always\"")
        );
    }

    #[test]
    fn capabilities_rlimits_pids_cpu() {
        let cap = |s| capability(Str(s)).map(Capability::name);
        assert_eq!(cap("net_admin"), Ok("CAP_NET_ADMIN".into()));
        assert_eq!(cap("Cap_Kill"), Ok("CAP_KILL".into()));
        assert!(
            cap("net")
                .unwrap_err()
                .starts_with("unknown capability \"net\"")
        );
        assert_eq!(rlimit_bound(Str("unlimited")), Ok(u64::MAX));
        assert_eq!(rlimit_bound(Int(7)), Ok(7));
        assert!(rlimit_bound(Int(-1)).unwrap_err().contains("negative"));
        assert!(rlimit_bound(Str("lots")).unwrap_err().contains("\"lots\""));
        assert_eq!(pids(Str("max")), Ok(None));
        assert_eq!(pids(Int(4_194_304)), Ok(Some(4_194_304)));
        for bad in [Int(0), Int(4_194_305), Str("lots")] {
            assert!(pids(bad).unwrap_err().contains(PIDS_EXPECTED), "{bad:?}");
        }
        assert_eq!(cpu_max(Str("max")), Ok(None));
        assert!(cpu_max(Int(5)).unwrap_err().contains("not the integer 5"));
    }
}
