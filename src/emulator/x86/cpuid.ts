/**
 * The CPUID a vCPU reports: what KVM_GET_SUPPORTED_CPUID offers, with each
 * vCPU's own APIC ID where the guest reads it (leaf 1 EBX[31:24]; leaves 0xB
 * and 0x1F EDX, the x2APIC ID) and leaf 1's logical processor count set to
 * the machine's CPU count, so a guest's topology matches the MADT.
 * physicalAddressBits() reads how much guest-physical space the CPU addresses
 * (leaf 0x80000008 EAX[7:0]; 36 bits where the leaf is missing, as CPUs without
 * it have).
 */
import type { CpuidEntry } from '../accel/kvm/abi.js';

const LEAF_FEATURES = 0x1;
const LEAF_TOPOLOGY = 0xb;
const LEAF_TOPOLOGY_V2 = 0x1f;
const LEAF_ADDRESS_SIZES = 0x8000_0008;
const EDX_HTT = 1 << 28;
const DEFAULT_PHYSICAL_BITS = 36;

export function physicalAddressBits(supported: readonly CpuidEntry[]): number {
  const leaf = supported.find((e) => e.function === LEAF_ADDRESS_SIZES);
  return leaf ? leaf.eax & 0xff : DEFAULT_PHYSICAL_BITS;
}

export function vcpuCpuid(supported: readonly CpuidEntry[], apicId: number, cpus: number): CpuidEntry[] {
  return supported.map((entry) => {
    const e = { ...entry };
    if (e.function === LEAF_FEATURES) {
      e.ebx = ((e.ebx & 0x0000_ffff) | (Math.min(cpus, 255) << 16) | (apicId << 24)) >>> 0;
      e.edx = cpus > 1 ? (e.edx | EDX_HTT) >>> 0 : e.edx;
    } else if (e.function === LEAF_TOPOLOGY || e.function === LEAF_TOPOLOGY_V2) {
      e.edx = apicId;
    }
    return e;
  });
}
