//! How `supctl audit` prints exposure reports.

use super::proto::UnitAudit;

/// One line per unit: its score and rating, most exposed first.
pub fn render_summary(units: &[UnitAudit]) -> String {
    let mut sorted: Vec<&UnitAudit> = units.iter().collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.name.cmp(&b.name)));
    let width = sorted
        .iter()
        .map(|u| u.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:<width$}  EXPOSURE  RATING   MISSING\n", "UNIT");
    for u in sorted {
        let missing: Vec<&str> = u
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.id.as_str())
            .collect();
        out.push_str(&format!(
            "{:<width$}  {:>8.1}  {:<7}  {}\n",
            u.name,
            u.score,
            u.rating,
            if missing.is_empty() {
                "-".to_string()
            } else {
                missing.join(", ")
            }
        ));
    }
    if units.is_empty() {
        out.push_str("(no units)\n");
    }
    out
}

/// Every protection of one unit, missing ones first with what they expose.
pub fn render_unit(u: &UnitAudit) -> String {
    let mut checks: Vec<_> = u.checks.iter().collect();
    checks.sort_by(|a, b| a.ok.cmp(&b.ok).then(b.exposure.total_cmp(&a.exposure)));
    let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(2);
    let mut out = format!(
        "{}: exposure {:.1} of 10, {}\n\n",
        u.name, u.score, u.rating
    );
    for c in checks {
        let (mark, exposure) = if c.ok {
            ("✓", "    ".to_string())
        } else {
            ("✗", format!("+{:.1}", c.exposure))
        };
        out.push_str(&format!(
            "{mark} {:<width$}  {exposure}  {}\n",
            c.id, c.description
        ));
        if !c.ok {
            out.push_str(&format!("  {:<width$}        → {}\n", "", c.hint));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::AuditCheck;

    fn audit(name: &str, score: f64, rating: &str, missing: &[&str]) -> UnitAudit {
        let check = |id: &str, ok: bool| AuditCheck {
            id: id.into(),
            description: format!("{id} holds"),
            ok,
            exposure: if ok { 0.0 } else { 0.5 },
            hint: format!("fix {id}"),
        };
        let mut checks: Vec<AuditCheck> = missing.iter().map(|id| check(id, false)).collect();
        checks.push(check("seccomp", true));
        UnitAudit {
            name: name.into(),
            score,
            rating: rating.into(),
            checks,
        }
    }

    #[test]
    fn summary_puts_the_most_exposed_first() {
        let text = render_summary(&[
            audit("db", 2.5, "OK", &["non-root"]),
            audit("shell", 9.1, "UNSAFE", &["control-socket", "seccomp"]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("shell") && lines[1].contains("UNSAFE"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("db") && lines[2].contains("non-root"),
            "{text}"
        );
    }

    #[test]
    fn detail_lists_missing_protections_with_their_fix() {
        let text = render_unit(&audit("web", 3.0, "OK", &["user-namespace"]));
        assert!(text.starts_with("web: exposure 3.0 of 10, OK"), "{text}");
        assert!(text.contains("✗ user-namespace"), "{text}");
        assert!(text.contains("→ fix user-namespace"), "{text}");
        assert!(text.contains("✓ seccomp"), "{text}");
    }
}
