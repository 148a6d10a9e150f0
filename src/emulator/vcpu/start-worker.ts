/**
 * The vCPU threads' way to start workers: the layer-neutral helpers of
 * src/util/worker.ts (a .js module as is, a .ts module through tsx's loader),
 * re-exported where the emulator's modules and tests import them.
 */
export { siblingModule, startModuleWorker } from '../../util/worker.js';
