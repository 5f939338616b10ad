//! Imports that must be refused and leave nothing behind: a corrupted blob, and
//! tars that try to write outside the store.

use super::*;

pub(super) fn store_is_empty(sup: &Sup) {
    for dir in ["layers/sha256", "blobs/sha256", "tmp"] {
        assert_eq!(
            entries(&images(sup).join(dir)),
            Vec::<String>::new(),
            "{dir} must be empty"
        );
    }
    let refs = std::fs::read_to_string(images(sup).join("refs.json")).unwrap_or_default();
    assert!(!refs.contains("sha256"), "no tag: {refs}");
}

pub(super) fn a_corrupted_blob_is_refused_and_leaves_nothing() {
    let sup = Sup::prepare(&[]);
    let layout = sup.path().join("bad");
    let image = sh_image(
        vec![
            (busybox_base(), Comp::Gzip),
            (Layer::new().file("x", b"x", 0o644).finish(), Comp::Gzip),
        ],
        "true",
        json!({}),
    );
    build::oci_layout(&layout, &image, "1");
    // Flip a byte in the middle of the biggest blob (the busybox layer).
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .expect("blobs")
        .flatten()
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("a blob")
        .path();
    let mut bytes = std::fs::read(&biggest).expect("blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&biggest, bytes).expect("corrupt");
    let out = import(&sup, &layout, Some("bad:1"));
    assert!(!out.status.success(), "a corrupted layer is refused");
    let err = stderr(&out);
    assert!(
        err.contains("digest mismatch") || err.contains("damaged") || err.contains("corrupt"),
        "{err}"
    );
    store_is_empty(&sup);

    // Blobs intact, but the config's DiffID is not the layer's uncompressed digest.
    let layout = sup.path().join("diffid");
    let mut image = sh_image(vec![(busybox_base(), Comp::Zstd)], "true", json!({}));
    image.diff_ids = Some(vec![build::sha(b"something else")]);
    build::oci_layout(&layout, &image, "1");
    let out = import(&sup, &layout, Some("bad:1"));
    assert!(!out.status.success(), "a DiffID mismatch is refused");
    assert!(stderr(&out).contains("DiffID"), "{}", stderr(&out));
    store_is_empty(&sup);
}

pub(super) fn hostile_tars_are_refused_without_writing_outside() {
    use tar::EntryType as T;
    let sup = Sup::prepare(&[]);
    let host = sup.path().join("host");
    std::fs::create_dir(&host).expect("host dir");
    let host_str = host.to_str().expect("utf-8");
    let leaves = "leaves the layer";
    let symlink = "is a symlink or not a directory";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "dot-dot",
            leaves,
            Layer::new().raw(T::Regular, "../escape", "", b"x").finish(),
        ),
        (
            "nested dot-dot",
            leaves,
            Layer::new()
                .dir("a")
                .raw(T::Regular, "a/../../escape", "", b"x")
                .finish(),
        ),
        (
            "absolute",
            leaves,
            Layer::new().raw(T::Regular, "/escape", "", b"x").finish(),
        ),
        (
            "write through an absolute symlink",
            symlink,
            Layer::new()
                .symlink("etc", host_str)
                .raw(T::Regular, "etc/pwned", "", b"x")
                .finish(),
        ),
        (
            "write through a relative symlink out",
            symlink,
            Layer::new()
                .symlink("up", "../../../../../../..")
                .raw(T::Regular, "up/pwned", "", b"x")
                .finish(),
        ),
        (
            "hard link out",
            leaves,
            Layer::new()
                .raw(T::Link, "passwd", "../../../../etc/passwd", b"")
                .finish(),
        ),
        (
            "absolute hard link",
            leaves,
            Layer::new()
                .raw(T::Link, "passwd", "/etc/passwd", b"")
                .finish(),
        ),
        (
            "hard link through a symlink",
            symlink,
            Layer::new()
                .symlink("h", host_str)
                .file("h2", b"", 0o644)
                .raw(T::Link, "x", "h/passwd", b"")
                .finish(),
        ),
    ];
    // Something a hard link through `h` could reach.
    std::fs::write(host.join("passwd"), "host\n").expect("host file");
    for (what, why, tar) in cases {
        let file = sup.path().join("hostile.tar");
        std::fs::write(&file, &tar).expect("tarball");
        let out = import(&sup, &file, Some("bad:1"));
        assert!(!out.status.success(), "{what}: must be refused");
        assert!(stderr(&out).contains(why), "{what}: {}", stderr(&out));
        std::fs::remove_file(host.join("passwd")).ok();
        assert_eq!(
            entries(&host),
            Vec::<String>::new(),
            "{what}: nothing written outside"
        );
        assert!(!sup.path().join("escape").exists(), "{what}");
        store_is_empty(&sup);
    }
}
