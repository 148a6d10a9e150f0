/** The RISC-V ISA module's public surface: the instruction table, the decoded form, the decoders, the encoder and the disassembler. */
export * from './table.js';
export { Insn, decode } from './decode.js';
export { expandCompressed } from './compressed.js';
export { decodeBlock, MAX_BLOCK_INSNS, type DecodedBlock } from './block.js';
export { disassemble, X_NAMES, F_NAMES } from './disasm.js';
export { encode, type InsnFields } from './encode.js';
