/**
 * Parsing of QEMU-style option syntax shared by every command:
 * sizes with suffixes ("64k", "1.5G", "512" bytes; k/K = KiB, M, G, T, P, E),
 * and option strings "key=value,key2=value2" where ",," stands for a literal comma
 * (QEMU's QemuOpts escaping), as in `-o cluster_size=64k,compat=1.1`.
 */

const SIZE_SUFFIXES: Record<string, number> = {
  b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60,
};

/**
 * Parses a size. `defaultSuffix` applies to bare numbers ("b" everywhere in
 * qemu-img except a few legacy spots). Throws with a message naming the input.
 */
export function parseSize(text: string, what = 'size', defaultSuffix = 'b'): number {
  const m = /^\s*([0-9]+(?:\.[0-9]*)?|0x[0-9a-f]+)\s*([bkmgtpe]?)\s*$/i.exec(text);
  if (!m) throw new Error(`Invalid ${what} specified: '${text}'`);
  const suffix = (m[2] || defaultSuffix).toLowerCase();
  const value = m[1]!.toLowerCase().startsWith('0x') ? parseInt(m[1]!, 16) : Number(m[1]);
  const bytes = value * SIZE_SUFFIXES[suffix]!;
  if (!Number.isFinite(bytes) || bytes > Number.MAX_SAFE_INTEGER) {
    throw new Error(`Invalid ${what} specified: '${text}' is too large`);
  }
  if (!Number.isInteger(bytes)) throw new Error(`Invalid ${what} specified: '${text}' is not a whole number of bytes`);
  return bytes;
}

/** Parses "a=1,b=x,,y,flag" into an ordered map ("flag" alone maps to "on"). */
export function parseOptionString(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < text.length) {
    let key = '';
    while (i < text.length && text[i] !== '=' && text[i] !== ',') key += text[i++];
    let value = 'on';
    if (text[i] === '=') {
      i++;
      value = '';
      while (i < text.length) {
        if (text[i] === ',') {
          if (text[i + 1] === ',') { value += ','; i += 2; continue; }
          break;
        }
        value += text[i++];
      }
    }
    if (text[i] === ',') i++;
    if (key === '') throw new Error(`Invalid option string '${text}': empty option name`);
    out.set(key, value);
  }
  return out;
}

/** Merges several -o arguments (later ones win), as qemu-img accepts -o repeatedly. */
export function mergeOptionStrings(texts: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of texts) for (const [k, v] of parseOptionString(t)) out.set(k, v);
  return out;
}

/** QEMU's boolean spellings. */
export function parseBool(value: string, what: string): boolean {
  if (value === 'on' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === 'false' || value === 'no') return false;
  throw new Error(`Parameter '${what}' expects 'on' or 'off'`);
}
