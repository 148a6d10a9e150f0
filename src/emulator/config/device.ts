/**
 * `--device DRIVER,key=value,...` as QEMU's -device spells it, for the
 * devices tsemu run has:
 *
 *   virtio-blk,drive=ID[,serial=TEXT]     (also virtio-blk-device)
 *   virtio-rng                            (also virtio-rng-device)
 *   virtconsole,chardev=ID                a one-port virtio-console (QEMU puts
 *                                         virtconsole on a virtio-serial bus;
 *                                         tsemu's virtconsole is the whole device)
 *
 * parseDevice() checks the driver name and its properties; the caller looks
 * up the drive or chardev IDs.
 */
export type DeviceSpec =
  | { driver: 'virtio-blk'; drive: string; serial?: string }
  | { driver: 'virtio-rng' }
  | { driver: 'virtconsole'; chardev: string };

const DRIVERS: Record<string, { driver: DeviceSpec['driver']; keys: readonly string[]; required: readonly string[] }> = {
  'virtio-blk': { driver: 'virtio-blk', keys: ['drive', 'serial'], required: ['drive'] },
  'virtio-blk-device': { driver: 'virtio-blk', keys: ['drive', 'serial'], required: ['drive'] },
  'virtio-rng': { driver: 'virtio-rng', keys: [], required: [] },
  'virtio-rng-device': { driver: 'virtio-rng', keys: [], required: [] },
  virtconsole: { driver: 'virtconsole', keys: ['chardev'], required: ['chardev'] },
};

export function parseDevice(text: string): DeviceSpec {
  const [name = '', ...rest] = text.split(',');
  const kind = DRIVERS[name];
  if (!kind) throw new Error(`--device ${text}: '${name}' is not a device tsemu has (${Object.keys(DRIVERS).join(', ')})`);
  const props = new Map<string, string>();
  for (const item of rest) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (!kind.keys.includes(key)) throw new Error(`--device ${text}: ${name} has no property '${key}'`);
    props.set(key, eq < 0 ? 'on' : item.slice(eq + 1));
  }
  for (const key of kind.required) if (!props.get(key)) throw new Error(`--device ${text}: ${name} needs ${key}=`);
  switch (kind.driver) {
    case 'virtio-blk':
      return { driver: 'virtio-blk', drive: props.get('drive')!, serial: props.get('serial') };
    case 'virtio-rng':
      return { driver: 'virtio-rng' };
    case 'virtconsole':
      return { driver: 'virtconsole', chardev: props.get('chardev')! };
  }
}
