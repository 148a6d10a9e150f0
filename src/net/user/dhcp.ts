/**
 * The DHCP server of the user network (RFC 2131, options from RFC 2132). It
 * answers DISCOVER with OFFER and REQUEST with ACK (or NAK when the client asks
 * for an address that is not its lease), and takes RELEASE. Leases are kept per
 * client MAC, handed out from dhcpstart upwards (16 addresses, within the network);
 * a client keeps its address for the life of the stack. Offered options: subnet
 * mask, router (the host address), DNS server, lease time (24 h), server id, and
 * the hostname, domain name, domain search list (option 119, split over several
 * instances when longer than 255 bytes) and boot file (also in the BOOTP file
 * field) when configured. A reply is at least 548 bytes of UDP payload (576 with
 * IP and UDP headers, the size every client accepts) and longer only when the
 * options need it. Replies are broadcast (to
 * 255.255.255.255 and ff:ff:ff:ff:ff:ff), which every client accepts. Malformed
 * messages (short, wrong cookie, options running past the end) are ignored.
 */
import type { UserNetdev } from '../spec.js';
import { prefixMask } from '../address.js';
import { encodeSearchList } from './search-list.js';

const BOOTP_FIXED = 236;
const MAGIC_COOKIE = 0x63825363;
const LEASE_SECONDS = 86400;
const POOL_SIZE = 16;
const DISCOVER = 1;
const OFFER = 2;
const REQUEST = 3;
const ACK = 5;
const NAK = 6;
const RELEASE = 7;

/** Options of a client message that the server looks at. */
interface ClientOptions {
  type: number;
  requested: number | null;
}

function readOptions(msg: Uint8Array, view: DataView): ClientOptions | null {
  const out: ClientOptions = { type: 0, requested: null };
  for (let i = BOOTP_FIXED + 4; i < msg.length; ) {
    const code = msg[i]!;
    if (code === 255) break;
    if (code === 0) { i++; continue; }
    if (i + 1 >= msg.length) return null;
    const len = msg[i + 1]!;
    if (i + 2 + len > msg.length) return null;
    if (code === 53 && len === 1) out.type = msg[i + 2]!;
    if (code === 50 && len === 4) out.requested = view.getUint32(i + 2);
    i += 2 + len;
  }
  return out.type === 0 ? null : out;
}

export class DhcpServer {
  private readonly leases = new Map<string, number>();

  constructor(private readonly config: UserNetdev) {}

  private macKey(chaddr: Uint8Array): string {
    return Array.from(chaddr, (b) => b.toString(16).padStart(2, '0')).join(':');
  }

  private allocate(key: string): number | null {
    const existing = this.leases.get(key);
    if (existing !== undefined) return existing;
    const taken = new Set(this.leases.values());
    const broadcast = (this.config.net | ~prefixMask(this.config.prefix)) >>> 0;
    for (let i = 0; i < POOL_SIZE; i++) {
      const addr = this.config.dhcpStart + i;
      if (addr >= broadcast) break;
      if (!taken.has(addr) && addr !== this.config.host && addr !== this.config.dns) {
        this.leases.set(key, addr);
        return addr;
      }
    }
    return null;
  }

  /** The address leased to a MAC, if any (hostfwd without a guest address uses the first lease). */
  leaseOf(mac: Uint8Array): number | undefined {
    return this.leases.get(this.macKey(mac));
  }

  /** Handles one client message (the UDP payload); returns the reply payload, or null for none. */
  handle(msg: Uint8Array): Uint8Array | null {
    if (msg.length < BOOTP_FIXED + 4 || msg[0] !== 1 || msg[1] !== 1 || msg[2] !== 6) return null;
    const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    if (view.getUint32(BOOTP_FIXED) !== MAGIC_COOKIE) return null;
    const options = readOptions(msg, view);
    if (!options) return null;
    const chaddr = msg.subarray(28, 34);
    const key = this.macKey(chaddr);
    switch (options.type) {
      case DISCOVER: {
        const addr = this.allocate(key);
        return addr === null ? null : this.reply(msg, OFFER, addr);
      }
      case REQUEST: {
        const addr = this.allocate(key);
        const wanted = options.requested ?? view.getUint32(12);
        if (addr === null) return null;
        return wanted === addr || wanted === 0 ? this.reply(msg, ACK, addr) : this.reply(msg, NAK, 0);
      }
      case RELEASE:
        this.leases.delete(key);
        return null;
      default:
        return null;
    }
  }

  /** The options of a reply after the magic cookie, ending with 255. */
  private options(type: number): Uint8Array {
    const { config } = this;
    const out: number[] = [];
    const put = (code: number, bytes: Uint8Array): void => {
      for (let at = 0; at === 0 || at < bytes.length; at += 255) {
        const part = bytes.subarray(at, at + 255);
        out.push(code, part.length, ...part);
      }
    };
    const u32 = (v: number): Uint8Array => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, v >>> 0);
      return b;
    };
    put(53, Uint8Array.of(type));
    put(54, u32(config.host));
    if (type !== NAK) {
      put(51, u32(LEASE_SECONDS));
      put(1, u32(prefixMask(config.prefix)));
      put(3, u32(config.host));
      put(6, u32(config.dns));
      if (config.hostname) put(12, text(config.hostname));
      if (config.domainname) put(15, text(config.domainname));
      if (config.dnssearch.length > 0) put(119, encodeSearchList(config.dnssearch));
      if (config.bootfile) put(67, text(config.bootfile));
    }
    out.push(255);
    return Uint8Array.from(out);
  }

  private reply(request: Uint8Array, type: number, addr: number): Uint8Array {
    const { config } = this;
    const options = this.options(type);
    // The minimum a client must accept (576) less IP and UDP headers, or more when the options need it.
    const out = new Uint8Array(Math.max(576 - 28, BOOTP_FIXED + 4 + options.length));
    const view = new DataView(out.buffer);
    out[0] = 2; // BOOTREPLY
    out[1] = 1;
    out[2] = 6;
    out.set(request.subarray(4, 8), 4); // xid
    out.set(request.subarray(10, 12), 10); // flags
    view.setUint32(16, addr);
    if (type !== NAK) view.setUint32(20, config.host);
    out.set(request.subarray(28, 44), 28); // chaddr
    if (config.bootfile && type !== NAK) out.set(text(config.bootfile), 108);
    view.setUint32(BOOTP_FIXED, MAGIC_COOKIE);
    out.set(options, BOOTP_FIXED + 4);
    return out;
  }
}

/** A configured string as option bytes (at most 127, which also fits the BOOTP file field). */
function text(t: string): Uint8Array {
  return new TextEncoder().encode(t.slice(0, 127));
}
