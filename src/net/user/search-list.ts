/**
 * The DHCP domain search list (option 119, RFC 3397): domain names in DNS wire
 * form (length-prefixed labels, a zero byte at the end), with RFC 1035 message
 * compression where offsets count from the start of the whole list (DHCPv6's
 * option 24 takes the same form uncompressed: `compress` false). A name whose
 * tail was already written ends in a two-byte pointer to it. The encoded list may
 * exceed the 255 bytes of one option; the caller splits it over consecutive
 * option 119 instances, which clients concatenate (RFC 3396).
 *
 * checkSearchDomain() validates a name at parse time (labels 1..63 bytes of
 * letters, digits, '-' and '_', the name at most 253 bytes); encodeSearchList()
 * expects validated names.
 */

const MAX_POINTER = 0x3fff;
/**
 * The longest encoded list a user netdev accepts: with the longest hostname, domain
 * name and boot file (127 bytes each), the DHCP reply still fits one 1500-byte packet.
 */
export const MAX_SEARCH_LIST = 800;

/** Throws when `name` is not a usable domain name; returns it without a trailing dot. */
export function checkSearchDomain(name: string): string {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  const ok = bare.length > 0 && bare.length <= 253 && bare.split('.').every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l));
  if (!ok) throw new Error(`dnssearch: '${name}' is not a domain name`);
  return bare;
}

export function encodeSearchList(domains: readonly string[], compress = true): Uint8Array {
  const out: number[] = [];
  const written = new Map<string, number>(); // lower-cased suffix → its offset in `out`
  for (const domain of domains) {
    const labels = domain.split('.');
    let i = 0;
    for (; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const at = compress ? written.get(suffix) : undefined;
      if (at !== undefined) {
        out.push(0xc0 | (at >> 8), at & 0xff);
        break;
      }
      if (out.length <= MAX_POINTER) written.set(suffix, out.length);
      const bytes = new TextEncoder().encode(labels[i]!);
      out.push(bytes.length, ...bytes);
    }
    if (i === labels.length) out.push(0);
  }
  return Uint8Array.from(out);
}
