/**
 * The explicit command table oclif loads (package.json oclif.commands). Keys are
 * command ids; with the space topic separator "img:create" is `tsemu img create`.
 *
 * Entries are lazy: each names the module that holds the command class and is
 * imported only when that command runs, so start-up loads one command's code
 * instead of every command's. oclif takes the commands' flags, help texts and
 * topics from oclif.manifest.json, which scripts/oclif-manifest.js writes at
 * build time from the real classes (LazyCommand.load); without that manifest
 * oclif would list these stand-ins with no flags. Adding a command is one line.
 */
import type { Command, Config } from '@oclif/core';

/** A stand-in oclif accepts as a command class: its static run() loads the real one. */
export interface LazyCommand {
  /** Set by oclif when it finds the command (the id and the plugin that owns it). */
  id?: string;
  plugin?: Command.Class['plugin'];
  /** The real command class. */
  load(): Promise<Command.Class>;
  run(argv: string[], config: Config): Promise<unknown>;
}

/** A command instance as oclif runs it: parse, run, catch and finally (Command#_run, protected in oclif's types). */
type Runnable = new (argv: string[], config: Config) => { _run(): Promise<unknown> };

function lazy(importModule: () => Promise<{ default: Command.Class }>): LazyCommand {
  return {
    async load() {
      return (await importModule()).default;
    },
    async run(argv, config) {
      const real = await this.load();
      real.id = this.id!;
      real.plugin = this.plugin;
      // What the static Command.run does, except its Config.load(config): that builds a second
      // configuration from the one oclif has just loaded (about 3 ms of CPU per command).
      return new (real as unknown as Runnable)(argv, config)._run();
    },
  };
}

export const COMMANDS: Record<string, LazyCommand> = {
  'img:create': lazy(() => import('./img/create.js')),
  'img:convert': lazy(() => import('./img/convert.js')),
  'img:commit': lazy(() => import('./img/commit.js')),
  'img:rebase': lazy(() => import('./img/rebase.js')),
  'img:dd': lazy(() => import('./img/dd.js')),
  'img:bench': lazy(() => import('./img/bench.js')),
  'img:info': lazy(() => import('./img/info.js')),
  'img:measure': lazy(() => import('./img/measure.js')),
  'img:compare': lazy(() => import('./img/compare.js')),
  'img:resize': lazy(() => import('./img/resize.js')),
  'img:map': lazy(() => import('./img/map.js')),
  'img:check': lazy(() => import('./img/check.js')),
  'img:snapshot': lazy(() => import('./img/snapshot.js')),
  'img:amend': lazy(() => import('./img/amend.js')),
  io: lazy(() => import('./io.js')),
  'net:connect': lazy(() => import('./net/connect.js')),
  'nbd:serve': lazy(() => import('./nbd/serve.js')),
  run: lazy(() => import('./run.js')),
};
