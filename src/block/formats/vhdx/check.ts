/**
 * `img check` for VHDX, as qemu-img 7.2 checks it: opening the image replays a
 * pending log when the check may repair (-r opens the file read-write; that
 * replay counts as one fixed corruption), and a read-only check of an image with
 * a log to replay fails with the message that says how to replay it (errors of
 * the open read "Could not open 'FILE': …", as qemu-img's do). Then every
 * stored payload block (FULLY or PARTIALLY_PRESENT) is checked: a start past the
 * end of the file (QEMU's "points after end of file" line), a place inside the
 * header area, log, BAT or metadata region, or a place another block also uses is
 * one corruption each. Nothing else is repaired, and VHDX has no leak count.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { CheckCounts } from '../qcow2/check.js';
import { readVhdx, storedBlockProblems } from './node.js';

export async function checkVhdx(file: ProtocolNode, opts: { log: (line: string) => void }): Promise<CheckCounts> {
  const counts: CheckCounts = {
    checkErrors: 0, corruptions: 0, leaks: 0, corruptionsFixed: 0, leaksFixed: 0,
    imageEndOffset: 0, totalClusters: 0, allocatedClusters: 0, fragmentedClusters: 0, compressedClusters: 0,
  };
  const parts = await readVhdx(file, file.readOnly).catch((e: Error) => {
    // qemu-img opens the image before checking it: an image it cannot open is reported so.
    throw e instanceof ImageFormatError ? new ImageFormatError(`Could not open '${file.filename}': ${e.message}`) : e;
  });
  if (parts.logReplayed) counts.corruptionsFixed++;
  for (const line of storedBlockProblems(parts, file.size())) {
    opts.log(line);
    counts.corruptions++;
  }
  return counts;
}
