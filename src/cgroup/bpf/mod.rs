//! The device allowlist on cgroup v2: a `BPF_PROG_TYPE_CGROUP_DEVICE` program,
//! generated here instruction by instruction (pure, tested with a small
//! interpreter), loaded and attached by `sys`.
//!
//! The kernel runs the program at every open and mknod of a device node by a
//! process of the cgroup (or a descendant), with a context
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`: the
//! type (block 1, char 2) in the low 16 bits of `access_type`, the access bits
//! (mknod 1, read 2, write 4) in the high 16. It returns 1 to allow, 0 to deny.
//!
//! A handful of instructions do not justify a BPF crate (aya, libbpf-rs need an
//! object file, a C toolchain or both); the encoding below is the kernel's uapi.

pub mod sys;

#[cfg(test)]
pub mod interp;

use super::devices::{Access, DeviceAllowlist, DeviceRule};

/// One instruction, laid out as the kernel's `struct bpf_insn` (little-endian
/// bit fields: the destination register in the low nibble of `regs`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
pub const LDX_W: u8 = 0x61;
/// `BPF_ALU64 | BPF_MOV | BPF_X`: dst = src.
pub const MOV_X: u8 = 0xbf;
/// `BPF_ALU64 | BPF_MOV | BPF_K`: dst = imm.
pub const MOV_K: u8 = 0xb7;
/// `BPF_ALU64 | BPF_AND | BPF_K`: dst &= imm.
pub const AND_K: u8 = 0x57;
/// `BPF_ALU64 | BPF_RSH | BPF_K`: dst >>= imm.
pub const RSH_K: u8 = 0x77;
/// `BPF_JMP | BPF_JNE | BPF_K`: if dst != imm, skip `off` instructions.
pub const JNE_K: u8 = 0x55;
/// `BPF_JMP | BPF_EXIT`: return r0.
pub const EXIT: u8 = 0x95;

/// Registers: r0 the verdict, r1 the context on entry (then scratch), r2 the
/// access bits, r3 the type, r4 the major, r5 the minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The program allowing exactly what `list` allows: every rule is one block that
/// jumps to the next block on the first mismatch and returns 1 at its end; after
/// the last block, 0.
pub fn device_program(list: &DeviceAllowlist) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, R2, R1, 0, 0),     // r2 = ctx->access_type
        insn(MOV_X, R3, R2, 0, 0),     // r3 = r2
        insn(AND_K, R3, 0, 0, 0xffff), // r3 &= 0xffff: the type
        insn(RSH_K, R2, 0, 0, 16),     // r2 >>= 16: the access bits
        insn(LDX_W, R4, R1, 4, 0),     // r4 = ctx->major
        insn(LDX_W, R5, R1, 8, 0),     // r5 = ctx->minor
    ];
    for rule in list.rules() {
        prog.extend(rule_block(rule));
    }
    prog.push(insn(MOV_K, R0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

/// The block of one rule. A number that does not fit an immediate (above
/// `i32::MAX`; the kernel's device numbers have 12 and 20 bits) matches no
/// device, so its rule gives no block at all.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    let number = |n: Option<u32>| n.map(i32::try_from).transpose();
    let (Ok(major), Ok(minor)) = (number(rule.major), number(rule.minor)) else {
        return Vec::new();
    };
    // Jumps are emitted with offset 0 and aimed at the block's end below.
    let mut block = vec![insn(JNE_K, R3, 0, 0, rule.kind.bpf_type() as i32)];
    if let Some(m) = major {
        block.push(insn(JNE_K, R4, 0, 0, m));
    }
    if let Some(m) = minor {
        block.push(insn(JNE_K, R5, 0, 0, m));
    }
    if !rule.access.covers(Access::ALL) {
        // Any requested bit outside the rule's access: next rule.
        let outside = !rule.access.bits() & Access::ALL.bits();
        block.push(insn(MOV_X, R1, R2, 0, 0));
        block.push(insn(AND_K, R1, 0, 0, outside as i32));
        block.push(insn(JNE_K, R1, 0, 0, 0));
    }
    block.push(insn(MOV_K, R0, 0, 0, 1));
    block.push(insn(EXIT, 0, 0, 0, 0));
    let len = block.len();
    for (i, ins) in block.iter_mut().enumerate() {
        if ins.code == JNE_K {
            // Blocks are a few instructions long.
            ins.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::interp::run;
    use super::*;
    use crate::cgroup::devices::DeviceKind::{self, Block, Char};

    fn rule(kind: DeviceKind, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
        DeviceRule {
            kind,
            major,
            minor,
            access: Access::parse(access).expect("access"),
        }
    }

    /// The list of exactly `rules` (no defaults), as `DeviceAllowlist` has no such
    /// constructor: take the defaults' program off the front.
    fn program_of(rules: &[DeviceRule]) -> Vec<Insn> {
        let base = device_program(&DeviceAllowlist::new([]));
        let full = device_program(&DeviceAllowlist::new(rules.iter().copied()));
        // Prologue (6) + default blocks, then the extra blocks, then the epilogue (2).
        let defaults_end = base.len() - 2;
        [&full[..6], &full[defaults_end..]].concat()
    }

    #[test]
    fn instructions_of_a_two_rule_program() {
        let prog = program_of(&[
            rule(Char, Some(1), Some(3), "rwm"),
            rule(Block, Some(8), None, "r"),
        ]);
        let want = [
            insn(LDX_W, 2, 1, 0, 0),
            insn(MOV_X, 3, 2, 0, 0),
            insn(AND_K, 3, 0, 0, 0xffff),
            insn(RSH_K, 2, 0, 0, 16),
            insn(LDX_W, 4, 1, 4, 0),
            insn(LDX_W, 5, 1, 8, 0),
            // c 1:3 rwm
            insn(JNE_K, 3, 0, 4, 2),
            insn(JNE_K, 4, 0, 3, 1),
            insn(JNE_K, 5, 0, 2, 3),
            insn(MOV_K, 0, 0, 0, 1),
            insn(EXIT, 0, 0, 0, 0),
            // b 8:* r: any of w (4) or m (1) requested is a mismatch
            insn(JNE_K, 3, 0, 6, 1),
            insn(JNE_K, 4, 0, 5, 8),
            insn(MOV_X, 1, 2, 0, 0),
            insn(AND_K, 1, 0, 0, 5),
            insn(JNE_K, 1, 0, 2, 0),
            insn(MOV_K, 0, 0, 0, 1),
            insn(EXIT, 0, 0, 0, 0),
            // nothing matched
            insn(MOV_K, 0, 0, 0, 0),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(prog, want);
    }

    #[test]
    fn the_register_nibbles_are_the_kernels_layout() {
        // dst in the low 4 bits, src in the high 4 (x86 little-endian bit fields).
        assert_eq!(insn(MOV_X, 3, 2, 0, 0).regs, 0x23);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    /// The interpreter's verdict, as the kernel would compute the context.
    fn verdict(prog: &[Insn], kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        let ctx = [kind.bpf_type() | (access.bits() << 16), major, minor];
        match run(prog, ctx) {
            Ok(1) => true,
            Ok(0) => false,
            other => panic!("{kind:?} {major}:{minor} {access}: {other:?}"),
        }
    }

    #[test]
    fn the_program_agrees_with_the_allowlist_on_every_probe() {
        let extra = [
            rule(Char, Some(10), Some(229), "rw"),
            rule(Block, Some(7), Some(0), "r"),
            rule(Char, Some(4), None, "wm"),
            rule(Block, None, None, "m"),
        ];
        for list in [DeviceAllowlist::new([]), DeviceAllowlist::new(extra)] {
            let prog = device_program(&list);
            let accesses: Vec<Access> = (1..=7)
                .filter_map(|b| {
                    let letters: String = [(2, 'r'), (4, 'w'), (1, 'm')]
                        .iter()
                        .filter(|(bit, _)| b & bit != 0)
                        .map(|(_, l)| *l)
                        .collect();
                    Access::parse(&letters)
                })
                .collect();
            assert_eq!(accesses.len(), 7);
            for kind in [Char, Block] {
                for (major, minor) in [
                    (1, 3),
                    (1, 4),
                    (1, 9),
                    (5, 0),
                    (5, 1),
                    (5, 2),
                    (136, 0),
                    (136, 99999),
                    (4, 1),
                    (7, 0),
                    (7, 1),
                    (8, 0),
                    (10, 229),
                    (10, 200),
                ] {
                    for &access in &accesses {
                        assert_eq!(
                            verdict(&prog, kind, major, minor, access),
                            list.allows(kind, major, minor, access),
                            "{kind:?} {major}:{minor} {access} in {:?}",
                            list.v1_lines()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn default_program_denies_block_devices_and_unlisted_chars() {
        let prog = device_program(&DeviceAllowlist::new([]));
        let rw = Access::READ.union(Access::WRITE);
        assert!(verdict(&prog, Char, 1, 3, rw), "/dev/null");
        assert!(verdict(&prog, Char, 136, 3, rw), "a pty");
        assert!(verdict(&prog, Char, 1, 3, Access::MKNOD), "mknod /dev/null");
        assert!(
            !verdict(&prog, Block, 7, 0, Access::MKNOD),
            "mknod a loop device"
        );
        assert!(!verdict(&prog, Block, 7, 0, rw), "open a loop device");
        assert!(!verdict(&prog, Char, 1, 1, Access::READ), "/dev/mem");
        assert!(!verdict(&prog, Char, 5, 1, Access::WRITE), "/dev/console");
        assert!(!verdict(&prog, Char, 10, 229, rw), "/dev/fuse");
    }

    #[test]
    fn a_number_beyond_an_immediate_matches_nothing() {
        let huge = rule(Char, Some(u32::MAX), Some(0), "rwm");
        let prog = device_program(&DeviceAllowlist::new([huge]));
        assert_eq!(prog, device_program(&DeviceAllowlist::new([])));
        assert!(!verdict(&prog, Char, u32::MAX, 0, Access::READ));
    }
}
