//! The Debian package (`packaging/build-deb.sh`, docs/packaging.md): built from the
//! static release binaries, unpacked and installed into throwaway roots (never on
//! this machine), its files checked, the installed supd run, and lintian asked.
//! Needs dpkg-deb; installing with dpkg needs root; the lintian test needs lintian
//! (tests/run.sh installs it). A test that cannot run is reported as ignored.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::harness::{self, trials};
use common::{stderr, stdout};

fn main() -> std::process::ExitCode {
    harness::main(trials![
        has_dpkg_deb => [
            the_package_holds_static_binaries_pages_completions_and_the_service,
            the_installed_supd_checks_unit_files,
        ],
        can_install => [dpkg_installs_and_purges_the_package_in_a_throwaway_root],
        has_lintian => [lintian_reports_no_errors],
    ])
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn has_dpkg_deb() -> Option<String> {
    (!on_path("dpkg-deb")).then(|| "needs dpkg-deb (a Debian system)".to_string())
}

/// dpkg changes owners as it unpacks: root only.
fn can_install() -> Option<String> {
    let mut missing: Vec<String> = harness::root().into_iter().collect();
    missing.extend(has_dpkg_deb());
    (!missing.is_empty()).then(|| missing.join(", "))
}

fn has_lintian() -> Option<String> {
    let mut missing: Vec<String> = has_dpkg_deb().into_iter().collect();
    if !on_path("lintian") {
        missing.push("needs lintian (apt-get install lintian)".into());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The package, built once for all the tests of this run.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("packaging/build-deb.sh"))
            .output()
            .expect("run packaging/build-deb.sh");
        assert!(
            out.status.success(),
            "packaging/build-deb.sh failed:\n{}",
            stderr(&out)
        );
        let path = PathBuf::from(stdout(&out).trim());
        assert!(path.is_file(), "no package at {}", path.display());
        path
    })
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// What `dpkg-deb -x` would install, below a fresh temporary directory.
fn unpacked() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb())
        .arg(root.path()));
    root
}

/// Every file and directory of the package as `dpkg-deb -c` lists it:
/// `(mode and owner, path)`, e.g. `("-rwxr-xr-x root/root", "./usr/bin/supd")`.
fn contents() -> Vec<(String, String)> {
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb()));
    stdout(&out)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (format!("{} {}", f[0], f[1]), f[5].to_string())
        })
        .collect()
}

/// A static executable has no program interpreter (ld-linux.so) to load libraries.
fn is_static(binary: &Path) -> bool {
    let out = run(Command::new("readelf").arg("-l").arg(binary));
    let headers = stdout(&out);
    assert!(headers.contains("LOAD"), "not an ELF executable: {headers}");
    !headers.contains("INTERP")
}

fn the_package_holds_static_binaries_pages_completions_and_the_service() {
    let info = stdout(&run(Command::new("dpkg-deb").arg("-f").arg(deb()).args([
        "Package",
        "Version",
        "Architecture",
        "Depends",
    ])));
    assert!(info.contains("Package: supd\n"), "{info}");
    assert!(
        info.contains(&format!("Version: {}\n", version())),
        "{info}"
    );
    assert!(info.contains("Architecture: amd64\n"), "{info}");
    assert!(
        !info.contains("Depends:"),
        "static binaries need nothing: {info}"
    );

    let listed = contents();
    let entry = |path: &str| {
        listed
            .iter()
            .find(|(_, p)| p == &format!(".{path}"))
            .map(|(mode, _)| mode.clone())
            .unwrap_or_else(|| panic!("{path} is not in the package: {listed:?}"))
    };
    for bin in ["/usr/bin/supd", "/usr/bin/supctl", "/usr/bin/sup-init"] {
        assert_eq!(entry(bin), "-rwxr-xr-x root/root", "{bin}");
    }
    assert_eq!(entry("/etc/sup/units/"), "drwxr-xr-x root/root");
    // Every page and completion of packaging/, where docs/packaging.md says.
    let mut expected = Vec::new();
    for page in std::fs::read_dir(repo().join("packaging/man")).expect("packaging/man") {
        let name = page
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let section = name.rsplit('.').next().expect("section").to_string();
        expected.push(format!("/usr/share/man/man{section}/{name}.gz"));
    }
    assert!(expected.len() >= 3, "{expected:?}");
    expected.extend(
        [
            "/usr/share/bash-completion/completions/supd",
            "/usr/share/bash-completion/completions/supctl",
            "/usr/share/zsh/vendor-completions/_supd",
            "/usr/share/zsh/vendor-completions/_supctl",
            "/usr/share/fish/vendor_completions.d/supd.fish",
            "/usr/share/fish/vendor_completions.d/supctl.fish",
            "/usr/lib/systemd/system/supd.service",
            "/usr/share/doc/supd/copyright",
        ]
        .map(String::from),
    );
    for path in &expected {
        assert_eq!(entry(path), "-rw-r--r-- root/root", "{path}");
    }

    let root = unpacked();
    let r = root.path();
    for bin in ["usr/bin/supd", "usr/bin/supctl", "usr/bin/sup-init"] {
        assert!(is_static(&r.join(bin)), "{bin} is dynamically linked");
    }
    // The pages are the committed ones, compressed.
    let page = run(Command::new("gzip")
        .arg("-dc")
        .arg(r.join("usr/share/man/man5/sup.unit.5.gz")));
    let committed = std::fs::read(repo().join("packaging/man/sup.unit.5")).expect("page");
    assert!(
        page.stdout == committed,
        "sup.unit.5.gz is not packaging/man/sup.unit.5"
    );
    let completion =
        std::fs::read(r.join("usr/share/bash-completion/completions/supctl")).expect("bash");
    let committed =
        std::fs::read(repo().join("packaging/completions/supctl.bash")).expect("completion");
    assert!(completion == committed, "the bash completion differs");

    let service = std::fs::read_to_string(r.join("usr/lib/systemd/system/supd.service"))
        .expect("supd.service");
    let settings: Vec<&str> = service
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for want in [
        "Type=exec",
        "ExecStart=/usr/bin/supd --units /etc/sup/units --state-dir /run/sup",
        "Delegate=yes",
        "KillMode=mixed",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            settings.contains(&want),
            "supd.service lacks {want}: {service}"
        );
    }
}

fn the_installed_supd_checks_unit_files() {
    let root = unpacked();
    let supd = root.path().join("usr/bin/supd");
    let out = run(Command::new(&supd).args(["--version"]));
    assert_eq!(stdout(&out).trim(), format!("supd {}", version()));
    // The repository's units, as an operator would check /etc/sup/units.
    let out = Command::new(&supd)
        .arg("--check")
        .arg("--units")
        .arg(repo().join("units"))
        .output()
        .expect("supd --check");
    assert!(
        out.status.success(),
        "installed supd rejects units/:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    let units = std::fs::read_dir(repo().join("units"))
        .expect("units/")
        .count();
    assert!(
        stdout(&out).contains(&format!("{units} valid, 0 with errors")),
        "{}",
        stdout(&out)
    );
    // And it does look at them: a broken unit is refused, with where and why.
    let units = root.path().join("etc/sup/units");
    std::fs::write(
        units.join("bad.toml"),
        "[service]\nexec = \"/bin/true\"\nrestart = \"sometimes\"\n",
    )
    .expect("bad.toml");
    let out = Command::new(&supd)
        .arg("--check")
        .arg("--units")
        .arg(&units)
        .output()
        .expect("supd --check");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "a broken unit passed: {said}");
    assert!(said.contains("bad.toml:3:"), "no location: {said}");
    // supctl runs from its installed path too, and says where it looked for supd.
    let out = Command::new(root.path().join("usr/bin/supctl"))
        .arg("--state-dir")
        .arg(root.path().join("run/sup"))
        .arg("status")
        .output()
        .expect("supctl");
    assert!(
        !out.status.success(),
        "supctl status without supd succeeded"
    );
    assert!(stderr(&out).contains("control.sock"), "{}", stderr(&out));
}

fn dpkg_installs_and_purges_the_package_in_a_throwaway_root() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    // An empty dpkg database: dpkg needs nothing else to install a package with no
    // dependencies and no maintainer scripts.
    std::fs::create_dir_all(r.join("var/lib/dpkg/info")).expect("db");
    std::fs::create_dir_all(r.join("var/lib/dpkg/updates")).expect("db");
    std::fs::write(r.join("var/lib/dpkg/status"), "").expect("status");
    let dpkg = |args: &[&str]| {
        let mut cmd = Command::new("dpkg");
        cmd.arg(format!("--root={}", r.display()))
            .arg("--log=/dev/null")
            .args(args);
        cmd
    };
    run(dpkg(&["-i"]).arg(deb()));
    let status = stdout(&run(&mut dpkg(&["-s", "supd"])));
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains(&format!("Version: {}", version())),
        "{status}"
    );
    for path in [
        "usr/bin/supd",
        "usr/bin/supctl",
        "usr/bin/sup-init",
        "usr/lib/systemd/system/supd.service",
        "usr/share/man/man8/supd.8.gz",
    ] {
        assert!(r.join(path).is_file(), "{path} not installed");
    }
    assert!(
        r.join("etc/sup/units").is_dir(),
        "/etc/sup/units not installed"
    );
    let out = run(Command::new(r.join("usr/bin/supd"))
        .arg("--check")
        .arg("--units")
        .arg(r.join("etc/sup/units")));
    assert!(
        stdout(&out).contains("0 valid, 0 with errors"),
        "empty /etc/sup/units: {}",
        stdout(&out)
    );

    run(&mut dpkg(&["--purge", "supd"]));
    for path in ["usr/bin/supd", "usr/share/doc/supd", "etc/sup/units"] {
        assert!(!r.join(path).exists(), "{path} left after purge");
    }
}

fn lintian_reports_no_errors() {
    // --no-tag-display-limit: every instance, so the message shows them all.
    let out = Command::new("lintian")
        .args(["--no-tag-display-limit", "--display-info"])
        .arg(deb())
        .output()
        .expect("lintian");
    let report = stdout(&out);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(
        errors.is_empty(),
        "lintian errors:\n{report}{}",
        stderr(&out)
    );
    // Its exit status says the same (and that it could read the package at all).
    assert!(
        out.status.success(),
        "lintian failed:\n{report}{}",
        stderr(&out)
    );
}
