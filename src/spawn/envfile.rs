//! `env_file`: environment files in the syntax systemd's `EnvironmentFile=` and
//! docker compose's `env_file` share. Read by supd at each start of the unit.
//!
//! - one `KEY=VALUE` per line; blank lines and lines starting with `#` (after
//!   whitespace) are skipped; `export KEY=VALUE` is accepted;
//! - whitespace around the key and before the value is ignored;
//! - `'single quotes'`: the text as written, which may span lines;
//! - `"double quotes"`: may span lines; `\\`, `\"`, `\$`, `` \` ``, `\n`, `\t` and
//!   `\r` are escapes, any other backslash is kept;
//! - unquoted: up to the end of the line, trailing whitespace removed; ` #` (a
//!   `#` after whitespace) starts a comment;
//! - after a closing quote only whitespace or a comment may follow;
//! - no `$VAR` expansion.
//!
//! Errors never quote a value or a line without `=` (env files hold secrets).

use std::path::Path;

/// The variables of an environment file's `text`, in file order (a later one
/// overrides an earlier one when applied). Errors name `file:line`.
pub fn parse(text: &str, file: &Path) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
    };
    let fail = |line: usize, what: String| format!("{}:{line}: {what}", file.display());
    loop {
        p.skip_while(|c| c == ' ' || c == '\t' || c == '\r');
        let Some(c) = p.peek() else { break };
        if c == '\n' {
            p.bump();
            continue;
        }
        if c == '#' {
            p.skip_line();
            continue;
        }
        let line = p.line;
        let mut key = p.take_while(|c| c != '=' && c != '\n');
        let Some('=') = p.peek() else {
            // The line is not shown: env files hold secrets.
            return Err(fail(
                line,
                "expected KEY=VALUE (this line has no `=`)".into(),
            ));
        };
        p.bump();
        if let Some(rest) = key.strip_prefix("export")
            && rest.starts_with([' ', '\t'])
        {
            key = rest.to_string();
        }
        let key = key.trim().to_string();
        if !valid_key(&key) {
            return Err(fail(
                line,
                format!(
                    "invalid variable name {key:?}: expected letters, digits and _ (not first a digit)"
                ),
            ));
        }
        p.skip_while(|c| c == ' ' || c == '\t');
        let value = match p.peek() {
            Some(q @ ('\'' | '"')) => {
                p.bump();
                let value = p
                    .quoted(q)
                    .ok_or_else(|| fail(line, format!("{key}: the {q} quote is never closed")))?;
                p.skip_while(|c| c == ' ' || c == '\t' || c == '\r');
                match p.peek() {
                    None | Some('\n') => {}
                    Some('#') => p.skip_line(),
                    Some(_) => {
                        return Err(fail(
                            p.line,
                            format!("{key}: unexpected text after the closing quote"),
                        ));
                    }
                }
                value
            }
            _ => p.unquoted(),
        };
        if value.contains('\0') {
            return Err(fail(line, format!("{key}: the value contains a NUL byte")));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|c| f(*c)) {
            s.push(c);
            self.bump();
        }
        s
    }

    /// Up to (not including) the end of the line.
    fn skip_line(&mut self) {
        self.skip_while(|c| c != '\n');
    }

    /// The rest of a quoted value, the opening quote `q` read; `None` when the
    /// closing quote never comes.
    fn quoted(&mut self, q: char) -> Option<String> {
        let mut s = String::new();
        loop {
            let c = self.bump()?;
            if c == q {
                return Some(s);
            }
            if q == '"' && c == '\\' {
                let next = self.bump()?;
                match next {
                    '\\' | '"' | '$' | '`' => s.push(next),
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    // A line continuation inside double quotes.
                    '\n' => {}
                    other => {
                        s.push('\\');
                        s.push(other);
                    }
                }
                continue;
            }
            s.push(c);
        }
    }

    /// An unquoted value: to the end of the line or a ` #` comment, trimmed.
    fn unquoted(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            if c == '#' && (s.is_empty() || s.ends_with([' ', '\t'])) {
                self.skip_line();
                break;
            }
            s.push(c);
            self.bump();
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Result<Vec<(String, String)>, String> {
        parse(text, Path::new("/etc/app/env"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_syntax_systemd_and_compose_share() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("\n\n  \n", &[]),
            ("# comment\n  # indented comment\nA=1\n", &[("A", "1")]),
            ("A=1\nB=two words\n", &[("A", "1"), ("B", "two words")]),
            ("export A=1\n", &[("A", "1")]),
            ("exporter=1\n", &[("exporter", "1")]),
            ("  A = 1  \n", &[("A", "1")]),
            ("A=\n", &[("A", "")]),
            ("A=x=y\n", &[("A", "x=y")]),
            ("A=1 # comment\n", &[("A", "1")]),
            ("A=a#b\n", &[("A", "a#b")]),
            ("A='single $HOME \\n'\n", &[("A", "single $HOME \\n")]),
            (
                "A=\"double \\\"q\\\" \\\\ \\$x\"\n",
                &[("A", "double \"q\" \\ $x")],
            ),
            ("A=\"a\\nb\\tc\\qd\"\n", &[("A", "a\nb\tc\\qd")]),
            (
                "A='multi\nline'\nB=2\n",
                &[("A", "multi\nline"), ("B", "2")],
            ),
            ("A=\"x\" # c\n", &[("A", "x")]),
            ("A=1\r\nB=2\r\n", &[("A", "1"), ("B", "2")]),
            ("A=1\nA=2\n", &[("A", "1"), ("A", "2")]),
            ("A=no newline at end", &[("A", "no newline at end")]),
            ("_x9=1", &[("_x9", "1")]),
        ];
        for (text, want) in cases {
            assert_eq!(vars(text), Ok(pairs(want)), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases = [
            (
                "A=1\nnot a variable\n",
                "/etc/app/env:2: expected KEY=VALUE",
            ),
            ("\n\n9A=1\n", "/etc/app/env:3: invalid variable name \"9A\""),
            ("A-B=1\n", "/etc/app/env:1: invalid variable name \"A-B\""),
            ("=1\n", "/etc/app/env:1: invalid variable name \"\""),
            (
                "A=1\nB='open\n",
                "/etc/app/env:2: B: the ' quote is never closed",
            ),
            (
                "A=\"x\" y\n",
                "/etc/app/env:1: A: unexpected text after the closing quote",
            ),
            (
                "A=a\0b\n",
                "/etc/app/env:1: A: the value contains a NUL byte",
            ),
        ];
        for (text, want) in cases {
            let err = vars(text).expect_err(text);
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }
}
