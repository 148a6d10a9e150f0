/**
 * The minimal ACPI tables of the microvm machine (ACPI 6.x layouts):
 *
 *   RSDP (revision 2) → XSDT → FADT (revision 6) → DSDT
 *                           → MADT
 *
 * The FADT describes fixed-hardware PM1a event and control blocks in port
 * space (acpi-pm.ts serves them; SCI on IRQ 9, no SMI command port: the
 * machine is always in ACPI mode), flags "8042 present, no VGA". The DSDT
 * holds \_S5_ (SLP_TYP 5), so writing SLP_TYP 5 with SLP_EN to PM1a_CNT
 * powers off, and the PCI root bridge \_SB.PCI0 with its resources. The
 * MADT lists one enabled local APIC per CPU (APIC ID = CPU index), the
 * IOAPIC at 0xFEC00000 with GSI base 0, and one ISA override: the SCI
 * level-triggered, active high. IRQ 0 has no override:
 * KVM's default routing sends the PIT to IOAPIC pin 0, so ISA IRQ n is GSI n.
 *
 * Every table's checksum makes its bytes sum to 0; the RSDP has both the
 * 20-byte and the full checksum.
 */

export const ACPI_OEM_ID = 'TSEMU ';
const OEM_TABLE_ID = 'MICROVM ';
const CREATOR_ID = 'TSEM';
export const S5_SLP_TYP = 5;
export const LAPIC_BASE = 0xfee0_0000;
export const IOAPIC_BASE = 0xfec0_0000;
/** The PCI memory window the root bridge decodes: from 3.5 GiB up to the IOAPIC. */
export const PCI_MMIO_WINDOW = { base: 0xe000_0000, end: 0xfebf_ffff } as const;

export interface AcpiConfig {
  cpus: number;
  pm1aEventPort: number;
  pm1aControlPort: number;
  sciIrq: number;
}

export interface AcpiTables {
  /** The tables laid out for guest-physical `base`, RSDP first. */
  bytes: Uint8Array;
  rsdpAddr: number;
}

export function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

function ascii(v: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) v[at + i] = text.charCodeAt(i);
}

/** A table with its 36-byte standard header filled and checksummed. */
function table(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const t = new Uint8Array(36 + body.length);
  const v = new DataView(t.buffer);
  ascii(t, 0, signature);
  v.setUint32(4, t.length, true);
  t[8] = revision;
  ascii(t, 10, ACPI_OEM_ID);
  ascii(t, 16, OEM_TABLE_ID);
  v.setUint32(24, 1, true);
  ascii(t, 28, CREATOR_ID);
  v.setUint32(32, 1, true);
  t.set(body, 36);
  t[9] = checksum(t);
  return t;
}

function put64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 0x1_0000_0000, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** A Generic Address Structure for `bits` bits of system I/O space at `port`. */
function ioGas(v: DataView, at: number, port: number, bits: number): void {
  v.setUint8(at, 1); // system I/O
  v.setUint8(at + 1, bits);
  v.setUint8(at + 2, 0);
  v.setUint8(at + 3, bits === 32 ? 3 : 2); // dword or word access
  put64(v, at + 4, port);
}

function fadt(config: AcpiConfig, dsdtAddr: number): Uint8Array {
  const body = new Uint8Array(276 - 36);
  const v = new DataView(body.buffer);
  const at = (offset: number): number => offset - 36;
  v.setUint32(at(40), dsdtAddr, true);
  v.setUint16(at(46), config.sciIrq, true);
  v.setUint32(at(56), config.pm1aEventPort, true);
  v.setUint32(at(64), config.pm1aControlPort, true);
  v.setUint8(at(88), 4); // PM1_EVT_LEN
  v.setUint8(at(89), 2); // PM1_CNT_LEN
  v.setUint16(at(96), 101, true); // P_LVL2_LAT > 100: no C2
  v.setUint16(at(98), 1001, true); // P_LVL3_LAT > 1000: no C3
  v.setUint16(at(109), (1 << 1) | (1 << 2), true); // IAPC_BOOT_ARCH: 8042, no VGA
  v.setUint32(at(112), (1 << 0) | (1 << 4) | (1 << 5), true); // WBINVD, PWR_BUTTON and SLP_BUTTON are control methods (none)
  v.setUint8(at(131), 5); // FADT minor version
  put64(v, at(140), dsdtAddr);
  ioGas(v, at(148), config.pm1aEventPort, 32);
  ioGas(v, at(172), config.pm1aControlPort, 16);
  return table('FACP', 6, body);
}

const name4 = (text: string): number[] => text.split('').map((c) => c.charCodeAt(0));
const le16 = (value: number): number[] => [value & 0xff, (value >>> 8) & 0xff];

/** An AML PkgLength followed by `body` (1 byte up to 63 bytes in all, else 2 bytes: up to 4095). */
function pkg(body: number[]): number[] {
  const short = body.length + 1;
  if (short <= 0x3f) return [short, ...body];
  const long = body.length + 2;
  return [0x40 | (long & 0x0f), long >>> 4, ...body];
}

/**
 * The PCI root bridge's resources: bus 0, the 0xCF8-0xCFF configuration ports (consumed), the I/O
 * space around them and the memory window PCI_MMIO_WINDOW (produced, so Linux keeps BARs there).
 */
function pciRootResources(): number[] {
  const word = (type: number, typeFlags: number, min: number, max: number): number[] =>
    [0x88, 0x0d, 0x00, type, 0x0c, typeFlags, ...le16(0), ...le16(min), ...le16(max), ...le16(0), ...le16(max - min + 1)];
  const { base, end } = PCI_MMIO_WINDOW;
  return [
    ...word(2, 0, 0, 0), // WordBusNumber: bus 0
    0x47, 0x01, ...le16(0xcf8), ...le16(0xcf8), 0x01, 0x08, // IO (Decode16, 0xCF8, 0xCF8, 1, 8)
    ...word(1, 0x03, 0x0000, 0x0cf7), // WordIO windows, entire range
    ...word(1, 0x03, 0x0d00, 0xffff),
    0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, ...le32(0), ...le32(base), ...le32(end), ...le32(0), ...le32(end - base + 1), // DWordMemory, read-write
    0x79, 0x00, // end tag
  ];
}

/**
 * DSDT in AML: Name (_S5, Package () { 5, 5, 0, 0 }), and Scope (\_SB) { Device (PCI0) } the PCI root
 * bridge (_HID PNP0A03, _UID 0, _CRS pciRootResources()) through which Linux scans bus 0 over ports
 * 0xCF8/0xCFC: without it an ACPI kernel finds no PCI bus. No _PRT: Linux then takes each device's
 * interrupt line register (the IRQ the machine wired) as an ISA IRQ, level-triggered, active low.
 */
function dsdt(): Uint8Array {
  const s5 = [0x08, ...name4('_S5_'), 0x12, 0x08, 0x04, 0x0a, S5_SLP_TYP, 0x0a, S5_SLP_TYP, 0x00, 0x00];
  const crs = pciRootResources();
  const device = [
    0x5b, 0x82, ...pkg([
      ...name4('PCI0'),
      0x08, ...name4('_HID'), 0x0c, 0x41, 0xd0, 0x0a, 0x03, // EisaId ("PNP0A03")
      0x08, ...name4('_UID'), 0x00,
      0x08, ...name4('_CRS'), 0x11, ...pkg([0x0a, crs.length, ...crs]),
    ]),
  ];
  const scope = [0x10, ...pkg([0x5c, ...name4('_SB_'), ...device])];
  return table('DSDT', 2, Uint8Array.from([...s5, ...scope]));
}

function madt(config: AcpiConfig): Uint8Array {
  const entries: number[][] = [];
  for (let cpu = 0; cpu < config.cpus; cpu++) entries.push([0, 8, cpu, cpu, 1, 0, 0, 0]); // processor local APIC, enabled
  const io = [1, 12, 0, 0, ...le32(IOAPIC_BASE), ...le32(0)];
  entries.push(io);
  entries.push([2, 10, 0, config.sciIrq, ...le32(config.sciIrq), 0x0d, 0]); // SCI: active high, level
  const flat = entries.flat();
  const body = new Uint8Array(8 + flat.length);
  const v = new DataView(body.buffer);
  v.setUint32(0, LAPIC_BASE, true);
  v.setUint32(4, 1, true); // PCAT_COMPAT: the 8259s are present
  body.set(flat, 8);
  return table('APIC', 5, body);
}

function le32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24];
}

function rsdp(xsdtAddr: number): Uint8Array {
  const r = new Uint8Array(36);
  const v = new DataView(r.buffer);
  ascii(r, 0, 'RSD PTR ');
  ascii(r, 9, ACPI_OEM_ID);
  r[15] = 2;
  v.setUint32(20, 36, true);
  put64(v, 24, xsdtAddr);
  r[8] = checksum(r.subarray(0, 20));
  r[32] = checksum(r);
  return r;
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Builds the tables for guest-physical `base` (16-byte aligned, where the RSDP goes). */
export function buildAcpiTables(base: number, config: AcpiConfig): AcpiTables {
  if (base % 16 !== 0) throw new Error('ACPI tables: the RSDP must be 16-byte aligned');
  if (config.cpus < 1 || config.cpus > 255) throw new Error(`ACPI tables: ${config.cpus} CPUs (1 to 255)`);
  const dsdtAddr = base + 48;
  const dsdtTable = dsdt();
  const fadtAddr = dsdtAddr + align8(dsdtTable.length);
  const fadtTable = fadt(config, dsdtAddr);
  const madtAddr = fadtAddr + align8(fadtTable.length);
  const madtTable = madt(config);
  const xsdtAddr = madtAddr + align8(madtTable.length);
  const pointers = new Uint8Array(16);
  const pv = new DataView(pointers.buffer);
  put64(pv, 0, fadtAddr);
  put64(pv, 8, madtAddr);
  const xsdtTable = table('XSDT', 1, pointers);
  const bytes = new Uint8Array(xsdtAddr - base + xsdtTable.length);
  bytes.set(rsdp(xsdtAddr), 0);
  bytes.set(dsdtTable, dsdtAddr - base);
  bytes.set(fadtTable, fadtAddr - base);
  bytes.set(madtTable, madtAddr - base);
  bytes.set(xsdtTable, xsdtAddr - base);
  return { bytes, rsdpAddr: base };
}
