// A small AssemblyScript SDK for Suborbital's runnable ABI, as the Stratos sat hosts it: every
// host function of the ABI (the compiler keeps only the imports a runnable uses).
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

@external("env", "get_ffi_result")
declare function get_ffi_result(ptr: usize, ident: i32): i32;
@external("env", "add_ffi_var")
declare function add_ffi_var(
  namePtr: usize,
  nameSize: i32,
  valPtr: usize,
  valSize: i32,
  ident: i32,
): i32;
@external("env", "request_get_field")
declare function request_get_field(fieldType: i32, keyPtr: usize, keySize: i32, ident: i32): i32;
@external("env", "request_set_field")
declare function request_set_field(
  fieldType: i32,
  keyPtr: usize,
  keySize: i32,
  valPtr: usize,
  valSize: i32,
  ident: i32,
): i32;
@external("env", "resp_set_header")
declare function resp_set_header(
  keyPtr: usize,
  keySize: i32,
  valPtr: usize,
  valSize: i32,
  ident: i32,
): void;
@external("env", "cache_set")
declare function cache_set(
  keyPtr: usize,
  keySize: i32,
  valPtr: usize,
  valSize: i32,
  ttl: i32,
  ident: i32,
): i32;
@external("env", "cache_get")
declare function cache_get(keyPtr: usize, keySize: i32, ident: i32): i32;
@external("env", "fetch_url")
declare function fetch_url(
  method: i32,
  urlPtr: usize,
  urlSize: i32,
  bodyPtr: usize,
  bodySize: i32,
  ident: i32,
): i32;
@external("env", "graphql_query")
declare function graphql_query(
  endpointPtr: usize,
  endpointSize: i32,
  queryPtr: usize,
  querySize: i32,
  ident: i32,
): i32;
@external("env", "get_static_file")
declare function get_static_file(namePtr: usize, nameSize: i32, ident: i32): i32;
@external("env", "db_exec")
declare function db_exec(queryType: i32, namePtr: usize, nameSize: i32, ident: i32): i32;
@external("env", "get_secret_value")
declare function get_secret_value(keyPtr: usize, keySize: i32, ident: i32): i32;

let currentIdent: i32 = 0;
let returnedError = false;

/** Request field types of `reqField` / `reqSetField`. */
export const FIELD_META: i32 = 0;
export const FIELD_BODY: i32 = 1;
export const FIELD_HEADER: i32 = 2;
export const FIELD_PARAMS: i32 = 3;
export const FIELD_STATE: i32 = 4;
export const FIELD_QUERY: i32 = 5;

/** Query types of `dbExec`. */
export const QUERY_INSERT: i32 = 0;
export const QUERY_SELECT: i32 = 1;
export const QUERY_UPDATE: i32 = 2;
export const QUERY_DELETE: i32 = 3;

/**
 * The outcome of a host call: `ok` and the value's bytes, or the host's error message. (An
 * AssemblyScript runnable built with the stub runtime cannot catch exceptions: results are
 * values.)
 */
export class HostResult {
  constructor(public ok: bool, public value: ArrayBuffer, public error: string) {}

  /** The value as UTF-8 text (empty when the call failed). */
  text(): string {
    return String.UTF8.decode(this.value);
  }
}

/** Collects the pending result of the host call that returned `size` (Reactr's convention). */
function ffiResult(size: i32): HostResult {
  if (size == -1) return new HostResult(false, new ArrayBuffer(0), "unknown error returned from host");
  const length = size < 0 ? -size : size;
  const data = new ArrayBuffer(length);
  if (get_ffi_result(changetype<usize>(data), currentIdent) != 0) {
    return new HostResult(false, new ArrayBuffer(0), "unknown error returned from host");
  }
  if (size < 0) return new HostResult(false, new ArrayBuffer(0), String.UTF8.decode(data));
  return new HostResult(true, data, "");
}

function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/** Reads one field of the request (0 meta, 1 body, 2 header, 3 URL param, 4 state, 5 query). */
export function reqField(fieldType: i32, key: string): HostResult {
  const k = utf8(key);
  return ffiResult(request_get_field(fieldType, changetype<usize>(k), k.byteLength, currentIdent));
}

/** Changes one field of the job's own request (not query parameters: set the meta url). */
export function reqSetField(fieldType: i32, key: string, value: string): HostResult {
  const k = utf8(key);
  const v = utf8(value);
  return ffiResult(
    request_set_field(
      fieldType,
      changetype<usize>(k),
      k.byteLength,
      changetype<usize>(v),
      v.byteLength,
      currentIdent,
    ),
  );
}

/** Sets a header of the job's response. */
export function respSetHeader(key: string, value: string): void {
  const k = utf8(key);
  const v = utf8(value);
  resp_set_header(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength, currentIdent);
}

/** Stores `value` under `key` in the host's cache for `ttlSeconds` (0: no expiry). */
export function cacheSet(key: string, value: ArrayBuffer, ttlSeconds: i32): bool {
  const k = utf8(key);
  const code = cache_set(
    changetype<usize>(k),
    k.byteLength,
    changetype<usize>(value),
    value.byteLength,
    ttlSeconds,
    currentIdent,
  );
  return code >= 0;
}

/** The value under `key` in the host's cache. */
export function cacheGet(key: string): HostResult {
  const k = utf8(key);
  return ffiResult(cache_get(changetype<usize>(k), k.byteLength, currentIdent));
}

/** Fetches a URL (method: GET 0, HEAD 1, OPTIONS 2, POST 3, PUT 4, PATCH 5, DELETE 6). */
export function fetchUrl(method: i32, url: string, body: ArrayBuffer): HostResult {
  const u = utf8(url);
  return ffiResult(
    fetch_url(
      method,
      changetype<usize>(u),
      u.byteLength,
      changetype<usize>(body),
      body.byteLength,
      currentIdent,
    ),
  );
}

/** Adds a variable for the next `graphqlQuery` or `dbExec`, in order. */
export function addVar(name: string, value: string): bool {
  const n = utf8(name);
  const v = utf8(value);
  const code = add_ffi_var(
    changetype<usize>(n),
    n.byteLength,
    changetype<usize>(v),
    v.byteLength,
    currentIdent,
  );
  return code >= 0;
}

/** Runs a GraphQL query (with the variables added); the response's `data` as JSON. */
export function graphqlQuery(endpoint: string, query: string): HostResult {
  const e = utf8(endpoint);
  const q = utf8(query);
  return ffiResult(
    graphql_query(changetype<usize>(e), e.byteLength, changetype<usize>(q), q.byteLength, currentIdent),
  );
}

/** The bytes of a static file. */
export function getStaticFile(name: string): HostResult {
  const n = utf8(name);
  return ffiResult(get_static_file(changetype<usize>(n), n.byteLength, currentIdent));
}

/** Runs a query the Directive declares (with the variables added); the result as JSON. */
export function dbExec(queryType: i32, name: string): HostResult {
  const n = utf8(name);
  return ffiResult(db_exec(queryType, changetype<usize>(n), n.byteLength, currentIdent));
}

/** The value of a secret the host allows this runnable to read. */
export function getSecret(name: string): HostResult {
  const n = utf8(name);
  return ffiResult(get_secret_value(changetype<usize>(n), n.byteLength, currentIdent));
}

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
  returnedError = false;
  const input = new ArrayBuffer(size);
  memory.copy(changetype<usize>(input), ptr, <usize>size);
  const output = run(input);
  // After returnError, the job's answer is that error.
  if (!returnedError) return_result(changetype<usize>(output), output.byteLength, ident);
}

/**
 * Fails the current job with `code` and `message`: `run` then returns, and what it returns is
 * ignored.
 */
export function returnError(code: i32, message: string): void {
  returnedError = true;
  const bytes = String.UTF8.encode(message);
  return_error(code, changetype<usize>(bytes), bytes.byteLength, currentIdent);
}

/** Logs `message` at `level` (1 error, 2 warn, 3 info, 4 debug) into the sat's log. */
export function logMsg(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message);
  log_msg(changetype<usize>(bytes), bytes.byteLength, level, currentIdent);
}

/** Logs `message` at info level into the sat's log. */
export function logInfo(message: string): void {
  logMsg(3, message);
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
