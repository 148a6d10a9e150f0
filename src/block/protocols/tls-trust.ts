/**
 * Which certificate authorities HTTPS connections trust. Normally Node's default:
 * its root store (bundled, or OpenSSL's with --use-openssl-ca) plus the file
 * NODE_EXTRA_CA_CERTS names, which Node 20 reads at every start-up. The tsemu
 * launcher (bin/tsemu.js) keeps that file from Node to save the start-up time and
 * hands it here (deferExtraCaCerts); the first HTTPS connection then builds one
 * secure context for the process: Node's default store with the file's
 * certificates added, as Node would have added them. Without a deferred file
 * (tsemu run as `node bin/tsemu.js`, or the library used directly) connections
 * keep Node's default context.
 *
 * A file that cannot be read is reported once on stderr and ignored, as Node
 * does at start-up; the connections then trust the default store only.
 */
import { createRequire } from 'node:module';
import type { SecureContext } from 'node:tls';

/**
 * node:tls and node:fs/promises load on first use: most commands make no HTTPS
 * connection. So is the require function itself (making one costs about 0.3 ms
 * of every command's start-up, as cli.ts imports this module).
 */
let requireFn: NodeJS.Require | undefined;
const load = (id: string): unknown => (requireFn ??= createRequire(import.meta.url))(id);

let deferredFile: string | undefined;
let context: Promise<SecureContext> | undefined;

/** Records the NODE_EXTRA_CA_CERTS file that Node did not load at start-up. */
export function deferExtraCaCerts(file: string | undefined): void {
  deferredFile = file;
  context = undefined;
}

/** The secure context HTTPS connections use, or undefined for Node's default. */
export function trustedSecureContext(): Promise<SecureContext> | undefined {
  if (deferredFile === undefined) return undefined;
  context ??= withExtraCaCerts(deferredFile);
  return context;
}

async function withExtraCaCerts(file: string): Promise<SecureContext> {
  const { createSecureContext } = load('node:tls') as typeof import('node:tls');
  const { readFile } = load('node:fs/promises') as typeof import('node:fs/promises');
  const secureContext = createSecureContext();
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (e) {
    process.stderr.write(`tsemu: warning: ignoring the extra CA certificates of NODE_EXTRA_CA_CERTS: ${(e as Error).message}\n`);
    return secureContext;
  }
  // The native context reads every PEM certificate in the buffer into a copy of
  // the default store it uses (what Node does with this file at start-up).
  (secureContext.context as { addCACert(pem: Buffer): void }).addCACert(pem);
  return secureContext;
}
