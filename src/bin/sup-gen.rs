//! `sup-gen [DIR]`: write the man pages (`DIR/man/`) and shell completions
//! (`DIR/completions/`) of supd and supctl, and `sup.unit(5)`, generated from their
//! definitions. DIR defaults to `packaging`. See docs/packaging.md.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| "packaging".into());
    if args.next().is_some() || dir.to_str().is_some_and(|d| d.starts_with('-')) {
        eprintln!(
            "usage: sup-gen [DIR]  (writes DIR/man/ and DIR/completions/; default packaging)"
        );
        return ExitCode::from(2);
    }
    match sup::cli::generate::write_all(&dir) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sup-gen: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
