//! Images (issue 14): importing each format, built here from the host's busybox,
//! running units from them, layers shared between images and units, the unit's
//! writable layer, whiteouts, verification and hostile tars, `rm` while used,
//! and a re-imported tag restarting its units. Root only (owners, device
//! nodes, overlay mounts); reported as ignored without it.

mod build;
#[path = "../common/mod.rs"]
mod common;
mod layers;
mod refusals;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use build::{Comp, ImageDef, Layer, busybox_base};
use common::harness::{self, root, trials};
use common::*;
use layers::*;
use refusals::*;
use serde_json::{Value, json};

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        an_oci_layout_unit_runs_with_the_images_entrypoint_env_workdir_and_user,
        two_images_and_units_share_the_base_layer_and_writes_survive_a_restart,
        whiteouts_and_opaque_directories_hide_lower_files,
        docker_archive_and_export_tarball_import,
        a_corrupted_blob_is_refused_and_leaves_nothing,
        hostile_tars_are_refused_without_writing_outside,
        rm_is_refused_while_a_unit_uses_the_image,
        reimporting_a_tag_restarts_its_units_on_the_new_image,
        a_layer_keeps_owners_modes_links_devices_and_xattrs,
        an_index_gives_the_amd64_image_run_by_digest_with_its_healthcheck,
        a_unit_whose_image_is_missing_starts_once_it_is_imported,
        concurrent_imports_share_one_base_layer,
        a_minimal_image_runs_in_a_user_namespace,
        nested_indexes_and_old_docker_archives_with_a_shared_layer,
        prune_leaves_a_running_imports_staging_alone,
    ]])
}

/// Detaches every mount below the test's directory when dropped (supd unmounts
/// the unit roots when it exits, but not if a test fails before that).
struct Unmounts(PathBuf);

impl Drop for Unmounts {
    fn drop(&mut self) {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.0.to_string_lossy().into_owned();
        for line in info.lines() {
            if let Some(point) = line.split(' ').nth(4)
                && point.starts_with(&prefix)
            {
                let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn ok(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn import(sup: &Sup, path: &Path, name: Option<&str>) -> Output {
    let mut args = vec!["image", "import", path.to_str().expect("utf-8 path")];
    if let Some(n) = name {
        args.extend(["--name", n]);
    }
    sup.supctl(&args)
}

fn images(sup: &Sup) -> PathBuf {
    sup.state_dir().join("images")
}

fn upper(sup: &Sup, unit: &str) -> PathBuf {
    images(sup).join("units").join(unit).join("upper")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|l| {
            l.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn sh_image(layers: Vec<(Vec<u8>, Comp)>, script: &str, extra: Value) -> ImageDef {
    let mut config =
        json!({"Entrypoint": ["/bin/sh", "-c"], "Cmd": [script], "Env": ["PATH=/bin"]});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    ImageDef {
        layers,
        config,
        diff_ids: None,
    }
}

fn an_oci_layout_unit_runs_with_the_images_entrypoint_env_workdir_and_user() {
    let sup = Sup::prepare(&[("web", "[container]\nimage = \"demo:1\"\n")]);
    let _m = Unmounts(sup.path().to_path_buf());
    let app = Layer::new().file("srv/index.html", b"hi\n", 0o644).finish();
    let image = sh_image(
        vec![(busybox_base(), Comp::Gzip), (app, Comp::Zstd)],
        "echo \"$GREETING $(pwd) $(id -u) $(cat index.html)\" > /data/out; exec sleep 1000",
        json!({"Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/srv", "User": "app",
               "ExposedPorts": {"8080/tcp": {}}}),
    );
    let layout = sup.path().join("layout");
    build::oci_layout(&layout, &image, "1");
    let out = ok("import layout", &import(&sup, &layout, Some("demo:1")));
    assert!(out.contains("(2 layers, 2 unpacked)"), "{out}");
    // The same layout as an oci-archive: the same image, nothing unpacked again.
    let archive = sup.path().join("layout.tar");
    build::tar_of_dir(&layout, &archive);
    let again = ok("import archive", &import(&sup, &archive, Some("demo:tar")));
    assert!(again.contains("(2 layers, 0 unpacked)"), "{again}");
    let gz = sup.path().join("layout.tar.gz");
    let bytes = std::fs::read(&archive).expect("archive");
    std::fs::write(&gz, build::compress(&bytes, Comp::Gzip)).expect("gzip archive");
    let gzipped = ok("import gzip archive", &import(&sup, &gz, Some("demo:gz")));
    assert!(gzipped.contains("(2 layers, 0 unpacked)"), "{gzipped}");
    let digest = |s: &str| s.split_whitespace().nth(2).unwrap_or_default().to_owned();
    assert_eq!(digest(&out), digest(&again), "same manifest: {out} {again}");

    let sup = sup.launch();
    let line = wait_file(&upper(&sup, "web").join("data/out"));
    assert_eq!(
        line, "hello /srv 1234 hi\n",
        "entrypoint+cmd, env, workdir, user from the image"
    );
    // An exec runs in the image's root, as the image's user, in its workdir; -u
    // looks users up in the image's /etc/passwd.
    let exec = ok(
        "exec",
        &sup.supctl(&[
            "exec",
            "web",
            "sh",
            "-c",
            "id -u; pwd; cat index.html; echo $GREETING",
        ]),
    );
    assert_eq!(exec, "1234\n/srv\nhi\nhello\n");
    let as_root = ok(
        "exec -u root",
        &sup.supctl(&["exec", "-u", "root", "web", "id", "-u"]),
    );
    assert_eq!(as_root, "0\n");
    let status = sup.unit("web");
    assert_eq!(status["exposed_ports"], json!(["8080/tcp"]));
    assert!(
        status["image"]
            .as_str()
            .unwrap_or_default()
            .starts_with("demo:1 (sha256:"),
        "{status}"
    );
    let inspect: Value =
        serde_json::from_str(&ok("inspect", &sup.supctl(&["image", "inspect", "demo:1"])))
            .expect("inspect is JSON");
    assert_eq!(inspect["used_by"], json!(["web"]));
    assert_eq!(inspect["config"]["config"]["WorkingDir"], "/srv");
    assert_eq!(inspect["layers"].as_array().map(Vec::len), Some(2));
    let ls = ok("ls", &sup.supctl(&["image", "ls"]));
    assert!(
        ls.contains("demo:1") && ls.contains("demo:tar") && ls.contains("web"),
        "{ls}"
    );
}

fn two_images_and_units_share_the_base_layer_and_writes_survive_a_restart() {
    let script = "echo start >> /data/count; exec sleep 1000";
    let sup = Sup::prepare(&[
        ("u1", "[container]\nimage = \"a:1\"\n"),
        ("u2", "[container]\nimage = \"b:1\"\n"),
    ]);
    let _m = Unmounts(sup.path().to_path_buf());
    let base = busybox_base();
    let a = sh_image(
        vec![
            (base.clone(), Comp::Gzip),
            (Layer::new().file("a.txt", b"a", 0o644).finish(), Comp::Gzip),
        ],
        script,
        json!({}),
    );
    // The same base uncompressed: the same DiffID, so the same directory.
    let b = sh_image(
        vec![
            (base, Comp::None),
            (Layer::new().file("b.txt", b"b", 0o644).finish(), Comp::Zstd),
        ],
        script,
        json!({}),
    );
    build::oci_layout(&sup.path().join("a"), &a, "1");
    build::oci_layout(&sup.path().join("b"), &b, "1");
    ok(
        "import a",
        &import(&sup, &sup.path().join("a"), Some("a:1")),
    );
    let out = ok(
        "import b",
        &import(&sup, &sup.path().join("b"), Some("b:1")),
    );
    assert!(
        out.contains("(2 layers, 1 unpacked)"),
        "the base layer is stored once: {out}"
    );

    let sup = sup.launch();
    sup.wait_all_running();
    let count = |unit: &str| {
        std::fs::read_to_string(upper(&sup, unit).join("data/count")).unwrap_or_default()
    };
    wait_until("both units wrote", || {
        count("u1") == "start\n" && count("u2") == "start\n"
    });
    let inspect: Value =
        serde_json::from_str(&ok("inspect", &sup.supctl(&["image", "inspect", "a:1"])))
            .expect("json");
    let base_dir = PathBuf::from(inspect["layers"][0]["dir"].as_str().expect("layer dir"));
    let ino = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .ino()
    };
    let in_layer = ino(&base_dir.join("bin/busybox"));
    for unit in ["u1", "u2"] {
        let seen = ino(&images(&sup)
            .join("units")
            .join(unit)
            .join("root/bin/busybox"));
        assert_eq!(
            seen, in_layer,
            "{unit} runs the base layer's busybox itself (same inode)"
        );
    }

    ok("restart", &sup.supctl(&["restart", "--wait", "u1"]));
    wait_until("u1 wrote again", || count("u1") == "start\nstart\n");
    let refused = sup.supctl(&["reset", "u2"]);
    assert!(
        !refused.status.success(),
        "reset of a running unit is refused"
    );
    assert!(
        stderr(&refused).contains("stop it first"),
        "{}",
        stderr(&refused)
    );
    ok("stop", &sup.supctl(&["stop", "--wait", "u1"]));
    ok("reset", &sup.supctl(&["reset", "u1"]));
    assert!(!upper(&sup, "u1").exists(), "the writable layer is gone");
    ok("start", &sup.supctl(&["start", "--wait", "u1"]));
    wait_until("u1 starts from the image again", || {
        count("u1") == "start\n"
    });
    assert_eq!(count("u2"), "start\n", "u2 untouched");
}

fn whiteouts_and_opaque_directories_hide_lower_files() {
    let sup = Sup::prepare(&[("w", "[container]\nimage = \"wh:1\"\n")]);
    let _m = Unmounts(sup.path().to_path_buf());
    let old = Layer::new()
        .dir("opt")
        .dir("opt/old")
        .file("opt/old/a", b"a", 0o644)
        .file("opt/old/b", b"b", 0o644)
        .file("opt/keep", b"k", 0o644)
        .finish();
    let top = Layer::new()
        .file("etc/.wh.motd", b"", 0o644)
        .file("opt/old/.wh..wh..opq", b"", 0o644)
        .file("opt/old/c", b"c", 0o644)
        .finish();
    let image = sh_image(
        vec![
            (busybox_base(), Comp::Gzip),
            (old, Comp::Gzip),
            (top.clone(), Comp::Gzip),
        ],
        "ls /opt/old > /data/ls; ls /opt > /data/opt; test -e /etc/motd && echo present > /data/motd; exec sleep 1000",
        json!({}),
    );
    build::oci_layout(&sup.path().join("wh"), &image, "1");
    ok(
        "import",
        &import(&sup, &sup.path().join("wh"), Some("wh:1")),
    );
    let layer = images(&sup)
        .join("layers/sha256")
        .join(&build::sha(&top)["sha256:".len()..]);
    let motd = std::fs::symlink_metadata(layer.join("etc/motd")).expect("whiteout node");
    assert!(
        motd.file_type().is_char_device() && motd.rdev() == 0,
        "a 0/0 character device"
    );
    assert!(
        !layer.join("etc/.wh.motd").exists(),
        "the .wh. file itself is not kept"
    );
    let opaque = xattr::get(layer.join("opt/old"), "trusted.overlay.opaque").expect("xattr");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));

    let sup = sup.launch();
    let ls = wait_file(&upper(&sup, "w").join("data/ls"));
    assert_eq!(ls, "c\n", "the opaque directory hides a and b");
    // Written after `ls`: waited for too, not read while the shell still writes it.
    let opt = wait_file(&upper(&sup, "w").join("data/opt"));
    assert_eq!(opt, "keep\nold\n");
    assert!(
        !upper(&sup, "w").join("data/motd").exists(),
        "/etc/motd is whited out"
    );
}

fn docker_archive_and_export_tarball_import() {
    let sup = Sup::prepare(&[(
        "flat",
        "[container]\nimage = \"flat:1\"\n[service]\nexec = [\"/bin/sh\", \"-c\", \"echo flat > /data/f; exec sleep 1000\"]\n",
    )]);
    let _m = Unmounts(sup.path().to_path_buf());
    let base = busybox_base();
    let image = sh_image(
        vec![(base.clone(), Comp::None)],
        "exec sleep 1000",
        json!({}),
    );
    let archive = sup.path().join("docker.tar");
    build::docker_archive(&archive, &image, "dock:1");
    let out = ok("import docker-archive", &import(&sup, &archive, None));
    assert!(
        out.contains("imported dock:1 ") && out.contains("1 unpacked"),
        "named from RepoTags: {out}"
    );

    for comp in [Comp::Gzip, Comp::Zstd] {
        let export = sup.path().join(format!("export-{comp:?}.tar"));
        std::fs::write(&export, build::compress(&base, comp)).expect("export tarball");
        let unnamed = import(&sup, &export, None);
        assert!(
            !unnamed.status.success() && stderr(&unnamed).contains("--name"),
            "{}",
            stderr(&unnamed)
        );
        let out = ok(
            "import export tarball",
            &import(&sup, &export, Some("flat:1")),
        );
        assert!(
            out.contains("(1 layers, 0 unpacked)"),
            "the same root as the archive's layer: {out}"
        );
    }
    let sup = sup.launch();
    assert_eq!(wait_file(&upper(&sup, "flat").join("data/f")), "flat\n");
}

fn rm_is_refused_while_a_unit_uses_the_image() {
    let sup = Sup::prepare(&[("user", "[container]\nimage = \"used:1\"\n")]);
    let _m = Unmounts(sup.path().to_path_buf());
    let image = sh_image(
        vec![(busybox_base(), Comp::Gzip)],
        "exec sleep 1000",
        json!({}),
    );
    build::oci_layout(&sup.path().join("img"), &image, "1");
    ok(
        "import",
        &import(&sup, &sup.path().join("img"), Some("used:1")),
    );
    let mut sup = sup.launch();
    sup.wait_all_running();
    let refused = sup.supctl(&["image", "rm", "used:1"]);
    assert!(!refused.status.success(), "rm of a used image is refused");
    assert!(
        stderr(&refused).contains("used by unit(s) user"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        entries(&images(&sup).join("layers/sha256")).len(),
        1,
        "nothing removed"
    );
    std::fs::remove_file(sup.units_dir().join("user.toml")).expect("remove unit");
    ok("reload", &sup.supctl(&["reload"]));
    sup.wait_status("unit gone", |s| s.is_empty());
    ok("rm", &sup.supctl(&["image", "rm", "used:1"]));
    let status = sup.stop();
    assert!(status.success());
    ok("prune", &sup.supctl(&["image", "prune"]));
    store_is_empty(&sup);
}

fn reimporting_a_tag_restarts_its_units_on_the_new_image() {
    let sup = Sup::prepare(&[("web", "[container]\nimage = \"demo:1\"\n")]);
    let _m = Unmounts(sup.path().to_path_buf());
    let version = |v: &str| {
        let top = Layer::new()
            .file("etc/version", format!("{v}\n").as_bytes(), 0o644)
            .finish();
        sh_image(
            vec![(busybox_base(), Comp::Gzip), (top, Comp::Gzip)],
            "cat /etc/version > /data/v; exec sleep 1000",
            json!({}),
        )
    };
    let base_dir = sup.path().to_path_buf();
    let layout = |v: &str| {
        let dir = base_dir.join(format!("v{v}"));
        build::oci_layout(&dir, &version(v), "1");
        dir
    };
    ok("import v1", &import(&sup, &layout("1"), Some("demo:1")));
    let sup = sup.launch();
    let seen = || std::fs::read_to_string(upper(&sup, "web").join("data/v")).unwrap_or_default();
    wait_until("v1 runs", || seen() == "1\n");
    let pid1 = pid_of(&sup.unit("web"));

    // Imported with supd out of reach: it says so; the dry run names the change.
    let v2 = layout("2");
    let out = ok(
        "import v2",
        &std::process::Command::new(SUPCTL)
            .arg("--state-dir")
            .arg(sup.state_dir())
            .args(["--socket", "/nonexistent.sock", "image", "import"])
            .arg(&v2)
            .args(["--name", "demo:1"])
            .output()
            .expect("run supctl"),
    );
    assert!(out.contains("supctl reload"), "{out}");
    let dry = ok("dry run", &sup.supctl(&["reload", "--dry-run"]));
    assert!(dry.contains("restarted: web"), "{dry}");
    assert!(
        dry.contains("image changed: web: image demo:1 is now sha256:"),
        "{dry}"
    );
    assert_eq!(pid_of(&sup.unit("web")), pid1, "a dry run changes nothing");
    ok("reload", &sup.supctl(&["reload"]));
    wait_until("v2 runs", || seen() == "2\n");

    // Imported with supd running: it reloads by itself.
    let out = ok("import v3", &import(&sup, &layout("3"), Some("demo:1")));
    assert!(out.contains("supd reloaded: restarted web"), "{out}");
    wait_until("v3 runs", || seen() == "3\n");
    assert_ne!(pid_of(&sup.unit("web")), pid1);
}
