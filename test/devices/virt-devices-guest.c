/*
 * A bare-metal M-mode program for the virt machine (hart 0, no firmware) that
 * drives the UART, CLINT, PLIC, goldfish RTC, empty virtio-mmio slots and
 * sifive_test registers and prints what it reads on the UART, then exits
 * through sifive_test with "fail, code 42". virt-devices.test.ts runs it on QEMU (-bios none) and on
 * tsemu's device models and compares the two console outputs. Only
 * deterministic facts are printed (no raw times), and values read while the
 * UART cannot print (divisor latch, loopback) are noted and shown afterwards.
 */
#include <stdint.h>

#define UART ((volatile uint8_t *)0x10000000UL)
#define CLINT 0x02000000UL
#define PLIC 0x0c000000UL
#define PLIC_THRESHOLD (PLIC + 0x200000)
#define PLIC_CLAIM (PLIC + 0x200004)
#define RTC 0x00101000UL
#define TEST 0x00100000UL
#define UART_IRQ 10

static inline void w32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline uint32_t r32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void w64(uintptr_t a, uint64_t v) { *(volatile uint64_t *)a = v; }
static inline uint64_t r64(uintptr_t a) { return *(volatile uint64_t *)a; }

#define csr_read(csr) ({ uint64_t v_; __asm__ volatile("csrr %0, " #csr : "=r"(v_)); v_; })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"r"((uint64_t)(v)))
#define csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" ::"r"((uint64_t)(v)))
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" ::"r"((uint64_t)(v)))

static void out(char c) {
  while (!(UART[5] & 0x20)) {
  }
  UART[0] = (uint8_t)c;
}

static void print(const char *s) {
  while (*s) out(*s++);
}

static void show(const char *label, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  char buf[17];
  int n = 0;
  do {
    buf[n++] = digits[v & 15];
    v >>= 4;
  } while (v);
  print(label);
  out('=');
  while (n) out(buf[--n]);
  out('\n');
}

static struct {
  const char *label;
  uint64_t value;
} notes[32];
static int noted;

static void note(const char *label, uint64_t value) {
  notes[noted].label = label;
  notes[noted].value = value;
  noted++;
}

static void show_notes(void) {
  for (int i = 0; i < noted; i++) show(notes[i].label, notes[i].value);
  noted = 0;
}

static volatile uint64_t timer_hits, soft_hits, ext_id, ext_iir;

__attribute__((interrupt("machine"), aligned(4))) static void trap(void) {
  uint64_t cause = csr_read(mcause);
  if (cause == (1UL << 63 | 7)) {
    timer_hits++;
    w64(CLINT + 0x4000, ~0UL);
  } else if (cause == (1UL << 63 | 3)) {
    soft_hits++;
    w32(CLINT, 0);
  } else if (cause == (1UL << 63 | 11)) {
    uint32_t id = r32(PLIC_CLAIM);
    ext_iir = UART[2];
    UART[1] = 0; /* no more THR-empty interrupts */
    w32(PLIC_CLAIM, id);
    ext_id = id;
  } else {
    show("unexpected-trap", cause);
    w32(TEST, (1 << 16) | 0x3333);
  }
}

static void wait_for(volatile uint64_t *counter) {
  csr_set(mstatus, 8);
  while (!*counter) __asm__ volatile("wfi");
  csr_clear(mstatus, 8);
}

static void uart_registers(void) {
  UART[3] = 0x80; /* DLAB */
  UART[0] = 0x0c;
  UART[1] = 0x00;
  note("dll", UART[0]);
  note("dlm", UART[1]);
  UART[3] = 0x03;
  show_notes();
  show("lcr", UART[3]);
  show("ier", UART[1]);
  show("iir-nofifo", UART[2]);
  UART[2] = 0x07;
  show("iir-fifo", UART[2]);
  show("lsr", UART[5]);
  show("msr", UART[6]);
  UART[7] = 0xa5;
  show("scr", UART[7]);
  UART[4] = 0x10; /* loopback */
  (void)UART[6];
  UART[0] = 'x';
  UART[0] = 'y';
  note("loop-lsr", UART[5]);
  note("loop-rbr", UART[0]);
  note("loop-rbr", UART[0]);
  note("loop-lsr-empty", UART[5]);
  /* Modem status bits only: the 16550 also sets delta bits when loopback
     changes the lines (tsemu does), QEMU's model never does. */
  UART[4] = 0x1f;
  note("loop-msr", UART[6] & 0xf0);
  UART[4] = 0x0b;
  note("msr-after", UART[6] & 0xf0);
  show_notes();
  show("msr-settled", UART[6]);
  show("mcr", UART[4]);
}

static void clint(void) {
  uint64_t t0 = r64(CLINT + 0xbff8);
  uint32_t spins = 0;
  while (r64(CLINT + 0xbff8) <= t0 + 100 && spins < 100000000) spins++;
  show("mtime-advances", r64(CLINT + 0xbff8) > t0 + 100);

  csr_write(mie, 1 << 7);
  w64(CLINT + 0x4000, r64(CLINT + 0xbff8) + 1000);
  wait_for(&timer_hits);
  show("timer-hits", timer_hits);
  show("mip-after-timer", csr_read(mip) & 0x888);
  show("mtimecmp", r64(CLINT + 0x4000) == ~0UL);

  csr_write(mie, 1 << 3);
  w32(CLINT, 1);
  wait_for(&soft_hits);
  show("soft-hits", soft_hits);
  show("msip", r32(CLINT));
}

static void plic(void) {
  w32(PLIC + 4 * UART_IRQ, 1);
  w32(PLIC + 0x2000, 1 << UART_IRQ);
  w32(PLIC_THRESHOLD, 0);
  show("prio", r32(PLIC + 4 * UART_IRQ));
  show("enable", r32(PLIC + 0x2000));
  show("threshold", r32(PLIC_THRESHOLD));
  show("claim-idle", r32(PLIC_CLAIM));

  csr_write(mie, 1 << 11);
  UART[1] = 0x02; /* THR empty interrupt */
  wait_for(&ext_id);
  show("claimed", ext_id);
  show("iir-in-handler", ext_iir);
  show("pending-after", r32(PLIC + 0x1000));

  /* The threshold masks: the source goes pending but no interrupt is taken. */
  csr_write(mie, 0);
  w32(PLIC_THRESHOLD, 1);
  UART[1] = 0x02;
  note("pending-masked", r32(PLIC + 0x1000));
  note("claim-masked", r32(PLIC_CLAIM));
  note("mip-meip", csr_read(mip) & 0x800);
  w32(PLIC_THRESHOLD, 0);
  note("mip-meip-unmasked", csr_read(mip) & 0x800);
  uint32_t id = r32(PLIC_CLAIM);
  note("mip-claimed", csr_read(mip) & 0x800);
  UART[1] = 0;
  note("iir-direct", UART[2]);
  w32(PLIC_CLAIM, id);
  note("claim-direct", id);
  note("pending-end", r32(PLIC + 0x1000));
  note("mip-end", csr_read(mip) & 0x800);
  show_notes();
}

static void rtc(void) {
  uint64_t lo = r32(RTC), hi = r32(RTC + 4);
  uint64_t ns = hi << 32 | lo;
  show("rtc-after-2020", ns > 1577836800ULL * 1000000000ULL);
  show("rtc-alarm-status", r32(RTC + 0x18));
}

/* Magic and device ID only: QEMU's empty slots speak the legacy version 1, tsemu's version 2. */
static void virtio_slots(void) {
  for (uintptr_t slot = 0x10001000UL; slot <= 0x10008000UL; slot += 0x1000) {
    show("virtio-magic", r32(slot));
    show("virtio-device", r32(slot + 8));
  }
}

void main(void) {
  csr_write(mtvec, (uintptr_t)trap);
  print("virt devices\n");
  uart_registers();
  clint();
  plic();
  rtc();
  virtio_slots();
  print("done\n");
  w32(TEST, (42 << 16) | 0x3333);
  for (;;) {
  }
}

static uint8_t stack[16384] __attribute__((aligned(16), used));

__asm__(".pushsection .text.init, \"ax\"\n"
        ".global _start\n"
        "_start:\n"
        "  la sp, stack + 16384\n"
        "  call main\n"
        "1: j 1b\n"
        ".popsection\n");
