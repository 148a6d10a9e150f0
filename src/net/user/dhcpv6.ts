/**
 * A stateless DHCPv6 server (RFC 8415 section 6.1), as libslirp offers: addresses
 * come from SLAAC, so only Information-request is answered (to ff02::1:2 or a router
 * address, port 547), with a Reply carrying the server's DUID (DUID-LL of the router
 * MAC), the client's identifier when it sent one, the DNS address (option 23,
 * RFC 3646), the domain search list (option 24, names uncompressed) when dnssearch=
 * is set, and the boot file's URL (option 59, RFC 5970: tftp://[host]/FILE) when
 * tftp= and bootfile= are. Router advertisements set the "other configuration"
 * flag to send clients here. Solicit and the other stateful messages, messages for
 * another server, and malformed ones (short, an option running past the end) are
 * ignored.
 */
import type { UserNetdev } from '../spec.js';
import { formatIpv6 } from './ip-address.js';
import type { Ipv6Config } from './ipv6-options.js';
import { encodeSearchList } from './search-list.js';

export const DHCPV6_SERVER_PORT = 547;
const INFORMATION_REQUEST = 11;
const REPLY = 7;
const OPTION_CLIENTID = 1;
const OPTION_SERVERID = 2;
const OPTION_DNS_SERVERS = 23;
const OPTION_DOMAIN_LIST = 24;
const OPTION_BOOTFILE_URL = 59;
const DUID_LL = 3;
const HARDWARE_ETHERNET = 1;

export class Dhcpv6Server {
  private readonly serverId: Uint8Array;
  /** The options every reply carries after the identifiers. */
  private readonly fixedOptions: Uint8Array;

  constructor(config: UserNetdev, ipv6: Ipv6Config, routerMac: Uint8Array) {
    this.serverId = Uint8Array.of(0, DUID_LL, 0, HARDWARE_ETHERNET, ...routerMac);
    const options = [option(OPTION_DNS_SERVERS, ipv6.dns)];
    if (config.dnssearch.length > 0) options.push(option(OPTION_DOMAIN_LIST, encodeSearchList(config.dnssearch, false)));
    if (config.tftp !== undefined && config.bootfile !== undefined) {
      options.push(option(OPTION_BOOTFILE_URL, new TextEncoder().encode(`tftp://[${formatIpv6(ipv6.host)}]/${config.bootfile}`)));
    }
    this.fixedOptions = Buffer.concat(options);
  }

  /** The reply to one client message (the UDP payload), or null when it gets none. */
  handle(message: Uint8Array): Uint8Array | null {
    if (message.length < 4 || message[0] !== INFORMATION_REQUEST) return null;
    let clientId: Uint8Array | null = null;
    for (let at = 4; at < message.length; ) {
      if (at + 4 > message.length) return null;
      const code = (message[at]! << 8) | message[at + 1]!;
      const end = at + 4 + ((message[at + 2]! << 8) | message[at + 3]!);
      if (end > message.length) return null;
      const body = message.subarray(at + 4, end);
      if (code === OPTION_CLIENTID) clientId = body;
      if (code === OPTION_SERVERID && !Buffer.from(body).equals(this.serverId)) return null;
      at = end;
    }
    const parts = [Uint8Array.of(REPLY, message[1]!, message[2]!, message[3]!), option(OPTION_SERVERID, this.serverId)];
    if (clientId) parts.push(option(OPTION_CLIENTID, clientId));
    parts.push(this.fixedOptions);
    return Buffer.concat(parts);
  }
}

function option(code: number, body: Uint8Array): Uint8Array {
  return Uint8Array.of(code >> 8, code & 255, body.length >> 8, body.length & 255, ...body);
}
