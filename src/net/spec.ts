/**
 * Netdev specifications spelled as QEMU's -netdev options, parsed into plain
 * objects the backend factory takes:
 *
 *   user[,id=ID][,net=ADDR[/PREFIX|/MASK]][,host=ADDR][,dns=ADDR][,dhcpstart=ADDR]
 *       [,restrict=on|off][,hostname=NAME][,domainname=NAME][,dnssearch=DOMAIN]...
 *       [,tftp=DIR][,bootfile=NAME]
 *       [,ipv4=on|off][,ipv6=on|off][,ipv6-net=ADDR[/LEN] | ,ipv6-prefix=ADDR,ipv6-prefixlen=LEN]
 *       [,ipv6-host=ADDR][,ipv6-dns=ADDR]
 *       [,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 *       [,guestfwd=[tcp:]SERVER:PORT-cmd:COMMAND | -tcp:HOST:PORT]...
 *   tap[,id=ID][,ifname=NAME][,script=no][,downscript=no][,vnet_hdr=on|off]
 *   bridge[,id=ID],br=BRIDGE[,ifname=NAME]
 *   socket,listen=[HOST]:PORT | socket,connect=HOST:PORT     (length-framed stream)
 *   stream,server=on|off,addr.type=inet,addr.host=H,addr.port=P | addr.type=unix,addr.path=PATH
 *   socket,udp=HOST:PORT,localaddr=[HOST]:PORT
 *   socket,mcast=GROUP:PORT[,localaddr=ADDR]               (GROUP an IPv4 multicast address)
 *   dgram,local.host=H,local.port=P,remote.host=H,remote.port=P[,local.type=inet][,remote.type=inet]
 *
 * The text is "type,key=value,...", where ",," is a literal comma; hostfwd,
 * guestfwd and dnssearch may repeat. Unknown types and keys, bad addresses, ports and booleans are errors that
 * name the offending text. Addresses default as in QEMU: net 10.0.2.0/24, host
 * .2, dns .3, dhcpstart .15; IPv6 on, prefix fec0::/64, host ::2, dns ::3
 * (user/ipv6-options.ts); ipv4=off and ipv6=off may not go together. A hostfwd address in brackets is IPv6 ([::1], [fec0::15]);
 * a forward with an IPv6 guest address, or with none and an IPv6 host address, goes
 * to the guest's IPv6 side (its SLAAC address when none is given). TAP setup
 * scripts are not run: script= and downscript= accept only "no" (tsemu configures nothing on the host side).
 */
import { inNetwork, parseIpv4, prefixMask, formatIpv4 } from './address.js';
import type { UdpAddress } from './dgram.js';
import { checkSearchDomain, encodeSearchList, MAX_SEARCH_LIST } from './user/search-list.js';
import { parseIpv6, type Ipv6Address } from './user/ip-address.js';
import { IPV6_OPTIONS, parseIpv6Options, type Ipv6Config } from './user/ipv6-options.js';
import type { StreamAddress } from './stream.js';

export interface HostForward {
  proto: 'tcp' | 'udp';
  /** Host address to listen on ("" = every address, as in QEMU). */
  hostAddr: string;
  /** 0 lets the host pick a free port (tsemu's extension, handy in tests). */
  hostPort: number;
  /** Guest address; null means the first DHCP address. */
  guestAddr: number | null;
  guestPort: number;
  /** Present for a forward to the guest's IPv6 side: its guest address, null for the one the guest uses. */
  guestAddr6?: Ipv6Address | null;
}

/** Guest connections to SERVER:PORT (an address of the user network) go to a command or a host socket. */
export interface GuestForward {
  addr: number;
  port: number;
  target: { kind: 'cmd'; command: string } | { kind: 'tcp'; host: string; port: number };
}

export interface UserNetdev {
  type: 'user';
  id?: string;
  /** Network address and prefix length. */
  net: number;
  prefix: number;
  host: number;
  dns: number;
  dhcpStart: number;
  restrict: boolean;
  hostname?: string;
  domainname?: string;
  /** Domain search list offered by DHCP (option 119), in order. */
  dnssearch: string[];
  /** Folder the TFTP server serves (no TFTP server without it). */
  tftp?: string;
  /** Boot file name DHCP offers (BOOTP file field and option 67). */
  bootfile?: string;
  hostfwd: HostForward[];
  guestfwd: GuestForward[];
  /** The IPv4 side is on (ipv4=off: no ARP, DHCP or IPv4 at all). */
  ipv4: boolean;
  /** The IPv6 side (ipv6=off: null). */
  ipv6: Ipv6Config | null;
}

export interface TapNetdev {
  type: 'tap';
  id?: string;
  /** Interface name; the kernel picks tapN when absent. */
  ifname?: string;
  /**
   * vnet_hdr=on: frames carry virtio-net headers (IFF_VNET_HDR; an error where the
   * kernel refuses). Absent means "when the kernel offers it", as in QEMU (create.ts):
   * the user stack uses the header for offloads, and the other backends see the same
   * frames either way.
   */
  vnetHdr?: boolean;
}

export interface StreamNetdev {
  type: 'stream';
  id?: string;
  server: boolean;
  address: StreamAddress;
}

export interface DgramNetdev {
  type: 'dgram';
  id?: string;
  local: UdpAddress;
  remote: UdpAddress;
}

export interface McastNetdev {
  type: 'mcast';
  id?: string;
  group: UdpAddress;
  /** The address whose interface joins the group and sends (every interface when absent). */
  localAddr?: string;
}

export interface BridgeNetdev {
  type: 'bridge';
  id?: string;
  br: string;
  ifname?: string;
}

export type NetdevSpec = UserNetdev | TapNetdev | BridgeNetdev | StreamNetdev | DgramNetdev | McastNetdev;

/** Splits "a=1,b=x,,y,flag" into ordered pairs, keeping repeated keys ("flag" alone is "flag=on"). */
function splitPairs(text: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < text.length; ) {
    let item = '';
    while (i < text.length) {
      if (text[i] === ',') {
        if (text[i + 1] === ',') { item += ','; i += 2; continue; }
        break;
      }
      item += text[i++];
    }
    i++;
    const eq = item.indexOf('=');
    pairs.push(eq < 0 ? [item, 'on'] : [item.slice(0, eq), item.slice(eq + 1)]);
  }
  return pairs;
}

function parseBoolean(value: string, key: string): boolean {
  if (value === 'on' || value === 'yes' || value === 'true') return true;
  if (value === 'off' || value === 'no' || value === 'false') return false;
  throw new Error(`${key}: '${value}' is not on or off`);
}

function parsePort(text: string, what: string, allowZero: boolean): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port <= 65535) || (!allowZero && port === 0)) throw new Error(`hostfwd: ${what} '${text}' is not a port number`);
  return port;
}

/** "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", an IPv6 address in brackets. */
export function parseHostForward(text: string): HostForward {
  const m = /^(?:(tcp|udp):)?(\[[^\]]*\]|[^:[\]]*):(\d*)-(\[[^\]]*\]|[^:[\]]*):(\d*)$/.exec(text);
  if (!m) throw new Error(`hostfwd: '${text}' is not [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`);
  const [, proto = 'tcp', hostText = '', hostPort = '', guestText = '', guestPort = ''] = m;
  const host6 = hostText.startsWith('[');
  const guest6 = guestText.startsWith('[');
  const hostAddr = host6 ? hostText.slice(1, -1) : hostText;
  if (host6) parseIpv6(hostAddr, 'hostfwd host address');
  else if (hostAddr !== '') parseIpv4(hostAddr, 'hostfwd host address');
  const fwd: HostForward = {
    proto: proto as 'tcp' | 'udp',
    hostAddr,
    hostPort: parsePort(hostPort, 'host port', true),
    guestAddr: guestText === '' || guest6 ? null : parseIpv4(guestText, 'hostfwd guest address'),
    guestPort: parsePort(guestPort, 'guest port', false),
  };
  if (guest6) fwd.guestAddr6 = parseIpv6(guestText.slice(1, -1), 'hostfwd guest address');
  else if (host6 && guestText === '') fwd.guestAddr6 = null;
  return fwd;
}

/** "[tcp:]SERVER:PORT-cmd:COMMAND" or "[tcp:]SERVER:PORT-tcp:HOST:PORT" */
export function parseGuestForward(text: string): GuestForward {
  const m = /^(?:tcp:)?([0-9.]+):(\d{1,5})-(cmd:(.+)|tcp:([^:]+):(\d{1,5}))$/s.exec(text);
  if (!m) throw new Error(`guestfwd: '${text}' is not [tcp:]server:port-cmd:command or [tcp:]server:port-tcp:host:port`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`guestfwd: '${m[2]}' is not a port number`);
  const addr = parseIpv4(m[1]!, 'guestfwd server address');
  if (m[4] !== undefined) return { addr, port, target: { kind: 'cmd', command: m[4] } };
  const hostPort = Number(m[6]);
  if (hostPort < 1 || hostPort > 65535) throw new Error(`guestfwd: '${m[6]}' is not a port number`);
  return { addr, port, target: { kind: 'tcp', host: m[5]!, port: hostPort } };
}

function parseNet(value: string): { net: number; prefix: number } {
  const [addr = '', mask] = value.split('/');
  const net = parseIpv4(addr, 'net');
  let prefix = 24;
  if (mask !== undefined) {
    if (/^\d{1,2}$/.test(mask)) prefix = Number(mask);
    else {
      const bits = parseIpv4(mask, 'net mask');
      prefix = 32 - Math.log2(2 ** 32 - bits);
      if (!Number.isInteger(prefix) || prefixMask(prefix) !== bits) throw new Error(`net: '${mask}' is not a netmask`);
    }
  }
  if (prefix < 8 || prefix > 29) throw new Error(`net: prefix /${prefix} must be between /8 and /29`);
  return { net: (net & prefixMask(prefix)) >>> 0, prefix };
}

function parseUser(pairs: [string, string][]): UserNetdev {
  const fields = new Map<string, string>();
  const hostfwd: HostForward[] = [];
  const guestfwd: GuestForward[] = [];
  const dnssearch: string[] = [];
  for (const [key, value] of pairs) {
    if (key === 'hostfwd') hostfwd.push(parseHostForward(value));
    else if (key === 'dnssearch') dnssearch.push(checkSearchDomain(value));
    else if (key === 'guestfwd') guestfwd.push(parseGuestForward(value));
    else if (['id', 'net', 'host', 'dns', 'dhcpstart', 'restrict', 'hostname', 'domainname', 'tftp', 'bootfile', 'ipv4', ...IPV6_OPTIONS].includes(key)) fields.set(key, value);
    else throw new Error(`user: unknown option '${key}'`);
  }
  const searchBytes = encodeSearchList(dnssearch).length;
  if (searchBytes > MAX_SEARCH_LIST) throw new Error(`dnssearch: the list takes ${searchBytes} bytes encoded; at most ${MAX_SEARCH_LIST} fit a DHCP reply`);
  const { net, prefix } = parseNet(fields.get('net') ?? '10.0.2.0/24');
  const inNet = (key: string, offset: number): number => {
    const text = fields.get(key);
    const addr = text === undefined ? net + offset : parseIpv4(text, key);
    if (!inNetwork(addr, net, prefix)) throw new Error(`${key}: ${formatIpv4(addr)} is outside the network ${formatIpv4(net)}/${prefix}`);
    return addr;
  };
  const host = inNet('host', 2);
  const dns = inNet('dns', 3);
  const ipv4 = parseBoolean(fields.get('ipv4') ?? 'on', 'ipv4');
  const ipv6 = parseIpv6Options(fields, parseBoolean(fields.get('ipv6') ?? 'on', 'ipv6'));
  if (!ipv4 && !ipv6) throw new Error('user: ipv4=off and ipv6=off together leave the guest no network');
  for (const g of guestfwd) {
    if (!inNetwork(g.addr, net, prefix) || g.addr === host || g.addr === dns) {
      throw new Error(`guestfwd: ${formatIpv4(g.addr)} must be an address of the network ${formatIpv4(net)}/${prefix} other than the host and DNS addresses`);
    }
  }
  return {
    type: 'user',
    id: fields.get('id'),
    net,
    prefix,
    host,
    dns,
    dhcpStart: inNet('dhcpstart', 15),
    restrict: parseBoolean(fields.get('restrict') ?? 'off', 'restrict'),
    hostname: fields.get('hostname'),
    domainname: fields.get('domainname'),
    dnssearch,
    tftp: fields.get('tftp'),
    bootfile: fields.get('bootfile'),
    hostfwd,
    guestfwd,
    ipv4,
    ipv6,
  };
}

function interfaceName(type: string, key: string, value: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(value)) throw new Error(`${type}: ${key} '${value}' is not an interface name (1 to 15 letters, digits, _ . -)`);
  return value;
}

function parseBridge(pairs: [string, string][]): BridgeNetdev {
  const f = fieldsOf('bridge', pairs, ['id', 'br', 'ifname', 'helper']);
  if (f.has('helper')) throw new Error('bridge: tsemu runs no helper; it attaches the tap itself (needs CAP_NET_ADMIN)');
  const br = f.get('br');
  if (br === undefined) throw new Error('bridge: br= names the bridge to attach to');
  const ifname = f.get('ifname');
  return { type: 'bridge', id: f.get('id'), br: interfaceName('bridge', 'br', br), ifname: ifname === undefined ? undefined : interfaceName('bridge', 'ifname', ifname) };
}

function parseTap(pairs: [string, string][]): TapNetdev {
  const spec: TapNetdev = { type: 'tap' };
  for (const [key, value] of pairs) {
    if (key === 'id') spec.id = value;
    else if (key === 'ifname') spec.ifname = interfaceName('tap', 'ifname', value);
    else if (key === 'vnet_hdr') spec.vnetHdr = parseBoolean(value, 'tap: vnet_hdr');
    else if (key === 'script' || key === 'downscript') {
      if (value !== 'no') throw new Error(`tap: ${key}=${value}: tsemu runs no setup scripts; use ${key}=no and configure the interface yourself`);
    } else throw new Error(`tap: unknown option '${key}'`);
  }
  return spec;
}

/** "[HOST]:PORT" (an empty host only where `hostOptional`). */
function parseHostPort(text: string, what: string, hostOptional: boolean): UdpAddress {
  const m = /^(.*):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || (!hostOptional && m[1] === '')) throw new Error(`${what}: '${text}' is not ${hostOptional ? '[host]' : 'host'}:port`);
  return { host: m[1]!, port };
}

/** Reads key=value pairs into a map, refusing keys outside `allowed` and repeats. */
function fieldsOf(type: string, pairs: [string, string][], allowed: readonly string[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (const [key, value] of pairs) {
    if (!allowed.includes(key)) throw new Error(`${type}: unknown option '${key}'`);
    if (fields.has(key)) throw new Error(`${type}: option '${key}' given twice`);
    fields.set(key, value);
  }
  return fields;
}

function parseSocket(pairs: [string, string][]): StreamNetdev | DgramNetdev | McastNetdev {
  const f = fieldsOf('socket', pairs, ['id', 'listen', 'connect', 'udp', 'mcast', 'localaddr']);
  const id = f.get('id');
  const modes = ['listen', 'connect', 'udp', 'mcast'].filter((k) => f.has(k));
  if (modes.length !== 1) throw new Error('socket: give exactly one of listen=, connect=, udp=, mcast=');
  const listen = f.get('listen');
  const target = f.get('connect');
  const mcast = f.get('mcast');
  const localaddr = f.get('localaddr');
  if (mcast !== undefined) return parseMcast(id, mcast, localaddr);
  if ((localaddr !== undefined) !== f.has('udp')) throw new Error('socket: localaddr= goes with udp= or mcast= (and udp= needs it)');
  if (listen !== undefined) return { type: 'stream', id, server: true, address: { kind: 'inet', ...parseHostPort(listen, 'socket listen', true) } };
  if (target !== undefined) return { type: 'stream', id, server: false, address: { kind: 'inet', ...parseHostPort(target, 'socket connect', false) } };
  return { type: 'dgram', id, remote: parseHostPort(f.get('udp')!, 'socket udp', false), local: parseHostPort(localaddr!, 'socket localaddr', true) };
}

/** "GROUP:PORT" with GROUP in 224.0.0.0/4, and an optional plain local address. */
function parseMcast(id: string | undefined, text: string, localaddr: string | undefined): McastNetdev {
  const group = parseHostPort(text, 'socket mcast', false);
  if (parseIpv4(group.host, 'socket mcast group') >>> 28 !== 14) throw new Error(`socket mcast: ${group.host} is not a multicast address (224.0.0.0 to 239.255.255.255)`);
  if (group.port === 0) throw new Error(`socket mcast: '${text}' needs a port`);
  if (localaddr !== undefined) parseIpv4(localaddr, 'socket localaddr');
  return { type: 'mcast', id, group, localAddr: localaddr };
}

function parseStream(pairs: [string, string][]): StreamNetdev {
  const f = fieldsOf('stream', pairs, ['id', 'server', 'addr.type', 'addr.host', 'addr.port', 'addr.path']);
  const server = parseBoolean(f.get('server') ?? 'off', 'server');
  const type = f.get('addr.type') ?? 'inet';
  let address: StreamAddress;
  if (type === 'unix') {
    const path = f.get('addr.path');
    if (!path) throw new Error('stream: addr.type=unix needs addr.path=');
    address = { kind: 'unix', path };
  } else if (type === 'inet') {
    const port = f.get('addr.port');
    if (port === undefined) throw new Error('stream: addr.type=inet needs addr.port=');
    address = { kind: 'inet', ...parseHostPort(`${f.get('addr.host') ?? ''}:${port}`, 'stream addr', server) };
  } else throw new Error(`stream: addr.type '${type}' is not inet or unix`);
  return { type: 'stream', id: f.get('id'), server, address };
}

function parseDgram(pairs: [string, string][]): DgramNetdev {
  const f = fieldsOf('dgram', pairs, ['id', 'local.type', 'local.host', 'local.port', 'remote.type', 'remote.host', 'remote.port']);
  for (const side of ['local', 'remote']) {
    const type = f.get(`${side}.type`) ?? 'inet';
    if (type !== 'inet') throw new Error(`dgram: ${side}.type '${type}' is not supported (inet only)`);
    if (!f.has(`${side}.port`)) throw new Error(`dgram: ${side}.port= is missing`);
  }
  return {
    type: 'dgram',
    id: f.get('id'),
    local: parseHostPort(`${f.get('local.host') ?? ''}:${f.get('local.port')}`, 'dgram local', true),
    remote: parseHostPort(`${f.get('remote.host') ?? ''}:${f.get('remote.port')}`, 'dgram remote', false),
  };
}

/** Parses one -netdev style specification. */
export function parseNetdevSpec(text: string): NetdevSpec {
  const pairs = splitPairs(text);
  const [type] = pairs.shift() ?? [''];
  switch (type) {
    case 'user': return parseUser(pairs);
    case 'tap': return parseTap(pairs);
    case 'bridge': return parseBridge(pairs);
    case 'socket': return parseSocket(pairs);
    case 'stream': return parseStream(pairs);
    case 'dgram': return parseDgram(pairs);
    default: throw new Error(`'${type}' is not a network backend (user, tap, bridge, socket, stream, dgram)`);
  }
}
