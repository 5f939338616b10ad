//! Every key of a unit file (and of a network file), for the `sup.unit(5)` man page.
//! docs/units.md is the reference; a test below compares its keys with these, so
//! the two lists cannot drift apart.

/// One key: the table it belongs to, its name, and its type and default in brief.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub section: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
}

const fn key(section: &'static str, name: &'static str, summary: &'static str) -> Key {
    Key {
        section,
        name,
        summary,
    }
}

/// The tables of a unit file, in the order of docs/units.md, with their purpose;
/// `NAME.network.toml` is the network file (docs/networking.md), whose keys are top-level.
pub const SECTIONS: &[(&str, &str)] = &[
    ("[unit]", "description and dependencies"),
    ("[service]", "what to run, how to restart and stop it"),
    (
        "[credentials]",
        "secret files copied into the container (NAME = \"/host/path\")",
    ),
    ("[logs]", "log rotation limits"),
    (
        "[health]",
        "a periodic probe: exactly one of exec, tcp, http",
    ),
    ("[network]", "host, own or bridge networking, ports, names"),
    ("[container]", "namespaces, ids, capabilities, limits, root"),
    ("[[device]]", "host device nodes the unit may use"),
    ("[[mount]]", "filesystems mounted into the container"),
    (
        "[resources]",
        "cgroup limits: memory, CPU, pids, IO, cpuset",
    ),
    (
        NETWORK_FILE,
        "a network, in its own file NAME.network.toml in the units directory",
    ),
];

/// The section name used for the keys of a network file.
pub const NETWORK_FILE: &str = "NAME.network.toml";

pub const KEYS: &[Key] = &[
    key("[unit]", "description", "string, default \"\""),
    key("[unit]", "after", "array of unit names, default []"),
    key("[unit]", "requires", "array of unit names, default []"),
    key("[unit]", "wants", "array of unit names, default []"),
    key(
        "[service]",
        "exec",
        "array of strings, required (except with [container] image)",
    ),
    key(
        "[service]",
        "args",
        "array of strings, default [] (only with image; or in [container])",
    ),
    key("[service]", "env", "table of strings, default {}"),
    key(
        "[service]",
        "env_file",
        "array of absolute paths, default []",
    ),
    key("[service]", "workdir", "string, default: none"),
    key("[service]", "user", "string or integer, default: none"),
    key("[service]", "group", "string or integer, default: none"),
    key(
        "[service]",
        "restart",
        "\"no\", \"on-failure\", \"on-abnormal\" or \"always\", default \"on-failure\"",
    ),
    key("[service]", "restart_delay", "duration, default \"100ms\""),
    key(
        "[service]",
        "restart_max_delay",
        "duration, default \"30s\"",
    ),
    key(
        "[service]",
        "restart_reset_after",
        "duration, default \"10s\"",
    ),
    key(
        "[service]",
        "start_limit",
        "table, default { burst = 5, interval = \"10s\" }",
    ),
    key(
        "[service]",
        "stop_signal",
        "string or integer, default \"SIGTERM\"",
    ),
    key("[service]", "stop_timeout", "duration, default \"10s\""),
    key(
        "[service]",
        "success_exit_codes",
        "array of integers, default [0]",
    ),
    key(
        "[service]",
        "supplementary_groups",
        "array of strings or integers, default []",
    ),
    key("[service]", "umask", "octal string, default: inherited"),
    key(
        "[service]",
        "type",
        "\"simple\", \"notify\" or \"oneshot\", default \"simple\"",
    ),
    key("[service]", "ready_fd", "integer 3..=1023, default: none"),
    key(
        "[service]",
        "start_timeout",
        "duration, default \"90s\" when there is something to wait for",
    ),
    key("[service]", "watchdog", "duration, default: none"),
    key("[service]", "remain_after_exit", "boolean, default false"),
    key(
        "[service]",
        "exec_start_pre",
        "array of commands, default []",
    ),
    key(
        "[service]",
        "exec_stop_post",
        "array of commands, default []",
    ),
    key(
        "[service]",
        "on_failure",
        "\"none\", \"stop-dependents\", \"restart-dependents\", \"poweroff\", \"reboot\" or \"exit\", default \"none\"",
    ),
    key(
        "[credentials]",
        "NAME",
        "absolute host path of a secret file, copied to /run/credentials/UNIT/NAME",
    ),
    key("[logs]", "max_size", "size, default \"10M\" (10 MiB)"),
    key("[logs]", "max_files", "integer, default 5"),
    key(
        "[health]",
        "exec",
        "array of strings: a command run in the container, exit code 0 is healthy",
    ),
    key(
        "[health]",
        "tcp",
        "\"IP:PORT\": a TCP connect from the unit's network namespace",
    ),
    key(
        "[health]",
        "http",
        "\"http://IP[:PORT]/PATH\": a GET, 2xx and 3xx are healthy",
    ),
    key("[health]", "interval", "duration, default \"10s\""),
    key("[health]", "start_interval", "duration, default interval"),
    key("[health]", "timeout", "duration, default \"5s\""),
    key("[health]", "retries", "integer 1..=1000, default 3"),
    key("[health]", "start_period", "duration, default \"0s\""),
    key(
        "[health]",
        "on_unhealthy",
        "\"restart\", \"stop\" or \"none\", default \"restart\"",
    ),
    key(
        "[health]",
        "ready_on_healthy",
        "boolean, default true for type = \"simple\"",
    ),
    key(
        "[network]",
        "mode",
        "\"host\", \"none\", \"bridge\" or \"unit:NAME\", default \"host\" (\"none\" when namespaces lists \"net\")",
    ),
    key(
        "[network]",
        "networks",
        "array of network names (at most 8), default [\"default\"] in bridge mode",
    ),
    key(
        "[network]",
        "ports",
        "array of \"[host_ip:]host_port:container_port[/tcp|udp]\" (at most 256), default []",
    ),
    key(
        "[network]",
        "aliases",
        "array of host names (at most 64), default []",
    ),
    key("[network]", "ipv4", "IPv4 address, default: assigned"),
    key(
        "[container]",
        "namespaces",
        "array of namespace names, default [\"mnt\", \"pid\", \"uts\", \"ipc\", \"cgroup\"]",
    ),
    key(
        "[container]",
        "join",
        "table: namespace -> path, default {}",
    ),
    key("[container]", "hostname", "string, default: inherited"),
    key("[container]", "domainname", "string, default: inherited"),
    key("[container]", "uid_map", "array of id ranges, default []"),
    key("[container]", "gid_map", "array of id ranges, default []"),
    key("[container]", "userns_base", "integer, default: none"),
    key(
        "[container]",
        "rootfs",
        "string (absolute path), default: none (the host's /)",
    ),
    key(
        "[container]",
        "image",
        "string (NAME:TAG, NAME@sha256:...), default: none",
    ),
    key(
        "[container]",
        "args",
        "array of strings, default [] (only with image)",
    ),
    key("[container]", "readonly_root", "boolean, default false"),
    key(
        "[container]",
        "root_propagation",
        "propagation name, default \"private\"",
    ),
    key("[container]", "init", "boolean, default true"),
    key(
        "[container]",
        "capabilities",
        "array of capability names, default: Docker's default set",
    ),
    key("[container]", "no_new_privs", "boolean, default true"),
    key("[container]", "seccomp", "boolean, default true"),
    key(
        "[container]",
        "rlimits",
        "table: limit name -> limit, default {}",
    ),
    key(
        "[container]",
        "oom_score_adj",
        "integer, default: inherited",
    ),
    key(
        "[container]",
        "protect_system",
        "\"no\", \"yes\", \"full\" or \"strict\", default \"full\" (\"no\" with a rootfs or image, or without mnt)",
    ),
    key(
        "[container]",
        "writable_paths",
        "array of absolute paths, default []",
    ),
    key(
        "[container]",
        "private_tmp",
        "boolean, default true (false with a rootfs or image, or without mnt)",
    ),
    key(
        "[container]",
        "private_devices",
        "boolean, default true (false without mnt)",
    ),
    key(
        "[container]",
        "protect_kernel",
        "boolean, default true (false without mnt)",
    ),
    key(
        "[container]",
        "protect_cgroups",
        "boolean, default true (false without mnt)",
    ),
    key("[container]", "control_socket", "boolean, default false"),
    key(
        "[container]",
        "ambient_capabilities",
        "array of capability names, default []",
    ),
    key(
        "[[device]]",
        "path",
        "a host device node below /dev/, which appears at the same path; required",
    ),
    key(
        "[[device]]",
        "access",
        "letters from \"rwm\" in that order, default \"rw\"",
    ),
    key(
        "[[mount]]",
        "type",
        "\"bind\", \"tmpfs\", \"proc\", \"sysfs\", \"dev\" or \"overlay\"; required",
    ),
    key(
        "[[mount]]",
        "target",
        "absolute path in the container; required",
    ),
    key("[[mount]]", "readonly", "boolean, default false"),
    key("[[mount]]", "nosuid", "boolean, default false"),
    key("[[mount]]", "nodev", "boolean, default false"),
    key("[[mount]]", "noexec", "boolean, default false"),
    key(
        "[[mount]]",
        "propagation",
        "\"private\", \"slave\", \"shared\" or \"unbindable\", default: none",
    ),
    key(
        "[[mount]]",
        "source",
        "absolute host path, only for type = \"bind\"; required there",
    ),
    key(
        "[[mount]]",
        "recursive",
        "boolean, only for type = \"bind\", default true",
    ),
    key(
        "[[mount]]",
        "size",
        "size, only for type = \"tmpfs\", default: the kernel's",
    ),
    key(
        "[[mount]]",
        "mode",
        "octal string, only for type = \"tmpfs\"",
    ),
    key(
        "[[mount]]",
        "lower",
        "array of absolute paths, top-most first, only for type = \"overlay\"; required there",
    ),
    key(
        "[resources]",
        "memory_max",
        "size or \"max\", at least 4096 bytes, default: no limit",
    ),
    key(
        "[resources]",
        "memory_high",
        "size or \"max\", at least 4096 bytes and <= memory_max, default: no limit",
    ),
    key(
        "[resources]",
        "memory_swap_max",
        "size or \"max\" (0: no swap), default: no limit",
    ),
    key(
        "[resources]",
        "cpu_max",
        "\"PCT%\", \"QUOTA/PERIOD\" or \"max\", default: no limit",
    ),
    key(
        "[resources]",
        "cpu_weight",
        "integer 1..=10000, default: the kernel's (100)",
    ),
    key(
        "[resources]",
        "pids_max",
        "integer (at least 1) or \"max\", default: no limit",
    ),
    key(
        "[resources]",
        "io_weight",
        "integer 1..=10000, default: the kernel's (100)",
    ),
    key(
        "[resources]",
        "cpuset_cpus",
        "cpu list string (numbers below 4096), default: no restriction",
    ),
    key(
        "[resources]",
        "cpuset_mems",
        "memory node list string (numbers below 4096), default: no restriction",
    ),
    key(
        NETWORK_FILE,
        "subnet",
        "IPv4 CIDR from /8 to /30, default 10.89.0.0/16",
    ),
    key(
        NETWORK_FILE,
        "gateway",
        "the bridge's address, default: the first host address",
    ),
    key(
        NETWORK_FILE,
        "internal",
        "boolean: no egress, default false",
    ),
];

/// Text for roff: backslashes and hyphens escaped, no line starting with a control character.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The `sup.unit(5)` man page, in roff.
pub fn man_page(version: &str) -> String {
    let mut page = format!(
        ".TH SUP.UNIT 5 \"\" \"sup {version}\" \"File Formats\"\n\
         .SH NAME\n\
         sup.unit \\- unit files of the sup container supervisor\n\
         .SH SYNOPSIS\n\
         /etc/sup/units/\\fINAME\\fR.toml\n\
         .br\n\
         /etc/sup/units/\\fINAME\\fR.network.toml\n\
         .SH DESCRIPTION\n\
         A unit file is a TOML file declaring one service that \\fBsupd\\fR(8) runs, \
         in a container of its own unless told otherwise. Its name, without \\fI.toml\\fR, \
         is the unit's name. Only \\fB[service]\\fR is required. A key supd does not know \
         is an error. Every table and key is listed below with its type and default; \
         docs/units.md in the sources describes each at length.\n\
         .PP\n\
         Durations are written like \\fB\"100ms\"\\fR, \\fB\"30s\"\\fR, \\fB\"5m\"\\fR, \\fB\"1h\"\\fR; \
         sizes like \\fB\"64M\"\\fR or \\fB\"1G\"\\fR (powers of 1024), or as integers (bytes).\n"
    );
    for (section, purpose) in SECTIONS {
        page.push_str(&format!(".SS {}\n{}\n", roff(section), roff(purpose)));
        if *section == NETWORK_FILE {
            page.push_str(".PP\nKeys at the top level of the file:\n");
        }
        for key in KEYS.iter().filter(|k| k.section == *section) {
            page.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                roff(key.name),
                roff(key.summary)
            ));
        }
    }
    page.push_str(
        ".SH EXAMPLE\n\
         .nf\n\
         [unit]\n\
         description = \"web frontend\"\n\
         after = [\"db\"]\n\
         requires = [\"db\"]\n\
         \n\
         [service]\n\
         exec = [\"/usr/bin/web\", \"\\-\\-port\", \"8080\"]\n\
         user = \"web\"\n\
         restart = \"on\\-failure\"\n\
         \n\
         [resources]\n\
         memory_max = \"256M\"\n\
         .fi\n\
         .SH FILES\n\
         .TP\n\
         /etc/sup/units/\n\
         the default units directory (\\fBsupd \\-\\-units\\fR)\n\
         .SH SEE ALSO\n\
         \\fBsupd\\fR(8), \\fBsupctl\\fR(1)\n",
    );
    page
}

#[cfg(test)]
#[path = "unit_keys_tests.rs"]
mod tests;
