/**
 * Addresses of the user stack, for both families: an IPv4 address is an unsigned
 * 32-bit number (10.0.2.15 is 0x0a00020f, see ../address.ts), an IPv6 address a
 * 16-byte Uint8Array (network order). Code that serves both families (TCP and UDP
 * NAT, ICMP echo, packets) takes an IpAddress and tells the family by its type.
 *
 * IPv6 text is parsed in every RFC 4291 form (a "::" run, an embedded IPv4 tail, no
 * zone index) and formatted in RFC 5952's canonical form (lowercase, the longest run
 * of two or more zero groups as "::"), the form Node.js reports socket addresses in.
 */

export type Ipv6Address = Uint8Array;
export type IpAddress = number | Ipv6Address;

/** Parses IPv6 text into 16 bytes; null when it is not an IPv6 address. */
export function tryParseIpv6(text: string): Ipv6Address | null {
  let t = text;
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(t);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    if (t[v4.index - 1] !== ':' || parts.some((p) => p > 255)) return null;
    const [a, b, c, d] = parts as [number, number, number, number];
    t = `${t.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = t.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 255;
  }
  return out;
}

/** Parses IPv6 text, or throws an error naming `what`. */
export function parseIpv6(text: string, what = 'address'): Ipv6Address {
  const addr = tryParseIpv6(text);
  if (!addr) throw new Error(`${what}: '${text}' is not an IPv6 address`);
  return addr;
}

/** RFC 5952 text of an IPv6 address. */
export function formatIpv6(addr: Ipv6Address): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (from: number, to: number): string => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

export function formatAddress(addr: IpAddress): string {
  return typeof addr === 'number' ? `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}` : formatIpv6(addr);
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A string that identifies the address in map keys, cheap on hot paths: IPv4 in
 * decimal (at most 10 characters), IPv6 as its 16 bytes as characters (always 16).
 */
export function addressKey(addr: IpAddress): string {
  return typeof addr === 'number' ? String(addr) : String.fromCharCode(...addr);
}

/** Whether `addr` lies in prefix/length. */
export function inPrefix6(addr: Ipv6Address, prefix: Ipv6Address, length: number): boolean {
  const whole = length >> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== prefix[i]) return false;
  const bits = length & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (addr[whole]! & mask) === (prefix[whole]! & mask);
}

/** The prefix with every bit past `length` cleared. */
export function maskPrefix6(addr: Ipv6Address, length: number): Ipv6Address {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, length - 8 * i));
    out[i] = addr[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** The address prefix + `suffix` (the suffix's bits past the prefix length). */
export function withSuffix6(prefix: Ipv6Address, suffix: number): Ipv6Address {
  const out = prefix.slice();
  new DataView(out.buffer).setUint32(12, (new DataView(out.buffer).getUint32(12) | suffix) >>> 0);
  return out;
}

export const isMulticast6 = (addr: Ipv6Address): boolean => addr[0] === 0xff;
export const isLinkLocal6 = (addr: Ipv6Address): boolean => addr[0] === 0xfe && (addr[1]! & 0xc0) === 0x80;
export const isUnspecified6 = (addr: Ipv6Address): boolean => addr.every((b) => b === 0);
export const isLoopback6 = (addr: Ipv6Address): boolean => addr[15] === 1 && addr.subarray(0, 15).every((b) => b === 0);

/** The solicited-node multicast address of `addr` (ff02::1:ffXX:XXXX, RFC 4291). */
export function solicitedNode(addr: Ipv6Address): Ipv6Address {
  const out = parseIpv6('ff02::1:ff00:0');
  out.set(addr.subarray(13), 13);
  return out;
}

/** The Ethernet address an IPv6 multicast address maps to (33:33 and its last four bytes, RFC 2464). */
export function multicastMac(addr: Ipv6Address): Uint8Array {
  const mac = new Uint8Array(6);
  mac[0] = 0x33;
  mac[1] = 0x33;
  mac.set(addr.subarray(12), 2);
  return mac;
}

/** An address in ::/96 or ::ffff:0:0/96 (unspecified, loopback, IPv4-compatible or IPv4-mapped): an IPv4 address in disguise or none. */
export function isEmbeddedIpv4(addr: Ipv6Address): boolean {
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return (addr[10] === 0 && addr[11] === 0) || (addr[10] === 0xff && addr[11] === 0xff);
}

/** "host:port" for messages, an IPv6 host in brackets and an empty one as "*". */
export function hostPortText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host || '*'}:${port}`;
}
