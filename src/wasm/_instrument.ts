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
 * - Every memory and every mutable global the module defines is exported too, as
 *   `__stratos_memory_<index>` and `__stratos_global_<index>` ({@linkcode MEMORY_EXPORT_PREFIX},
 *   {@linkcode GLOBAL_EXPORT_PREFIX}): the host snapshots them after initialisation and restores
 *   them between jobs, including state the module keeps private (Rust's `__stack_pointer`).
 * - Each memory's size as the module sees it becomes a mutable global (exported with the
 *   others): `memory.size` reads it and `memory.grow` calls an added function that raises it,
 *   growing the memory itself only past what it already has. Restoring that global undoes a
 *   growth without shrinking the memory (WebAssembly memories cannot shrink), so an instance
 *   whose memory grew can still be reset; the pages beyond the restored size are zero again
 *   after a reset, as `memory.grow` promises. Accesses past the size the module sees but within
 *   the memory's real size do not trap.
 * - When the module defines a single memory and writes it only with plain stores and the bulk
 *   memory instructions (no atomic or SIMD store), every write also marks its 4 KiB chunk
 *   ({@linkcode CHUNK_SHIFT}) in a byte map, a memory of its own exported as
 *   {@linkcode DIRTY_EXPORT}: one byte per chunk of the largest memory the limit allows. A store
 *   `op memarg` becomes `local.set $v; local.tee $a; i32.const offset; i32.add; i32.const 12;
 *   i32.shr_u; i32.const 1; i32.store8 <map>; local.get $a; local.get $v; op memarg` (with
 *   locals added to each function); `memory.fill`, `memory.copy` and `memory.init` call an added
 *   function that marks their destination range first. The host then restores only the marked
 *   chunks (plus the bytes a store starting in one may write into the next).
 * - Instructions that change state outside memories and globals are noted (not changed):
 *   `table.set`, `table.grow`, `table.fill`, `table.copy`, `table.init`, `elem.drop`,
 *   `data.drop`. A module that uses any of them is not {@linkcode InstrumentedModule.resettable}.
 *
 * Every other byte is copied unchanged, and the result is validated again when compiled.
 *
 * @module
 */

/** Export name of the interrupt memory the instrumentation adds. */
export const INTERRUPT_EXPORT = "__stratos_interrupt";
/** Export name of the module's start function, which instantiation no longer runs. */
export const START_EXPORT = "__stratos_start";
/** Export name prefix of the module's memories, followed by the memory index. */
export const MEMORY_EXPORT_PREFIX = "__stratos_memory_";
/** Export name prefix of the module's mutable globals, followed by the global index. */
export const GLOBAL_EXPORT_PREFIX = "__stratos_global_";
/** Export name of the byte map of written chunks, when the module's writes are tracked. */
export const DIRTY_EXPORT = "__stratos_dirty";
/** log2 of the bytes of a chunk the byte map tracks (4 KiB). */
export const CHUNK_SHIFT = 12;
/** Most bytes a single store writes (v128 is not tracked: 8). */
export const MAX_STORE_BYTES = 8;
/** Prefix of every export name the host reserves. */
const RESERVED_PREFIX = "__stratos_";
/** Value of the interrupt word that makes the running code trap. */
export const INTERRUPTED = -1;
/** Pages (64 KiB each) a 32-bit memory can address. */
export const MAX_WASM32_PAGES = 65536;

const WASM_PAGE = 65536;
const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];
const WASM_VERSION = [0x01, 0x00, 0x00, 0x00];

// Section ids (§5.5.2) and the order in which known sections must appear.
const SECTION_TYPE = 1;
const SECTION_IMPORT = 2;
const SECTION_FUNCTION = 3;
const SECTION_MEMORY = 5;
const SECTION_GLOBAL = 6;
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
const OP_CALL = 0x10;
const OP_GLOBAL_GET = 0x23;
const OP_MEMORY_SIZE = 0x3f;
const OP_MEMORY_GROW = 0x40;
const TYPE_I32 = 0x7f;
const TYPE_I64 = 0x7e;
const TYPE_F32 = 0x7d;
const TYPE_F64 = 0x7c;
/** `(func (param i32 i32))`, the type of the added mark function. */
const MARK_TYPE = [0x60, 0x02, TYPE_I32, TYPE_I32, 0x00];
/** Returned by {@linkcode skipInstruction} for an atomic or SIMD instruction that writes memory. */
const OP_UNTRACKED_WRITE = 0x1ff;
/** Type of the value each plain store (0x36..0x3e) takes. */
const STORE_TYPES: ReadonlyMap<number, number> = new Map([
  [0x36, TYPE_I32],
  [0x37, TYPE_I64],
  [0x38, TYPE_F32],
  [0x39, TYPE_F64],
  [0x3a, TYPE_I32],
  [0x3b, TYPE_I32],
  [0x3c, TYPE_I64],
  [0x3d, TYPE_I64],
  [0x3e, TYPE_I64],
]);
/** memory.init, memory.copy, memory.fill as {@linkcode skipInstruction} returns them. */
const BULK_WRITES: ReadonlySet<number> = new Set([8, 10, 11].map((s) => 0xfc00 | s));
/** `(func (param i32) (result i32))`, the type of the added grow functions (§5.3.6). */
const GROW_TYPE = [0x60, 0x01, TYPE_I32, 0x01, TYPE_I32];
const OP_END = 0x0b;
const OP_TABLE_SET = 0x26;
const OP_MISC = 0xfc;
/**
 * `0xfc` instructions that change tables or drop segments, as {@linkcode skipInstruction} returns
 * them (`0xfc00 | sub`): table.init, elem.drop, table.copy, table.grow, table.fill, data.drop.
 */
const MISC_STATEFUL: ReadonlySet<number> = new Set([12, 13, 14, 15, 17, 9].map((s) => 0xfc00 | s));

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
  /**
   * Whether its exported memories and mutable globals hold all the state a job can change: no
   * instruction changes a table or drops a data or element segment.
   */
  resettable: boolean;
  /** Whether writes to its memory mark their chunks in {@linkcode DIRTY_EXPORT}. */
  tracksWrites: boolean;
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
  let importedGlobals = 0;
  let importedFunctions = 0;
  let definedFunctions = 0;
  let definedGlobals = 0;
  let types = 0;
  /** Params of each type; undefined for a type that is not a plain function type. */
  let paramCounts: (number | undefined)[] = [];
  const functionTypes: number[] = [];
  let initialPages: number[] = [];
  let mutableGlobals: number[] = [];
  let startFunction: number | undefined;
  const out: Section[] = [];
  for (const section of sections) {
    switch (section.id) {
      case SECTION_IMPORT:
        ({
          memories: importedMemories,
          globals: importedGlobals,
          functions: importedFunctions,
        } = countImports(section.payload));
        out.push(section);
        break;
      case SECTION_TYPE:
        paramCounts = countParams(section.payload);
        types = new Reader(section.payload, 0).u32();
        out.push(section);
        break;
      case SECTION_FUNCTION: {
        const r = new Reader(section.payload, 0);
        definedFunctions = r.u32();
        for (let i = 0; i < definedFunctions; i++) functionTypes.push(r.u32());
        out.push(section);
        break;
      }
      case SECTION_GLOBAL:
        ({ mutable: mutableGlobals, count: definedGlobals } = findMutableGlobals(section.payload));
        out.push(section);
        break;
      case SECTION_MEMORY: {
        const capped = capMemories(section.payload, maxMemoryPages);
        initialPages = capped.initial;
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
  const interruptMemory = importedMemories + initialPages.length;
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
  for (let i = importedMemories; i < interruptMemory; i++) {
    newExports.push(exportEntry(`${MEMORY_EXPORT_PREFIX}${i}`, KIND_MEMORY, i));
  }
  // Each defined memory's visible size: a global and a grow function, appended after the
  // module's own, so no index changes.
  const sizes = new Map<number, { global: number; grow: number }>();
  initialPages.forEach((_, i) => {
    sizes.set(importedMemories + i, {
      global: importedGlobals + definedGlobals + i,
      grow: importedFunctions + definedFunctions + i,
    });
    mutableGlobals.push(definedGlobals + i);
  });
  // Track writes of the one memory, if the code lets us (else the host restores it whole).
  const dirtyMemory = interruptMemory + 1;
  const check = interruptCheck(interruptMemory);
  const codeSection = out.find((s) => s.id === SECTION_CODE);
  let code: ReturnType<typeof instrumentCode> | undefined;
  const params = functionTypes.map((type) => paramCounts[type]);
  if (
    codeSection && initialPages.length === 1 && importedMemories === 0 &&
    params.every((n) => n !== undefined)
  ) {
    code = instrumentCode(codeSection.payload, check, sizes, {
      memory: 0,
      map: dirtyMemory,
      mark: importedFunctions + definedFunctions + sizes.size,
      params,
    });
    if (code.untracked) code = undefined;
  }
  if (codeSection && !code) code = instrumentCode(codeSection.payload, check, sizes);
  const tracking = code?.tracked === true;
  if (tracking) {
    const bytes = maxMemoryPages * (WASM_PAGE >> CHUNK_SHIFT);
    const pages = Math.ceil(bytes / WASM_PAGE);
    appendOrInsert(out, SECTION_MEMORY, [[LIMITS_HAS_MAX, ...leb128(pages), ...leb128(pages)]]);
    newExports.push(exportEntry(DIRTY_EXPORT, KIND_MEMORY, dirtyMemory));
  }

  if (sizes.size > 0) {
    const mutableI32 = (pages: number) => [TYPE_I32, 0x01, 0x41, ...signedLeb128(pages), OP_END];
    appendOrInsert(out, SECTION_GLOBAL, initialPages.map(mutableI32));
    appendOrInsert(out, SECTION_TYPE, [GROW_TYPE]);
    appendOrInsert(out, SECTION_FUNCTION, initialPages.map(() => leb128(types)));
  }
  if (tracking) {
    appendOrInsert(out, SECTION_TYPE, [MARK_TYPE]);
    appendOrInsert(out, SECTION_FUNCTION, [leb128(types + (sizes.size > 0 ? 1 : 0))]);
  }
  for (const defined of mutableGlobals) {
    const index = importedGlobals + defined;
    newExports.push(exportEntry(`${GLOBAL_EXPORT_PREFIX}${index}`, KIND_GLOBAL, index));
  }
  const exportSection = out.find((s) => s.id === SECTION_EXPORT);
  if (exportSection) {
    assertNoReservedExport(exportSection.payload);
    exportSection.payload = appendToVector(exportSection.payload, ...newExports);
  } else {
    insertSection(out, { id: SECTION_EXPORT, payload: vector(newExports) });
  }

  let resettable = true;
  if (codeSection && code) {
    const added = [...sizes].map(([memory, { global }]) => growFunction(memory, global));
    if (tracking) added.push(markFunction(dirtyMemory));
    codeSection.payload = appendToVector(code.payload, ...added);
    if (code.stateful) resettable = false;
  }

  const chunks: ArrayLike<number>[] = [WASM_MAGIC, WASM_VERSION];
  for (const section of out) {
    chunks.push([section.id], leb128(section.payload.length), section.payload);
  }
  return {
    bytes: concat(chunks),
    hasStart: startFunction !== undefined,
    resettable,
    tracksWrites: tracking,
  };
}

interface Section {
  id: number;
  payload: Uint8Array;
}

/** Appends entries to a section's vector, or adds the section. */
function appendOrInsert(sections: Section[], id: number, entries: ArrayLike<number>[]): void {
  const section = sections.find((s) => s.id === id);
  if (section) section.payload = appendToVector(section.payload, ...entries);
  else insertSection(sections, { id, payload: vector(entries) });
}

/**
 * The body (with its size) of the function `memory.grow` of `memory` becomes: it raises the
 * size the module sees, kept in `global`, and grows the memory only past its real size.
 * `(param $delta i32) (result i32) (local $old i32) (local $new i64)`: returns the old size, or
 * -1 if the memory cannot grow that far.
 */
function growFunction(memory: number, global: number): number[] {
  const m = leb128(memory);
  const g = leb128(global);
  const body = [
    ...[0x02, 0x01, TYPE_I32, 0x01, 0x7e], // locals: 1 i32, 1 i64
    ...[0x23, ...g, 0x21, 0x01], // $old = global
    ...[0x20, 0x01, 0xad, 0x20, 0x00, 0xad, 0x7c, 0x22, 0x02], // $new = u64($old) + u64($delta)
    ...[0x42, ...signedLeb128(MAX_WASM32_PAGES), 0x56], // $new > MAX_WASM32_PAGES
    ...[0x04, 0x40, 0x41, 0x7f, 0x0f, 0x0b], // if: return -1
    ...[0x20, 0x02, 0x3f, ...m, 0xad, 0x56], // $new > u64(memory.size)
    ...[0x04, 0x40], // if: grow by the difference, return -1 if refused
    ...[0x20, 0x02, 0xa7, 0x3f, ...m, 0x6b, 0x40, ...m, 0x41, 0x7f, 0x46],
    ...[0x04, 0x40, 0x41, 0x7f, 0x0f, 0x0b],
    0x0b,
    ...[0x20, 0x02, 0xa7, 0x24, ...g], // global = i32($new)
    ...[0x20, 0x01, 0x0b], // $old
  ];
  return [...leb128(body.length), ...body];
}

/**
 * The body (with its size) of the function that marks the chunks of bytes `$d..$d+$n` in the
 * byte map `map`: `(param $d i32) (param $n i32) (local $i i32) (local $last i32)`.
 */
function markFunction(map: number): number[] {
  const store8 = [0x3a, 0x40, ...leb128(map), 0x00]; // i32.store8, align 0, memory `map`
  const body = [
    ...[0x01, 0x02, TYPE_I32], // locals: 2 i32
    ...[0x20, 0x01, 0x45, 0x04, 0x40, 0x0f, 0x0b], // if $n == 0: return
    ...[0x20, 0x00, 0x20, 0x01, 0x6a, 0x41, 0x01, 0x6b, 0x41, CHUNK_SHIFT, 0x76, 0x21, 0x03],
    ...[0x20, 0x00, 0x41, CHUNK_SHIFT, 0x76, 0x21, 0x02], // $i = $d >> 12
    ...[0x02, 0x40, 0x03, 0x40], // block, loop
    ...[0x20, 0x02, 0x20, 0x03, 0x4b, 0x0d, 0x01], // br_if out: $i > $last
    ...[0x20, 0x02, 0x41, 0x01, ...store8], // map[$i] = 1
    ...[0x20, 0x02, 0x41, 0x01, 0x6a, 0x21, 0x02, 0x0c, 0x00], // $i++, again
    ...[0x0b, 0x0b, 0x0b],
  ];
  return [...leb128(body.length), ...body];
}

/** Params of each function type of a type section; undefined for other kinds of type. */
function countParams(payload: Uint8Array): (number | undefined)[] {
  const r = new Reader(payload, 0);
  const counts: (number | undefined)[] = [];
  for (let n = r.u32(); n > 0; n--) {
    if (r.byte() !== 0x60) {
      // A recursive or sub type (GC proposal): not tracked, and its size is not parsed here.
      return [];
    }
    const params = r.u32();
    for (let i = 0; i < params; i++) r.valType();
    for (let results = r.u32(); results > 0; results--) r.valType();
    counts.push(params);
  }
  return counts;
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

function countImports(
  payload: Uint8Array,
): { memories: number; globals: number; functions: number } {
  const r = new Reader(payload, 0);
  let memories = 0;
  let globals = 0;
  let functions = 0;
  for (let n = r.u32(); n > 0; n--) {
    r.bytes(r.u32()); // module name
    r.bytes(r.u32()); // field name
    const kind = r.byte();
    switch (kind) {
      case KIND_FUNC:
        r.u32();
        functions++;
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
        globals++;
        break;
      case KIND_TAG:
        r.byte();
        r.u32();
        break;
      default:
        throw new SyntaxError(`unknown import kind 0x${hex(kind)}`);
    }
  }
  return { memories, globals, functions };
}

/** Indices (among the defined globals) of the mutable globals of a global section (§5.5.9). */
function findMutableGlobals(payload: Uint8Array): { mutable: number[]; count: number } {
  const r = new Reader(payload, 0);
  const mutable: number[] = [];
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    r.valType();
    if (r.byte() === 0x01) mutable.push(i);
    // The initializer: a constant expression, up to its `end`.
    while (skipInstruction(r) !== OP_END) {
      // Constant expressions have no blocks: the first `end` is theirs.
    }
  }
  if (!r.done) throw new SyntaxError("trailing bytes in the global section");
  return { mutable, count };
}

function capMemories(
  payload: Uint8Array,
  maxPages: number,
): { initial: number[]; payload: Uint8Array } {
  const r = new Reader(payload, 0);
  const count = r.u32();
  const limits: number[][] = [];
  const initials: number[] = [];
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
    initials.push(initial);
    const maximum = Math.min(declaredMax ?? maxPages, maxPages);
    limits.push([(flags & LIMITS_SHARED) | LIMITS_HAS_MAX, ...leb128(initial), ...leb128(maximum)]);
  }
  if (!r.done) throw new SyntaxError("trailing bytes in the memory section");
  return { initial: initials, payload: vector(limits) };
}

function assertNoReservedExport(payload: Uint8Array): void {
  const r = new Reader(payload, 0);
  const decoder = new TextDecoder();
  for (let n = r.u32(); n > 0; n--) {
    const name = decoder.decode(r.bytes(r.u32()));
    if (name.startsWith(RESERVED_PREFIX)) {
      throw new SyntaxError(
        `exports "${name}": names starting with "${RESERVED_PREFIX}" are reserved for the host`,
      );
    }
    r.byte();
    r.u32();
  }
}

function exportEntry(name: string, kind: number, index: number): number[] {
  const utf8 = new TextEncoder().encode(name);
  return [...leb128(utf8.length), ...utf8, kind, ...leb128(index)];
}

/**
 * Rewrites the code section (§5.5.13): the check goes first in each body, after its locals, and
 * at each loop header; `memory.size` and `memory.grow` of a memory in `sizes` read its global
 * and call its grow function. `stateful`: some instruction changes a table or drops a segment.
 */
function instrumentCode(
  payload: Uint8Array,
  check: Uint8Array,
  sizes: ReadonlyMap<number, { global: number; grow: number }>,
  track?: WriteTracking,
): { payload: Uint8Array; stateful: boolean; tracked: boolean; untracked: boolean } {
  let stateful = false;
  let untracked = false;
  const r = new Reader(payload, 0);
  const count = r.u32();
  const chunks: ArrayLike<number>[] = [leb128(count)];
  for (let i = 0; i < count; i++) {
    const size = r.u32();
    const end = r.offset + size;
    const body = new Reader(payload, r.offset, end);
    const groups = body.u32();
    const declaredStart = body.offset;
    let locals = 0;
    for (let g = groups; g > 0; g--) {
      locals += body.u32();
      body.valType();
    }
    const parts: ArrayLike<number>[] = [];
    let scratch: Record<number, number> = {};
    if (track) {
      // Added locals, after the function's own: three i32, then one of each other store type.
      const base = track.params[i]! + locals;
      scratch = {
        [TYPE_I32]: base,
        [TYPE_I64]: base + 3,
        [TYPE_F32]: base + 4,
        [TYPE_F64]: base + 5,
      };
      const declared = payload.subarray(declaredStart, body.offset);
      parts.push(leb128(groups + 4), declared, [
        3,
        TYPE_I32,
        1,
        TYPE_I64,
        1,
        TYPE_F32,
        1,
        TYPE_F64,
      ]);
    } else {
      parts.push(payload.subarray(r.offset, body.offset));
    }
    parts.push(check);
    let copied = body.offset;
    while (!body.done) {
      const at = body.offset;
      const opcode = skipInstruction(body);
      if (opcode === OP_TABLE_SET || MISC_STATEFUL.has(opcode)) stateful = true;
      if (opcode === OP_UNTRACKED_WRITE) untracked = true;
      if (track && (STORE_TYPES.has(opcode) || BULK_WRITES.has(opcode))) {
        const marking = markWrite(payload, at, opcode, track, scratch);
        if (marking) {
          parts.push(payload.subarray(copied, at), marking, payload.subarray(at, body.offset));
          copied = body.offset;
        }
      }
      if (opcode === OP_MEMORY_SIZE || opcode === OP_MEMORY_GROW) {
        const size = sizes.get(new Reader(payload, at + 1).u32());
        if (size) {
          const replacement = opcode === OP_MEMORY_SIZE
            ? [OP_GLOBAL_GET, ...leb128(size.global)]
            : [OP_CALL, ...leb128(size.grow)];
          parts.push(payload.subarray(copied, at), replacement);
          copied = body.offset;
        }
      }
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
  return { payload: concat(chunks), stateful, tracked: track !== undefined, untracked };
}

/** Where writes of a memory are marked, and how. */
interface WriteTracking {
  /** The memory whose writes are tracked. */
  memory: number;
  /** The byte map's memory. */
  map: number;
  /** The added function that marks a range. */
  mark: number;
  /** Params of each defined function, in order. */
  params: number[];
}

/**
 * The code to put before the write at `at` (a store, memory.init, memory.copy or memory.fill)
 * that marks what it writes, if it writes the tracked memory; `scratch`: the added locals by type.
 */
function markWrite(
  payload: Uint8Array,
  at: number,
  opcode: number,
  track: WriteTracking,
  scratch: Record<number, number>,
): number[] | undefined {
  const r = new Reader(payload, at + 1);
  const a = leb128(scratch[TYPE_I32]!);
  if (STORE_TYPES.has(opcode)) {
    const align = r.u32();
    const memory = (align & 0x40) !== 0 ? r.u32() : 0;
    if (memory !== track.memory) return undefined;
    const offset = r.u32();
    const type = STORE_TYPES.get(opcode)!;
    const value = leb128(type === TYPE_I32 ? scratch[TYPE_I32]! + 1 : scratch[type]!);
    return [
      ...[0x21, ...value, 0x22, ...a], // local.set $v; local.tee $a
      ...[0x41, ...signedLeb128(offset | 0), 0x6a, 0x41, CHUNK_SHIFT, 0x76], // (a + offset) >> 12
      ...[0x41, 0x01, 0x3a, 0x40, ...leb128(track.map), 0x00], // map[...] = 1
      ...[0x20, ...a, 0x20, ...value],
    ];
  }
  r.u32(); // the 0xfc sub-opcode
  const sub = opcode & 0xff;
  if (sub === 8) r.u32(); // memory.init: the data segment
  const memory = r.u32(); // the destination memory
  if (memory !== track.memory) return undefined;
  const x = leb128(scratch[TYPE_I32]! + 1);
  const n = leb128(scratch[TYPE_I32]! + 2);
  return [
    ...[0x21, ...n, 0x21, ...x, 0x21, ...a],
    ...[0x20, ...a, 0x20, ...n, OP_CALL, ...leb128(track.mark)],
    ...[0x20, ...a, 0x20, ...x, 0x20, ...n],
  ];
}

/**
 * Steps over one instruction and its immediates (§5.4; plus the sign-extension, non-trapping
 * conversion, bulk memory, reference types, SIMD, threads, exception handling, tail call and
 * multi-memory extensions) and returns its first opcode byte; for the `0xfc` prefix,
 * `0xfc00 | sub` (sub-opcodes of that prefix used here are below 256).
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
    case OP_MISC:
      return (OP_MISC << 8) | skipMiscInstruction(r, at);
    case 0xfd:
      return skipSimdInstruction(r) ? OP_UNTRACKED_WRITE : op;
    case 0xfe:
      return skipAtomicInstruction(r, at) ? OP_UNTRACKED_WRITE : op;
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

/** Steps over a `0xfc` instruction after its prefix; returns the sub-opcode. */
function skipMiscInstruction(r: Reader, at: number): number {
  const sub = r.u32();
  if (sub <= 7) return sub; // trunc_sat conversions
  switch (sub) {
    case 8: // memory.init data memory
    case 10: // memory.copy dst src
    case 12: // table.init elem table
    case 14: // table.copy dst src
      r.u32();
      r.u32();
      return sub;
    case 9: // data.drop
    case 11: // memory.fill
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.u32();
      return sub;
  }
  throw new SyntaxError(
    `uses instruction 0xfc ${sub} (at byte ${at}), which the sandbox cannot instrument`,
  );
}

/** Steps over a SIMD instruction after its prefix; whether it stores. */
function skipSimdInstruction(r: Reader): boolean {
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
  return sub === 0x0b || (sub >= 0x58 && sub <= 0x5b); // v128.store, store_lane
}

/** Steps over an atomic instruction after its prefix; whether it writes memory. */
function skipAtomicInstruction(r: Reader, at: number): boolean {
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
  return sub >= 0x17; // stores, read-modify-writes, compare-exchanges
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
