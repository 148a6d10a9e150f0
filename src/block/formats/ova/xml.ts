/**
 * A small, strict XML reader for OVF descriptors: it turns the text into a tree
 * of elements (local name, attributes by local name, children, text) and checks
 * that it is well formed: every start tag closed by its own end tag, quoted
 * attribute values, one root element, nothing but comments, processing
 * instructions and blanks around it. Namespace prefixes are dropped (OVF readers
 * match `ovf:href` and `href` alike); the five predefined entities and character
 * references are decoded. DOCTYPE declarations are refused, so no entity can be
 * defined or expanded, and CDATA sections are read as text. Errors are
 * ImageFormatErrors naming the line. Not a general XML library: no validation,
 * no namespaces beyond dropping prefixes.
 */
import { ImageFormatError } from '../../node.js';

export interface XmlElement {
  name: string;
  attrs: Map<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /[A-Za-z_][\w.:-]*/y;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const MAX_DEPTH = 64;

function localName(qname: string): string {
  return qname.slice(qname.indexOf(':') + 1);
}

export function parseXml(source: string, what: string): XmlElement {
  let pos = 0;
  const fail = (why: string): never => {
    const line = source.slice(0, pos).split('\n').length;
    throw new ImageFormatError(`${what} is not well-formed XML: ${why} (line ${line})`);
  };
  const decode = (raw: string): string =>
    raw.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (m, ref: string | undefined) => {
      if (ref === undefined) return fail("a bare '&'");
      if (ref.startsWith('#')) {
        const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : fail(`bad character reference ${m}`);
      }
      return ENTITIES[ref] ?? fail(`unknown entity ${m}`);
    });
  const readName = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(source);
    if (!m) return fail('a name was expected');
    pos += m[0].length;
    return m[0];
  };
  const skipBlanks = () => {
    while (pos < source.length && /\s/.test(source[pos]!)) pos++;
  };
  /** Skips a comment or processing instruction at pos; false if there is none. */
  const skipMisc = (): boolean => {
    for (const [open, close] of [['<!--', '-->'], ['<?', '?>']] as const) {
      if (source.startsWith(open, pos)) {
        const end = source.indexOf(close, pos + open.length);
        if (end < 0) fail(`unterminated ${open}`);
        pos = end + close.length;
        return true;
      }
    }
    if (source.startsWith('<!DOCTYPE', pos)) fail('DOCTYPE declarations are not accepted');
    return false;
  };

  const readElement = (depth: number): XmlElement => {
    if (depth > MAX_DEPTH) fail(`elements nested more than ${MAX_DEPTH} deep`);
    pos++; // '<'
    const qname = readName();
    const el: XmlElement = { name: localName(qname), attrs: new Map(), children: [], text: '' };
    for (;;) {
      skipBlanks();
      if (source.startsWith('/>', pos)) {
        pos += 2;
        return el;
      }
      if (source[pos] === '>') {
        pos++;
        break;
      }
      const attr = readName();
      skipBlanks();
      if (source[pos] !== '=') fail(`attribute ${attr} has no value`);
      pos++;
      skipBlanks();
      const quote = source[pos];
      if (quote !== '"' && quote !== "'") return fail(`attribute ${attr} value is not quoted`);
      const end = source.indexOf(quote, pos + 1);
      if (end < 0) fail(`attribute ${attr} value is not closed`);
      const value = source.slice(pos + 1, end);
      if (value.includes('<')) fail(`'<' in the value of attribute ${attr}`);
      el.attrs.set(localName(attr), decode(value));
      pos = end + 1;
    }
    for (;;) {
      const lt = source.indexOf('<', pos);
      if (lt < 0) fail(`element ${qname} is not closed`);
      el.text += decode(source.slice(pos, lt));
      pos = lt;
      if (source.startsWith('</', pos)) {
        pos += 2;
        const closing = readName();
        if (closing !== qname) fail(`</${closing}> closes <${qname}>`);
        skipBlanks();
        if (source[pos] !== '>') fail(`end tag ${closing} is not closed`);
        pos++;
        return el;
      }
      if (source.startsWith('<![CDATA[', pos)) {
        const end = source.indexOf(']]>', pos);
        if (end < 0) fail('unterminated CDATA section');
        el.text += source.slice(pos + 9, end);
        pos = end + 3;
        continue;
      }
      if (skipMisc()) continue;
      el.children.push(readElement(depth + 1));
    }
  };

  if (source.charCodeAt(0) === 0xfeff) pos = 1;
  let root: XmlElement | null = null;
  for (;;) {
    skipBlanks();
    if (pos >= source.length) break;
    if (skipMisc()) continue;
    if (source[pos] !== '<' || root) fail(root ? 'content after the root element' : 'text before the root element');
    root = readElement(0);
  }
  if (!root) return fail('no root element');
  return root;
}

/** The children of `el` named `name` (local name). */
export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** Characters escaped for an attribute value or text. */
export function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
