//! `sup-init`: the init of each container (PID 1 of its PID namespace), exec'd by
//! the spawn helper once the service runs. It forwards signals and reaps, nothing
//! else, so a container costs this small program's pages instead of supd's.
//! See `sup::spawn` (`init.rs`).
//!
//! `no_main`: the C entry point skips the Rust runtime's start-up (its signal
//! stack and handlers), pages each of a thousand inits would otherwise keep.
//! (`cargo test --all-targets` builds it with the test harness's own main,
//! which finds no tests: its code is the library's, tested there.)
#![cfg_attr(not(test), no_main)]

/// # Safety
///
/// `argv` holds `argc` NUL-terminated strings: called by glibc's `_start` with
/// what the kernel laid out at exec.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: argc and argv as the kernel laid them out at exec.
    unsafe { sup::spawn::init_program_main(argc, argv) }
}
