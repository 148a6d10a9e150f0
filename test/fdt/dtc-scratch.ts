/**
 * The setup the device-tree tests share: dtc must be installed (requirePeer),
 * and the test file gets one scratch folder for the blobs and sources it hands
 * to dtc, made before its tests and removed after them.
 */
import path from 'node:path';
import { after, before } from 'node:test';
import { requirePeer, scratchDir } from '../helpers/peers.js';

/** Registers the file's before/after hooks; the returned function gives the path of `name` in the scratch folder. */
export function dtcScratch(): (name: string) => string {
  let dir = '';
  let cleanup = async (): Promise<void> => {};
  before(async () => {
    requirePeer('dtc');
    ({ dir, cleanup } = await scratchDir());
  });
  after(() => cleanup());
  return (name) => path.join(dir, name);
}
