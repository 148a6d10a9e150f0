/**
 * Netdev specifications spelled as QEMU's -netdev options, parsed into plain
 * objects the backend factory takes:
 *
 *   user[,id=ID][,net=ADDR[/PREFIX|/MASK]][,host=ADDR][,dns=ADDR][,dhcpstart=ADDR]
 *       [,restrict=on|off][,hostname=NAME][,domainname=NAME][,tftp=DIR][,bootfile=NAME]
 *       [,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 *       [,guestfwd=[tcp:]SERVER:PORT-cmd:COMMAND | -tcp:HOST:PORT]...
 *   tap[,id=ID][,ifname=NAME][,script=no][,downscript=no]
 *
 * The text is "type,key=value,...", where ",," is a literal comma; hostfwd and
 * guestfwd may repeat. Unknown types and keys, bad addresses, ports and booleans are errors that
 * name the offending text. Addresses default as in QEMU: net 10.0.2.0/24, host
 * .2, dns .3, dhcpstart .15. TAP setup scripts are not run: script= and
 * downscript= accept only "no" (tsemu configures nothing on the host side).
 */
import { inNetwork, parseIpv4, prefixMask, formatIpv4 } from './address.js';

export interface HostForward {
  proto: 'tcp' | 'udp';
  /** Host address to listen on ("" = every address, as in QEMU). */
  hostAddr: string;
  /** 0 lets the host pick a free port (tsemu's extension, handy in tests). */
  hostPort: number;
  /** Guest address; null means the first DHCP address. */
  guestAddr: number | null;
  guestPort: number;
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
  /** Folder the TFTP server serves (no TFTP server without it). */
  tftp?: string;
  /** Boot file name DHCP offers (BOOTP file field and option 67). */
  bootfile?: string;
  hostfwd: HostForward[];
  guestfwd: GuestForward[];
}

export interface TapNetdev {
  type: 'tap';
  id?: string;
  /** Interface name; the kernel picks tapN when absent. */
  ifname?: string;
}

export type NetdevSpec = UserNetdev | TapNetdev;

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

/** "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" */
export function parseHostForward(text: string): HostForward {
  const m = /^(?:(tcp|udp):)?([^:]*):(\d*)-([^:]*):(\d*)$/.exec(text);
  if (!m) throw new Error(`hostfwd: '${text}' is not [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`);
  const [, proto = 'tcp', hostAddr = '', hostPort = '', guestAddr = '', guestPort = ''] = m;
  if (hostAddr !== '') parseIpv4(hostAddr, 'hostfwd host address');
  return {
    proto: proto as 'tcp' | 'udp',
    hostAddr,
    hostPort: parsePort(hostPort, 'host port', true),
    guestAddr: guestAddr === '' ? null : parseIpv4(guestAddr, 'hostfwd guest address'),
    guestPort: parsePort(guestPort, 'guest port', false),
  };
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
  for (const [key, value] of pairs) {
    if (key === 'hostfwd') hostfwd.push(parseHostForward(value));
    else if (key === 'guestfwd') guestfwd.push(parseGuestForward(value));
    else if (['id', 'net', 'host', 'dns', 'dhcpstart', 'restrict', 'hostname', 'domainname', 'tftp', 'bootfile'].includes(key)) fields.set(key, value);
    else throw new Error(`user: unknown option '${key}'`);
  }
  const { net, prefix } = parseNet(fields.get('net') ?? '10.0.2.0/24');
  const inNet = (key: string, offset: number): number => {
    const text = fields.get(key);
    const addr = text === undefined ? net + offset : parseIpv4(text, key);
    if (!inNetwork(addr, net, prefix)) throw new Error(`${key}: ${formatIpv4(addr)} is outside the network ${formatIpv4(net)}/${prefix}`);
    return addr;
  };
  const host = inNet('host', 2);
  const dns = inNet('dns', 3);
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
    tftp: fields.get('tftp'),
    bootfile: fields.get('bootfile'),
    hostfwd,
    guestfwd,
  };
}

function parseTap(pairs: [string, string][]): TapNetdev {
  const spec: TapNetdev = { type: 'tap' };
  for (const [key, value] of pairs) {
    if (key === 'id') spec.id = value;
    else if (key === 'ifname') {
      if (!/^[A-Za-z0-9_.-]{1,15}$/.test(value)) throw new Error(`tap: ifname '${value}' is not an interface name (1 to 15 letters, digits, _ . -)`);
      spec.ifname = value;
    } else if (key === 'script' || key === 'downscript') {
      if (value !== 'no') throw new Error(`tap: ${key}=${value}: tsemu runs no setup scripts; use ${key}=no and configure the interface yourself`);
    } else throw new Error(`tap: unknown option '${key}'`);
  }
  return spec;
}

/** Parses one -netdev style specification. */
export function parseNetdevSpec(text: string): NetdevSpec {
  const pairs = splitPairs(text);
  const [type] = pairs.shift() ?? [''];
  switch (type) {
    case 'user': return parseUser(pairs);
    case 'tap': return parseTap(pairs);
    default: throw new Error(`'${type}' is not a network backend (user, tap)`);
  }
}
