/**
 * `img snapshot`: list, create, apply and delete internal snapshots, format
 * generically. The image file is opened read-only for -l (and with -U shared),
 * read-write otherwise; qcow2 is the one format with internal snapshots. Other
 * formats list nothing and refuse changes with qemu-img's messages. Errors name
 * the snapshot and the action: "Could not create snapshot 'x': …".
 */
import { openImageFile } from './check.js';
import {
  applyQcow2Snapshot,
  createQcow2Snapshot,
  deleteQcow2Snapshot,
  listQcow2Snapshots,
} from '../formats/qcow2/snapshots.js';
import type { SnapshotInfo } from '../formats/format.js';
import { formatSnapshotTable } from '../../cli/format-output.js';

export type SnapshotAction =
  | { kind: 'list' }
  | { kind: 'create'; name: string }
  | { kind: 'apply'; name: string }
  | { kind: 'delete'; name: string };

export interface SnapshotImageArgs {
  filename: string;
  format?: string;
  action: SnapshotAction;
  forceShare?: boolean;
}

const VERB = { create: 'create', apply: 'apply', delete: 'delete' } as const;

/** Runs the action; returns what -l prints ("" when there is nothing to list or nothing to print). */
export async function snapshotImage(a: SnapshotImageArgs): Promise<string> {
  const readOnly = a.action.kind === 'list';
  const { file, format } = await openImageFile(a.filename, { format: a.format, readOnly, forceShare: a.forceShare });
  try {
    const action = a.action;
    if (action.kind === 'list') {
      const list: SnapshotInfo[] = format === 'qcow2' ? await listQcow2Snapshots(file) : [];
      return list.length ? `Snapshot list:\n${formatSnapshotTable(list)}` : '';
    }
    const fail = (reason: string): never => {
      throw new Error(`Could not ${VERB[action.kind]} snapshot '${action.name}': ${reason}`);
    };
    if (format !== 'qcow2') {
      fail(action.kind === 'create' ? 'Operation not supported'
        : action.kind === 'apply' ? 'Block driver does not support snapshots' : 'snapshot not found');
    }
    try {
      if (action.kind === 'create') await createQcow2Snapshot(file, action.name);
      else if (action.kind === 'apply') await applyQcow2Snapshot(file, action.name);
      else await deleteQcow2Snapshot(file, action.name);
    } catch (e) {
      fail((e as Error).message);
    }
    return '';
  } finally {
    await file.close();
  }
}
