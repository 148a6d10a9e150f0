/**
 * Build step: writes oclif.manifest.json in the CLI's oclif root (dist/bundle, whose
 * package.json bundle.js writes), so that at start-up
 * oclif reads every command's id, flags, arguments and help texts from one JSON
 * file instead of importing every command module. The command table holds lazy
 * stand-ins (src/commands/index.ts); this module has oclif's own Plugin build the
 * manifest from the real command classes (LazyCommand.load), exactly as oclif
 * would build it at run time from eager classes. Any command that fails to load
 * fails the build. The file is written through a temporary name and renamed.
 */
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Plugin } from '@oclif/core';

/** oclif's plugin, except that each command it finds is replaced by the real class. */
class RealCommandsPlugin extends Plugin {
  async findCommand(id, opts) {
    const standIn = await super.findCommand(id, opts);
    if (standIn === undefined) return undefined;
    const real = await standIn.load();
    real.id = id;
    real.plugin = this;
    return real;
  }
}

/** Writes `<root>/oclif.manifest.json` for the oclif root `root`; returns how many commands it lists. */
export async function writeOclifManifest(root) {
  const plugin = new RealCommandsPlugin({ root, isRoot: true, ignoreManifest: true, errorOnManifestCreate: true });
  await plugin.load();
  const file = path.join(root, 'oclif.manifest.json');
  const temp = `${file}.${process.pid}.tmp`;
  // Without indentation: every command start-up reads and parses it (a third fewer bytes).
  await writeFile(temp, `${JSON.stringify(plugin.manifest)}\n`);
  await rename(temp, file);
  return Object.keys(plugin.manifest.commands).length;
}
