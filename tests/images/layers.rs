//! What a layer keeps (owners, modes, hard links, device nodes, fifos, xattrs),
//! and choosing from an index: the linux/amd64 entry, run by digest, with the
//! image's Healthcheck as the unit's check.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde_json::json;
use tar::EntryType as T;

use crate::build::{self, Comp, Layer, busybox_base};
use crate::common::*;
use crate::{Unmounts, images, import, ok, sh_image};

pub fn a_layer_keeps_owners_modes_links_devices_and_xattrs() {
    let sup = Sup::prepare(&[]);
    let layer = Layer::new()
        .dir("m")
        .file_owned("m/suid", b"#!/bin/sh\n", 0o4755, 1234)
        .raw(T::Link, "m/hard", "m/suid", b"")
        .node("m/null", T::Char, 1, 3)
        .node("m/fifo", T::Fifo, 0, 0)
        .xattr_next("user.sup-test", "kept")
        .file("m/x", b"x", 0o600)
        .symlink("m/link", "/etc/passwd")
        .finish();
    let tarball = sup.path().join("meta.tar");
    std::fs::write(&tarball, &layer).expect("tarball");
    ok("import", &import(&sup, &tarball, Some("meta:1")));
    let dir = images(&sup)
        .join("layers/sha256")
        .join(&build::sha(&layer)["sha256:".len()..])
        .join("m");
    let meta = |name: &str| std::fs::symlink_metadata(dir.join(name)).expect(name);
    let suid = meta("suid");
    assert_eq!((suid.uid(), suid.gid()), (1234, 1234), "owner kept");
    assert_eq!(
        suid.mode() & 0o7777,
        0o4755,
        "setuid kept (chown came first)"
    );
    let hard = meta("hard");
    assert_eq!(
        (hard.ino(), hard.nlink()),
        (suid.ino(), 2),
        "one file, two names"
    );
    let null = meta("null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(meta("fifo").file_type().is_fifo());
    assert_eq!(meta("x").mode() & 0o777, 0o600);
    let x = xattr::get(dir.join("x"), "user.sup-test").expect("read xattr");
    assert_eq!(x.as_deref(), Some(&b"kept"[..]), "PAX xattr applied");
    assert_eq!(
        std::fs::read_link(dir.join("link")).expect("symlink"),
        std::path::Path::new("/etc/passwd"),
        "stored as written, never followed"
    );
}

pub fn an_index_gives_the_amd64_image_run_by_digest_with_its_healthcheck() {
    let sup = Sup::prepare(&[]);
    let _m = Unmounts(sup.path().to_path_buf());
    let layout = sup.path().join("multi");
    let other = sh_image(
        vec![(busybox_base(), Comp::Gzip)],
        "echo arm > /data/which; exec sleep 1000",
        json!({}),
    );
    build::oci_layout_for(&layout, &other, "1", "arm64");
    let image = sh_image(
        vec![(busybox_base(), Comp::Gzip)],
        "echo amd64 > /data/which; exec sleep 1000",
        json!({"Healthcheck": {"Test": ["CMD-SHELL", "test -e /data/which"], "Interval": 200_000_000u64}}),
    );
    let digest = build::oci_layout(&layout, &image, "1");
    let out = ok("import", &import(&sup, &layout, Some("multi:1")));
    assert!(
        out.contains(&digest),
        "the linux/amd64 entry, not the first: {out}"
    );
    sup.write_unit("m", &format!("[container]\nimage = \"multi@{digest}\"\n"));
    let sup = sup.launch();
    let which = wait_file(&crate::upper(&sup, "m").join("data/which"));
    assert_eq!(which, "amd64\n");
    sup.wait_status("the image's healthcheck passes", |s| {
        s.iter()
            .any(|u| u["name"] == "m" && u["health"] == "healthy")
    });
}

pub fn a_unit_whose_image_is_missing_starts_once_it_is_imported() {
    let sup = Sup::start(&[("late", "[container]\nimage = \"late:1\"\n")]);
    let _m = Unmounts(sup.path().to_path_buf());
    let status = sup.wait_status("rejected for want of its image", |s| {
        s.iter().any(|u| {
            u["name"] == "late"
                && u["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("not in the store"))
        })
    });
    assert_eq!(status[0]["state"], "failed", "{status:?}");
    // A WorkingDir the image does not have: made, as Docker does.
    let image = sh_image(
        vec![(busybox_base(), Comp::Zstd)],
        "pwd > /data/up; exec sleep 1000",
        json!({"WorkingDir": "/app/run"}),
    );
    build::oci_layout(&sup.path().join("late"), &image, "1");
    // supd's own CLI, as a script would run it.
    let out = std::process::Command::new(SUPD)
        .args(["image", "import"])
        .arg(sup.path().join("late"))
        .args(["--name", "late:1", "--state-dir"])
        .arg(sup.state_dir())
        .output()
        .expect("run supd image import");
    let text = ok("supd image import", &out);
    assert!(text.contains("added late"), "{text}");
    assert_eq!(
        wait_file(&crate::upper(&sup, "late").join("data/up")),
        "/app/run\n"
    );
}

pub fn concurrent_imports_share_one_base_layer() {
    let sup = Sup::prepare(&[]);
    let base = busybox_base();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let top = Layer::new().file(&format!("top{i}"), b"t", 0o644).finish();
            let image = sh_image(
                vec![(base.clone(), Comp::Gzip), (top, Comp::Gzip)],
                "true",
                json!({}),
            );
            let dir = sup.path().join(format!("c{i}"));
            build::oci_layout(&dir, &image, "1");
            std::process::Command::new(SUPCTL)
                .arg("--state-dir")
                .arg(sup.state_dir())
                .args(["image", "import"])
                .arg(&dir)
                .args(["--name", &format!("c:{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn supctl")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("supctl");
        ok("import", &out);
    }
    // Imports unpack side by side; the first to finish moves the base in, the
    // others find it there.
    let layers = std::fs::read_dir(images(&sup).join("layers/sha256"))
        .expect("layers")
        .count();
    assert_eq!(layers, 4, "one base and three tops");
    assert_eq!(
        std::fs::read_dir(images(&sup).join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

pub fn a_minimal_image_runs_in_a_user_namespace() {
    let busybox = std::fs::read("/bin/busybox").expect("busybox");
    // An export of a root with no /proc, /dev or /sys.
    let root = Layer::new()
        .dir("bin")
        .file("bin/busybox", &busybox, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/id", "busybox")
        .symlink("bin/sleep", "busybox")
        .dir_mode("data", 0o1777)
        .finish();
    let sup = Sup::prepare(&[(
        "uns",
        "[container]\nimage = \"mini:1\"\nnamespaces = [\"user\", \"mnt\", \"pid\"]\nuserns_base = 300000\n\
         [service]\nexec = [\"/bin/sh\", \"-c\", \"id -u > /data/who; exec sleep 1000\"]\n",
    )]);
    let _m = Unmounts(sup.path().to_path_buf());
    let tarball = sup.path().join("mini.tar.gz");
    std::fs::write(&tarball, build::compress(&root, Comp::Gzip)).expect("tarball");
    ok("import", &import(&sup, &tarball, Some("mini:1")));
    let sup = sup.launch();
    let who = crate::upper(&sup, "uns").join("data/who");
    assert_eq!(wait_file(&who), "0\n", "root of its user namespace");
    let owner = std::fs::metadata(&who).expect("who").uid();
    assert_eq!(
        owner, 300000,
        "written as the mapped root, in the unit's upper layer"
    );
}

pub fn nested_indexes_and_old_docker_archives_with_a_shared_layer() {
    // An index whose entry is another index (a multi-platform image).
    let sup = Sup::prepare(&[(
        "twice",
        "[container]\nimage = \"old:1\"\n[service]\nexec = [\"/bin/sh\", \"-c\", \"cat /etc/layer > /data/l; exec sleep 1000\"]\n",
    )]);
    let _m = Unmounts(sup.path().to_path_buf());
    let layout = sup.path().join("nested");
    let image = sh_image(vec![(busybox_base(), Comp::Gzip)], "true", json!({}));
    let digest = build::oci_layout(&layout, &image, "1");
    let index_path = layout.join("index.json");
    let inner = std::fs::read(&index_path).expect("index");
    let inner_digest = build::sha(&inner);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(&inner_digest["sha256:".len()..]),
        &inner,
    )
    .expect("blob");
    let outer = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": inner_digest, "size": inner.len(),
        "annotations": {"io.containerd.image.name": "nested:1"}}]});
    std::fs::write(&index_path, serde_json::to_vec(&outer).expect("json")).expect("index");
    let out = ok("import nested", &import(&sup, &layout, None));
    assert!(
        out.contains(&format!("imported nested:1 {digest}")),
        "{out}"
    );

    // Docker before 25 wrote a layer used twice once, and a symlink to it.
    let layer = Layer::new().file("etc/layer", b"top\n", 0o644).finish();
    let config = json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [build::sha(&busybox_base()), build::sha(&layer), build::sha(&layer)]}});
    let config = serde_json::to_vec(&config).expect("config");
    let manifest = json!([{"Config": "config.json", "RepoTags": ["old:1"],
        "Layers": ["base/layer.tar", "a/layer.tar", "b/layer.tar"]}]);
    let archive = sup.path().join("old.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).expect("archive"));
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).expect("entry");
    };
    add("config.json", &config);
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest"),
    );
    add("base/layer.tar", &busybox_base());
    add("a/layer.tar", &layer);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(T::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "b/layer.tar", "../a/layer.tar")
        .expect("symlink");
    b.finish().expect("archive");
    drop(b);
    let out = ok("import old docker-archive", &import(&sup, &archive, None));
    assert!(
        out.contains("imported old:1 ") && out.contains("(3 layers, 1 unpacked)"),
        "{out}"
    );
    let sup = sup.launch();
    assert_eq!(
        wait_file(&crate::upper(&sup, "twice").join("data/l")),
        "top\n"
    );
}

pub fn prune_leaves_a_running_imports_staging_alone() {
    let sup = Sup::prepare(&[]);
    let store = sup::image::Store::new(&sup.state_dir());
    let (dir, flock) = store.staging("import").expect("staging");
    std::fs::write(dir.join("half-done"), b"x").expect("staged file");
    let stale = store.tmp().join("import-1-1");
    std::fs::create_dir(&stale).expect("stale staging");
    ok("prune", &sup.supctl(&["image", "prune"]));
    assert!(
        dir.join("half-done").exists(),
        "an import at work keeps its staging"
    );
    assert!(!stale.exists(), "an abandoned staging directory is removed");
    drop(flock);
    ok("prune", &sup.supctl(&["image", "prune"]));
    assert!(!dir.exists());
}
