//! Pure parsers for the scalar value syntaxes used in unit files.
//!
//! They return a human-readable message on failure; the TOML layer attaches
//! the file location.

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

mod cpu;
mod scalar;

pub use cpu::{CPU_LIST_EXPECTED, CPU_MAX_EXPECTED, check_cpu_list, parse_cpu_max};
pub use scalar::*;

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
}
