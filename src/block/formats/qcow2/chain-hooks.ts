/**
 * The qcow2 answers to the chain operations' optional hooks (ChainHooks in
 * ops/chain.ts): rewriting the recorded backing file (rebase), emptying the
 * image (commit) and a read-only view of an internal snapshot (convert -l,
 * measure -l). The driver attaches them to every node it opens.
 */
import { setQcow2BackingFile } from './backing.js';
import { makeQcow2Empty } from './make-empty.js';
import type { Qcow2Node } from './node.js';
import { Qcow2SnapshotView } from './snapshot-view.js';

export function withChainHooks(node: Qcow2Node) {
  return Object.assign(node, {
    setBackingFile: (name: string | null, format: string | null) => setQcow2BackingFile(node, name, format),
    makeEmpty: () => makeQcow2Empty(node),
    openSnapshot: (which: { id?: string; name?: string }) => Qcow2SnapshotView.open(node, which),
  });
}
