//! CPU bandwidth (`cpu_max`) and cpu/memory-node lists (`cpuset_*`).

use crate::unit::resources::CpuMax;

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
