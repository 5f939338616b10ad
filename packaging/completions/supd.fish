# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_supd_global_optspecs
    string join \n units= state-dir= cgroup-root= hostname= forward-output check control-group= metrics-listen= log-target= journal-socket= syslog-socket= log-format= h/help V/version
end

function __fish_supd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_supd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_supd_using_subcommand
    set -l cmd (__fish_supd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c supd -n "__fish_supd_needs_command" -l units -d 'Directory of unit files (one `NAME.toml` per unit)' -r -F
complete -c supd -n "__fish_supd_needs_command" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_needs_command" -l cgroup-root -d 'Name of supd\'s cgroup subtree, created below supd\'s own cgroup' -r
complete -c supd -n "__fish_supd_needs_command" -l hostname -d 'Hostname to set when running as PID 1' -r
complete -c supd -n "__fish_supd_needs_command" -l control-group -d 'Members of this group (name or gid) may use the read-only verbs of supctl (status, logs, top, events, audit); everything else stays root-only' -r
complete -c supd -n "__fish_supd_needs_command" -l metrics-listen -d 'Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9477). Off by default' -r
complete -c supd -n "__fish_supd_needs_command" -l log-target -d 'Where unit output goes (besides the last lines in memory, for `supctl logs`): `file` (STATE/logs/UNIT.log), `journald`, `syslog`, or several, comma-separated' -r -f -a "file\t''
journald\t''
syslog\t''"
complete -c supd -n "__fish_supd_needs_command" -l journal-socket -d 'journald\'s native socket, for `--log-target journald`' -r -F
complete -c supd -n "__fish_supd_needs_command" -l syslog-socket -d 'The syslog datagram socket, for `--log-target syslog`' -r -F
complete -c supd -n "__fish_supd_needs_command" -l log-format -d 'Format of supd\'s own log on stderr. The level comes from SUPD_LOG (default info)' -r -f -a "human\t''
json\t''"
complete -c supd -n "__fish_supd_needs_command" -l forward-output -d 'Copy every line of unit output to supd\'s stderr (on by default as PID 1)'
complete -c supd -n "__fish_supd_needs_command" -l check -d 'Validate the units directory, print every error and exit (non-zero on errors)'
complete -c supd -n "__fish_supd_needs_command" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_needs_command" -s V -l version -d 'Print version'
complete -c supd -n "__fish_supd_needs_command" -f -a "image" -d 'Manage the image store in the state directory, as `supctl image` does (for scripts and image builders; supd need not run)'
complete -c supd -n "__fish_supd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "import" -d 'Import an image from a file: an OCI image layout (directory or tar), a docker-archive (`docker save`) or a root filesystem tarball (`docker export`)'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "ls" -d 'List the images in the store'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "inspect" -d 'Show an image\'s config, layers, size and the units that use it (JSON)'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "rm" -d 'Remove images (refused while a unit uses one), then what nothing else needs'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "prune" -d 'Remove layers and blobs that no image and no unit uses'
complete -c supd -n "__fish_supd_using_subcommand image; and not __fish_seen_subcommand_from import ls inspect rm prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from import" -l name -d 'Store it as NAME:TAG (default: the name the archive carries; required for a root filesystem tarball)' -r
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from import" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from ls" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from inspect" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from rm" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from prune" -l state-dir -d 'Directory for the control socket, the unit logs and the image store' -r -F
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import an image from a file: an OCI image layout (directory or tar), a docker-archive (`docker save`) or a root filesystem tarball (`docker export`)'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the images in the store'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Show an image\'s config, layers, size and the units that use it (JSON)'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove images (refused while a unit uses one), then what nothing else needs'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Remove layers and blobs that no image and no unit uses'
complete -c supd -n "__fish_supd_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supd -n "__fish_supd_using_subcommand help; and not __fish_seen_subcommand_from image help" -f -a "image" -d 'Manage the image store in the state directory, as `supctl image` does (for scripts and image builders; supd need not run)'
complete -c supd -n "__fish_supd_using_subcommand help; and not __fish_seen_subcommand_from image help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supd -n "__fish_supd_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "import" -d 'Import an image from a file: an OCI image layout (directory or tar), a docker-archive (`docker save`) or a root filesystem tarball (`docker export`)'
complete -c supd -n "__fish_supd_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "ls" -d 'List the images in the store'
complete -c supd -n "__fish_supd_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "inspect" -d 'Show an image\'s config, layers, size and the units that use it (JSON)'
complete -c supd -n "__fish_supd_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "rm" -d 'Remove images (refused while a unit uses one), then what nothing else needs'
complete -c supd -n "__fish_supd_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "prune" -d 'Remove layers and blobs that no image and no unit uses'
