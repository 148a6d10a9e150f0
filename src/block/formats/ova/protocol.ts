/**
 * The `NAME.ova#N` protocol: disk N (from 1, in the OVF's DiskSection order) of
 * the OVA file NAME.ova, as a read-only protocol node over its bytes inside the
 * archive, on which the disk's own format (usually a streamOptimized VMDK) is
 * probed and opened like any image. A plain `NAME.ova` is the ova format's
 * business (driver.ts: the first disk). The archive is a host file; changes are
 * refused (disk-node.ts).
 */
import { FileNode } from '../../protocols/file.js';
import type { ProtocolDriver, ProtocolNode, ProtocolOpenOptions } from '../../protocols/protocol.js';
import { ovaReadOnly } from './disk-node.js';

const DISK_NAME = /^(.*\.ova)#([0-9]+)$/i;

export const ovaDiskProtocol: ProtocolDriver = {
  name: 'ova',
  claims: (filename: string) => DISK_NAME.test(filename),
  async open(filename: string, opts: ProtocolOpenOptions): Promise<ProtocolNode> {
    const [, archiveName, number] = DISK_NAME.exec(filename)!;
    if (opts.create || !opts.readOnly) {
      throw new Error(ovaReadOnly(filename));
    }
    const archive = await FileNode.open(archiveName!, { readOnly: true, forceShare: opts.forceShare });
    try {
      return await (await import('./archive.js')).openOvaDisk(archive, Number(number));
    } catch (e) {
      await archive.close();
      throw e;
    }
  },
};
