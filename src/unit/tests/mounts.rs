//! `[[mount]]` entries.

use super::container::container;
use super::*;

fn mount(kind: MountKind, target: &str) -> MountSpec {
    MountSpec::plain(kind, target)
}

#[test]
fn mount_types_and_defaults() {
    let c = container(
        "[[mount]]\ntype = \"bind\"\nsource = \"/srv\"\ntarget = \"/srv\"\n\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/run\"\n",
    );
    assert_eq!(
        c.mounts,
        [
            mount(
                MountKind::Bind {
                    source: "/srv".into(),
                    recursive: true
                },
                "/srv"
            ),
            mount(
                MountKind::Tmpfs {
                    size: None,
                    mode: None
                },
                "/run"
            ),
        ]
    );
    // Inline array-of-tables form works too (before any [section]).
    let text =
        format!("mount = [{{ type = \"tmpfs\", target = \"/tmp\", size = \"64M\" }}]\n{MINIMAL}");
    let c = parse(&text).unwrap().container;
    assert_eq!(
        c.mounts[0].kind,
        MountKind::Tmpfs {
            size: Some(67_108_864),
            mode: None
        }
    );
    assert_eq!(
        container("[[mount]]\ntype = \"tmpfs\"\ntarget = \"/tmp\"\nsize = 4096\n").mounts[0].kind,
        MountKind::Tmpfs {
            size: Some(4096),
            mode: None
        }
    );
}

#[test]
fn mount_errors() {
    let m = |body: &str| with(&format!("\n[[mount]]\n{body}"));
    assert_err(
        &m("type = \"bind\"\nsource = \"/a\"\ntarget = \"/b\"\nsize = \"64M\"\n"),
        8,
        1,
        r#"size is only valid for type = "tmpfs" (this mount has type = "bind")"#,
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/b\"\nsource = \"/a\"\n"),
        7,
        1,
        r#"source is only valid for type = "bind""#,
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/proc\"\nlower = [\"/a\"]\n"),
        7,
        1,
        r#"lower is only valid for type = "overlay""#,
    );
    assert_err(
        &m("type = \"dev\"\ntarget = \"/dev\"\nrecursive = true\n"),
        7,
        1,
        r#"recursive is only valid for type = "bind""#,
    );
    assert_err(
        &m("type = \"sysfs\"\ntarget = \"/sys\"\nmode = \"0755\"\n"),
        7,
        1,
        r#"mode is only valid for type = "tmpfs""#,
    );
    assert_err(&m("target = \"/b\"\n"), 4, 1, "missing type in [[mount]]");
    assert_err(
        &m("type = \"nfs\"\ntarget = \"/b\"\n"),
        5,
        8,
        r#"unknown mount type "nfs": expected one of "bind", "tmpfs", "proc", "sysfs", "dev", "overlay""#,
    );
    assert_err(&m("type = \"proc\"\n"), 4, 1, "missing target in [[mount]]");
    assert_err(
        &m("type = \"bind\"\ntarget = \"/b\"\n"),
        4,
        1,
        "missing source",
    );
    assert_err(
        &m("type = \"bind\"\nsource = \"a\"\ntarget = \"/b\"\n"),
        6,
        10,
        "mount source \"a\" must be an absolute path",
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"proc\"\n"),
        6,
        10,
        "must be an absolute path",
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/x/../etc\"\n"),
        6,
        10,
        "must not contain \"..\" components",
    );
    assert_err(
        &m("type = \"overlay\"\ntarget = \"/usr\"\n"),
        4,
        1,
        "missing lower",
    );
    assert_err(
        &m("type = \"overlay\"\ntarget = \"/usr\"\nlower = []\n"),
        7,
        9,
        "lower must not be empty",
    );
    assert_err(
        &m("type = \"overlay\"\ntarget = \"/usr\"\nlower = [\"/a\", \"b\"]\n"),
        7,
        16,
        "overlay lower \"b\" must be an absolute path",
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/t\"\nsize = \"1.5M\"\n"),
        7,
        8,
        "fractions are not allowed",
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/t\"\nsize = 0\n"),
        7,
        8,
        "tmpfs size must be at least 1 byte",
    );
    assert_err(
        &m("type = \"tmpfs\"\ntarget = \"/t\"\nmode = \"17777\"\n"),
        7,
        8,
        "mode \"17777\" is too large",
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/p\"\npropagation = \"rshared\"\n"),
        7,
        15,
        r#"unknown propagation "rshared": expected one of "private", "slave", "shared", "unbindable""#,
    );
    assert_err(
        &m("type = \"proc\"\ntarget = \"/p\"\nreadonyl = true\n"),
        7,
        1,
        "unknown field `readonyl`",
    );
    // The second mount's error points at the second header.
    assert_err(
        &m("type = \"proc\"\ntarget = \"/p\"\n\n[[mount]]\ntype = \"dev\"\n"),
        8,
        1,
        "missing target",
    );
}
