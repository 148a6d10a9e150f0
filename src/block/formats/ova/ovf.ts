/**
 * The OVF descriptor (DMTF DSP0243 1.0): reading the disks an envelope lists and
 * writing the envelope of a one-disk appliance.
 *
 * Reading: Envelope/References/File gives each file id its href (and size);
 * DiskSection/Disk gives each disk its fileRef, ovf:capacity (in bytes, or in
 * the units ovf:capacityAllocationUnits names, "byte * 2^N") and ovf:format.
 * Disks are numbered from 1 in DiskSection order. A disk whose fileRef names no
 * File is an error; a disk without fileRef is a blank disk (no content to read).
 *
 * Writing: References with the disk file and its size, DiskSection with the
 * capacity and the streamOptimized VMDK format URI, NetworkSection with one
 * network, and a VirtualSystem with OperatingSystemSection and a
 * VirtualHardwareSection (one CPU, memory, the disk controller matching the
 * VMDK's adapter type, the disk on it, one E1000 NIC). CIM elements are written
 * in the schema's (alphabetical) order, which strict importers such as ESXi's
 * check.
 */
import { ImageFormatError } from '../../node.js';
import { childrenNamed, parseXml, xmlEscape, type XmlElement } from './xml.js';

export const STREAM_OPTIMIZED_FORMAT = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

export interface OvfDisk {
  /** Position in DiskSection, from 1. */
  index: number;
  diskId: string;
  /** The archive member that holds the disk; null for a blank disk. */
  href: string | null;
  capacity: number;
  format: string;
  /** The File's ovf:compression ("gzip"), or null for a file stored as it is. */
  compression: string | null;
}

function capacityBytes(disk: XmlElement, id: string): number {
  const text = (disk.attrs.get('capacity') ?? '').trim();
  const units = (disk.attrs.get('capacityAllocationUnits') ?? 'byte').replace(/\s+/g, '');
  const m = /^byte(?:\*2\^(\d+))?$/.exec(units);
  if (!/^\d+$/.test(text) || !m) {
    throw new ImageFormatError(`OVF disk '${id}': capacity '${text}' in units '${units}' is not a size`);
  }
  const bytes = Number(text) * 2 ** Number(m[1] ?? 0);
  if (!Number.isSafeInteger(bytes)) throw new ImageFormatError(`OVF disk '${id}': capacity is out of range`);
  return bytes;
}

/** The disks an OVF descriptor lists, in DiskSection order. */
export function parseOvfDisks(text: string): OvfDisk[] {
  const root = parseXml(text, 'the OVF descriptor');
  if (root.name !== 'Envelope') throw new ImageFormatError(`the OVF descriptor's root element is <${root.name}>, not <Envelope>`);
  const files = new Map<string, { href: string; compression: string | null }>();
  for (const refs of childrenNamed(root, 'References')) {
    for (const f of childrenNamed(refs, 'File')) {
      const id = f.attrs.get('id');
      const href = f.attrs.get('href');
      if (!id || !href) throw new ImageFormatError('OVF References: a File without ovf:id or ovf:href');
      const compression = f.attrs.get('compression') ?? 'identity';
      files.set(id, { href, compression: compression === 'identity' ? null : compression });
    }
  }
  const disks: OvfDisk[] = [];
  for (const section of root.children.filter((c) => c.name === 'DiskSection')) {
    for (const d of childrenNamed(section, 'Disk')) {
      const diskId = d.attrs.get('diskId') ?? `#${disks.length + 1}`;
      const fileRef = d.attrs.get('fileRef');
      const file = fileRef === undefined ? null : files.get(fileRef);
      if (file === undefined) throw new ImageFormatError(`OVF disk '${diskId}' refers to file '${fileRef}', which References does not list`);
      disks.push({
        index: disks.length + 1,
        diskId,
        href: file?.href ?? null,
        capacity: capacityBytes(d, diskId),
        format: d.attrs.get('format') ?? '',
        compression: file?.compression ?? null,
      });
    }
  }
  return disks;
}

export interface NewOvf {
  /** The virtual system's name (ovf:id and VirtualSystemIdentifier). */
  name: string;
  diskFile: string;
  diskFileSize: number;
  capacity: number;
  /** The VMDK's adapter type: ide, lsilogic, buslogic or legacyESX. */
  adapterType: string;
  /** VMware virtual hardware version for VirtualSystemType (vmx-NN). */
  hwVersion: number;
}

function rasdItem(fields: [string, string | number][]): string {
  const lines = fields.map(([k, v]) => `        <rasd:${k}>${xmlEscape(String(v))}</rasd:${k}>\n`);
  return `      <Item>\n${lines.join('')}      </Item>\n`;
}

function controllerItem(adapterType: string): [string, string | number][] {
  if (adapterType === 'ide') {
    return [['Address', 0], ['Description', 'IDE Controller'], ['ElementName', 'ideController0'], ['InstanceID', 3], ['ResourceType', 5]];
  }
  const subtype = adapterType === 'lsilogic' ? 'lsilogic' : 'buslogic';
  return [
    ['Address', 0], ['Description', 'SCSI Controller'], ['ElementName', 'scsiController0'], ['InstanceID', 3],
    ['ResourceSubType', subtype], ['ResourceType', 6],
  ];
}

/** The OVF 1.0 envelope of a one-disk appliance. */
export function buildOvf(n: NewOvf): string {
  const name = xmlEscape(n.name);
  const network = 'VM Network';
  const items =
    rasdItem([
      ['AllocationUnits', 'hertz * 10^6'], ['Description', 'Number of Virtual CPUs'], ['ElementName', '1 virtual CPU(s)'],
      ['InstanceID', 1], ['ResourceType', 3], ['VirtualQuantity', 1],
    ]) +
    rasdItem([
      ['AllocationUnits', 'byte * 2^20'], ['Description', 'Memory Size'], ['ElementName', '1024MB of memory'],
      ['InstanceID', 2], ['ResourceType', 4], ['VirtualQuantity', 1024],
    ]) +
    rasdItem(controllerItem(n.adapterType)) +
    rasdItem([
      ['AddressOnParent', 0], ['ElementName', 'disk0'], ['HostResource', 'ovf:/disk/vmdisk1'], ['InstanceID', 4],
      ['Parent', 3], ['ResourceType', 17],
    ]) +
    rasdItem([
      ['AddressOnParent', 7], ['AutomaticAllocation', 'true'], ['Connection', network],
      ['Description', `E1000 ethernet adapter on "${network}"`], ['ElementName', 'ethernet0'], ['InstanceID', 5],
      ['ResourceSubType', 'E1000'], ['ResourceType', 10],
    ]);
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"' +
    ' xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"' +
    ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"' +
    ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"' +
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n' +
    '  <References>\n' +
    `    <File ovf:href="${xmlEscape(n.diskFile)}" ovf:id="file1" ovf:size="${n.diskFileSize}"/>\n` +
    '  </References>\n' +
    '  <DiskSection>\n' +
    '    <Info>Virtual disk information</Info>\n' +
    `    <Disk ovf:capacity="${n.capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="${STREAM_OPTIMIZED_FORMAT}"/>\n` +
    '  </DiskSection>\n' +
    '  <NetworkSection>\n' +
    '    <Info>The list of logical networks</Info>\n' +
    `    <Network ovf:name="${network}">\n` +
    `      <Description>The ${network} network</Description>\n` +
    '    </Network>\n' +
    '  </NetworkSection>\n' +
    `  <VirtualSystem ovf:id="${name}">\n` +
    '    <Info>A virtual machine</Info>\n' +
    `    <Name>${name}</Name>\n` +
    '    <OperatingSystemSection ovf:id="1">\n' +
    '      <Info>The kind of installed guest operating system</Info>\n' +
    '      <Description>Other</Description>\n' +
    '    </OperatingSystemSection>\n' +
    '    <VirtualHardwareSection>\n' +
    '      <Info>Virtual hardware requirements</Info>\n' +
    '      <System>\n' +
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n' +
    '        <vssd:InstanceID>0</vssd:InstanceID>\n' +
    `        <vssd:VirtualSystemIdentifier>${name}</vssd:VirtualSystemIdentifier>\n` +
    `        <vssd:VirtualSystemType>vmx-${String(n.hwVersion).padStart(2, '0')}</vssd:VirtualSystemType>\n` +
    '      </System>\n' +
    items +
    '    </VirtualHardwareSection>\n' +
    '  </VirtualSystem>\n' +
    '</Envelope>\n'
  );
}
