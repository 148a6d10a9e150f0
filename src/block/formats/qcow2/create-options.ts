/**
 * qcow2's `-o` options for create (and amend), as `-o help` lists them. Apart from
 * create.ts so that the format table lists them without loading the code that
 * creates images.
 */
import type { CreateOptionSpec } from '../format.js';

/** In qemu-img 7.2's order: the "Formatting" line lists the options set in this order. */
export const QCOW2_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'encryption', type: 'bool', help: "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)" },
  { name: 'encrypt.format', type: 'str', help: "Encrypt the image, format choices: 'aes', 'luks'" },
  { name: 'encrypt.key-secret', type: 'str', help: 'ID of secret providing qcow AES key or LUKS passphrase' },
  { name: 'encrypt.cipher-alg', type: 'str', help: 'Name of encryption cipher algorithm' },
  { name: 'encrypt.cipher-mode', type: 'str', help: 'Name of encryption cipher mode' },
  { name: 'encrypt.ivgen-alg', type: 'str', help: 'Name of IV generator algorithm' },
  { name: 'encrypt.ivgen-hash-alg', type: 'str', help: 'Name of IV generator hash algorithm' },
  { name: 'encrypt.hash-alg', type: 'str', help: 'Name of encryption hash algorithm' },
  { name: 'encrypt.iter-time', type: 'num', help: 'Time to spend in PBKDF in milliseconds' },
  { name: 'cluster_size', type: 'size', help: 'qcow2 cluster size', default: '65536' },
  { name: 'extended_l2', type: 'bool', help: 'Extended L2 tables', default: 'off' },
  { name: 'preallocation', type: 'str', help: 'Preallocation mode (allowed values: off, metadata, falloc, full)' },
  { name: 'compression_type', type: 'str', help: 'Compression method used for image cluster compression', default: 'zlib' },
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'compat', type: 'str', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
  { name: 'backing_file', type: 'str', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'str', help: 'Image format of the base image' },
  { name: 'data_file', type: 'str', help: 'File name of an external data file' },
  { name: 'data_file_raw', type: 'bool', help: 'The external data file must stay valid as a raw image' },
  { name: 'lazy_refcounts', type: 'bool', help: 'Postpone refcount updates', default: 'off' },
  { name: 'refcount_bits', type: 'num', help: 'Width of a reference count entry in bits', default: '16' },
];
