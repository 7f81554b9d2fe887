/**
 * A minimal `wasi_snapshot_preview1` for runnables built with WASI toolchains (Rust's
 * `wasm32-wasi`, TinyGo, Grain): enough for their runtime to start, print and exit, and nothing
 * that reaches the outside.
 *
 * - `fd_write` to fd 1 / fd 2 goes to the job's log, a line at a time (info / error): that is
 *   where a Rust panic message goes. Other fds: EBADF.
 * - `args_*` and `environ_*`: empty. `random_get`: `crypto.getRandomValues`.
 * - `clock_time_get`: realtime (0) and monotonic (1) in ns; other clocks EINVAL.
 * - `proc_exit(code)` ends the job: 0 answers what the module returned (empty if nothing),
 *   anything else fails the job with code 500, `proc_exit(<code>)`. During initialisation
 *   (`_start`), 0 ends only the start function: a clean start (_host.ts).
 * - `fd_prestat_get`: EBADF, "no preopened directory" (wasi-libc stops its preopen scan there;
 *   ENOSYS would make it exit with code 71).
 * - Every other function of the preview1 list: ENOSYS (52), without failing the job.
 *
 * Function signatures and errno values: WebAssembly/WASI `legacy/preview1/witx`.
 *
 * @module
 */

/** Errno values (WASI preview1 `errno`). */
const ESUCCESS = 0;
const EBADF = 8;
const EINVAL = 28;
const ENOSYS = 52;
const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;
const STDOUT = 1;
const STDERR = 2;
/** `crypto.getRandomValues` fills at most this many bytes per call. */
const MAX_RANDOM = 65536;
/** Level of `log_msg` that fd 1 / fd 2 lines get. */
const LEVEL_INFO = 3;
const LEVEL_ERROR = 1;
/** Longest unfinished line kept before it is logged as is. */
const MAX_LINE = 4096;

/** Every function of `wasi_snapshot_preview1`. */
export const WASI_FUNCTIONS: readonly string[] = [
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "fd_advise",
  "fd_allocate",
  "fd_close",
  "fd_datasync",
  "fd_fdstat_get",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "fd_filestat_get",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_pwrite",
  "fd_read",
  "fd_readdir",
  "fd_renumber",
  "fd_seek",
  "fd_sync",
  "fd_tell",
  "fd_write",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "poll_oneoff",
  "proc_exit",
  "proc_raise",
  "sched_yield",
  "random_get",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
];

/** What the WASI functions need of the instance that imports them. */
export interface WasiHost {
  /** A bounds-checked view of memory; throws (failing the job) when out of bounds. */
  bytes(ptr: number, size: number, fn: string): Uint8Array;
  /** Marks bytes the host wrote (for the reset). */
  written(ptr: number, size: number): void;
  /** Logs a line for the running job. */
  log(level: number, message: string): void;
  /** Ends the running job with `proc_exit(code)`; throws to unwind the module. */
  exit(code: number): never;
}

/**
 * The `wasi_snapshot_preview1` functions for one instance.
 *
 * @param host the instance's memory access, log and exit
 * @returns the import object (every name of {@linkcode WASI_FUNCTIONS}), and `flush` to call
 *   when a job ends: it logs what remains of unfinished lines
 */
export function wasiImports(
  host: WasiHost,
): { imports: Record<string, WebAssembly.ImportValue>; flush(): void } {
  const u32 = (ptr: number, value: number, fn: string) => {
    const bytes = host.bytes(ptr, 4, fn);
    new DataView(bytes.buffer, bytes.byteOffset, 4).setUint32(0, value, true);
    host.written(ptr, 4);
  };
  const streams = new LineStreams(host);
  const functions: Record<string, WebAssembly.ImportValue> = {};
  for (const name of WASI_FUNCTIONS) functions[name] = () => ENOSYS;
  Object.assign(functions, {
    args_sizes_get: (countPtr: number, sizePtr: number) => {
      u32(countPtr, 0, "args_sizes_get");
      u32(sizePtr, 0, "args_sizes_get");
      return ESUCCESS;
    },
    args_get: () => ESUCCESS,
    environ_sizes_get: (countPtr: number, sizePtr: number) => {
      u32(countPtr, 0, "environ_sizes_get");
      u32(sizePtr, 0, "environ_sizes_get");
      return ESUCCESS;
    },
    environ_get: () => ESUCCESS,
    clock_time_get: (id: number, _precision: bigint, timePtr: number) => {
      let ms: number;
      if (id === CLOCK_REALTIME) ms = performance.timeOrigin + performance.now();
      else if (id === CLOCK_MONOTONIC) ms = performance.now();
      else return EINVAL;
      const bytes = host.bytes(timePtr, 8, "clock_time_get");
      const ns = BigInt(Math.floor(ms * 1e6));
      new DataView(bytes.buffer, bytes.byteOffset, 8).setBigUint64(0, ns, true);
      host.written(timePtr, 8);
      return ESUCCESS;
    },
    random_get: (ptr: number, size: number) => {
      const bytes = host.bytes(ptr, size, "random_get");
      for (let at = 0; at < size; at += MAX_RANDOM) {
        crypto.getRandomValues(bytes.subarray(at, at + MAX_RANDOM));
      }
      host.written(ptr, size);
      return ESUCCESS;
    },
    fd_write: (fd: number, iovsPtr: number, iovsLen: number, writtenPtr: number) => {
      if (fd !== STDOUT && fd !== STDERR) return EBADF;
      // Each iovec: u32 buf, u32 buf_len (witx `ciovec`).
      const iovs = host.bytes(iovsPtr, iovsLen * 8, "fd_write");
      const view = new DataView(iovs.buffer, iovs.byteOffset, iovs.byteLength);
      let total = 0;
      for (let i = 0; i < iovsLen; i++) {
        const bytes = host.bytes(
          view.getUint32(i * 8, true),
          view.getUint32(i * 8 + 4, true),
          "fd_write",
        );
        streams.write(fd, bytes);
        total += bytes.length;
      }
      u32(writtenPtr, total, "fd_write");
      return ESUCCESS;
    },
    fd_prestat_get: () => EBADF,
    proc_exit: (code: number) => host.exit(code),
  });
  return { imports: functions, flush: () => streams.flush() };
}

/** Splits what a job writes to fd 1 and fd 2 into log lines. */
class LineStreams {
  readonly #host: WasiHost;
  readonly #decoders = new Map<number, TextDecoder>();
  readonly #partial = new Map<number, string>();

  constructor(host: WasiHost) {
    this.#host = host;
  }

  write(fd: number, bytes: Uint8Array): void {
    let decoder = this.#decoders.get(fd);
    if (!decoder) this.#decoders.set(fd, decoder = new TextDecoder());
    const lines = ((this.#partial.get(fd) ?? "") + decoder.decode(bytes, { stream: true }))
      .split("\n");
    let rest = lines.pop()!;
    // A line that never ends is logged in pieces rather than held without bound.
    if (rest.length >= MAX_LINE) {
      lines.push(rest);
      rest = "";
    }
    this.#partial.set(fd, rest);
    for (const line of lines) this.#host.log(fd === STDOUT ? LEVEL_INFO : LEVEL_ERROR, line);
  }

  /** Logs what remains of unfinished lines; called when a job ends. */
  flush(): void {
    for (const [fd, decoder] of this.#decoders) {
      const rest = (this.#partial.get(fd) ?? "") + decoder.decode();
      if (rest !== "") this.#host.log(fd === STDOUT ? LEVEL_INFO : LEVEL_ERROR, rest);
    }
    this.#decoders.clear();
    this.#partial.clear();
  }
}
