//! Pure parsers for the scalar value syntaxes used in unit files.
//!
//! They return a human-readable message on failure; the TOML layer attaches
//! the file location.

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::resources::CpuMax;

/// What a duration looks like; repeated in every duration error.
pub const DURATION_EXPECTED: &str = r#"a duration like "250ms", "10s" or "2m""#;
/// What a size looks like; repeated in every size error.
pub const SIZE_EXPECTED: &str = r#"a size like "512M" (1024-based: K, M, G, T; optional "i"/"B")"#;
/// What a signal looks like; repeated in every signal error.
pub const SIGNAL_EXPECTED: &str =
    r#"a signal name like "SIGTERM", "TERM" or "sigterm", or a signal number"#;

/// Parses a humantime duration ("250ms", "10s", "1h30m").
///
/// Negative values get their own message because humantime's own error for
/// them ("expected number") is confusing.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if trimmed.starts_with('-') {
        return Err(format!(
            "invalid duration {s:?}: durations cannot be negative; expected {DURATION_EXPECTED}"
        ));
    }
    if trimmed.is_empty() {
        return Err(format!("empty duration: expected {DURATION_EXPECTED}"));
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("invalid duration {s:?} ({e}): expected {DURATION_EXPECTED}"))
}

/// Parses a byte size: digits, an optional K/M/G/T multiplier (1024-based,
/// case-insensitive), an optional "i" after the multiplier and an optional
/// "B". "512M", "512MiB" and "512MB" are all 512 MiB; "4096" and "4096B" are
/// bytes.
///
/// Decimal (1000-based) sizes are deliberately not offered: log limits are
/// about disk blocks, and one meaning per suffix avoids surprises.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("invalid size {s:?}: {why}; expected {SIZE_EXPECTED}");
    if s.starts_with('-') {
        return Err(bad("sizes cannot be negative"));
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad("missing number"));
    }
    if suffix.starts_with(['.', ',']) {
        return Err(bad("fractions are not allowed, use a smaller unit"));
    }
    let number: u64 = digits.parse().map_err(|_| bad("number too large"))?;
    let multiplier = size_multiplier(suffix).ok_or_else(|| bad("unknown suffix"))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| bad("too large (does not fit in 64 bits)"))
}

/// Maps a size suffix to its multiplier, or `None` if it is not one of
/// "", "B", "K", "KB", "Ki", "KiB", ... (case-insensitive letters).
fn size_multiplier(suffix: &str) -> Option<u64> {
    let lower = suffix.to_ascii_lowercase();
    let rest = lower.strip_suffix('b').unwrap_or(&lower);
    if rest.is_empty() {
        return Some(1);
    }
    let rest = rest.strip_suffix('i').unwrap_or(rest);
    let power = match rest {
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => return None,
    };
    Some(1024u64.pow(power))
}

/// Parses an octal permission-style number such as `"0027"` or `"1777"`:
/// one or more digits `0`-`7`, at most `max`. `what` names the setting in
/// the message ("umask", "mode").
pub fn parse_octal(s: &str, max: u32, what: &str) -> Result<u32, String> {
    let expected = format!("an octal string like \"0027\" (digits 0-7, at most \"{max:04o}\")");
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("invalid {what} {s:?}: expected {expected}"));
    }
    match u32::from_str_radix(s, 8) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{what} {s:?} is too large: expected {expected}")),
    }
}

/// Parses a signal name ("SIGTERM", "TERM", "sigterm") or a decimal number
/// given as a string ("15").
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    if let Ok(number) = s.parse::<i64>() {
        return signal_from_number(number);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("unknown signal {s:?}: expected {SIGNAL_EXPECTED}"))
}

/// Converts a signal number to a [`Signal`], rejecting numbers this platform
/// does not define (including 0, which is not a real signal).
pub fn signal_from_number(number: i64) -> Result<Signal, String> {
    i32::try_from(number)
        .ok()
        .and_then(|n| Signal::try_from(n).ok())
        .ok_or_else(|| format!("unknown signal number {number}: expected {SIGNAL_EXPECTED}"))
}

/// What a CPU bandwidth limit looks like; repeated in every `cpu_max` error.
pub const CPU_MAX_EXPECTED: &str = r#"a percentage of one CPU like "150%" (1% to 100000%), "quota/period" in microseconds like "50000/100000", or "max" for no limit"#;
/// What a cpu list looks like; repeated in every `cpuset_*` error.
pub const CPU_LIST_EXPECTED: &str = r#"a list like "0-2,4": comma-separated numbers below 4096 or ranges "a-b" with a <= b, no spaces"#;

/// Parses a CPU bandwidth limit: `"150%"` (percent of one CPU, 1..=100000,
/// with the default 100 ms period) or `"quota_us/period_us"` (period
/// 1000..=1000000, quota 1000..=1000*period). `"max"` is handled by the
/// caller.
pub fn parse_cpu_max(s: &str) -> Result<CpuMax, String> {
    let bad = |why: &str| format!("invalid cpu_max {s:?}: {why}; expected {CPU_MAX_EXPECTED}");
    let number = |part: &str, what: &str| -> Result<u64, String> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            let why = if part.contains(['.', ',']) {
                format!("{what} must be a whole number")
            } else {
                format!("{what} must be a non-negative whole number")
            };
            return Err(bad(&why));
        }
        part.parse()
            .map_err(|_| bad(&format!("{what} is too large")))
    };
    if let Some(pct) = s.strip_suffix('%') {
        let max_pct = CpuMax::MAX_CPUS * 100;
        let pct = number(pct, "the percentage")?;
        if !(1..=max_pct).contains(&pct) {
            return Err(bad(&format!(
                "the percentage must be between 1% and {max_pct}%"
            )));
        }
        return Ok(CpuMax {
            quota_us: pct * (CpuMax::DEFAULT_PERIOD_US / 100),
            period_us: CpuMax::DEFAULT_PERIOD_US,
        });
    }
    let Some((quota, period)) = s.split_once('/') else {
        return Err(bad("neither a percentage nor quota/period"));
    };
    let quota = number(quota, "the quota")?;
    let period = number(period, "the period")?;
    let (min, max_period) = (CpuMax::MIN_US, CpuMax::MAX_PERIOD_US);
    if !(min..=max_period).contains(&period) {
        return Err(bad(&format!(
            "the period must be between {min} and {max_period} microseconds"
        )));
    }
    if quota < min {
        return Err(bad(&format!(
            "the quota must be at least {min} microseconds"
        )));
    }
    if quota > period * CpuMax::MAX_CPUS {
        return Err(bad(&format!(
            "the quota may be at most {} times the period ({} CPUs)",
            CpuMax::MAX_CPUS,
            CpuMax::MAX_CPUS
        )));
    }
    Ok(CpuMax {
        quota_us: quota,
        period_us: period,
    })
}

/// Checks a cpu/memory-node list such as `"0-2,4"`: comma-separated
/// numbers below 4096 or ranges `a-b` with `a <= b`. `what` names the
/// setting in the message.
pub fn check_cpu_list(s: &str, what: &str) -> Result<(), String> {
    const LIMIT: u32 = 4096;
    let bad = |why: String| format!("invalid {what} {s:?}: {why}; expected {CPU_LIST_EXPECTED}");
    if s.is_empty() {
        return Err(bad(
            "the list is empty (omit the key for no restriction)".to_owned()
        ));
    }
    let number = |n: &str| -> Result<u32, String> {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{n:?} is not a number")));
        }
        match n.parse::<u32>() {
            Ok(v) if v < LIMIT => Ok(v),
            _ => Err(bad(format!("{n} is too large (must be below {LIMIT})"))),
        }
    };
    for item in s.split(',') {
        if item.is_empty() {
            return Err(bad("empty entry (doubled or trailing comma)".to_owned()));
        }
        match item.split_once('-') {
            None => {
                number(item)?;
            }
            Some((a, b)) => {
                let (lo, hi) = (number(a)?, number(b)?);
                if lo > hi {
                    return Err(bad(format!(
                        "range {item:?} is backwards (write {hi}-{lo})"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "10", "ten seconds", "5 parsecs", "1.5.s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(DURATION_EXPECTED), "{bad:?}: {err}");
        }
        let err = parse_duration("-5s").unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
    }

    #[test]
    fn sizes() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_size("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("512MB"), Ok(512 * MIB));
        assert_eq!(parse_size("512Mi"), Ok(512 * MIB));
        assert_eq!(parse_size("1G"), Ok(1024 * MIB));
        assert_eq!(parse_size("2T"), Ok(2 * 1024 * 1024 * MIB));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        let cases = [
            ("1.5G", "fractions"),
            ("-1M", "negative"),
            ("", "missing number"),
            ("M", "missing number"),
            ("10X", "unknown suffix"),
            ("10iB", "unknown suffix"),
            ("10 M", "unknown suffix"),
            ("10MBB", "unknown suffix"),
            ("99999999999999999999", "too large"),
            ("17179869184G", "too large"),
        ];
        for (input, why) in cases {
            let err = parse_size(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(err.contains(SIZE_EXPECTED), "{input:?}: {err}");
        }
    }

    #[test]
    fn octal() {
        assert_eq!(parse_octal("0027", 0o777, "umask"), Ok(0o27));
        assert_eq!(parse_octal("0", 0o777, "umask"), Ok(0));
        assert_eq!(parse_octal("1777", 0o7777, "mode"), Ok(0o1777));
        for bad in ["", "0o27", "8", "-1", " 27", "27 "] {
            let err = parse_octal(bad, 0o777, "umask").unwrap_err();
            assert!(err.contains("invalid umask"), "{bad:?}: {err}");
        }
        for big in ["1000", "777777777777777777777777"] {
            let err = parse_octal(big, 0o777, "umask").unwrap_err();
            assert!(err.contains("too large"), "{big:?}: {err}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigterm"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("hup"), Ok(Signal::SIGHUP));
        assert_eq!(parse_signal("15"), Ok(Signal::SIGTERM));
        assert_eq!(signal_from_number(9), Ok(Signal::SIGKILL));
    }

    #[test]
    fn bad_signals() {
        for bad in ["SIGFOO", "", "SIG", "TERM "] {
            let err = parse_signal(bad).unwrap_err();
            assert!(err.contains("unknown signal"), "{bad:?}: {err}");
            assert!(err.contains(SIGNAL_EXPECTED), "{bad:?}: {err}");
        }
        for bad in [0, -1, 1000, i64::MAX] {
            assert!(signal_from_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_max() {
        let cpu = |quota_us, period_us| {
            Ok(CpuMax {
                quota_us,
                period_us,
            })
        };
        assert_eq!(parse_cpu_max("150%"), cpu(150_000, 100_000));
        assert_eq!(parse_cpu_max("1%"), cpu(1_000, 100_000));
        assert_eq!(parse_cpu_max("100000%"), cpu(100_000_000, 100_000));
        assert_eq!(parse_cpu_max("50000/100000"), cpu(50_000, 100_000));
        assert_eq!(parse_cpu_max("1000/1000"), cpu(1_000, 1_000));
        assert_eq!(
            parse_cpu_max("1000000000/1000000"),
            cpu(1_000_000_000, 1_000_000)
        );
        let cases = [
            ("", "neither"),
            ("max", "neither"),
            ("150", "neither"),
            ("0%", "between 1% and 100000%"),
            ("100001%", "between 1% and 100000%"),
            ("12.5%", "whole number"),
            ("-5%", "non-negative"),
            ("%", "non-negative"),
            (" 50%", "non-negative"),
            ("99999999999999999999999%", "too large"),
            ("50000/", "period must be a non-negative"),
            ("/100000", "quota must be a non-negative"),
            ("50000/100000/1", "period must be a non-negative"),
            ("50000/999", "period must be between 1000 and 1000000"),
            ("50000/1000001", "period must be between 1000 and 1000000"),
            ("999/100000", "quota must be at least 1000"),
            ("1000001/1000", "at most 1000 times the period"),
        ];
        for (input, why) in cases {
            let err = parse_cpu_max(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(err.contains(CPU_MAX_EXPECTED), "{input:?}: {err}");
        }
    }

    #[test]
    fn cpu_lists() {
        for good in ["0", "0-2,4", "4095", "0-4095", "3-3", "1,1,0-1", "007"] {
            assert_eq!(check_cpu_list(good, "cpuset_cpus"), Ok(()), "{good:?}");
        }
        let cases = [
            ("", "empty"),
            ("0,", "empty entry"),
            (",0", "empty entry"),
            ("0,,1", "empty entry"),
            ("4096", "too large"),
            ("0-4096", "too large"),
            ("99999999999", "too large"),
            ("3-1", "backwards"),
            ("0 - 2", "not a number"),
            ("0, 1", "not a number"),
            ("a", "not a number"),
            ("-1", "not a number"),
            ("1-", "not a number"),
            ("1-2-3", "not a number"),
        ];
        for (input, why) in cases {
            let err = check_cpu_list(input, "cpuset_mems").unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(err.contains("invalid cpuset_mems"), "{input:?}: {err}");
            assert!(err.contains(CPU_LIST_EXPECTED), "{input:?}: {err}");
        }
    }
}
