//! Classic BPF opcodes (as in <linux/filter.h>) for the programs the runtime attaches: the
//! reuse-port groups' steering and the raw ESP sockets' filters (`steer`), the Ethernet
//! ports' VLAN filter (`link`).

use nix::libc;

pub const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
pub const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub const LD_W_IND: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_IND) as u16;
pub const LD_W_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
/// X = 4 × (the low nibble of the byte at k): an IPv4 header's length.
pub const LDX_B_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
pub const TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
pub const LSH_K: u16 = (libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K) as u16;
pub const OR_X: u16 = (libc::BPF_ALU | libc::BPF_OR | libc::BPF_X) as u16;
pub const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
pub const SUB_X: u16 = (libc::BPF_ALU | libc::BPF_SUB | libc::BPF_X) as u16;
pub const MOD_K: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
pub const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub const RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;
pub const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
