/**
 * GNU-style getopt for qemu-io's command arguments: options may come before or after
 * the operands ("read 0 -5" is option -5), "--" ends the options, option letters may
 * be grouped ("-qv"), and an option that takes a value ("P:") takes the rest of its
 * group or the next argument. Errors are worded like glibc's, for the caller to print
 * before the command's usage line.
 */

export interface ParsedArgs {
  /** Options in the order given: letter and value (empty string for flags). */
  options: Array<[string, string]>;
  operands: string[];
}

export class GetoptError extends Error {}

export function getopt(command: string, args: readonly string[], spec: string): ParsedArgs {
  const takesValue = (c: string): boolean | undefined => {
    const i = spec.indexOf(c);
    return i < 0 || c === ':' ? undefined : spec[i + 1] === ':';
  };
  const options: Array<[string, string]> = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg.length === 1) {
      operands.push(arg);
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j]!;
      const wants = takesValue(c);
      if (wants === undefined) throw new GetoptError(`${command}: invalid option -- '${c}'`);
      if (!wants) {
        options.push([c, '']);
        continue;
      }
      let value = arg.slice(j + 1);
      if (value === '') {
        if (i + 1 >= args.length) throw new GetoptError(`${command}: option requires an argument -- '${c}'`);
        value = args[++i]!;
      }
      options.push([c, value]);
      break;
    }
  }
  return { options, operands };
}
