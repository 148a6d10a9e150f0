/**
 * IPv4 addresses as unsigned 32-bit numbers (10.0.2.15 is 0x0a00020f), the form the
 * user stack keeps them in: parsing with clear errors, formatting, netmasks.
 */

export function parseIpv4(text: string, what = 'address'): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`${what}: '${text}' is not an IPv4 address`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** The netmask of a prefix length, as an unsigned number (24 → 0xffffff00). */
export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Whether the address is in the network (both already masked or not). */
export function inNetwork(addr: number, network: number, prefix: number): boolean {
  const mask = prefixMask(prefix);
  return ((addr & mask) >>> 0) === ((network & mask) >>> 0);
}
