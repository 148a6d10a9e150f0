/**
 * The DNS server at the user network's DNS address: each query is answered through
 * the host's own resolver (dns.lookup, so the host's /etc/hosts, nsswitch and
 * resolv.conf all apply, as for any host program). Only the first question is
 * answered. A and AAAA get the host's addresses (TTL 60 s); a host loopback address
 * (127.0.0.0/8 in an A answer, ::1 in an AAAA answer) becomes the user network's
 * host address of that family, where the guest reaches the host's loopback. Other types, and A or AAAA for a name that has
 * addresses of the other family only, get an empty NOERROR answer; a name the host
 * cannot resolve gets NXDOMAIN, a failing resolver SERVFAIL, a malformed
 * query FORMERR (or nothing when not even the header is there). Answers fit in
 * 512 bytes (extra records are left out).
 *
 * dns.lookup runs getaddrinfo on libuv's thread pool, which the tap backend's poll
 * and file I/O share: at most 2 lookups run at once in the process, 64 more wait,
 * and queries beyond that get SERVFAIL, so a guest flooding names cannot stall the
 * pool.
 */
import { lookup } from 'node:dns/promises';
import { isLoopback6, tryParseIpv6, type Ipv6Address } from './ip-address.js';

const TYPE_A = 1;
const TYPE_AAAA = 28;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const MAX_UDP_ANSWER = 512;
const TTL = 60;
const MAX_LOOKUPS = 2;
const MAX_WAITING = 64;

let running = 0;
const waiting: (() => void)[] = [];

async function limitedLookup(name: string, family: 4 | 6): Promise<{ address: string }[]> {
  if (running >= MAX_LOOKUPS) {
    if (waiting.length >= MAX_WAITING) throw Object.assign(new Error('too many lookups'), { code: 'EBUSY' });
    await new Promise<void>((resolve) => waiting.push(resolve)); // a finishing lookup hands its slot over
  } else running++;
  try {
    return await lookup(name, { family, all: true });
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

interface Question {
  name: string;
  type: number;
  /** The end of the question (name, type, class) in the query. */
  end: number;
}

function readQuestion(query: Uint8Array): Question | null {
  const labels: string[] = [];
  let i = 12;
  for (;;) {
    if (i >= query.length) return null;
    const len = query[i]!;
    if (len === 0) { i++; break; }
    if (len > 63 || i + 1 + len > query.length) return null; // compression pointers do not belong in a question
    labels.push(Buffer.from(query.subarray(i + 1, i + 1 + len)).toString('latin1'));
    i += 1 + len;
  }
  if (i + 4 > query.length || labels.length === 0) return null;
  return { name: labels.join('.'), type: (query[i]! << 8) | query[i + 1]!, end: i + 4 };
}

function header(query: Uint8Array, rcode: number, answers: number, questionEnd: number): Uint8Array {
  const out = new Uint8Array(MAX_UDP_ANSWER);
  out.set(query.subarray(0, 2), 0); // id
  out[2] = 0x80 | (query[2]! & 0x01); // QR, opcode 0, RD copied
  out[3] = 0x80 | rcode; // RA
  out[5] = questionEnd > 12 ? 1 : 0;
  out[7] = answers;
  if (questionEnd > 12) out.set(query.subarray(12, questionEnd), 12);
  return out;
}

/**
 * Answers one DNS query (the UDP payload); null when it cannot even be answered with
 * an error. `hostAddress` and `hostAddress6` stand for the host's loopback addresses.
 */
export async function answerDnsQuery(query: Uint8Array, hostAddress: number, hostAddress6?: Ipv6Address): Promise<Uint8Array | null> {
  if (query.length < 12 || (query[2]! & 0x80) !== 0) return null;
  const question = (query[2]! & 0x78) === 0 && query[5] === 1 && query[4] === 0 ? readQuestion(query) : null;
  if (!question) return header(query, RCODE_FORMERR, 0, 12).subarray(0, 12);
  if (question.type !== TYPE_A && question.type !== TYPE_AAAA) return header(query, 0, 0, question.end).subarray(0, question.end);
  let addresses: { address: string }[];
  try {
    addresses = await limitedLookup(question.name, question.type === TYPE_A ? 4 : 6);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    let rcode = code === 'ENOTFOUND' || code === 'ENODATA' ? RCODE_NXDOMAIN : RCODE_SERVFAIL;
    // A name with addresses of the other family only exists: no data, not NXDOMAIN.
    if (rcode === RCODE_NXDOMAIN && (code === 'ENODATA' || (await nameExists(question.name, question.type === TYPE_A ? 6 : 4)))) rcode = 0;
    return header(query, rcode, 0, question.end).subarray(0, question.end);
  }
  const size = question.type === TYPE_A ? 4 : 16;
  const recordLength = 12 + size;
  const count = Math.min(addresses.length, Math.floor((MAX_UDP_ANSWER - question.end) / recordLength), 255);
  const out = header(query, 0, count, question.end);
  const view = new DataView(out.buffer);
  let at = question.end;
  for (let n = 0; n < count; n++) {
    view.setUint16(at, 0xc00c); // the name: a pointer to the question's
    view.setUint16(at + 2, question.type);
    view.setUint16(at + 4, 1);
    view.setUint32(at + 6, TTL);
    view.setUint16(at + 10, size);
    writeAddress(out, at + 12, addresses[n]!.address, hostAddress, hostAddress6);
    at += recordLength;
  }
  return out.subarray(0, at);
}

async function nameExists(name: string, family: 4 | 6): Promise<boolean> {
  try {
    return (await limitedLookup(name, family)).length > 0;
  } catch {
    return false;
  }
}

function writeAddress(out: Uint8Array, at: number, text: string, hostAddress: number, hostAddress6: Ipv6Address | undefined): void {
  const v6 = tryParseIpv6(text.replace(/%.*$/, ''));
  if (v6) {
    out.set(hostAddress6 && isLoopback6(v6) ? hostAddress6 : v6, at);
    return;
  }
  const parts = text.split('.').map(Number);
  const addr = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  new DataView(out.buffer).setUint32(at, parts[0] === 127 ? hostAddress : addr);
}
