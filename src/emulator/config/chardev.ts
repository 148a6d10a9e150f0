/**
 * `--chardev BACKEND,id=ID,...` as QEMU's -chardev spells it, turned into the
 * -serial spelling chardev/create.ts opens:
 *
 *   file,id=ID,path=PATH                       → file:PATH
 *   socket,id=ID,host=H,port=P[,server=on][,wait=off]  → tcp:H:P[,server][,wait=off]
 *   stdio,id=ID                                → stdio
 *   null,id=ID                                 → null
 */
import { parseOptionString } from '../../block/options.js';

export interface ChardevSpec {
  id: string;
  /** The same backend in -serial's spelling. */
  serial: string;
}

const KEYS: Record<string, readonly string[]> = {
  file: ['id', 'path'],
  socket: ['id', 'host', 'port', 'server', 'wait'],
  stdio: ['id'],
  null: ['id'],
};

export function parseChardev(text: string): ChardevSpec {
  const options = parseOptionString(text);
  const [backend = ''] = options.keys();
  const keys = KEYS[backend];
  const fail = (why: string) => new Error(`--chardev ${text}: ${why}`);
  if (!keys || options.get(backend) !== 'on') throw fail(`'${backend}' is not a backend tsemu has (${Object.keys(KEYS).join(', ')})`);
  options.delete(backend);
  for (const key of options.keys()) if (!keys.includes(key)) throw fail(`${backend} has no option '${key}'`);
  const id = options.get('id');
  if (!id) throw fail('id= is missing');
  switch (backend) {
    case 'file': {
      const file = options.get('path');
      if (!file) throw fail('path= is missing');
      return { id, serial: `file:${file}` };
    }
    case 'socket': {
      const port = options.get('port');
      if (!port) throw fail('port= is missing');
      const server = options.get('server') ?? 'off';
      const extra = [server === 'off' ? '' : `,server=${server}`, options.has('wait') ? `,wait=${options.get('wait')}` : ''].join('');
      return { id, serial: `tcp:${options.get('host') ?? ''}:${port}${extra}` };
    }
    default:
      return { id, serial: backend };
  }
}
