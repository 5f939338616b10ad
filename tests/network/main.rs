//! Bridge networking (issue 13), end to end: every test runs supd inside a
//! network namespace it creates (and deletes), so the host's network is never
//! touched. Needs root, `ip`, `nft` and python3; reported as ignored otherwise.

#[path = "../common/mod.rs"]
mod common;
mod support;

use common::harness::{self, trials};
use common::{Sup, pid_of};
use support::*;

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn gate() -> Option<String> {
    if let Some(why) = harness::root() {
        return Some(why);
    }
    let missing: Vec<&str> = ["ip", "nft", "nsenter"]
        .into_iter()
        .filter(|tool| {
            !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !std::path::Path::new(PYTHON).exists() {
        return Some(format!("needs {PYTHON}"));
    }
    (!missing.is_empty()).then(|| format!("needs {}", missing.join(", ")))
}

fn main() -> std::process::ExitCode {
    harness::main(trials![gate => [
        units_on_a_network_talk_by_name_and_alias_and_other_networks_cannot_reach_them,
        internal_network_has_no_egress_while_a_normal_network_does,
        published_ports_reach_the_container_from_localhost_and_outside,
        addresses_survive_restarts_and_nothing_is_left_after_stop_or_kill,
        sidecar_shares_its_peers_namespace_across_the_peers_restarts,
        reload_restarts_only_what_changed_and_rewrites_hosts_in_place,
        a_unit_with_raw_sockets_cannot_reach_the_hosts_loopback,
    ]])
}

fn units_on_a_network_talk_by_name_and_alias_and_other_networks_cannot_reach_them() {
    let ns = Netns::new("names");
    let sup = Sup::prepare(&[]);
    let (server, client) = scripts(sup.path());
    let (tcp_out, udp_out, far_out) = (
        sup.path().join("tcp.out"),
        sup.path().join("udp.out"),
        sup.path().join("far.out"),
    );
    std::fs::write(
        sup.units_dir().join("back.network.toml"),
        "subnet = \"10.90.0.0/24\"\n",
    )
    .unwrap();
    sup.write_unit(
        "srv",
        &server_unit(
            &server,
            "srv",
            7000,
            "mode = \"bridge\"\naliases = [\"db\"]\nipv4 = \"10.89.0.10\"",
        ),
    );
    sup.write_unit(
        "cli",
        &client_unit(&client, &tcp_out, "tcp srv 7000", "mode = \"bridge\""),
    );
    sup.write_unit(
        "cliudp",
        &client_unit(&client, &udp_out, "udp db 7001", "mode = \"bridge\""),
    );
    sup.write_unit(
        "far",
        &client_unit(
            &client,
            &far_out,
            "tcp 10.89.0.10 7000",
            "mode = \"bridge\"\nnetworks = [\"back\"]",
        ),
    );
    let mut sup = ns.launch(sup);
    assert_eq!(
        answer(&tcp_out, "cli's TCP answer from srv", |a| a
            .starts_with("srv")),
        "srv got ping"
    );
    assert_eq!(
        answer(&udp_out, "cliudp's UDP answer from db", |a| a
            .starts_with("srv")),
        "srv got ping"
    );
    let far = answer(&far_out, "far's attempt", |a| !a.is_empty());
    assert!(far.starts_with("ERR"), "another network reached srv: {far}");
    assert_eq!(
        addresses(&sup, "srv"),
        [("default".to_owned(), "10.89.0.10".to_owned())]
    );
    let far_addr = addresses(&sup, "far");
    assert!(far_addr[0].1.starts_with("10.90.0."), "{far_addr:?}");
    let detail = common::stdout(&sup.supctl(&["status", "srv"]));
    assert!(
        detail.contains("10.89.0.10") && detail.contains("aliases db"),
        "{detail}"
    );
    sup.stop();
}

fn internal_network_has_no_egress_while_a_normal_network_does() {
    let ns = Netns::new("egress");
    let outside = outside_of(&ns);
    let sup = Sup::prepare(&[]);
    let (server, client) = scripts(sup.path());
    // The "internet": an echo server only reachable through ns's uplink.
    let mut far = std::process::Command::new("nsenter")
        .arg(format!("--net={}", outside.path()))
        .args([PYTHON, &server.to_string_lossy(), "world", "9000"])
        .spawn()
        .expect("outside server");
    common::wait_until("the outside server", || {
        ask(&outside, &client, "tcp", "10.200.0.2", 9000).starts_with("world")
    });
    std::fs::write(
        sup.units_dir().join("sealed.network.toml"),
        "subnet = \"10.91.0.0/24\"\ninternal = true\n",
    )
    .unwrap();
    let (open_out, sealed_out) = (sup.path().join("open.out"), sup.path().join("sealed.out"));
    let ask_far = "tcp 10.200.0.2 9000";
    sup.write_unit(
        "open",
        &client_unit(&client, &open_out, ask_far, "mode = \"bridge\""),
    );
    sup.write_unit(
        "inside",
        &client_unit(
            &client,
            &sealed_out,
            ask_far,
            "mode = \"bridge\"\nnetworks = [\"sealed\"]",
        ),
    );
    let mut sup = ns.launch(sup);
    assert_eq!(
        answer(&open_out, "egress from the default network", |a| a
            .starts_with("world")),
        "world got ping"
    );
    let sealed = answer(&sealed_out, "the internal unit's attempt", |a| {
        !a.is_empty()
    });
    assert!(
        sealed.starts_with("ERR"),
        "internal network reached outside: {sealed}"
    );
    sup.stop();
    let _ = far.kill();
    let _ = far.wait();
}

fn published_ports_reach_the_container_from_localhost_and_outside() {
    let ns = Netns::new("ports");
    let outside = outside_of(&ns);
    let sup = Sup::prepare(&[]);
    let (server, client) = scripts(sup.path());
    sup.write_unit(
        "web",
        &server_unit(
            &server,
            "web",
            7000,
            "mode = \"bridge\"\nports = [\"8080:7000\", \"127.0.0.1:5353:7001/udp\"]",
        ),
    );
    // A program outside sup holds 9090: the unit that wants it cannot start.
    let mut holder = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args([PYTHON, "-c", "import socket,time; s=socket.socket(); s.bind(('0.0.0.0',9090)); s.listen(); time.sleep(600)"])
        .spawn()
        .expect("port holder");
    common::wait_until("the port holder to listen", || {
        let out = ns.exec(&["ss", "-ltn", "sport = :9090"]);
        String::from_utf8_lossy(&out.stdout).contains("9090")
    });
    sup.write_unit(
        "taken",
        &server_unit(
            &server,
            "taken",
            7000,
            "mode = \"bridge\"\nports = [\"9090:7000\"]",
        ),
    );
    let mut sup = ns.launch(sup);
    common::wait_until("web through 127.0.0.1:8080", || {
        ask(&ns, &client, "tcp", "127.0.0.1", 8080) == "web got ping"
    });
    assert_eq!(ask(&ns, &client, "udp", "127.0.0.1", 5353), "web got ping");
    assert_eq!(
        ask(&outside, &client, "tcp", "10.200.0.1", 8080),
        "web got ping"
    );
    // UDP was published on 127.0.0.1 only.
    assert!(ask(&outside, &client, "udp", "10.200.0.1", 5353).starts_with("ERR"));
    let web = sup.unit("web");
    assert_eq!(web["network"]["ports"][0], "8080:7000/tcp", "{web}");
    let taken = sup.wait_status("taken's start to fail", |units| {
        units.iter().any(|u| {
            u["name"] == "taken" && u["reason"].as_str().is_some_and(|r| r.contains("9090"))
        })
    });
    let reason = taken.iter().find(|u| u["name"] == "taken").unwrap()["reason"].to_string();
    assert!(reason.contains("in use"), "{reason}");
    // The unit that could not get 9090 forwards nothing: its owner still gets it.
    let reach = ns.exec(&[
        PYTHON,
        "-c",
        "import socket; socket.create_connection(('127.0.0.1', 9090), timeout=3); print('ok')",
    ]);
    assert_eq!(stdout_of(&reach), "ok", "9090 was taken from its owner");
    // The LAN cannot reach a unit's unpublished ports, even with a route to it.
    outside.ip(&["route", "add", "10.89.0.0/16", "via", "10.200.0.1"]);
    let web_ip = addresses(&sup, "web")[0].1.clone();
    assert!(
        ask(&outside, &client, "tcp", &web_ip, 7000).starts_with("ERR"),
        "LAN reached an unpublished port"
    );
    assert_eq!(
        ask(&outside, &client, "tcp", "10.200.0.1", 8080),
        "web got ping"
    );
    sup.stop();
    let _ = holder.kill();
    let _ = holder.wait();
}

fn addresses_survive_restarts_and_nothing_is_left_after_stop_or_kill() {
    let ns = Netns::new("clean");
    let sup = Sup::prepare(&[]);
    let (server, _) = scripts(sup.path());
    sup.write_unit(
        "a",
        &server_unit(
            &server,
            "a",
            7000,
            "mode = \"bridge\"\nports = [\"8081:7000\"]",
        ),
    );
    sup.write_unit("b", &server_unit(&server, "b", 7000, "mode = \"bridge\""));
    let mut sup = ns.launch(sup);
    sup.wait_all_running();
    let before = (addresses(&sup, "a"), addresses(&sup, "b"));
    assert!(!before.0.is_empty() && before.0 != before.1, "{before:?}");
    let pid = pid_of(&sup.unit("a"));
    assert!(sup.supctl(&["restart", "a", "--wait"]).status.success());
    sup.wait_status("a to run again", |u| {
        u.iter()
            .any(|u| u["name"] == "a" && u["state"] == "running" && u["pid"] != pid)
    });
    assert_eq!(addresses(&sup, "a"), before.0, "restart moved a");
    assert_eq!(ns.links("sup-"), ["sup-default"]);
    assert_eq!(
        ns.links("sv").len(),
        2,
        "one veth per running unit: {:?}",
        ns.links("sv")
    );
    sup.stop();
    // The kernel deletes a veth with its namespace, a moment after the last process.
    common::wait_until("no bridge or veth left", || {
        ns.links("sup-").is_empty() && ns.links("sv").is_empty()
    });
    assert!(!ns.has_sup_table(), "the nft table outlived supd");

    // Killed: the next supd finds the leftovers, keeps the addresses, and cleans up.
    let sup = ns.launch(sup);
    sup.wait_all_running();
    let child = sup.child.as_ref().map(|c| c.id() as i32).expect("supd");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut sup = sup;
    if let Some(mut c) = sup.child.take() {
        let _ = c.wait();
    }
    assert!(ns.has_sup_table());
    let mut sup = ns.launch(sup);
    sup.wait_all_running();
    assert_eq!((addresses(&sup, "a"), addresses(&sup, "b")), before);
    sup.stop();
    // The kernel deletes a veth with its namespace, a moment after the last process.
    common::wait_until("no bridge or veth left", || {
        ns.links("sup-").is_empty() && ns.links("sv").is_empty()
    });
    assert!(!ns.has_sup_table());
}

fn sidecar_shares_its_peers_namespace_across_the_peers_restarts() {
    let ns = Netns::new("pod");
    let sup = Sup::prepare(&[]);
    let (server, client) = scripts(sup.path());
    let out = sup.path().join("side.out");
    sup.write_unit(
        "main",
        &server_unit(&server, "main", 7000, "mode = \"bridge\""),
    );
    sup.write_unit(
        "side",
        &client_unit(&client, &out, "tcp 127.0.0.1 7000", "mode = \"unit:main\""),
    );
    let mut sup = ns.launch(sup);
    answer(&out, "side reaching main on 127.0.0.1", |a| {
        a == "main got ping"
    });
    let side_pid = pid_of(&sup.unit("side"));
    assert!(sup.supctl(&["restart", "main", "--wait"]).status.success());
    sup.wait_status("side restarted into main's new namespace", |u| {
        u.iter()
            .any(|u| u["name"] == "side" && u["state"] == "running" && u["pid"] != side_pid)
    });
    std::fs::remove_file(&out).unwrap();
    answer(&out, "side reaching the new main", |a| a == "main got ping");
    assert_eq!(sup.unit("side")["network"]["mode"], "unit:main");
    sup.stop();
}

fn reload_restarts_only_what_changed_and_rewrites_hosts_in_place() {
    let ns = Netns::new("reload");
    let sup = Sup::prepare(&[]);
    let (server, _) = scripts(sup.path());
    let back = sup.units_dir().join("back.network.toml");
    std::fs::write(&back, "subnet = \"10.90.0.0/24\"\n").unwrap();
    let bridge = "mode = \"bridge\"";
    sup.write_unit("a", &server_unit(&server, "a", 7000, bridge));
    sup.write_unit("b", &server_unit(&server, "b", 7000, bridge));
    sup.write_unit(
        "c",
        &server_unit(
            &server,
            "c",
            7000,
            "mode = \"bridge\"\nnetworks = [\"back\"]",
        ),
    );
    let mut sup = ns.launch(sup);
    sup.wait_all_running();
    let pids = |sup: &Sup| ["a", "b", "c"].map(|u| pid_of(&sup.unit(u)));
    let hosts_of = |pid: i32| {
        let out = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "cat", "/etc/hosts"])
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = pids(&sup);
    let hosts = hosts_of(before[0]);
    assert!(
        hosts.contains("\tb\n") && !hosts.contains("\tc\n"),
        "{hosts}"
    );

    // A new peer: a's /etc/hosts names it at once, without a restart.
    sup.write_unit(
        "d",
        &server_unit(&server, "d", 7000, "mode = \"bridge\"\naliases = [\"dee\"]"),
    );
    assert!(sup.supctl(&["reload"]).status.success());
    let d = addresses(&sup, "d");
    common::wait_until("a's hosts file to name d", || {
        hosts_of(before[0]).contains(&format!("{}\td dee\n", d[0].1))
    });
    assert_eq!(pids(&sup), before, "adding a peer restarted a unit");

    // b's ports change: only b restarts.
    sup.write_unit(
        "b",
        &server_unit(
            &server,
            "b",
            7000,
            "mode = \"bridge\"\nports = [\"8082:7000\"]",
        ),
    );
    assert!(sup.supctl(&["reload"]).status.success());
    sup.wait_status("b restarted", |u| {
        u.iter()
            .any(|u| u["name"] == "b" && u["state"] == "running" && u["pid"] != before[1])
    });
    let now = pids(&sup);
    assert_eq!(
        (now[0], now[2]),
        (before[0], before[2]),
        "only b may restart"
    );

    // A new unit cannot take b's port: it is the one rejected.
    sup.write_unit(
        "thief",
        &server_unit(
            &server,
            "thief",
            7000,
            "mode = \"bridge\"\nports = [\"8082:7000\"]",
        ),
    );
    let reply = sup.supctl(&["reload"]);
    assert!(common::stdout(&reply).contains("thief") || common::stderr(&reply).contains("thief"));
    let thief = sup.unit("thief");
    assert_eq!(thief["state"], "failed", "{thief}");
    let why = thief["definition_error"].as_str().unwrap_or_default();
    assert!(why.contains("already published by unit \"b\""), "{thief}");
    assert_eq!(sup.unit("b")["state"], "running");
    std::fs::remove_file(sup.units_dir().join("thief.toml")).unwrap();

    // The network c is on changes: c restarts, on the new subnet.
    std::fs::write(&back, "subnet = \"10.92.0.0/24\"\n").unwrap();
    assert!(sup.supctl(&["reload"]).status.success());
    sup.wait_status("c restarted", |u| {
        u.iter()
            .any(|u| u["name"] == "c" && u["state"] == "running" && u["pid"] != before[2])
    });
    assert!(
        addresses(&sup, "c")[0].1.starts_with("10.92.0."),
        "{:?}",
        addresses(&sup, "c")
    );
    assert_eq!(pid_of(&sup.unit("a")), before[0]);
    sup.stop();
}

fn a_unit_with_raw_sockets_cannot_reach_the_hosts_loopback() {
    let ns = Netns::new("spoof");
    let sup = Sup::prepare(&[]);
    let spoof = spoof_script(sup.path());
    let got = sup.path().join("got.out");
    // A host service on every address (loopback too) that writes what it gets.
    let mut listener = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args([
            PYTHON,
            "-c",
            &format!(
                "import socket\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.bind(('0.0.0.0',7779))\n\
                 while True:\n    d,_=u.recvfrom(100)\n    open('{0}','a').write(d.decode()+'\\n')",
                got.display()
            ),
        ])
        .spawn()
        .expect("listener");
    let out = sup.path().join("spoof.out");
    // Bridged units keep net_raw (their namespace is their own), as in Docker.
    sup.write_unit(
        "evil",
        &format!(
            "[service]\nexec = [\"/bin/sh\", \"-c\", \"{PYTHON} {} 10.89.0.1 7779 > {}; sleep 100\"]\n\
             [network]\nmode = \"bridge\"\n",
            spoof.display(),
            out.display()
        ),
    );
    let mut sup = ns.launch(sup);
    answer(&out, "the frames to be sent", |a| a == "sent");
    // The control frame arrives, so the frames are well made...
    let text = answer(&got, "the frame to the gateway", |a| {
        a.contains("via-gateway")
    });
    // ...and the one for 127.0.0.1 never does (give it the same time again).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = std::fs::read_to_string(&got).unwrap_or(text);
    assert!(
        !text.contains("via-loopback"),
        "a unit reached the host's loopback: {text}"
    );
    sup.stop();
    let _ = listener.kill();
    let _ = listener.wait();
}
