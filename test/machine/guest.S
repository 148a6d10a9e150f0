/*
 * Bare-metal S-mode test guests for tsemu's virt machine and SBI, one per
 * -DMODE_*: HELLO prints through the UART then SBI DBCN and powers off (SRST);
 * IDLE prints "idle" with the legacy putchar and sleeps in wfi forever; REBOOT
 * prints "boot" and asks SRST for a cold reboot; SMP starts hart 1 with HSM
 * hart_start, which prints and sets a flag hart 0 waits for, then powers off;
 * SUSPEND arms the SBI timer and suspends with HSM hart_suspend, first
 * retentive (the call returns once the timer is pending), then non-retentive
 * (the hart resumes at a given address with a1 = opaque), then powers off.
 * Entered as the SBI starts a kernel: a0 = hart id, a1 = FDT, S-mode, satp 0.
 */
  .equ UART, 0x10000000
  .equ EID_DBCN, 0x4442434E
  .equ EID_SRST, 0x53525354
  .equ EID_HSM, 0x48534D
  .equ EID_TIME, 0x54494D45
  .equ SIE_STIE, 0x20

  .section .text
  .globl _start
_start:
#if defined(MODE_HELLO)
  la   a0, uart_msg
  call uart_puts
  la   a0, sbi_msg
  call sbi_puts
  li   a0, 0            /* shutdown */
  j    srst
#elif defined(MODE_IDLE)
  li   a7, 1            /* legacy console_putchar */
  li   a0, 'i'
  ecall
  li   a0, '\n'
  ecall
1:
  wfi
  j    1b
#elif defined(MODE_REBOOT)
  la   a0, boot_msg
  call sbi_puts
  li   a0, 1            /* cold reboot */
  j    srst
#elif defined(MODE_SMP)
  bnez a0, secondary
  li   a7, EID_HSM
  li   a6, 0            /* hart_start(1, secondary_entry, 0x1234) */
  li   a0, 1
  la   a1, _start
  li   a2, 0x1234
  ecall
  bnez a0, fail
  la   t0, flag
1:
  lw   t1, 0(t0)
  beqz t1, 1b
  la   a0, done_msg
  call sbi_puts
  li   a0, 0
  j    srst
secondary:
  li   t0, 0x1234
  bne  a1, t0, fail
  la   a0, hart1_msg
  call sbi_puts
  la   t0, flag
  li   t1, 1
  fence
  sw   t1, 0(t0)
1:
  wfi
  j    1b
fail:
  la   a0, fail_msg
  call sbi_puts
  li   a0, 0
  li   a1, 1            /* system failure */
  j    srst_reason
#elif defined(MODE_SUSPEND)
  li   t0, SIE_STIE
  csrs sie, t0          /* timer enabled in sie, sstatus.SIE stays 0: no trap */
  call arm_timer
  li   a7, EID_HSM
  li   a6, 3            /* hart_suspend(retentive default) */
  li   a0, 0
  ecall
  bnez a0, fail
  la   a0, retentive_msg
  call sbi_puts
  call arm_timer
  li   a7, EID_HSM
  li   a6, 3            /* hart_suspend(non-retentive default, resumed, 0x55) */
  li   a0, 0x80000000
  la   a1, resumed
  li   a2, 0x55
  ecall
  j    fail             /* a non-retentive suspend does not return */
resumed:
  li   t0, 0x55
  bne  a1, t0, fail
  la   a0, nonretentive_msg
  call sbi_puts
  li   a0, 0
  j    srst
/* SBI set_timer(time + 10 ms) */
arm_timer:
  rdtime a0
  li   t0, 100000
  add  a0, a0, t0
  li   a7, EID_TIME
  li   a6, 0
  ecall
  ret
fail:
  la   a0, fail_msg
  call sbi_puts
  li   a0, 0
  li   a1, 1
  j    srst_reason
#endif

/* SRST system_reset(a0 = type, reason 0) */
srst:
  li   a1, 0
srst_reason:
  li   a7, EID_SRST
  li   a6, 0
  ecall
1:
  j    1b

/* Prints the NUL-terminated string at a0 on the 16550, polling LSR.THRE. */
uart_puts:
  li   t2, UART
1:
  lbu  t0, 0(a0)
  beqz t0, 3f
2:
  lbu  t1, 5(t2)
  andi t1, t1, 0x20
  beqz t1, 2b
  sb   t0, 0(t2)
  addi a0, a0, 1
  j    1b
3:
  ret

/* Prints the NUL-terminated string at a0 with SBI DBCN console_write. */
sbi_puts:
  mv   t0, a0
  li   t1, 0
1:
  add  t2, t0, t1
  lbu  t2, 0(t2)
  beqz t2, 2f
  addi t1, t1, 1
  j    1b
2:
  mv   a0, t1
  mv   a1, t0
  li   a2, 0
  li   a7, EID_DBCN
  li   a6, 0
  ecall
  ret

  .section .data
uart_msg:  .asciz "hello from the UART\n"
sbi_msg:   .asciz "hello from SBI DBCN\n"
boot_msg:  .asciz "boot\n"
hart1_msg: .asciz "hart 1 up\n"
done_msg:  .asciz "smp done\n"
fail_msg:  .asciz "FAIL\n"
retentive_msg:    .asciz "retentive suspend returned\n"
nonretentive_msg: .asciz "non-retentive suspend resumed\n"
  .balign 4
flag:      .word 0
