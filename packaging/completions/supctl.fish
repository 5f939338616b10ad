# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_supctl_global_optspecs
    string join \n state-dir= socket= h/help V/version
end

function __fish_supctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_supctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_supctl_using_subcommand
    set -l cmd (__fish_supctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c supctl -n "__fish_supctl_needs_command" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_needs_command" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_needs_command" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_needs_command" -s V -l version -d 'Print version'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "status" -d 'Show the state of all units, or of the named ones'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "start" -d 'Start units'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "stop" -d 'Stop units'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "restart" -d 'Restart units'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "enable" -d 'Allow disabled units to start again (with --now, also start them)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "disable" -d 'Stop units and keep them stopped, across supd restarts, until `enable`'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "reset-failed" -d 'Clear the failed state (and start limit) of units'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "poweroff" -d 'Stop every unit, then power off (supd as PID 1) or exit'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "reboot" -d 'Stop every unit, then reboot (supd as PID 1) or exit'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "top" -d 'Show every unit\'s resource use, refreshed every second (like systemd-cgtop)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "reload" -d 'Re-read the unit directory and apply the changes'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "audit" -d 'Show how exposed units leave the host and supd (each protection, a score)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "notify" -d 'From inside a service: tell supd it is ready, how it is doing, or that it is alive (sd_notify over $NOTIFY_SOCKET, like systemd-notify); waits (at most 5 s) until supd has read the message, which counts only from a process of the unit'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "exec" -d 'Run a command inside a unit\'s running container (its namespaces, cgroup, identity, capabilities and seccomp); exits with the command\'s exit code'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "kill" -d 'Send a signal to a unit\'s main process (or with --all to all its processes)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "image" -d 'Manage the image store: import, ls, inspect, rm, prune (see docs/images.md)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "reset" -d 'Discard an image unit\'s writable layer (the unit must be stopped)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "events" -d 'Stream what happens (state changes, exits, restarts, health, reloads) live'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "export" -d 'Turn a unit directory into Kubernetes manifests or a compose file, offline (no supd needed); what cannot be carried over is warned about on stderr'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "logs" -d 'Show a unit\'s output'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand status" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand status" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand status" -l json -d 'Print the unit status objects as JSON'
complete -c supctl -n "__fish_supctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand start" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand start" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand start" -l wait -d 'Wait until the units are ready (or failed)'
complete -c supctl -n "__fish_supctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand stop" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand stop" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand stop" -l wait -d 'Wait until the units have stopped'
complete -c supctl -n "__fish_supctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand restart" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand restart" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand restart" -l wait -d 'Wait until the units are ready again (or failed)'
complete -c supctl -n "__fish_supctl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand enable" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand enable" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand enable" -l now -d 'Also start the units (and what they require)'
complete -c supctl -n "__fish_supctl_using_subcommand enable" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand disable" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand disable" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand disable" -l now -d 'Accepted for systemctl\'s habit: disable always stops the units'
complete -c supctl -n "__fish_supctl_using_subcommand disable" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand reset-failed" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reset-failed" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reset-failed" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand poweroff" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand poweroff" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand poweroff" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand reboot" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reboot" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reboot" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand top" -s n -l iterations -d 'Stop after this many refreshes (default: until interrupted)' -r
complete -c supctl -n "__fish_supctl_using_subcommand top" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand top" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand top" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand reload" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reload" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reload" -l dry-run -d 'Only show what would change'
complete -c supctl -n "__fish_supctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand audit" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand audit" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand audit" -l json -d 'Print the reports as JSON'
complete -c supctl -n "__fish_supctl_using_subcommand audit" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand notify" -l status -d 'STATUS=TEXT: shown by `supctl status`' -r
complete -c supctl -n "__fish_supctl_using_subcommand notify" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand notify" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand notify" -l ready -d 'READY=1: the service is ready'
complete -c supctl -n "__fish_supctl_using_subcommand notify" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s u -l user -d 'Run as USER (a name or uid of the container) instead of the service\'s user' -r
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s e -l env -d 'Set an environment variable (repeatable)' -r
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s w -l workdir -d 'Working directory (default: the service\'s)' -r
complete -c supctl -n "__fish_supctl_using_subcommand exec" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand exec" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s t -l tty -d 'Give the command a terminal (a pty; supctl\'s own goes into raw mode)'
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand kill" -s s -l signal -d 'The signal: a name (HUP, SIGHUP) or a number' -r
complete -c supctl -n "__fish_supctl_using_subcommand kill" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand kill" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand kill" -l all -d 'Every process of the unit\'s cgroup, not only the main process'
complete -c supctl -n "__fish_supctl_using_subcommand kill" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "import" -d 'Import an image from a file: an OCI image layout (directory or tar), a docker-archive (`docker save`) or a root filesystem tarball (`docker export`)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "ls" -d 'List the images in the store'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "inspect" -d 'Show an image\'s config, layers, size and the units that use it (JSON)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "rm" -d 'Remove images (refused while a unit uses one), then what nothing else needs'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "prune" -d 'Remove layers and blobs that no image and no unit uses'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -l name -d 'Store it as NAME:TAG (default: the name the archive carries; required for a root filesystem tarball)' -r
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from ls" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from ls" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from inspect" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from inspect" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from rm" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from rm" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from prune" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from prune" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import an image from a file: an OCI image layout (directory or tar), a docker-archive (`docker save`) or a root filesystem tarball (`docker export`)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the images in the store'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Show an image\'s config, layers, size and the units that use it (JSON)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove images (refused while a unit uses one), then what nothing else needs'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Remove layers and blobs that no image and no unit uses'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand reset" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reset" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reset" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand events" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand events" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand events" -l json -d 'One JSON object per line'
complete -c supctl -n "__fish_supctl_using_subcommand events" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand export; and not __fish_seen_subcommand_from kubernetes compose help" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and not __fish_seen_subcommand_from kubernetes compose help" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and not __fish_seen_subcommand_from kubernetes compose help" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand export; and not __fish_seen_subcommand_from kubernetes compose help" -f -a "kubernetes" -d 'Kubernetes objects (Deployment/StatefulSet/Job, Service, ConfigMap, Secret) as a multi-document YAML stream'
complete -c supctl -n "__fish_supctl_using_subcommand export; and not __fish_seen_subcommand_from kubernetes compose help" -f -a "compose" -d 'A compose file (services, networks, secrets)'
complete -c supctl -n "__fish_supctl_using_subcommand export; and not __fish_seen_subcommand_from kubernetes compose help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -l units -d 'The unit directory to export (read like `supd --check`)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -l registry -d 'Prefix every image with this registry path (where the images were pushed)' -r
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -l output -d 'Write files into DIR instead of stdout: UNIT.yaml per unit (kubernetes) or compose.yaml' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -l namespace -d 'Put every object in this namespace (default: kubectl\'s current one)' -r
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from kubernetes" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from compose" -l units -d 'The unit directory to export (read like `supd --check`)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from compose" -l registry -d 'Prefix every image with this registry path (where the images were pushed)' -r
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from compose" -l output -d 'Write files into DIR instead of stdout: UNIT.yaml per unit (kubernetes) or compose.yaml' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from compose" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from compose" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from compose" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "kubernetes" -d 'Kubernetes objects (Deployment/StatefulSet/Job, Service, ConfigMap, Secret) as a multi-document YAML stream'
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "compose" -d 'A compose file (services, networks, secrets)'
complete -c supctl -n "__fish_supctl_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s n -l lines -d 'Number of past lines to show' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l since -d 'Only lines from this time on: RFC 3339 (2026-11-29T21:00:00Z), or a duration ago (10m, 2h, 1d)' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l until -d 'Only lines up to this time (same forms as --since)' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l grep -d 'Only lines containing TEXT' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l state-dir -d 'State directory of supd; the socket is DIR/control.sock [default: /run/sup]' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l socket -d 'Path of supd\'s control socket (overrides --state-dir)' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s f -l follow -d 'Keep printing new lines until interrupted'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l json -d 'One JSON object per line (ts, stream, line)'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "status" -d 'Show the state of all units, or of the named ones'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "start" -d 'Start units'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "stop" -d 'Stop units'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "restart" -d 'Restart units'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "enable" -d 'Allow disabled units to start again (with --now, also start them)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "disable" -d 'Stop units and keep them stopped, across supd restarts, until `enable`'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "reset-failed" -d 'Clear the failed state (and start limit) of units'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "poweroff" -d 'Stop every unit, then power off (supd as PID 1) or exit'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "reboot" -d 'Stop every unit, then reboot (supd as PID 1) or exit'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "top" -d 'Show every unit\'s resource use, refreshed every second (like systemd-cgtop)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "reload" -d 'Re-read the unit directory and apply the changes'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "audit" -d 'Show how exposed units leave the host and supd (each protection, a score)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "notify" -d 'From inside a service: tell supd it is ready, how it is doing, or that it is alive (sd_notify over $NOTIFY_SOCKET, like systemd-notify); waits (at most 5 s) until supd has read the message, which counts only from a process of the unit'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "exec" -d 'Run a command inside a unit\'s running container (its namespaces, cgroup, identity, capabilities and seccomp); exits with the command\'s exit code'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "kill" -d 'Send a signal to a unit\'s main process (or with --all to all its processes)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "image" -d 'Manage the image store: import, ls, inspect, rm, prune (see docs/images.md)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "reset" -d 'Discard an image unit\'s writable layer (the unit must be stopped)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "events" -d 'Stream what happens (state changes, exits, restarts, health, reloads) live'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "export" -d 'Turn a unit directory into Kubernetes manifests or a compose file, offline (no supd needed); what cannot be carried over is warned about on stderr'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "logs" -d 'Show a unit\'s output'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart enable disable reset-failed poweroff reboot top reload audit notify exec kill image reset events export logs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "import" -d 'Import an image from a file: an OCI image layout (directory or tar), a docker-archive (`docker save`) or a root filesystem tarball (`docker export`)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "ls" -d 'List the images in the store'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "inspect" -d 'Show an image\'s config, layers, size and the units that use it (JSON)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "rm" -d 'Remove images (refused while a unit uses one), then what nothing else needs'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "prune" -d 'Remove layers and blobs that no image and no unit uses'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "kubernetes" -d 'Kubernetes objects (Deployment/StatefulSet/Job, Service, ConfigMap, Secret) as a multi-document YAML stream'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "compose" -d 'A compose file (services, networks, secrets)'
