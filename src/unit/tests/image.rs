//! `[container] image` and the keys that go with it.

use super::*;

#[test]
fn image_units_may_leave_out_exec_and_service() {
    for text in [
        "[container]\nimage = \"web:1\"\n",
        "[container]\nimage = \"web:1\"\nargs = [\"-v\"]\n[service]\nrestart = \"always\"\n",
    ] {
        let u = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let image = u.container.image.expect("image");
        assert_eq!(image.reference, "web:1");
        assert!(u.service.exec.is_empty(), "filled in from the image later");
        // Protected like a rootfs unit: the host's /dev is not there.
        assert!(u.container.protection.private_devices, "{text}");
    }
    let u = parse("[container]\nimage = \"web:1\"\n[service]\nstop_signal = \"SIGINT\"\n").unwrap();
    assert!(u.container.image.unwrap().stop_signal_written);
    // `args` may be written in [service] too.
    let u = parse("[container]\nimage = \"web:1\"\n[service]\nargs = [\"-v\"]\n").unwrap();
    assert_eq!(u.container.image.unwrap().args, ["-v"]);
}

#[test]
fn image_key_errors() {
    for (text, message) in [
        (
            "[service]\nexec = [\"/bin/true\"]\n[container]\nargs = [\"x\"]\n",
            "args needs `image` in [container]",
        ),
        (
            "[container]\nimage = \"web:1\"\nrootfs = \"/srv/root\"\n",
            "image and rootfs are both set",
        ),
        (
            "[container]\nimage = \"web:1\"\nnamespaces = [\"pid\"]\n",
            "image needs a mnt namespace",
        ),
        ("[container]\nimage = \"a b\"\n", "must be NAME:TAG"),
        ("[container]\nimage = 3\n", "expected a string"),
        ("[service]\nrestart = \"always\"\n", "missing `exec`"),
        (
            "[service]\nexec = [\"/bin/true\"]\nargs = [\"x\"]\n",
            "args needs `image` in [container]",
        ),
        (
            "[container]\nimage = \"w:1\"\nargs = [\"a\"]\n[service]\nargs = [\"b\"]\n",
            "args is written in both",
        ),
        (
            "[container]\nimage = \"w:1\"\nargs = [\"a\\u0000\"]\n",
            "NUL",
        ),
    ] {
        let errors = crate::unit::parse_unit("web", std::path::Path::new("units/web.toml"), text)
            .expect_err(text);
        assert!(
            errors.iter().any(|e| e.message.contains(message)),
            "{text}: want {message:?} in {errors:?}"
        );
    }
}
