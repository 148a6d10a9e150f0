#include "harness.h"
/*
 * Privileged architecture end to end (test/riscv-priv/e2e.test.ts runs it on
 * every engine): mode switches with mret/sret, ecall/ebreak/illegal
 * instruction traps and their delegation, Sv39 with gigapages, SUM, A bit
 * updates, a delegated software interrupt, MPRV, misaligned and page-crossing
 * accesses, LR/SC and AMOs.
 *
 * Handlers: m_handler records mcause/mepc/mtval in s1/s2/s3 and resumes after
 * the trapping instruction, except that a trap with a7 = 99 continues at a6 in
 * M-mode (how S and U code returns to M). s_handler records scause/sepc/stval
 * in s4/s5/s6 and resumes after the instruction (for an interrupt: at sepc,
 * after clearing sip.SSIP).
 */
#define PTE_V 1
#define PTE_R 2
#define PTE_W 4
#define PTE_X 8
#define PTE_U 16
#define PTE_A 64
#define PTE_D 128
#define GIGA_RAM (0x80000 << 10)
#define SATP_SV39 (8 << 60)
/* The U-mode alias of RAM: VA 0x4000_0000 maps to PA 0x8000_0000. */
#define ALIAS(label) lla t0, label; li t1, 0x40000000; sub t0, t0, t1

/* Leaves M for `mode` (0 U, 1 S) at `label`; returns to M at the next label 9 via ebreak with a7 = 99. */
#define ENTER(mode, label) \
  li t0, (3 << 11); csrc mstatus, t0; li t0, (mode << 11); csrs mstatus, t0; \
  lla t0, label; csrw mepc, t0; lla a6, 9f; mret
#define BACK_TO_M li a7, 99; ebreak

TEST_MAIN
  lla t0, m_handler
  csrw mtvec, t0
  lla t0, s_handler
  csrw stvec, t0

  CASE(1) /* ecall from M: cause 11, mepc at the ecall */
  lla s0, 1f
1:ecall
  CHECK(s1, 11)
  bne s2, s0, fail

  CASE(2) /* S-mode: ecall is cause 9, reading mstatus is illegal with the instruction as mtval */
  ENTER(1, 1f)
1:ecall
  CHECK(s1, 9)
  csrr t0, mstatus
  CHECK(s1, 2)
  CHECK(s3, 0x300022f3)
  csrr t0, sstatus
  BACK_TO_M
9:CHECK(s1, 3)
  csrr t0, mstatus
  srli t0, t0, 11
  andi t0, t0, 3
  CHECK(t0, 1) /* MPP = S */

  CASE(3) /* medeleg: ecall from U goes to S-mode */
  li t0, (1 << 8) | (1 << 13) | (1 << 15) | (1 << 12)
  csrw medeleg, t0
  ENTER(0, 1f)
1:li s4, 0
  lla s0, 2f
2:ecall
  CHECK(s4, 8)
  bne s5, s0, fail
  BACK_TO_M
9:csrr t0, mcause
  CHECK(t0, 3)

  CASE(4) /* Sv39: identity gigapage for S, a U alias gigapage; SUM; A bit set by the walk */
  lla t0, pt_root
  li t1, GIGA_RAM | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
  sd t1, 16(t0) /* VPN[2] = 2: 0x8000_0000 */
  li t1, GIGA_RAM | PTE_V | PTE_R | PTE_W | PTE_X | PTE_U
  sd t1, 8(t0) /* VPN[2] = 1: 0x4000_0000, A and D clear */
  srli t0, t0, 12
  li t1, SATP_SV39
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  ENTER(1, 1f)
1:ALIAS(data)
  li s4, 0
  ld t2, 0(t0) /* U page from S without SUM: load page fault, delegated */
  CHECK(s4, 13)
  bne s6, t0, fail
  li t1, (1 << 18)
  csrs sstatus, t1
  ld t2, 0(t0)
  CHECK(t2, 0x1122334455667788)
  BACK_TO_M
9:lla t0, pt_root
  ld t1, 8(t0)
  andi t1, t1, PTE_A | PTE_D
  CHECK(t1, PTE_A)

  CASE(5) /* U-mode runs at the alias; a store sets D; an S page faults from U */
  ALIAS(5f)
  li t1, (3 << 11)
  csrc mstatus, t1
  csrw mepc, t0
  lla a6, 9f
  mret
5:lla t0, data /* pc-relative, so the alias */
  li t1, 42
  sd t1, 8(t0)
  li t1, 0x40000000
  add t0, t0, t1 /* the S-only identity mapping */
  li s4, 0
  ld t2, 0(t0) /* S-only page from U */
  CHECK(s4, 13)
  BACK_TO_M
9:lla t0, data
  ld t1, 8(t0)
  CHECK(t1, 42)
  lla t0, pt_root
  ld t1, 8(t0)
  andi t1, t1, PTE_D
  CHECK(t1, PTE_D)

  CASE(6) /* MPRV: M-mode loads through the U alias with MPP = U and SUM irrelevant */
  li t0, (3 << 11)
  csrc mstatus, t0
  li t0, (1 << 17)
  csrs mstatus, t0
  ALIAS(data)
  ld t2, 0(t0)
  li t1, (1 << 17)
  csrc mstatus, t1
  CHECK(t2, 0x1122334455667788)
  csrw satp, zero
  sfence.vma

  CASE(7) /* a delegated supervisor software interrupt, taken as soon as S enables it */
  li t0, 2
  csrw mideleg, t0
  csrw mie, t0
  ENTER(1, 1f)
1:li s4, 0
  csrsi sip, 2
  csrsi sstatus, 2 /* SIE */
  nop
  csrci sstatus, 2
  li t0, (1 << 63) | 1
  bne s4, t0, fail
  csrr t0, sip
  CHECK(t0, 0)
  BACK_TO_M
9:csrw mideleg, zero
  csrw mie, zero

  CASE(8) /* misaligned and page-crossing accesses are performed */
  lla t0, cross
  addi t0, t0, -3
  li t1, 0x0807060504030201
  sd t1, 0(t0)
  ld t2, 0(t0)
  bne t1, t2, fail
  lw t2, 1(t0)
  CHECK(t2, 0x05040302)
  lhu t2, 3(t0)
  CHECK(t2, 0x0504)

  CASE(9) /* LR/SC and AMOs */
  lla t0, data
  addi t0, t0, 16
  li t1, 5
  sd t1, 0(t0)
  lr.d t2, (t0)
  addi t2, t2, 1
  sc.d t3, t2, (t0)
  CHECK(t3, 0)
  sc.d t3, t2, (t0)
  CHECK(t3, 1)
  li t1, -1
  amoadd.w t2, t1, (t0)
  CHECK(t2, 6)
  lw t2, 0(t0)
  CHECK(t2, 5)
  li t1, -7
  amomin.d t2, t1, (t0)
  ld t2, 0(t0)
  CHECK(t2, -7)
  ret

  .balign 4
m_handler:
  csrr s1, mcause
  csrr s2, mepc
  csrr s3, mtval
  li t6, 99
  beq a7, t6, 1f
  csrr t6, mepc
  addi t6, t6, 4
  csrw mepc, t6
  mret
1:li a7, 0
  jr a6

  .balign 4
s_handler:
  csrr s4, scause
  csrr s5, sepc
  csrr s6, stval
  bltz s4, 1f
  csrr t6, sepc
  addi t6, t6, 4
  csrw sepc, t6
  sret
1:csrci sip, 2
  sret

  .data
  .balign 4096
pt_root:
  .space 4096
data:
  .dword 0x1122334455667788
  .dword 0
  .dword 0
  .balign 4096
cross:
  .space 8
