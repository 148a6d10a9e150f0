/**
 * Numbers of the RISC-V SBI specification (version 2.0) that tsemu's SBI
 * implements: extension ids, function ids, error codes.
 */

export const SBI_SPEC_VERSION = (2 << 24) | 0;
/** tsemu's implementation id (not in the SBI registry's list; "ts" in ASCII). */
export const SBI_IMPL_ID = 0x7473;
export const SBI_IMPL_VERSION = 1;

export const EID = {
  LEGACY_SET_TIMER: 0x00,
  LEGACY_PUTCHAR: 0x01,
  LEGACY_GETCHAR: 0x02,
  LEGACY_SHUTDOWN: 0x08,
  BASE: 0x10,
  TIME: 0x5449_4d45,
  IPI: 0x0073_5049,
  RFENCE: 0x5246_4e43,
  HSM: 0x0048_534d,
  SRST: 0x5352_5354,
  DBCN: 0x4442_434e,
} as const;

export const BASE_FID = {
  GET_SPEC_VERSION: 0,
  GET_IMPL_ID: 1,
  GET_IMPL_VERSION: 2,
  PROBE_EXTENSION: 3,
  GET_MVENDORID: 4,
  GET_MARCHID: 5,
  GET_MIMPID: 6,
} as const;

export const RFENCE_FID = {
  FENCE_I: 0,
  SFENCE_VMA: 1,
  SFENCE_VMA_ASID: 2,
} as const;

export const HSM_FID = {
  HART_START: 0,
  HART_STOP: 1,
  HART_GET_STATUS: 2,
  HART_SUSPEND: 3,
} as const;

export const HSM_SUSPEND = {
  RETENTIVE_DEFAULT: 0x0000_0000,
  NON_RETENTIVE_DEFAULT: 0x8000_0000 | 0,
  /** Platform-specific types start here (in both halves); tsemu has none. */
  PLATFORM_BASE: 0x1000_0000,
} as const;

export const SRST_TYPE = { SHUTDOWN: 0, COLD_REBOOT: 1, WARM_REBOOT: 2 } as const;
export const SRST_REASON = { NONE: 0, SYSTEM_FAILURE: 1 } as const;

export const DBCN_FID = { WRITE: 0, READ: 1, WRITE_BYTE: 2 } as const;

export const SBI_ERR = {
  SUCCESS: 0,
  FAILED: -1,
  NOT_SUPPORTED: -2,
  INVALID_PARAM: -3,
  DENIED: -4,
  INVALID_ADDRESS: -5,
  ALREADY_AVAILABLE: -6,
  ALREADY_STARTED: -7,
  ALREADY_STOPPED: -8,
} as const;
