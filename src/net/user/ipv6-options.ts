/**
 * The IPv6 options of the user netdev, spelled as QEMU's: ipv6=on|off (on by
 * default), ipv6-net=ADDR[/LEN] or (not both) ipv6-prefix=ADDR with
 * ipv6-prefixlen=LEN, ipv6-host=ADDR and ipv6-dns=ADDR. Defaults as in QEMU:
 * prefix fec0::/64, host ::2 and DNS ::3 of the prefix. The prefix length may be
 * 1 to 126 (guests build SLAAC addresses only from a /64, as RFC 4862 and Linux
 * want); host and DNS must lie in the prefix, which may not be multicast or
 * link-local. Errors name the option and its value.
 */
import { inPrefix6, isLinkLocal6, isMulticast6, maskPrefix6, parseIpv6, withSuffix6, formatIpv6, type Ipv6Address } from './ip-address.js';

/** The user network's IPv6 side. */
export interface Ipv6Config {
  prefix: Ipv6Address;
  prefixLength: number;
  /** The gateway's global address (the host's ::1 for the guest). */
  host: Ipv6Address;
  dns: Ipv6Address;
}

export const IPV6_OPTIONS = ['ipv6', 'ipv6-net', 'ipv6-prefix', 'ipv6-prefixlen', 'ipv6-host', 'ipv6-dns'] as const;

function prefixLength(text: string, key: string): number {
  const n = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 126)) throw new Error(`${key}: '${text}' is not a prefix length from 1 to 126`);
  return n;
}

/** Reads the IPv6 options from the user netdev's fields (`enabled`: the ipv6= value, parsed). */
export function parseIpv6Options(fields: ReadonlyMap<string, string>, enabled: boolean): Ipv6Config | null {
  if (!enabled) return null;
  const net = fields.get('ipv6-net');
  if (net !== undefined && (fields.has('ipv6-prefix') || fields.has('ipv6-prefixlen'))) {
    throw new Error('ipv6-net: give either ipv6-net= or ipv6-prefix= with ipv6-prefixlen=, not both');
  }
  let prefixText = fields.get('ipv6-prefix') ?? 'fec0::';
  let lengthText = fields.get('ipv6-prefixlen') ?? '64';
  let prefixKey = 'ipv6-prefix';
  let lengthKey = 'ipv6-prefixlen';
  if (net !== undefined) {
    const slash = net.indexOf('/');
    prefixText = slash < 0 ? net : net.slice(0, slash);
    if (slash >= 0) lengthText = net.slice(slash + 1);
    prefixKey = lengthKey = 'ipv6-net';
  }
  const length = prefixLength(lengthText, lengthKey);
  const prefix = maskPrefix6(parseIpv6(prefixText, prefixKey), length);
  if (isMulticast6(prefix) || isLinkLocal6(prefix)) throw new Error(`${prefixKey}: ${formatIpv6(prefix)}/${length} is a multicast or link-local prefix`);
  const inPrefix = (key: string, suffix: number): Ipv6Address => {
    const text = fields.get(key);
    const addr = text === undefined ? withSuffix6(prefix, suffix) : parseIpv6(text, key);
    if (!inPrefix6(addr, prefix, length)) throw new Error(`${key}: ${formatIpv6(addr)} is outside the prefix ${formatIpv6(prefix)}/${length}`);
    return addr;
  };
  return { prefix, prefixLength: length, host: inPrefix('ipv6-host', 2), dns: inPrefix('ipv6-dns', 3) };
}
