//! Man pages and shell completions, generated from the clap definitions of supd and
//! supctl (with `clap_mangen` and `clap_complete`) and from the unit key list
//! ([`super::unit_keys`]). `sup-gen DIR` writes them; docs/packaging.md.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Every generated file: its path below the output directory and its contents.
pub fn files() -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let version = env!("CARGO_PKG_VERSION");
    let mut files = Vec::new();
    for (cmd, section) in [
        (super::supd::command(), "8"),
        (super::supctl::command(), "1"),
    ] {
        let cmd = cmd.version(version);
        let name = cmd.get_name().to_string();
        // One page per command and per subcommand (supctl-logs(1), ...), as the
        // command's page refers to them; clap_mangen::generate_to's naming.
        let mut built = cmd.clone().disable_help_subcommand(true);
        built.build();
        man_pages(built, section, &mut files)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut script);
            let file = match shell {
                Shell::Bash => format!("{name}.bash"),
                Shell::Zsh => format!("_{name}"),
                _ => format!("{name}.fish"),
            };
            files.push((PathBuf::from("completions").join(file), script));
        }
    }
    files.push((
        PathBuf::from("man/sup.unit.5"),
        super::unit_keys::man_page(version).into_bytes(),
    ));
    Ok(files)
}

/// Renders `cmd`'s page and those of its subcommands (not hidden ones) into `files`.
fn man_pages(
    cmd: clap::Command,
    section: &str,
    files: &mut Vec<(PathBuf, Vec<u8>)>,
) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub.clone(), section, files)?;
    }
    let see_also = match cmd.get_name() {
        "supd" => Some("\\fBsupctl\\fR(1), \\fBsup.unit\\fR(5)"),
        "supctl" => Some("\\fBsupd\\fR(8), \\fBsup.unit\\fR(5)"),
        _ => None,
    };
    let man = clap_mangen::Man::new(cmd).section(section).manual("sup");
    let mut page = Vec::new();
    man.render(&mut page)?;
    if let Some(see_also) = see_also {
        page.extend_from_slice(format!(".SH \"SEE ALSO\"\n{see_also}\n").as_bytes());
    }
    files.push((Path::new("man").join(man.get_filename()), page));
    Ok(())
}

/// Writes [`files`] below `dir` (`man/`, `completions/`), returning their paths.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (path, contents) in files()? {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> String {
        let files = files().unwrap();
        let (_, contents) = files
            .iter()
            .find(|(p, _)| p.to_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} is not generated"));
        String::from_utf8(contents.clone()).unwrap()
    }

    #[test]
    fn pages_and_completions_name_every_subcommand_and_flag() {
        let supctl = super::super::supctl::command();
        let supd = super::super::supd::command();
        for (cmd, files) in [
            (
                &supctl,
                [
                    "man/supctl.1",
                    "completions/supctl.bash",
                    "completions/_supctl",
                    "completions/supctl.fish",
                ],
            ),
            (
                &supd,
                [
                    "man/supd.8",
                    "completions/supd.bash",
                    "completions/_supd",
                    "completions/supd.fish",
                ],
            ),
        ] {
            for file in files {
                let text = text(file);
                // Man pages escape hyphens (\-\-state\-dir); fish writes `-l state-dir`.
                let has = |word: &str| {
                    text.contains(word)
                        || text.contains(&word.replace('-', "\\-"))
                        || word
                            .strip_prefix("--")
                            .is_some_and(|l| text.contains(&format!("-l {l}")))
                };
                for sub in cmd.get_subcommands() {
                    assert!(has(sub.get_name()), "{file} lacks {}", sub.get_name());
                }
                for arg in cmd.get_arguments() {
                    if let Some(long) = arg.get_long() {
                        assert!(has(&format!("--{long}")), "{file} lacks --{long}");
                    }
                }
            }
        }
        // Each subcommand's page has its flags (supctl-logs(1): --follow, ...).
        for sub in super::super::supctl::command().get_subcommands() {
            let page = text(&format!("man/supctl-{}.1", sub.get_name()));
            for long in sub.get_arguments().filter_map(|a| a.get_long()) {
                let flag = format!("--{long}").replace('-', "\\-");
                assert!(
                    page.contains(&flag),
                    "supctl-{}.1 lacks {flag}",
                    sub.get_name()
                );
            }
        }
        for name in ["events", "exec", "kill", "logs", "audit", "reload"] {
            assert!(text("completions/supctl.bash").contains(name), "{name}");
            assert!(text("man/supctl.1").contains(name), "{name}");
        }
        assert!(text("man/supd.8").contains("control\\-group"));
        assert!(text("completions/supd.bash").contains("--control-group"));
        assert!(text("completions/_supd").contains("--control-group"));
        assert!(text("completions/supd.fish").contains("control-group"));
        assert!(text("man/sup.unit.5").contains(".TH SUP.UNIT 5"));
    }

    /// The scripts parse in their shells and the pages render without warnings, for
    /// the checkers installed here (bash always; zsh, fish, groff when present).
    #[test]
    fn generated_files_are_valid_for_their_tools() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(dir.path()).unwrap();
        let installed = |tool: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for path in written {
            let name = path.file_name().unwrap().to_str().unwrap();
            let check: Vec<&str> = if name.ends_with(".bash") {
                vec!["bash", "-n"]
            } else if name.starts_with('_') {
                vec!["zsh", "-n"]
            } else if name.ends_with(".fish") {
                vec!["fish", "-n"]
            } else {
                vec!["groff", "-ww", "-man", "-z"]
            };
            if !installed(check[0]) {
                continue;
            }
            let out = std::process::Command::new(check[0])
                .args(&check[1..])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{} {name}: {}",
                check.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// packaging/ holds the generated files (for packages built without running
    /// sup-gen); they must be what the definitions give today.
    #[test]
    fn packaging_holds_the_current_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
        for (path, contents) in files().unwrap() {
            let on_disk = std::fs::read(root.join(&path)).unwrap_or_default();
            assert!(
                on_disk == contents,
                "packaging/{} is stale: run `cargo run --bin sup-gen -- packaging`",
                path.display()
            );
        }
    }
}
