//! The few system calls of the container's init, made directly: no libc call,
//! so no `errno` (thread-local storage) and nothing libc must have set up first.
//!
//! Why: on x86_64 and aarch64, `sup-init` starts at its own entry point (see
//! `src/bin/sup-init.rs`), skipping glibc's start-up (TLS block, relocations,
//! stdio, malloc), whose written pages each of a thousand inits would keep. The
//! helper's own init (`run_init` in supd's copy) uses the same calls, so there is
//! one loop. Elsewhere `sup-init` keeps glibc's start and these go through
//! `libc::syscall`.
//!
//! Each returns the kernel's result: a value ≥ 0, or -errno.

use std::ffi::{CStr, c_long};

/// Every signal `sigfillset` puts in a set, as the kernel's 64-bit mask (bit
/// N-1 for signal N): all but glibc's two internal ones, 32 and 33, which the
/// helper does not block either (`block_all_signals` takes a `sigfillset` set).
pub const ALL_SIGNALS: u64 = !((1 << 31) | (1 << 32));

/// System call `nr` with four arguments.
///
/// # Safety
///
/// Any argument the call reads or writes memory through must point to memory
/// valid for that access for the call's duration.
#[cfg(target_arch = "x86_64")]
unsafe fn syscall4(nr: c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 syscall instruction, which clobbers only rcx and r11
    // (and rax, the result); the memory it touches is the caller's promise.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        )
    };
    ret
}

/// As on x86_64.
///
/// # Safety
///
/// As on x86_64.
#[cfg(target_arch = "aarch64")]
unsafe fn syscall4(nr: c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the aarch64 `svc 0`: number in x8, arguments in x0-x3, result in
    // x0, nothing else clobbered; the memory it touches is the caller's promise.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a as isize => ret,
            in("x1") b, in("x2") c, in("x3") d,
            options(nostack),
        )
    };
    ret
}

/// Other architectures: libc's wrapper (their `sup-init` runs glibc's start-up,
/// so errno is there).
///
/// # Safety
///
/// As on x86_64.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn syscall4(nr: c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    // SAFETY: the memory the call touches is the caller's promise.
    let ret = unsafe { libc::syscall(nr, a, b, c, d) };
    if ret < 0 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL) as isize)
    } else {
        ret as isize
    }
}

/// kill(2).
pub fn kill(pid: i32, sig: i32) -> isize {
    // SAFETY: plain numbers, no memory of ours.
    unsafe { syscall4(libc::SYS_kill, pid as usize, sig as usize, 0, 0) }
}

/// wait4(-1, &status, WNOHANG, NULL): any child, without blocking.
pub fn wait_any_nohang(status: &mut i32) -> isize {
    let status: *mut i32 = status;
    let (any, nohang) = (-1isize as usize, libc::WNOHANG as usize);
    // SAFETY: the kernel writes one int through `status`, a live exclusive
    // reference; the rusage pointer is NULL.
    unsafe { syscall4(libc::SYS_wait4, any, status as usize, nohang, 0) }
}

/// sigwait(3) on `set` (signals that are blocked): rt_sigtimedwait(2) with no
/// siginfo and no timeout. The signal's number.
pub fn sigwait(set: &u64) -> isize {
    let (set, size): (*const u64, usize) = (set, std::mem::size_of::<u64>());
    // SAFETY: the kernel reads `size` bytes through `set`, a live reference to
    // that many; siginfo and timeout pointers are NULL.
    unsafe { syscall4(libc::SYS_rt_sigtimedwait, set as usize, 0, 0, size) }
}

/// PR_SET_DUMPABLE 0: `/proc/self` (so `/proc/1/exe`) closed to the container.
pub fn not_dumpable() -> isize {
    // SAFETY: plain numbers, no memory of ours.
    unsafe { syscall4(libc::SYS_prctl, libc::PR_SET_DUMPABLE as usize, 0, 0, 0) }
}

/// PR_SET_NAME: the process's name (`comm`, 15 bytes at most).
pub fn set_name(name: &CStr) -> isize {
    let name = name.as_ptr() as usize;
    // SAFETY: the kernel reads at most 16 bytes, up to the NUL `name` ends with.
    unsafe { syscall4(libc::SYS_prctl, libc::PR_SET_NAME as usize, name, 0, 0) }
}

/// write(2) of `buf` to `fd`.
pub fn write(fd: i32, buf: &[u8]) -> isize {
    let data = buf.as_ptr() as usize;
    // SAFETY: the kernel reads at most `buf.len()` bytes of `buf`.
    unsafe { syscall4(libc::SYS_write, fd as usize, data, buf.len(), 0) }
}

/// exit_group(2): what `exit` ends with, without atexit handlers or stdio
/// flushing (the init has neither).
pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: a plain number; the call does not return.
        unsafe { syscall4(libc::SYS_exit_group, code as usize, 0, 0, 0) };
    }
}
