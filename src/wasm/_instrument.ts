/**
 * Rewrites a WebAssembly module so the host can bound its memory and interrupt it.
 *
 * Deno 2.9's `Worker.terminate()` does not stop a worker that is busy in JS or Wasm (the thread
 * keeps running: denoland/deno#35657), so a runnable's time limit cannot rely on it. Instead the
 * module is changed, once at load time, as follows (WebAssembly Core Specification 2.0, §5
 * "Binary Format"; threads and multi-memory proposals):
 *
 * - Every memory it defines gets a maximum of at most `maxMemoryPages`, so `memory.grow` past the
 *   limit returns -1 instead of growing; a module that starts above the limit is refused.
 * - A one-page shared memory is appended and exported as {@linkcode INTERRUPT_EXPORT}. Word 0
 *   holds the id of the running job; the host sets it to {@linkcode INTERRUPTED} to stop the job.
 * - Every function body and every `loop` starts with a check of that word that traps
 *   (`unreachable`) when it reads {@linkcode INTERRUPTED}. Any code that runs for long either
 *   loops or recurses, so it meets a check soon. The check is stack-neutral:
 *   `i32.const 0; i32.atomic.load <mem>; i32.const -1; i32.eq; if; unreachable; end`.
 * - A start function is no longer run by instantiation: it is exported as
 *   {@linkcode START_EXPORT} and the host calls it once the interrupt memory is reachable.
 *
 * Every other byte is copied unchanged, and the result is validated again when compiled.
 *
 * @module
 */

/** Export name of the interrupt memory the instrumentation adds. */
export const INTERRUPT_EXPORT = "__stratos_interrupt";
/** Export name of the module's start function, which instantiation no longer runs. */
export const START_EXPORT = "__stratos_start";
/** Value of the interrupt word that makes the running code trap. */
export const INTERRUPTED = -1;
/** Pages (64 KiB each) a 32-bit memory can address. */
export const MAX_WASM32_PAGES = 65536;

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];
const WASM_VERSION = [0x01, 0x00, 0x00, 0x00];

// Section ids (§5.5.2) and the order in which known sections must appear.
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const SECTION_EXPORT = 7;
const SECTION_START = 8;
const SECTION_CODE = 10;
const SECTION_ORDER: ReadonlyMap<number, number> = new Map([
  [1, 1],
  [2, 2],
  [3, 3],
  [4, 4],
  [5, 5],
  [13, 6], // tag section (exception handling) sits between memory and global
  [6, 7],
  [7, 8],
  [8, 9],
  [9, 10],
  [12, 11],
  [10, 12],
  [11, 13],
]);

// Import and export kinds (§5.5.5, §5.5.10).
const KIND_FUNC = 0x00;
const KIND_TABLE = 0x01;
const KIND_MEMORY = 0x02;
const KIND_GLOBAL = 0x03;
const KIND_TAG = 0x04;

// Memory limits flags: bit 0 has-maximum, bit 1 shared, bit 2 memory64.
const LIMITS_HAS_MAX = 0x01;
const LIMITS_SHARED = 0x02;

const OP_LOOP = 0x03;

/** What {@linkcode instrument} needs to know. */
export interface InstrumentOptions {
  /** Largest memory, in 64 KiB pages, any memory of the module may grow to. */
  maxMemoryPages: number;
}

/** The rewritten module. */
export interface InstrumentedModule {
  /** The rewritten binary. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Whether the module had a start function, now exported as {@linkcode START_EXPORT}. */
  hasStart: boolean;
}

/**
 * Rewrites a module as described in this file's header.
 *
 * @param bytes a valid WebAssembly module (check with `WebAssembly.validate` first)
 * @param options the memory limit
 * @returns the rewritten module
 * @throws {RangeError} a memory starts above the limit, or is 64-bit
 * @throws {SyntaxError} the module uses an instruction or encoding this rewriter does not know
 *
 * @example
 * ```ts
 * const { bytes: safe } = instrument(bytes, { maxMemoryPages: 1024 });
 * const module = await WebAssembly.compile(safe);
 * ```
 */
export function instrument(bytes: Uint8Array, options: InstrumentOptions): InstrumentedModule {
  const { maxMemoryPages } = options;
  const reader = new Reader(bytes, 0);
  const header = reader.bytes(8);
  if (!WASM_MAGIC.every((b, i) => header[i] === b)) {
    throw new SyntaxError("not a WebAssembly module (no \\0asm header)");
  }
  if (!WASM_VERSION.every((b, i) => header[i + 4] === b)) {
    throw new SyntaxError("not a WebAssembly core module of version 1 (a component?)");
  }

  const sections: Section[] = [];
  while (!reader.done) {
    const id = reader.byte();
    const size = reader.u32();
    sections.push({ id, payload: reader.bytes(size) });
  }

  let importedMemories = 0;
  let definedMemories = 0;
  let startFunction: number | undefined;
  const out: Section[] = [];
  for (const section of sections) {
    switch (section.id) {
      case SECTION_IMPORT:
        importedMemories = countImportedMemories(section.payload);
        out.push(section);
        break;
      case SECTION_MEMORY: {
        const capped = capMemories(section.payload, maxMemoryPages);
        definedMemories = capped.count;
        out.push({ id: SECTION_MEMORY, payload: capped.payload });
        break;
      }
      case SECTION_START:
        startFunction = new Reader(section.payload, 0).u32();
        break;
      default:
        out.push(section);
    }
  }

  // The interrupt memory goes after every existing memory, so no memory index changes.
  const interruptMemory = importedMemories + definedMemories;
  const memorySection = out.find((s) => s.id === SECTION_MEMORY);
  const interruptLimits = [LIMITS_HAS_MAX | LIMITS_SHARED, 1, 1];
  if (memorySection) {
    memorySection.payload = appendToVector(memorySection.payload, interruptLimits);
  } else {
    insertSection(out, { id: SECTION_MEMORY, payload: vector([interruptLimits]) });
  }

  const newExports = [exportEntry(INTERRUPT_EXPORT, KIND_MEMORY, interruptMemory)];
  if (startFunction !== undefined) {
    newExports.push(exportEntry(START_EXPORT, KIND_FUNC, startFunction));
  }
  const exportSection = out.find((s) => s.id === SECTION_EXPORT);
  if (exportSection) {
    assertNoExportNamed(exportSection.payload, [INTERRUPT_EXPORT, START_EXPORT]);
    exportSection.payload = appendToVector(exportSection.payload, ...newExports);
  } else {
    insertSection(out, { id: SECTION_EXPORT, payload: vector(newExports) });
  }

  const check = interruptCheck(interruptMemory);
  for (const section of out) {
    if (section.id === SECTION_CODE) section.payload = instrumentCode(section.payload, check);
  }

  const chunks: ArrayLike<number>[] = [WASM_MAGIC, WASM_VERSION];
  for (const section of out) {
    chunks.push([section.id], leb128(section.payload.length), section.payload);
  }
  return { bytes: concat(chunks), hasStart: startFunction !== undefined };
}

interface Section {
  id: number;
  payload: Uint8Array;
}

/** The stack-neutral check inserted at each function entry and loop header. */
function interruptCheck(memoryIndex: number): Uint8Array {
  // i32.atomic.load's memarg: alignment 2 (4 bytes); bit 6 says a memory index follows
  // (multi-memory), needed whenever the index is not 0.
  const memarg = memoryIndex === 0 ? [0x02, 0x00] : [0x42, ...leb128(memoryIndex), 0x00];
  const i32Const = 0x41, atomicPrefix = 0xfe, i32AtomicLoad = 0x10, i32Eq = 0x46;
  const opIf = 0x04, emptyBlockType = 0x40, opUnreachable = 0x00, opEnd = 0x0b;
  return Uint8Array.from([
    i32Const,
    0x00,
    atomicPrefix,
    i32AtomicLoad,
    ...memarg,
    i32Const,
    ...signedLeb128(INTERRUPTED),
    i32Eq,
    opIf,
    emptyBlockType,
    opUnreachable,
    opEnd,
  ]);
}

function countImportedMemories(payload: Uint8Array): number {
  const r = new Reader(payload, 0);
  let memories = 0;
  for (let n = r.u32(); n > 0; n--) {
    r.bytes(r.u32()); // module name
    r.bytes(r.u32()); // field name
    const kind = r.byte();
    switch (kind) {
      case KIND_FUNC:
        r.u32();
        break;
      case KIND_TABLE:
        r.valType();
        r.limits();
        break;
      case KIND_MEMORY:
        r.limits();
        memories++;
        break;
      case KIND_GLOBAL:
        r.valType();
        r.byte();
        break;
      case KIND_TAG:
        r.byte();
        r.u32();
        break;
      default:
        throw new SyntaxError(`unknown import kind 0x${hex(kind)}`);
    }
  }
  return memories;
}

function capMemories(
  payload: Uint8Array,
  maxPages: number,
): { count: number; payload: Uint8Array } {
  const r = new Reader(payload, 0);
  const count = r.u32();
  const limits: number[][] = [];
  for (let i = 0; i < count; i++) {
    const flags = r.byte();
    if ((flags & ~(LIMITS_HAS_MAX | LIMITS_SHARED)) !== 0) {
      throw new RangeError(
        `memory ${i} uses limits flags 0x${hex(flags)} (64-bit or custom page size); ` +
          "only 32-bit memories with 64 KiB pages are supported",
      );
    }
    const initial = r.u32();
    const declaredMax = (flags & LIMITS_HAS_MAX) !== 0 ? r.u32() : undefined;
    if (initial > maxPages) {
      throw new RangeError(
        `memory ${i} starts at ${initial} pages (${mib(initial)} MiB), more than the limit of ` +
          `${maxPages} pages (${mib(maxPages)} MiB); raise maxMemoryPages or shrink the module`,
      );
    }
    const maximum = Math.min(declaredMax ?? maxPages, maxPages);
    limits.push([(flags & LIMITS_SHARED) | LIMITS_HAS_MAX, ...leb128(initial), ...leb128(maximum)]);
  }
  if (!r.done) throw new SyntaxError("trailing bytes in the memory section");
  return { count, payload: vector(limits) };
}

function assertNoExportNamed(payload: Uint8Array, names: string[]): void {
  const r = new Reader(payload, 0);
  const decoder = new TextDecoder();
  for (let n = r.u32(); n > 0; n--) {
    const name = decoder.decode(r.bytes(r.u32()));
    if (names.includes(name)) {
      throw new SyntaxError(`exports "${name}", a name the host reserves`);
    }
    r.byte();
    r.u32();
  }
}

function exportEntry(name: string, kind: number, index: number): number[] {
  const utf8 = new TextEncoder().encode(name);
  return [...leb128(utf8.length), ...utf8, kind, ...leb128(index)];
}

/** Rewrites the code section (§5.5.13): the check goes first in each body, after its locals. */
function instrumentCode(payload: Uint8Array, check: Uint8Array): Uint8Array {
  const r = new Reader(payload, 0);
  const count = r.u32();
  const chunks: ArrayLike<number>[] = [leb128(count)];
  for (let i = 0; i < count; i++) {
    const size = r.u32();
    const end = r.offset + size;
    const body = new Reader(payload, r.offset, end);
    for (let groups = body.u32(); groups > 0; groups--) {
      body.u32();
      body.valType();
    }
    const parts: ArrayLike<number>[] = [payload.subarray(r.offset, body.offset), check];
    let copied = body.offset;
    while (!body.done) {
      const opcode = skipInstruction(body);
      if (opcode === OP_LOOP) {
        parts.push(payload.subarray(copied, body.offset), check);
        copied = body.offset;
      }
    }
    parts.push(payload.subarray(copied, end));
    const newBody = concat(parts);
    chunks.push(leb128(newBody.length), newBody);
    r.offset = end;
  }
  if (!r.done) throw new SyntaxError("trailing bytes in the code section");
  return concat(chunks);
}

/**
 * Steps over one instruction and its immediates (§5.4; plus the sign-extension, non-trapping
 * conversion, bulk memory, reference types, SIMD, threads, exception handling, tail call and
 * multi-memory extensions) and returns its first opcode byte.
 */
function skipInstruction(r: Reader): number {
  const at = r.offset;
  const op = r.byte();
  if (op >= 0x45 && op <= 0xc4) return op; // numeric instructions: no immediates
  switch (op) {
    case 0x00: // unreachable
    case 0x01: // nop
    case 0x05: // else
    case 0x0a: // throw_ref
    case 0x0b: // end
    case 0x0f: // return
    case 0x19: // catch_all
    case 0x1a: // drop
    case 0x1b: // select
    case 0xd1: // ref.is_null
    case 0xd3: // ref.eq
    case 0xd4: // ref.as_non_null
      return op;
    case 0x02: // block
    case 0x03: // loop
    case 0x04: // if
    case 0x06: // try
      r.blockType();
      return op;
    case 0x07: // catch
    case 0x08: // throw
    case 0x09: // rethrow
    case 0x0c: // br
    case 0x0d: // br_if
    case 0x10: // call
    case 0x12: // return_call
    case 0x14: // call_ref
    case 0x15: // return_call_ref
    case 0x18: // delegate
    case 0x20: // local.get
    case 0x21: // local.set
    case 0x22: // local.tee
    case 0x23: // global.get
    case 0x24: // global.set
    case 0x25: // table.get
    case 0x26: // table.set
    case 0x3f: // memory.size
    case 0x40: // memory.grow
    case 0xd2: // ref.func
    case 0xd5: // br_on_null
    case 0xd6: // br_on_non_null
      r.u32();
      return op;
    case 0x0e: // br_table
      for (let n = r.u32(); n >= 0; n--) r.u32(); // the labels, then the default
      return op;
    case 0x11: // call_indirect
    case 0x13: // return_call_indirect
      r.u32();
      r.u32();
      return op;
    case 0x1c: // select with types
      for (let n = r.u32(); n > 0; n--) r.valType();
      return op;
    case 0x1f: // try_table
      r.blockType();
      for (let n = r.u32(); n > 0; n--) {
        const kind = r.byte();
        if (kind === 0x00 || kind === 0x01) r.u32(); // catch / catch_ref name a tag
        r.u32(); // label
      }
      return op;
    case 0x41: // i32.const
    case 0x42: // i64.const
      r.skipLeb();
      return op;
    case 0x43: // f32.const
      r.bytes(4);
      return op;
    case 0x44: // f64.const
      r.bytes(8);
      return op;
    case 0xd0: // ref.null
      r.heapType();
      return op;
    case 0xfc:
      skipMiscInstruction(r, at);
      return op;
    case 0xfd:
      skipSimdInstruction(r);
      return op;
    case 0xfe:
      skipAtomicInstruction(r, at);
      return op;
  }
  if (op >= 0x28 && op <= 0x3e) { // loads and stores
    r.memarg();
    return op;
  }
  throw new SyntaxError(
    `uses instruction 0x${hex(op)} (at byte ${at} of the code section), ` +
      "which the sandbox cannot instrument",
  );
}

function skipMiscInstruction(r: Reader, at: number): void {
  const sub = r.u32();
  if (sub <= 7) return; // trunc_sat conversions
  switch (sub) {
    case 8: // memory.init data memory
    case 10: // memory.copy dst src
    case 12: // table.init elem table
    case 14: // table.copy dst src
      r.u32();
      r.u32();
      return;
    case 9: // data.drop
    case 11: // memory.fill
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.u32();
      return;
  }
  throw new SyntaxError(
    `uses instruction 0xfc ${sub} (at byte ${at}), which the sandbox cannot instrument`,
  );
}

function skipSimdInstruction(r: Reader): void {
  const sub = r.u32();
  if (sub <= 0x0b || sub === 0x5c || sub === 0x5d) { // loads, store, load32/64_zero
    r.memarg();
  } else if (sub === 0x0c || sub === 0x0d) { // v128.const, i8x16.shuffle
    r.bytes(16);
  } else if (sub >= 0x15 && sub <= 0x22) { // extract_lane / replace_lane
    r.byte();
  } else if (sub >= 0x54 && sub <= 0x5b) { // load_lane / store_lane
    r.memarg();
    r.byte();
  }
  // Every other SIMD (and relaxed SIMD) instruction has no immediates.
}

function skipAtomicInstruction(r: Reader, at: number): void {
  const sub = r.u32();
  if (sub === 0x03) { // atomic.fence
    r.byte();
  } else if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) {
    r.memarg();
  } else {
    throw new SyntaxError(
      `uses instruction 0xfe ${sub} (at byte ${at}), which the sandbox cannot instrument`,
    );
  }
}

/** A cursor over a byte range with the LEB128 and type decoders of §5.2–§5.3. */
class Reader {
  readonly #bytes: Uint8Array;
  readonly #end: number;
  offset: number;

  constructor(bytes: Uint8Array, offset: number, end = bytes.length) {
    this.#bytes = bytes;
    this.offset = offset;
    this.#end = end;
  }

  get done(): boolean {
    return this.offset >= this.#end;
  }

  byte(): number {
    if (this.offset >= this.#end) throw new SyntaxError("unexpected end of the module");
    return this.#bytes[this.offset++]!;
  }

  bytes(n: number): Uint8Array {
    if (this.offset + n > this.#end) throw new SyntaxError("unexpected end of the module");
    const out = this.#bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** Unsigned LEB128, at most 32 bits. */
  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new SyntaxError("malformed LEB128 integer");
  }

  /** Any LEB128 integer of up to 64 bits, value ignored. */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) {
      if ((this.byte() & 0x80) === 0) return;
    }
    throw new SyntaxError("malformed LEB128 integer");
  }

  limits(): void {
    const flags = this.byte();
    this.skipLeb();
    if ((flags & LIMITS_HAS_MAX) !== 0) this.skipLeb();
  }

  /** A value type; `ref null? ht` (0x63, 0x64) carries a heap type. */
  valType(): void {
    const b = this.byte();
    if (b === 0x63 || b === 0x64) this.heapType();
  }

  heapType(): void {
    this.skipLeb(); // s33: an abstract heap type (one byte) or a type index
  }

  /** A block type: empty (0x40), a value type, or an s33 type index. */
  blockType(): void {
    const b = this.#bytes[this.offset];
    if (b === 0x63 || b === 0x64) this.valType();
    else this.skipLeb();
  }

  memarg(): void {
    const align = this.u32();
    if ((align & 0x40) !== 0) this.u32(); // multi-memory: a memory index follows
    this.skipLeb(); // offset (64-bit for memory64)
  }
}

function appendToVector(payload: Uint8Array, ...entries: ArrayLike<number>[]): Uint8Array {
  const r = new Reader(payload, 0);
  const count = r.u32();
  return concat([leb128(count + entries.length), payload.subarray(r.offset), ...entries]);
}

function vector(entries: ArrayLike<number>[]): Uint8Array {
  return concat([leb128(entries.length), ...entries]);
}

function insertSection(sections: Section[], section: Section): void {
  const rank = SECTION_ORDER.get(section.id)!;
  const index = sections.findIndex((s) => (SECTION_ORDER.get(s.id) ?? 0) > rank);
  sections.splice(index === -1 ? sections.length : index, 0, section);
}

function leb128(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return out;
}

function signedLeb128(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (b & 0x40) === 0) || (value === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function concat(chunks: ArrayLike<number>[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

function mib(pages: number): number {
  return pages / 16;
}
