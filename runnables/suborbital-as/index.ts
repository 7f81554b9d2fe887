// A small AssemblyScript SDK for Suborbital's runnable ABI, as the Stratos sat hosts it.
//
// A runnable's entry file re-exports `allocate`, `deallocate` and `abort`-free helpers from here
// and defines `run_e` with `runnable(run)`:
//
//   import { allocate, deallocate, runnable } from "../suborbital-as";
//   export { allocate, deallocate };
//   function run(input: ArrayBuffer): ArrayBuffer { ... }
//   export function run_e(ptr: usize, size: i32, ident: i32): void { runnable(ptr, size, ident, run); }
//
// Build with `--runtime stub --use abort=<this folder>/index/abort` so that an AssemblyScript
// abort reaches the host as env.return_abort, which fails the job with its message.

@external("env", "return_result")
declare function return_result(ptr: usize, size: i32, ident: i32): void;
@external("env", "return_error")
declare function return_error(code: i32, ptr: usize, size: i32, ident: i32): void;
@external("env", "log_msg")
declare function log_msg(ptr: usize, size: i32, level: i32, ident: i32): void;
@external("env", "return_abort")
declare function return_abort(
  msgPtr: usize,
  msgSize: i32,
  filePtr: usize,
  fileSize: i32,
  line: u32,
  column: u32,
  ident: i32,
): void;

let currentIdent: i32 = 0;

/** Reserves `size` bytes for the host to write a job's input into. */
export function allocate(size: i32): usize {
  return heap.alloc(<usize>size);
}

/** Gives back what `allocate` reserved. */
export function deallocate(ptr: usize, size: i32): void {
  heap.free(ptr);
}

/** Runs `run` on the job's input and hands its output (or error) to the host. */
export function runnable(
  ptr: usize,
  size: i32,
  ident: i32,
  run: (input: ArrayBuffer) => ArrayBuffer,
): void {
  currentIdent = ident;
  const input = new ArrayBuffer(size);
  memory.copy(changetype<usize>(input), ptr, <usize>size);
  const output = run(input);
  return_result(changetype<usize>(output), output.byteLength, ident);
}

/** Fails the current job with `code` and `message`. */
export function returnError(code: i32, message: string): void {
  const bytes = String.UTF8.encode(message);
  return_error(code, changetype<usize>(bytes), bytes.byteLength, currentIdent);
}

/** Logs `message` at info level (1 error, 2 warn, 3 info, 4 debug) into the sat's log. */
export function logInfo(message: string): void {
  const bytes = String.UTF8.encode(message);
  log_msg(changetype<usize>(bytes), bytes.byteLength, 3, currentIdent);
}

/** AssemblyScript's abort, routed to the host (see the build flags above). */
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  const msg = String.UTF8.encode(message === null ? "abort" : message);
  const name = String.UTF8.encode(file === null ? "" : file);
  return_abort(
    changetype<usize>(msg),
    msg.byteLength,
    changetype<usize>(name),
    name.byteLength,
    line,
    column,
    currentIdent,
  );
  unreachable();
}
