/**
 * Build step on each bundle's text: esbuild's __toESM helper shares the
 * namespace object it makes for a CommonJS module among the modules that import it.
 *
 * When an ES module of the bundle imports a CommonJS one (a Node built-in such
 * as node:fs or node:path by default import, a stand-in of lazy-builtins.js, a
 * bundled CommonJS package), esbuild calls __toESM(module) in the importer, which
 * makes a new object with a forwarding getter per export of the module. Every
 * importer makes its own: at `img convert`'s start-up that was 28 calls defining
 * about 1,350 getters, node:crypto's stand-in (73 exports) 9 times and node:fs
 * (104) 3 times, about 1 ms of CPU. Here the helper keeps the object it made per
 * module (and per interop mode) and hands it to later importers. Importers only
 * read through it (an assignment to an import does not compile), so sharing it
 * changes nothing they see. A module that has gained exports since (a CommonJS
 * module still being evaluated when a cycle first imported it) gets a new
 * object, as before; the object an earlier importer holds is what it always was.
 *
 * The helper's text is esbuild's: if a bundle calls __toESM but the helper is not
 * found exactly once as written here (another esbuild version), the build fails
 * saying so, rather than silently making copies again.
 *
 * Before that, builtinDefaults() drops the conversion where nothing needs it: an
 * ES module that only default-imports a Node built-in (`import fs from 'node:fs'`,
 * as is-wsl and its helpers do at every start-up for node:process, node:os and
 * node:fs: about 200 getters) reads it only as `ns.default`, so its namespace
 * becomes `{default: require(...)}`. That is done only where the bundle's text
 * shows the variable holding the namespace declared once, assigned once and
 * otherwise only ever followed by `.default`; any other use keeps __toESM.
 */

/** esbuild's __toESM as it writes it with whitespace minified. */
const HELPER =
  'var __toESM=(mod,isNodeMode,target)=>(target=mod!=null?__create(__getProtoOf(mod)):{},' +
  '__copyProps(isNodeMode||!mod||!mod.__esModule?__defProp(target,"default",{value:mod,enumerable:true}):target,mod));';

/** esbuild's conversion under another name, called once per module (and mode) while the module's export count stays the same. */
const SHARED_HELPER = [
  HELPER.replace('var __toESM=', 'var __toESMFresh='),
  'var __toESMMade=[new WeakMap,new WeakMap];',
  'var __toESM=(mod,isNodeMode)=>{',
  'if(mod==null||typeof mod!=="object"&&typeof mod!=="function")return __toESMFresh(mod,isNodeMode);',
  'const made=__toESMMade[isNodeMode?1:0],count=__getOwnPropNames(mod).length,earlier=made.get(mod);',
  'if(earlier!==void 0&&earlier.count===count)return earlier.namespace;',
  'const namespace=__toESMFresh(mod,isNodeMode);made.set(mod,{count,namespace});return namespace};',
].join('');

/** esbuild's conversion of a default-imported Node built-in in an ES module: `name=__toESM(require("node:x"),1)`. */
const BUILTIN_IMPORT = /(?<![\w$.])([A-Za-z_$][\w$]*)=__toESM\(require\("(node:[\w/]+)"\),1\)/g;

const escape = (name) => name.replace(/\$/g, '\\$');

/** `text` (a bundle) with the namespaces of built-ins that are only default-imported made `{default: module}`. */
export function builtinDefaults(text) {
  return text.replace(BUILTIN_IMPORT, (assignment, name, specifier) => {
    const id = escape(name);
    const uses = text.match(new RegExp(`(?<![\\w$.])${id}(?![\\w$])`, 'g')).length;
    const defaults = text.match(new RegExp(`(?<![\\w$.])${id}\\.default(?![\\w$])`, 'g'))?.length ?? 0;
    const declarations = text.match(new RegExp(`\\bvar (?:[\\w$]+,)*${id}[,;]`, 'g'))?.length ?? 0;
    if (declarations !== 1 || uses !== defaults + 2) return assignment;
    return `${name}={default:require(${JSON.stringify(specifier)})}`;
  });
}

/** `text` (a bundle) with __toESM sharing its namespaces; throws if a bundle using it has another helper. */
export function shareNamespaces(text, file) {
  const parts = text.split(HELPER);
  if (parts.length === 2) return parts.join(SHARED_HELPER);
  if (parts.length === 1 && !text.includes('__toESM(')) return text;
  throw new Error(`shared-namespaces: ${file}: esbuild's __toESM helper found ${parts.length - 1} times, expected once`);
}
