//! Isolation (issue 3) and the default protections (issue 11): every check is made from inside the container, by the
//! service itself, and compared with the host. These tests need root; without it
//! they are reported as ignored.

#[path = "../common/mod.rs"]
mod common;
mod devices;
mod mounts;
mod namespaces;
mod process;
mod protections;

use common::harness::{self, root, trials};
use devices::*;
use mounts::*;
use namespaces::*;
use process::*;
use protections::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        // namespaces.rs
        namespaces_differ_exactly_for_the_declared_kinds,
        joining_a_namespace_by_path_gives_the_same_inode,
        uts_hostname_is_the_declared_one_and_the_host_keeps_its_own,
        user_namespace_maps_are_the_declared_ones_and_files_get_mapped_owners,
        ipc_namespace_hides_host_shared_memory,
        // mounts.rs
        mounts_readonly_tmpfs_size_and_no_propagation_to_the_host,
        rootfs_pivot_root_hides_the_host_and_symlinks_cannot_redirect_mounts,
        missing_bind_source_reports_step_and_errno,
        overlay_keeps_changes_in_supd_state_and_leaves_lower_untouched,
        // process.rs
        pid_namespace_hides_the_host_reaps_orphans_and_stops_a_term_ignoring_service,
        security_caps_no_new_privs_seccomp_and_masked_paths,
        process_settings_rlimits_umask_oom_groups_and_loopback,
        init_forwards_any_signal_and_reports_signal_deaths_as_signals,
        // devices.rs
        device_allowlist_refuses_block_devices_and_unlisted_ones_and_relaxes_on_request,
        bpf_device_program_is_accepted_replaced_and_enforced_by_this_kernel,
        // protections.rs
        default_protections_hold_and_each_key_relaxes_its_own,
        strict_leaves_only_writable_paths_and_declared_mounts_writable,
        declared_devices_are_the_hosts_nodes_in_a_private_dev,
        every_container_shape_is_protected_rootfs_userns_without_net_included,
    ]])
}
