//! supd's control socket from inside units: hidden from a unit that sees the
//! host's files, and where a unit gets at it anyway (a bind of the state
//! directory, no mount namespace, a rootfs), supd's peer check refuses it; only
//! `control_socket = true` opens it, after which the probe stops another unit and
//! `supctl` works from inside.

use std::path::Path;

use crate::common::*;
use crate::kit::*;

/// A `[[mount]]` putting supd's state directory at `target`.
fn state_bind(sup: &Sup, target: &Path) -> String {
    format!(
        "[[mount]]\ntype = \"bind\"\nsource = {:?}\ntarget = {target:?}",
        sup.state_dir()
    )
}

pub fn control_socket_is_hidden_peer_checked_and_opened_only_on_request() {
    let sup = Sup::prepare(&[]);
    let probe = probe().display().to_string();
    let peek = sup.path().join("peek");
    std::fs::create_dir(&peek).expect("mkdir peek");
    let attacks = ["supd_status", "supd_stop"];
    let args = |state: &Path| {
        let opts = [format!("state={}", state.display()), "victim=victim".into()];
        probe_args(&opts, &attacks)
    };
    let state = sup.state_dir();
    sup.write_unit("victim", &unit("", "exec sleep 1000"));
    // The state directory where it is: covered by an empty tmpfs.
    sup.write_unit("hidden", &probe_unit("", "", &probe, &args(&state)));
    // Bound elsewhere, or seen without a mount namespace: the peer check.
    let bound = state_bind(&sup, &peek);
    sup.write_unit("bound", &probe_unit(&bound, "", &probe, &args(&peek)));
    let hostns = "namespaces = []";
    sup.write_unit("hostns", &probe_unit(hostns, "", &probe, &args(&state)));
    let root = busybox_rootfs(&sup.path().join("rootfs"));
    let boxed = format!(
        "rootfs = {root:?}\n{}\n[[mount]]\ntype = \"bind\"\nsource = {probe:?}\n\
         target = \"/probe\"\nreadonly = true",
        state_bind(&sup, Path::new("/run/sup")),
    );
    let in_box = args(Path::new("/run/sup"));
    sup.write_unit("rootfs", &probe_unit(&boxed, "", "/probe", &in_box));
    // supctl itself, through the bound socket.
    let socket = peek.join("control.sock").display().to_string();
    let supctl = |socket: &str| vec!["--socket".to_string(), socket.into(), "status".into()];
    sup.write_unit(
        "supctl_refused",
        &probe_unit(&bound, "", SUPCTL, &supctl(&socket)),
    );
    let sup = sup.launch();

    let refused = |why: &str| all(&attacks, &format!("refused({why})"));
    assert_eq!(seen(&sup, "hidden"), refused("ENOENT"), "a default unit");
    for unit in ["bound", "hostns", "rootfs"] {
        assert_eq!(
            seen(&sup, unit),
            refused("permission-denied"),
            "{unit}: supd's peer check"
        );
    }
    let failed = sup.wait_state("supctl_refused", "failed");
    let log = stdout(&sup.supctl(&["logs", "supctl_refused"]));
    assert!(
        log.contains("control_socket = true"),
        "supctl in a unit is told why: {log}\n{failed:#}"
    );
    assert_eq!(sup.unit("victim")["state"], "running", "nobody stopped it");

    // Opened on request: the probe stops the victim, supctl answers.
    let opened = "control_socket = true";
    sup.write_unit("opened", &probe_unit(opened, "", &probe, &args(&state)));
    let state_arg = state.display().to_string();
    sup.write_unit(
        "supctl_allowed",
        &probe_unit(
            opened,
            "",
            SUPCTL,
            &supctl(&format!("{state_arg}/control.sock")),
        ),
    );
    let out = sup.supctl(&["reload"]);
    assert!(out.status.success(), "reload: {}", stderr(&out));
    assert_eq!(
        seen(&sup, "opened"),
        all(&attacks, "ALLOWED"),
        "control_socket = true"
    );
    sup.wait_state("victim", "inactive");
    sup.wait_state("supctl_allowed", "exited");
    let log = stdout(&sup.supctl(&["logs", "supctl_allowed"]));
    assert!(log.contains("victim"), "supctl status from a unit: {log}");
    drop(sup);
}
