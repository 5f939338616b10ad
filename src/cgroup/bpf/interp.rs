//! A tiny interpreter for the instructions `device_program` emits, for tests
//! (the unit tests of the generator and the fake cgroupfs's attached programs).
//! It also checks what the kernel's verifier would reject in such a program: a
//! load through anything but the untouched context register, a jump out of the
//! program or backwards, an unknown opcode, reading a register never written.

use super::{AND_K, EXIT, Insn, JNE_K, LDX_W, MOV_K, MOV_X, RSH_K};

/// Run `prog` on the context `[access_type, major, minor]`; r0 at `exit`.
pub fn run(prog: &[Insn], ctx: [u32; 3]) -> Result<u64, String> {
    let mut regs: [Option<u64>; 11] = [None; 11];
    // r1 holds the context pointer until an instruction writes it.
    let mut r1_is_ctx = true;
    let mut pc = 0usize;
    loop {
        let ins = prog
            .get(pc)
            .ok_or_else(|| format!("pc {pc} outside the program"))?;
        let (dst, src) = (usize::from(ins.regs & 0x0f), usize::from(ins.regs >> 4));
        if dst > 10 || src > 10 {
            return Err(format!("pc {pc}: bad register"));
        }
        let read = |r: usize| regs[r].ok_or_else(|| format!("pc {pc}: r{r} read before written"));
        let mut next = pc + 1;
        match ins.code {
            LDX_W => {
                if src != 1 || !r1_is_ctx {
                    return Err(format!("pc {pc}: load through r{src}, not the context"));
                }
                let field = usize::try_from(ins.off)
                    .ok()
                    .filter(|o| o % 4 == 0)
                    .and_then(|o| ctx.get(o / 4))
                    .ok_or_else(|| format!("pc {pc}: context offset {}", ins.off))?;
                regs[dst] = Some(u64::from(*field));
            }
            MOV_X => regs[dst] = Some(read(src)?),
            MOV_K => regs[dst] = Some(ins.imm as i64 as u64),
            AND_K => regs[dst] = Some(read(dst)? & (ins.imm as i64 as u64)),
            RSH_K => {
                let by = u32::try_from(ins.imm).ok().filter(|b| *b < 64);
                let by = by.ok_or_else(|| format!("pc {pc}: shift by {}", ins.imm))?;
                regs[dst] = Some(read(dst)? >> by)
            }
            JNE_K => {
                let off = usize::try_from(ins.off)
                    .map_err(|_| format!("pc {pc}: backward jump {}", ins.off))?;
                if read(dst)? != ins.imm as i64 as u64 {
                    next += off;
                }
            }
            EXIT => return read(0),
            code => return Err(format!("pc {pc}: opcode {code:#x}")),
        }
        if dst == 1 && ins.code != JNE_K {
            r1_is_ctx = false;
        }
        pc = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::bpf::insn;

    #[test]
    fn rejects_what_the_verifier_would() {
        let exit = insn(EXIT, 0, 0, 0, 0);
        let set = insn(MOV_K, 0, 0, 0, 1);
        for (prog, why) in [
            (vec![exit], "r0 read before written"),
            (vec![set], "outside the program"),
            (vec![insn(JNE_K, 0, 0, -1, 0), exit], "backward jump"),
            (
                vec![insn(MOV_K, 1, 0, 0, 0), insn(LDX_W, 0, 1, 0, 0), exit],
                "not the context",
            ),
            (vec![insn(LDX_W, 0, 1, 12, 0), exit], "context offset"),
            (vec![insn(0x07, 0, 0, 0, 1), exit], "opcode"),
        ] {
            let err = run(&prog, [0; 3]).expect_err(why);
            assert!(err.contains(why), "{err} (wanted {why})");
        }
        assert_eq!(run(&[set, exit], [0; 3]), Ok(1));
    }
}
