/**
 * virtio-net on the fake virtio driver (test/virtio/fake-driver.ts) and a
 * recording frame backend: the configuration space, transmit and its moderated
 * completions, receive with and without mergeable buffers, drops when the driver gave no buffer, guest
 * faults, checksum and segmentation offloads on a backend that has them; and
 * the command-line parsing of --netdev, --device and --net.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FrameBackend, FrameHandler } from '../../src/net/backend.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { NET_F_CSUM, NET_F_GUEST_TSO4, NET_F_MRG_RXBUF, TX_COMPLETION_DELAY_MS, VirtioNet } from '../../src/emulator/devices/virtio-net.js';
import { finish, sum } from '../../src/net/user/checksum.js';
import { encodeVnetHeader, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_GSO_TCPV4 } from '../../src/net/vnet-hdr.js';
import { isNetDevice, parseMac, parseNetDevice, parseNetShorthand, setUpNetDevices } from '../../src/emulator/config/netdev.js';
import { STATUS } from '../../src/emulator/virtio/spec.js';
import { TestDriver } from '../virtio/fake-driver.js';

class RecordingBackend implements FrameBackend {
  readonly name = 'recording';
  readonly sent: Uint8Array[] = [];
  readonly headers: (Uint8Array | undefined)[] = [];
  handler: FrameHandler = () => {};
  send(frame: Uint8Array, vnetHdr?: Uint8Array): void {
    this.sent.push(frame);
    this.headers.push(vnetHdr);
  }
  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }
  async close(): Promise<void> {}
}

const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const frameOf = (length: number, seed = 1): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * seed + 7) & 0xff);

function card(opts: { drop?: bigint; offloads?: (on: boolean) => void } = {}): { driver: TestDriver; backend: RecordingBackend; net: VirtioNet } {
  const backend = new RecordingBackend();
  const net = new VirtioNet({ backend, mac: MAC, offloads: opts.offloads });
  const driver = new TestDriver(net);
  driver.init({ drop: opts.drop, size: 8 });
  return { driver, backend, net };
}

test('the configuration space holds the MAC and a link that is up', () => {
  const { driver } = card();
  const config = Array.from({ length: 8 }, (_, i) => driver.mmio.read(0x100 + i, 1));
  assert.deepEqual(config, [...MAC, 1, 0]);
  assert.equal(driver.reg(0x008), 1);
});

test('transmit: the frame after the 12-byte header goes to the backend at once, copied out of guest RAM; its completion within TX_COMPLETION_DELAY_MS', async () => {
  const { driver, backend, net } = card();
  const frame = frameOf(60);
  driver.add(1, [{ read: new Uint8Array(12) }, { read: frame }]);
  driver.kick(1);
  await driver.settle();
  assert.deepEqual(backend.sent, [frame]);
  assert.equal(net.stats.txFrames, 1);
  assert.equal(driver.takeUsed(1).length, 0, 'the completion is held');
  await sleep(TX_COMPLETION_DELAY_MS + 20);
  assert.equal(driver.takeUsed(1).length, 1);
  assert.equal(driver.irq, true);
  driver.ram.bytes.fill(0);
  assert.deepEqual(backend.sent[0], frame);
});

test('transmit completions: a received frame carries the held ones (one interrupt), a quarter of the queue held goes at once, a reset drops them', async () => {
  const { driver, backend } = card();
  driver.add(1, [{ read: new Uint8Array(12) }, { read: frameOf(60) }]);
  driver.kick(1);
  await driver.settle();
  assert.equal(driver.irq, false);
  driver.add(0, [{ write: 1526 }]);
  driver.kick(0);
  backend.handler(frameOf(80));
  await driver.settle();
  assert.equal(driver.takeUsed(1).length, 1, 'completed with the received frame');
  assert.equal(driver.takeUsed(0).length, 1);
  assert.equal(driver.ack(), 1, 'one used-buffer interrupt for both');
  // Queue size 8: two held chains are a quarter of it.
  for (let i = 0; i < 2; i++) driver.add(1, [{ read: new Uint8Array(12) }, { read: frameOf(60) }]);
  driver.kick(1);
  await driver.settle();
  assert.equal(driver.takeUsed(1).length, 2);
  driver.add(1, [{ read: new Uint8Array(12) }, { read: frameOf(60) }]);
  driver.kick(1);
  driver.set(0x070, 0);
  await sleep(TX_COMPLETION_DELAY_MS + 20);
  assert.equal(driver.takeUsed(1).length, 0, 'a reset dropped the held chain');
  assert.equal(backend.sent.length, 4);
});

test('receive: one buffer per frame with num_buffers 1; no buffer means the frame is dropped, not queued', async () => {
  const { driver, backend, net } = card({ drop: 1n << BigInt(NET_F_MRG_RXBUF) });
  const frame = frameOf(100, 3);
  backend.handler(frame);
  assert.equal(net.stats.rxDropped, 1);
  driver.add(0, [{ write: 1526 }]);
  driver.kick(0);
  backend.handler(frame);
  await driver.settle();
  const [used] = driver.takeUsed(0);
  assert.equal(used!.len, 112);
  assert.equal(used!.data[10], 1);
  assert.deepEqual(used!.data.subarray(12), frame);
  assert.equal(driver.irq, true);
  backend.handler(frame);
  assert.deepEqual(net.stats, { txFrames: 0, rxFrames: 1, rxDropped: 2, txDropped: 0 });
});

test('receive with MRG_RXBUF: a frame larger than one buffer spans several', async () => {
  const { driver, backend, net } = card();
  for (let i = 0; i < 3; i++) driver.add(0, [{ write: 512 }]);
  driver.kick(0);
  const frame = frameOf(1000, 5);
  backend.handler(frame);
  await driver.settle();
  const used = driver.takeUsed(0);
  assert.deepEqual(used.map((u) => u.len), [512, 500]);
  assert.equal(used[0]!.data[10], 2);
  const joined = new Uint8Array([...used[0]!.data.subarray(12), ...used[1]!.data]);
  assert.deepEqual(joined, frame);
  backend.handler(frameOf(600));
  assert.equal(net.stats.rxDropped, 1, 'one 512-byte buffer left cannot hold 612 bytes');
});

test('guest faults: a transmit chain shorter than the header puts the device in needs-reset', async () => {
  const { driver, backend } = card();
  driver.add(1, [{ read: new Uint8Array(8) }]);
  driver.kick(1);
  await driver.settle();
  assert.ok(driver.reg(0x070) & STATUS.DEVICE_NEEDS_RESET);
  assert.match(driver.lines[0]!, /virtio-net .*shorter than the 12-byte header; the device needs a reset/);
  assert.equal(backend.sent.length, 0);
});

test('a reset forgets the receive buffers', async () => {
  const { driver, backend, net } = card();
  driver.add(0, [{ write: 1526 }]);
  driver.kick(0);
  driver.set(0x070, 0);
  backend.handler(frameOf(60));
  assert.equal(net.stats.rxDropped, 1);
});

/** A 12-byte driver header: a partial checksum over a frame from `start`, its field at start + 16 (TCP). */
const partialHeader = (start: number, gso = false): Uint8Array => {
  const header = new Uint8Array(12);
  header.set(encodeVnetHeader({
    flags: VNET_HDR_F_NEEDS_CSUM, csumStart: start, csumOffset: 16,
    ...(gso ? { gsoType: VNET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: start + 20 } : {}),
  }));
  return header;
};

test('offloads: offered only on a backend that has them, on at DRIVER_OK when the driver takes them all (else off), off at reset', async () => {
  const bit = (n: number): bigint => 1n << BigInt(n);
  assert.equal(card().net.features & bit(NET_F_CSUM), 0n, 'no offloads on a plain backend');
  const calls: boolean[] = [];
  const { driver, net } = card({ offloads: (on) => calls.push(on) });
  assert.equal(net.features & bit(NET_F_GUEST_TSO4), bit(NET_F_GUEST_TSO4));
  assert.deepEqual(calls, [true]);
  driver.set(0x070, 0);
  assert.deepEqual(calls, [true, false]);
  const partial: boolean[] = [];
  card({ offloads: (on) => partial.push(on), drop: bit(NET_F_GUEST_TSO4) });
  assert.deepEqual(partial, [false], 'a driver without GUEST_TSO4 leaves the backend\'s offloads off');
});

test('offloads on: the driver\'s header goes with its frame, and the backend\'s header reaches the driver with num_buffers', async () => {
  const { driver, backend } = card({ offloads: () => {} });
  const big = frameOf(3000, 7);
  const header = partialHeader(34, true);
  driver.add(1, [{ read: header }, { read: big }]);
  driver.kick(1);
  await driver.settle();
  assert.deepEqual(backend.sent, [big]);
  assert.deepEqual(backend.headers[0], header.subarray(0, 10));
  for (let i = 0; i < 3; i++) driver.add(0, [{ write: 1526 }]);
  driver.kick(0);
  const gsoHeader = encodeVnetHeader({ flags: VNET_HDR_F_NEEDS_CSUM, gsoType: VNET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 });
  backend.handler(big, gsoHeader);
  await driver.settle();
  const used = driver.takeUsed(0);
  assert.deepEqual(used.map((u) => u.len), [1526, 1486]);
  assert.deepEqual(used[0]!.data.subarray(0, 10), gsoHeader);
  assert.equal(used[0]!.data[10], 2);
});

test('offloads off: a partial checksum is completed before the frame leaves; a GSO frame is dropped', async () => {
  const { driver, backend, net } = card();
  const frame = frameOf(200, 11);
  const start = 34;
  frame[start + 16] = 0x12; // the pseudo-header sum the driver left in the field
  frame[start + 17] = 0x34;
  driver.add(1, [{ read: partialHeader(start) }, { read: frame }]);
  driver.add(1, [{ read: partialHeader(start, true) }, { read: frame }]);
  driver.kick(1);
  await driver.settle();
  assert.equal(backend.sent.length, 1);
  assert.equal(backend.headers[0], undefined);
  assert.equal(finish(sum(backend.sent[0]!, start, frame.length - start, 0x1234)), 0, 'the sum with the pseudo-header verifies');
  assert.deepEqual(net.stats, { txFrames: 1, rxFrames: 0, rxDropped: 0, txDropped: 1 });
  assert.equal(driver.takeUsed(1).length, 2);
});

test('command line: --device, --net and mac= parsing', () => {
  assert.equal(isNetDevice('virtio-net-device,netdev=n0'), true);
  assert.equal(isNetDevice('virtio-blk,drive=d0'), false);
  assert.deepEqual(parseNetDevice('virtio-net,netdev=n0,mac=52:54:00:aa:bb:cc'), {
    netdev: 'n0', mac: Uint8Array.of(0x52, 0x54, 0, 0xaa, 0xbb, 0xcc),
  });
  assert.throws(() => parseNetDevice('virtio-net,mac=52:54:00:aa:bb:cc'), /needs netdev=ID/);
  assert.throws(() => parseNetDevice('virtio-net,netdev=n0,speed=10'), /no property 'speed'/);
  assert.throws(() => parseMac('01:00:5e:00:00:01'), /multicast/);
  assert.throws(() => parseMac('52:54:00:12:34'), /six hex bytes/);
  const net = parseNetShorthand('user,hostfwd=tcp::2222-:22,model=virtio,mac=52:54:00:00:00:09')!;
  assert.equal(net.backend.type, 'user');
  assert.equal(net.mac![5], 9);
  assert.equal(parseNetShorthand('none'), null);
  assert.throws(() => parseNetShorthand('user,model=e1000'), /model=e1000/);
  assert.throws(() => parseNetShorthand('nic,model=virtio'), /give the backend itself/);
});

test('set-up: default MACs count up, a netdev serves one card, unknown ids are named', async () => {
  const lines: string[] = [];
  const setup = await setUpNetDevices({
    netdevs: ['user,id=a,restrict=on', 'user,id=b,restrict=on'],
    devices: ['virtio-net,netdev=a'],
    nets: ['user,restrict=on'],
    log: (line) => lines.push(line),
  });
  try {
    assert.equal(setup.devices.length, 2);
    const macs = setup.devices.map((make) => Array.from(make().config().subarray(0, 6)));
    assert.deepEqual(macs.map((m) => m[5]), [0x56, 0x57]);
    assert.match(lines.join('\n'), /netdev b has no card/);
  } finally {
    await setup.close();
  }
  await assert.rejects(setUpNetDevices({ netdevs: ['user,id=a'], devices: ['virtio-net,netdev=x'], nets: [] }), /no --netdev with id 'x'/);
  await assert.rejects(
    setUpNetDevices({ netdevs: ['user,id=a'], devices: ['virtio-net,netdev=a', 'virtio-net,netdev=a'], nets: [] }),
    /already in use/,
  );
  await assert.rejects(setUpNetDevices({ netdevs: ['user'], devices: [], nets: [] }), /give it an id=ID/);
});
