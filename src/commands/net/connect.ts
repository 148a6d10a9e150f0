import { Args } from '@oclif/core';
import { TsemuCommand, UserError } from '../base.js';
import { connectBackends } from '../../net/create.js';

/** `tsemu net connect SPEC SPEC...`: joins network backends on a hub until SIGINT or SIGTERM. */
export default class NetConnect extends TsemuCommand {
  static override summary = 'Join network backends on one segment until interrupted';
  static override description =
    'Each SPEC is a backend spelled as QEMU\'s -netdev: user[,net=…][,ipv6-net=…][,hostfwd=…][,restrict=on]… ' +
    '(the NAT router a QEMU guest sees, IPv4 and IPv6; IPv6 forwards as hostfwd=tcp:[::1]:2222-[fec0::15]:22), ' +
    'tap[,ifname=NAME][,script=no][,downscript=no][,vnet_hdr=on|off], bridge,br=BRIDGE, ' +
    'socket,listen=|connect=HOST:PORT, ' +
    'socket,udp=HOST:PORT,localaddr=HOST:PORT, socket,mcast=GROUP:PORT[,localaddr=ADDR], stream,… or dgram,… ' +
    '(QEMU\'s wire formats). Frames one backend puts out ' +
    'go to every other. For example `tsemu net connect user,hostfwd=tcp:127.0.0.1:8080-:80 tap,ifname=tsemu0` ' +
    'gives the network namespace holding tsemu0 NAT networking. Runs until SIGINT or SIGTERM.';
  static override strict = false;
  static override flags = {};
  static override usage = 'net connect SPEC SPEC...';
  static override args = {
    spec: Args.string({ description: 'a backend specification (repeat for more)', required: true }),
  };

  async run(): Promise<void> {
    const { argv } = await this.parse(NetConnect);
    const specs = argv as string[];
    if (specs.length < 2) throw new UserError('net connect: give at least two backends to join');
    let hub;
    try {
      hub = await connectBackends(specs);
    } catch (err) {
      throw new UserError((err as Error).message);
    }
    const joined = hub;
    process.stderr.write(`tsemu: joined ${specs.join(' ')}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void joined.close().then(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  }
}
