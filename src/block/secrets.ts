/**
 * Secrets by id, as QEMU's `secret` objects hold them: a driver option names a
 * secret (`password-secret=ID`, `cookie-secret=ID`) instead of carrying the value,
 * so passwords stay out of file names, `img info` output and process listings.
 *
 * The store lives for the process: the CLI fills it from `--object secret,…`
 * (cli/objects.ts) before opening images, and library callers call defineSecret()
 * themselves. Ids are unique, as in QEMU's object tree. Only plain secrets are
 * held; QEMU's encrypted secrets (keyid=, iv=) are refused where they are parsed.
 */

const secrets = new Map<string, string>();

/** Records secret `id`; an id defined twice is an error. */
export function defineSecret(id: string, value: string): void {
  if (secrets.has(id)) throw new Error(`attempt to add duplicate property '${id}' to object (type 'container')`);
  secrets.set(id, value);
}

/** The value of secret `id`; a missing one is an error naming the id. */
export function lookupSecret(id: string): string {
  const value = secrets.get(id);
  if (value === undefined) throw new Error(`No secret with id '${id}'`);
  return value;
}

/** Forgets secret `id` (tests that define secrets in one process). */
export function removeSecret(id: string): void {
  secrets.delete(id);
}
