/*
 * The reference for the FPU tests: runs RISC-V F/D instructions on a real
 * RV64GC (qemu-riscv64-static in the tests) and prints what they produce.
 *
 * Input, one case per line: MNEMONIC RM A B C, where RM is a dynamic rounding
 * mode (0..4, written to frm) and A, B, C are 64-bit hex patterns: the raw
 * contents of the source f registers (singles must be NaN-boxed by the
 * caller if they are to be valid), or the integer source register (A).
 * Output, one line per case: RESULT FLAGS in hex, where RESULT is the whole
 * destination register (f or x) and FLAGS is fflags after the instruction
 * (cleared before it). An unknown mnemonic prints "?".
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t (*runner)(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags);

/* f3 = op(f0, f1, f2) for f-destination instructions; the x forms write %0 directly. */
#define PRE "csrw frm, %[rm]\n csrw fflags, zero\n fmv.d.x ft0, %[a]\n fmv.d.x ft1, %[b]\n fmv.d.x ft2, %[c]\n"
#define POST_F "fmv.x.d %[r], ft3\n csrr %[fl], fflags\n"
#define POST_X "csrr %[fl], fflags\n"
#define OPERANDS : [r] "=&r"(r), [fl] "=&r"(*flags) : [a] "r"(a), [b] "r"(b), [c] "r"(c), [rm] "r"(rm) : "ft0", "ft1", "ft2", "ft3"

#define F4(fn, insn) static uint64_t fn(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags) { \
  uint64_t r; asm volatile(PRE insn " ft3, ft0, ft1, ft2\n" POST_F OPERANDS); return r; }
#define F3(fn, insn) static uint64_t fn(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags) { \
  uint64_t r; asm volatile(PRE insn " ft3, ft0, ft1\n" POST_F OPERANDS); return r; }
#define F2(fn, insn) static uint64_t fn(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags) { \
  uint64_t r; asm volatile(PRE insn " ft3, ft0\n" POST_F OPERANDS); return r; }
#define X3(fn, insn) static uint64_t fn(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags) { \
  uint64_t r; asm volatile(PRE insn " %[r], ft0, ft1\n" POST_X OPERANDS); return r; }
#define X2(fn, insn) static uint64_t fn(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags) { \
  uint64_t r; asm volatile(PRE insn " %[r], ft0\n" POST_X OPERANDS); return r; }
#define FX(fn, insn) static uint64_t fn(uint64_t a, uint64_t b, uint64_t c, uint64_t rm, uint64_t *flags) { \
  uint64_t r; asm volatile(PRE insn " ft3, %[a]\n" POST_F OPERANDS); return r; }

#define BOTH(M) M(s) M(d)
#define ARITH(f) F4(fmadd_##f, "fmadd." #f) F4(fmsub_##f, "fmsub." #f) F4(fnmsub_##f, "fnmsub." #f) \
  F4(fnmadd_##f, "fnmadd." #f) F3(fadd_##f, "fadd." #f) F3(fsub_##f, "fsub." #f) F3(fmul_##f, "fmul." #f) \
  F3(fdiv_##f, "fdiv." #f) F2(fsqrt_##f, "fsqrt." #f) F3(fsgnj_##f, "fsgnj." #f) F3(fsgnjn_##f, "fsgnjn." #f) \
  F3(fsgnjx_##f, "fsgnjx." #f) F3(fmin_##f, "fmin." #f) F3(fmax_##f, "fmax." #f) X3(feq_##f, "feq." #f) \
  X3(flt_##f, "flt." #f) X3(fle_##f, "fle." #f) X2(fclass_##f, "fclass." #f) X2(fcvt_w_##f, "fcvt.w." #f) \
  X2(fcvt_wu_##f, "fcvt.wu." #f) X2(fcvt_l_##f, "fcvt.l." #f) X2(fcvt_lu_##f, "fcvt.lu." #f) \
  FX(fcvt_##f##_w, "fcvt." #f ".w") FX(fcvt_##f##_wu, "fcvt." #f ".wu") FX(fcvt_##f##_l, "fcvt." #f ".l") \
  FX(fcvt_##f##_lu, "fcvt." #f ".lu")
BOTH(ARITH)
X2(fmv_x_w, "fmv.x.w") FX(fmv_w_x, "fmv.w.x") X2(fmv_x_d, "fmv.x.d") FX(fmv_d_x, "fmv.d.x")
F2(fcvt_s_d, "fcvt.s.d") F2(fcvt_d_s, "fcvt.d.s")

#define ENTRY(f) {"fmadd." #f, fmadd_##f}, {"fmsub." #f, fmsub_##f}, {"fnmsub." #f, fnmsub_##f}, \
  {"fnmadd." #f, fnmadd_##f}, {"fadd." #f, fadd_##f}, {"fsub." #f, fsub_##f}, {"fmul." #f, fmul_##f}, \
  {"fdiv." #f, fdiv_##f}, {"fsqrt." #f, fsqrt_##f}, {"fsgnj." #f, fsgnj_##f}, {"fsgnjn." #f, fsgnjn_##f}, \
  {"fsgnjx." #f, fsgnjx_##f}, {"fmin." #f, fmin_##f}, {"fmax." #f, fmax_##f}, {"feq." #f, feq_##f}, \
  {"flt." #f, flt_##f}, {"fle." #f, fle_##f}, {"fclass." #f, fclass_##f}, {"fcvt.w." #f, fcvt_w_##f}, \
  {"fcvt.wu." #f, fcvt_wu_##f}, {"fcvt.l." #f, fcvt_l_##f}, {"fcvt.lu." #f, fcvt_lu_##f}, \
  {"fcvt." #f ".w", fcvt_##f##_w}, {"fcvt." #f ".wu", fcvt_##f##_wu}, {"fcvt." #f ".l", fcvt_##f##_l}, \
  {"fcvt." #f ".lu", fcvt_##f##_lu},

static const struct { const char *name; runner run; } table[] = {
  ENTRY(s) ENTRY(d)
  {"fmv.x.w", fmv_x_w}, {"fmv.w.x", fmv_w_x}, {"fmv.x.d", fmv_x_d}, {"fmv.d.x", fmv_d_x},
  {"fcvt.s.d", fcvt_s_d}, {"fcvt.d.s", fcvt_d_s},
};

int main(void) {
  char name[32];
  unsigned long long rm, a, b, c;
  runner last = 0;
  char lastName[32] = "";
  while (scanf("%31s %llu %llx %llx %llx", name, &rm, &a, &b, &c) == 5) {
    if (strcmp(name, lastName) != 0) {
      last = 0;
      for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) last = table[i].run;
      strcpy(lastName, name);
    }
    if (!last) {
      puts("?");
      continue;
    }
    uint64_t flags;
    uint64_t r = last(a, b, c, rm, &flags);
    printf("%016llx %llx\n", (unsigned long long)r, (unsigned long long)flags);
  }
  return 0;
}
