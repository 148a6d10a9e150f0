/**
 * The ova pseudo-format: an OVA (a tar archive whose first member is an OVF
 * descriptor) opens as the first disk it holds, and `-O ova` / `-f ova` writes
 * one (writer.ts).
 *
 * Where OVA plugs in. An OVA is a container, not a disk format: its disks keep
 * their own formats. So the archive is probed like a format (a ustar header
 * whose member is a .ovf, or a tar named *.ova), and opening it opens disk 1 as
 * a read-only protocol node over the member's bytes (archive.ts, disk-node.ts)
 * and then that disk's own format on it, probed through the same format table
 * (passed in by formats/index.ts, which would otherwise be an import cycle).
 * What `img info` reports is then the disk's format (vmdk). Another disk is named
 * `NAME.ova#N` (protocol.ts, in the protocol table). OVA disks are read-only.
 * The archive reader and the writer load when first used.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { FormatDriver, ImageNode, OpenContext } from '../format.js';
import { OVA_CREATE_OPTIONS } from './create-options.js';
import { ovaReadOnly } from './disk-node.js';
import { looksLikeTar } from './tar.js';

const PROBE_BYTES = 4096;

/** The ova driver, opening disks through `probe` (the format table's prober). */
export function ovaFormat(probe: (header: Uint8Array, filename: string) => FormatDriver): FormatDriver {
  return {
    name: 'ova',
    probe: (head: Uint8Array, filename: string) => {
      if (!looksLikeTar(head)) return 0;
      const first = new TextDecoder().decode(head.subarray(0, 100)).replace(/\0.*$/s, '');
      return /\.ovf$/i.test(first) || /\.ova$/i.test(filename) ? 100 : 0;
    },
    async open(file: ProtocolNode, ctx: OpenContext): Promise<ImageNode> {
      if (!ctx.readOnly) {
        throw new Error(ovaReadOnly(file.filename));
      }
      // On failure the caller closes `file`; the disk node only owns it once the disk's format is open.
      const disk = await (await import('./archive.js')).openOvaDisk(file, 1);
      const header = new Uint8Array(Math.min(PROBE_BYTES, disk.size()));
      await disk.read(0, header);
      const driver = probe(header, disk.filename);
      if (driver.name === 'ova') throw new ImageFormatError(`${disk.filename}: an OVA inside an OVA is not supported`);
      return driver.open(disk, ctx);
    },
    create: async (req) => (await import('./writer.js')).createOva(req),
    createOptions: OVA_CREATE_OPTIONS,
  };
}
