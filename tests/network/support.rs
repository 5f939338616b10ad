//! What the network tests share: a network namespace of the test's own (supd runs
//! in it, so bridges, addresses and nft tables never touch the host's network),
//! an "outside" namespace joined to it by a veth pair, and a tiny python echo
//! server and client the units run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::Sup;

/// A named network namespace (`/run/netns/NAME`), deleted on drop with all its
/// interfaces and tables.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("supt-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NAME args`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// A command in this namespace (only the network namespace changes).
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .args(args)
            .output()
            .expect("run nsenter")
    }

    /// `sup`'s supd, started inside this namespace.
    pub fn launch(&self, mut sup: Sup) -> Sup {
        // A relaunch waits for the new supd's "started", not the last one's.
        sup.log = std::sync::Arc::default();
        let net = format!("--net={}", self.path());
        sup.launch_via(&["nsenter", &net])
    }

    /// Links whose name starts with `prefix`.
    pub fn links(&self, prefix: &str) -> Vec<String> {
        let out = self.exec(&["ip", "-o", "link", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    pub fn has_sup_table(&self) -> bool {
        let out = self.exec(&["nft", "list", "tables"]);
        String::from_utf8_lossy(&out.stdout).contains("table ip sup")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `ns` joined to a new namespace "outside" (10.200.0.2) by a veth pair; `ns`
/// gets 10.200.0.1 and a default route to it, as a host has to its LAN.
pub fn outside_of(ns: &Netns) -> Netns {
    let outside = Netns::new("out");
    ns.ip(&[
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "up1",
        "netns",
        &outside.name,
    ]);
    ns.ip(&["addr", "add", "10.200.0.1/24", "dev", "up0"]);
    ns.ip(&["link", "set", "up0", "up"]);
    ns.ip(&["route", "add", "default", "via", "10.200.0.2"]);
    outside.ip(&["addr", "add", "10.200.0.2/24", "dev", "up1"]);
    outside.ip(&["link", "set", "up1", "up"]);
    outside
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub const PYTHON: &str = "/usr/bin/python3";

/// An echo server: TCP on `port`, UDP on `port + 1`; each answers `NAME got LINE`.
const SERVER: &str = r#"
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        line = c.makefile().readline().strip()
        c.sendall(f"{name} got {line}\n".encode()); c.close()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port + 1))
while True:
    data, peer = u.recvfrom(512)
    u.sendto(f"{name} got {data.decode().strip()}\n".encode(), peer)
"#;

/// `client.py tcp|udp HOST PORT`: prints the answer, or `ERR why`.
const CLIENT: &str = r#"
import socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "tcp":
        s = socket.create_connection((host, port), timeout=3)
        s.sendall(b"ping\n"); print(s.makefile().readline().strip())
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
        s.sendto(b"ping\n", (socket.gethostbyname(host), port))
        print(s.recvfrom(512)[0].decode().strip())
except Exception as e:
    print("ERR", e)
"#;

/// Writes the scripts next to the test's units; returns (server, client).
pub fn scripts(dir: &Path) -> (PathBuf, PathBuf) {
    let server = dir.join("server.py");
    let client = dir.join("client.py");
    std::fs::write(&server, SERVER).expect("write server");
    std::fs::write(&client, CLIENT).expect("write client");
    (server, client)
}

/// The client run from the test (outside any unit), in `ns`.
pub fn ask(ns: &Netns, client: &Path, kind: &str, host: &str, port: u16) -> String {
    let out = ns.exec(&[
        PYTHON,
        &client.to_string_lossy(),
        kind,
        host,
        &port.to_string(),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A unit running the echo server as `name` on `port`, with `network` settings.
pub fn server_unit(server: &Path, name: &str, port: u16, network: &str) -> String {
    format!(
        "[service]\nexec = [\"{PYTHON}\", \"{}\", \"{name}\", \"{port}\"]\n[network]\n{network}\n",
        server.display()
    )
}

/// A unit that keeps asking (`kind host port`) and writes each answer to `out`,
/// so a test can wait for the answer it expects (a peer may still be starting).
pub fn client_unit(client: &Path, out: &Path, ask: &str, network: &str) -> String {
    format!(
        "[service]\nexec = [\"/bin/sh\", \"-c\", \"while true; do {PYTHON} {} {ask} > {tmp}; mv {tmp} {out}; sleep 0.2; done\"]\n\
         [network]\n{network}\n",
        client.display(),
        tmp = out.with_extension("tmp").display(),
        out = out.display(),
    )
}

/// The latest answer a client unit wrote, once it satisfies `want`.
pub fn answer(out: &Path, what: &str, want: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    crate::common::wait_until(what, || {
        last = std::fs::read_to_string(out).unwrap_or_default();
        want(last.trim())
    });
    last.trim().to_owned()
}

/// A unit's addresses from `status --json`: `[(network, address)]`.
pub fn addresses(sup: &Sup, unit: &str) -> Vec<(String, String)> {
    let status = sup.unit(unit);
    status["network"]["addresses"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    (
                        a["network"].as_str().unwrap_or_default().to_owned(),
                        a["address"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `spoof.py GATEWAY PORT`: from inside a unit with `net_raw`, hand-built UDP
/// frames to the gateway's MAC: one addressed to the gateway (`via-gateway`),
/// one to 127.0.0.1 (`via-loopback`). Prints `sent` once both left.
const SPOOF: &str = r#"
import socket, struct, sys, time
gw, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"arp", (gw, 9))
time.sleep(0.3)
mac = None
for line in open("/proc/net/arp").read().splitlines()[1:]:
    f = line.split()
    if f[0] == gw:
        mac = bytes.fromhex(f[3].replace(":", ""))
me = open("/sys/class/net/eth0/address").read().strip()
src_mac = bytes.fromhex(me.replace(":", ""))
src_ip = socket.inet_aton(u.getsockname()[0]) if u.getsockname()[0] != "0.0.0.0" else None
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((gw, 9)); src_ip = socket.inet_aton(s.getsockname()[0])
def checksum(b):
    t = sum(struct.unpack("!10H", b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); raw.bind(("eth0", 0))
for dst, payload in ((gw, b"via-gateway"), ("127.0.0.1", b"via-loopback")):
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src_ip, socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    raw.send(mac + src_mac + b"\x08\x00" + ip + udp)
print("sent")
"#;

pub fn spoof_script(dir: &Path) -> PathBuf {
    let path = dir.join("spoof.py");
    std::fs::write(&path, SPOOF).expect("write spoof");
    path
}
