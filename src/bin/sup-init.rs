//! `sup-init`: the init of each container (PID 1 of its PID namespace), exec'd by
//! the spawn helper once the service runs. It forwards signals and reaps, nothing
//! else, so a container costs this small program's pages instead of supd's.
//! See `sup::spawn` (`init.rs`).
//!
//! On x86_64 and aarch64 it starts at `sup_init_start` below (the entry point
//! build.rs gives the linker), not at glibc's `_start`: glibc's start-up sets up
//! TLS, applies relocations, runs constructors and the Rust runtime's hooks, and
//! each page it writes is one more private page in every one of a thousand inits.
//! From the entry on, the init makes raw system calls only (`init_sys`). The
//! static build links it as a non-PIE executable (build.rs): with no start-up
//! code to relocate it, its addresses must be final. Measured in
//! docs/benchmarks.md (issue 17): 60-72 KiB of private pages per init before,
//! 12 after (the stack and one data page).
//!
//! `main` stays as glibc's `_start` calls it: on other architectures that is
//! the way in, and on these two `_start`, unused, still refers to it.
//! (`cargo test --all-targets` builds this file with the test harness's own
//! main, which finds no tests: its code is the library's, tested there.)
#![cfg_attr(not(test), no_main)]

/// # Safety
///
/// `argv` holds `argc` NUL-terminated strings: called by the entry below or by
/// glibc's `_start`, with what the kernel laid out at exec.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: argc and argv as the kernel laid them out at exec.
    unsafe { sup::spawn::init_program_main(argc, argv) }
}

// The kernel enters with the stack pointer at argc, argv's pointers right above
// it, and the stack 16-byte aligned: pass both to `main` as a C call, which
// never returns (exit_group in case). No frame pointer to chain to.
#[cfg(all(not(test), target_arch = "x86_64"))]
std::arch::global_asm!(
    ".globl sup_init_start",
    ".type sup_init_start, @function",
    "sup_init_start:",
    "xor ebp, ebp",
    "mov edi, [rsp]",
    "lea rsi, [rsp + 8]",
    "and rsp, -16",
    "call {main}",
    "mov edi, eax",
    "mov eax, 231",
    "syscall",
    "ud2",
    main = sym main,
);

#[cfg(all(not(test), target_arch = "aarch64"))]
std::arch::global_asm!(
    ".globl sup_init_start",
    ".type sup_init_start, %function",
    "sup_init_start:",
    "mov x29, #0",
    "mov x30, #0",
    "ldr x0, [sp]",
    "add x1, sp, #8",
    "bl {main}",
    "mov x8, #94",
    "svc #0",
    "brk #1",
    main = sym main,
);

// The test harness's build links with the same entry point (build.rs cannot
// tell it apart): there it leads to glibc's start-up and the harness's main.
#[cfg(all(test, target_arch = "x86_64"))]
std::arch::global_asm!(".globl sup_init_start", "sup_init_start:", "jmp _start");

#[cfg(all(test, target_arch = "aarch64"))]
std::arch::global_asm!(".globl sup_init_start", "sup_init_start:", "b _start");
